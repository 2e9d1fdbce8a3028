#!/bin/bash
# Run a host command inside a stock Debian kernel under QEMU.
#
#   tests/vm/run-in-vm.sh KERNEL_SPEC [--] COMMAND [ARG...]
#
# KERNEL_SPEC: "6.1", "6.12", any other "X.Y" that a Debian suite ships, "newest" (highest
# version in any configured or derived suite), or an exact image package name such as
# "linux-image-6.1.0-56-amd64".
#
# The guest boots the kernel with a busybox initramfs, mounts the host's / read-only over 9p,
# chroots into it and runs COMMAND there, in the caller's working directory, as root.
# Prints the command's stdout and stderr and exits with its exit code (124: timed out,
# 125: the VM failed before the command finished; the kernel's console log is then shown).
#
# Environment:
#   BPFTAP_VM_CACHE    cache of kernels and apt lists   (default /var/cache/bpftap-vm)
#   BPFTAP_VM_TIMEOUT  seconds before QEMU is killed    (default 600)
#   BPFTAP_VM_MEM      guest RAM in MiB                 (default 2048)
#   BPFTAP_VM_SMP      guest CPUs                       (default 1: boots faster and more
#                      reliably under TCG, and the host's cores are shared anyway)
#   BPFTAP_VM_BOOT_TIMEOUT  seconds to reach init before the boot is retried (default 90)
#   BPFTAP_VM_PVH      0: boot the bzImage through firmware instead of the ELF vmlinux
#   BPFTAP_VM_ACCEL    QEMU accelerator                 (default tcg; kvm does not boot here)
#   BPFTAP_VM_TMPFS    host directories (absolute, space-separated) that get an empty
#                      writable tmpfs in the guest; /tmp, /var/tmp, /run, /root always do
#   BPFTAP_VM_MODULES  extra kernel modules to load, space-separated
#   BPFTAP_VM_DISK     1: attach a 16 MiB virtio disk (/dev/vda) with one Linux partition
#                      (vda1) holding an empty ext2 filesystem (when mke2fs is here), so
#                      /proc/partitions is not empty and a test can write to a disk; add
#                      virtio_blk (and ext4, which mounts ext2, with crc32c_generic on
#                      6.1) to BPFTAP_VM_MODULES on kernels where they are modules
#   BPFTAP_VM_SUITES   extra Debian suites to look for kernels in
#   BPFTAP_VM_REFRESH  1: resolve KERNEL_SPEC again even if cached
#   BPFTAP_VM_KEEP     1: keep the run directory (console log, init script)
#   BPFTAP_VM_VERBOSE  1: show progress and timings on stderr
# Variables named BPFTAP_* (except BPFTAP_VM_*) and RUST_* are passed into the guest, as is
# every name listed in BPFTAP_VM_PASSENV.
set -euo pipefail

CACHE=${BPFTAP_VM_CACHE:-/var/cache/bpftap-vm}
TIMEOUT=${BPFTAP_VM_TIMEOUT:-600}
MEM=${BPFTAP_VM_MEM:-2048}
SMP=${BPFTAP_VM_SMP:-1}
ACCEL=${BPFTAP_VM_ACCEL:-tcg}
# Modules needed for the 9p shares; those built into a kernel are simply absent.
BASE_MODULES="virtio_pci 9pnet_virtio 9p"

