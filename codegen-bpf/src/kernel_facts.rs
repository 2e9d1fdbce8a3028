//! What a compiled script assumes of the kernel it was compiled on, recorded by what was asked
//! ("member `f_inode` of `struct file`", "field `uservaddr` of `syscalls:sys_enter_connect`")
//! with the answer compiled in, and checked against another kernel before a `.bo` loads there.
//!
//! [`Recorder`] wraps the compiling kernel's [`KernelInfo`] and keeps every BTF question the
//! front end asked (types by name, their shapes, members, bitfields, function signatures)
//! with its answer; [`tracepoint_fields`] adds the tracepoint fields the kernel probes read.
//! [`check`] asks the running kernel the same questions in the same order. BTF type ids
//! differ between kernels, so ids in answers are mapped to the running kernel's as the replay
//! meets them; every id in a question came from an earlier answer.
//!
//! A tracepoint field or a struct member at another offset is a relocation: [`check`]
//! returns the moves, and `bo` rewrites the instructions that hold the offset
//! (`ProgramSpec::field_relocs`). A field must keep its size; a member's type must keep its
//! shape (kind and size), which the replay checks as it meets the member type's `Shape`
//! fact. Every other answer is a check only: an object whose answers differ is refused, not
//! rewritten. The record is conservative: a question whose answer the code did not end up
//! using (an alias variable optimized away) still has to be answered the same way.

use std::cell::RefCell;
use std::collections::HashMap;

use lang::ir::{InstKind, Target};
use lang::kernel::{Bitfield, CType, FunctionSig, KernelError, KernelInfo, TracepointFormat, TypeId};

use crate::compile::CompiledScript;

/// One question the compiler asked the kernel, with the answer it compiled in (`None`: the
/// kernel had no answer, and the code took that path).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum KernelFact {
    /// Field `field` of tracepoint `group:event` sits at `offset` and takes `size` bytes.
    TracepointField { group: String, event: String, field: String, offset: u32, size: u32 },
    /// The type named `name`, as `id`.
    Type { name: String, id: Option<TypeId> },
    /// The shape of type `id` (named `name` for messages).
    Shape { id: TypeId, name: String, shape: Option<CType> },
    /// Member `member` of type `id` (named `name`): its byte offset and type.
    Member { id: TypeId, name: String, member: String, at: Option<(u32, TypeId)> },
    /// Bitfield `member` of type `id` (named `name`).
    Bitfield { id: TypeId, name: String, member: String, at: Option<Bitfield> },
    /// The signature of kernel function `name`.
    Function { name: String, sig: Option<FunctionSig> },
    /// The BTF id of kernel function `name` as programs call it (a kfunc), which calls hold.
    Kfunc { name: String, id: Option<u32> },
}

/// A [`KernelInfo`] that answers as `inner` does and records the BTF questions.
pub struct Recorder<'a> {
    inner: &'a dyn KernelInfo,
    facts: RefCell<Vec<KernelFact>>,
}

