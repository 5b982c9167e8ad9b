//! Generated trees survive write -> parse unchanged, whatever their names and strings hold.

use etherhub_config::tree::{self, Folder, Item, Value};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    // spaces, tabs, '$', control characters, '#', braces and non-ASCII all need the escaping
    proptest::collection::vec(
        prop_oneof![
            Just(' '),
            Just('\t'),
            Just('$'),
            Just('\r'),
            Just('\n'),
            Just('#'),
            Just('{'),
            Just('}'),
            Just('é'),
            Just('語'),
            proptest::char::range('!', '~'),
        ],
        0..12,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<u32>().prop_map(Value::Uint),
        any::<u64>().prop_map(Value::Uint64),
        text().prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Byte),
    ]
}

fn folder() -> impl Strategy<Value = Folder> {
    let leaf =
        (text(), proptest::collection::vec((text(), value()), 0..6)).prop_map(|(name, items)| {
            Folder {
                name,
                items: items
                    .into_iter()
                    .map(|(name, value)| Item { name, value })
                    .collect(),
                folders: Vec::new(),
            }
        });
    leaf.prop_recursive(4, 40, 5, |inner| {
        (
            text(),
            proptest::collection::vec((text(), value()), 0..6),
            proptest::collection::vec(inner, 0..5),
        )
            .prop_map(|(name, items, folders)| Folder {
                name,
                items: items
                    .into_iter()
                    .map(|(name, value)| Item { name, value })
                    .collect(),
                folders,
            })
    })
}

proptest! {
    #[test]
    fn write_then_parse_is_identity(mut root in folder()) {
        root.name = "root".into();
        let text = tree::write(&root);
        let back = tree::parse(&text).expect("our own output parses");
        prop_assert_eq!(&back, &root);
        prop_assert_eq!(tree::write(&back), text);
    }

    #[test]
    fn escape_round_trips(s in text()) {
        let e = tree::escape(&s);
        prop_assert!(!e.contains(' ') && !e.contains('\t') && !e.contains('\n') && !e.is_empty());
        prop_assert_eq!(tree::unescape(&e).unwrap(), s);
    }

    #[test]
    fn parser_never_panics_on_garbage(s in "\\PC{0,200}") {
        let _ = tree::parse(&s);
    }
}
