//! The script's arrays and statistics as user space sees them: typed keys and values over
//! the BPF maps the programs update, in the byte layouts of `codegen_bpf::layout`.
//!
//! Invariant: keys are encoded exactly as the BPF programs build them (strings NUL-padded to
//! the rounded capacity), so both sides address the same elements.

use codegen_bpf::layout::{self, stat_field};
use lang::ir::{ArrayDecl, ArrayId, HistSpec, Program, StatOp, Ty, ValueKind};
use smallvec::SmallVec;

use crate::format::Value;
use crate::stats::{self, Hist, Linear, Stat, StatError, StatSpec};
use crate::sys::RawMap;

/// An element's keys, held inline: a sorted walk of a million elements (`foreach (k in a+)`)
/// visits them out of the order they were read in, and keys on the heap missed the cache at
/// every element (half the interpreter's time at exit).
pub type Keys = SmallVec<[Value; 2]>;

/// An element: its keys and value.
pub type Entry = (Keys, Elem);

/// One element's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Elem {
    Long(i64),
    Str(String),
    Stat(Stat),
}

pub struct Arrays<'p> {
    program: &'p Program,
    maps: Vec<RawMap>,
}

impl<'p> Arrays<'p> {
    /// `maps[i]` is the map of `ArrayId` i.
    pub fn new(program: &'p Program, maps: Vec<RawMap>) -> Arrays<'p> {
        Arrays { program, maps }
    }

    fn decl(&self, a: ArrayId) -> &ArrayDecl {
        &self.program.arrays[a]
    }

    fn map(&self, a: ArrayId) -> &RawMap {
        &self.maps[cranelift_entity::EntityRef::index(a)]
    }

    fn cap(&self) -> usize {
        self.program.string_capacity as usize
    }

    pub fn encode_key(&self, a: ArrayId, keys: &[Value]) -> Vec<u8> {
        let decl = self.decl(a);
        let (offsets, size) = layout::key_layout(decl);
        let mut out = vec![0u8; size as usize];
        for (((k, off), ty), width) in keys.iter().zip(offsets).zip(&decl.keys).zip(&decl.key_widths) {
            let off = off as usize;
            match (ty, k) {
                (Ty::Long, Value::Long(n)) => out[off..off + 8].copy_from_slice(&n.to_le_bytes()),
                (Ty::Str, v) => {
                    let bytes = value_text(v).into_bytes();
                    let n = bytes.len().min(*width as usize - 1);
                    out[off..off + n].copy_from_slice(&bytes[..n]);
                }
                _ => {}
            }
        }
        out
    }

    /// The keys in `bytes`, at `offsets` (the array's `layout::key_layout`).
    fn decode_key(&self, a: ArrayId, offsets: &[u32], bytes: &[u8]) -> Keys {
        let decl = self.decl(a);
        decl.keys
            .iter()
            .zip(offsets.iter().copied())
            .zip(&decl.key_widths)
            .map(|((ty, off), width)| {
                let off = off as usize;
                match ty {
                    Ty::Long => Value::Long(i64::from_le_bytes(bytes[off..off + 8].try_into().unwrap_or([0; 8]))),
                    Ty::Str => Value::Str(c_string(&bytes[off..off + *width as usize])),
                }
            })
            .collect()
    }

    fn decode_value(&self, a: ArrayId, bytes: &[u8]) -> Elem {
        let decl = self.decl(a);
        match decl.value {
            // A per-CPU counter: each CPU's, 8 bytes apart, summed.
            ValueKind::Long if decl.per_cpu => Elem::Long(
                bytes
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                    .fold(0, i64::wrapping_add),
            ),
            ValueKind::Long => Elem::Long(i64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8]))),
            ValueKind::Str => Elem::Str(c_string(&bytes[..self.cap().min(bytes.len())])),
            ValueKind::Stat => {
                let spec = stat_spec(decl.hist);
                let stride = (layout::stat_value_size(decl.hist) as usize).div_ceil(8) * 8;
                let per_cpu: Vec<Stat> = bytes.chunks(stride).map(|b| decode_stat(&spec, b)).collect();
                Elem::Stat(if decl.keys.is_empty() {
                    stats::merge(&spec, &per_cpu)
                } else {
                    stats::merge_entry(&spec, &per_cpu)
                })
            }
        }
    }

    pub fn get(&self, a: ArrayId, keys: &[Value]) -> Option<Elem> {
        let key = self.encode_key(a, keys);
        self.map(a).lookup(&key).map(|v| self.decode_value(a, &v))
    }

    /// The value of `a[keys]`, 0 or "" when absent.
    pub fn get_value(&self, a: ArrayId, keys: &[Value]) -> Value {
        match self.get(a, keys) {
            Some(Elem::Long(n)) => Value::Long(n),
            Some(Elem::Str(s)) => Value::Str(s),
            _ => match self.decl(a).value {
                ValueKind::Str => Value::Str(String::new()),
                _ => Value::Long(0),
            },
        }
    }

    pub fn set(&self, a: ArrayId, keys: &[Value], value: &Value) -> std::io::Result<()> {
        let key = self.encode_key(a, keys);
        let map = self.map(a);
        let mut bytes = vec![0u8; map.value_bytes()];
        match value {
            Value::Long(n) => bytes[..8].copy_from_slice(&n.to_le_bytes()),
            other => {
                let text = value_text(other).into_bytes();
                let n = text.len().min(self.cap() - 1).min(bytes.len());
                bytes[..n].copy_from_slice(&text[..n]);
            }
        }
        map.update(&key, &bytes)
    }

    pub fn delete(&self, a: ArrayId, keys: &[Value]) {
        let key = self.encode_key(a, keys);
        self.map(a).delete(&key);
    }

    /// `delete a[pattern]`: every element whose keys equal the pattern's where it has a
    /// value (`None` is `*`).
    pub fn delete_matching(&self, a: ArrayId, pattern: &[Option<Value>]) {
        let map = self.map(a);
        for k in self.matching(a, pattern) {
            map.delete(&k);
        }
    }

    /// `[pattern] in a` (see `delete_matching`).
    pub fn contains_matching(&self, a: ArrayId, pattern: &[Option<Value>]) -> bool {
        !self.matching(a, pattern).is_empty()
    }

    /// The encoded keys of `a` that match `pattern`, compared byte for byte in the
    /// positions it gives, as the BPF programs compare them.
    fn matching(&self, a: ArrayId, pattern: &[Option<Value>]) -> Vec<Vec<u8>> {
        let decl = self.decl(a);
        let (offsets, _) = layout::key_layout(decl);
        let filled: Vec<Value> = pattern.iter().map(|k| k.clone().unwrap_or(Value::Long(0))).collect();
        let want = self.encode_key(a, &filled);
        let ranges: Vec<std::ops::Range<usize>> = pattern
            .iter()
            .zip(offsets)
            .zip(&decl.key_widths)
            .filter(|((k, _), _)| k.is_some())
            .map(|((_, off), width)| off as usize..(off + width.div_ceil(8) * 8) as usize)
            .collect();
        self.map(a)
            .keys()
            .into_iter()
            .filter(|k| ranges.iter().all(|r| k.get(r.clone()) == want.get(r.clone())))
            .collect()
    }

    pub fn clear(&self, a: ArrayId) {
        let map = self.map(a);
        for k in map.keys() {
            map.delete(&k);
        }
    }

    pub fn contains(&self, a: ArrayId, keys: &[Value]) -> bool {
        self.map(a).lookup(&self.encode_key(a, keys)).is_some()
    }

    /// `a[keys] <<< v` from user space: added to the first CPU's share.
    pub fn stat_add(&self, a: ArrayId, keys: &[Value], v: i64) -> std::io::Result<()> {
        let decl = self.decl(a);
        let spec = stat_spec(decl.hist);
        let key = self.encode_key(a, keys);
        let map = self.map(a);
        let mut bytes = map.lookup(&key).unwrap_or_else(|| vec![0u8; map.value_bytes()]);
        let mut first = decode_stat(&spec, &bytes);
        first.add(&spec, v);
        encode_stat(&first, &mut bytes);
        map.update(&key, &bytes)
    }

    pub fn stat(&self, a: ArrayId, keys: &[Value]) -> Stat {
        match self.get(a, keys) {
            Some(Elem::Stat(s)) => s,
            _ => Stat::new(&stat_spec(self.decl(a).hist)),
        }
    }

    pub fn stat_value(&self, a: ArrayId, keys: &[Value], op: StatOp) -> Result<i64, StatError> {
        let s = self.stat(a, keys);
        stat_op(&s, op)
    }

    /// Every element.
    pub fn entries(&self, a: ArrayId) -> Vec<Entry> {
        let mut entries = Vec::new();
        let (offsets, _) = layout::key_layout(self.decl(a));
        self.map(a).for_each_entry(|k, v| entries.push((self.decode_key(a, &offsets, k), self.decode_value(a, v))));
        entries
    }

    /// `print(@hist_log(a[keys]))` / `@hist_linear`: the statistic, the histogram's shape and
    /// its chart.
    pub fn hist(
        &self,
        a: ArrayId,
        keys: &[Value],
        kind: lang::ir::HistKind,
    ) -> Result<(Stat, Hist, String), StatError> {
        let s = self.stat(a, keys);
        match kind {
            lang::ir::HistKind::Log => stats::print_hist_log(&s).map(|text| (s, Hist::Log2, text)),
            lang::ir::HistKind::Linear { lo, hi, step } => {
                let linear = Linear::new(lo, hi, step)?;
                stats::print_hist_linear(&s, &linear).map(|text| (s, Hist::Linear(linear), text))
            }
        }
    }

    /// The elements of an array nobody read, as SystemTap prints them at exit: by value (or
    /// `@count`), largest first. A scalar statistic is one element without keys, empty or not.
    pub fn exit_entries(&self, a: ArrayId) -> Vec<Entry> {
        let decl = self.decl(a);
        let mut entries = sorted_by_key(self.entries(a), |e| std::cmp::Reverse(sort_value(&e.1, StatOp::Count)));
        if decl.keys.is_empty() && entries.is_empty() {
            entries.push((Keys::new(), Elem::Stat(Stat::new(&stat_spec(decl.hist)))));
        }
        entries
    }

    /// For a statistic array, the histogram it keeps.
    pub fn stat_hist(&self, a: ArrayId) -> Option<Hist> {
        let decl = self.decl(a);
        (decl.value == ValueKind::Stat).then(|| stat_spec(decl.hist).hist)
    }
}

