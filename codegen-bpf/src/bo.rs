//! `.bo` objects: a compiled script written once (`bpftap -p4 -m NAME`) and run later,
//! elsewhere, without the front end (`bpftap run NAME.bo`).
//!
//! A `.bo` is the ELF object of [`crate::object::write_object`] (programs in their usual
//! sections, so `llvm-objdump` and `bpftool`-style tools see them; netfilter programs too, in
//! section `netfilter`) plus one section of bpftap's own, [`SECTION`], holding the rest of the
//! [`CompiledScript`]: the IR program (user-space handlers, globals, arrays, formats,
//! regexes), the object spec without instructions (maps, relocations, `.rodata`), the kernel
//! probes, and the source text the spans point into (only the files they name) so that a
//! verifier rejection still points at the script line. The instructions are read back from
//! the program sections.
//!
//! The section starts with a fixed header, then the body serialized with postcard:
//!
//! ```text
//! 0   8  magic "BPFTAPBO"
//! 8   4  format version (u32 LE)       IMPORTANT: these four fields keep their places in
//! 12  4  CRC-32 of the whole file,                 every format version, so any bpftap
//!        computed with these 4 bytes zero          can name the version it refuses
//! 16  2  length N of bpftap's version (u16 LE)
//! 18  N  bpftap's version (UTF-8)
//! ..     postcard body
//! ```
//!
//! Objects are untrusted input. [`read`] never panics and never reads out of bounds: the
//! ELF is parsed by the `object` crate (bounds-checked), the checksum turns accidental damage
//! anywhere in the file into one error, and a well-formed but inconsistent body is refused
//! by [`check`] before the runtime indexes anything with it. The kernel's verifier remains
//! the safety net for the programs themselves.

use lang::builtins::{Lowering, Signature, BUILTINS};
use lang::family::Attach;
use lang::ir::{BinOp, InstKind, MemberOffset, Operand, Program, Target, Var};
use lang::kernel::KernelInfo;
use lang::span::{FileId, SourceKind, SourceMap, Span};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

use crate::compile::{self, CompiledScript, KernelProbe, MAP_INDEXES};
use crate::insn::{self, Insn};
use crate::kernel_facts::{self, KernelFact, Recorder};
use crate::layout;
use crate::object::{elf_object, ObjectSpec, RelocTarget};

/// The section holding everything but the instructions.
pub const SECTION: &str = ".bpftap";
/// The first bytes of [`SECTION`].
pub const MAGIC: &[u8; 8] = b"BPFTAPBO";
/// Bumped whenever the body's layout changes; an object of another version is refused.
pub const FORMAT_VERSION: u32 = 6;

const CHECKSUM_AT: usize = 12;
const VERSION_AT: usize = 16;

/// A `.bo` read back: the script as pass 4 left it, its source text for messages, and the
/// kernel it was compiled on.
#[derive(Debug)]
pub struct BoObject {
    pub compiled: CompiledScript,
    pub sources: SourceMap,
    pub compiled_for: CompiledFor,
}

/// The compiling machine's facts the object's code depends on, checked against the running
/// kernel ([`BoObject::fit_kernel`]) before anything is loaded.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CompiledFor {
    /// The architecture the code generator targeted (`struct pt_regs` offsets, syscall
    /// numbers), as `uname -m` names it.
    pub arch: String,
    /// The release of the kernel compiled on, for messages.
    pub release: String,
    pub facts: Vec<KernelFact>,
}

/// Why an object cannot be run.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BoError {
    #[error("not an ELF object: {0}")]
    NotElf(String),
    #[error("an ELF object without the section {SECTION}, so not one written by `bpftap -p4 -m`")]
    NotBpftap,
    #[error("the object is corrupted: its checksum does not match its contents")]
    Checksum,
    #[error(
        "the object was written by bpftap {object} (object format {object_format}), and this is \
         bpftap {ours} (object format {FORMAT_VERSION}): compile the script again with this bpftap's -p4 -m"
    )]
    Version { object: String, object_format: u32, ours: String },
    /// The bytes are what was written, but do not form a script this bpftap can run.
    #[error("the object is malformed: {0}")]
    Malformed(String),
    /// A [`KernelFact`] that does not hold on the running kernel.
    #[error("the object was compiled on {compiled_on} and cannot run on {running}: {what}")]
    Kernel { compiled_on: String, running: String, what: String },
}

