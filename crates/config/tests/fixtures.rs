//! Every real SoftEther config under fixtures/ loads and comes back byte for byte.

use etherhub_config::{hash, Config, Store};
use std::path::PathBuf;

fn fixture_configs() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let mut found = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "config") {
                found.push(p);
            }
        }
    }
    assert!(
        !found.is_empty(),
        "no fixture configs under {}",
        root.display()
    );
    found
}

#[test]
fn every_fixture_round_trips_byte_for_byte() {
    for path in fixture_configs() {
        let text = std::fs::read_to_string(&path).unwrap();
        let cfg = Config::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let out = cfg.to_text();
        if out != text {
            let line = out
                .lines()
                .zip(text.lines())
                .position(|(a, b)| a != b)
                .map(|i| i + 1);
            panic!("{}: differs first at line {line:?}", path.display());
        }
    }
}

#[test]
fn saving_through_the_store_keeps_every_value() {
    for path in fixture_configs() {
        let text = std::fs::read_to_string(&path).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("vpn_server.config"));
        std::fs::write(store.path(), &text).unwrap();
        let mut cfg = store.load().unwrap().unwrap();
        cfg.bump_revision();
        store.save(&cfg).unwrap();
        let again = store.load().unwrap().unwrap();
        assert_eq!(again, cfg);
        // the original went to the backup folder unchanged
        let backups = store.backups();
        assert_eq!(backups.len(), 1);
        assert_eq!(std::fs::read_to_string(&backups[0]).unwrap(), text);
    }
}

fn softether_fixture() -> Config {
    let p = fixture_configs()
        .into_iter()
        .find(|p| p.to_string_lossy().contains("softether-5.01.9674"))
        .expect("the 5.01.9674 fixture");
    Config::parse(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn typed_model_reads_softether_values() {
    let cfg = softether_fixture();
    assert!(cfg.admin_password_is_empty());
    assert!(cfg.check_admin_password(""));
    assert!(!cfg.check_admin_password("x"));
    assert_eq!(cfg.udp_ports(), vec![443, 992, 1194, 5555]);
    let ports: Vec<u16> = cfg.listeners().iter().map(|l| l.port).collect();
    assert_eq!(ports, vec![443, 992, 1194, 5555]);
    let (cert, key) = cfg.server_cert().unwrap();
    assert_eq!(cert[0], 0x30);
    assert_eq!(key[0], 0x30);
    assert_eq!(cfg.hub_names(), vec!["DEFAULT", "SECURENAT"]);
    let hub = cfg.hub("SECURENAT").unwrap();
    assert!(hub.securenat.enabled);
    assert_eq!(hub.securenat.host_ip.to_string(), "192.168.30.1");
    assert_eq!(hub.securenat.nat_tcp_timeout, 1800);
    assert!(!cfg.hub("DEFAULT").unwrap().securenat.enabled);
    assert!(cfg.check_hub_password("SECURENAT", "hubpass").unwrap());
    assert!(!cfg.check_hub_password("SECURENAT", "hubpas").unwrap());
    // SecurePassword is SHA-0 of the password and "ADMINISTRATOR"
    let secure = |hub: &str| {
        cfg.root
            .path(&["VirtualHUB", hub])
            .and_then(|f| f.get_bytes("SecurePassword"))
            .unwrap()
    };
    assert_eq!(
        secure("SECURENAT"),
        hash::hash_hub_secure_password("hubpass")
    );
    assert_eq!(secure("DEFAULT"), hash::hash_hub_secure_password(""));
    let users = cfg.users("SECURENAT").unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].name, "meta");
    assert_eq!(users[0].auth_type, 1);
    assert_eq!(
        users[0].auth_password,
        hash::hash_user_password("meta", "secret123")
    );
}

#[test]
fn model_changes_keep_unknown_values() {
    let mut cfg = softether_fixture();
    let before = cfg.clone();
    cfg.create_hub("TEST", "pw", 1).unwrap();
    cfg.create_user("TEST", "alice", "Alice", "", 1).unwrap();
    cfg.set_user_password("TEST", "alice", "s3cret", 2).unwrap();
    cfg.add_wg_key(
        "lbr0r2ruA6ROH4Q4V6fXOYqu3jAc5oG3QGuRpkDhHGI=",
        "TEST",
        "alice",
    )
    .unwrap();
    cfg.set_udp_ports(&[443, 51820]);
    let text = cfg.to_text();
    let back = Config::parse(&text).unwrap();
    assert_eq!(back.wg_keys().len(), 1);
    assert_eq!(back.wg_keys()[0].user, "alice");
    assert_eq!(back.udp_ports(), vec![443, 51820]);
    assert_eq!(
        back.user("TEST", "alice").unwrap().auth_password,
        hash::hash_user_password("alice", "s3cret")
    );
    // an unrelated SoftEther block is untouched
    assert_eq!(
        back.root.folder("DDnsClient"),
        before.root.folder("DDnsClient")
    );
    assert_eq!(
        back.root.path(&["ServerConfiguration", "GlobalParams"]),
        before.root.path(&["ServerConfiguration", "GlobalParams"])
    );
    // undoing the changes restores the original text exactly
    let mut undo = back;
    undo.remove_wg_key("lbr0r2ruA6ROH4Q4V6fXOYqu3jAc5oG3QGuRpkDhHGI=")
        .unwrap();
    undo.root.remove_folder("WireGuardKeyList");
    undo.delete_hub("TEST").unwrap();
    undo.set_udp_ports(&[443, 992, 1194, 5555]);
    assert_eq!(undo.to_text(), before.to_text());
}