/// `entries` sorted by `key`, stably. Each key is computed once and the (key, index) pairs
/// sorted, then each element moved once to its place: sorting the elements themselves, or
/// `sort_by_cached_key`'s swaps, move them many times, about a hundred bytes each, in no
/// order the cache can follow (most of a million-element sorted print's sorting time).
pub fn sorted_by_key<K: Ord>(entries: Vec<Entry>, key: impl Fn(&Entry) -> K) -> Vec<Entry> {
    let mut order: Vec<(K, usize)> = entries.iter().map(&key).zip(0..).collect();
    order.sort_unstable();
    let mut slots: Vec<Option<Entry>> = entries.into_iter().map(Some).collect();
    order.into_iter().filter_map(|(_, i)| slots[i].take()).collect()
}

/// The lines SystemTap prints at exit for the array `name` nobody read, of the elements
/// [`Arrays::exit_entries`] gives.
pub fn exit_lines(name: &str, entries: &[Entry]) -> String {
    let mut out = String::new();
    for (keys, elem) in entries {
        let keys: Vec<stats::Key> = keys
            .iter()
            .map(|k| match k {
                Value::Long(n) => stats::Key::Long(*n),
                other => stats::Key::Str(value_text(other)),
            })
            .collect();
        match elem {
            Elem::Long(n) => out.push_str(&stats::format_array_entry(name, &keys, &stats::Value::Long(*n))),
            Elem::Str(s) => out.push_str(&stats::format_array_entry(name, &keys, &stats::Value::Str(s.clone()))),
            Elem::Stat(s) if keys.is_empty() => out.push_str(&stats::format_global_stat(name, s)),
            Elem::Stat(s) => {
                if let Ok(line) = stats::format_array_stat_entry(name, &keys, s) {
                    out.push_str(&line);
                }
            }
        }
    }
    out
}

