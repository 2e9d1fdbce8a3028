//! `kernel.function("f")`, `kprobe.function("f")` and `module("m").function("f")` (from
//! the module's BTF, once it is loaded), with `.return`: fentry/fexit where the kernel
//! allows them, and the handler compiled a second time as a kprobe/kretprobe for where it
//! does not (the runtime decides at attach time). A handler that reads arguments at a
//! return has no kretprobe form.

use super::{Attach, Context, Fallback, KernelProgram};
use crate::ast::{Literal, ProbePoint};
use crate::diag::Diagnostic;
use crate::elaborate::{is_pattern, pattern_error, Ctx, Glob, Resolved, Unresolved};
use crate::ir::Target;
use crate::kernel::{FunctionSig, KernelError, TracepointFormat};

pub(crate) fn program<'t>(name: &'t str, module: Option<&'t str>, ret: bool, nargs: u32) -> KernelProgram<'t> {
    let (tracing, kprobe) = if ret { ("fexit", "kretprobe") } else { ("fentry", "kprobe") };
    KernelProgram {
        section: format!("{tracing}/{name}"),
        context: Context::Args { nargs },
        returns: 0,
        attach: Attach::Function { name, module, ret },
        fallback: Some(Fallback { section: format!("{kprobe}/{name}"), context: Context::PtRegs { ret } }),
    }
}

/// The most kernel functions one wildcard may attach to: each is a program and an attachment
/// of its own (bpftrace 0.17 stops at 512 probes by default).
const MAX_FUNCTION_PROBES: usize = 1000;

