//! SystemTap statistics (`s <<< v`, `a[k] <<< v`): accumulation, per-CPU merge, extraction
//! (`@count @sum @min @max @avg @variance`, `@hist_log(s)[i]`), histogram printing, and the
//! lines printed at exit for globals that are written but never read.
//!
//! In: per-CPU [`Stat`]s read from a statistics map (or built by [`Stat::add`] in a
//! user-space handler). Out: a merged [`Stat`] and the exact bytes SystemTap prints.
//!
//! Everything here mirrors SystemTap 4.8's runtime (`runtime/stat-common.c`, `stat.c`,
//! `map.c`) and the code its translator generates; the tests reproduce the sample outputs
//! shipped in `systemtap-doc` byte for byte.
//!
//! # Bucket numbering
//!
//! **IMPORTANT: the BPF emitter must compute exactly these bucket numbers** (it mirrors
//! [`log2_bucket`] and [`linear_bucket`]); the printer trusts the map layout.
//!
//! `@hist_log`: [`LOG2_BUCKETS`] = 128 buckets, bucket [`LOG2_BUCKET0`] = 64 holds 0.
//! - `v > 0`: bucket `64 + (64 - leading_zeros(v))`, i.e. 1 → 65, 2..=3 → 66, 4..=7 → 67, ...,
//!   2^62..=i64::MAX → 127. The row label of bucket `b > 64` is `1 << (b - 65)`.
//! - `v < 0`: mirrored, bucket `128 - (64 - leading_zeros(-v))`: -1 → 63, -2..=-3 → 62,
//!   -4..=-7 → 61, ...; `i64::MIN` → 0. The row label of bucket `b < 64` is
//!   `i64::MIN >> b` (arithmetic shift): 63 → -1, 62 → -2, 61 → -4.
//!
//! `@hist_linear(s, lo, hi, step)`: `(hi - lo) / step + 3` buckets (integer division).
//! - bucket 0: underflow, `v < lo` (row label `<lo`);
//! - bucket `1 + (v - lo) / step` for `lo <= v`, while that is below `n - 1`; its label is
//!   `lo + (b - 1) * step`. Note the last regular bucket, `n - 2`, starts at
//!   `lo + ((hi - lo) / step) * step` and so holds values up to `hi + step - 1` when
//!   `(hi - lo)` is a multiple of `step`: stap counts `v == hi` there, not as overflow;
//! - bucket `n - 1`: overflow, every larger `v` (row label `>` followed by
//!   `lo + (n - 3) * step`, i.e. the start of the last regular bucket, as stap prints it).
//!
//! # Variance
//!
//! SystemTap computes `@variance` with Welford's algorithm in integer arithmetic, per CPU, at
//! each `<<<` ([`Stat::add`] keeps `avg_s`, `m2`, `variance_s`), then combines CPUs with the
//! "total variance" formula. The result depends on that exact order of integer divisions (stap
//! prints 12 for the samples 1..=5, see its man page), so per-CPU state must be Welford's, not a
//! sum of squares. Scalar globals and array elements combine CPUs differently in stap
//! ([`merge`] vs [`merge_entry`]); both are mirrored.
//!
//! Invariant: nothing here touches the kernel; every function is pure.

use std::fmt::Write as _;

/// Buckets of a `@hist_log` histogram.
pub const LOG2_BUCKETS: usize = 128;
/// The `@hist_log` bucket that holds the value 0.
pub const LOG2_BUCKET0: usize = 64;
pub use lang::ir::MAX_LINEAR_BUCKETS;
/// Width of the bars, in `@` (stap's `HIST_WIDTH`).
pub const HIST_WIDTH: i64 = 50;
/// Empty rows kept on each side of data before eliding (stap's `HIST_ELISION`).
pub const HIST_ELISION: i64 = 2;

