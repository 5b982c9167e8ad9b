//! Debian's stock SoftEther programs in tests. `vpnclient` (and `vpncmd`) keep state in
//! /var/lib/softether, /run/softether and /var/log/softether: each runs in a "holder", a
//! private mount and PID namespace whose first process has bound directories of the test's
//! own over those three, so nothing outside the test is touched. Processes are entered into it
//! (and into a network namespace) with `nsenter`; ending the holder, by its PID, ends every
//! process inside.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{must, out_text, run, which, Netns};

const STATE_DIRS: [&str; 3] = ["/var/lib/softether", "/run/softether", "/var/log/softether"];

/// Whether the stock SoftEther client is installed; without it the test fails (unless
/// ETHERHUB_SKIP_NETNS=1 asks to skip it).
pub fn has_vpnclient() -> bool {
    let missing: Vec<&str> = ["vpnclient", "vpncmd", "busybox", "nsenter", "unshare"]
        .into_iter()
        .filter(|c| which(c).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "missing {missing:?} (packages softether-vpnclient, busybox); scripts/test installs them"
    );
    if std::env::var_os("ETHERHUB_SKIP_NETNS").is_some() {
        eprintln!("SKIPPED: {why}");
        return false;
    }
    panic!("{why}");
}

/// A private mount and PID namespace with its own SoftEther state directories.
pub struct Holder {
    /// The `unshare` process we started; its child is the namespace's first process.
    unshare: Child,
    /// That first process's PID (what `nsenter -t` takes).
    pub pid: u32,
    pub state: tempfile::TempDir,
}

impl Holder {
    pub fn new() -> Holder {
        // the package's own mount points, empty, if the package has not made them
        for d in STATE_DIRS {
            std::fs::create_dir_all(d).unwrap();
        }
        let state = tempfile::tempdir().unwrap();
        let s = state.path();
        let script = format!(
            "set -e; for d in lib run log; do mkdir -p {s}/$d; done; \
             mount --bind {s}/lib /var/lib/softether; mount --bind {s}/run /run/softether; \
             mount --bind {s}/log /var/log/softether; touch {s}/ready; \
             trap 'exit 0' TERM; while :; do sleep 1 & wait $! || true; done",
            s = s.display()
        );
        let unshare = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                "bash",
                "-c",
                &script,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        while !s.join("ready").exists() {
            assert!(Instant::now() < end, "the holder namespace did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", unshare.id())).unwrap();
        let pid = children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the holder's first process");
        Holder {
            unshare,
            pid,
            state,
        }
    }

    /// `program` inside the holder and the network namespace `ns`.
    pub fn cmd(&self, ns: &Netns, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args([
            "-t",
            &self.pid.to_string(),
            "-m",
            "-p",
            &format!("--net=/run/netns/{}", ns.name),
            program,
        ]);
        c
    }

    pub fn path(&self) -> &Path {
        self.state.path()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // the namespace's first process ends, and the kernel ends everything inside with it
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.unshare.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// A VPN connection setting of vpnclient: `user@hub` at `server` (host:port) with a password,
/// `tcp` connections (half-duplex if `half`).
pub struct Account<'a> {
    pub name: &'a str,
    pub server: &'a str,
    pub hub: &'a str,
    pub user: &'a str,
    pub password: &'a str,
    pub tcp: u32,
    pub half: bool,
}

/// Debian's stock vpnclient in a network namespace, administered with `vpncmd /CLIENT`.
pub struct VpnClient {
    pub holder: Holder,
    pub ns: Netns,
    pub nic: String,
}

impl VpnClient {
    /// Starts vpnclient in `ns` and creates its virtual NIC `vpn_<nic>`.
    pub fn start(ns: Netns, nic: &str) -> VpnClient {
        let holder = Holder::new();
        let c = VpnClient {
            holder,
            ns,
            nic: nic.to_string(),
        };
        must(c.holder.cmd(&c.ns, "vpnclient").arg("start"));
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let (code, _) = c.vpncmd(&["VersionGet"]);
            if code == 0 {
                break;
            }
            assert!(Instant::now() < end, "vpnclient's admin port did not open");
            std::thread::sleep(Duration::from_millis(100));
        }
        c.must(&["NicCreate", nic]);
        c
    }

    /// `vpncmd localhost /CLIENT /CMD ...` (stdin closed: a missing parameter fails instead of
    /// prompting); its exit status (SoftEther's error code) and output.
    pub fn vpncmd(&self, args: &[&str]) -> (i32, String) {
        let mut c = self.holder.cmd(&self.ns, "timeout");
        c.args(["30", "vpncmd", "localhost", "/CLIENT", "/CMD"])
            .args(args)
            .stdin(Stdio::null());
        let out = run(&mut c);
        (out.status.code().unwrap_or(-1), out_text(&out))
    }

    pub fn must(&self, args: &[&str]) -> String {
        let (code, text) = self.vpncmd(args);
        assert_eq!(code, 0, "vpncmd /CLIENT {args:?} failed:\n{text}");
        text
    }

    /// Creates the account `a` (password authentication, retrying every 5 s).
    pub fn account(&self, a: &Account<'_>) {
        self.must(&[
            "AccountCreate",
            a.name,
            &format!("/SERVER:{}", a.server),
            &format!("/HUB:{}", a.hub),
            &format!("/USERNAME:{}", a.user),
            &format!("/NICNAME:{}", self.nic),
        ]);
        self.must(&[
            "AccountPasswordSet",
            a.name,
            &format!("/PASSWORD:{}", a.password),
            "/TYPE:standard",
        ]);
        self.must(&[
            "AccountDetailSet",
            a.name,
            &format!("/MAXTCP:{}", a.tcp),
            "/INTERVAL:1",
            "/TTL:0",
            if a.half { "/HALF:yes" } else { "/HALF:no" },
            "/BRIDGE:no",
            "/MONITOR:no",
            "/NOTRACK:no",
            "/NOQOS:no",
            "/DISABLEUDP:no",
        ]);
        self.must(&["AccountRetrySet", a.name, "/NUM:999", "/INTERVAL:5"]);
    }

    /// AccountStatusGet's "Session Status" row.
    pub fn status(&self, account: &str) -> String {
        let (_, text) = self.vpncmd(&["AccountStatusGet", account]);
        super::row(&text, "Session Status").to_string()
    }

    /// Waits until the account's session is established.
    pub fn wait_established(&self, account: &str, within: Duration) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if self.status(account).contains("Session Established") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// The virtual NIC's interface name in the namespace.
    pub fn ifname(&self) -> String {
        format!("vpn_{}", self.nic)
    }

    /// Asks SecureNAT's DHCP server for an address (see [`crate::common::udhcpc`]).
    pub fn dhcp(&self) -> Option<String> {
        super::udhcpc(&self.ns, &self.ifname(), self.holder.path())
    }

    /// The client's log so far.
    pub fn log(&self) -> String {
        let dir: PathBuf = self.holder.path().join("log/client_log");
        let mut text = String::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            text.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
        text
    }
}

impl Drop for VpnClient {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- vpnclient log ---\n{}", self.log());
        }
        let _ = run(self
            .holder
            .cmd(&self.ns, "timeout")
            .args(["20", "vpnclient", "stop"]));
    }
}
