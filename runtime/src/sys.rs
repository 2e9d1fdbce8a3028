//! The runtime's direct access to the system besides loading: memory-mapping the globals
//! map, map elements, signals, clocks, polling, CPUs and the `-c` child.
//!
//! Invariant: every `unsafe` block of the runtime is in this module, [`crate::bpf`],
//! [`crate::ringbuf`] and `kernel_info`'s `statfs`, `mount` and `uname` calls, each with the
//! reason it is sound.

use std::io::{self, IsTerminal};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, Ordering};

/// The value of a one-entry `BPF_F_MMAPABLE` array map, mapped into our memory.
/// Reads and writes here are seen by the BPF programs and the other way round.
pub struct MappedValue {
    ptr: NonNull<u8>,
    len: usize,
    size: usize,
}

impl MappedValue {
    pub fn map(fd: BorrowedFd<'_>, size: usize) -> io::Result<MappedValue> {
        let page = page_size();
        let len = size.max(1).div_ceil(page) * page;
        // SAFETY: a fresh shared mapping of the map's fd; the kernel checks the length
        // against the map, and we keep the pointer only while `self` lives.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(MappedValue { ptr, len, size })
    }

    fn check(&self, off: u32, n: usize) -> usize {
        let off = off as usize;
        assert!(off + n <= self.size, "globals access {off}+{n} past {}", self.size);
        off
    }

    /// An 8-byte long at `off` (8-aligned by the layout), read atomically.
    pub fn load_long(&self, off: u32) -> i64 {
        let off = self.check(off, 8);
        // SAFETY: in bounds (checked) and 8-aligned (the layout puts longs at multiples of
        // 8 from a page-aligned base); BPF programs update it with atomic instructions.
        unsafe { (*self.ptr.as_ptr().add(off).cast::<std::sync::atomic::AtomicI64>()).load(Ordering::Relaxed) }
    }

    pub fn store_long(&self, off: u32, value: i64) {
        let off = self.check(off, 8);
        // SAFETY: as in `load_long`.
        unsafe { (*self.ptr.as_ptr().add(off).cast::<std::sync::atomic::AtomicI64>()).store(value, Ordering::Relaxed) }
    }

    pub fn add_long(&self, off: u32, value: i64) {
        let off = self.check(off, 8);
        // SAFETY: as in `load_long`.
        unsafe {
            (*self.ptr.as_ptr().add(off).cast::<std::sync::atomic::AtomicI64>()).fetch_add(value, Ordering::Relaxed);
        }
    }

    /// A copy of `n` bytes at `off`.
    pub fn read_bytes(&self, off: u32, n: usize) -> Vec<u8> {
        let off = self.check(off, n);
        // SAFETY: in bounds; a racing BPF write can tear the copy, as in SystemTap.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(off), n).to_vec() }
    }

    pub fn write_bytes(&self, off: u32, bytes: &[u8]) {
        let off = self.check(off, bytes.len());
        // SAFETY: in bounds; the mapping is writable.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.as_ptr().add(off), bytes.len()) }
    }
}

impl Drop for MappedValue {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// The last SIGINT or SIGTERM received, 0 for none.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to a flag that the event loop polls.
pub fn catch_stop_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// The stop signal received, if any, now forgotten: an interactive session ends on `quit`,
/// and a Ctrl-C only interrupts the input being handled.
pub fn take_stop_signal() -> Option<i32> {
    match SIGNAL.swap(0, Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

pub fn stop_signal() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Wall-clock nanoseconds.
pub fn realtime_ns() -> i64 {
    clock_ns(libc::CLOCK_REALTIME)
}

/// Monotonic nanoseconds (what `bpf_ktime_get_ns` reads).
pub fn monotonic_ns() -> i64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// What to add to `bpf_ktime_get_boot_ns` to get the wall clock.
pub fn boot_to_realtime_offset() -> i64 {
    realtime_ns() - clock_ns(libc::CLOCK_BOOTTIME)
}

/// The local time zone now (from `TZ` or /etc/localtime, as libc reads them): its offset
/// east of UTC in seconds, and its abbreviation.
pub fn local_time_zone() -> (i64, String) {
    // SAFETY: `time` and `localtime_r` write only into the values given; `tm_zone` then
    // points at a static string of libc's, or is null.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return (0, "UTC".into());
        }
        let name = if tm.tm_zone.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(tm.tm_zone).to_string_lossy().into_owned()
        };
        (tm.tm_gmtoff, name)
    }
}

