//! The `declare` config format: any text either fails with an error or parses into a tree
//! that writes out and parses back to the same tree; the typed model must not panic on it.
#![no_main]

use etherhub_config::tree;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(root) = tree::parse(text) {
        let written = tree::write(&root);
        let again = tree::parse(&written).expect("written config parses");
        assert_eq!(root, again, "write/parse round trip changed the tree");
    }
    if let Ok(cfg) = etherhub_config::Config::parse(text) {
        let _ = cfg.hub_names();
        let _ = cfg.listeners();
        let _ = cfg.udp_ports();
        let _ = cfg.wireguard();
        let _ = cfg.wg_keys();
        for h in cfg.hub_names() {
            let _ = cfg.hub(&h);
            let _ = cfg.users(&h);
        }
    }
});
