//! The compiled script as data ([`ObjectSpec`]: programs with their relocations, map
//! definitions, read-only data, license), which the runtime loads with the bpf calls
//! directly, and its ELF form for `bpftap --emit-elf`.
//!
//! [`write_object`] gives the bytes of a relocatable ELF file (EM_BPF, 64-bit, little endian)
//! that `aya::EbpfLoader::load` accepts. The runtime once loaded scripts that way; it no
//! longer does because aya parses the whole vmlinux BTF on every load (see
//! `runtime/src/bpf.rs`), so the ELF form is an output for other tools now.
//!
//! What aya 0.14 / aya-obj 0.3 need, learned from their source (`aya-obj/src/obj.rs`,
//! `relocation.rs`) and checked by `runtime/tests/load_object.rs` on a real kernel:
//!
//! - **Programs.** A section is a program when its name is not a reserved one (`maps`,
//!   `.rodata`, `license`, `.text`, ...) and it has `SHF_EXECINSTR` with a non-zero size.
//!   The part of the name before the first `/` picks the program type (`tracepoint`/`tp`,
//!   `raw_tp`/`raw_tracepoint`, `tp_btf`, `kprobe`, `uprobe`, `perf_event`, ...). Each
//!   program needs a FUNC symbol (global here) at its start whose size is the code size:
//!   aya cuts the instructions by the symbol, and the symbol's name is the program's name
//!   in `Ebpf::program_mut`.
//! - **Legacy maps.** Every symbol in the section named `maps` is one map, named after the
//!   symbol, whose definition is the `st_size` bytes at its address: `struct bpf_map_def`,
//!   seven `u32`s (type, key_size, value_size, max_entries, map_flags, id, pinning), 28 bytes.
//!   At least the first five must be present; pinning must be 0 (none) or 1 (by name), since
//!   aya reads it straight into an enum. So no other symbol may live in `maps`.
//! - **Map relocations.** `R_BPF_64_64` (type 1) at the first slot of an `ld_imm64`, against
//!   the map's symbol. aya sets `src` = `BPF_PSEUDO_MAP_FD` and `imm` = the map fd.
//! - **`.rodata`.** Becomes a one-entry array map named `.rodata` (value size = section size,
//!   `BPF_F_RDONLY_PROG`), created with the section's bytes and frozen. A relocation against
//!   any symbol of that section (we use the section symbol) turns the `ld_imm64` into
//!   `BPF_PSEUDO_MAP_VALUE`: slot 0 `imm` = fd, slot 1 `imm` = old slot 0 `imm` + symbol
//!   value. BPF objects use REL relocations (implicit addends), so we put the offset in
//!   slot 0's `imm` and give the relocation addend 0.
//! - **License.** A `license` section with a NUL-terminated string; GPL-only helpers such
//!   as `bpf_snprintf` and `bpf_probe_read_*` need "GPL".
//! - **Names.** The kernel accepts only `[A-Za-z0-9_.]` in map and program names and keeps
//!   15 bytes (aya truncates). aya's own tables use the full symbol names, so those must be
//!   unique; see [`kernel_name`].
//!
//! Invariant: the output depends only on the spec (no timestamps, no host data).

use lang::ir::MemberOffset;
use object::write::{Object, Relocation, SectionId, Symbol, SymbolId, SymbolSection};
use object::{
    elf, Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags, SymbolKind, SymbolScope,
};

use crate::insn::{self, Insn};

/// Everything one object file holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectSpec {
    pub programs: Vec<ProgramSpec>,
    pub maps: Vec<MapDef>,
    /// Read-only data (format strings, constant keys), addressed by [`RelocTarget::Rodata`].
    /// Omitted from the object when empty.
    pub rodata: Vec<u8>,
    /// Written NUL-terminated; "GPL" unless there is a reason otherwise.
    pub license: String,
}

/// One BPF program.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProgramSpec {
    /// The symbol name: `[A-Za-z0-9_.]`, unique in the object; the kernel keeps 15 bytes.
    pub name: String,
    /// The ELF section, e.g. `tracepoint/syscalls/sys_enter_connect` or `raw_tp/sched_switch`.
    pub section: String,
    /// Not in a `.bo`'s own section: read back from the program's ELF section, where tools
    /// see them.
    #[serde(skip)]
    pub insns: Vec<Insn>,
    pub relocs: Vec<Reloc>,
    /// Where the program uses offsets of its tracepoint record's fields or of kernel struct
    /// members: a `.bo` loaded on another kernel moves them (see `crate::bo`).
    pub field_relocs: Vec<FieldReloc>,
}

