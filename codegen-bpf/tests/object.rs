//! `write_object` read back by aya-obj's parser (pure, no kernel), then relocated with made-up
//! fds the way `aya` does at load time, so this checks what aya will see.

use std::collections::HashSet;

use aya_obj::Object;
use aya_obj::ProgramSection;
use codegen_bpf::insn::{self, call, exit, ld_map_fd, mov64_imm, Helper, Insn, Reg};
use codegen_bpf::object::{map_type, write_object, MapDef, ObjectSpec, ProgramSpec, Reloc, RelocTarget};

fn sample() -> ObjectSpec {
    let mut tp = Vec::new();
    tp.extend(ld_map_fd(Reg::R1, 0)); // 0-1: events
    tp.extend(insn::ld_imm64(Reg::R2, 0)); // 2-3: .rodata + 4
    tp.extend(ld_map_fd(Reg::R3, 0)); // 4-5: counts
    tp.extend(insn::ld_imm64(Reg::R4, 0)); // 6-7: the value of globals
    tp.push(mov64_imm(Reg::R0, 0));
    tp.push(exit());
    let raw = vec![call(Helper::KtimeGetNs), mov64_imm(Reg::R0, 0), exit()];
    ObjectSpec {
        programs: vec![
            ProgramSpec {
                name: "probe_0".into(),
                section: "tracepoint/syscalls/sys_enter_getppid".into(),
                insns: tp,
                relocs: vec![
                    Reloc { insn_index: 0, target: RelocTarget::Map(0) },
                    Reloc { insn_index: 2, target: RelocTarget::Rodata(4) },
                    Reloc { insn_index: 4, target: RelocTarget::Map(1) },
                    Reloc { insn_index: 6, target: RelocTarget::MapValue(2) },
                ],
                field_relocs: vec![],
            },
            ProgramSpec {
                name: "probe_1".into(),
                section: "raw_tp/sched_switch".into(),
                insns: raw,
                relocs: vec![],
                field_relocs: vec![],
            },
        ],
        maps: vec![
            MapDef {
                name: "events".into(),
                map_type: map_type::RINGBUF,
                key_size: 0,
                value_size: 0,
                max_entries: 4096 * 64,
                flags: 0,
            },
            MapDef {
                name: "counts".into(),
                map_type: map_type::HASH,
                key_size: 8,
                value_size: 16,
                max_entries: 1024,
                flags: 1,
            },
            MapDef {
                name: "globals".into(),
                map_type: map_type::ARRAY,
                key_size: 4,
                value_size: 24,
                max_entries: 1,
                flags: 0,
            },
        ],
        rodata: b"abc\0%d\0".to_vec(),
        license: "GPL".into(),
    }
}

fn insns_of(obj: &Object, name: &str) -> Vec<Insn> {
    let function = obj.functions.values().find(|f| f.name == name).expect(name);
    function
        .instructions
        .iter()
        .map(|i| Insn { code: i.code, dst: i.dst_reg(), src: i.src_reg(), off: i.off, imm: i.imm })
        .collect()
}

#[test]
fn aya_obj_sees_programs_maps_and_license() {
    let spec = sample();
    let obj = Object::parse(&write_object(&spec)).unwrap();

    assert_eq!(obj.license.to_str().unwrap(), "GPL");
    assert!(matches!(obj.programs["probe_0"].section, ProgramSection::TracePoint));
    assert!(matches!(obj.programs["probe_1"].section, ProgramSection::RawTracePoint));
    assert_eq!(insns_of(&obj, "probe_1"), spec.programs[1].insns);
    assert_eq!(insns_of(&obj, "probe_0").len(), spec.programs[0].insns.len());

    let mut names: Vec<_> = obj.maps.keys().cloned().collect();
    names.sort();
    assert_eq!(names, [".bss.globals", ".rodata", "counts", "events"]);
    let events = &obj.maps["events"];
    assert_eq!(
        (events.map_type(), events.key_size(), events.value_size(), events.max_entries(), events.map_flags()),
        (27, 0, 0, 4096 * 64, 0)
    );
    let counts = &obj.maps["counts"];
    assert_eq!(
        (counts.map_type(), counts.key_size(), counts.value_size(), counts.max_entries(), counts.map_flags()),
        (1, 8, 16, 1024, 1)
    );
    let rodata = &obj.maps[".rodata"];
    assert_eq!(rodata.data(), b"abc\0%d\0");
    assert_eq!((rodata.map_type(), rodata.value_size(), rodata.max_entries()), (2, 7, 1));
    // A map whose value programs address directly is a zero-filled data section.
    let globals = &obj.maps[".bss.globals"];
    assert_eq!((globals.map_type(), globals.value_size(), globals.max_entries()), (2, 24, 1));
}

#[test]
fn relocations_become_map_fds_and_rodata_values() {
    let mut obj = Object::parse(&write_object(&sample())).unwrap();
    let fds = [("events", 100), ("counts", 101), (".rodata", 102), (".bss.globals", 103)];
    let maps: Vec<_> = fds.iter().map(|&(name, fd)| (name, fd, obj.maps[name].clone())).collect();
    obj.relocate_maps(maps.iter().map(|(name, fd, map)| (*name, *fd, map)), &HashSet::new()).unwrap();

    let insns = insns_of(&obj, "probe_0");
    let text = codegen_bpf::disasm::disasm(&insns, &[]);
    expect_test::expect![[r#"
           0: (18) r1 = map[id:100]
           2: (18) r2 = map[id:102][0]+4
           4: (18) r3 = map[id:101]
           6: (18) r4 = map[id:103][0]+0
           8: (b7) r0 = 0
           9: (95) exit
    "#]]
    .assert_eq(&text);
}

#[test]
fn output_is_deterministic() {
    assert_eq!(write_object(&sample()), write_object(&sample()));
}

#[test]
fn empty_rodata_and_maps_are_omitted() {
    let spec = ObjectSpec {
        programs: vec![ProgramSpec {
            name: "p".into(),
            section: "tracepoint/a/b".into(),
            insns: vec![mov64_imm(Reg::R0, 0), exit()],
            relocs: vec![],
            field_relocs: vec![],
        }],
        license: "GPL".into(),
        ..ObjectSpec::default()
    };
    let obj = Object::parse(&write_object(&spec)).unwrap();
    assert!(obj.maps.is_empty());
    assert_eq!(obj.programs.len(), 1);
}