impl<'a> Recorder<'a> {
    pub fn new(inner: &'a dyn KernelInfo) -> Recorder<'a> {
        Recorder { inner, facts: RefCell::new(Vec::new()) }
    }

    /// The questions asked so far, each once, in the order first asked.
    pub fn facts(&self) -> Vec<KernelFact> {
        self.facts.borrow().clone()
    }

    fn record(&self, fact: KernelFact) {
        let mut facts = self.facts.borrow_mut();
        if !facts.contains(&fact) {
            facts.push(fact);
        }
    }

    /// A kernel type's name for messages; header types (user space, from C headers) are not
    /// the kernel's and are not recorded.
    fn kernel_type_name(&self, id: TypeId) -> Option<String> {
        (!self.inner.is_header_type(id)).then(|| type_name(self.inner, id))
    }
}

impl KernelInfo for Recorder<'_> {
    fn tracepoint(&self, group: &str, event: &str) -> Result<TracepointFormat, KernelError> {
        self.inner.tracepoint(group, event)
    }
    fn tracepoints(&self) -> Vec<(String, String)> {
        self.inner.tracepoints()
    }
    fn release(&self) -> String {
        self.inner.release()
    }
    fn arch(&self) -> String {
        self.inner.arch()
    }
    fn config(&self, name: &str) -> Option<String> {
        self.inner.config(name)
    }
    fn type_by_name(&self, name: &str) -> Result<TypeId, KernelError> {
        let answer = self.inner.type_by_name(name);
        self.record(KernelFact::Type { name: name.to_string(), id: answer.as_ref().ok().copied() });
        answer
    }
    fn header_type_by_name(&self, headers: &str, name: &str) -> Result<TypeId, KernelError> {
        self.inner.header_type_by_name(headers, name)
    }
    fn is_header_type(&self, id: TypeId) -> bool {
        self.inner.is_header_type(id)
    }
    fn type_of(&self, id: TypeId) -> Result<CType, KernelError> {
        let answer = self.inner.type_of(id);
        if let Some(name) = self.kernel_type_name(id) {
            self.record(KernelFact::Shape { id, name, shape: answer.as_ref().ok().cloned() });
        }
        answer
    }
    fn member(&self, id: TypeId, member: &str) -> Result<(u32, TypeId), KernelError> {
        let answer = self.inner.member(id, member);
        if let Some(name) = self.kernel_type_name(id) {
            let at = answer.as_ref().ok().copied();
            self.record(KernelFact::Member { id, name, member: member.to_string(), at });
        }
        answer
    }
    fn bitfield(&self, id: TypeId, member: &str) -> Result<Bitfield, KernelError> {
        let answer = self.inner.bitfield(id, member);
        if let Some(name) = self.kernel_type_name(id) {
            let at = answer.as_ref().ok().copied();
            self.record(KernelFact::Bitfield { id, name, member: member.to_string(), at });
        }
        answer
    }
    fn function(&self, name: &str) -> Result<FunctionSig, KernelError> {
        let answer = self.inner.function(name);
        self.record(KernelFact::Function { name: name.to_string(), sig: answer.as_ref().ok().cloned() });
        answer
    }
    fn functions(&self) -> Vec<String> {
        self.inner.functions()
    }
    fn kfunc(&self, name: &str) -> Option<u32> {
        let answer = self.inner.kfunc(name);
        self.record(KernelFact::Kfunc { name: name.to_string(), id: answer });
        answer
    }
}

/// A type as C spells it, as far as messages need (`struct file`, `int`, `#123`).
fn type_name(kernel: &dyn KernelInfo, id: TypeId) -> String {
    match kernel.type_of(id) {
        Ok(CType::Struct { name, .. }) => format!("struct {name}"),
        Ok(CType::Int { size, signed }) => format!("{}int{}", if signed { "" } else { "u" }, size * 8),
        Ok(CType::Pointer { .. }) => "a pointer".into(),
        _ => format!("type #{id}"),
    }
}

/// The tracepoint fields the kernel probes of `compiled` read, with the offsets and sizes
/// compiled in.
pub fn tracepoint_fields(compiled: &CompiledScript, kernel: &dyn KernelInfo) -> Vec<KernelFact> {
    let mut facts = Vec::new();
    for probe in &compiled.kernel_probes {
        let Target::Tracepoint { group, event, .. } = &probe.target else {
            continue;
        };
        let Ok(format) = kernel.tracepoint(group, event) else {
            continue;
        };
        let handler = &compiled.program.handlers[probe.handler];
        for inst in handler.func.blocks.values().flat_map(|b| &b.insts) {
            let offset = match inst.kind {
                InstKind::LoadContext { offset, .. }
                | InstKind::LoadContextDataLoc { offset, .. }
                | InstKind::LoadContextStr { offset, .. } => offset,
                _ => continue,
            };
            let Some(f) = format.fields.iter().chain(&format.common_fields).find(|f| f.offset == offset) else {
                continue;
            };
            let fact = KernelFact::TracepointField {
                group: group.clone(),
                event: event.clone(),
                field: f.name.clone(),
                offset: f.offset,
                size: f.size,
            };
            if !facts.contains(&fact) {
                facts.push(fact);
            }
        }
    }
    facts
}

/// A tracepoint field that `kernel` has at another offset, with the same size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldMove {
    pub group: String,
    pub event: String,
    pub was: u32,
    pub is: u32,
}

/// A struct member that `kernel` has at another offset: member `member` of the compiling
/// kernel's type `id` (as `ir::MemberOffset` names it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberMove {
    pub id: TypeId,
    pub member: String,
    pub was: u32,
    pub is: u32,
}

