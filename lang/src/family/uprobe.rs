//! `process("path").function("sym")` and `.return`: a uprobe or uretprobe on the symbol of
//! an executable or library.

use super::{single, Attach, Context, KernelProgram};

pub(crate) fn program<'t>(path: &'t str, symbol: &'t str, ret: bool) -> KernelProgram<'t> {
    let kind = if ret { "uretprobe" } else { "uprobe" };
    single(format!("{kind}/{symbol}"), Context::PtRegs { ret }, Attach::Uprobe { path, symbol, ret })
}
