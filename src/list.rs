//! `bpftap -l PATTERN` and `bpftap -L PATTERN`: the probe points matching a pattern, one a
//! line and sorted, as `stap -l` prints them; with `-L`, each followed by its variables:
//! `name:type` for the variables an alias sets, then `$field:C type` for what the underlying
//! point offers (tracepoint fields, kernel function parameters), as `stap -L` prints them.
//!
//! Input: one probe point, possibly with `*`, `?`, `{a,b}` in a component and `**` across
//! components. The points it is matched against: the aliases of the built-in tapsets (and
//! `-I` directories), the generated `syscall.NAME[.return]` and `nd_syscall.NAME[.return]`
//! (one per `syscalls:sys_enter_NAME` tracepoint), `begin`, `end`, `error`,
//! `kernel.trace("group:event")` for each tracepoint, `kernel.function("f")[.return]`
//! for each function in the kernel's BTF, and `module("m").function("f")[.return]` for each
//! in a loaded module's (named in the pattern). Parameterized families such as `timer.ms(N)` are
//! listed only when the pattern names one exactly.
//!
//! Aliases go through the compiler's public passes only (`parse`, `elaborate`, `types::check`):
//! an alias is listed when `probe POINT {}` elaborates on this kernel, and its variables are
//! the probe's locals in the type table, so `-L` shows what a script would get. Kernel
//! functions and the C types of `$` variables are read from the kernel's BTF here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use lang::ast::{self, ExprKind, Item, Literal};
use lang::elaborate::{self, glob_match, point_text};
use lang::kernel::{KernelInfo, TracepointFormat};
use lang::parse;
use lang::preprocess::{Macros, PreprocessEnv};
use lang::span::{SourceKind, SourceMap};
use lang::types::{self, Scope};
use runtime::kernel_info::LiveKernel;

use crate::driver::tapset_texts;

/// What `-l`/`-L` prints, or why it cannot.
pub fn list(
    pattern: &str,
    with_vars: bool,
    include: &[std::path::PathBuf],
    kernel: &LiveKernel,
) -> Result<String, String> {
    let env = PreprocessEnv::for_kernel(kernel, Vec::new());
    let mut sources = SourceMap::default();
    let mut macros = Macros::default();
    let tapsets: Vec<ast::Script> = tapset_texts(include)
        .into_iter()
        .map(|t| {
            let file = sources.add(t.name, t.text, SourceKind::Tapset);
            parse::parse(&sources, file, &env, &mut macros).0
        })
        .collect();
    let file = sources.add("<pattern>", format!("probe {pattern} {{}}"), SourceKind::CommandLine);
    let (script, diags) = parse::parse(&sources, file, &env, &mut macros);
    let point = match script.items.as_slice() {
        [Item::Probe(p)] if p.points.len() == 1 && !lang::diag::has_errors(&diags) => p.points[0].clone(),
        _ => {
            return Err(format!(
                "`{pattern}` is not one probe point, such as 'syscall.*' or 'kernel.trace(\"sched:*\")'"
            ))
        }
    };

    let mut cx = Ctx { kernel, pattern: &point.components, points: BTreeMap::new(), to_elaborate: Vec::new() };
    cx.aliases(&tapsets);
    cx.syscalls();
    cx.builtins();
    cx.tracepoints(with_vars);
    cx.functions(with_vars)?;
    // Aliases are listed when they resolve here; generated syscalls are compiled for `-L`
    // only (they exist when their tracepoint does, which the candidate list already knows).
    let Ctx { mut points, mut to_elaborate, .. } = cx;
    let mut seen = BTreeSet::new();
    to_elaborate.retain(|(p, alias)| (*alias || with_vars) && seen.insert(p.clone()));
    if points.is_empty() && to_elaborate.is_empty() && !is_pattern(&point) {
        // `timer.ms(100)`, `begin(-1)`: a point no list names, which may still resolve.
        to_elaborate.push((point_text(&point), true));
    }
    elaborate_points(&to_elaborate, with_vars, &tapsets, &mut sources, &env, &mut macros, kernel, &mut points);

    if points.is_empty() {
        return Err(format!("no probe point matches `{pattern}`"));
    }
    let mut out = String::new();
    for (point, vars) in points {
        out.push_str(&point);
        if with_vars {
            for v in vars {
                let _ = write!(out, " {v}");
            }
        }
        out.push('\n');
    }
    Ok(out)
}