/// An `ld_imm64` whose value the loader fills in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reloc {
    /// Index in [`ProgramSpec::insns`] of the first slot of an `ld_imm64`.
    pub insn_index: usize,
    pub target: RelocTarget,
}

/// An instruction holding the offset of a field that another kernel may have elsewhere: a
/// field of the tracepoint record, the program's context (`ldx [ctx + offset]`, or
/// `add r, offset` after `r = ctx`), or a kernel struct member (`add r, offset`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldReloc {
    pub insn_index: usize,
    /// The field's offset compiled in.
    pub offset: u32,
    /// The struct member it is the offset of; `None` for a tracepoint record's field.
    pub member: Option<MemberOffset>,
}

/// What a relocated `ld_imm64` loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RelocTarget {
    /// The map pointer of `ObjectSpec::maps[i]`.
    Map(usize),
    /// The address of byte `offset` of [`ObjectSpec::rodata`].
    Rodata(u32),
    /// The address of the value of the one-entry array `ObjectSpec::maps[i]`
    /// (`BPF_PSEUDO_MAP_VALUE`): how programs reach the globals, with no lookup.
    MapValue(usize),
}

/// A map, written as a legacy `bpf_map_def`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MapDef {
    /// The symbol name: `[A-Za-z0-9_.]`, unique in the object; the kernel keeps 15 bytes.
    pub name: String,
    /// A `BPF_MAP_TYPE_*` value, e.g. [`map_type::RINGBUF`].
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    /// `BPF_F_*` map flags.
    pub flags: u32,
}

/// `BPF_MAP_TYPE_*` values used by bpftap (`enum bpf_map_type` in `include/uapi/linux/bpf.h`).
pub mod map_type {
    pub const HASH: u32 = 1;
    pub const ARRAY: u32 = 2;
    pub const PERCPU_HASH: u32 = 5;
    pub const PERCPU_ARRAY: u32 = 6;
    pub const LRU_HASH: u32 = 9;
    /// Keys 0, values `max_entries` bytes (a power of two multiple of the page size).
    pub const RINGBUF: u32 = 27;
}

/// The size of one legacy `bpf_map_def` in the `maps` section.
pub const MAP_DEF_SIZE: usize = 28;

/// The ELF relocation type for a 64-bit immediate (`ld_imm64`).
pub const R_BPF_64_64: u32 = elf::R_BPF_64_64;

/// Writes the object file.
///
/// Panics if a relocation names an instruction that is not the first slot of an
/// `ld_imm64`, or a map that does not exist: both are emitter bugs, not user errors.
pub fn write_object(spec: &ObjectSpec) -> Vec<u8> {
    elf_object(spec, |p| p.section != lang::family::netfilter::SECTION)
        .write()
        .expect("an ELF object of this shape always writes")
}

