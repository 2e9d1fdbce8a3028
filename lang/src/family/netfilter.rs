//! `netfilter.hook(...)` and the `netfilter.ip.*` aliases: a BPF netfilter program on a
//! netfilter link (Linux 6.4+). Its context is `struct bpf_nf_ctx { state, skb }`, read as a
//! record; it only observes, so it always accepts the packet.

use super::{Attach, Context, KernelProgram};

/// The section of a netfilter program (libbpf's name). aya 0.14 does not know netfilter
/// programs, so `--emit-elf` objects leave them out: the object stays loadable.
pub const SECTION: &str = "netfilter";

/// `NF_ACCEPT`: what a netfilter program that only observes returns.
const NF_ACCEPT: i32 = 1;

pub(crate) fn program(pf: u32, hook: u32, priority: i32) -> KernelProgram<'static> {
    KernelProgram {
        section: SECTION.into(),
        context: Context::Record,
        returns: NF_ACCEPT,
        attach: Attach::Netfilter { pf, hook, priority },
        fallback: None,
    }
}
