//! The program's globals and arrays, declared from the typed script before any handler is
//! lowered, and which of them a handler reads.

use super::*;

/// The script's globals, typed, with their constant initial values.
pub(super) fn declare_globals(
    script: &Elaborated,
    types: &TypeTable,
    options: &Options,
    program: &mut ir::Program,
    diags: &mut Vec<Diagnostic>,
) -> HashMap<String, ir::GlobalId> {
    let mut globals = HashMap::new();
    for g in &script.globals {
        let Some((ty, _)) = types.globals.get(&g.name) else { continue };
        let init = g.init.as_ref().and_then(|e| match &e.kind {
            ExprKind::Number(n) => Some(ir::Const::Long(*n)),
            ExprKind::String(s) => Some(ir::Const::Str(s.clone())),
            ExprKind::Unary { op: UnaryOp::Neg, expr } => match expr.kind {
                ExprKind::Number(n) => Some(ir::Const::Long(n.wrapping_neg())),
                _ => None,
            },
            // `global argv_1 = @1`: the arguments are known now, so the value is a constant.
            ExprKind::ScriptArg { index, as_string } => {
                script_arg(&options.script_args, *index, *as_string, e.span).map_err(|d| diags.push(d)).ok()
            }
            ExprKind::ArgCount { as_string: false } => Some(ir::Const::Long(options.script_args.len() as i64)),
            ExprKind::ArgCount { as_string: true } => Some(ir::Const::Str(options.script_args.len().to_string())),
            _ => None,
        });
        let id = program.globals.push(ir::GlobalDecl {
            name: g.name.clone(),
            ty: *ty,
            init,
            read: false,
            storage: ir::GlobalStorage::Shared,
        });
        globals.insert(g.name.clone(), id);
    }
    globals
}

/// The arrays reachable code uses, with their key layouts and capacities.
pub(super) fn declare_arrays(
    script: &Elaborated,
    types: &TypeTable,
    options: &Options,
    program: &mut ir::Program,
) -> HashMap<String, ir::ArrayId> {
    let mut arrays = HashMap::new();
    let key_widths = string_key_widths(script, options.string_capacity);
    let mentioned = names_in_reachable_code(script);
    for (name, t) in &types.arrays {
        // Arrays only unused functions touch (a tapset's) get no map.
        if !mentioned.contains(name.as_str()) {
            continue;
        }
        let decl = script.globals.iter().find(|g| &g.name == name);
        let (Some(value), Some(keys)) = (t.value, t.keys.iter().copied().collect::<Option<Vec<Ty>>>()) else {
            continue;
        };
        let widths = keys
            .iter()
            .enumerate()
            .map(|(i, ty)| match ty {
                Ty::Long => 8,
                Ty::Str if options.stable_layouts => options.string_capacity,
                Ty::Str => key_widths.get(&(name.clone(), i)).copied().unwrap_or(options.string_capacity),
            })
            .collect();
        let id = program.arrays.push(ir::ArrayDecl {
            name: name.clone(),
            key_widths: widths,
            keys,
            value,
            max_entries: decl.and_then(|g| g.size).map_or(options.max_map_entries, |n| n.clamp(1, 1 << 24) as u32),
            wrap: decl.is_some_and(|g| g.wrap),
            hist: ir::HistSpec {
                log: t.hist_log || (options.stable_layouts && value == ir::ValueKind::Stat),
                linear: t.hist_linear,
            },
            read: false,
            per_cpu: false,
        });
        arrays.insert(name.clone(), id);
    }
    arrays
}

/// Marks the globals and arrays some handler reads, or a tapset declares: those are not
/// printed at exit.
pub(super) fn mark_reads(script: &Elaborated, program: &mut ir::Program) {
    let from_tapset: HashSet<&str> = script.globals.iter().filter(|g| g.tapset).map(|g| g.name.as_str()).collect();
    let mut read = vec![false; program.globals.len()];
    for h in &program.handlers {
        for b in h.func.blocks.values() {
            for inst in &b.insts {
                if let InstKind::LoadGlobal { global, .. } = inst.kind {
                    read[global.index()] = true;
                }
            }
        }
    }
    for (g, decl) in program.globals.iter_mut() {
        decl.read = read[g.index()] || from_tapset.contains(decl.name.as_str());
    }
    let mut array_read = vec![false; program.arrays.len()];
    for h in &program.handlers {
        for b in h.func.blocks.values() {
            for inst in &b.insts {
                match inst.kind {
                    InstKind::ArrayGet { array, .. }
                    | InstKind::ArrayContains { array, .. }
                    | InstKind::ArrayContainsMatching { array, .. }
                    | InstKind::StatGet { array, .. }
                    | InstKind::PrintHist { array, .. }
                    | InstKind::IterStart { array, .. } => array_read[array.index()] = true,
                    _ => {}
                }
            }
        }
    }
    for (a, decl) in program.arrays.iter_mut() {
        decl.read = array_read[a.index()] || from_tapset.contains(decl.name.as_str());
    }
}

/// Globals no kernel handler touches (functions are inlined, so the handlers' code is all
/// of it) are kept at user space's string width. Not in a session: a later input may
/// touch any global from a kernel probe, at the offset and width placed now.
pub(super) fn keep_user_space_globals(program: &mut ir::Program) {
    let mut in_kernel = vec![false; program.globals.len()];
    for h in program.handlers.iter().filter(|h| !h.target.is_user_space()) {
        for inst in h.func.blocks.values().flat_map(|b| &b.insts) {
            if let InstKind::LoadGlobal { global, .. }
            | InstKind::StoreGlobal { global, .. }
            | InstKind::AddGlobal { global, .. } = inst.kind
            {
                in_kernel[global.index()] = true;
            }
        }
    }
    for (_, decl) in program.globals.iter_mut().filter(|(g, _)| !in_kernel[g.index()]) {
        decl.storage = ir::GlobalStorage::UserSpace;
    }
}

/// Arrays of longs that kernel handlers only add to become per-CPU counters (see
/// [`ir::ArrayDecl::per_cpu`]); user-space handlers may do anything with them, through the
/// runtime. Not in a session: a later input may read the array from a kernel probe. Not a
/// wrapping array (`%`): the kernel's LRU would evict per CPU.
pub(super) fn count_per_cpu(program: &mut ir::Program) {
    let (mut added, mut touched) = (vec![false; program.arrays.len()], vec![false; program.arrays.len()]);
    for h in program.handlers.iter().filter(|h| !h.target.is_user_space()) {
        for inst in h.func.blocks.values().flat_map(|b| &b.insts) {
            match (&inst.kind, inst.kind.array()) {
                (InstKind::ArrayAdd { array, .. }, _) => added[array.index()] = true,
                (_, Some(array)) => touched[array.index()] = true,
                (_, None) => {}
            }
        }
    }
    for (a, decl) in program.arrays.iter_mut() {
        decl.per_cpu = added[a.index()] && !touched[a.index()] && decl.value == ir::ValueKind::Long && !decl.wrap;
    }
}
