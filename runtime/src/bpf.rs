//! The `bpf(2)` and `perf_event_open(2)` calls the loader makes, with the kernel's uapi
//! numbers and `bpf_attr` / `perf_event_attr` layouts (`include/uapi/linux/bpf.h`,
//! `perf_event.h`). Attributes are built as zeroed byte arrays with fields at their uapi
//! offsets: the kernel checks that bytes past what it knows are zero, so one layout works
//! from old kernels to new ones.
//!
//! bpftap loads its programs itself instead of through aya because aya's loader parses the
//! whole vmlinux BTF on every load (25–30 ms and most of a run's memory; see
//! `bench/ANALYSIS.md`), which bpftap does not need: it emits no CO-RE relocations.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_BTF_GET_FD_BY_ID: libc::c_long = 19;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_BTF_LOAD: libc::c_long = 18;
const BPF_BTF_GET_NEXT_ID: libc::c_long = 23;
const BPF_MAP_FREEZE: libc::c_long = 22;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_ENABLE_STATS: libc::c_long = 32;

/// `BPF_PROG_TYPE_*`.
pub mod prog_type {
    pub const KPROBE: u32 = 2;
    pub const TRACEPOINT: u32 = 5;
    pub const PERF_EVENT: u32 = 7;
    pub const RAW_TRACEPOINT: u32 = 17;
    pub const TRACING: u32 = 26;
    /// Run only on demand (`BPF_PROG_TEST_RUN`), sleepable; Linux 5.14+.
    pub const SYSCALL: u32 = 31;
    /// Linux 6.4+.
    pub const NETFILTER: u32 = 32;
}

/// `BPF_TRACE_RAW_TP` / `BPF_TRACE_FENTRY` / `BPF_TRACE_FEXIT` (`enum bpf_attach_type`).
pub const BPF_TRACE_RAW_TP: u32 = 23;
pub const BPF_TRACE_FENTRY: u32 = 24;
pub const BPF_TRACE_FEXIT: u32 = 25;

/// `BPF_NETFILTER` (`enum bpf_attach_type`, Linux 6.4+).
pub const BPF_NETFILTER: u32 = 45;

/// `BPF_F_SLEEPABLE`: a program that may sleep (what a syscall program must be).
pub const BPF_F_SLEEPABLE: u32 = 1 << 4;

/// `BPF_F_RDONLY_PROG`: the programs may only read the map (what `.rodata` is).
pub const BPF_F_RDONLY_PROG: u32 = 1 << 7;