struct Ctx<'a> {
    kernel: &'a LiveKernel,
    pattern: &'a [ast::Component],
    /// Point text to its variables, in the order `-L` prints them.
    points: BTreeMap<String, Vec<String>>,
    /// Points to compile, with whether they are aliases (which must resolve to be listed).
    to_elaborate: Vec<(String, bool)>,
}

impl Ctx<'_> {
    fn matches(&self, candidate: &[(&str, Option<&str>)]) -> bool {
        components_match(self.pattern, candidate)
    }

    fn aliases(&mut self, tapsets: &[ast::Script]) {
        for item in tapsets.iter().flat_map(|t| &t.items) {
            let Item::Alias(alias) = item else { continue };
            for name in &alias.names {
                let args: Vec<Option<String>> =
                    name.components.iter().map(|c| c.arg.as_ref().map(literal_text)).collect();
                let candidate: Vec<(&str, Option<&str>)> =
                    name.components.iter().zip(&args).map(|(c, a)| (c.name.as_str(), a.as_deref())).collect();
                if self.matches(&candidate) {
                    self.to_elaborate.push((point_text(name), true));
                }
            }
        }
    }

    fn syscalls(&mut self) {
        let family_matches = ["syscall", "nd_syscall"].iter().any(|f| self.matches_prefix(f));
        if !family_matches {
            return;
        }
        let events: BTreeSet<String> =
            self.kernel.tracepoints().into_iter().filter(|(g, _)| g == "syscalls").map(|(_, e)| e).collect();
        for event in &events {
            let Some(name) = event.strip_prefix("sys_enter_") else { continue };
            let has_return = events.contains(&format!("sys_exit_{name}"));
            for family in ["syscall", "nd_syscall"] {
                if self.matches(&[(family, None), (name, None)]) {
                    self.to_elaborate.push((format!("{family}.{name}"), false));
                    self.points.entry(format!("{family}.{name}")).or_default();
                }
                if has_return && self.matches(&[(family, None), (name, None), ("return", None)]) {
                    self.to_elaborate.push((format!("{family}.{name}.return"), false));
                    self.points.entry(format!("{family}.{name}.return")).or_default();
                }
            }
        }
    }

    fn builtins(&mut self) {
        for name in ["begin", "end", "error", "prometheus", "json_data"] {
            if self.matches(&[(name, None)]) {
                self.points.entry(name.to_string()).or_default();
            }
        }
    }

    fn tracepoints(&mut self, with_vars: bool) {
        if !self.matches_prefix("kernel") {
            return;
        }
        // Without a group, a pattern names events of any group, as in `kernel.trace("sched_*")`.
        let mut pattern = self.pattern.to_vec();
        if let [_, trace, ..] = pattern.as_mut_slice() {
            if let Some(Literal::String(s)) = &mut trace.arg {
                if !s.contains(':') {
                    *s = format!("*:{s}");
                }
            }
        }
        for (group, event) in self.kernel.tracepoints() {
            let spec = format!("{group}:{event}");
            if !components_match(&pattern, &[("kernel", None), ("trace", Some(&spec))]) {
                continue;
            }
            // `-l` needs no format: the tracepoint list comes from the same `events/` tree.
            let vars = match with_vars.then(|| self.kernel.tracepoint(&group, &event)) {
                Some(Ok(format)) => {
                    let mut vars = field_vars(&format);
                    vars.extend(self.argument_vars(&format));
                    vars
                }
                Some(Err(_)) => continue,
                None => Vec::new(),
            };
            self.points.insert(format!("kernel.trace(\"{spec}\")"), vars);
        }
    }

    /// `$arg:C type` for each C argument of a tracepoint that is not also a record field
    /// (a probe reads one or the other; see `lang::elaborate`).
    fn argument_vars(&self, format: &TracepointFormat) -> Vec<String> {
        let Ok(args) = self.kernel.tracepoint_args(&format.event) else { return Vec::new() };
        args.params
            .iter()
            .filter(|(name, _)| format.field(name).is_none())
            .map(|(name, ty)| format!("${name}:{}", self.kernel.c_type_text(*ty)))
            .collect()
    }

    /// `kernel.function("f")` and `.return` for each function in the kernel's BTF; with a
    /// pattern `module("m").function(...)`, `module("m").function("f")` for each in module
    /// `m`'s BTF.
    fn functions(&mut self, with_vars: bool) -> Result<(), String> {
        let module = match self.pattern {
            [m, f, ..] if m.name == "module" && glob_match(&f.name, "function") => match &m.arg {
                Some(Literal::String(name)) => Some(name.clone()),
                _ => return Err("write a module function pattern as 'module(\"nfsd\").function(\"*\")'".into()),
            },
            _ => None,
        };
        let named = match self.pattern {
            [k, f, ..] => module.is_some() || (glob_match(&k.name, "kernel") && glob_match(&f.name, "function")),
            _ => false,
        };
        if !named && self.pattern.first().is_none_or(|c| c.name != "**") {
            return Ok(());
        }
        let family = match &module {
            Some(m) => format!("module(\"{m}\")"),
            None => "kernel".to_string(),
        };
        let names = match &module {
            Some(m) => self.kernel.module_functions(m).map_err(|e| e.to_string())?,
            None => {
                if let Err(e) = self.kernel.btf() {
                    // `-l '**'` on a kernel without BTF: list everything else.
                    return if named { Err(e.to_string()) } else { Ok(()) };
                }
                self.kernel.functions()
            }
        };
        let module_arg = module.as_deref();
        for name in names {
            let head = [(if module.is_some() { "module" } else { "kernel" }, module_arg), ("function", Some(&*name))];
            let entry = self.matches(&head);
            let ret = self.matches(&[head[0], head[1], ("return", None)]);
            if !entry && !ret {
                continue;
            }
            let sig = match &module {
                Some(m) => self.kernel.module_function(m, &name),
                None => self.kernel.function(&name),
            };
            let Ok(sig) = sig else { continue };
            let params: Vec<String> = if with_vars {
                sig.params
                    .iter()
                    // A variadic function's `...` is a nameless parameter of type void.
                    .filter(|(pname, ty)| !(pname.is_empty() && *ty == 0))
                    .map(|(pname, ty)| format!("${pname}:{}", self.kernel.c_type_text(*ty)))
                    .collect()
            } else {
                Vec::new()
            };
            if entry {
                self.points.insert(format!("{family}.function(\"{name}\")"), params.clone());
            }
            if ret {
                let mut vars = params;
                if with_vars && sig.ret != 0 {
                    vars.push(format!("$return:{}", self.kernel.c_type_text(sig.ret)));
                }
                self.points.insert(format!("{family}.function(\"{name}\").return"), vars);
            }
        }
        Ok(())
    }

    /// Whether the pattern's first component can match `family` (`**` can match anything).
    fn matches_prefix(&self, family: &str) -> bool {
        self.pattern.first().is_some_and(|c| c.name == "**" || glob_match(&c.name, family))
    }
}