/// The body of [`SECTION`], after the header.
#[derive(serde::Serialize, serde::Deserialize)]
struct Body {
    program: Program,
    /// Its programs' `insns` are empty here (see [`crate::object::ProgramSpec::insns`]).
    object: ObjectSpec,
    kernel_probes: Vec<KernelProbe>,
    sources: Vec<SourceText>,
    compiled_for: CompiledFor,
}

/// One file of the [`SourceMap`]; `text` is empty for a file no span points into.
#[derive(serde::Serialize, serde::Deserialize)]
struct SourceText {
    name: String,
    text: String,
    kind: SourceKind,
}

/// Whether `bytes` start like a `.bo`: an ELF object for the BPF machine. Cheap, for
/// `bpftap NAME.bo`; [`read`] says what is wrong with one that is not a bpftap object.
pub fn looks_like_bo(bytes: &[u8]) -> bool {
    const EM_BPF: u16 = object::elf::EM_BPF;
    bytes.starts_with(b"\x7fELF") && bytes.get(18..20) == Some(&EM_BPF.to_le_bytes()[..])
}

/// The `.bo` bytes of a compiled script. `bpftap_version` is the writing binary's version;
/// `kernel` the kernel the script was compiled against, which recorded what was asked of it.
pub fn write(compiled: &CompiledScript, sources: &SourceMap, bpftap_version: &str, kernel: &Recorder) -> Vec<u8> {
    let used = used_files(compiled);
    let compiled_for = CompiledFor {
        arch: kernel.arch(),
        release: kernel.release(),
        facts: kernel_facts::tracepoint_fields(compiled, kernel).into_iter().chain(kernel.facts()).collect(),
    };
    let body = Body {
        program: compiled.program.clone(),
        object: compiled.object.clone(),
        kernel_probes: compiled.kernel_probes.clone(),
        sources: sources
            .files()
            .map(|(id, f)| SourceText {
                name: f.name.clone(),
                text: if used.contains(&id) { f.text.clone() } else { String::new() },
                kind: f.kind.clone(),
            })
            .collect(),
        compiled_for,
    };
    let mut section = Vec::new();
    section.extend_from_slice(MAGIC);
    section.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    section.extend_from_slice(&0u32.to_le_bytes());
    section.extend_from_slice(&(bpftap_version.len() as u16).to_le_bytes());
    section.extend_from_slice(bpftap_version.as_bytes());
    section.extend(postcard::to_stdvec(&body).expect("the body serializes: it has no maps with non-string keys"));

    let mut obj = elf_object(&compiled.object, |_| true);
    let id = obj.add_section(Vec::new(), SECTION.as_bytes().to_vec(), object::SectionKind::Metadata);
    obj.set_section_data(id, section, 8);
    let mut bytes = obj.write().expect("an ELF object of this shape always writes");
    seal(&mut bytes);
    bytes
}

/// Writes the checksum into an object's [`SECTION`] (over the whole file, that field zero).
/// Bytes without the section are left alone. Tests reseal damaged objects with it, to reach
/// the checks behind the checksum.
pub fn seal(bytes: &mut [u8]) {
    let Some(at) = section_offset(bytes).map(|s| s + CHECKSUM_AT).filter(|at| at + 4 <= bytes.len()) else {
        return;
    };
    bytes[at..at + 4].fill(0);
    let sum = crc32fast::hash(bytes);
    bytes[at..at + 4].copy_from_slice(&sum.to_le_bytes());
}

