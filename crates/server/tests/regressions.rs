//! Inputs that once broke the server, kept as tests against the real binary (free loopback
//! ports, no root).

use etherhub_cli::client::Client;
use serde_json::json;
use std::time::Duration;

mod common;

use common::loopback::LoopbackServer;

fn start() -> (LoopbackServer, u16) {
    let s = LoopbackServer::start();
    let port = s.port;
    (s, port)
}

/// GetSecureNATStatus on a hub without SecureNAT took the config lock twice and hung every
/// later admin call (found by the hub-admin sweep in admin_security.rs).
#[test]
fn securenat_status_without_securenat_does_not_deadlock() {
    let (_server, port) = start();
    let c = Client::new("127.0.0.1", port, "", "").unwrap();
    c.call("DisableSecureNAT", json!({"HubName_str": "DEFAULT"}))
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let c = Client::new("127.0.0.1", port, "", "").unwrap();
        let r = c.call("GetSecureNATStatus", json!({"HubName_str": "DEFAULT"}));
        let after = c.call("EnumHub", json!({}));
        let _ = tx.send((r.is_err(), after.is_ok()));
    });
    let (status_failed, later_ok) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the admin API hung");
    assert!(status_failed, "SecureNAT is off: the status call must fail");
    assert!(later_ok, "the next admin call failed");
}