/// Waits until one of `fds` is readable (or has hung up) or `timeout_ms` passes (a signal
/// interrupts it too); says which are.
pub fn poll_readable(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> Vec<bool> {
    let mut pfds: Vec<libc::pollfd> =
        fds.iter().map(|fd| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    // SAFETY: `pfds` is `pfds.len()` valid pollfds.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
    pfds.iter().map(|p| n > 0 && p.revents != 0).collect()
}

/// A pipe, `(read end, write end)`, both close-on-exec, the read end non-blocking.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two new fds that we now own.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on an fd we own.
    unsafe { libc::fcntl(read.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    Ok((read, write))
}

/// Reads whatever a non-blocking pipe holds, to empty it.
pub fn drain_pipe(fd: BorrowedFd<'_>) {
    let mut buf = [0u8; 256];
    while read_some(fd, &mut buf).is_ok_and(|n| n > 0) {}
}

/// `write(2)` until all of `bytes` is written.
pub fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is valid for `bytes.len()` bytes of reading.
        let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
            continue;
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

/// One `read(2)` into `buf`: what was there, 0 at the end of the input.
pub fn read_some(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes of writing.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Whether a process exists and has not exited (for `-x PID`): a zombie counts as gone.
pub fn process_alive(pid: i32) -> bool {
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        if let Some(state) = stat.rsplit(')').next().and_then(|r| r.split_whitespace().next()) {
            return !matches!(state, "Z" | "X");
        }
    }
    // SAFETY: signal 0 only checks for existence and permission.
    unsafe { libc::kill(pid, 0) == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) }
}

pub fn random_u32() -> u32 {
    let mut buf = [0u8; 4];
    // SAFETY: `buf` is a valid 4-byte out-buffer.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), 4, 0) };
    if n == 4 {
        u32::from_ne_bytes(buf)
    } else {
        monotonic_ns() as u32
    }
}

/// A BPF map reached by its fd with the raw `bpf(2)` map commands; keys and values are
/// byte strings of the map's sizes. Per-CPU maps take and give one value per possible CPU,
/// each rounded up to 8 bytes.
#[derive(Clone)]
pub struct RawMap {
    fd: i32,
    pub key_size: usize,
    pub value_size: usize,
    pub per_cpu: bool,
}

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// Elements one `BPF_MAP_LOOKUP_BATCH` asks for at first.
const BATCH: usize = 4096;

/// The `bpf_attr` layout of the batch commands.
#[repr(C)]
struct MapBatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// The `bpf_attr` layout of the map element commands.
#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value_or_next_key: u64,
    flags: u64,
}

impl RawMap {
    pub fn new(fd: BorrowedFd<'_>, key_size: usize, value_size: usize, per_cpu: bool) -> RawMap {
        RawMap { fd: fd.as_raw_fd(), key_size, value_size, per_cpu }
    }

    /// Bytes of a whole value: one per CPU for per-CPU maps.
    pub fn value_bytes(&self) -> usize {
        if self.per_cpu {
            self.value_size.div_ceil(8) * 8 * possible_cpus()
        } else {
            self.value_size
        }
    }

    fn call(&self, cmd: libc::c_long, key: *const u8, value: *mut u8, flags: u64) -> io::Result<()> {
        let attr =
            MapElemAttr { map_fd: self.fd as u32, _pad: 0, key: key as u64, value_or_next_key: value as u64, flags };
        // SAFETY: `attr` points at buffers of the sizes the map was created with (the callers
        // check lengths), alive for the call.
        let r = unsafe {
            libc::syscall(libc::SYS_bpf, cmd, &attr as *const MapElemAttr, std::mem::size_of::<MapElemAttr>())
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    pub fn lookup(&self, key: &[u8]) -> Option<Vec<u8>> {
        assert_eq!(key.len(), self.key_size);
        let mut value = vec![0u8; self.value_bytes()];
        self.call(BPF_MAP_LOOKUP_ELEM, key.as_ptr(), value.as_mut_ptr(), 0).ok().map(|()| value)
    }

    pub fn update(&self, key: &[u8], value: &[u8]) -> io::Result<()> {
        assert_eq!(key.len(), self.key_size);
        assert_eq!(value.len(), self.value_bytes());
        self.call(BPF_MAP_UPDATE_ELEM, key.as_ptr(), value.as_ptr() as *mut u8, 0)
    }

    pub fn delete(&self, key: &[u8]) {
        assert_eq!(key.len(), self.key_size);
        let _ = self.call(BPF_MAP_DELETE_ELEM, key.as_ptr(), std::ptr::null_mut(), 0);
    }

    /// Calls `f` on every element, key and value, in the map's order: read in batches of
    /// thousands (`BPF_MAP_LOOKUP_BATCH`, Linux 5.6+), where a key at a time costs two system
    /// calls an element, which was most of printing a large array at exit.
    pub fn for_each_entry(&self, mut f: impl FnMut(&[u8], &[u8])) {
        if self.for_each_in_batches(&mut f).is_err() {
            // A kernel or map type without batches.
            for k in self.keys() {
                if let Some(v) = self.lookup(&k) {
                    f(&k, &v);
                }
            }
        }
    }

    /// [`RawMap::for_each_entry`] by batches; an error only where the first batch failed.
    fn for_each_in_batches(&self, f: &mut impl FnMut(&[u8], &[u8])) -> io::Result<()> {
        let value_bytes = self.value_bytes();
        let (mut token_in, mut token_out) = (0u64, 0u64);
        let mut first = true;
        let mut count = BATCH;
        let (mut keys, mut values) = (Vec::new(), Vec::new());
        loop {
            keys.resize(count * self.key_size, 0);
            values.resize(count * value_bytes, 0);
            let mut attr = MapBatchAttr {
                in_batch: if first { 0 } else { &mut token_in as *mut u64 as u64 },
                out_batch: &mut token_out as *mut u64 as u64,
                keys: keys.as_mut_ptr() as u64,
                values: values.as_mut_ptr() as u64,
                count: count as u32,
                map_fd: self.fd as u32,
                elem_flags: 0,
                flags: 0,
            };
            // SAFETY: the buffers hold `count` keys and values of the map's sizes, and the
            // tokens 8 bytes (a hash map's is 4), alive for the call.
            let r = unsafe {
                let attr = &mut attr as *mut MapBatchAttr;
                libc::syscall(libc::SYS_bpf, BPF_MAP_LOOKUP_BATCH, attr, std::mem::size_of::<MapBatchAttr>())
            };
            let error = (r < 0).then(io::Error::last_os_error);
            match error.as_ref().and_then(io::Error::raw_os_error) {
                // One bucket holds more elements than asked for: ask for more.
                Some(libc::ENOSPC) if attr.count == 0 && count < 1 << 24 => {
                    count *= 2;
                    continue;
                }
                // The end of the map.
                Some(libc::ENOENT) | None => {}
                Some(_) if first => return Err(error.expect("an error")),
                Some(_) => return Ok(()),
            }
            let filled = attr.count as usize;
            for (k, v) in keys.chunks(self.key_size).zip(values.chunks(value_bytes)).take(filled) {
                f(k, v);
            }
            if error.is_some() {
                return Ok(());
            }
            token_in = token_out;
            first = false;
        }
    }

    /// Every key, in the map's order.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        let mut next = vec![0u8; self.key_size];
        let mut prev: Option<Vec<u8>> = None;
        loop {
            let key_ptr = prev.as_ref().map_or(std::ptr::null(), |k| k.as_ptr());
            if self.call(BPF_MAP_GET_NEXT_KEY, key_ptr, next.as_mut_ptr(), 0).is_err() {
                return keys;
            }
            keys.push(next.clone());
            prev = Some(next.clone());
            // A map that changes while we walk it could make us loop: bound the walk.
            if keys.len() > (1 << 24) {
                return keys;
            }
        }
    }
}

/// The number of possible CPUs (what per-CPU map values are sized by).
pub fn possible_cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| {
        std::fs::read_to_string("/sys/devices/system/cpu/possible")
            .ok()
            .and_then(|s| parse_cpu_list(s.trim()))
            .unwrap_or(1)
    })
}