fn bpf_call(cmd: libc::c_long, attr: &mut [u8]) -> io::Result<i64> {
    // SAFETY: `attr` is a zero-initialised `bpf_attr` of sufficient size whose pointer
    // fields point at buffers that outlive the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

/// A bpf command that returns a new fd.
fn bpf_fd(cmd: libc::c_long, attr: &mut [u8]) -> io::Result<OwnedFd> {
    let fd = bpf_call(cmd, attr)?;
    // SAFETY: the kernel returned a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn put32(attr: &mut [u8], off: usize, v: u32) {
    attr[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(attr: &mut [u8], off: usize, v: u64) {
    attr[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// The kernel keeps 15 bytes of an object name and accepts only `[A-Za-z0-9_.]`.
fn put_name(attr: &mut [u8], off: usize, name: &str) {
    let clean = name.bytes().filter(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.').take(15);
    for (i, b) in clean.enumerate() {
        attr[off + i] = b;
    }
}

/// What a new map looks like.
pub struct MapSpec<'a> {
    pub name: &'a str,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

/// `BPF_MAP_CREATE`. A kernel too old for the object name is retried without it.
pub fn map_create(spec: &MapSpec) -> io::Result<OwnedFd> {
    let create = |named: bool| {
        let mut attr = [0u8; 72];
        put32(&mut attr, 0, spec.map_type);
        put32(&mut attr, 4, spec.key_size);
        put32(&mut attr, 8, spec.value_size);
        put32(&mut attr, 12, spec.max_entries);
        put32(&mut attr, 16, spec.flags);
        if named {
            put_name(&mut attr, 28, spec.name);
        }
        bpf_fd(BPF_MAP_CREATE, &mut attr)
    };
    create(true).or_else(|e| if e.raw_os_error() == Some(libc::EINVAL) { create(false) } else { Err(e) })
}

/// `BPF_MAP_UPDATE_ELEM` of element 0 of an array map, then `BPF_MAP_FREEZE`: how the
/// read-only data is filled.
pub fn fill_and_freeze(map: BorrowedFd<'_>, value: &[u8]) -> io::Result<()> {
    let key = 0u32;
    let mut attr = [0u8; 32];
    put32(&mut attr, 0, map.as_raw_fd() as u32);
    put64(&mut attr, 8, &key as *const u32 as u64);
    put64(&mut attr, 16, value.as_ptr() as u64);
    bpf_call(BPF_MAP_UPDATE_ELEM, &mut attr)?;
    let mut attr = [0u8; 8];
    put32(&mut attr, 0, map.as_raw_fd() as u32);
    bpf_call(BPF_MAP_FREEZE, &mut attr).map(drop)
}

/// What a program is loaded as.
pub struct ProgSpec<'a> {
    pub name: &'a str,
    pub prog_type: u32,
    pub expected_attach_type: u32,
    /// For fentry/fexit: the BTF id of the function, in the kernel's BTF or in the module's
    /// BTF object `attach_btf_obj`.
    pub attach_btf_id: u32,
    pub attach_btf_obj: Option<BorrowedFd<'a>>,
    /// `BPF_F_*` load flags.
    pub flags: u32,
    /// Encoded instructions whose map references are already fds.
    pub insns: &'a [u8],
    /// For a program with callbacks: its BTF and `(insn_off, type_id)` func_info records
    /// (see `codegen_bpf::btf`).
    pub funcs: Option<(BorrowedFd<'a>, &'a [(u32, u32)])>,
}

/// `BPF_BTF_LOAD` of a raw BTF blob.
pub fn btf_load(blob: &[u8]) -> io::Result<OwnedFd> {
    let mut attr = [0u8; 32];
    put64(&mut attr, 0, blob.as_ptr() as u64);
    put32(&mut attr, 16, blob.len() as u32);
    bpf_fd(BPF_BTF_LOAD, &mut attr)
}

/// The kernel's BTF object of loaded module `module` (what fentry to one of its functions
/// attaches through): the kernel's BTF objects are walked by id (`BPF_BTF_GET_NEXT_ID`), and
/// the one that is kernel BTF named `module` is kept.
pub fn module_btf(module: &str) -> io::Result<OwnedFd> {
    let mut id = 0u32;
    loop {
        let mut attr = [0u8; 12];
        put32(&mut attr, 0, id);
        bpf_call(BPF_BTF_GET_NEXT_ID, &mut attr).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => io::Error::new(io::ErrorKind::NotFound, format!("no BTF object of module {module}")),
            _ => e,
        })?;
        id = u32::from_le_bytes(attr[4..8].try_into().unwrap_or([0; 4]));
        let mut attr = [0u8; 12];
        put32(&mut attr, 0, id);
        // An object freed since it was listed: go on to the next.
        let Ok(fd) = bpf_fd(BPF_BTF_GET_FD_BY_ID, &mut attr) else { continue };
        // `struct bpf_btf_info`: btf, btf_size, id, name, name_len, kernel_btf.
        let mut name = [0u8; 64];
        let mut info = [0u8; 32];
        put64(&mut info, 16, name.as_mut_ptr() as u64);
        put32(&mut info, 24, name.len() as u32);
        let mut attr = [0u8; 16];
        put32(&mut attr, 0, fd.as_raw_fd() as u32);
        put32(&mut attr, 4, info.len() as u32);
        put64(&mut attr, 8, info.as_mut_ptr() as u64);
        if bpf_call(BPF_OBJ_GET_INFO_BY_FD, &mut attr).is_err() {
            continue;
        }
        let kernel_btf = u32::from_le_bytes(info[28..32].try_into().unwrap_or([0; 4])) != 0;
        let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
        if kernel_btf && &name[..end] == module.as_bytes() {
            return Ok(fd);
        }
    }
}

/// A program the kernel refused, with the verifier's log.
#[derive(Debug)]
pub struct ProgLoadError {
    pub error: io::Error,
    pub log: String,
}

/// `BPF_PROG_LOAD`. On failure the load is repeated with the verifier's log on, so a
/// success pays for no log buffer.
pub fn prog_load(spec: &ProgSpec) -> Result<OwnedFd, ProgLoadError> {
    let license = b"GPL\0";
    let kern_version = kernel_version_code();
    let load = |log: Option<&mut Vec<u8>>| {
        let mut attr = [0u8; 128];
        put32(&mut attr, 0, spec.prog_type);
        put32(&mut attr, 4, (spec.insns.len() / 8) as u32);
        put64(&mut attr, 8, spec.insns.as_ptr() as u64);
        put64(&mut attr, 16, license.as_ptr() as u64);
        if let Some(buf) = log {
            put32(&mut attr, 24, 1);
            put32(&mut attr, 28, buf.len() as u32);
            put64(&mut attr, 32, buf.as_mut_ptr() as u64);
        }
        // Kprobe programs needed the running kernel's version before Linux 5.0.
        put32(&mut attr, 40, kern_version);
        put32(&mut attr, 44, spec.flags);
        put_name(&mut attr, 48, spec.name);
        put32(&mut attr, 68, spec.expected_attach_type);
        let records: Vec<u8> = spec.funcs.map_or(Vec::new(), |(_, funcs)| {
            funcs.iter().flat_map(|(off, id)| off.to_ne_bytes().into_iter().chain(id.to_ne_bytes())).collect()
        });
        if let Some((btf, funcs)) = spec.funcs {
            put32(&mut attr, 72, btf.as_raw_fd() as u32);
            put32(&mut attr, 76, 8);
            put64(&mut attr, 80, records.as_ptr() as u64);
            put32(&mut attr, 88, funcs.len() as u32);
        }
        put32(&mut attr, 108, spec.attach_btf_id);
        if let Some(obj) = spec.attach_btf_obj {
            put32(&mut attr, 112, obj.as_raw_fd() as u32);
        }
        bpf_fd(BPF_PROG_LOAD, &mut attr)
    };
    match load(None) {
        Ok(fd) => Ok(fd),
        Err(first) => {
            let mut buf = vec![0u8; 1 << 22];
            match load(Some(&mut buf)) {
                Ok(fd) => Ok(fd),
                Err(error) => {
                    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
                    let log = String::from_utf8_lossy(&buf[..end]).into_owned();
                    let error = if log.is_empty() { first } else { error };
                    Err(ProgLoadError { error, log })
                }
            }
        }
    }
}

/// `BPF_PROG_TEST_RUN` of a syscall program on `ctx`, which the kernel writes back.
pub fn prog_run_on_ctx(prog: BorrowedFd<'_>, ctx: &mut [u8]) -> io::Result<()> {
    let mut attr = [0u8; 80];
    put32(&mut attr, 0, prog.as_raw_fd() as u32);
    put32(&mut attr, 40, ctx.len() as u32);
    put64(&mut attr, 48, ctx.as_mut_ptr() as u64);
    bpf_call(BPF_PROG_TEST_RUN, &mut attr).map(drop)
}

/// `BPF_ENABLE_STATS(BPF_STATS_RUN_TIME)` (Linux 5.8+, CAP_SYS_ADMIN): while the fd is open the
/// kernel counts every program's runs and run time. It is the switch the sysctl
/// `kernel.bpf_stats_enabled` flips, but counted per holder: closing the fd, on any exit
/// (a crash included), gives back what was, and another tool's setting is never overwritten.
pub fn enable_run_time_stats() -> io::Result<OwnedFd> {
    // `enable_stats.type`, 0 = BPF_STATS_RUN_TIME.
    let mut attr = [0u8; 4];
    bpf_fd(BPF_ENABLE_STATS, &mut attr)
}

/// What the kernel counted for one program (`struct bpf_prog_info`); all 0 while no one
/// enabled the statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgStats {
    /// Times the program ran.
    pub run_cnt: u64,
    pub run_time_ns: u64,
    /// Runs skipped because the program was already running on that CPU (Linux 5.12+).
    pub recursion_misses: u64,
}

/// `BPF_OBJ_GET_INFO_BY_FD` of a program: its run statistics.
pub fn prog_stats(prog: BorrowedFd<'_>) -> io::Result<ProgStats> {
    // `struct bpf_prog_info` up to `recursion_misses` and the fields after it (232 bytes in
    // Linux 6.x); an older kernel fills less and says so in `info_len`.
    let mut info = [0u8; 232];
    let mut attr = [0u8; 16];
    put32(&mut attr, 0, prog.as_raw_fd() as u32);
    put32(&mut attr, 4, info.len() as u32);
    put64(&mut attr, 8, info.as_mut_ptr() as u64);
    bpf_call(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let field = |off: usize| u64::from_le_bytes(info[off..off + 8].try_into().unwrap_or([0; 8]));
    Ok(ProgStats { run_time_ns: field(192), run_cnt: field(200), recursion_misses: field(208) })
}

/// `KERNEL_VERSION(a, b, c)` of the running kernel.
fn kernel_version_code() -> u32 {
    // SAFETY: `uts` is a valid out-buffer for uname.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut uts) } != 0 {
        return 0;
    }
    let release: String = uts.release.iter().take_while(|c| **c != 0).map(|c| *c as u8 as char).collect();
    let mut parts = release.split(|c: char| !c.is_ascii_digit()).map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b, c) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a << 16) + (b << 8) + c.min(255)
}

