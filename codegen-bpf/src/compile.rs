//! The driver of this crate: an [`ir::Program`] to a [`CompiledScript`].
//!
//! Kernel handlers become BPF programs in one object, sharing three maps (the ring buffer
//! for output, the globals array and the per-CPU scratch area) and one map per global array
//! or statistic. User-space handlers are kept as IR for the runtime's interpreter.

use lang::ir::{Program, Target};
use lang::span::Span;

use crate::disasm;
use crate::emit::{self, EmitError, MapIndexes, Rodata};
use crate::layout::{self, GlobalsLayout, GlobalsPlan};
use crate::object::{map_type, MapDef, ObjectSpec, ProgramSpec, RelocTarget};

/// Size of the output ring buffer in bytes (a power of two, a multiple of the page size).
pub const RINGBUF_BYTES: u32 = 1 << 20;

/// Where the shared maps sit in every script's map list (see [`map_defs`]).
pub const MAP_INDEXES: MapIndexes = MapIndexes { ringbuf: 0, globals: 1, scratch: 2 };

/// `BPF_F_MMAPABLE` from the kernel's uapi `bpf.h`.
const BPF_F_MMAPABLE: u32 = 1 << 10;

/// A script ready to load. Everything in it but `globals` and `maps` (functions of the
/// program) is written to a `.bo` object (see [`crate::bo`]).
#[derive(Clone, Debug)]
pub struct CompiledScript {
    pub program: Program,
    pub object: ObjectSpec,
    /// One per kernel handler, in the order of `object.programs`.
    pub kernel_probes: Vec<KernelProbe>,
    pub globals: GlobalsLayout,
    pub maps: MapIndexes,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KernelProbe {
    /// The program's name in `object.programs`.
    pub name: String,
    /// For a kernel function probe compiled for fentry/fexit (`name`), the same handler
    /// compiled for kprobe/kretprobe, used where the kernel refuses fentry.
    pub kprobe_fallback: Option<String>,
    /// Index of the handler in `program.handlers`.
    pub handler: usize,
    /// The handler reads nothing of its context ([`lang::ir::Function::reads_context`]): a
    /// tracepoint probe then attaches as a raw tracepoint, by name, for which the kernel
    /// builds no record and whose link closes without the grace period a perf event waits.
    pub context_free: bool,
    pub target: Target,
    /// `(first instruction, script span)` per IR instruction.
    pub spans: Vec<(usize, Span)>,
}

pub fn compile(program: Program) -> Result<CompiledScript, EmitError> {
    compile_in(program, &GlobalsPlan::default())
}

/// [`compile`] with the globals where `plan` puts them (see [`GlobalsPlan`]); the default
/// plan is a script's own map.
pub fn compile_in(program: Program, plan: &GlobalsPlan) -> Result<CompiledScript, EmitError> {
    let globals = match plan.size {
        0 => layout::globals_layout(&program),
        _ => match layout::planned_globals_layout(&program, plan) {
            Some(globals) => globals,
            None => {
                let span = program.handlers.first().map_or(Span::default(), |h| h.span);
                return Err(EmitError::GlobalsFull { size: plan.size, span });
            }
        },
    };
    let maps = MAP_INDEXES;
    let mut rodata = Rodata::default();
    let mut programs = Vec::new();
    let mut kernel_probes = Vec::new();
    let mut scratch_size = 8;
    // A unit of a session can be stopped alone (its flag set, then detached), so its
    // handlers always check.
    let guard_exit = plan.size > 0
        || program
            .handlers
            .iter()
            .flat_map(|h| h.func.blocks.values())
            .any(|b| b.insts.iter().any(|i| matches!(i.kind, lang::ir::InstKind::Exit)));
    for (i, handler) in program.handlers.iter().enumerate() {
        let Some(kernel_program) = handler.target.kernel_program() else { continue };
        let cx = emit::Context { program: &program, globals: &globals, maps, guard_exit };
        let emit = |rodata: &mut Rodata, args| {
            let exit_value = kernel_program.returns;
            let spec = emit::HandlerSpec { index: i as u32, func: &handler.func, span: handler.span, exit_value, args };
            emit::emit_handler(cx, spec, rodata)
        };
        let emitted = emit(&mut rodata, kernel_program.context)?;
        let mut kprobe_fallback = None;
        if let Some(fallback) = &kernel_program.fallback {
            // A handler the other form cannot run (one that reads arguments at a return
            // has no kretprobe form) runs only where the first form does.
            if let Ok(other) = emit(&mut rodata, fallback.context) {
                let kname = format!("bpftap_k{i}");
                programs.push(ProgramSpec {
                    name: kname.clone(),
                    section: fallback.section.clone(),
                    insns: other.insns,
                    relocs: other.relocs,
                    field_relocs: other.field_relocs,
                });
                kprobe_fallback = Some(kname);
            }
        }
        scratch_size = scratch_size.max(emitted.scratch_size);
        let name = format!("bpftap_p{i}");
        programs.push(ProgramSpec {
            name: name.clone(),
            section: kernel_program.section,
            insns: emitted.insns,
            relocs: emitted.relocs,
            field_relocs: emitted.field_relocs,
        });
        kernel_probes.push(KernelProbe {
            name,
            kprobe_fallback,
            handler: i,
            context_free: !handler.func.reads_context(),
            target: handler.target.clone(),
            spans: emitted.spans,
        });
    }
    let map_defs = map_defs(&program, &globals, scratch_size);
    let object = ObjectSpec { programs, maps: map_defs, rodata: rodata.bytes, license: "GPL".into() };
    Ok(CompiledScript { program, object, kernel_probes, globals, maps })
}

/// The maps of a script, in the order of [`MapIndexes`] and [`layout::array_map_index`]:
/// the ring buffer, the globals, the per-CPU scratch area of `scratch_size` bytes, then one
/// per global array or statistic. A function of the program alone (and of the scratch size
/// its handlers need), so a `.bo` reader checks the maps it is given against it.
pub fn map_defs(program: &Program, globals: &GlobalsLayout, scratch_size: u32) -> Vec<MapDef> {
    let mut map_defs = vec![
        MapDef {
            name: "bpftap_output".into(),
            map_type: map_type::RINGBUF,
            key_size: 0,
            value_size: 0,
            max_entries: RINGBUF_BYTES,
            flags: 0,
        },
        globals_map(globals.size),
        MapDef {
            name: "bpftap_scratch".into(),
            map_type: map_type::PERCPU_ARRAY,
            key_size: 4,
            value_size: scratch_size,
            max_entries: 1,
            flags: 0,
        },
    ];
    for (a, decl) in program.arrays.iter() {
        let (_, key_size) = layout::key_layout(decl);
        let map_type = match (decl.value, decl.wrap) {
            (lang::ir::ValueKind::Stat, _) => map_type::PERCPU_HASH,
            _ if decl.per_cpu => map_type::PERCPU_HASH,
            (_, true) => map_type::LRU_HASH,
            (_, false) => map_type::HASH,
        };
        debug_assert_eq!(layout::array_map_index(a), map_defs.len());
        map_defs.push(MapDef {
            name: array_map_name(a, &decl.name),
            map_type,
            key_size,
            value_size: layout::array_value_size(decl, program.string_capacity),
            max_entries: decl.max_entries,
            flags: 0,
        });
    }
    map_defs
}

/// The map of the globals, of `size` bytes.
pub fn globals_map(size: u32) -> MapDef {
    MapDef {
        name: "bpftap_globals".into(),
        map_type: map_type::ARRAY,
        key_size: 4,
        value_size: size,
        max_entries: 1,
        // The runtime maps the value into its memory to read and write globals.
        flags: BPF_F_MMAPABLE,
    }
}

/// The symbol name of an array's map: unique, and readable in `bpftool map` (which shows
/// the first 15 bytes).
pub fn array_map_name(a: lang::ir::ArrayId, name: &str) -> String {
    let clean: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    format!("a{}_{clean}", cranelift_entity::EntityRef::index(a))
}

impl CompiledScript {
    /// The `-p4` listing: per kernel probe, its disassembly with the script lines that
    /// produced each run of instructions.
    pub fn listing(&self, sources: &lang::span::SourceMap) -> String {
        let map_names: Vec<&str> = self.object.maps.iter().map(|m| m.name.as_str()).chain([".rodata"]).collect();
        let mut out = String::new();
        for probe in &self.kernel_probes {
            let Some(spec) = self.object.programs.iter().find(|p| p.name == probe.name) else {
                continue;
            };
            let (insns, relocs) = (&spec.insns, &spec.relocs);
            // For display, a map reference holds the map's index, which names it (`.rodata`
            // comes after the maps).
            let mut insns = insns.clone();
            for r in relocs {
                insns[r.insn_index].imm = match r.target {
                    RelocTarget::Map(m) | RelocTarget::MapValue(m) => m as i32,
                    RelocTarget::Rodata(_) => map_names.len() as i32 - 1,
                };
            }
            let handler = &self.program.handlers[probe.handler];
            out.push_str(&format!("# probe {} ({} instructions)\n", handler.point, insns.len()));
            let text = disasm::disasm(&insns, &map_names);
            let mut marks = probe.spans.iter().peekable();
            let mut last_line = None;
            for line in text.lines() {
                // Lines start with the instruction index (an ld_imm64 takes two).
                let k: usize = line.split(':').next().and_then(|n| n.trim().parse().ok()).unwrap_or(0);
                while let Some((at, span)) = marks.peek() {
                    if *at > k {
                        break;
                    }
                    let (l, _) = sources.line_col(*span);
                    let key = (span.file, l);
                    if last_line != Some(key) && *span != Span::default() {
                        let src = sources.line_text(*span).trim();
                        out.push_str(&format!("    ; {src}  [{}:{l}]\n", sources.file(span.file).name));
                        last_line = Some(key);
                    }
                    marks.next();
                }
                out.push_str(line);
                out.push('\n');
            }
            out.push('\n');
        }
        out
    }
}