#[test]
fn bad_model_input_is_refused_clearly() {
    let mut cfg = softether_fixture();
    let e = cfg.create_hub("DEFAULT", "", 0).unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    let e = cfg.create_hub("bad name", "", 0).unwrap_err();
    assert!(e.to_string().contains("invalid name"), "{e}");
    let e = cfg.add_wg_key("k", "NOPE", "u").unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    let e = cfg.delete_user("SECURENAT", "nobody").unwrap_err();
    assert!(e.to_string().contains("nobody"), "{e}");
    assert!(cfg.add_listener(443, true).is_err());
    cfg.add_listener(8443, true).unwrap();
    cfg.remove_listener(992).unwrap();
    let ports: Vec<u16> = cfg.listeners().iter().map(|l| l.port).collect();
    assert_eq!(ports, vec![443, 1194, 5555, 8443]);
    // DisableDos of a kept listener survives the rewrite
    assert!(cfg
        .root
        .path(&["ListenerList", "Listener0"])
        .unwrap()
        .get_bool("DisableDos")
        .is_some());
}

#[test]
fn a_config_that_fails_to_parse_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("vpn_server.config"));
    let broken = "declare root\r\n{\r\n\tuint Port eighty\r\n}\r\n";
    std::fs::write(store.path(), broken).unwrap();
    let e = store.load().unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("line 3"), "{msg}");
    assert!(msg.contains("left untouched"), "{msg}");
    assert_eq!(std::fs::read_to_string(store.path()).unwrap(), broken);
}

#[test]
fn backups_are_pruned_to_the_newest_few() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("vpn_server.config"));
    let mut cfg = softether_fixture();
    for _ in 0..(etherhub_config::store::BACKUPS_KEPT + 5) {
        cfg.bump_revision();
        store.save(&cfg).unwrap();
    }
    assert_eq!(store.backups().len(), etherhub_config::store::BACKUPS_KEPT);
    // saving an unchanged config makes no new backup
    let n = std::fs::read_dir(store.backup_dir()).unwrap().count();
    store.save(&cfg).unwrap();
    assert_eq!(std::fs::read_dir(store.backup_dir()).unwrap().count(), n);
}

#[test]
fn groups_policies_and_expiry_as_softether_keeps_them() {
    use etherhub_config::{GroupSettings, ModelError, Policy};
    let mut cfg = softether_fixture();
    // SoftEther writes times 9 hours behind Unix time; the model speaks Unix milliseconds
    let meta = cfg.user("SECURENAT", "meta").unwrap();
    assert_eq!(meta.created_time, 1_795_522_591_267 + 9 * 3600 * 1000);
    assert_eq!(
        (meta.expire_time, meta.group.as_str(), meta.policy),
        (0, "", None)
    );

    let mut private = Policy::default();
    private.set_named("PrivacyFilter", "yes").unwrap();
    let staff = GroupSettings {
        name: "staff".into(),
        realname: "Staff".into(),
        note: String::new(),
        policy: Some(private),
    };
    cfg.put_group("SECURENAT", &staff, true).unwrap();
    assert!(matches!(
        cfg.put_group("SECURENAT", &staff, true),
        Err(ModelError::GroupExists { .. })
    ));
    assert!(matches!(
        cfg.set_user_group("SECURENAT", "meta", "nobody"),
        Err(ModelError::GroupNotFound { .. })
    ));
    cfg.set_user_group("SECURENAT", "meta", "STAFF").unwrap();
    cfg.set_user_expires("SECURENAT", "meta", 1_900_000_000_000)
        .unwrap();
    // the group's policy applies to its member until the member has its own
    let meta = cfg.user("SECURENAT", "meta").unwrap();
    assert_eq!(meta.group, "staff");
    assert_eq!(cfg.effective_policy("SECURENAT", &meta), private);
    let mut own = Policy::default();
    own.set_named("MaxDownload", "1000000").unwrap();
    cfg.set_user_policy("SECURENAT", "meta", Some(&own))
        .unwrap();

    let text = cfg.to_text();
    assert!(text.contains("string GroupName staff"));
    assert!(
        text.contains("uint64 ExpireTime 1899967600000"),
        "the file keeps SoftEther's time"
    );
    let back = Config::parse(&text).unwrap();
    let meta = back.user("SECURENAT", "meta").unwrap();
    assert_eq!(meta.expire_time, 1_900_000_000_000);
    assert_eq!(meta.policy, Some(own));
    assert_eq!(
        back.effective_policy("SECURENAT", &meta),
        own,
        "a user's own policy wins whole"
    );
    assert_eq!(back.groups("SECURENAT").unwrap(), vec![staff]);

    // deleting the group takes its members out of it; without a group, the default applies
    cfg.set_user_policy("SECURENAT", "meta", None).unwrap();
    cfg.delete_group("SECURENAT", "staff").unwrap();
    let meta = cfg.user("SECURENAT", "meta").unwrap();
    assert_eq!(meta.group, "");
    assert_eq!(cfg.effective_policy("SECURENAT", &meta), Policy::default());
    assert!(cfg.groups("SECURENAT").unwrap().is_empty());
}
