//! Byte layouts shared by the BPF programs and the runtime: the ring-buffer record of a
//! `printf`, the value of the globals map, and the per-CPU scratch area.
//!
//! IMPORTANT: the emitter writes these layouts and the runtime reads them; both go through
//! the functions here and nothing else computes an offset.

use cranelift_entity::{EntityRef, SecondaryMap};
use lang::ir::{FormatDecl, GlobalDecl, GlobalId, GlobalStorage, Program, Ty};

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

/// The single value of the globals array map. The first slots are set by the runtime; then
/// the globals kernel handlers address (`GlobalStorage::Shared`), the exit flag, and last
/// the globals only user-space handlers touch (`GlobalStorage::UserSpace`), whose strings
/// are wider: no kernel handler's code holds an offset past the exit flag, so user-space
/// globals never move a kernel handler's offsets.
#[derive(Clone, Debug)]
pub struct GlobalsLayout {
    pub offsets: SecondaryMap<GlobalId, u32>,
    /// The exit flag, after the shared globals: 1 once `exit()` was called or the runtime
    /// began to stop. Handlers of a script that calls `exit()` check it first and return at
    /// once when it is set, so no probe body runs after `exit()`, as in SystemTap. (At the
    /// end, not among the reserved slots, so that no other offset moves.) In a session's
    /// unit, the unit's own (see [`planned_globals_layout`]), checked by every handler.
    pub exited: u32,
    pub size: u32,
}

/// Bytes global `decl` takes in the globals map: 8 for a long, its string capacity (see
/// `Program::global_string_capacity`) rounded up to 8 for a string.
pub fn global_size(program: &Program, decl: &GlobalDecl) -> u32 {
    value_size(decl.ty, program.global_string_capacity(decl))
}

/// Nanoseconds to add to `ktime_get_boot_ns` to get the wall clock, set by the runtime.
pub const GLOBAL_BOOT_OFFSET: u32 = 0;
/// The pid of `-c`/`-x` (`target()`), set by the runtime.
pub const GLOBAL_TARGET: u32 = 8;
/// Count of output records the ring buffer had no room for, added to by the programs.
pub const GLOBAL_LOST: u32 = 16;
/// 1 + the id of an array that had no room for a new element, set by the programs; the
/// runtime sees it within one turn of its event loop and ends the script, naming the array.
/// (A slot, not a ring-buffer record: one store on the rare path, where a record took
/// fifteen instructions.)
pub const GLOBAL_ARRAY_FULL: u32 = 24;
/// Bytes of the reserved slots, before the script's globals.
pub const GLOBALS_RESERVED: u32 = 32;

/// Where the globals go when the globals map outlives one compile, as in an interactive
/// session where each input is compiled alone against the globals the session already has.
#[derive(Clone, Debug, Default)]
pub struct GlobalsPlan {
    /// The globals already placed, by name, at these offsets.
    pub placed: std::collections::BTreeMap<String, u32>,
    /// The first free offset after them.
    pub next: u32,
    /// The fixed size of the map; 0 for a script's own map, sized to its globals.
    pub size: u32,
}

impl GlobalsPlan {
    /// A plan for a map of `size` bytes holding no global yet.
    pub fn fixed(size: u32) -> GlobalsPlan {
        GlobalsPlan { placed: Default::default(), next: GLOBALS_RESERVED, size }
    }
}

/// A script's own globals map: the shared globals after the reserved slots, in declaration
/// order, then the exit flag, then the user-space globals; sized to them.
pub fn globals_layout(program: &Program) -> GlobalsLayout {
    let (offsets, exited, end) = place_globals(program, &GlobalsPlan::default());
    GlobalsLayout { offsets, exited, size: end }
}

/// The globals where `plan` placed them, the others after those, with this compile's own
/// exit flag, so that the runtime can stop one unit of a session alone; `None` when the
/// plan's fixed-size map has no room left.
pub fn planned_globals_layout(program: &Program, plan: &GlobalsPlan) -> Option<GlobalsLayout> {
    let (offsets, exited, end) = place_globals(program, plan);
    (end <= plan.size).then(|| GlobalsLayout { offsets, exited, size: plan.size })
}

/// Each global's offset, the exit flag's, and the end of the last slot placed here.
fn place_globals(program: &Program, plan: &GlobalsPlan) -> (SecondaryMap<GlobalId, u32>, u32, u32) {
    let mut offsets = SecondaryMap::new();
    let mut off = plan.next.max(GLOBALS_RESERVED);
    let mut place = |storage: GlobalStorage, off: &mut u32| {
        for (g, decl) in program.globals.iter().filter(|(_, d)| d.storage == storage) {
            offsets[g] = match plan.placed.get(&decl.name) {
                Some(placed) => *placed,
                None => {
                    let at = *off;
                    *off += global_size(program, decl);
                    at
                }
            };
        }
    };
    place(GlobalStorage::Shared, &mut off);
    let exited = off;
    off += 8;
    place(GlobalStorage::UserSpace, &mut off);
    (offsets, exited, off)
}