/// `BPF_RAW_TRACEPOINT_OPEN`: with no name, attaches an fentry/fexit or tp_btf program to
/// what it was loaded for; with a name, a raw tracepoint program to that tracepoint. The
/// link lives as long as the fd.
pub fn tracing_attach(prog: BorrowedFd<'_>, raw_tracepoint: Option<&CStr>) -> io::Result<OwnedFd> {
    let mut attr = [0u8; 16];
    put64(&mut attr, 0, raw_tracepoint.map_or(0, |name| name.as_ptr() as u64));
    put32(&mut attr, 8, prog.as_raw_fd() as u32);
    bpf_fd(BPF_RAW_TRACEPOINT_OPEN, &mut attr)
}

/// `BPF_LINK_CREATE` of a netfilter program on hook `hooknum` of family `pf`.
pub fn netfilter_link(
    prog: BorrowedFd<'_>,
    attach_type: u32,
    pf: u32,
    hooknum: u32,
    priority: i32,
) -> io::Result<OwnedFd> {
    let mut attr = [0u8; 64];
    put32(&mut attr, 0, prog.as_raw_fd() as u32);
    put32(&mut attr, 8, attach_type);
    put32(&mut attr, 16, pf);
    put32(&mut attr, 20, hooknum);
    put32(&mut attr, 24, priority as u32);
    bpf_fd(BPF_LINK_CREATE, &mut attr)
}

