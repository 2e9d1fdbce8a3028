//! `select::Summary` finds every function, global and alias a built-in tapset defines, in
//! every branch of its conditionals, and which files define macros: a file it missed would
//! never be prepared for the script needing it.

use std::path::Path;

use lang::ast::Item;
use lang::parse::prepare;
use lang::preprocess::{Macros, PreprocessEnv};
use lang::select::Summary;
use lang::span::{SourceKind, SourceMap};
use lang::syscall_aliases::{parse_table, tapset_source};

#[test]
fn summaries_cover_the_builtin_tapsets() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tapsets");
    let mut texts: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "stp"))
        .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    assert!(texts.len() > 30);
    let entries = parse_table(&std::fs::read_to_string(dir.join("syscalls.table")).unwrap()).unwrap();
    texts.extend(entries.chunks(1).map(|e| (format!("table: {}", e[0].name), tapset_source(e))));
    let envs = [
        PreprocessEnv::default(),
        PreprocessEnv { kernel_release: "4.0.0".into(), arch: "arm64".into(), ..PreprocessEnv::default() },
    ];
    for (name, text) in &texts {
        let summary = Summary::of(text);
        for env in &envs {
            let mut sources = SourceMap::default();
            let file = sources.add(name.clone(), text.clone(), SourceKind::Tapset);
            let mut macros = Macros::default();
            let (items, diags) = prepare(&sources, file, env, &mut macros);
            assert!(diags.is_empty(), "{name}: {diags:?}");
            assert_eq!(summary.defines_macros, macros != Macros::default(), "{name}");
            let mut diags = Vec::new();
            for item in (0..items.len()).flat_map(|i| items.parse(i, env, &mut diags)) {
                match item {
                    Item::Function(f) => assert!(summary.may_define(&f.name), "{name}: function {}", f.name),
                    Item::Global(g) => assert!(summary.may_define(&g.name), "{name}: global {}", g.name),
                    Item::Alias(a) => {
                        for n in &a.names {
                            assert!(summary.may_alias(&n.components), "{name}: alias {:?}", n.components);
                        }
                    }
                    Item::Probe(_) | Item::EmbeddedC(_) => {}
                }
            }
            assert!(diags.is_empty(), "{name}: {diags:?}");
        }
    }
}