impl Ctx<'_> {
    /// `kernel.function("f")` or `kprobe.function("f")`, `.call` or `.return`.
    /// (`kprobe.function` is untyped in SystemTap; bpftap types it from BTF all the same.)
    pub(crate) fn function_point(&mut self, family: &str, point: &ProbePoint) -> Result<Vec<Resolved>, Unresolved> {
        let comps = &point.components;
        let Some(Literal::String(pattern)) = &comps[1].arg else {
            return Err(Unresolved::Failed(Diagnostic::error(
                "E0108",
                format!("`{family}.function` needs a function name such as \"vfs_read\""),
                point.span,
            )));
        };
        self.unprobeable_functions(point)?;
        self.kernel_function(None, pattern, comps.last().is_some_and(|c| c.name == "return"), point)
    }

    /// `module("m").function("f")`, `.call` or `.return`.
    pub(crate) fn module_function_point(&mut self, point: &ProbePoint) -> Result<Vec<Resolved>, Unresolved> {
        let comps = &point.components;
        let (Some(Literal::String(module)), Some(Literal::String(pattern))) = (&comps[0].arg, &comps[1].arg) else {
            return Err(Unresolved::Failed(Diagnostic::error(
                "E0108",
                "write a module function probe as module(\"nfsd\").function(\"nfsd_open\")",
                point.span,
            )));
        };
        self.unprobeable_functions(point)?;
        self.kernel_function(Some(module), pattern, comps.last().is_some_and(|c| c.name == "return"), point)
    }

    /// A `kernel.function` point marked `?` or `!` on a kernel that cannot probe functions
    /// (no kprobes, no BPF trampolines): not resolved, so that the next point (a tracepoint,
    /// in tapsets) is taken instead of failing at attach time.
    pub(crate) fn unprobeable_functions(&self, point: &ProbePoint) -> Result<(), Unresolved> {
        if (point.optional || point.sufficient) && !self.kernel.probes_functions() {
            return Err(Unresolved::Failed(Diagnostic::error(
                "E0109",
                "this kernel cannot probe its functions (no kprobes, no fentry)",
                point.span,
            )));
        }
        Ok(())
    }

    /// `kernel.function("pattern")`, or with `module` `module("m").function("pattern")`:
    /// one probe per matching function in the kernel's BTF (the module's). (`name@file:line`
    /// forms need debuginfo, which bpftap does without: refused.)
    pub(crate) fn kernel_function(
        &mut self,
        module: Option<&str>,
        pattern: &str,
        ret: bool,
        point: &ProbePoint,
    ) -> Result<Vec<Resolved>, Unresolved> {
        if let Some(at) = pattern.find(['@', ':']) {
            return Err(Unresolved::Failed(
                Diagnostic::error(
                    "E0113",
                    format!("`{}` needs the kernel's debuginfo (DWARF), which bpftap does without", &pattern[at..]),
                    point.span,
                )
                .with_help(format!("probe the function by its name alone: kernel.function(\"{}\")", &pattern[..at])),
            ));
        }
        let family = match module {
            Some(m) => format!("module({m:?})"),
            None => "kernel".to_string(),
        };
        let failed = |e: KernelError| {
            // Functions get renamed, inlined or dropped between releases: say which kernel
            // this one is missing from.
            let (message, help) = match e {
                KernelError::NoFunction(f) => (
                    format!("Linux {} has no function `{f}` (none in its BTF)", self.kernel.release()),
                    format!("`bpftap -l '{family}.function(\"PATTERN\")'` lists the functions"),
                ),
                KernelError::NoModule(m) => (
                    format!("module `{m}` is not loaded in kernel {}", self.kernel.release()),
                    format!("load it first (`modprobe {m}`)"),
                ),
                e => (e.to_string(), format!("`bpftap -l '{family}.function(\"PATTERN\")'` lists the functions")),
            };
            Unresolved::Failed(Diagnostic::error("E0109", message, point.span).with_help(help))
        };
        let names: Vec<String> = if is_pattern(pattern) {
            let glob = Glob::new(pattern).map_err(|e| Unresolved::Failed(pattern_error(e, point.span)))?;
            let all = match module {
                Some(m) => self.kernel.module_functions(m).map_err(failed)?,
                None => self.kernel.functions(),
            };
            all.into_iter().filter(|n| glob.matches(n)).collect()
        } else {
            vec![pattern.to_string()]
        };
        if names.len() > MAX_FUNCTION_PROBES {
            return Err(Unresolved::Failed(
                Diagnostic::error(
                    "E0112",
                    format!(
                        "\"{pattern}\" matches {} {}; bpftap attaches at most {MAX_FUNCTION_PROBES}",
                        names.len(),
                        match module {
                            Some(m) => format!("functions of module `{m}`"),
                            None => "kernel functions".to_string(),
                        }
                    ),
                    point.span,
                )
                .with_help(format!(
                    "narrow the pattern; `bpftap -l '{family}.function(\"PATTERN\")'` lists the matches"
                )),
            ));
        }
        let mut out = Vec::new();
        for name in names {
            let sig = match module {
                Some(m) => self.kernel.module_function(m, &name),
                None => self.kernel.function(&name),
            };
            match sig {
                Ok(sig) => {
                    let text = format!("{family}.function(\"{name}\"){}", if ret { ".return" } else { ".call" });
                    out.push(Resolved {
                        point: text.clone(),
                        user_point: text,
                        target: Target::KernelFunction {
                            name,
                            module: module.map(String::from),
                            ret,
                            nargs: sig.params.len() as u32,
                        },
                        format: Some(function_context(&sig, ret)),
                        function: Some(sig),
                        prologue: vec![],
                        epilogue: vec![],
                    });
                }
                Err(e) if !is_pattern(pattern) => return Err(failed(e)),
                Err(_) => {}
            }
        }
        if out.is_empty() {
            return Err(Unresolved::Failed(Diagnostic::error(
                "E0109",
                format!("no {family} function matches \"{pattern}\""),
                point.span,
            )));
        }
        Ok(out)
    }
}

/// The target variables of a kernel function probe, as record fields so type checking sees
/// them like a tracepoint's: each parameter (`offset` is its index), and `return` on `.return`.
/// They are all longs; lowering reads them as arguments and takes their C types from BTF.
pub(crate) fn function_context(sig: &FunctionSig, ret: bool) -> TracepointFormat {
    let field = |name: &str, offset| crate::kernel::TracepointField {
        name: name.into(),
        c_type: "long".into(),
        offset,
        size: 8,
        signed: true,
    };
    let mut fields: Vec<_> = sig.params.iter().enumerate().map(|(i, (n, _))| field(n, i as u32)).collect();
    if ret {
        fields.push(field("return", sig.params.len() as u32));
    }
    TracepointFormat { group: "kernel".into(), event: sig.name.clone(), common_fields: vec![], fields }
}
