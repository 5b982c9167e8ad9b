//! A writer killed with SIGKILL at random moments during saves never leaves a torn config: the
//! file on disk always parses and is one of the versions that was being saved.

use etherhub_config::{Config, Store};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "ETHERHUB_CRASH_CHILD_DIR";

fn version(n: u32) -> Config {
    let mut root = etherhub_config::Folder::new("root");
    root.set_u32("ConfigRevision", n);
    // big enough that a write takes several syscalls
    root.set_bytes("Payload", &vec![(n % 251) as u8; 256 * 1024]);
    Config { root }
}

/// Runs only inside the child process the real test starts: saves forever until killed.
#[test]
#[ignore = "helper process for crash_mid_save_never_tears_the_config"]
fn crash_child_saves_forever() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Store::new(Path::new(&dir).join("vpn_server.config"));
    let started = Instant::now();
    let mut n = 1;
    // bounded even if nobody kills us
    while started.elapsed() < Duration::from_secs(20) {
        store.save(&version(n)).expect("save");
        n += 1;
    }
}

#[test]
fn crash_mid_save_never_tears_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("vpn_server.config"));
    store.save(&version(0)).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut newest = 0;
    for round in 0..12 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_saves_forever",
                "--ignored",
                "--nocapture",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(20 + seed % 180));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let cfg = store
            .load()
            .unwrap_or_else(|e| panic!("round {round}: {e}"))
            .expect("config present");
        let n = cfg.root.get_u32("ConfigRevision").unwrap();
        assert_eq!(cfg, version(n), "round {round}: torn content");
        newest = newest.max(n);
    }
    assert!(newest > 0, "the child process never completed a save");
    // the backups that were completed are whole too
    for b in store.backups() {
        let text = std::fs::read_to_string(&b).unwrap();
        let cfg = Config::parse(&text).unwrap();
        let n = cfg.root.get_u32("ConfigRevision").unwrap();
        assert_eq!(cfg, version(n));
    }
}

/// What a kill between creating and renaming leaves behind is removed at the next start, and
/// nothing else is.
#[test]
fn stale_temporaries_are_removed_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("vpn_server.config"));
    store.save(&version(1)).unwrap();
    store.save(&version(2)).unwrap();
    std::fs::write(dir.path().join(".vpn_server.config.tmp.4242"), "torn").unwrap();
    std::fs::write(dir.path().join(".vpn_server.config.tmp.77"), "").unwrap();
    std::fs::write(dir.path().join("unrelated.tmp.1"), "keep").unwrap();
    let backups = store.backup_dir();
    std::fs::write(
        backups.join(".vpn_server_20260101_000000.config.tmp"),
        "torn",
    )
    .unwrap();
    let before: Vec<_> = std::fs::read_dir(&backups).unwrap().collect();
    assert_eq!(store.remove_stale_temporaries().unwrap(), 3);
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "backup.vpn_server.config",
            "unrelated.tmp.1",
            "vpn_server.config"
        ]
    );
    assert_eq!(
        std::fs::read_dir(&backups).unwrap().count(),
        before.len() - 1
    );
    assert_eq!(store.load().unwrap().unwrap(), version(2));
}