/// Reads a `.bo` written by this bpftap (`bpftap_version`, as given to [`write`]).
pub fn read(bytes: &[u8], bpftap_version: &str) -> Result<BoObject, BoError> {
    let file = object::File::parse(bytes).map_err(|e| BoError::NotElf(e.to_string()))?;
    let section = file.section_by_name(SECTION).ok_or(BoError::NotBpftap)?;
    let (start, size) = section.file_range().ok_or(BoError::Checksum)?;
    let data = usize::try_from(start)
        .ok()
        .zip(usize::try_from(size).ok())
        .and_then(|(s, n)| bytes.get(s..s.checked_add(n)?))
        .ok_or(BoError::Checksum)?;
    if !data.starts_with(MAGIC) || data.len() < VERSION_AT + 2 {
        return Err(BoError::NotBpftap);
    }
    let mut zeroed = bytes.to_vec();
    let at = start as usize + CHECKSUM_AT;
    zeroed[at..at + 4].fill(0);
    if crc32fast::hash(&zeroed) != u32_at(data, CHECKSUM_AT) {
        return Err(BoError::Checksum);
    }
    let object_format = u32_at(data, 8);
    let version_len = u16::from_le_bytes([data[VERSION_AT], data[VERSION_AT + 1]]) as usize;
    let body_at = VERSION_AT + 2 + version_len;
    let object_version = data.get(VERSION_AT + 2..body_at).map(String::from_utf8_lossy).unwrap_or_default();
    if object_format != FORMAT_VERSION || object_version != bpftap_version {
        return Err(BoError::Version {
            object: object_version.into_owned(),
            object_format,
            ours: bpftap_version.to_string(),
        });
    }
    let body: Body = postcard::from_bytes(&data[body_at..]).map_err(|e| BoError::Malformed(e.to_string()))?;
    let Body { program, mut object, kernel_probes, sources: texts, compiled_for } = body;
    for spec in &mut object.programs {
        spec.insns = program_code(&file, &spec.name).map_err(BoError::Malformed)?;
    }
    let mut sources = SourceMap::default();
    for t in texts {
        sources.add(t.name, t.text, t.kind);
    }
    let compiled =
        CompiledScript { globals: layout::globals_layout(&program), program, object, kernel_probes, maps: MAP_INDEXES };
    check(&compiled, &sources).map_err(BoError::Malformed)?;
    for fact in &compiled_for.facts {
        // Tracepoint names become tracefs paths when the facts are checked.
        if let KernelFact::TracepointField { group, event, .. } = fact {
            if !is_kernel_symbol(group) || !is_kernel_symbol(event) {
                return Err(BoError::Malformed(format!("tracepoint `{group}:{event}` is not a kernel symbol")));
            }
        }
    }
    Ok(BoObject { compiled, sources, compiled_for })
}