log() { if [ "${BPFTAP_VM_VERBOSE:-}" = 1 ]; then echo "run-in-vm: $*" >&2; fi; }
die() { echo "run-in-vm: $*" >&2; exit 125; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[ $# -ge 1 ] || die "usage: $0 KERNEL_SPEC [--] COMMAND [ARG...]"
SPEC=$1; shift
[ "${1:-}" = -- ] && shift
[ $# -ge 1 ] || die "no command given"
T0=$(now)

# --- host tools ----------------------------------------------------------------------------
need_pkgs=()
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
# A static busybox with insmod (busybox-static); grep without -q: no SIGPIPE under pipefail.
if ! { [ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -x insmod >/dev/null \
    && ! ldd /bin/busybox >/dev/null 2>&1; }; then need_pkgs+=(busybox-static); fi
command -v cpio >/dev/null || need_pkgs+=(cpio)
command -v xz >/dev/null || need_pkgs+=(xz-utils)
command -v zstd >/dev/null || need_pkgs+=(zstd)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing packages: ${need_pkgs[*]} (install them as root)"
    log "installing ${need_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2 \
        || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2; } \
        || die "cannot install ${need_pkgs[*]}"
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"

# --- private apt configuration (never touches the host's apt state) ---------------------------
APTDIR=$CACHE/apt
apt_setup() {
    mkdir -p "$APTDIR/sources" "$APTDIR/lists/partial" "$APTDIR/archives/partial" "$APTDIR/prefs"
    : >"$APTDIR/status"
    rm -f "$APTDIR/sources/"*
    # The host's own Debian sources, as they are ...
    local f n=0 codename mirror
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        grep -qE 'debian(-security)?/?( |$)' "$f" || continue
        n=$((n + 1))
        cp "$f" "$APTDIR/sources/host$n.${f##*.}"
    done
    # ... and suites derived from them: this release's backports, the next release and its
    # backports (a missing suite is skipped), plus BPFTAP_VM_SUITES.
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -1 | tr -d ' ' || true)
    [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list*"
    local next
    case $codename in
        bullseye) next=bookworm ;; bookworm) next=trixie ;; trixie) next=forky ;; forky) next=duke ;; *) next= ;;
    esac
    {
        local s
        for s in ${codename:+$codename-backports} $next ${next:+$next-backports} ${BPFTAP_VM_SUITES:-}; do
            echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $s main"
        done
    } >"$APTDIR/sources/derived.list"
    cat >"$APTDIR/apt.conf" <<EOF
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$APTDIR/sources";
Dir::Etc::PreferencesParts "$APTDIR/prefs";
Dir::Etc::Preferences "/dev/null";
Dir::State::Lists "$APTDIR/lists";
Dir::State::Status "$APTDIR/status";
Dir::Cache "$APTDIR";
Dir::Cache::Archives "$APTDIR/archives";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons-large::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons-large-hidpi::DefaultEnabled "false";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
EOF
    log "apt-get update (private lists)"
    # A suite that does not exist (yet) makes update fail; what did load is still usable.
    APT_CONFIG=$APTDIR/apt.conf apt-get update -qq >"$APTDIR/update.log" 2>&1 || true
    ls "$APTDIR/lists/"*_Packages* >/dev/null 2>&1 || { cat "$APTDIR/update.log" >&2; die "apt-get update failed"; }
}
papt() { APT_CONFIG=$APTDIR/apt.conf "$@"; }

# Prints the image package for a spec: the one with the highest package version.
resolve() {
    local spec=$1 re
    case $spec in
        linux-image-*) echo "$spec"; return ;;
        newest) re='^linux-image-[0-9]+\.[0-9]+\.[0-9][^ ]*-amd64$' ;;
        [0-9]*.[0-9]*) re="^linux-image-${spec//./\\.}\\.[0-9][^ ]*-amd64\$" ;;
        *) die "bad KERNEL_SPEC '$spec' (6.1, 6.12, newest, or linux-image-...)" ;;
    esac
    local names
    names=$(papt apt-cache search --names-only "$re" | awk '{print $1}' \
        | grep -vE -- '-(cloud|rt)-amd64$|-dbg|unsigned' || true)
    [ -n "$names" ] || die "no Debian kernel package matches '$spec'"
    # shellcheck disable=SC2086
    papt apt-cache show $names 2>/dev/null \
        | awk '/^Package: /{p=$2} /^Version: /{print $2, p}' \
        | sort -V | tail -1 | awk '{print $2}'
}

module_deps() { # file -> names of the modules it depends on
    case $1 in
        *.xz) xz -dc "$1" ;; *.zst) zstd -qdc "$1" ;; *.gz) gzip -dc "$1" ;; *) cat "$1" ;;
    esac | tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' ' '
}

