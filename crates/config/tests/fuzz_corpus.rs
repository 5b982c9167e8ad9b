//! The config_parse fuzz target's property over its committed corpus (seeds and every input
//! that once broke it, under fuzz/corpus/config_parse): any text either fails to parse, or
//! parses into a tree that writes out and parses back to the same tree.

use etherhub_config::tree;
use std::path::PathBuf;

#[test]
fn corpus_round_trips() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/config_parse");
    let mut checked = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = e.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        if let Ok(root) = tree::parse(text) {
            let again = tree::parse(&tree::write(&root)).unwrap_or_else(|e| {
                panic!("{}: written config does not parse: {e}", path.display())
            });
            assert_eq!(
                root,
                again,
                "{}: round trip changed the tree",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 3, "corpus missing: {}", dir.display());
}

#[test]
fn root_declared_in_any_case_round_trips() {
    let text = "declare rooT\n{\n\tuint ConfigRevision 2\n}\n";
    let root = tree::parse(text).unwrap();
    assert_eq!(root.name, "root");
    assert_eq!(tree::parse(&tree::write(&root)).unwrap(), root);
}