/// The CPUs online now (where per-CPU perf events are opened).
pub fn online_cpus() -> io::Result<Vec<i32>> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online")?;
    cpu_list(text.trim()).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("cannot parse `{text}`")))
}

/// `0-3,5` → 0, 1, 2, 3, 5.
fn cpu_list(s: &str) -> Option<Vec<i32>> {
    let mut cpus = Vec::new();
    for part in s.split(',') {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        cpus.extend(first.parse::<i32>().ok()?..=last.parse::<i32>().ok()?);
    }
    Some(cpus)
}

/// `0-3,5` → 6.
fn parse_cpu_list(s: &str) -> Option<usize> {
    cpu_list(s).and_then(|cpus| cpus.last().map(|c| *c as usize + 1))
}

/// Who a `-c` command runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
}

impl Credentials {
    /// The user who ran `sudo bpftap` (`SUDO_UID`, `SUDO_GID`), when bpftap runs as root
    /// through sudo: SystemTap runs `-c` commands as the invoking user too.
    pub fn sudo_invoker() -> Option<Credentials> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let id = |name: &str| std::env::var(name).ok()?.trim().parse::<u32>().ok();
        Some(Credentials { uid: id("SUDO_UID")?, gid: id("SUDO_GID")? })
    }

    /// The user's supplementary groups from the group database (computed before fork:
    /// getgrouplist is not async-signal-safe), or just its primary group.
    fn groups(&self) -> Vec<libc::gid_t> {
        let mut groups = vec![self.gid];
        // SAFETY: passwd is a plain C struct, valid when all zero.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result = std::ptr::null_mut();
        let mut buf = vec![0 as libc::c_char; 16 << 10];
        // SAFETY: every pointer is to memory we own, of the lengths given.
        let found = unsafe { libc::getpwuid_r(self.uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut result) } == 0
            && !result.is_null();
        if found {
            let mut list = vec![0 as libc::gid_t; 256];
            let mut n = list.len() as libc::c_int;
            // SAFETY: pw_name points into `buf`, alive here; `list` holds `n` entries.
            if unsafe { libc::getgrouplist(pw.pw_name, self.gid, list.as_mut_ptr(), &mut n) } >= 0 {
                list.truncate(n as usize);
                groups = list;
            }
        }
        groups
    }
}