# The uncompressed ELF kernel inside a bzImage, if it has a PVH entry: QEMU then starts it
# directly, skipping the firmware and the in-guest decompression (half the boot time under TCG).
extract_vmlinux() { # bzImage out
    command -v readelf >/dev/null || return 1
    local magic tool off
    for magic in 'fd377a585a00:xz' '28b52ffd:zstd' '1f8b0800:gzip'; do
        tool=${magic#*:}; magic=${magic%:*}
        off=$(LC_ALL=C grep -aboP "$(echo "$magic" | sed 's/../\\x&/g')" "$1" 2>/dev/null | head -1 | cut -d: -f1)
        [ -n "$off" ] || continue
        case $tool in
            xz) tail -c +"$((off + 1))" "$1" | xz -dc ;;
            zstd) tail -c +"$((off + 1))" "$1" | zstd -qdc ;;
            gzip) tail -c +"$((off + 1))" "$1" | gzip -dc ;;
        esac >"$2" 2>/dev/null
        if readelf -n "$2" 2>/dev/null | grep -q 'Unknown note type: (0x00000012)'; then return 0; fi
    done
    return 1
}

fetch_kernel() { # image package -> fills $KDIR
    local pkg=$1 tmp deps d f
    tmp=$(mktemp -d "$CACHE/.fetch.XXXXXX")
    deps=$(papt apt-cache depends "$pkg" | sed -n 's/^ *Depends: \(linux-\(binary\|modules\)-[^ <>]*\)$/\1/p')
    log "downloading $pkg $deps"
    # shellcheck disable=SC2086
    (cd "$tmp" && papt apt-get download -qq "$pkg" $deps >&2) || die "apt-get download $pkg failed"
    mkdir "$tmp/x"
    for d in "$tmp"/*.deb; do
        dpkg-deb --fsys-tarfile "$d" | tar x -C "$tmp/x" --wildcards '*vmlinuz*' '*/modules/*/kernel/*' 2>/dev/null || true
    done
    local vmlinuz
    vmlinuz=$(find "$tmp/x" -type f \( -name 'vmlinuz-*' -o -name vmlinuz \) | head -1)
    [ -n "$vmlinuz" ] || die "no vmlinuz in $pkg"
    mkdir -p "$tmp/k/modules"
    cp "$vmlinuz" "$tmp/k/vmlinuz"
    # index of module name -> file
    find "$tmp/x" -name '*.ko*' | awk '{ n=$0; sub(/.*\//, "", n); sub(/\.ko.*/, "", n); gsub(/-/, "_", n); print n, $0 }' \
        >"$tmp/index"
    : >"$tmp/k/modules.load"
    local seen=" "
    add_module() { # depth-first, dependencies first
        local name=${1//-/_} file dep
        case $seen in *" $name "*) return ;; esac
        seen="$seen$name "
        file=$(awk -v n="$name" '$1 == n { print $2; exit }' "$tmp/index")
        [ -n "$file" ] || return 0 # built in
        for dep in $(module_deps "$file"); do add_module "$dep"; done
        case $file in
            *.xz) xz -dc "$file" ;; *.zst) zstd -qdc "$file" ;; *.gz) gzip -dc "$file" ;; *) cat "$file" ;;
        esac >"$tmp/k/modules/$name.ko"
        echo "$name" >>"$tmp/k/modules.load"
    }
    for f in $BASE_MODULES ${BPFTAP_VM_MODULES:-}; do add_module "$f"; done
    # What was asked, built-in ones included: a later run asking for no more fetches nothing.
    echo "$seen" | tr ' ' '\n' | sed '/^$/d' >"$tmp/k/modules.asked"
    basename "$(dirname "$(find "$tmp/x" -path '*/modules/*/kernel' -type d | head -1)")" >"$tmp/k/release"
    echo "$pkg" >"$tmp/k/package"
    rm -rf "$KDIR"
    mv "$tmp/k" "$KDIR"
    rm -rf "$tmp"
}

