//! The BTF a program with callbacks must come with: the kernel loads a callback (a BPF
//! function passed to a helper such as `for_each_map_elem`) only when the program's
//! functions are described by `func_info` records, each naming a `BTF_KIND_FUNC`.
//!
//! bpftap's functions need no more than that: every one is `static int f(void)` as far as
//! BTF tells (the verifier checks a static function's arguments itself), so one small
//! fixed blob serves every program.
//!
//! Input: a program's instructions. Output: the blob and the `(insn_off, type_id)` records.

use crate::insn::{pseudo, Insn};

/// Type id of the `FUNC` of a program's main body.
pub const MAIN_FUNC: u32 = 3;
/// Type id of the `FUNC` every callback has.
pub const CALLBACK_FUNC: u32 = 4;

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_INT: u32 = 1;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
/// `BTF_FUNC_STATIC`: the verifier checks the function's arguments at each call.
const LINKAGE_STATIC: u32 = 0;

/// `[1] int`, `[2] int (void)`, `[3] main`, `[4] callback`, with a header, in the host's
/// byte order.
pub fn func_btf() -> Vec<u8> {
    let strings = b"\0int\0main\0callback\0";
    let (int_name, main_name, callback_name) = (1u32, 5u32, 10u32);
    let mut types: Vec<u32> = Vec::new();
    // [1] int: 4 bytes, signed, 32 bits.
    types.extend([int_name, KIND_INT << 24, 4, (1 << 24) | 32]);
    // [2] int (void).
    types.extend([0, KIND_FUNC_PROTO << 24, 1]);
    // [3] and [4]: functions of that prototype.
    types.extend([main_name, (KIND_FUNC << 24) | LINKAGE_STATIC, 2]);
    types.extend([callback_name, (KIND_FUNC << 24) | LINKAGE_STATIC, 2]);
    let type_len = types.len() as u32 * 4;
    let mut out = Vec::new();
    out.extend(BTF_MAGIC.to_ne_bytes());
    out.extend([1u8, 0u8]); // version, flags
    for field in [24u32, 0, type_len, type_len, strings.len() as u32] {
        out.extend(field.to_ne_bytes()); // hdr_len, type_off, type_len, str_off, str_len
    }
    for t in types {
        out.extend(t.to_ne_bytes());
    }
    out.extend(strings);
    out
}

/// The `func_info` records of a program: its main body at 0, then each callback its
/// `ld_imm64` instructions (`pseudo::FUNC`) name. Empty when it has no callback: such a
/// program loads without BTF.
pub fn func_info(insns: &[Insn]) -> Vec<(u32, u32)> {
    let mut starts: Vec<u32> = Vec::new();
    let mut second_half = false;
    for (at, i) in insns.iter().enumerate() {
        if !second_half && i.is_ld_imm64() && i.src == pseudo::FUNC {
            starts.push((at as i64 + 1 + i.imm as i64) as u32);
        }
        second_half = !second_half && i.is_ld_imm64();
    }
    if starts.is_empty() {
        return Vec::new();
    }
    starts.sort_unstable();
    starts.dedup();
    std::iter::once((0, MAIN_FUNC)).chain(starts.into_iter().map(|s| (s, CALLBACK_FUNC))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::{self, Reg};

    #[test]
    fn func_info_names_main_and_each_callback_once() {
        let [lo, hi] = insn::ld_imm64_pseudo(Reg::R2, pseudo::FUNC, 4, 0);
        let [lo2, hi2] = insn::ld_imm64_pseudo(Reg::R2, pseudo::FUNC, 2, 0);
        let exit = insn::exit();
        // 0-1: callback at 5; 2-3: the same callback; 4: exit; 5-6: the callback.
        let insns = [lo, hi, lo2, hi2, exit, exit, exit];
        assert_eq!(func_info(&insns), vec![(0, MAIN_FUNC), (5, CALLBACK_FUNC)]);
        assert_eq!(func_info(&[exit]), vec![]);
    }

    #[test]
    fn blob_header_gives_the_sections_lengths() {
        let blob = func_btf();
        let word = |at: usize| u32::from_ne_bytes(blob[at..at + 4].try_into().unwrap());
        assert_eq!(u16::from_ne_bytes([blob[0], blob[1]]), BTF_MAGIC);
        assert_eq!(24 + word(12) as usize + word(20) as usize, blob.len());
    }
}
