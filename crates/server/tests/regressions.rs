//! Inputs that once broke the server, kept as tests against the real binary (free loopback
//! ports, no root).

use etherhub_cli::client::Client;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ETHERHUB: &str = env!("CARGO_BIN_EXE_etherhub");

struct Running(Child, tempfile::TempDir);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.1.path().join("log")).unwrap_or_default();
            eprintln!("--- etherhub log ---\n{log}");
        }
    }
}

fn start() -> (Running, u16) {
    let dir = tempfile::tempdir().unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = dir.path().join("vpn_server.config");
    let mut cfg = etherhub_server::defaults::embedded_default().unwrap();
    for l in cfg.listeners() {
        cfg.remove_listener(l.port).unwrap();
    }
    cfg.add_listener(tcp, true).unwrap();
    cfg.set_udp_ports(&[udp]);
    etherhub_config::Store::new(&path).save(&cfg).unwrap();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let child = Command::new(ETHERHUB)
        .args(["server", "--config"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let r = Running(child, dir);
    let end = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", tcp)).is_err() {
        assert!(Instant::now() < end, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (r, tcp)
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