# --- resolve and fetch the kernel (under the cache lock) -------------------------------------
flock 9
mkdir -p "$CACHE/spec" "$CACHE/kernels"
PKG=
if [ "${BPFTAP_VM_REFRESH:-}" != 1 ] && [ -s "$CACHE/spec/$SPEC" ]; then
    PKG=$(cat "$CACHE/spec/$SPEC")
fi
if [ -z "$PKG" ] || [ ! -s "$CACHE/kernels/$PKG/vmlinuz" ]; then
    T=$(now)
    if [ "${BPFTAP_VM_REFRESH:-}" = 1 ] || [ ! -f "$APTDIR/apt.conf" ] \
        || [ -n "$(find "$APTDIR/apt.conf" -mmin +1440)" ]; then
        apt_setup
    fi
    PKG=$(resolve "$SPEC")
    [ -n "$PKG" ] || die "cannot resolve '$SPEC'"
    echo "$PKG" >"$CACHE/spec/$SPEC"
    log "resolved $SPEC -> $PKG in $(elapsed "$T")s"
fi
KDIR=$CACHE/kernels/$PKG
# Extra modules not asked for when the kernel was fetched mean a refetch.
for m in ${BPFTAP_VM_MODULES:-}; do
    [ -s "$KDIR/vmlinuz" ] && ! grep -qx "${m//-/_}" "$KDIR/modules.asked" 2>/dev/null && rm -f "$KDIR/vmlinuz"
done
if [ ! -s "$KDIR/vmlinuz" ]; then
    [ -f "$APTDIR/apt.conf" ] || apt_setup
    T=$(now)
    fetch_kernel "$PKG"
    log "fetched $PKG in $(elapsed "$T")s (modules: $(tr '\n' ' ' <"$KDIR/modules.load"))"
fi
if [ ! -e "$KDIR/vmlinux" ] && [ ! -e "$KDIR/no-pvh" ]; then
    extract_vmlinux "$KDIR/vmlinuz" "$KDIR/vmlinux.tmp" && mv "$KDIR/vmlinux.tmp" "$KDIR/vmlinux" \
        || { rm -f "$KDIR/vmlinux.tmp"; touch "$KDIR/no-pvh"; }
fi
flock -u 9