impl BoObject {
    /// Fits the object to `kernel`, the one it is about to run on: checks every fact it was
    /// compiled with (see [`kernel_facts`]) and moves the tracepoint fields and struct
    /// members that sit elsewhere there, in the instructions and in the IR (which user-space
    /// handlers run). A fact that fails is the error, naming what was asked and both kernels.
    pub fn fit_kernel(&mut self, kernel: &dyn KernelInfo) -> Result<(), BoError> {
        let compiled_on = format!("{} ({})", self.compiled_for.release, self.compiled_for.arch);
        let running = format!("{} ({})", kernel.release(), kernel.arch());
        let refuse =
            |what: String| BoError::Kernel { compiled_on: compiled_on.clone(), running: running.clone(), what };
        if kernel.arch() != self.compiled_for.arch {
            return Err(refuse("its code is for another architecture".into()));
        }
        let moves = kernel_facts::check(&self.compiled_for.facts, kernel).map_err(refuse)?;
        let member_move =
            |m: &MemberOffset| moves.members.iter().find(|mv| mv.id == m.ty && mv.member == m.member).map(|mv| mv.is);
        let CompiledScript { program, object, kernel_probes, .. } = &mut self.compiled;
        for spec in &mut object.programs {
            let tracepoint = kernel_probes.iter().find(|p| p.name == spec.name).and_then(|p| match &p.target {
                Target::Tracepoint { group, event, .. } => Some((group, event)),
                _ => None,
            });
            let field_move = |was: u32| {
                let (group, event) = tracepoint?;
                moves.fields.iter().find(|m| m.group == *group && m.event == *event && m.was == was).map(|m| m.is)
            };
            for r in &mut spec.field_relocs {
                let Some(is) = r.member.as_ref().map_or_else(|| field_move(r.offset), member_move) else {
                    continue;
                };
                let insn = &mut spec.insns[r.insn_index];
                if insn.class() == insn::class::LDX {
                    insn.off = i16::try_from(is).map_err(|_| BoError::Malformed(format!("offset {is} is too far")))?;
                } else {
                    insn.imm = i32::try_from(is).map_err(|_| BoError::Malformed(format!("offset {is} is too far")))?;
                }
                r.offset = is;
            }
            for call in spec.insns.iter_mut().filter(|i| i.code == insn::class::JMP | insn::jmp::CALL) {
                if let Some(m) =
                    moves.kfuncs.iter().find(|m| call.src == insn::pseudo::KFUNC_CALL && m.was as i32 == call.imm)
                {
                    call.imm = m.is as i32;
                }
            }
        }
        if let Some(iterator) = &mut program.loop_iterator {
            for id in [&mut iterator.new, &mut iterator.next, &mut iterator.destroy] {
                if let Some(m) = moves.kfuncs.iter().find(|m| m.was == *id) {
                    *id = m.is;
                }
            }
        }
        for func in program.handlers.iter_mut().map(|h| &mut h.func) {
            let moved: Vec<(Var, u32)> =
                func.member_offsets.iter().filter_map(|(v, m)| Some((*v, member_move(m)?))).collect();
            for inst in func.blocks.values_mut().flat_map(|b| &mut b.insts) {
                if let InstKind::Binary { op: BinOp::Add, dst, rhs, .. } = &mut inst.kind {
                    if let Some((_, is)) = moved.iter().find(|(v, _)| v == dst) {
                        *rhs = Operand::Imm(*is as i64);
                    }
                }
            }
        }
        Ok(())
    }
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

/// The file offset of [`SECTION`] in an object.
fn section_offset(bytes: &[u8]) -> Option<usize> {
    let file = object::File::parse(bytes).ok()?;
    let (start, _) = file.section_by_name(SECTION)?.file_range()?;
    usize::try_from(start).ok()
}

/// The instructions of the program whose symbol is `name`: the symbol's bytes of its section.
fn program_code(file: &object::File<'_>, name: &str) -> Result<Vec<Insn>, String> {
    let missing = || format!("program {name} has no code in the object");
    let symbol = file.symbols().find(|s| s.name() == Ok(name)).ok_or_else(missing)?;
    let section = symbol.section_index().and_then(|i| file.section_by_index(i).ok()).ok_or_else(missing)?;
    let data = section.data().map_err(|e| format!("program {name}: {e}"))?;
    let code = usize::try_from(symbol.address())
        .ok()
        .zip(usize::try_from(symbol.size()).ok())
        .and_then(|(at, n)| data.get(at..at.checked_add(n)?))
        .filter(|c| !c.is_empty() && c.len() % Insn::SIZE == 0)
        .ok_or_else(|| format!("program {name}: its symbol does not cover whole instructions of its section"))?;
    Ok(insn::decode(code))
}

/// The files any span of the script points into.
fn used_files(compiled: &CompiledScript) -> std::collections::HashSet<FileId> {
    spans(compiled).map(|s| s.file).collect()
}

/// Every span the runtime may render: handlers', instructions' and the kernel probes'.
fn spans(compiled: &CompiledScript) -> impl Iterator<Item = Span> + '_ {
    let handlers = compiled.program.handlers.iter().flat_map(|h| {
        std::iter::once(h.span).chain(h.func.blocks.values().flat_map(|b| b.insts.iter().map(|i| i.span)))
    });
    handlers.chain(compiled.kernel_probes.iter().flat_map(|p| p.spans.iter().map(|(_, s)| *s)))
}

