//! `kernel.function("f")` and `kprobe.function("f")`, with `.return`: fentry/fexit where the
//! kernel allows them, and the handler compiled a second time as a kprobe/kretprobe for
//! where it does not (the runtime decides at attach time). A handler that reads arguments
//! at a return has no kretprobe form.

use super::{Attach, Context, Fallback, KernelProgram};

pub(crate) fn program(name: &str, ret: bool, nargs: u32) -> KernelProgram<'_> {
    let (tracing, kprobe) = if ret { ("fexit", "kretprobe") } else { ("fentry", "kprobe") };
    KernelProgram {
        section: format!("{tracing}/{name}"),
        context: Context::Args { nargs },
        returns: 0,
        attach: Attach::Function { name, ret },
        fallback: Some(Fallback { section: format!("{kprobe}/{name}"), context: Context::PtRegs { ret } }),
    }
}