/// An error of statistic extraction or printing, as stap words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StatError {
    /// `@min`, `@max`, `@avg`, `@variance`, a histogram or a bucket of a statistic without samples.
    #[error("empty aggregate")]
    EmptyAggregate,
    /// `@hist_log(s)[i]` or `@hist_linear(...)[i]` with `i` outside the buckets.
    #[error("histogram index out of range")]
    IndexOutOfRange,
    /// `@hist_linear` parameters that give no bucket or more than stap allows.
    #[error(
        "histogram: Number of buckets must be between 1 and {}",
        MAX_LINEAR_BUCKETS - 2
    )]
    BadLinearRange,
}

/// The parameters of `@hist_linear(s, lo, hi, step)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linear {
    pub lo: i64,
    pub hi: i64,
    pub step: i64,
}

impl Linear {
    /// Checks the parameters as stap does (`_stp_stat_calc_buckets`).
    pub fn new(lo: i64, hi: i64, step: i64) -> Result<Linear, StatError> {
        lang::ir::linear_buckets(lo, hi, step).ok_or(StatError::BadLinearRange)?;
        Ok(Linear { lo, hi, step })
    }

    /// Number of buckets, underflow and overflow included.
    pub fn n_buckets(&self) -> usize {
        ((self.hi - self.lo) / self.step + 3) as usize
    }
}

/// Which histogram a statistic global keeps, and the bit shift of its `@variance(s, shift)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatSpec {
    pub hist: Hist,
    /// 0..=62; scales values inside the variance computation only.
    pub bit_shift: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hist {
    None,
    Log2,
    Linear(Linear),
}

impl StatSpec {
    pub fn n_buckets(&self) -> usize {
        match self.hist {
            Hist::None => 0,
            Hist::Log2 => LOG2_BUCKETS,
            Hist::Linear(linear) => linear.n_buckets(),
        }
    }
}

/// One statistic: per CPU as accumulated, or merged. Field names follow stap's `stat_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub count: i64,
    pub sum: i64,
    /// Meaningful only when `count > 0`.
    pub min: i64,
    pub max: i64,
    /// Running mean, scaled by `1 << bit_shift` (Welford).
    pub avg_s: i64,
    /// Welford's running sum of squared deviations, scaled by `1 << 2 * bit_shift`.
    pub m2: i64,
    /// `m2 / (count - 1)`, scaled; 0 while `count < 2`.
    pub variance_s: i64,
    /// The unscaled variance; set by [`merge`] and [`merge_entry`] only.
    pub variance: i64,
    /// `spec.n_buckets()` counters.
    pub buckets: Vec<i64>,
}

/// The `@hist_log` bucket of `v`. See the module doc for the numbering.
pub fn log2_bucket(v: i64) -> usize {
    if v == 0 {
        return LOG2_BUCKET0;
    }
    // `unsigned_abs` keeps i64::MIN at 2^63, whose 64 significant bits give bucket 128 - 128 = 0.
    let bits = 64 - v.unsigned_abs().leading_zeros() as usize;
    if v > 0 {
        LOG2_BUCKET0 + bits
    } else {
        LOG2_BUCKETS - (LOG2_BUCKET0 + bits).min(LOG2_BUCKETS)
    }
}

/// The row label of `@hist_log` bucket `bucket` (stap's `_stp_bucket_to_val`).
pub fn log2_bucket_value(bucket: usize) -> i64 {
    match bucket {
        LOG2_BUCKET0 => 0,
        b if b < LOG2_BUCKET0 => i64::MIN >> b,
        b => 1i64 << (b - LOG2_BUCKET0 - 1),
    }
}

/// The `@hist_linear(s, lo, hi, step)` bucket of `v`. See the module doc for the numbering.
/// `lo`, `hi`, `step` must satisfy [`Linear::new`].
pub fn linear_bucket(v: i64, lo: i64, hi: i64, step: i64) -> usize {
    let n_buckets = (hi - lo) / step + 3;
    let offset = v.wrapping_sub(lo);
    let bucket = if offset < 0 { 0 } else { offset / step + 1 };
    bucket.min(n_buckets - 1) as usize
}

