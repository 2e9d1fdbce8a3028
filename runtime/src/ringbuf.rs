//! The user-space side of a `BPF_MAP_TYPE_RINGBUF` (the kernel's
//! `kernel/bpf/ringbuf.c` and libbpf's `ringbuf.c` define the protocol):
//!
//! - page 0, mapped read-write: the consumer position, which only we advance;
//! - page 1, read-only: the producer position; then the data pages, mapped twice in a row
//!   so that a record that wraps around the end is still contiguous in our memory.
//!
//! Each record starts with an 8-byte header whose first `u32` is the length, with
//! `BUSY` set while the producer still writes it and `DISCARD` set when it gave it up.
//! Positions only grow; `pos & (size - 1)` is the offset in the data.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

const BUSY: u32 = 1 << 31;
const DISCARD: u32 = 1 << 30;
const HEADER: u64 = 8;

pub struct RingBuf {
    fd: OwnedFd,
    consumer: Mapping,
    producer: Mapping,
    mask: u64,
    page: usize,
}

/// One `mmap` of the ring buffer's fd, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize, offset: usize, prot: libc::c_int) -> io::Result<Mapping> {
        // SAFETY: a fresh shared mapping of the ring buffer's fd; the kernel checks the
        // length, offset and protection against what the map allows.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd.as_raw_fd(), offset as _) };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Mapping { ptr, len })
    }

    /// The 8-aligned word at `off`, shared with the kernel.
    fn u64_at(&self, off: usize) -> &AtomicU64 {
        assert!(off + 8 <= self.len && off.is_multiple_of(8));
        // SAFETY: in bounds and aligned (page-aligned base); the kernel updates it atomically.
        unsafe { &*self.ptr.as_ptr().add(off).cast::<AtomicU64>() }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

impl RingBuf {
    /// Maps the ring buffer `fd` whose data area is `size` bytes (its `max_entries`).
    pub fn new(fd: OwnedFd, size: u32) -> io::Result<RingBuf> {
        let page = crate::sys::page_size();
        let size = size as usize;
        let consumer = Mapping::new(fd.as_fd(), page, 0, libc::PROT_READ | libc::PROT_WRITE)?;
        let producer = Mapping::new(fd.as_fd(), page + 2 * size, page, libc::PROT_READ)?;
        Ok(RingBuf { fd, consumer, producer, mask: size as u64 - 1, page })
    }

    /// Hands every committed record to `each`, in order, until none is left, `each`
    /// returns false, or a record is still being written. Returns false when `each` did.
    pub fn drain(&mut self, mut each: impl FnMut(&[u8]) -> bool) -> bool {
        let consumer = self.consumer.u64_at(0);
        let mut pos = consumer.load(Ordering::Acquire);
        loop {
            let end = self.producer.u64_at(0).load(Ordering::Acquire);
            if pos >= end {
                return true;
            }
            let at = self.page + (pos & self.mask) as usize;
            // SAFETY: `at` is inside the first copy of the data, 8-aligned (records are
            // 8-aligned); the kernel publishes the header with a release store.
            let header = unsafe { &*self.producer.ptr.as_ptr().add(at).cast::<AtomicU32>() }.load(Ordering::Acquire);
            if header & BUSY != 0 {
                return true;
            }
            let len = header & !(BUSY | DISCARD);
            let keep_going = if header & DISCARD == 0 {
                // SAFETY: the record lies within the double mapping (len < size), and the
                // kernel does not touch it until we move the consumer position past it.
                let record = unsafe {
                    std::slice::from_raw_parts(self.producer.ptr.as_ptr().add(at + HEADER as usize), len as usize)
                };
                each(record)
            } else {
                true
            };
            pos += (len as u64 + HEADER).div_ceil(8) * 8;
            consumer.store(pos, Ordering::Release);
            if !keep_going {
                return false;
            }
        }
    }
}

impl AsFd for RingBuf {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
