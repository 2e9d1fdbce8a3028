//! Value sinking: values whose one use is later in the same block, and would be the same
//! there (context fields, calls about the task and the CPU), are computed at the use instead
//! of being stored in a home.

use super::*;

/// Values whose only use is a printf argument (or, for `execname()`, an array key) later in
/// the same block, and which would be the same there: context fields, and calls about the
/// task and the CPU, which do not change while a handler runs. The use computes the value
/// instead of reading a variable, so it needs no home and no register across calls.
pub(super) fn sinkable_values(func: &Function, uses: &HashMap<Var, usize>) -> HashMap<Var, InstKind> {
    let mut out = HashMap::new();
    for data in func.blocks.values() {
        let mut pending: HashMap<Var, &InstKind> = HashMap::new();
        for inst in &data.insts {
            match &inst.kind {
                InstKind::Call {
                    dst: Some(d),
                    builtin:
                        Builtin::Execname | Builtin::Pid | Builtin::Tid | Builtin::Uid | Builtin::Gid | Builtin::Cpu,
                    ..
                }
                | InstKind::LoadContext { dst: d, .. }
                    if uses.get(d) == Some(&1) =>
                {
                    pending.insert(*d, &inst.kind);
                }
                InstKind::Printf { args, .. } => {
                    out.extend(pending.iter().filter(|(v, _)| args.contains(v)).map(|(v, kind)| (*v, (*kind).clone())))
                }
                InstKind::ArrayGet { keys, .. }
                | InstKind::ArraySet { keys, .. }
                | InstKind::ArrayAdd { keys, .. }
                | InstKind::ArrayDelete { keys, .. }
                | InstKind::ArrayContains { keys, .. }
                | InstKind::StatAdd { keys, .. } => out.extend(
                    pending
                        .iter()
                        .filter(|(v, kind)| {
                            matches!(kind, InstKind::Call { builtin: Builtin::Execname, .. }) && keys.contains(v)
                        })
                        .map(|(v, kind)| (*v, (*kind).clone())),
                ),
                _ => {}
            }
        }
    }
    out
}

/// Variables whose only definition is a constant that fits an immediate.
pub(super) fn constant_vars(func: &Function) -> HashMap<Var, i32> {
    let mut defs: HashMap<Var, Option<i32>> = HashMap::new();
    for inst in func.blocks.values().flat_map(|b| &b.insts) {
        for d in inst.kind.defs() {
            let value = match inst.kind {
                InstKind::Const { value, .. } => i32::try_from(value).ok(),
                _ => None,
            };
            // A second definition, even of the same constant, makes it a variable.
            defs.entry(d).and_modify(|v| *v = None).or_insert(value);
        }
    }
    defs.into_iter().filter_map(|(v, c)| Some((v, c?))).collect()
}

/// How many times each variable is read, by instructions and terminators.
pub(super) fn use_counts(func: &Function) -> HashMap<Var, usize> {
    let mut uses: HashMap<Var, usize> = HashMap::new();
    for data in func.blocks.values() {
        for inst in &data.insts {
            for v in inst.kind.uses() {
                *uses.entry(v).or_default() += 1;
            }
        }
        if let Some(v) = data.term.uses() {
            *uses.entry(v).or_default() += 1;
        }
    }
    uses
}