impl Stat {
    /// An empty statistic shaped for `spec`.
    pub fn new(spec: &StatSpec) -> Stat {
        Stat {
            count: 0,
            sum: 0,
            min: 0,
            max: 0,
            avg_s: 0,
            m2: 0,
            variance_s: 0,
            variance: 0,
            buckets: vec![0; spec.n_buckets()],
        }
    }

    /// `s <<< v`, as stap's `__stp_stat_add` with every statistic enabled. The BPF emitter
    /// mirrors this, divisions included (they truncate toward zero, as C's).
    ///
    /// One deviation: stap keeps Welford's `delta` in a C `int`, truncating it to 32 bits;
    /// here it is 64 bits, so results agree while samples stay within ±2^31 of the mean.
    pub fn add(&mut self, spec: &StatSpec, v: i64) {
        let shift = spec.bit_shift;
        let v_s = v.wrapping_shl(shift);
        if self.count == 0 {
            self.count = 1;
            self.sum = v;
            self.min = v;
            self.max = v;
            self.avg_s = v_s;
            self.m2 = 0;
        } else {
            self.count += 1;
            self.sum = self.sum.wrapping_add(v);
            self.max = self.max.max(v);
            self.min = self.min.min(v);
            let delta = v_s.wrapping_sub(self.avg_s);
            self.avg_s = self.avg_s.wrapping_add(div64(delta, self.count));
            self.m2 = self.m2.wrapping_add(delta.wrapping_mul(v_s.wrapping_sub(self.avg_s)));
            self.variance_s = div64(self.m2, self.count - 1);
        }
        match spec.hist {
            Hist::None => {}
            Hist::Log2 => self.buckets[log2_bucket(v)] += 1,
            Hist::Linear(l) => self.buckets[linear_bucket(v, l.lo, l.hi, l.step)] += 1,
        }
    }

    /// `@count(s)`: 0 for an empty statistic.
    pub fn count(&self) -> i64 {
        self.count
    }

    /// `@sum(s)`: 0 for an empty statistic.
    pub fn sum(&self) -> i64 {
        self.sum
    }

    /// `@min(s)`.
    pub fn min(&self) -> Result<i64, StatError> {
        self.non_empty().map(|s| s.min)
    }

    /// `@max(s)`.
    pub fn max(&self) -> Result<i64, StatError> {
        self.non_empty().map(|s| s.max)
    }

    /// `@avg(s)`: `@sum / @count`, truncated toward zero.
    pub fn avg(&self) -> Result<i64, StatError> {
        self.non_empty().map(|s| div64(s.sum, s.count))
    }

    /// `@variance(s)` of a merged statistic.
    pub fn variance(&self) -> Result<i64, StatError> {
        self.non_empty().map(|s| s.variance)
    }

    /// `@hist_log(s)[i]` / `@hist_linear(s, ...)[i]`.
    pub fn bucket(&self, index: i64) -> Result<i64, StatError> {
        let s = self.non_empty()?;
        usize::try_from(index).ok().and_then(|i| s.buckets.get(i).copied()).ok_or(StatError::IndexOutOfRange)
    }

    fn non_empty(&self) -> Result<&Stat, StatError> {
        if self.count == 0 {
            Err(StatError::EmptyAggregate)
        } else {
            Ok(self)
        }
    }
}