/// A `-c` command, forked before `begin` runs and held before `exec` until the probes are
/// attached, as SystemTap does: its pid (`target()`) is known from the start, and none of
/// its work happens before the probes can see it.
pub struct HeldChild {
    pub pid: i32,
    /// Write end of the pipe the child waits on; closing it releases the child.
    release: Option<i32>,
    exited: bool,
}

impl HeldChild {
    /// Forks; the child waits for `release`, then execs `argv` (found on `PATH`), as `user`
    /// when given (with that user's groups), as bpftap's own user otherwise.
    pub fn spawn(argv: &[String], user: Option<Credentials>) -> io::Result<HeldChild> {
        let args: Vec<std::ffi::CString> = argv
            .iter()
            .map(|a| std::ffi::CString::new(a.as_str()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e)))
            .collect::<io::Result<_>>()?;
        let mut ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        let groups = user.map(|u| u.groups());
        let mut fds = [0i32; 2];
        // SAFETY: `fds` is a valid out-array of two ints.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: between fork and exec the child only calls async-signal-safe functions
        // (close, read, signal, execvp, _exit) on memory prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: the child, after fork: async-signal-safe calls only (see above).
            unsafe {
                libc::close(fds[1]);
                let mut byte = 0u8;
                libc::read(fds[0], (&mut byte as *mut u8).cast(), 1);
                // Our SIGINT/SIGTERM handlers must not survive into the command.
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::signal(libc::SIGTERM, libc::SIG_DFL);
                libc::signal(libc::SIGHUP, libc::SIG_DFL);
                if let (Some(u), Some(groups)) = (user, &groups) {
                    // Groups first: setuid takes away the right to change them.
                    if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                        || libc::setgid(u.gid) != 0
                        || libc::setuid(u.uid) != 0
                    {
                        const WHY: &[u8] = b"bpftap: cannot run the -c command as the invoking user\n";
                        libc::write(2, WHY.as_ptr().cast(), WHY.len());
                        libc::_exit(126);
                    }
                }
                libc::execvp(ptrs[0], ptrs.as_ptr());
                libc::_exit(127);
            }
        }
        // SAFETY: closing our copy of the read end.
        unsafe { libc::close(fds[0]) };
        Ok(HeldChild { pid, release: Some(fds[1]), exited: false })
    }

    /// Lets the child exec.
    pub fn release(&mut self) {
        if let Some(fd) = self.release.take() {
            // SAFETY: our own pipe end, closed once.
            unsafe { libc::close(fd) };
        }
    }

    /// Whether it has exited (reaping it).
    pub fn exited(&mut self) -> bool {
        if !self.exited {
            let mut status = 0;
            // SAFETY: waiting for our own child without blocking.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            self.exited = r == self.pid || r < 0;
        }
        self.exited
    }

    pub fn kill(&mut self) {
        if !self.exited() {
            // SAFETY: signalling and reaping our own child.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                let mut status = 0;
                libc::waitpid(self.pid, &mut status, 0);
            }
            self.exited = true;
        }
    }
}