/// `PERF_TYPE_*`.
pub mod perf_type {
    pub const SOFTWARE: u32 = 1;
    pub const TRACEPOINT: u32 = 2;
}

/// A perf event to open.
#[derive(Default)]
pub struct PerfSpec<'a> {
    pub perf_type: u32,
    pub config: u64,
    /// `config1`: for kprobe and uprobe events, the function name or the file's path.
    pub name: Option<&'a CString>,
    /// `config2`: for uprobe events, the offset in the file.
    pub offset: u64,
    /// Sampling: a period, or a frequency in Hz when `freq`.
    pub sample: u64,
    pub freq: bool,
    pub cpu: i32,
}

/// `perf_event_open(2)` for all processes on `spec.cpu`, then `PERF_EVENT_IOC_SET_BPF` and
/// `PERF_EVENT_IOC_ENABLE`: the program runs on every event until the fd is closed. (This
/// works on every kernel with BPF tracing; a bpf perf link adds nothing bpftap uses.)
pub fn perf_attach(spec: &PerfSpec, prog: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    const PERF_ATTR_SIZE: u32 = 112;
    const FLAG_FREQ: u64 = 1 << 10;
    const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
    const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
    const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
    let mut attr = [0u8; PERF_ATTR_SIZE as usize];
    put32(&mut attr, 0, spec.perf_type);
    put32(&mut attr, 4, PERF_ATTR_SIZE);
    put64(&mut attr, 8, spec.config);
    put64(&mut attr, 16, spec.sample.max(1));
    put64(&mut attr, 40, if spec.freq { FLAG_FREQ } else { 0 });
    put32(&mut attr, 48, 1);
    put64(&mut attr, 56, spec.name.map_or(0, |n| n.as_ptr() as u64));
    put64(&mut attr, 64, spec.offset);
    // SAFETY: `attr` is a zeroed perf_event_attr of the size it declares; its name pointer
    // (if any) outlives the call.
    let fd = unsafe {
        libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), -1 as libc::pid_t, spec.cpu, -1, PERF_FLAG_FD_CLOEXEC)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd that we own.
    let event = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: ioctls on the perf fd we own, with an int argument.
    unsafe {
        if libc::ioctl(event.as_raw_fd(), PERF_EVENT_IOC_SET_BPF as _, prog.as_raw_fd()) < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::ioctl(event.as_raw_fd(), PERF_EVENT_IOC_ENABLE as _, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(event)
}