/// Merges the per-CPU values of a scalar statistic global, as stap's `_stp_stat_get`.
/// CPUs whose `count` is 0 contribute nothing.
pub fn merge(spec: &StatSpec, per_cpu: &[Stat]) -> Stat {
    let mut agg = Stat::new(spec);
    for sd in per_cpu.iter().filter(|sd| sd.count != 0) {
        if agg.count == 0 {
            agg.min = sd.min;
            agg.max = sd.max;
        }
        agg.count += sd.count;
        agg.sum = agg.sum.wrapping_add(sd.sum);
        agg.max = agg.max.max(sd.max);
        agg.min = agg.min.min(sd.min);
        add_buckets(&mut agg.buckets, &sd.buckets);
    }
    agg.avg_s = div64(agg.sum.wrapping_shl(spec.bit_shift), agg.count);
    // Total variance: the spread of the CPU means plus the spread within each CPU.
    let (mut s1, mut s2) = (0i64, 0i64);
    for sd in per_cpu.iter().filter(|sd| sd.count != 0) {
        let d = sd.avg_s.wrapping_sub(agg.avg_s);
        s1 = s1.wrapping_add(sd.count.wrapping_mul(d).wrapping_mul(d));
        s2 = s2.wrapping_add((sd.count - 1).wrapping_mul(sd.variance_s));
    }
    agg.variance_s = div64(s1.wrapping_add(s2), agg.count - 1);
    agg.variance = agg.variance_s >> (2 * spec.bit_shift);
    agg
}

/// Merges the per-CPU values of one element of a statistic array, as stap's
/// `_new_map_copy_stat`: CPU by CPU, each step combining two sets. Its rounding differs from
/// [`merge`]'s (stap gives 7, not 12, for the variance of 1..=5 on one CPU in an array).
pub fn merge_entry(spec: &StatSpec, per_cpu: &[Stat]) -> Stat {
    let shift = spec.bit_shift;
    let mut agg = Stat::new(spec);
    for sd in per_cpu.iter().filter(|sd| sd.count != 0) {
        if agg.count == 0 {
            agg = Stat { variance: sd.variance_s >> (2 * shift), ..sd.clone() };
            continue;
        }
        let (count1, avg1) = (agg.count, agg.avg_s);
        agg.count += sd.count;
        agg.sum = agg.sum.wrapping_add(sd.sum);
        agg.min = agg.min.min(sd.min);
        agg.max = agg.max.max(sd.max);
        agg.avg_s = div64(agg.sum.wrapping_shl(shift), agg.count);
        let d1 = avg1.wrapping_sub(agg.avg_s);
        let d2 = sd.avg_s.wrapping_sub(agg.avg_s);
        let s11 = count1.wrapping_mul(d1).wrapping_mul(d1);
        let s12 = (count1 - 1).wrapping_mul(agg.variance_s);
        let s21 = sd.count.wrapping_mul(d2).wrapping_mul(d2);
        let s22 = (sd.count - 1).wrapping_mul(sd.variance_s);
        let total = s11.wrapping_add(s12).wrapping_add(s21).wrapping_add(s22);
        agg.variance_s = div64(total, agg.count - 1);
        agg.variance = agg.variance_s >> (2 * shift);
        add_buckets(&mut agg.buckets, &sd.buckets);
    }
    agg
}

fn add_buckets(into: &mut [i64], from: &[i64]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a = a.wrapping_add(*b);
    }
}

/// stap's `_stp_div64` without the error: C division, 0 when dividing by 0.
fn div64(x: i64, y: i64) -> i64 {
    match y {
        0 => 0,
        -1 => x.wrapping_neg(),
        _ => x / y,
    }
}

/// `print(@hist_log(s))`: the bar chart, its trailing empty line included.
pub fn print_hist_log(stat: &Stat) -> Result<String, StatError> {
    print_histogram(stat, None)
}

/// `print(@hist_linear(s, lo, hi, step))`: the bar chart, its trailing empty line included.
pub fn print_hist_linear(stat: &Stat, linear: &Linear) -> Result<String, StatError> {
    print_histogram(stat, Some(linear))
}