/// The consistency a well-formed body has and the runtime relies on without checking:
/// every id names something that exists, every relocation sits on an `ld_imm64` of its
/// program and names a map or a `.rodata` byte, the maps are the ones the program's layouts
/// imply, and every span lies on character boundaries of its file.
pub fn check(compiled: &CompiledScript, sources: &SourceMap) -> Result<(), String> {
    let program = &compiled.program;
    if !(16..=2048).contains(&program.string_capacity) {
        return Err(format!("string capacity {} is outside 16 to 2048", program.string_capacity));
    }
    if let Some(e) = lang::ir::verify(program).first() {
        return Err(format!("invalid IR in handler {}: {}", e.handler, e.message));
    }
    check_references(program)?;
    let object = &compiled.object;
    let scratch = object.maps.get(MAP_INDEXES.scratch).map_or(0, |m| m.value_size);
    if object.maps != compile::map_defs(program, &compiled.globals, scratch) {
        return Err("its maps do not match the script's globals and arrays".into());
    }
    for spec in &object.programs {
        for r in &spec.field_relocs {
            // Only the forms `emit` writes, so that moving a field rewrites nothing else: a
            // context load or an add for a tracepoint field, an add for a member.
            let holds_offset = spec.insns.get(r.insn_index).is_some_and(|i| {
                let ctx_load = i.class() == insn::class::LDX && i.src == 6 && i.off as i64 == r.offset as i64;
                let add = *i == insn::alu64_imm(insn::AluOp::Add, insn::Reg(i.dst), r.offset as i32);
                add || (ctx_load && r.member.is_none())
            });
            if !holds_offset {
                return Err(format!(
                    "program {} has a bad field relocation at instruction {}",
                    spec.name, r.insn_index
                ));
            }
        }
        for r in &spec.relocs {
            let on_ld_imm64 = r.insn_index + 1 < spec.insns.len() && spec.insns[r.insn_index].is_ld_imm64();
            let target_exists = match r.target {
                RelocTarget::Map(m) | RelocTarget::MapValue(m) => m < object.maps.len(),
                RelocTarget::Rodata(offset) => (offset as usize) < object.rodata.len(),
            };
            if !on_ld_imm64 || !target_exists {
                return Err(format!("program {} has a bad relocation at instruction {}", spec.name, r.insn_index));
            }
        }
    }
    let has_program = |name: &str| object.programs.iter().any(|p| p.name == name);
    for probe in &compiled.kernel_probes {
        // The loader joins these to tracefs paths and hands them to the kernel by name.
        let names: &[&str] = match probe.target.kernel_program().map(|p| p.attach) {
            Some(Attach::Tracepoint { group, event }) => &[group, event],
            Some(Attach::BtfRawTracepoint { event } | Attach::RawTracepoint { event }) => &[event],
            Some(Attach::Function { name, module: Some(module), .. }) => &[name, module],
            Some(Attach::Function { name, .. }) => &[name],
            _ => &[],
        };
        if let Some(bad) = names.iter().find(|n| !is_kernel_symbol(n)) {
            return Err(format!("kernel probe {} names `{bad}`, not a kernel symbol", probe.name));
        }
        let handler = program.handlers.get(probe.handler).filter(|h| h.target == probe.target);
        if handler.is_none() || probe.target.is_user_space() {
            return Err(format!("kernel probe {} names no kernel handler", probe.name));
        }
        if let Some(missing) = std::iter::once(&probe.name).chain(&probe.kprobe_fallback).find(|n| !has_program(n)) {
            return Err(format!("kernel probe {} names a missing program {missing}", probe.name));
        }
    }
    for span in spans(compiled) {
        let text = (span.file.0 as usize) < sources.files().count();
        let fits = text && {
            let t = &sources.file(span.file).text;
            span.start <= span.end && t.is_char_boundary(span.start as usize) && t.is_char_boundary(span.end as usize)
        };
        if !fits {
            return Err(format!("a span ({}:{}..{}) lies outside its source text", span.file.0, span.start, span.end));
        }
    }
    Ok(())
}