# --- the run directory: results share, init, command ----------------------------------------
RUN=$(mktemp -d "${TMPDIR:-/tmp}/bpftap-vm.XXXXXX")
QPID=
cleanup() {
    [ -n "$QPID" ] && kill -9 "$QPID" 2>/dev/null
    if [ "${BPFTAP_VM_KEEP:-}" = 1 ]; then echo "run-in-vm: kept $RUN" >&2; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$RUN/share" "$RUN/initrd/bin" "$RUN/initrd/modules"
SHARE=$(cd "$RUN/share" && pwd -P)

{
    echo '#!/bin/sh'
    env | cut -d= -f1 | grep -E '^(BPFTAP_|RUST_)' | grep -v '^BPFTAP_VM_' | while read -r v; do
        printf 'export %s=%q\n' "$v" "${!v}"
    done
    for v in ${BPFTAP_VM_PASSENV:-}; do
        [ -n "${!v+x}" ] && printf 'export %s=%q\n' "$v" "${!v}"
    done
    printf 'export BPFTAP_VM_KERNEL=%q\n' "$(cat "$KDIR/release")"
    printf 'export BPFTAP_VM_RESULTS=%q\n' "$SHARE"
    printf 'cd %q || exit 125\n' "$(pwd -P)"
    printf 'exec'; printf ' %q' "$@"; echo
} >"$SHARE/cmd.sh"

cp /bin/busybox "$RUN/initrd/bin/busybox"

# A disk for scripts that read a block device or watch writes to one: a sparse 16 MiB
# image whose MBR (written by hand, no sfdisk needed) holds one Linux (0x83) partition from
# sector 2048 to the end, with an empty ext2 filesystem on it.
DISK=()
if [ "${BPFTAP_VM_DISK:-}" = 1 ]; then
    truncate -s 16M "$RUN/disk.img"
    # Partition entry 1 at byte 446: not bootable, CHS unused, type 0x83, LBA 2048, 30720
    # sectors (little-endian); then the 0x55 0xaa signature at byte 510.
    printf '\x00\x00\x00\x00\x83\x00\x00\x00\x00\x08\x00\x00\x00\x78\x00\x00' |
        dd of="$RUN/disk.img" bs=1 seek=446 conv=notrunc status=none
    printf '\x55\xaa' | dd of="$RUN/disk.img" bs=1 seek=510 conv=notrunc status=none
    if command -v mke2fs >/dev/null; then
        mke2fs -q -F -t ext2 -E offset=$((2048 * 512)) "$RUN/disk.img" 15M
    fi
    DISK=(-drive "file=$RUN/disk.img,if=virtio,format=raw")
fi
cp "$KDIR/modules/"*.ko "$RUN/initrd/modules/" 2>/dev/null || true
cp "$KDIR/modules.load" "$RUN/initrd/modules.load"
cat >"$RUN/initrd/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /host /results
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.load); do insmod /modules/$m.ko || echo "init: insmod $m failed"; done
read -r UP _ </proc/uptime
arg() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" /proc/cmdline; }
SHARE=$(arg bpftap.share)
date -s "@$(arg bpftap.time)" >/dev/null 2>&1
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /host || echo "init: mount hostroot failed"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results /results || echo "init: mount results failed"
echo "modules $UP" >/results/times
H=/host
mount -t proc proc $H/proc
mount -t sysfs sys $H/sys
mount -t devtmpfs dev $H/dev
mkdir -p /dev/pts /dev/shm 2>/dev/null
mount -t devpts devpts $H/dev/pts
mount -t tmpfs tmpfs $H/dev/shm
mount -t tracefs tracefs $H/sys/kernel/tracing
mount -t debugfs debugfs $H/sys/kernel/debug
mount -t bpf bpf $H/sys/fs/bpf
mount -t cgroup2 cgroup2 $H/sys/fs/cgroup
for d in tmp run var/tmp root; do mount -t tmpfs tmpfs $H/$d; done
# The caller's working directory, shared on its own: it may be under a directory the guest
# has its own tmpfs on (a clone in /tmp, say), which would hide it.
CWD=$(arg bpftap.cwd)
mkdir -p "$H$CWD"
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose workdir "$H$CWD" || echo "init: mount workdir failed"
for d in $(arg bpftap.tmpfs | tr ',' ' '); do mount -t tmpfs tmpfs "$H$d" || echo "init: tmpfs on $d failed"; done
mkdir -p $H$SHARE
mount --bind /results $H$SHARE
ip link set lo up
hostname bpftap-vm
read -r UP _ </proc/uptime
echo "start $UP" >>/results/times
HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb \
    chroot $H /bin/sh $SHARE/cmd.sh </dev/null >/results/stdout 2>/results/stderr
echo $? >/results/rc.tmp
read -r UP _ </proc/uptime
echo "end $UP" >>/results/times
mv /results/rc.tmp /results/rc
sync
poweroff -f
EOF
chmod +x "$RUN/initrd/init"
(cd "$RUN/initrd" && find . | cpio -o -H newc --quiet) >"$RUN/initrd.cpio"

