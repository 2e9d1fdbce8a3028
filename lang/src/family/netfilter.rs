//! `netfilter.hook(...)` and the `netfilter.ip.*` aliases: a BPF netfilter program on a
//! netfilter link (Linux 6.4+). Its context is `struct bpf_nf_ctx { state, skb }`, read as a
//! record; it only observes, so it always accepts the packet.

use super::{Attach, Context, KernelProgram};
use crate::ast::{Literal, ProbePoint};
use crate::diag::Diagnostic;
use crate::elaborate::{point_text, Resolved, Unresolved};
use crate::ir::Target;
use crate::kernel::TracepointFormat;

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

/// Netfilter protocol families (`NFPROTO_*`) by name.
const NF_PROTOCOLS: &[(&str, u32)] =
    &[("NFPROTO_IPV4", 2), ("NFPROTO_IPV6", 10), ("NFPROTO_INET", 1), ("NFPROTO_ARP", 3), ("NFPROTO_BRIDGE", 7)];
/// Netfilter hooks by name; the IPv6 names are the same numbers.
const NF_HOOKS: &[(&str, u32)] = &[
    ("NF_INET_PRE_ROUTING", 0),
    ("NF_INET_LOCAL_IN", 1),
    ("NF_INET_FORWARD", 2),
    ("NF_INET_LOCAL_OUT", 3),
    ("NF_INET_POST_ROUTING", 4),
    ("NF_IP_PRE_ROUTING", 0),
    ("NF_IP_LOCAL_IN", 1),
    ("NF_IP_FORWARD", 2),
    ("NF_IP_LOCAL_OUT", 3),
    ("NF_IP_POST_ROUTING", 4),
    ("NF_IP6_PRE_ROUTING", 0),
    ("NF_IP6_LOCAL_IN", 1),
    ("NF_IP6_FORWARD", 2),
    ("NF_IP6_LOCAL_OUT", 3),
    ("NF_IP6_POST_ROUTING", 4),
    ("NF_BR_PRE_ROUTING", 0),
    ("NF_BR_LOCAL_IN", 1),
    ("NF_BR_FORWARD", 2),
    ("NF_BR_LOCAL_OUT", 3),
    ("NF_BR_POST_ROUTING", 4),
    ("NF_BR_BROUTING", 5),
];
/// Where our programs sit among the hook's functions: before conntrack (-200) and the
/// filter table (0), so they see every packet, as SystemTap's hooks do.
const NF_BPF_PRIORITY: i32 = -1_000_000;

/// `netfilter.hook("NF_INET_LOCAL_OUT").pf("NFPROTO_IPV4")`, in either order.
pub(crate) fn netfilter(point: &ProbePoint) -> Result<Vec<Resolved>, Unresolved> {
    let comps = &point.components;
    let (hook_c, pf_c) = if comps[1].name == "hook" { (&comps[1], &comps[2]) } else { (&comps[2], &comps[1]) };
    let pf = match &pf_c.arg {
        Some(Literal::String(s)) => netfilter_constant(s, NF_PROTOCOLS),
        Some(Literal::Number(n)) => u32::try_from(*n).ok(),
        None => None,
    };
    let hook = match &hook_c.arg {
        Some(Literal::String(s)) => netfilter_constant(s, NF_HOOKS),
        Some(Literal::Number(n)) => u32::try_from(*n).ok(),
        None => None,
    };
    let (Some(pf), Some(hook)) = (pf, hook) else {
        return Err(Unresolved::Failed(
            Diagnostic::error("E0107", "unknown netfilter protocol family or hook", point.span)
                .with_help("use e.g. netfilter.hook(\"NF_INET_LOCAL_OUT\").pf(\"NFPROTO_IPV4\")"),
        ));
    };
    let target = Target::Netfilter { pf, hook, priority: NF_BPF_PRIORITY };
    Ok(vec![Resolved::with_context(target, point_text(point), Some(netfilter_context()))])
}

fn netfilter_constant(name: &str, table: &[(&str, u32)]) -> Option<u32> {
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).or_else(|| name.parse().ok())
}

/// The context of a netfilter program, `struct bpf_nf_ctx`, as `$state` and `$skb`.
fn netfilter_context() -> TracepointFormat {
    let field = |name: &str, c_type: &str, offset| crate::kernel::TracepointField {
        name: name.into(),
        c_type: c_type.into(),
        offset,
        size: 8,
        signed: false,
    };
    TracepointFormat {
        group: "netfilter".into(),
        event: "bpf_nf_ctx".into(),
        common_fields: vec![],
        fields: vec![field("state", "struct nf_hook_state *", 0), field("skb", "struct sk_buff *", 8)],
    }
}