/// The ELF object of [`write_object`] before it is written, with the programs `keep`
/// accepts; a `.bo` ([`crate::bo`]) keeps every program and adds its own section.
pub(crate) fn elf_object(spec: &ObjectSpec, keep: impl Fn(&ProgramSpec) -> bool) -> Object<'static> {
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little);

    // A map whose value programs address directly is a data section for ELF loaders
    // (`.bss.NAME`, zero-filled), not a legacy map definition.
    let value_maps: Vec<bool> = (0..spec.maps.len())
        .map(|m| spec.programs.iter().flat_map(|p| &p.relocs).any(|r| r.target == RelocTarget::MapValue(m)))
        .collect();
    let legacy: Vec<&MapDef> = spec.maps.iter().zip(&value_maps).filter(|(_, v)| !**v).map(|(m, _)| m).collect();
    let mut legacy_symbols = add_maps(&mut obj, &legacy).into_iter();
    let maps_symbols: Vec<SymbolId> = spec
        .maps
        .iter()
        .zip(&value_maps)
        .map(|(map, value)| match value {
            false => legacy_symbols.next().expect("one symbol per legacy map"),
            true => {
                let name = format!(".bss.{}", map.name);
                let section = obj.add_section(Vec::new(), name.into_bytes(), SectionKind::UninitializedData);
                obj.append_section_bss(section, map.value_size as u64, 8);
                obj.section_symbol(section)
            }
        })
        .collect();
    let rodata_symbol = (!spec.rodata.is_empty()).then(|| {
        let section = obj.add_section(Vec::new(), b".rodata".to_vec(), SectionKind::ReadOnlyData);
        obj.set_section_data(section, spec.rodata.clone(), 8);
        obj.section_symbol(section)
    });

    for program in spec.programs.iter().filter(|p| keep(p)) {
        debug_assert!(is_kernel_name(&program.name), "bad program name {:?}", program.name);
        let mut insns = program.insns.clone();
        let mut relocations = Vec::with_capacity(program.relocs.len());
        for reloc in &program.relocs {
            let idx = reloc.insn_index;
            assert!(
                insns[idx].is_ld_imm64() && idx + 1 < insns.len(),
                "relocation at {idx} in {} is not on an ld_imm64",
                program.name
            );
            // aya rewrites `src` and both `imm`s; what it reads is slot 0's `imm`, which it
            // adds to the symbol value for `.rodata`.
            let (symbol, imm) = match reloc.target {
                RelocTarget::Map(map) | RelocTarget::MapValue(map) => (maps_symbols[map], 0),
                RelocTarget::Rodata(offset) => {
                    let symbol = rodata_symbol.expect("a .rodata relocation needs .rodata bytes");
                    debug_assert!((offset as usize) < spec.rodata.len());
                    (symbol, offset as i32)
                }
            };
            insns[idx].src = 0;
            insns[idx].imm = imm;
            insns[idx + 1].imm = 0;
            relocations.push(Relocation {
                offset: (idx * Insn::SIZE) as u64,
                symbol,
                addend: 0,
                flags: RelocationFlags::Elf { r_type: R_BPF_64_64 },
            });
        }

        let code = insn::encode(&insns);
        let section = obj.add_section(Vec::new(), program.section.as_bytes().to_vec(), SectionKind::Text);
        obj.add_symbol(Symbol {
            name: program.name.as_bytes().to_vec(),
            value: 0,
            size: code.len() as u64,
            kind: SymbolKind::Text,
            scope: SymbolScope::Dynamic,
            weak: false,
            section: SymbolSection::Section(section),
            flags: SymbolFlags::None,
        });
        obj.set_section_data(section, code, 8);
        for relocation in relocations {
            obj.add_relocation(section, relocation).expect("R_BPF_64_64 is valid for Bpf");
        }
    }

    let license = obj.add_section(Vec::new(), b"license".to_vec(), SectionKind::Data);
    let mut license_bytes = spec.license.as_bytes().to_vec();
    license_bytes.push(0);
    obj.set_section_data(license, license_bytes, 1);
    obj
}

/// Maps any string to a name the kernel accepts (`[A-Za-z0-9_.]`, other bytes become `_`),
/// cut to the 15 bytes the kernel keeps.
pub fn kernel_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '.' { c } else { '_' }).take(15).collect()
}

fn is_kernel_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// Adds the `maps` section with one `bpf_map_def` and one global OBJECT symbol per map.
fn add_maps(obj: &mut Object<'_>, maps: &[&MapDef]) -> Vec<SymbolId> {
    if maps.is_empty() {
        return Vec::new();
    }
    let section: SectionId = obj.add_section(Vec::new(), b"maps".to_vec(), SectionKind::Data);
    let mut data = Vec::with_capacity(maps.len() * MAP_DEF_SIZE);
    for map in maps {
        // IMPORTANT: the field order of aya-obj's `bpf_map_def`; id and pinning stay 0.
        for field in [map.map_type, map.key_size, map.value_size, map.max_entries, map.flags, 0, 0] {
            data.extend_from_slice(&field.to_le_bytes());
        }
    }
    obj.set_section_data(section, data, 4);
    maps.iter()
        .enumerate()
        .map(|(i, map)| {
            debug_assert!(is_kernel_name(&map.name), "bad map name {:?}", map.name);
            obj.add_symbol(Symbol {
                name: map.name.as_bytes().to_vec(),
                value: (i * MAP_DEF_SIZE) as u64,
                size: MAP_DEF_SIZE as u64,
                kind: SymbolKind::Data,
                scope: SymbolScope::Dynamic,
                weak: false,
                section: SymbolSection::Section(section),
                flags: SymbolFlags::None,
            })
        })
        .collect()
}