/// Compiles `probe P {}` for each point in one script; records the points that resolve and,
/// with `with_vars`, their locals in assignment order followed by the tracepoint's fields.
#[allow(clippy::too_many_arguments)]
fn elaborate_points(
    points: &[(String, bool)],
    with_vars: bool,
    tapsets: &[ast::Script],
    sources: &mut SourceMap,
    env: &PreprocessEnv,
    macros: &mut Macros,
    kernel: &LiveKernel,
    out: &mut BTreeMap<String, Vec<String>>,
) {
    if points.is_empty() {
        return;
    }
    let text: String = points.iter().map(|(p, _)| format!("probe {p} {{}}\n")).collect();
    let file = sources.add("<listing>", text, SourceKind::CommandLine);
    let (script, _) = parse::parse(sources, file, env, macros);
    // The probe's span tells which point an elaborated probe came from.
    let by_span: BTreeMap<u32, &str> = script
        .items
        .iter()
        .zip(points)
        .filter_map(|(item, (p, _))| match item {
            Item::Probe(probe) => Some((probe.span.start, p.as_str())),
            _ => None,
        })
        .collect();
    let (elaborated, _) = elaborate::elaborate(&elaborate::Input { script: &script, tapsets }, kernel);
    let table = if with_vars { Some(types::check(&elaborated, &Default::default()).0) } else { None };
    for (i, probe) in elaborated.probes.iter().enumerate() {
        let Some(point) = by_span.get(&probe.span.start) else { continue };
        let vars = out.entry(point.to_string()).or_default();
        let Some(table) = &table else { continue };
        let mut names = Vec::new();
        if let Some(locals) = table.locals.get(&Scope::Probe(i)) {
            // Assignment order, as stap prints them; then any other local by first use.
            let mut order: Vec<&str> = Vec::new();
            elaborate::walk_exprs(&probe.body, &mut |e| {
                if let ExprKind::Assign { target, .. } = &e.kind {
                    if let ExprKind::Ident(n) = &target.kind {
                        if locals.contains_key(n) && !order.contains(&n.as_str()) {
                            order.push(n);
                        }
                    }
                }
            });
            let mut rest: Vec<(&String, &(lang::ir::Ty, lang::span::Span))> =
                locals.iter().filter(|(n, _)| !order.contains(&n.as_str())).collect();
            rest.sort_by_key(|(_, (_, span))| (span.file, span.start));
            for n in order.into_iter().chain(rest.into_iter().map(|(n, _)| n.as_str())) {
                names.push(format!("{n}:{}", locals[n].0));
            }
        }
        if let Some(format) = &probe.format {
            names.extend(field_vars(format));
        }
        for n in names {
            if !vars.contains(&n) {
                vars.push(n);
            }
        }
    }
}