/// What sits elsewhere on the running kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Moves {
    pub fields: Vec<FieldMove>,
    pub members: Vec<MemberMove>,
    pub kfuncs: Vec<KfuncMove>,
}

/// A kernel function that programs call (a kfunc) with another BTF id in `kernel`: the
/// calls are rewritten, as BTF ids differ between kernel builds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KfuncMove {
    pub was: u32,
    pub is: u32,
}

/// Asks `kernel` every question of `facts`: the fields and members to move, or the first
/// answer that differs otherwise, as a phrase naming what was asked and both answers.
pub fn check(facts: &[KernelFact], kernel: &dyn KernelInfo) -> Result<Moves, String> {
    let mut ids = IdMap::default();
    let mut moves = Moves::default();
    for fact in facts {
        match fact {
            KernelFact::TracepointField { group, event, field, offset, size } => {
                let what = format!("field `{field}` of tracepoint {group}:{event}");
                let format = kernel.tracepoint(group, event).map_err(|_| format!("{what}: no such tracepoint"))?;
                match format.field(field) {
                    None => return Err(format!("{what}: no such field")),
                    Some(f) if f.size != *size => {
                        return Err(format!("{what} has {} bytes here, and had {size}", f.size));
                    }
                    Some(f) if f.offset != *offset => {
                        moves.fields.push(FieldMove {
                            group: group.clone(),
                            event: event.clone(),
                            was: *offset,
                            is: f.offset,
                        });
                    }
                    Some(_) => {}
                }
            }
            KernelFact::Type { name, id } => {
                let here = kernel.type_by_name(name).ok();
                match (id, here) {
                    (Some(was), Some(is)) => ids.bind(*was, is, &format!("type `{name}`"))?,
                    (None, None) => {}
                    (Some(_), None) => return Err(format!("type `{name}`: no such type here")),
                    (None, Some(_)) => return Err(format!("type `{name}` exists here, and did not when compiled")),
                }
            }
            KernelFact::Shape { id, name, shape } => {
                let Some(here_id) = ids.get(*id) else { continue };
                let here = kernel.type_of(here_id).ok();
                let same = match (shape, &here) {
                    (Some(was), Some(is)) => ids.same_shape(was, is, name)?,
                    (None, None) => true,
                    _ => false,
                };
                if !same {
                    return Err(format!(
                        "{name} is {} here, and was {}",
                        describe(here.as_ref()),
                        describe(shape.as_ref())
                    ));
                }
            }
            KernelFact::Member { id, name, member, at } => {
                let Some(here_id) = ids.get(*id) else { continue };
                let what = format!("member `{member}` of {name}");
                match (at, kernel.member(here_id, member).ok()) {
                    (Some((was, was_ty)), Some((is, is_ty))) => {
                        ids.bind(*was_ty, is_ty, &what)?;
                        if *was != is {
                            moves.members.push(MemberMove { id: *id, member: member.clone(), was: *was, is });
                        }
                    }
                    (None, None) => {}
                    (Some(_), None) => return Err(format!("{what}: no such member here")),
                    (None, Some(_)) => return Err(format!("{what} exists here, and did not when compiled")),
                }
            }
            KernelFact::Bitfield { id, name, member, at } => {
                let Some(here_id) = ids.get(*id) else { continue };
                let here = kernel.bitfield(here_id, member).ok();
                if here != *at {
                    return Err(format!("bitfield `{member}` of {name} is {here:?} here, and was {at:?}"));
                }
            }
            KernelFact::Function { name, sig } => {
                let what = format!("kernel function `{name}`");
                match (sig, kernel.function(name).ok()) {
                    (Some(was), Some(is)) => {
                        if was.params.len() != is.params.len() {
                            return Err(format!(
                                "{what} takes {} arguments here, and took {}",
                                is.params.len(),
                                was.params.len()
                            ));
                        }
                        for ((_, w), (_, i)) in was.params.iter().zip(&is.params) {
                            ids.bind(*w, *i, &what)?;
                        }
                        ids.bind(was.ret, is.ret, &what)?;
                    }
                    (None, None) => {}
                    (Some(_), None) => return Err(format!("{what}: no such function here")),
                    (None, Some(_)) => return Err(format!("{what} exists here, and did not when compiled")),
                }
            }
            KernelFact::Kfunc { name, id } => match (id, kernel.kfunc(name)) {
                (Some(was), Some(is)) if *was != is => moves.kfuncs.push(KfuncMove { was: *was, is }),
                (Some(_), Some(_)) | (None, None) => {}
                (Some(_), None) => return Err(format!("kernel function `{name}`: programs cannot call it here")),
                // Compiled with the loop counter instead: it runs as well here.
                (None, Some(_)) => {}
            },
        }
    }
    Ok(moves)
}