/// A name the kernel could give a tracepoint, its group or a function: nothing that could
/// walk out of a tracefs directory.
fn is_kernel_symbol(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// What `ir::verify` does not look at: array ids (with their key counts), format ids (with
/// their argument counts) and the argument counts of built-in calls.
fn check_references(program: &Program) -> Result<(), String> {
    for handler in &program.handlers {
        for inst in handler.func.blocks.values().flat_map(|b| &b.insts) {
            let (array, keys) = match &inst.kind {
                InstKind::ArrayGet { array, keys, .. }
                | InstKind::ArraySet { array, keys, .. }
                | InstKind::ArrayAdd { array, keys, .. }
                | InstKind::ArrayDelete { array, keys }
                | InstKind::ArrayContains { array, keys, .. }
                | InstKind::StatAdd { array, keys, .. }
                | InstKind::StatGet { array, keys, .. }
                | InstKind::PrintHist { array, keys, .. } => (Some(*array), Some(keys.len())),
                InstKind::ArrayDeleteMatching { array, keys } | InstKind::ArrayContainsMatching { array, keys, .. } => {
                    (Some(*array), Some(keys.len()))
                }
                InstKind::ArrayClear { array } | InstKind::IterStart { array, .. } => (Some(*array), None),
                _ => (None, None),
            };
            if let Some(a) = array {
                let decl = program.arrays.get(a).ok_or_else(|| format!("{a} is not declared"))?;
                if keys.is_some_and(|n| n != decl.keys.len()) {
                    return Err(format!("{a} is used with the wrong number of keys"));
                }
            }
            if let InstKind::Call { builtin, args, .. } = &inst.kind {
                // The interpreter takes a built-in's arguments by position.
                let takes = |s: &&Signature| s.lowering == Lowering::Builtin(*builtin) && s.params.len() == args.len();
                if !BUILTINS.iter().any(|s| takes(&s)) {
                    return Err(format!("{} is called with {} arguments", builtin.name(), args.len()));
                }
            }
            if let InstKind::Sprintf { fmt, args, .. } | InstKind::Printf { fmt, args } = &inst.kind {
                let decl = program.formats.get(*fmt).ok_or_else(|| format!("{fmt} is not declared"))?;
                if decl.args.len() != args.len() {
                    return Err(format!("{fmt} is used with the wrong number of arguments"));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use lang::elaborate::{self, Input};
    use lang::ir::{Function, GlobalDecl, GlobalStorage, Handler, Inst, Ty};
    use lang::kernel::{Fixture, TracepointField, TracepointFormat};
    use lang::preprocess::{Macros, PreprocessEnv};

    use super::*;
    use crate::kernel_facts::tests::Types;

    fn connect_kernel(uservaddr_offset: u32) -> Fixture {
        let field = |name: &str, offset| TracepointField {
            name: name.into(),
            c_type: "long".into(),
            offset,
            size: 8,
            signed: false,
        };
        let format = TracepointFormat {
            group: "syscalls".into(),
            event: "sys_enter_connect".into(),
            common_fields: Vec::new(),
            fields: vec![field("fd", 16), field("uservaddr", uservaddr_offset)],
        };
        let mut kernel = Fixture::default();
        kernel.tracepoints.insert(("syscalls".into(), "sys_enter_connect".into()), format);
        kernel
    }

    /// An object of `probe kernel.trace("syscalls:sys_enter_connect") { g = $uservaddr }`,
    /// compiled where `uservaddr` is at offset 24, and recording that it reads `field` there.
    fn object_reading(field: &str) -> BoObject {
        let mut program = Program { string_capacity: 128, ..Program::default() };
        let g = program.globals.push(GlobalDecl {
            name: "g".into(),
            ty: Ty::Long,
            init: None,
            read: true,
            storage: GlobalStorage::Shared,
        });
        let mut func = Function::default();
        let v = func.new_var(Ty::Long, None);
        let entry = func.new_block();
        func.blocks[entry].insts = vec![
            Inst { kind: InstKind::LoadContext { dst: v, offset: 24, size: 8, signed: false }, span: Span::default() },
            Inst { kind: InstKind::StoreGlobal { global: g, src: v }, span: Span::default() },
        ];
        func.entry = Some(entry);
        program.handlers.push(Handler {
            point: "kernel.trace(\"syscalls:sys_enter_connect\")".into(),
            user_point: "syscall.connect".into(),
            target: Target::Tracepoint { group: "syscalls".into(), event: "sys_enter_connect".into(), record_size: 40 },
            func,
            span: Span::default(),
            optional: false,
        });
        let compiled = compile::compile(program).expect("the handler compiles");
        let fact = KernelFact::TracepointField {
            group: "syscalls".into(),
            event: "sys_enter_connect".into(),
            field: field.into(),
            offset: 24,
            size: 8,
        };
        let compiled_for = CompiledFor { arch: "x86_64".into(), release: "6.18.0-here".into(), facts: vec![fact] };
        let mut sources = SourceMap::default();
        sources.add("t.stp", "", SourceKind::Script);
        BoObject { compiled, sources, compiled_for }
    }

    /// The offsets of the context loads of the object's one program.
    fn context_loads(object: &BoObject) -> Vec<i16> {
        let insns = &object.compiled.object.programs[0].insns;
        insns.iter().filter(|i| i.class() == insn::class::LDX && i.src == 6).map(|i| i.off).collect()
    }

    #[test]
    fn a_moved_tracepoint_field_is_relocated() {
        let mut object = object_reading("uservaddr");
        assert_eq!(check(&object.compiled, &object.sources), Ok(()));
        assert_eq!(context_loads(&object), [24]);
        assert_eq!(object.fit_kernel(&connect_kernel(24)), Ok(()));
        assert_eq!(context_loads(&object), [24]);
        assert_eq!(object.fit_kernel(&connect_kernel(32)), Ok(()));
        assert_eq!(context_loads(&object), [32]);
        assert_eq!(object.compiled.object.programs[0].field_relocs[0].offset, 32);
        assert_eq!(check(&object.compiled, &object.sources), Ok(()));
    }

    #[test]
    fn a_tracepoint_field_that_cannot_be_resolved_is_an_error() {
        let missing = object_reading("dport").fit_kernel(&connect_kernel(24)).unwrap_err().to_string();
        assert_eq!(
            missing,
            "the object was compiled on 6.18.0-here (x86_64) and cannot run on 6.1.0-fixture (x86_64): field \
             `dport` of tracepoint syscalls:sys_enter_connect: no such field"
        );
        let mut object = object_reading("uservaddr");
        let no_tracepoint = object.fit_kernel(&Fixture::default()).unwrap_err().to_string();
        assert!(no_tracepoint.ends_with("sys_enter_connect: no such tracepoint"), "{no_tracepoint}");
        let mut narrower = connect_kernel(24);
        narrower.tracepoints.values_mut().for_each(|f| f.fields[1].size = 4);
        let resized = object.fit_kernel(&narrower).unwrap_err().to_string();
        assert!(
            resized.ends_with("uservaddr` of tracepoint syscalls:sys_enter_connect has 4 bytes here, and had 8"),
            "{resized}"
        );
        let mut other_arch = object_reading("uservaddr");
        other_arch.compiled_for.arch = "aarch64".into();
        let refused = other_arch.fit_kernel(&connect_kernel(24)).unwrap_err().to_string();
        assert!(refused.ends_with("its code is for another architecture"), "{refused}");
    }

    /// The object of a script printing `task_current()->cred->euid`, compiled on `kernel`
    /// (as `-p4 -m` does: its questions recorded), written and read back.
    fn object_reading_euid(kernel: &Types) -> BoObject {
        let text = r#"probe kernel.trace("syscalls:sys_enter_getppid") {
            printf("%d\n", @cast(task_current(), "task_struct")->cred->euid) }"#;
        let mut sources = SourceMap::default();
        let file = sources.add("t.stp", text, SourceKind::Script);
        let (script, diags) = lang::parse::parse(&sources, file, &PreprocessEnv::default(), &mut Macros::default());
        assert!(diags.is_empty(), "parse: {diags:?}");
        let recorder = Recorder::new(kernel);
        let (elaborated, diags) = elaborate::elaborate(&Input { script: &script, tapsets: &[] }, &recorder);
        assert!(diags.is_empty(), "elaborate: {diags:?}");
        let (types, diags) = lang::types::check(&elaborated, &Default::default());
        assert!(diags.is_empty(), "types: {diags:?}");
        let (program, diags) = lang::lower::lower(&elaborated, &types, &recorder, &Default::default());
        assert!(diags.is_empty(), "lower: {diags:?}");
        let compiled = compile::compile(program).expect("the handler compiles");
        read(&write(&compiled, &sources, "test", &recorder), "test").expect("the object reads back")
    }

    /// Each struct member relocation of the object's one program: the member, the offset it
    /// records, the immediate of the `add` it points at, and the offset the IR adds.
    fn member_offsets(object: &BoObject) -> Vec<(String, u32, i32, i64)> {
        let spec = &object.compiled.object.programs[0];
        let func = &object.compiled.program.handlers[0].func;
        let ir_offset = |v: Var| {
            let adds = func.blocks.values().flat_map(|b| &b.insts).filter_map(|i| match i.kind {
                InstKind::Binary { op: BinOp::Add, dst, rhs: Operand::Imm(imm), .. } if dst == v => Some(imm),
                _ => None,
            });
            adds.collect::<Vec<_>>()
        };
        let relocs = spec.field_relocs.iter().filter_map(|r| Some((r, r.member.as_ref()?)));
        relocs
            .map(|(r, m)| {
                let (v, _) = func.member_offsets.iter().find(|(_, n)| n == m).expect("the IR notes the member");
                let [ir] = ir_offset(*v)[..] else { panic!("one add sets {v}") };
                (m.member.clone(), r.offset, spec.insns[r.insn_index].imm, ir)
            })
            .collect()
    }

    #[test]
    fn a_struct_member_elsewhere_is_relocated() {
        let mut object = object_reading_euid(&Types::new(10, 1736));
        let compiled_here = [("cred".to_string(), 1736, 1736, 1736), ("euid".to_string(), 20, 20, 20)];
        assert_eq!(member_offsets(&object), compiled_here);
        assert_eq!(object.fit_kernel(&Types::new(500, 1736)), Ok(()));
        assert_eq!(member_offsets(&object), compiled_here);
        assert_eq!(object.fit_kernel(&Types::new(500, 3392)), Ok(()));
        assert_eq!(member_offsets(&object), [("cred".to_string(), 3392, 3392, 3392), ("euid".to_string(), 20, 20, 20)]);
        assert_eq!(check(&object.compiled, &object.sources), Ok(()));
    }

    #[test]
    fn a_struct_member_that_cannot_be_resolved_is_an_error() {
        let mut object = object_reading_euid(&Types::new(10, 1736));
        let no_cred = Types { cred_offset: None, ..Types::new(500, 0) };
        let arch = "x86_64";
        assert_eq!(
            object.fit_kernel(&no_cred).unwrap_err().to_string(),
            format!(
                "the object was compiled on test-10 ({arch}) and cannot run on test-500 ({arch}): member `cred` of \
                 struct task_struct: no such member here"
            )
        );
        let wider = Types { euid_size: 8, ..Types::new(500, 3392) };
        let resized = object.fit_kernel(&wider).unwrap_err().to_string();
        assert!(
            resized.ends_with("uint32 is an unsigned integer of 8 bytes here, and was an unsigned integer of 4 bytes"),
            "{resized}"
        );
        assert_eq!(member_offsets(&object)[0].2, 1736, "nothing moves in an object that is refused");
    }
}
