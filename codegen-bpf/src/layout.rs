//! Byte layouts shared by the BPF programs and the runtime: the ring-buffer record of a
//! `printf`, the value of the globals map, and the per-CPU scratch area.
//!
//! IMPORTANT: the emitter writes these layouts and the runtime reads them; both go through
//! the functions here and nothing else computes an offset.

use cranelift_entity::{EntityRef, SecondaryMap};
use lang::ir::{FormatDecl, GlobalId, Program, Ty};

/// Record kinds that are not a format id.
pub mod record_kind {
    /// `exit()` was called in a kernel probe.
    pub const EXIT: u32 = u32::MAX;
}

/// Bytes a value of `ty` takes in records and maps: 8 for a long, the string capacity
/// rounded up to 8 for a string.
pub fn value_size(ty: Ty, string_capacity: u32) -> u32 {
    match ty {
        Ty::Long => 8,
        Ty::Str => string_capacity.div_ceil(8) * 8,
    }
}

/// A printf record: `u32 kind, u32 pad`, then each argument at its offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordLayout {
    pub arg_offsets: Vec<u32>,
    pub size: u32,
}

pub const RECORD_HEADER: u32 = 8;

pub fn record_layout(format: &FormatDecl, string_capacity: u32) -> RecordLayout {
    let mut off = RECORD_HEADER;
    let mut arg_offsets = Vec::new();
    for ty in &format.args {
        arg_offsets.push(off);
        off += value_size(*ty, string_capacity);
    }
    RecordLayout { arg_offsets, size: off }
}

/// The single value of the globals array map. The first slots are set by the runtime.
#[derive(Clone, Debug)]
pub struct GlobalsLayout {
    pub offsets: SecondaryMap<GlobalId, u32>,
    pub size: u32,
}

/// Nanoseconds to add to `ktime_get_boot_ns` to get the wall clock, set by the runtime.
pub const GLOBAL_BOOT_OFFSET: u32 = 0;
/// The pid of `-c`/`-x` (`target()`), set by the runtime.
pub const GLOBAL_TARGET: u32 = 8;
/// Count of output records the ring buffer had no room for, added to by the programs.
pub const GLOBAL_LOST: u32 = 16;
const GLOBALS_RESERVED: u32 = 24;

pub fn globals_layout(program: &Program) -> GlobalsLayout {
    let mut offsets = SecondaryMap::new();
    let mut off = GLOBALS_RESERVED;
    for (g, decl) in program.globals.iter() {
        offsets[g] = off;
        off += value_size(decl.ty, program.string_capacity);
    }
    GlobalsLayout { offsets, size: off }
}

impl GlobalsLayout {
    pub fn offset(&self, g: GlobalId) -> u32 {
        debug_assert!(g.index() < self.offsets.capacity() || self.offsets[g] != 0);
        self.offsets[g]
    }
}