fn describe(shape: Option<&CType>) -> String {
    match shape {
        None => "unknown".into(),
        Some(CType::Int { size, signed }) => {
            format!("a{} integer of {size} bytes", if *signed { " signed" } else { "n unsigned" })
        }
        Some(CType::Struct { name, size }) => format!("struct {name} of {size} bytes"),
        Some(CType::Array { len, .. }) => format!("an array of {len}"),
        Some(CType::Pointer { .. }) => "a pointer".into(),
        Some(CType::Void) => "void".into(),
        Some(CType::Other(what)) => what.clone(),
    }
}

/// The compiling kernel's type ids to the running kernel's, learnt from the answers.
#[derive(Default)]
struct IdMap(HashMap<TypeId, TypeId>);

impl IdMap {
    fn get(&self, was: TypeId) -> Option<TypeId> {
        self.0.get(&was).copied()
    }

    /// Learns that `was` is `is`; an id already bound to another type means the two kernels'
    /// types do not correspond.
    fn bind(&mut self, was: TypeId, is: TypeId, what: &str) -> Result<(), String> {
        match *self.0.entry(was).or_insert(is) {
            bound if bound == is => Ok(()),
            _ => Err(format!("{what}: its types do not correspond to those of the kernel compiled on")),
        }
    }

    /// Whether two shapes agree, binding the ids they point to.
    fn same_shape(&mut self, was: &CType, is: &CType, name: &str) -> Result<bool, String> {
        Ok(match (was, is) {
            (CType::Pointer { to: w }, CType::Pointer { to: i }) => {
                self.bind(*w, *i, name)?;
                true
            }
            (CType::Array { elem: w, len: wl }, CType::Array { elem: i, len: il }) => {
                self.bind(*w, *i, name)?;
                wl == il
            }
            _ => was == is,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use lang::kernel::{KernelError, KernelInfo, TracepointField, TracepointFormat};

    use super::*;

    /// A kernel with `task_struct { ...; struct cred *cred at cred_offset }` (no `cred`
    /// member when `None`) and `cred { ...; uid euid at 20 }` (an unsigned integer of
    /// `euid_size` bytes), its type ids starting at `base` (ids differ between kernels), and
    /// one tracepoint, `syscalls:sys_enter_getppid`.
    pub(crate) struct Types {
        pub base: TypeId,
        pub cred_offset: Option<u32>,
        pub euid_size: u32,
    }

    impl Types {
        pub(crate) fn new(base: TypeId, cred_offset: u32) -> Types {
            Types { base, cred_offset: Some(cred_offset), euid_size: 4 }
        }

        fn ids(&self) -> (TypeId, TypeId, TypeId, TypeId) {
            (self.base, self.base + 1, self.base + 2, self.base + 3)
        }
    }

    impl KernelInfo for Types {
        fn tracepoint(&self, group: &str, event: &str) -> Result<TracepointFormat, KernelError> {
            if (group, event) != ("syscalls", "sys_enter_getppid") {
                return Err(KernelError::NoTracepoint(group.into(), event.into()));
            }
            let nr =
                TracepointField { name: "__syscall_nr".into(), c_type: "int".into(), offset: 8, size: 4, signed: true };
            Ok(TracepointFormat {
                group: group.into(),
                event: event.into(),
                common_fields: Vec::new(),
                fields: vec![nr],
            })
        }
        fn tracepoints(&self) -> Vec<(String, String)> {
            vec![("syscalls".into(), "sys_enter_getppid".into())]
        }
        fn release(&self) -> String {
            format!("test-{}", self.base)
        }
        fn arch(&self) -> String {
            "x86_64".into()
        }
        fn config(&self, _: &str) -> Option<String> {
            None
        }
        fn type_by_name(&self, name: &str) -> Result<TypeId, KernelError> {
            match name {
                "task_struct" => Ok(self.base),
                _ => Err(KernelError::NoType(name.into())),
            }
        }
        fn type_of(&self, id: TypeId) -> Result<CType, KernelError> {
            let (task, cred_ptr, cred, uid) = self.ids();
            let shapes = HashMap::from([
                (task, CType::Struct { name: "task_struct".into(), size: 4096 }),
                (cred_ptr, CType::Pointer { to: cred }),
                (cred, CType::Struct { name: "cred".into(), size: 128 }),
                (uid, CType::Int { size: self.euid_size, signed: false }),
            ]);
            shapes.get(&id).cloned().ok_or(KernelError::NoType(format!("#{id}")))
        }
        fn member(&self, id: TypeId, member: &str) -> Result<(u32, TypeId), KernelError> {
            let (task, cred_ptr, cred, uid) = self.ids();
            match (id, member, self.cred_offset) {
                (t, "cred", Some(offset)) if t == task => Ok((offset, cred_ptr)),
                (c, "euid", _) if c == cred => Ok((20, uid)),
                _ => Err(KernelError::NoMember { ty: format!("#{id}"), member: member.into() }),
            }
        }
    }

    /// What lowering `task_current()->cred->euid` asks.
    fn ask(kernel: &dyn KernelInfo) {
        let task = kernel.type_by_name("task_struct").unwrap();
        let (_, cred_ptr) = kernel.member(task, "cred").unwrap();
        let Ok(CType::Pointer { to }) = kernel.type_of(cred_ptr) else { panic!("a pointer") };
        let (_, uid) = kernel.member(to, "euid").unwrap();
        kernel.type_of(uid).unwrap();
        let _ = kernel.member(task, "no_such_member");
    }

    #[test]
    fn btf_facts_are_replayed_through_other_type_ids() {
        let compiling = Types::new(10, 1736);
        let recorder = Recorder::new(&compiling);
        ask(&recorder);
        let facts = recorder.facts();
        assert_eq!(facts.len(), 6, "{facts:#?}");
        assert_eq!(check(&facts, &compiling), Ok(Moves::default()));
        assert_eq!(check(&facts, &Types::new(500, 1736)), Ok(Moves::default()));
    }

    #[test]
    fn a_member_elsewhere_is_a_move_and_a_missing_or_resized_one_an_error() {
        let compiling = Types::new(10, 1736);
        let recorder = Recorder::new(&compiling);
        ask(&recorder);
        let facts = recorder.facts();
        let moved = MemberMove { id: 10, member: "cred".into(), was: 1736, is: 3392 };
        assert_eq!(check(&facts, &Types::new(500, 3392)), Ok(Moves { members: vec![moved], ..Moves::default() }));
        let no_cred = Types { cred_offset: None, ..Types::new(500, 0) };
        assert_eq!(check(&facts, &no_cred), Err("member `cred` of struct task_struct: no such member here".into()));
        let wider = Types { euid_size: 8, ..Types::new(500, 3392) };
        assert_eq!(
            check(&facts, &wider),
            Err("uint32 is an unsigned integer of 8 bytes here, and was an unsigned integer of 4 bytes".into())
        );
    }

    #[test]
    fn a_kfunc_with_another_id_is_a_move_and_a_missing_one_an_error() {
        let with_next = |id| lang::kernel::Fixture {
            kfuncs: [("bpf_iter_num_next".to_string(), id)].into_iter().collect(),
            ..Default::default()
        };
        let compiling = with_next(63684);
        let recorder = Recorder::new(&compiling);
        assert_eq!(recorder.kfunc("bpf_iter_num_next"), Some(63684));
        let facts = recorder.facts();
        assert_eq!(check(&facts, &with_next(63684)), Ok(Moves::default()));
        let moved = KfuncMove { was: 63684, is: 70001 };
        assert_eq!(check(&facts, &with_next(70001)), Ok(Moves { kfuncs: vec![moved], ..Moves::default() }));
        assert_eq!(
            check(&facts, &lang::kernel::Fixture::default()),
            Err("kernel function `bpf_iter_num_next`: programs cannot call it here".into())
        );
    }
}