impl GlobalsLayout {
    pub fn offset(&self, g: GlobalId) -> u32 {
        debug_assert!(g.index() < self.offsets.capacity() || self.offsets[g] != 0);
        self.offsets[g]
    }
}

/// Offsets of the fields of one CPU's statistic value (all `i64`), then the buckets.
///
/// IMPORTANT: the runtime's `stats::Stat` is decoded from these offsets; the emitter's
/// `<<<` code mirrors `stats::Stat::add` (Welford's running variance, as SystemTap).
pub mod stat_field {
    pub const COUNT: u32 = 0;
    pub const SUM: u32 = 8;
    pub const MIN: u32 = 16;
    pub const MAX: u32 = 24;
    pub const AVG_S: u32 = 32;
    pub const M2: u32 = 40;
    pub const VARIANCE_S: u32 = 48;
    pub const BUCKETS: u32 = 56;
}

/// `@hist_log` buckets: 128, bucket 64 holds 0 (see `runtime::stats`).
pub const LOG2_BUCKETS: u32 = 128;

/// Buckets a statistic keeps: 128 for `@hist_log`, `(hi - lo) / step + 3` for `@hist_linear`.
pub fn stat_buckets(hist: lang::ir::HistSpec) -> u32 {
    match (hist.log, hist.linear) {
        (true, _) => LOG2_BUCKETS,
        (false, Some((lo, hi, step))) => lang::ir::linear_buckets(lo, hi, step).unwrap_or(0) as u32,
        (false, None) => 0,
    }
}

/// Bytes of one CPU's value of a statistic.
pub fn stat_value_size(hist: lang::ir::HistSpec) -> u32 {
    stat_field::BUCKETS + 8 * stat_buckets(hist)
}

/// The key of an array: its keys packed in order (longs 8 bytes, strings their width, see
/// `ArrayDecl::key_widths`), as `(offsets, size)`; a scalar statistic has a 4-byte key that
/// is always 0.
pub fn key_layout(decl: &lang::ir::ArrayDecl) -> (Vec<u32>, u32) {
    let mut offsets = Vec::new();
    let mut off = 0;
    for width in &decl.key_widths {
        offsets.push(off);
        off += width.div_ceil(8) * 8;
    }
    (offsets, off.max(4))
}

/// Bytes of an array's value.
pub fn array_value_size(decl: &lang::ir::ArrayDecl, string_capacity: u32) -> u32 {
    match decl.value {
        lang::ir::ValueKind::Long => 8,
        lang::ir::ValueKind::Str => value_size(Ty::Str, string_capacity),
        lang::ir::ValueKind::Stat => stat_value_size(decl.hist),
    }
}

/// The map of array `a` comes after the ring buffer, the globals and the scratch area.
pub fn array_map_index(a: lang::ir::ArrayId) -> usize {
    3 + cranelift_entity::EntityRef::index(a)
}

pub mod record_error {
    /// A kernel handler ran out of loop iterations; the low 24 bits give the handler.
    pub const MAX_ACTION: u32 = 0xfd00_0000;
}

#[cfg(test)]
mod tests {
    use lang::ir::{GlobalDecl, GlobalStorage, Program, Ty};

    use super::*;

    fn global(name: &str, ty: Ty, storage: GlobalStorage) -> GlobalDecl {
        GlobalDecl { name: name.into(), ty, init: None, read: true, storage }
    }

    /// A user-space global declared first moves no shared global, nor the exit flag, and
    /// its string takes SystemTap's width.
    #[test]
    fn user_space_globals_go_after_the_exit_flag_at_their_own_width() {
        let mut program = Program { string_capacity: 128, ..Program::default() };
        let user = program.globals.push(global("cmd", Ty::Str, GlobalStorage::UserSpace));
        let shared = program.globals.push(global("name", Ty::Str, GlobalStorage::Shared));
        let count = program.globals.push(global("n", Ty::Long, GlobalStorage::Shared));
        let layout = globals_layout(&program);
        assert_eq!(layout.offset(shared), GLOBALS_RESERVED);
        assert_eq!(layout.offset(count), GLOBALS_RESERVED + 128);
        assert_eq!(layout.exited, GLOBALS_RESERVED + 136);
        assert_eq!(layout.offset(user), layout.exited + 8);
        assert_eq!(layout.size, layout.exited + 8 + 512);
    }
}