/// The ordering key of an element for sorting by value.
pub fn sort_value(e: &Elem, op: StatOp) -> SortKey {
    match e {
        Elem::Long(n) => SortKey::Long(*n),
        Elem::Str(s) => SortKey::Str(s.clone()),
        Elem::Stat(s) => SortKey::Long(stat_op(s, op).unwrap_or(i64::MIN)),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortKey {
    Long(i64),
    Str(String),
}

pub fn stat_op(s: &Stat, op: StatOp) -> Result<i64, StatError> {
    match op {
        StatOp::Count => Ok(s.count()),
        StatOp::Sum => Ok(s.sum()),
        StatOp::Min => s.min(),
        StatOp::Max => s.max(),
        StatOp::Avg => s.avg(),
        StatOp::Variance => s.variance(),
    }
}

pub fn stat_spec(hist: HistSpec) -> StatSpec {
    let hist = match (hist.log, hist.linear) {
        (true, _) => Hist::Log2,
        (false, Some((lo, hi, step))) => Linear::new(lo, hi, step).map_or(Hist::None, Hist::Linear),
        (false, None) => Hist::None,
    };
    StatSpec { hist, bit_shift: 0 }
}

fn field(bytes: &[u8], off: u32) -> i64 {
    let off = off as usize;
    bytes.get(off..off + 8).map_or(0, |b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}

fn decode_stat(spec: &StatSpec, bytes: &[u8]) -> Stat {
    let mut s = Stat::new(spec);
    s.count = field(bytes, stat_field::COUNT);
    s.sum = field(bytes, stat_field::SUM);
    s.min = field(bytes, stat_field::MIN);
    s.max = field(bytes, stat_field::MAX);
    s.avg_s = field(bytes, stat_field::AVG_S);
    s.m2 = field(bytes, stat_field::M2);
    s.variance_s = field(bytes, stat_field::VARIANCE_S);
    for (i, b) in s.buckets.iter_mut().enumerate() {
        *b = field(bytes, stat_field::BUCKETS + 8 * i as u32);
    }
    s
}

fn encode_stat(s: &Stat, bytes: &mut [u8]) {
    let mut put = |off: u32, v: i64| {
        let off = off as usize;
        if let Some(b) = bytes.get_mut(off..off + 8) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    };
    put(stat_field::COUNT, s.count);
    put(stat_field::SUM, s.sum);
    put(stat_field::MIN, s.min);
    put(stat_field::MAX, s.max);
    put(stat_field::AVG_S, s.avg_s);
    put(stat_field::M2, s.m2);
    put(stat_field::VARIANCE_S, s.variance_s);
    for (i, b) in s.buckets.iter().enumerate() {
        put(stat_field::BUCKETS + 8 * i as u32, *b);
    }
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

pub(crate) fn value_text(v: &Value) -> String {
    match v {
        Value::Long(n) => n.to_string(),
        Value::Str(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_by_key_is_stable() {
        let entry = |k: i64, v: i64| (Keys::from_vec(vec![Value::Long(k)]), Elem::Long(v));
        let entries = vec![entry(1, 30), entry(2, 10), entry(3, 30), entry(4, 20), entry(5, 10)];
        let keys = |entries: &[Entry]| -> Vec<i64> {
            entries.iter().map(|(k, _)| if let Value::Long(n) = k[0] { n } else { 0 }).collect()
        };
        let by_value = |e: &Entry| if let Elem::Long(v) = e.1 { v } else { 0 };
        assert_eq!(keys(&sorted_by_key(entries.clone(), by_value)), [2, 5, 4, 1, 3]);
        assert_eq!(keys(&sorted_by_key(entries, |e| std::cmp::Reverse(by_value(e)))), [1, 3, 4, 2, 5]);
    }
}
