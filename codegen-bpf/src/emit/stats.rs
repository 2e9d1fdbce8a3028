//! Statistics in kernel probes: `<<<` into a per-CPU value (count, sum, min, max, the
//! histogram buckets, the variance's running terms), and `@count`/`@avg`/`@variance`.. read
//! back by folding every CPU's share.

use super::*;

impl Emitter<'_> {
    /// `dst = @count(array[keys])`, `@sum`, `@min` or `@max`: a `bpf_loop` over the CPUs
    /// folds their shares, each read with `bpf_map_lookup_percpu_elem` (Linux 5.19+), into
    /// the spill slot; `@min`/`@max` skip CPUs without samples and keep in the read buffer
    /// whether one had any (`lower` makes an empty statistic an error before asking).
    pub(super) fn stat_get(
        &mut self,
        dst: Var,
        array: lang::ir::ArrayId,
        keys: &[Var],
        op: StatOp,
    ) -> Result<(), EmitError> {
        let (field, fold) = match op {
            StatOp::Count => (layout::stat_field::COUNT, Fold::Sum),
            StatOp::Sum => (layout::stat_field::SUM, Fold::Sum),
            StatOp::Min => (layout::stat_field::MIN, Fold::Min),
            StatOp::Max => (layout::stat_field::MAX, Fold::Max),
            StatOp::Variance => return self.stat_variance(dst, array, keys),
            // `lower` makes `@avg` of `@sum` and `@count` in kernel probes.
            StatOp::Avg => return Err(self.unsupported("`@avg`")),
        };
        if self.key.base != Reg::R10 {
            return Err(self.unsupported("`@count` and friends of a statistic whose key does not fit on the stack"));
        }
        self.build_key(array, keys);
        self.push(insn::st_imm(Size::DW, Reg::R10, SPILL, 0));
        self.push(insn::st_imm(Size::DW, Reg::R10, READ_BUF, 0));
        self.loop_over_cpus(Callback::FoldCpus {
            map: layout::array_map_index(array),
            field: field as i16,
            fold,
            acc: SPILL - self.key.off,
            seen: READ_BUF - self.key.off,
        });
        self.push(insn::ldx(Size::DW, Reg::R0, Reg::R10, SPILL));
        self.store(dst, Reg::R0);
        Ok(())
    }

    /// `dst = @variance(array[keys])`, the CPUs' shares merged as user space merges them
    /// (`runtime::stats::merge` for a scalar, `merge_entry` for an array element: stap
    /// rounds the two differently), so both sides print the same number. The folds work in
    /// [`VARIANCE_WORDS`] words just past the key, which `emit_handler` makes room for.
    pub(super) fn stat_variance(&mut self, dst: Var, array: lang::ir::ArrayId, keys: &[Var]) -> Result<(), EmitError> {
        if self.key.base != Reg::R10 {
            return Err(self.unsupported("`@variance` of a statistic whose key does not fit on the stack"));
        }
        self.build_key(array, keys);
        let decl = &self.program.arrays[array];
        let scalar = decl.keys.is_empty();
        let map = layout::array_map_index(array);
        // Offsets from the key, where the callbacks find them, and from r10.
        let words = (layout::key_layout(decl).1.div_ceil(8) * 8) as i16;
        let word = |i: i16| words + 8 * i;
        let key_off = self.key.off;
        let at = |i: i16| key_off + word(i);
        for i in 0..VARIANCE_WORDS as i16 {
            self.push(insn::st_imm(Size::DW, Reg::R10, at(i), 0));
        }
        if scalar {
            // Pass one: count and sum, and so the mean of all samples; pass two: the
            // spread around it.
            for (i, field) in [(0, layout::stat_field::COUNT), (1, layout::stat_field::SUM)] {
                let fold = Fold::Sum;
                self.loop_over_cpus(Callback::FoldCpus { map, field: field as i16, fold, acc: word(i), seen: word(3) });
            }
            self.push(insn::ldx(Size::DW, Reg::R0, Reg::R10, at(1)));
            self.push(insn::ldx(Size::DW, Reg::R1, Reg::R10, at(0)));
            self.signed_div(false);
            self.push(insn::stx(Size::DW, Reg::R10, Reg::R0, at(2)));
            self.loop_over_cpus(Callback::Variance { map, words, step: VarianceStep::Spread });
            // variance = spread / (count - 1), 0 for a single sample.
            self.push(insn::ldx(Size::DW, Reg::R0, Reg::R10, at(3)));
            self.push(insn::ldx(Size::DW, Reg::R1, Reg::R10, at(0)));
            self.push(insn::alu64_imm(AluOp::Sub, Reg::R1, 1));
            self.signed_div(false);
        } else {
            self.loop_over_cpus(Callback::Variance { map, words, step: VarianceStep::Pairwise });
            self.push(insn::ldx(Size::DW, Reg::R0, Reg::R10, at(3)));
        }
        self.store(dst, Reg::R0);
        Ok(())
    }

    /// `bpf_loop(MAX_CPUS, callback, key)`: the callback, given each CPU number and the key
    /// buffer (built by the caller), folds that CPU's share into the handler's stack.
    pub(super) fn loop_over_cpus(&mut self, callback: Callback) {
        self.push(insn::mov64_imm(Reg::R1, MAX_CPUS));
        self.callback_ptr(Reg::R2, callback);
        self.addr(Reg::R3, self.key);
        self.push(insn::mov64_imm(Reg::R4, 0));
        self.push(insn::call(Helper::Loop));
    }

    /// The start of a callback of [`Emitter::loop_over_cpus`], `(r1 cpu, r2 key)`: r0 = the
    /// CPU's share of `map[key]` and r6 = the key (the callback's own r6, kept across the
    /// lookup), or a return of 1 (stop) past the last CPU.
    pub(super) fn lookup_cpu_share(&mut self, map: usize) {
        let found = self.new_label();
        self.push(insn::mov64_reg(Reg::R6, Reg::R2));
        self.push(insn::mov64_reg(Reg::R3, Reg::R1));
        self.map_ptr(Reg::R1, map);
        self.push(insn::mov64_reg(Reg::R2, Reg::R6));
        self.push(insn::call(Helper::MapLookupPercpuElem));
        self.jump_if_imm(JmpOp::Ne, Reg::R0, 0, found);
        self.push(insn::mov64_imm(Reg::R0, 1));
        self.push(insn::exit());
        self.bind(found);
    }

    /// The body of a [`Callback::FoldCpus`]: returns 0 to go on and 1 to stop.
    pub(super) fn fold_cpus(&mut self, map: usize, field: i16, fold: Fold, acc: i16, seen: i16) {
        let (take, next) = (self.new_label(), self.new_label());
        self.lookup_cpu_share(map);
        let keep_if = match fold {
            Fold::Sum => {
                self.push(insn::ldx(Size::DW, Reg::R1, Reg::R0, field));
                self.push(insn::ldx(Size::DW, Reg::R2, Reg::R6, acc));
                self.push(insn::alu64_reg(AluOp::Add, Reg::R2, Reg::R1));
                self.push(insn::stx(Size::DW, Reg::R6, Reg::R2, acc));
                self.push(insn::mov64_imm(Reg::R0, 0));
                self.push(insn::exit());
                return;
            }
            // The CPU's value is kept unless the one so far is already smaller (larger).
            Fold::Min => JmpOp::Sge,
            Fold::Max => JmpOp::Sle,
        };
        self.push(insn::ldx(Size::DW, Reg::R1, Reg::R0, layout::stat_field::COUNT as i16));
        self.jump_if_imm(JmpOp::Eq, Reg::R1, 0, next);
        self.push(insn::ldx(Size::DW, Reg::R1, Reg::R0, field));
        self.push(insn::ldx(Size::DW, Reg::R2, Reg::R6, seen));
        self.jump_if_imm(JmpOp::Eq, Reg::R2, 0, take);
        self.push(insn::ldx(Size::DW, Reg::R2, Reg::R6, acc));
        self.jump_if_reg(keep_if, Reg::R1, Reg::R2, next);
        self.bind(take);
        self.push(insn::stx(Size::DW, Reg::R6, Reg::R1, acc));
        self.push(insn::st_imm(Size::DW, Reg::R6, seen, 1));
        self.bind(next);
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.push(insn::exit());
    }

    /// The body of a [`Callback::Variance`]: one CPU's share combined into the words at
    /// `words` from the key (see [`VarianceStep`]), skipped when it has no samples. The
    /// arithmetic is `runtime::stats`'s, operation for operation: its integer divisions
    /// round, so any other order could print another number. The divisions use r0..r2; r7
    /// keeps the share, r8 and r9 the terms.
    pub(super) fn variance_step(&mut self, map: usize, words: i16, step: VarianceStep) {
        use layout::stat_field as f;
        let (count, sum, mean, variance) = (words, words + 8, words + 16, words + 24);
        let next = self.new_label();
        self.lookup_cpu_share(map);
        self.push(insn::ldx(Size::DW, Reg::R1, Reg::R0, f::COUNT as i16));
        self.jump_if_imm(JmpOp::Eq, Reg::R1, 0, next);
        match step {
            VarianceStep::Spread => {
                // spread += count * (avg_s - mean)^2 + (count - 1) * variance_s
                self.push(insn::ldx(Size::DW, Reg::R2, Reg::R0, f::AVG_S as i16));
                self.push(insn::ldx(Size::DW, Reg::R3, Reg::R6, mean));
                self.push(insn::alu64_reg(AluOp::Sub, Reg::R2, Reg::R3));
                self.push(insn::alu64_reg(AluOp::Mul, Reg::R2, Reg::R2));
                self.push(insn::alu64_reg(AluOp::Mul, Reg::R2, Reg::R1));
                self.push(insn::alu64_imm(AluOp::Sub, Reg::R1, 1));
                self.push(insn::ldx(Size::DW, Reg::R3, Reg::R0, f::VARIANCE_S as i16));
                self.push(insn::alu64_reg(AluOp::Mul, Reg::R1, Reg::R3));
                self.push(insn::alu64_reg(AluOp::Add, Reg::R2, Reg::R1));
                self.push(insn::ldx(Size::DW, Reg::R3, Reg::R6, variance));
                self.push(insn::alu64_reg(AluOp::Add, Reg::R3, Reg::R2));
                self.push(insn::stx(Size::DW, Reg::R6, Reg::R3, variance));
            }
            VarianceStep::Pairwise => {
                let combine = self.new_label();
                self.push(insn::ldx(Size::DW, Reg::R8, Reg::R6, count));
                self.jump_if_imm(JmpOp::Ne, Reg::R8, 0, combine);
                // The first CPU with samples: its values as they are.
                for (field, word) in [(f::COUNT, count), (f::SUM, sum), (f::AVG_S, mean), (f::VARIANCE_S, variance)] {
                    self.push(insn::ldx(Size::DW, Reg::R2, Reg::R0, field as i16));
                    self.push(insn::stx(Size::DW, Reg::R6, Reg::R2, word));
                }
                self.jump(next);
                // r8 = count1, r9 = avg1 of the CPUs so far; count += count2; sum += sum2;
                // mean = sum / count.
                self.bind(combine);
                self.push(insn::mov64_reg(Reg::R7, Reg::R0));
                self.push(insn::ldx(Size::DW, Reg::R9, Reg::R6, mean));
                self.push(insn::alu64_reg(AluOp::Add, Reg::R1, Reg::R8));
                self.push(insn::stx(Size::DW, Reg::R6, Reg::R1, count));
                self.push(insn::ldx(Size::DW, Reg::R0, Reg::R6, sum));
                self.push(insn::ldx(Size::DW, Reg::R2, Reg::R7, f::SUM as i16));
                self.push(insn::alu64_reg(AluOp::Add, Reg::R0, Reg::R2));
                self.push(insn::stx(Size::DW, Reg::R6, Reg::R0, sum));
                self.signed_div(false);
                self.push(insn::stx(Size::DW, Reg::R6, Reg::R0, mean));
                // r9 = count1 * (avg1 - mean)^2 + (count1 - 1) * variance1
                self.push(insn::alu64_reg(AluOp::Sub, Reg::R9, Reg::R0));
                self.push(insn::alu64_reg(AluOp::Mul, Reg::R9, Reg::R9));
                self.push(insn::alu64_reg(AluOp::Mul, Reg::R9, Reg::R8));
                self.push(insn::alu64_imm(AluOp::Sub, Reg::R8, 1));
                self.push(insn::ldx(Size::DW, Reg::R3, Reg::R6, variance));
                self.push(insn::alu64_reg(AluOp::Mul, Reg::R8, Reg::R3));
                self.push(insn::alu64_reg(AluOp::Add, Reg::R9, Reg::R8));
                // r9 += count2 * (avg2 - mean)^2 + (count2 - 1) * variance2
                self.push(insn::ldx(Size::DW, Reg::R3, Reg::R7, f::AVG_S as i16));
                self.push(insn::alu64_reg(AluOp::Sub, Reg::R3, Reg::R0));
                self.push(insn::alu64_reg(AluOp::Mul, Reg::R3, Reg::R3));
                self.push(insn::ldx(Size::DW, Reg::R4, Reg::R7, f::COUNT as i16));
                self.push(insn::alu64_reg(AluOp::Mul, Reg::R3, Reg::R4));
                self.push(insn::alu64_reg(AluOp::Add, Reg::R9, Reg::R3));
                self.push(insn::alu64_imm(AluOp::Sub, Reg::R4, 1));
                self.push(insn::ldx(Size::DW, Reg::R3, Reg::R7, f::VARIANCE_S as i16));
                self.push(insn::alu64_reg(AluOp::Mul, Reg::R4, Reg::R3));
                self.push(insn::alu64_reg(AluOp::Add, Reg::R9, Reg::R4));
                // variance = r9 / (count - 1); count >= 2 here.
                self.push(insn::mov64_reg(Reg::R0, Reg::R9));
                self.push(insn::ldx(Size::DW, Reg::R1, Reg::R6, count));
                self.push(insn::alu64_imm(AluOp::Sub, Reg::R1, 1));
                self.signed_div(false);
                self.push(insn::stx(Size::DW, Reg::R6, Reg::R0, variance));
            }
        }
        self.bind(next);
        self.push(insn::mov64_imm(Reg::R0, 0));
        self.push(insn::exit());
    }

    /// `array[keys] <<< value`: SystemTap's per-CPU accumulation (`stats::Stat::add`) on this
    /// CPU's value, then the histogram bucket. `r9` holds the value pointer throughout.
    pub(super) fn stat_add(&mut self, array: lang::ir::ArrayId, keys: &[Var], value: Var) {
        use layout::stat_field as f;
        let hist = self.program.arrays[array].hist;
        self.lookup_or_insert(array, keys, layout::stat_value_size(hist));
        let p = Reg::R9;
        self.push(insn::mov64_reg(p, Reg::R0));
        self.load(Reg::R1, value);
        let (first, buckets) = (self.new_label(), self.new_label());
        self.push(insn::ldx(Size::DW, Reg::R2, p, f::COUNT as i16));
        self.jump_if_imm(JmpOp::Eq, Reg::R2, 0, first);
        // count += 1; sum += v; min/max.
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, 1));
        self.push(insn::stx(Size::DW, p, Reg::R2, f::COUNT as i16));
        self.push(insn::ldx(Size::DW, Reg::R3, p, f::SUM as i16));
        self.push(insn::alu64_reg(AluOp::Add, Reg::R3, Reg::R1));
        self.push(insn::stx(Size::DW, p, Reg::R3, f::SUM as i16));
        self.push(insn::ldx(Size::DW, Reg::R3, p, f::MAX as i16));
        self.push(insn::jmp_reg(JmpOp::Sge, Reg::R3, Reg::R1, 1));
        self.push(insn::stx(Size::DW, p, Reg::R1, f::MAX as i16));
        self.push(insn::ldx(Size::DW, Reg::R3, p, f::MIN as i16));
        self.push(insn::jmp_reg(JmpOp::Sle, Reg::R3, Reg::R1, 1));
        self.push(insn::stx(Size::DW, p, Reg::R1, f::MIN as i16));
        // Welford: delta = v - avg; avg += delta / count; m2 += delta * (v - avg);
        // variance = m2 / (count - 1). The divisions use r0..r2, so v and delta wait on
        // the stack.
        self.push(insn::ldx(Size::DW, Reg::R3, p, f::AVG_S as i16));
        self.push(insn::mov64_reg(Reg::R0, Reg::R1));
        self.push(insn::alu64_reg(AluOp::Sub, Reg::R0, Reg::R3));
        self.push(insn::stx(Size::DW, Reg::R10, Reg::R0, READ_BUF));
        self.push(insn::stx(Size::DW, Reg::R10, Reg::R1, SPILL));
        self.push(insn::mov64_reg(Reg::R1, Reg::R2));
        self.signed_div(false);
        self.push(insn::ldx(Size::DW, Reg::R3, p, f::AVG_S as i16));
        self.push(insn::alu64_reg(AluOp::Add, Reg::R3, Reg::R0));
        self.push(insn::stx(Size::DW, p, Reg::R3, f::AVG_S as i16));
        self.push(insn::ldx(Size::DW, Reg::R1, Reg::R10, SPILL));
        self.push(insn::mov64_reg(Reg::R0, Reg::R1));
        self.push(insn::alu64_reg(AluOp::Sub, Reg::R0, Reg::R3));
        self.push(insn::ldx(Size::DW, Reg::R2, Reg::R10, READ_BUF));
        self.push(insn::alu64_reg(AluOp::Mul, Reg::R0, Reg::R2));
        self.push(insn::ldx(Size::DW, Reg::R3, p, f::M2 as i16));
        self.push(insn::alu64_reg(AluOp::Add, Reg::R0, Reg::R3));
        self.push(insn::stx(Size::DW, p, Reg::R0, f::M2 as i16));
        self.push(insn::ldx(Size::DW, Reg::R1, p, f::COUNT as i16));
        self.push(insn::alu64_imm(AluOp::Sub, Reg::R1, 1));
        self.signed_div(false);
        self.push(insn::stx(Size::DW, p, Reg::R0, f::VARIANCE_S as i16));
        self.push(insn::ldx(Size::DW, Reg::R1, Reg::R10, SPILL));
        self.jump(buckets);
        // First sample.
        self.bind(first);
        self.push(insn::st_imm(Size::DW, p, f::COUNT as i16, 1));
        for field in [f::SUM, f::MIN, f::MAX, f::AVG_S] {
            self.push(insn::stx(Size::DW, p, Reg::R1, field as i16));
        }
        self.push(insn::st_imm(Size::DW, p, f::M2 as i16, 0));
        self.bind(buckets);
        // r1 = v: find its bucket in r2.
        match (hist.log, hist.linear) {
            (true, _) => self.log2_bucket(),
            (false, Some((lo, hi, step))) => self.linear_bucket(lo, hi, step),
            (false, None) => return,
        }
        let n = layout::stat_buckets(hist);
        self.push(insn::alu64_imm(AluOp::And, Reg::R2, (n.next_power_of_two() - 1) as i32));
        self.push(insn::jmp_imm(JmpOp::Ge, Reg::R2, n as i32, 5));
        self.push(insn::alu64_imm(AluOp::Lsh, Reg::R2, 3));
        self.push(insn::alu64_reg(AluOp::Add, Reg::R2, p));
        self.push(insn::ldx(Size::DW, Reg::R3, Reg::R2, f::BUCKETS as i16));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R3, 1));
        self.push(insn::stx(Size::DW, Reg::R2, Reg::R3, f::BUCKETS as i16));
    }

    /// `r2` = the `@hist_log` bucket of `r1`: 64 ± the bit length of `|r1|`.
    pub(super) fn log2_bucket(&mut self) {
        self.push(insn::mov64_reg(Reg::R3, Reg::R1));
        self.push(insn::mov64_imm(Reg::R4, 0));
        self.push(insn::jmp_imm(JmpOp::Sge, Reg::R3, 0, 2));
        self.push(insn::neg64(Reg::R3));
        self.push(insn::mov64_imm(Reg::R4, 1));
        // r2 = bit length of r3 (unsigned), by halving.
        self.push(insn::mov64_imm(Reg::R2, 0));
        for shift in [32, 16, 8, 4, 2, 1] {
            self.push(insn::mov64_reg(Reg::R5, Reg::R3));
            self.push(insn::alu64_imm(AluOp::Rsh, Reg::R5, shift));
            self.push(insn::jmp_imm(JmpOp::Eq, Reg::R5, 0, 2));
            self.push(insn::mov64_reg(Reg::R3, Reg::R5));
            self.push(insn::alu64_imm(AluOp::Add, Reg::R2, shift));
        }
        self.push(insn::jmp_imm(JmpOp::Eq, Reg::R3, 0, 1));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, 1));
        // Negative values mirror: 64 - len; others 64 + len.
        self.push(insn::jmp_imm(JmpOp::Eq, Reg::R4, 0, 3));
        self.push(insn::neg64(Reg::R2));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, 64));
        self.push(insn::ja(1));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, 64));
    }

    /// `r2` = the `@hist_linear` bucket of `r1`: 0 below `lo`, then `1 + (v - lo) / step`
    /// up to the overflow bucket.
    pub(super) fn linear_bucket(&mut self, lo: i64, hi: i64, step: i64) {
        let last = ((hi - lo) / step + 2) as i32;
        self.push(insn::mov64_imm(Reg::R2, 0));
        self.load_imm(Reg::R3, lo);
        self.push(insn::jmp_reg(JmpOp::Slt, Reg::R1, Reg::R3, 6));
        self.push(insn::mov64_reg(Reg::R2, Reg::R1));
        self.push(insn::alu64_reg(AluOp::Sub, Reg::R2, Reg::R3));
        self.push(insn::alu64_imm(AluOp::Div, Reg::R2, step as i32));
        self.push(insn::alu64_imm(AluOp::Add, Reg::R2, 1));
        self.push(insn::jmp_imm(JmpOp::Le, Reg::R2, last, 1));
        self.push(insn::mov64_imm(Reg::R2, last));
    }
}

/// How [`Callback::FoldCpus`] combines the CPUs' shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fold {
    Sum,
    Min,
    Max,
}

/// How [`Callback::Variance`] combines one CPU's share of a statistic, as SystemTap does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum VarianceStep {
    /// A scalar global (stap's `_stp_stat_get`, `runtime::stats::merge`): adds the spread
    /// of the CPU's samples around the mean of all (word 2) to word 3.
    Spread,
    /// An array element (stap's `_new_map_copy_stat`, `runtime::stats::merge_entry`): merges
    /// the CPU's count, sum, mean and variance into words 0..4, CPU by CPU.
    Pairwise,
}

/// The words `@variance` folds the CPUs' shares into: count, sum, mean (scaled as `avg_s`)
/// and variance (for a scalar, first the sum that divides into it).
pub(super) const VARIANCE_WORDS: u32 = 4;

/// More CPUs than any kernel has (`NR_CPUS` is at most 8192): the bound of the loop over
/// CPUs, which stops at the first CPU number the kernel does not know.
pub(super) const MAX_CPUS: i32 = 8192;