/// stap's `_stp_stat_print_histogram_buf`, statement for statement.
fn print_histogram(stat: &Stat, linear: Option<&Linear>) -> Result<String, StatError> {
    let hist = &stat.non_empty()?.buckets;
    let n_buckets = hist.len() as i64;
    let count = |i: i64| hist[i as usize];

    // The data range, then up to two empty rows on each side of it.
    let mut low_bucket = -1i64;
    let mut high_bucket = 0i64;
    let mut valmax = 0i64;
    for i in 0..n_buckets {
        if count(i) > 0 {
            if low_bucket == -1 {
                low_bucket = i;
            }
            high_bucket = i;
        }
        valmax = valmax.max(count(i));
    }
    if low_bucket == -1 {
        // Samples but no bucket: nothing stap could print sensibly.
        return Err(StatError::EmptyAggregate);
    }
    for _ in 0..2 {
        // A log histogram does not grow below 0 unless there are negative values.
        let floor = if linear.is_none() && low_bucket == LOG2_BUCKET0 as i64 { low_bucket } else { 0 };
        if low_bucket > floor {
            low_bucket -= 1;
        }
        if high_bucket < n_buckets - 1 {
            high_bucket += 1;
        }
    }
    let (mut under, mut over) = (0, 0);
    if linear.is_some() {
        // Under- and overflow rows only when they hold something.
        if low_bucket == 0 && count(0) == 0 {
            low_bucket += 1;
        }
        if high_bucket == n_buckets - 1 && count(high_bucket) == 0 {
            high_bucket -= 1;
        }
        under = (low_bucket == 0) as usize;
        over = (high_bucket == n_buckets - 1) as usize;
    }

    let scale = if valmax <= HIST_WIDTH { 1 } else { (valmax + HIST_WIDTH - 1) / HIST_WIDTH };
    let cnt_space = needed_space(valmax);
    let val_space = match linear {
        Some(l) => {
            (needed_space(l.lo) + under).max(needed_space(l.lo.wrapping_add(l.step.wrapping_mul(high_bucket))) + over)
        }
        None => needed_space(log2_bucket_value(high_bucket as usize))
            .max(needed_space(log2_bucket_value(low_bucket as usize))),
    }
    .max("value".len());

    let mut out = String::new();
    let _ = writeln!(out, "{:>val_space$} |{} count", "value", "-".repeat(HIST_WIDTH as usize));
    let mut eliding = false;
    for i in low_bucket..=high_bucket {
        // Skip an empty row whose neighbours within HIST_ELISION are empty too, and mark
        // each run of skipped rows with a `~` on the axis.
        let max_elide = HIST_ELISION.min(n_buckets);
        let lo = low_bucket.max(i - max_elide);
        let hi = high_bucket.min(i + max_elide);
        if (lo..=hi).all(|k| count(k) == 0) {
            eliding = true;
            continue;
        }
        if eliding {
            let _ = writeln!(out, "{:val_space$} ~", "");
            eliding = false;
        }

        let (prefix, val) = match linear {
            Some(l) if i == 0 => ("<", l.lo),
            Some(l) if i == n_buckets - 1 => (">", l.lo.wrapping_add((i - 2) * l.step)),
            Some(l) => ("", l.lo.wrapping_add((i - 1) * l.step)),
            None => ("", log2_bucket_value(i as usize)),
        };
        let prefix_width = val_space.saturating_sub(needed_space(val));
        let bar = (count(i) / scale) as usize;
        let count_width = HIST_WIDTH as usize - bar + 1 + cnt_space;
        let _ = writeln!(out, "{prefix:>prefix_width$}{val} |{}{:>count_width$}", "@".repeat(bar), count(i));
    }
    out.push('\n');
    Ok(out)
}

/// One bucket of a histogram as the closed interval of values it holds, as bpftrace's JSON
/// gives them: `min` is `None` for a `@hist_linear` underflow bucket, `max` for its overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketRange {
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub count: i64,
}

