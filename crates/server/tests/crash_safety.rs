//! kill -9 at random moments: the real binary is SIGKILLed again and again while admin changes
//! are being saved and WireGuard handshakes arrive on its UDP port (`wg-flood` with a registered
//! key, bounded). After every kill the config on disk must load, every user and WireGuard key
//! whose creation the API acknowledged must be in it, and the server must start again from it.

use etherhub_cli::client::Client;
use rand::Rng;
use serde_json::json;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ETHERHUB: &str = env!("CARGO_BIN_EXE_etherhub");
const WG_FLOOD: &str = env!("CARGO_BIN_EXE_wg-flood");

fn free_port() -> u16 {
    let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p = t.local_addr().unwrap().port();
    match std::net::UdpSocket::bind(("127.0.0.1", p)) {
        Ok(_) => p,
        Err(_) => free_port(),
    }
}

/// A child ended by its PID when dropped.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

fn spawn_server(config: &Path, log: &Path, tcp: u16) -> Kill {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = Command::new(ETHERHUB)
        .args(["server", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let k = Kill(child);
    let end = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", tcp)).is_err() {
        assert!(Instant::now() < end, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    k
}

#[derive(Default)]
struct Acked {
    users: BTreeSet<String>,
    keys: BTreeSet<String>,
}

fn b64(k: &[u8; 32]) -> String {
    etherhub_wireguard::key_to_base64(k)
}

#[test]
fn sigkill_during_saves_and_traffic_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vpn_server.config");
    let log = dir.path().join("log");
    let tcp = free_port();
    let udp = free_port();
    let mut cfg = etherhub_server::defaults::embedded_default().unwrap();
    for l in cfg.listeners() {
        cfg.remove_listener(l.port).unwrap();
    }
    cfg.add_listener(tcp, true).unwrap();
    cfg.set_udp_ports(&[udp]);
    etherhub_config::Store::new(&config).save(&cfg).unwrap();

    // a registered key for the traffic, and its user
    let flood_private = etherhub_wireguard::generate_private_key();
    let flood_public = etherhub_wireguard::public_key_of(&flood_private);
    {
        let _s = spawn_server(&config, &log, tcp);
        let c = Client::new("127.0.0.1", tcp, "", "").unwrap();
        c.call(
            "CreateUser",
            json!({"HubName_str": "DEFAULT", "Name_str": "traffic", "AuthType_u32": 1, "Auth_Password_str": "pw"}),
        )
        .unwrap();
        c.call(
            "AddWgk",
            json!({"Key_str": [b64(&flood_public)], "Hub_str": ["DEFAULT"], "User_str": ["traffic"]}),
        )
        .unwrap();
    }
    let loaded = etherhub_config::Store::new(&config)
        .load()
        .unwrap()
        .unwrap();
    let wg = loaded.wireguard().unwrap();

    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut rng = rand::thread_rng();
    let rounds = 12;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut kills = 0;
    for round in 0..rounds {
        if Instant::now() > deadline {
            break;
        }
        let mut server = spawn_server(&config, &log, tcp);
        // live traffic: real handshakes from the registered key and unknown ones, bounded
        let _traffic = Kill(
            Command::new(WG_FLOOD)
                .args(["--target", &format!("127.0.0.1:{udp}"), "--server-public"])
                .arg(b64(&etherhub_wireguard::public_key_of(
                    &etherhub_wireguard::key_from_base64(&wg.private_key).unwrap(),
                )))
                .args(["--psk", &wg.preshared_key, "--valid-private"])
                .arg(b64(&flood_private))
                .args(["--seconds", "3", "--count", "20000", "--unknown-keys", "4"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        // admin changes as fast as the API takes them, from two threads
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let stop = stop.clone();
                let acked = acked.clone();
                std::thread::spawn(move || {
                    let Ok(c) = Client::new("127.0.0.1", tcp, "", "") else {
                        return;
                    };
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) && n < 500 {
                        n += 1;
                        if n % 2 == 0 {
                            let name = format!("u{round}w{w}n{n}");
                            let r = c.call(
                                "CreateUser",
                                json!({"HubName_str": "DEFAULT", "Name_str": name,
                                       "AuthType_u32": 1, "Auth_Password_str": "pw"}),
                            );
                            match r {
                                Ok(_) => {
                                    acked.lock().unwrap().users.insert(name);
                                }
                                Err(_) => return,
                            }
                        } else {
                            let key = b64(&etherhub_wireguard::public_key_of(
                                &etherhub_wireguard::generate_private_key(),
                            ));
                            let r = c.call(
                                "AddWgk",
                                json!({"Key_str": [key], "Hub_str": ["DEFAULT"],
                                       "User_str": ["traffic"]}),
                            );
                            match r {
                                Ok(_) => {
                                    acked.lock().unwrap().keys.insert(key);
                                }
                                Err(_) => return,
                            }
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.gen_range(100..900)));
        // SIGKILL, by PID, in the middle of whatever it was doing
        server.0.kill().unwrap();
        server.0.wait().unwrap();
        kills += 1;
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().unwrap();
        }

        let store = etherhub_config::Store::new(&config);
        let cfg = store
            .load()
            .unwrap_or_else(|e| panic!("round {round}: config does not load after kill -9: {e}"))
            .expect("config exists");
        let users: BTreeSet<String> = cfg
            .users("DEFAULT")
            .unwrap()
            .into_iter()
            .map(|u| u.name)
            .collect();
        let keys: BTreeSet<String> = cfg.wg_keys().into_iter().map(|k| k.key).collect();
        let a = acked.lock().unwrap();
        let lost_users: Vec<_> = a.users.difference(&users).collect();
        let lost_keys: Vec<_> = a.keys.difference(&keys).collect();
        assert!(
            lost_users.is_empty() && lost_keys.is_empty(),
            "round {round}: acknowledged but lost after kill -9: users {lost_users:?} keys {lost_keys:?}"
        );
        // every backup kept is a whole config too
        for e in std::fs::read_dir(store.backup_dir()).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "config") {
                let text = std::fs::read_to_string(&p).unwrap();
                etherhub_config::Config::parse(&text)
                    .unwrap_or_else(|e| panic!("backup {} is broken: {e}", p.display()));
            }
        }
    }
    let a = acked.lock().unwrap();
    eprintln!(
        "{kills} kills; {} users and {} keys acknowledged, all on disk",
        a.users.len(),
        a.keys.len()
    );
    assert!(kills >= 5, "too few rounds");
    assert!(
        a.users.len() + a.keys.len() > 20,
        "too few changes were made to test anything"
    );
    // and the last state starts
    let _s = spawn_server(&config, &log, tcp);
    let c = Client::new("127.0.0.1", tcp, "", "").unwrap();
    c.call("Test", json!({"IntValue_u32": 1})).unwrap();
    // stale temporary files from the kills do not pile up
    let stale: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(stale.len() <= 1, "temporary files left behind: {stale:?}");
}
