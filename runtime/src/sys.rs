//! The runtime's direct kernel access besides aya: memory-mapping the globals map, signals,
//! clocks and polling.
//!
//! Invariant: every `unsafe` block of the runtime is in this module (and `kernel_info`'s
//! mount calls), each with the reason it is sound.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
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

fn page_size() -> usize {
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

/// Waits until `fd` is readable or `timeout_ms` passes (interrupted by a signal too).
pub fn poll_readable(fd: BorrowedFd<'_>, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    n > 0
}

/// Whether a process exists (for `-x PID`).
pub fn process_alive(pid: i32) -> bool {
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
