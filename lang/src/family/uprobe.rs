//! `process("path").function("sym")` and `.return`: a uprobe or uretprobe on the symbol of
//! an executable or library.

use super::{single, Attach, Context, KernelProgram};
use crate::ast::{Literal, ProbePoint};
use crate::diag::Diagnostic;
use crate::elaborate::{Resolved, Unresolved};
use crate::ir::Target;
use crate::kernel::TracepointFormat;

pub(crate) fn program<'t>(path: &'t str, symbol: &'t str, ret: bool) -> KernelProgram<'t> {
    let kind = if ret { "uretprobe" } else { "uprobe" };
    single(format!("{kind}/{symbol}"), Context::PtRegs { ret }, Attach::Uprobe { path, symbol, ret })
}

/// `process("path").function("symbol")`, `.call` or `.return`: a uprobe.
pub(crate) fn process_function(point: &ProbePoint) -> Result<Vec<Resolved>, Unresolved> {
    let comps = &point.components;
    let (Some(Literal::String(path)), Some(Literal::String(symbol))) = (&comps[0].arg, &comps[1].arg) else {
        return Err(Unresolved::Failed(Diagnostic::error(
            "E0110",
            "write a uprobe as process(\"/path/to/program\").function(\"symbol\")",
            point.span,
        )));
    };
    let Some(path) = find_executable(path) else {
        return Err(Unresolved::Failed(Diagnostic::error(
            "E0110",
            format!("no executable `{path}` (give its path, or a name found on PATH)"),
            comps[0].span,
        )));
    };
    let ret = comps.last().is_some_and(|c| c.name == "return");
    let symbol = symbol.split('@').next().unwrap_or(symbol).to_string();
    let text = format!("process(\"{path}\").function(\"{symbol}\"){}", if ret { ".return" } else { ".call" });
    let mut format = TracepointFormat { group: "process".into(), event: symbol.clone(), ..Default::default() };
    if ret {
        format.fields.push(crate::kernel::TracepointField {
            name: "return".into(),
            c_type: "long".into(),
            offset: 0,
            size: 8,
            signed: true,
        });
    }
    Ok(vec![Resolved::with_context(Target::Uprobe { path, symbol, ret }, text, Some(format))])
}

/// An executable named by a uprobe: a path, or a name looked up on PATH, as the shell
/// would. (A fact about the system rather than the kernel; cheap enough to ask directly.)
fn find_executable(name: &str) -> Option<String> {
    if name.contains('/') {
        return std::path::Path::new(name).is_file().then(|| name.to_string());
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| format!("{dir}/{name}"))
        .find(|p| std::path::Path::new(p).is_file())
}