/// `$field:C type` for each field of a tracepoint record, as tracefs declares it, in stap's
/// spelling of pointers (`struct sockaddr*`).
fn field_vars(format: &TracepointFormat) -> Vec<String> {
    format.fields.iter().map(|f| format!("${}:{}", f.name, f.c_type.replace(" *", "*"))).collect()
}

/// A pattern against a point: `*`, `?` and `{a,b}` within a component and within a string
/// argument, `**` across components (lang's matcher, with arguments as text here).
fn components_match(pattern: &[ast::Component], point: &[(&str, Option<&str>)]) -> bool {
    elaborate::components_match(pattern, point, elaborate::spans_components, |p, (name, arg)| {
        let arg_ok = match (&p.arg, arg) {
            (None, None) => true,
            (Some(Literal::String(pa)), Some(a)) => glob_match(pa, a),
            (Some(Literal::Number(n)), Some(a)) => a.parse::<i64>().ok() == Some(*n),
            _ => false,
        };
        arg_ok && glob_match(&p.name, name)
    })
}

fn is_pattern(point: &ast::ProbePoint) -> bool {
    let wild = |s: &str| s.contains(['*', '?', '{']);
    point.components.iter().any(|c| wild(&c.name) || matches!(&c.arg, Some(Literal::String(s)) if wild(s)))
}

fn literal_text(l: &Literal) -> String {
    match l {
        Literal::Number(n) => n.to_string(),
        Literal::String(s) => s.clone(),
    }
}