# --- boot -------------------------------------------------------------------------------------
log "booting $(cat "$KDIR/release") (accel $ACCEL, $SMP cpus, $MEM MiB, timeout ${TIMEOUT}s)"
KIMAGE=$KDIR/vmlinuz
[ -s "$KDIR/vmlinux" ] && [ "${BPFTAP_VM_PVH:-1}" = 1 ] && KIMAGE=$KDIR/vmlinux
# qboot (from qemu-system-data) starts the kernel faster than SeaBIOS.
BIOS=()
[ -f /usr/share/qemu/qboot.rom ] && BIOS=(-bios /usr/share/qemu/qboot.rom)
TB=$(now)
# Under TCG a boot very rarely hangs early (seen once in a few dozen boots: after SMP
# bring-up of a PVH-started 7.x kernel). A watchdog kills a guest that has not reached init's
# first mount within BPFTAP_VM_BOOT_TIMEOUT seconds, and the boot is tried again.
BOOT_TIMEOUT=${BPFTAP_VM_BOOT_TIMEOUT:-90}
boot() {
    timeout -k 5 "$TIMEOUT" qemu-system-x86_64 \
        -machine "${BPFTAP_VM_MACHINE:-q35}" -accel "$ACCEL" -cpu "${BPFTAP_VM_CPU:-max}" -smp "$SMP" -m "$MEM" \
        ${BPFTAP_VM_QEMU_ARGS:-} "${BIOS[@]}" -nodefaults -no-user-config -display none -no-reboot \
        -serial "file:$RUN/console.log" "${DISK[@]}" \
        -kernel "$KIMAGE" -initrd "$RUN/initrd.cpio" \
        -append "console=ttyS0 panic=-1 oops=panic rdinit=/init ${BPFTAP_VM_APPEND:-} bpftap.share=$SHARE bpftap.tmpfs=$(echo ${BPFTAP_VM_TMPFS:-} | tr ' ' ',') bpftap.time=$(date +%s) bpftap.cwd=$(pwd -P)" \
        -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
        -virtfs "local,path=$(pwd -P),mount_tag=workdir,security_model=none,readonly=on,multidevs=remap" \
        -virtfs "local,path=$SHARE,mount_tag=results,security_model=none" \
        </dev/null >"$RUN/qemu.log" 2>&1 &
    QPID=$!
    local waited=0
    while kill -0 "$QPID" 2>/dev/null && [ ! -e "$SHARE/times" ]; do
        if [ "$waited" -ge $((BOOT_TIMEOUT * 10)) ]; then
            echo "run-in-vm: no boot after ${BOOT_TIMEOUT}s, console:" >&2
            tail -n 5 "$RUN/console.log" >&2 2>/dev/null || true
            kill "$QPID" 2>/dev/null
            wait "$QPID" 2>/dev/null
            QPID=
            return 200
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    set +e
    wait "$QPID"
    QRC=$?
    set -e
    QPID=
}
for attempt in 1 2 3; do
    rm -f "$SHARE/times"
    if boot; then break; fi
    [ "$attempt" = 3 ] && { echo "run-in-vm: the guest did not boot in 3 tries" >&2; exit 125; }
    TIMEOUT=$((TIMEOUT - BOOT_TIMEOUT)) # keeps the overall limit
    [ "$TIMEOUT" -gt 0 ] || exit 124
    log "retrying the boot"
done

cat "$SHARE/stdout" 2>/dev/null || true
cat "$SHARE/stderr" >&2 2>/dev/null || true
if [ "${BPFTAP_VM_VERBOSE:-}" = 1 ] && [ -f "$SHARE/times" ]; then
    awk -v q="$(elapsed "$TB")" -v t="$(elapsed "$T0")" '
        { v[$1] = $2 }
        END { printf "run-in-vm: guest ready %.1fs (uptime), command %s, qemu %.1fs, total %.1fs\n",
                     v["start"], ("end" in v) ? sprintf("%.1fs", v["end"] - v["start"]) : "unfinished", q, t }' "$SHARE/times" >&2
fi
show_console() {
    echo "run-in-vm: ---- console log (last 60 lines) ----" >&2
    tail -n 60 "$RUN/console.log" >&2 2>/dev/null || true
    [ -s "$RUN/qemu.log" ] && { echo "run-in-vm: ---- qemu ----" >&2; cat "$RUN/qemu.log" >&2; }
    echo "run-in-vm: ----" >&2
}
if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then
    echo "run-in-vm: timed out after ${TIMEOUT}s" >&2
    show_console
    exit 124
fi
if [ ! -f "$SHARE/rc" ]; then
    echo "run-in-vm: the VM stopped before the command finished (qemu exit $QRC)" >&2
    show_console
    exit 125
fi
RC=$(cat "$SHARE/rc")
[ "$RC" = 0 ] || [ "${BPFTAP_VM_VERBOSE:-}" != 1 ] || show_console
exit "$RC"