/// The buckets of `stat` that hold samples, lowest values first, for `hist` (the numbering of
/// the module doc). Empty for a statistic without a histogram.
pub fn bucket_ranges(hist: &Hist, stat: &Stat) -> Vec<BucketRange> {
    let n = stat.buckets.len();
    let bounds = |b: usize| match hist {
        Hist::None => (None, None),
        Hist::Log2 => match b {
            LOG2_BUCKET0 => (Some(0), Some(0)),
            0 => (Some(i64::MIN), Some(i64::MIN)),
            // -(2^(64-b) - 1) ..= -2^(63-b); for b = 1 the low end is -i64::MAX.
            b if b < LOG2_BUCKET0 => (Some(-(((1u64 << (64 - b)) - 1) as i64)), Some(i64::MIN >> b)),
            b => {
                let max = if b == LOG2_BUCKETS - 1 { i64::MAX } else { (1i64 << (b - LOG2_BUCKET0)) - 1 };
                (Some(log2_bucket_value(b)), Some(max))
            }
        },
        Hist::Linear(l) => {
            let start = |b: usize| l.lo.saturating_add((b as i64 - 1).saturating_mul(l.step));
            match b {
                0 => (None, Some(l.lo.saturating_sub(1))),
                b if b == n - 1 => (Some(start(b)), None),
                b => (Some(start(b)), Some(start(b + 1).saturating_sub(1))),
            }
        }
    };
    (0..n)
        .filter(|b| stat.buckets[*b] != 0)
        .map(|b| {
            let (min, max) = bounds(b);
            BucketRange { min, max, count: stat.buckets[b] }
        })
        .collect()
}

/// Characters of `v` in decimal (stap's `needed_space`).
fn needed_space(v: i64) -> usize {
    let digits = v.unsigned_abs().checked_ilog10().map_or(1, |d| d as usize + 1);
    digits + (v < 0) as usize
}

/// An index of an array global.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Long(i64),
    Str(String),
}

/// The value of a scalar or array global that is not a statistic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    Long(i64),
    Str(String),
}

// Globals written but never read: stap adds an `end` probe per such global, in declaration
// order, printing the lines below (formats copied from stap 4.8's `-p3` output). It prints an
// array's elements sorted by value, high to low (a statistic array's by `@count`, high to
// low); the order of ties is the hash table's, so unspecified.

/// `x=3` / `s="text"` for an unread scalar global, with its newline.
pub fn format_global_scalar(name: &str, value: &Value) -> String {
    format!("{name}={}\n", ValueText(value))
}

/// `a[1,"k"]=4` / `a["k"]="v"` for one element of an unread array global, with its newline.
pub fn format_array_entry(name: &str, keys: &[Key], value: &Value) -> String {
    format!("{name}[{}]={}\n", KeysText(keys), ValueText(value))
}

/// `s @count=3 @min=1 @max=5 @sum=9 @avg=3` for an unread statistic global, with its newline.
/// An empty one prints `s @count=0x0`, as stap does.
pub fn format_global_stat(name: &str, stat: &Stat) -> String {
    match stat_summary(stat) {
        Ok(summary) => format!("{name}{summary}\n"),
        Err(_) => format!("{name} @count=0x0\n"),
    }
}

/// `a["k"] @count=3 @min=1 @max=5 @sum=9 @avg=3` for one element of an unread statistic array,
/// with its newline. stap has no empty elements; an empty one is its "empty aggregate" error.
pub fn format_array_stat_entry(name: &str, keys: &[Key], stat: &Stat) -> Result<String, StatError> {
    Ok(format!("{name}[{}]{}\n", KeysText(keys), stat_summary(stat)?))
}

fn stat_summary(stat: &Stat) -> Result<String, StatError> {
    Ok(format!(
        " @count={} @min={} @max={} @sum={} @avg={}",
        stat.count(),
        stat.min()?,
        stat.max()?,
        stat.sum(),
        stat.avg()?
    ))
}

struct ValueText<'a>(&'a Value);

impl std::fmt::Display for ValueText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Strings are printed raw between quotes: stap's `%#s` escapes nothing here.
        match self.0 {
            Value::Long(n) => write!(f, "{n}"),
            Value::Str(s) => write!(f, "\"{s}\""),
        }
    }
}

struct KeysText<'a>(&'a [Key]);

impl std::fmt::Display for KeysText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, key) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match key {
                Key::Long(n) => write!(f, "{n}")?,
                Key::Str(s) => write!(f, "\"{s}\"")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