impl Drop for HeldChild {
    fn drop(&mut self) {
        self.release();
    }
}

/// The argv for `-c CMD`: run directly when it is plain words, through `/bin/sh -c` when it
/// uses the shell's syntax (as SystemTap decides with wordexp).
pub fn command_argv(cmd: &str) -> Vec<String> {
    let needs_shell = cmd.chars().any(|c| "|&;<>()$`\\\"'*?[#~=%{}\n".contains(c));
    if needs_shell {
        // The shell keeps `exec CMD`, which makes CMD the process target() names.
        vec!["/bin/sh".into(), "-c".into(), cmd.into()]
    } else {
        // `exec CMD` is what a user writes to make the shell go away: without a shell, it is CMD.
        let cmd = cmd.trim_start().strip_prefix("exec ").unwrap_or(cmd);
        cmd.split_whitespace().map(String::from).collect()
    }
}

/// Capability numbers (linux/capability.h) bpftap asks about.
pub mod cap {
    pub const DAC_READ_SEARCH: u32 = 2;
    pub const NET_ADMIN: u32 = 12;
    pub const SYS_ADMIN: u32 = 21;
    pub const PERFMON: u32 = 38;
    pub const BPF: u32 = 39;
}

fn effective_capabilities() -> u64 {
    std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// The capabilities bpftap lacks to load and attach this script's programs, by name: CAP_BPF
/// and CAP_PERFMON (or CAP_SYS_ADMIN, which older kernels asked for instead), CAP_NET_ADMIN
/// for netfilter hooks, and CAP_DAC_READ_SEARCH to read tracefs when not running as root.
pub fn missing_capabilities(netfilter: bool) -> Vec<&'static str> {
    let caps = effective_capabilities();
    let has = |bit: u32| caps & (1 << bit) != 0;
    let mut missing = Vec::new();
    if !has(cap::SYS_ADMIN) {
        if !has(cap::BPF) {
            missing.push("CAP_BPF");
        }
        if !has(cap::PERFMON) {
            missing.push("CAP_PERFMON");
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 && !has(cap::DAC_READ_SEARCH) {
        missing.push("CAP_DAC_READ_SEARCH");
    }
    if netfilter && !has(cap::NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    missing
}

/// Drops every capability of the calling thread (effective, permitted, inheritable and
/// ambient), for good: once the probes are attached, reading maps through their fds, the
/// mmapped globals and the ring buffer, and detaching by closing fds need none. Threads
/// started later inherit the empty sets; a thread started earlier drops its own.
pub fn drop_capabilities() -> io::Result<()> {
    keep_capabilities(&[])
}

/// What an interactive session keeps to load and attach probes later: CAP_BPF, CAP_PERFMON,
/// CAP_NET_ADMIN (netfilter) and CAP_DAC_READ_SEARCH (tracefs when not root); not
/// CAP_SYS_ADMIN.
pub const PROBE_CAPABILITIES: &[u32] = &[cap::BPF, cap::PERFMON, cap::NET_ADMIN, cap::DAC_READ_SEARCH];

/// Keeps only the capabilities `keep` names (of those the thread has) in its effective and
/// permitted sets, for good; clears the inheritable and ambient sets.
pub fn keep_capabilities(keep: &[u32]) -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mask = keep.iter().fold(0u64, |m, bit| m | 1 << bit) & effective_capabilities();
    let mut header = Header { version: VERSION_3, pid: 0 };
    let half = |shift: u32| {
        let bits = (mask >> shift) as u32;
        Data { effective: bits, permitted: bits, inheritable: 0 }
    };
    let data = [half(0), half(32)];
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes no pointers; capset reads a v3 header and two
    // data structs that live on this stack frame.
    unsafe {
        libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        if libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// This thread's id, the user and group ids, and the CPU it runs on.
pub fn self_ids() -> (i64, i64, i64, i64) {
    // SAFETY: these calls have no preconditions.
    unsafe { (libc::gettid() as i64, libc::getuid() as i64, libc::getgid() as i64, libc::sched_getcpu().max(0) as i64) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_argvs() {
        assert_eq!(command_argv("exec ls -l"), ["ls", "-l"]);
        assert_eq!(command_argv("exec python3 -c 'x'"), ["/bin/sh", "-c", "exec python3 -c 'x'"]);
        assert_eq!(command_argv("ls | wc"), ["/bin/sh", "-c", "ls | wc"]);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_list("0"), Some(vec![0]));
        assert_eq!(cpu_list("0-3,5"), Some(vec![0, 1, 2, 3, 5]));
        assert_eq!(cpu_list("1,4-5"), Some(vec![1, 4, 5]));
        assert_eq!(cpu_list("x"), None);
        assert_eq!(parse_cpu_list("0-3,5"), Some(6));
    }
}

/// The terminal's settings, saved to be put back: an interactive session can end (`exit()`,
/// `-T`, the `-c` command gone) while its prompt holds the terminal in raw mode.
pub struct Terminal(Option<libc::termios>);

impl Terminal {
    pub fn save() -> Terminal {
        let stdin = io::stdin();
        if !stdin.is_terminal() {
            return Terminal(None);
        }
        // SAFETY: `termios` is a valid out-buffer for tcgetattr.
        let mut termios: libc::termios = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut termios) } == 0;
        Terminal(ok.then_some(termios))
    }

    pub fn restore(&self) {
        if let Some(termios) = &self.0 {
            // SAFETY: `termios` was filled by tcgetattr.
            unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, termios) };
        }
    }
}
