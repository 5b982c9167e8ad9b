//! Test hosts in network namespaces: an Etherhub server in one, stock WireGuard clients
//! (Debian's wireguard-go and wg) in others, joined by veth pairs on 198.18.0.0/15.
//! Everything a test creates is removed when its guard drops; processes are ended by their PID.

#![allow(dead_code)]

pub mod loopback;
pub mod softether;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const ETHERHUB: &str = env!("CARGO_BIN_EXE_etherhub");

/// True when this process may create namespaces and the stock client is installed. Without
/// them the test fails, unless ETHERHUB_SKIP_NETNS=1 asks to skip it (then it says so loudly).
pub fn can_run_netns() -> bool {
    let root = is_root();
    let missing: Vec<&str> = ["ip", "wireguard-go", "wg", "ping"]
        .into_iter()
        .filter(|t| which(t).is_none())
        .collect();
    if root && missing.is_empty() {
        return true;
    }
    let why = format!(
        "namespace acceptance tests need root (have root: {root}) and ip, wireguard-go, wg, ping \
         (missing: {missing:?}); scripts/test installs them"
    );
    if std::env::var_os("ETHERHUB_SKIP_NETNS").is_some() {
        eprintln!("SKIPPED: {why}");
        return false;
    }
    panic!("{why}; set ETHERHUB_SKIP_NETNS=1 to skip these tests");
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

pub fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(cmd))
            .find(|p| p.is_file())
    })
}

/// A short id unique to this test process and call, for names that must not collide when
/// tests run in parallel (netns, interface names, UAPI sockets).
pub fn unique_id() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    (std::process::id() % 10_000) * 10 + n
}

/// An id in 0..=255 for the underlay subnet, as unique as we can make it across processes.
fn subnet_octet(id: u32) -> u8 {
    (id.wrapping_mul(2_654_435_761) >> 24) as u8
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// stdout then stderr of a finished command, for messages and searches.
pub fn out_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `cmd` and types `input` into it a line at a time, as a person would (a pause after
/// each line); everything it printed.
pub fn type_lines(cmd: &mut Command, input: &str) -> String {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for line in input.lines() {
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(700));
    }
    drop(stdin);
    out_text(&child.wait_with_output().unwrap())
}

/// The value of the row `label` in a vpncmd table (vpncmd's or `etherhub cmd`'s).
pub fn row<'a>(table: &'a str, label: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.starts_with(label))
        .and_then(|l| l.split('|').nth(1))
        .unwrap_or("")
        .trim()
}

/// The number in the last cell of a table row (`1,234` reads as 1234).
pub fn last_cell_number(line: &str) -> u64 {
    line.rsplit('|')
        .next()
        .unwrap_or("")
        .trim()
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("no number at the end of {line:?}"))
}

pub fn must(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: String) -> Netns {
        let _ = run(Command::new("ip").args(["netns", "del", &name]));
        must(Command::new("ip").args(["netns", "add", &name]));
        must(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]));
        Netns { name }
    }

    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    pub fn ip(&self, args: &[&str]) -> String {
        let mut c = Command::new("ip");
        c.args(["-n", &self.name]).args(args);
        must(&mut c)
    }

    /// `count` pings at 0.2 s; true when at least one answer came back.
    pub fn ping(&self, addr: &str, count: u32) -> bool {
        let out =
            run(self
                .cmd("ping")
                .args(["-c", &count.to_string(), "-i", "0.2", "-W", "1", addr]));
        out.status.success()
    }

    /// Pings until one answer arrives or `within` passes.
    pub fn ping_until(&self, addr: &str, within: Duration) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if self.ping(addr, 1) {
                return true;
            }
        }
        false
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(Command::new("ip").args(["netns", "del", &self.name]));
    }
}

/// A child process ended by its PID on drop.
pub struct Proc {
    pub child: Child,
    pub what: String,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// A veth pair between two namespaces: `a` gets `a_ip`, `b` gets `b_ip` (CIDR strings).
pub fn veth(a: &Netns, a_ip: &str, b: &Netns, b_ip: &str, id: u32, tag: &str) {
    let ia = format!("v{tag}{id}a");
    let ib = format!("v{tag}{id}b");
    must(Command::new("ip").args([
        "link", "add", &ia, "netns", &a.name, "type", "veth", "peer", "name", &ib, "netns", &b.name,
    ]));
    a.ip(&["addr", "add", a_ip, "dev", &ia]);
    b.ip(&["addr", "add", b_ip, "dev", &ib]);
    a.ip(&["link", "set", &ia, "up"]);
    b.ip(&["link", "set", &ib, "up"]);
}

/// The Etherhub server in its namespace.
pub struct EtherhubServer {
    pub ns: Netns,
    pub dir: tempfile::TempDir,
    pub proc: Option<Proc>,
    pub log: PathBuf,
}

impl EtherhubServer {
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("vpn_server.config")
    }

    pub fn start(&mut self) {
        let log = std::fs::File::create(&self.log).unwrap();
        let child = self
            .ns
            .cmd(ETHERHUB)
            .args(["server", "--config"])
            .arg(self.config_path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.proc = Some(Proc {
            child,
            what: "etherhub server".into(),
        });
        // ready when the admin API answers
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            let out = run(self
                .ns
                .cmd("bash")
                .args(["-c", "exec 3<>/dev/tcp/127.0.0.1/5555 && echo ok"]));
            if out.status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("etherhub did not start; log:\n{}", self.log_text());
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `etherhub cmd` inside the server's namespace, as server admin from loopback.
    pub fn cmd(&self, args: &[&str]) -> Output {
        self.cmd_in(None, args)
    }

    /// `etherhub cmd` with hub `hub` selected (`/ADMINHUB:hub`), or server-wide.
    pub fn cmd_in(&self, hub: Option<&str>, args: &[&str]) -> Output {
        let mut c = self.ns.cmd(ETHERHUB);
        c.args(["cmd", "127.0.0.1:5555", "/SERVER"]);
        if let Some(h) = hub {
            c.arg(format!("/ADMINHUB:{h}"));
        }
        c.arg("/CMD").args(args);
        run(&mut c)
    }

    /// Like [`cmd`](Self::cmd) but the command must succeed; returns its output.
    pub fn must_cmd(&self, args: &[&str]) -> String {
        self.must_cmd_in(None, args)
    }

    /// A hub command on hub DEFAULT that must succeed.
    pub fn must_hub_cmd(&self, args: &[&str]) -> String {
        self.must_cmd_in(Some("DEFAULT"), args)
    }

    /// UserCreate `user` on hub DEFAULT, as vpncmd asks for it.
    pub fn create_user(&self, user: &str) {
        self.must_hub_cmd(&[
            "UserCreate",
            user,
            "/GROUP:none",
            "/REALNAME:none",
            "/NOTE:none",
        ]);
    }

    /// WgkAdd a client's key for `user` on hub DEFAULT with the client's own address, the only
    /// source address the server then accepts from it.
    pub fn register_client(&self, c: &WgClient, user: &str) {
        let ip = format!("/IP:{}", c.address.split('/').next().unwrap());
        self.must_cmd(&[
            "WgkAdd",
            &c.public_key,
            "/HUB:DEFAULT",
            &format!("/USER:{user}"),
            &ip,
        ]);
    }

    pub fn must_cmd_in(&self, hub: Option<&str>, args: &[&str]) -> String {
        let out = self.cmd_in(hub, args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "etherhub cmd {args:?} failed:\n{text}"
        );
        text
    }

    /// A JSON-RPC call through curl from the server's own namespace; the raw answer.
    pub fn rpc(&self, hub: &str, password: &str, method: &str, params: &str) -> String {
        let body = format!(r#"{{"jsonrpc":"2.0","id":"1","method":"{method}","params":{params}}}"#);
        let out = run(self.ns.cmd("curl").args([
            "-sk",
            "--max-time",
            "10",
            "-X",
            "POST",
            "https://127.0.0.1:5555/api/",
            "-H",
            &format!("X-VPNADMIN-HUBNAME: {hub}"),
            "-H",
            &format!("X-VPNADMIN-PASSWORD: {password}"),
            "--data-binary",
            &body,
        ]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn server_public_key(&self) -> String {
        let wg =
            etherhub_config::Config::parse(&std::fs::read_to_string(self.config_path()).unwrap())
                .unwrap()
                .wireguard()
                .unwrap();
        let key = etherhub_wireguard::key_from_base64(&wg.private_key).unwrap();
        etherhub_wireguard::key_to_base64(&etherhub_wireguard::public_key_of(&key))
    }

    pub fn preshared_key(&self) -> String {
        etherhub_config::Config::parse(&std::fs::read_to_string(self.config_path()).unwrap())
            .unwrap()
            .wireguard()
            .unwrap()
            .preshared_key
    }
}

impl Drop for EtherhubServer {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- etherhub log ---\n{}", self.log_text());
        }
    }
}

/// A stock WireGuard client: Debian's wireguard-go in its own namespace, configured by `wg`.
pub struct WgClient {
    pub ns: Netns,
    pub ifname: String,
    pub private_key: String,
    pub public_key: String,
    pub address: String,
    pub underlay_gw: String,
    proc: Option<Proc>,
    dir: tempfile::TempDir,
}

pub fn wg_genkey() -> (String, String) {
    let private = must(Command::new("wg").arg("genkey")).trim().to_string();
    let mut child = Command::new("wg")
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{private}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        private,
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

impl WgClient {
    /// Starts wireguard-go in `ns` with a fresh key; the tunnel is configured by [`configure`].
    pub fn new(ns: Netns, id: u32, address: &str, underlay_gw: &str) -> WgClient {
        let (private_key, public_key) = wg_genkey();
        let ifname = format!("wgc{id}");
        let dir = tempfile::tempdir().unwrap();
        let child = ns
            .cmd("wireguard-go")
            .args(["-f", &ifname])
            .env("LOG_LEVEL", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let c = WgClient {
            ns,
            ifname,
            private_key,
            public_key,
            address: address.to_string(),
            underlay_gw: underlay_gw.to_string(),
            proc: Some(Proc {
                child,
                what: "wireguard-go".into(),
            }),
            dir,
        };
        let end = Instant::now() + Duration::from_secs(10);
        while run(c.ns.cmd("ip").args(["link", "show", &c.ifname]))
            .status
            .code()
            != Some(0)
        {
            assert!(
                Instant::now() < end,
                "wireguard-go did not create {}",
                c.ifname
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        c.ns.ip(&["addr", "add", address, "dev", &c.ifname]);
        c.ns.ip(&["link", "set", &c.ifname, "mtu", "1420", "up"]);
        c
    }

    /// The client's own underlay address (the server's side of the veth is `.1`, its `.2`).
    pub fn underlay_ip(&self) -> String {
        let (net, _) = self.underlay_gw.rsplit_once('.').unwrap();
        format!("{net}.2")
    }

    /// Writes the seed's client config (minus Address, which `new` set) and applies it with
    /// `wg setconf`: PrivateKey; PublicKey, PresharedKey, AllowedIPs, Endpoint, PersistentKeepalive.
    pub fn configure(&self, server_public: &str, psk: &str, endpoint: &str, allowed: &str) {
        let conf = format!(
            "[Interface]\nPrivateKey = {}\n\n[Peer]\nPublicKey = {server_public}\nPresharedKey = {psk}\n\
             AllowedIPs = {allowed}\nEndpoint = {endpoint}\nPersistentKeepalive = 25\n",
            self.private_key
        );
        let path = self.dir.path().join(format!("{}.conf", self.ifname));
        std::fs::write(&path, conf).unwrap();
        must(self.ns.cmd("wg").args(["setconf", &self.ifname]).arg(&path));
    }

    /// Points the tunnel at `server`'s port 443 with its keys, for the hub's network and, when
    /// given, the LAN behind the server (routed into the tunnel too).
    pub fn join(&self, server: &EtherhubServer, lan: Option<&Lan>) {
        let allowed = match lan {
            Some(l) => format!("192.168.30.0/24, {}", l.subnet),
            None => "192.168.30.0/24".to_string(),
        };
        self.configure(
            &server.server_public_key(),
            &server.preshared_key(),
            &format!("{}:443", self.underlay_gw),
            &allowed,
        );
        if let Some(l) = lan {
            self.ns
                .ip(&["route", "add", &l.subnet, "dev", &self.ifname]);
        }
    }

    pub fn remove_peer(&self, server_public: &str) {
        must(
            self.ns
                .cmd("wg")
                .args(["set", &self.ifname, "peer", server_public, "remove"]),
        );
    }

    /// Seconds since the epoch of the last handshake with the server, 0 if none.
    pub fn latest_handshake(&self) -> u64 {
        let out = must(
            self.ns
                .cmd("wg")
                .args(["show", &self.ifname, "latest-handshakes"]),
        );
        out.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    pub fn wait_handshake_after(&self, after: u64, within: Duration) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if self.latest_handshake() > after {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for WgClient {
    fn drop(&mut self) {
        let _ = run(self.ns.cmd("ip").args(["link", "del", &self.ifname]));
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
    }
}

/// A server namespace with `clients` client namespaces, each on its own veth /24.
pub struct Lab {
    pub id: u32,
    pub server: EtherhubServer,
    pub client_ns: Vec<Option<Netns>>,
    pub server_addrs: Vec<String>,
}

impl Lab {
    pub fn new(clients: usize) -> Lab {
        let id = unique_id();
        let server_ns = Netns::new(format!("ehs{id}"));
        let octet = subnet_octet(id);
        let mut client_ns = Vec::new();
        let mut server_addrs = Vec::new();
        for i in 0..clients {
            let ns = Netns::new(format!("ehc{id}x{i}"));
            // 198.18.0.0/15: client i on 198.(18 + i % 2).<(octet + i / 2) mod 128>.0/24
            let second = 18 + (i % 2) as u8;
            // below 128: 198.19.128.0/17 is the LAN's (see `lan`)
            let third = octet.wrapping_add((i / 2) as u8) & 0x7f;
            let s_ip = format!("198.{second}.{third}.1");
            let c_ip = format!("198.{second}.{third}.2");
            veth(
                &server_ns,
                &format!("{s_ip}/24"),
                &ns,
                &format!("{c_ip}/24"),
                id,
                &i.to_string(),
            );
            server_addrs.push(s_ip);
            client_ns.push(Some(ns));
        }
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("etherhub.log");
        Lab {
            id,
            server: EtherhubServer {
                ns: server_ns,
                dir,
                proc: None,
                log,
            },
            client_ns,
            server_addrs,
        }
    }

    /// A wireguard-go client in client namespace `i`, with tunnel address `address` (CIDR).
    pub fn client(&mut self, i: usize, address: &str) -> WgClient {
        let ns = self.client_ns[i].take().expect("one client per namespace");
        let gw = self.server_addrs[i].clone();
        WgClient::new(ns, self.id * 10 + i as u32, address, &gw)
    }
}

/// The network behind the server: a namespace joined to the server's by a veth on a /24 in
/// 198.19.128.0/17 (clear of the client underlays, which use 198.19.0.0/17 at most).
pub struct Lan {
    pub ns: Netns,
    /// the server's address on the LAN
    pub server_ip: String,
    /// the LAN host's address
    pub ip: String,
    /// the LAN's /24, as "a.b.c.0/24"
    pub subnet: String,
}

impl Lab {
    /// Adds the LAN namespace behind the server.
    pub fn lan(&self) -> Lan {
        let ns = Netns::new(format!("ehl{}", self.id));
        let third = 128 | (subnet_octet(self.id) & 0x7f);
        let server_ip = format!("198.19.{third}.1");
        let ip = format!("198.19.{third}.2");
        veth(
            &self.server.ns,
            &format!("{server_ip}/24"),
            &ns,
            &format!("{ip}/24"),
            self.id,
            "l",
        );
        Lan {
            ns,
            server_ip,
            ip,
            subnet: format!("198.19.{third}.0/24"),
        }
    }
}

/// An iperf3 server on `ip:port` in `ns` (`once`: for one test only), ended by its PID. It is
/// listening when this returns (a client started at once would otherwise be refused).
pub fn iperf_server(ns: &Netns, ip: &str, port: u16, once: bool) -> Proc {
    let mut c = ns.cmd("iperf3");
    c.args(["-s", "-B", ip, "-p", &port.to_string()]);
    if once {
        c.arg("-1");
    }
    let server = Proc {
        child: c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        what: "iperf3 -s".into(),
    };
    let end = Instant::now() + Duration::from_secs(10);
    let filter = format!("sport = :{port}");
    while Instant::now() < end {
        let out = run(ns.cmd("ss").args(["-Hltn", &filter]));
        if !out.stdout.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

impl Lan {
    /// Starts a program in the LAN namespace, ended by its PID when the guard drops.
    pub fn spawn(&self, program: &str, args: &[&str]) -> Proc {
        let child = self
            .ns
            .cmd(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Proc {
            child,
            what: program.to_string(),
        }
    }
}

/// Asks SecureNAT's DHCP server for an address on `ifname` in `ns` with busybox udhcpc (its
/// script, written to `dir`, only sets the address: no resolv.conf, no routes); the address.
#[allow(dead_code)]
pub fn udhcpc(ns: &Netns, ifname: &str, dir: &std::path::Path) -> Option<String> {
    let script = dir.join("udhcpc.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ncase \"$1\" in\n  deconfig) ip -4 addr flush dev \"$interface\"; ip link set \"$interface\" up ;;\n  bound|renew) ip -4 addr flush dev \"$interface\"; ip addr add \"$ip/${mask:-24}\" dev \"$interface\" ;;\nesac\nexit 0\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(ns.cmd("timeout").args([
        "30",
        "busybox",
        "udhcpc",
        "-f",
        "-q",
        "-n",
        "-i",
        ifname,
        "-s",
        &script.display().to_string(),
        "-t",
        "5",
        "-T",
        "2",
    ]));
    let text = out_text(&out);
    let ip = text
        .lines()
        .find_map(|l| l.split("lease of ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string);
    ip.filter(|_| out.status.success())
}

/// The lab (`lab/`): the guest that runs the stock PPP clients (this machine has no kernel
/// PPP or ESP).
#[allow(dead_code)]
pub fn lab_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lab")
}

#[allow(dead_code)]
/// Builds the guest once (cached; later calls return at once).
pub fn guest_built() {
    let out = run(Command::new(lab_dir().join("guest")).arg("build"));
    assert!(out.status.success(), "lab/guest build: {}", out_text(&out));
}

#[allow(dead_code)]
/// One run of the guest: a script of `lab/in-guest` with `params`, its share directory kept.
pub struct GuestRun {
    pub share: tempfile::TempDir,
    pub proc: Proc,
}

#[allow(dead_code)]
impl GuestRun {
    /// Boots the guest on `guest_ip` behind a tap in `ns` that holds `gateway` (the server's
    /// side) and runs `script`, with the server's certificate (`ca`) for clients that check it.
    pub fn start(
        ns: &Netns,
        script: &str,
        guest_ip: &str,
        gateway: &str,
        params: &str,
        ca: &str,
    ) -> GuestRun {
        let share = tempfile::tempdir().unwrap();
        std::fs::copy(
            lab_dir().join("in-guest").join(script),
            share.path().join(script),
        )
        .unwrap();
        std::fs::write(share.path().join("params"), params).unwrap();
        std::fs::write(share.path().join("ca.pem"), ca).unwrap();
        let child = Command::new(lab_dir().join("guest"))
            .args(["run", &ns.name, guest_ip, gateway, "--", "bash"])
            .arg(format!("/lab/{script}"))
            .env("LAB_SHARE", share.path())
            .env("LAB_TIMEOUT", "150")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("lab/guest runs");
        GuestRun {
            share,
            proc: Proc {
                child,
                what: "lab guest".into(),
            },
        }
    }

    pub fn file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.share.path().join(name)).ok()
    }

    /// Waits (bounded) for a file the guest writes; false when the guest ended first.
    pub fn wait_file(&mut self, name: &str, within: Duration) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            // The guest renames a finished file into place; a whole line is asked for as well, so a
            // file seen half-written is never taken for the answer.
            let text = std::fs::read_to_string(self.share.path().join(name)).unwrap_or_default();
            if text.ends_with('\n') {
                return true;
            }
            if self.proc.child.try_wait().ok().flatten().is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// Waits for the guest to power off: its status and output, and the result lines.
    pub fn finish(mut self, within: Duration) -> (bool, String, String) {
        let end = Instant::now() + within;
        let status = loop {
            if let Ok(Some(st)) = self.proc.child.try_wait() {
                break Some(st);
            }
            if Instant::now() >= end {
                break None;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let mut out = String::new();
        use std::io::Read;
        if let Some(mut o) = self.proc.child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        if let Some(mut e) = self.proc.child.stderr.take() {
            let _ = e.read_to_string(&mut out);
        }
        for log in ["sstpc.log", "xl2tpd.log", "charon.log", "pppd.log"] {
            if let Some(t) = self.file(log) {
                out.push_str(&format!("\n--- {log}\n{t}"));
            }
        }
        let result = self.file("result").unwrap_or_default();
        (status.is_some_and(|s| s.success()), out, result)
    }
}

/// Connects the lab's L2TP client (`params` with `HOLD=1`), then sets the IPsec services
/// (`off`: the `/L2TP:` and `/L2TPRAW:` values, key `vpn`, hub DEFAULT) and checks that the
/// live call has ended at once: gone from SessionList, and the client's link down.
#[allow(dead_code)]
pub fn turning_off_ends_the_call(
    s: &EtherhubServer,
    (guest_ip, gateway): (&str, &str),
    params: &str,
    off: &[&str],
) {
    let mut held = GuestRun::start(&s.ns, "l2tp.sh", guest_ip, gateway, params, "");
    assert!(
        held.wait_file("connected", Duration::from_secs(120)),
        "the client did not connect"
    );
    assert!(s.must_hub_cmd(&["SessionList"]).contains("[L2TP]"));
    let mut args = vec!["IPsecEnable"];
    args.extend_from_slice(off);
    args.extend_from_slice(&["/ETHERIP:no", "/PSK:vpn", "/DEFAULTHUB:DEFAULT"]);
    s.must_cmd(&args);
    let sessions = s.must_hub_cmd(&["SessionList"]);
    assert!(
        !sessions.contains("[L2TP]"),
        "the call outlived its service:\n{sessions}"
    );
    std::fs::write(held.share.path().join("go"), "").unwrap();
    let (ok, _, result) = held.finish(Duration::from_secs(120));
    assert!(!ok, "the client kept its link:\n{result}");
}

/// What a lab PPP client test meets: the server, a wireguard-go client (user alice, at
/// `wg_ip`) joined to hub DEFAULT with the LAN behind the server, a password user, an iperf3
/// server on the LAN, and the guest's link: a tap in the server's namespace holding `gateway`,
/// on a /24 clear of the lab's client underlays (198.18.128.0/17 is unused by them).
#[allow(dead_code)]
pub struct PppScene {
    pub lab: Lab,
    pub lan: Lan,
    pub wg: WgClient,
    pub iperf: Proc,
    pub guest_ip: String,
    pub gateway: String,
}

#[allow(dead_code)]
pub fn ppp_scene(wg_ip: &str, user: &str, password: &str) -> PppScene {
    guest_built();
    let mut lab = Lab::new(1);
    let lan = lab.lan();
    let wg = lab.client(0, &format!("{wg_ip}/24"));
    lab.server.start();
    let s = &lab.server;
    s.create_user("alice");
    s.register_client(&wg, "alice");
    wg.join(s, Some(&lan));
    s.create_user(user);
    s.must_hub_cmd(&["UserPasswordSet", user, &format!("/PASSWORD:{password}")]);
    let iperf = iperf_server(&lan.ns, &lan.ip, 5201, false);
    let third = 128 | (lab.id % 127) as u8;
    PppScene {
        guest_ip: format!("198.18.{third}.2/24"),
        gateway: format!("198.18.{third}.1"),
        lab,
        lan,
        wg,
        iperf,
    }
}

/// Runs a PPP client of the lab (`script`, `tag` its session tag: `SSTP`, `L2TP`) that holds
/// its link (`HOLD=1` in `params`) and checks what every such client must show: a SecureNAT
/// address, the session `SID-<USER>-[<tag>]-` in SessionList and its address in IpTable
/// while it is up, the gateway and `also` answering pings, TCP through SecureNAT (iperf3),
/// and the session gone after the client leaves. `user` in upper case, as session names
/// have it. Returns the client's result lines.
#[allow(dead_code, clippy::too_many_arguments)]
pub fn ppp_client_round(
    s: &EtherhubServer,
    script: &str,
    (guest_ip, gateway): (&str, &str),
    params: &str,
    ca: &str,
    tag: &str,
    user: &str,
    (gw, also): (&str, &str),
) -> String {
    ppp_client_round_with(
        s,
        script,
        (guest_ip, gateway),
        params,
        ca,
        (tag, user),
        (gw, also),
        &mut || {},
    )
}

/// [`ppp_client_round`], with `during` run once the client is connected, right before it
/// goes on to its pings and transfer.
#[allow(dead_code, clippy::too_many_arguments)]
pub fn ppp_client_round_with(
    s: &EtherhubServer,
    script: &str,
    (guest_ip, gateway): (&str, &str),
    params: &str,
    ca: &str,
    (tag, user): (&str, &str),
    (gw, also): (&str, &str),
    during: &mut dyn FnMut(),
) -> String {
    let mut good = GuestRun::start(&s.ns, script, guest_ip, gateway, params, ca);
    let connected = good.wait_file("connected", Duration::from_secs(120));
    let address = good
        .file("connected")
        .unwrap_or_default()
        .trim()
        .to_string();
    let (sessions, ips) = (
        s.must_hub_cmd(&["SessionList"]),
        s.must_hub_cmd(&["IpTable"]),
    );
    if connected {
        during();
    }
    std::fs::write(good.share.path().join("go"), "").unwrap();
    let (ok, out, result) = good.finish(Duration::from_secs(180));
    assert!(
        connected,
        "the client did not connect:\n{result}\n{out}\n--- server ---\n{}",
        s.log_text()
    );
    assert!(
        address.starts_with("192.168.30."),
        "address {address:?} is not SecureNAT's"
    );
    let name = format!("SID-{user}-[{tag}]-");
    assert!(sessions.contains(&name), "{name} not in\n{sessions}");
    assert!(ips.contains(&address), "{address} not in IpTable:\n{ips}");
    assert!(ok, "the client side failed:\n{result}\n{out}");
    let proto = tag.to_ascii_lowercase();
    assert!(
        result.contains(&format!("{proto}: ping {gw}: 5/5")),
        "{result}"
    );
    assert!(
        result.contains(&format!("{proto}: ping {also}: 3/3")),
        "{result}"
    );
    let mbit: f64 = result
        .lines()
        .find(|l| l.contains("iperf3"))
        .and_then(|l| l.rsplit(": ").next())
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(mbit > 0.0, "no TCP through SecureNAT:\n{result}");
    // the client left: its session goes
    let gone = format!("[{tag}]");
    let end = Instant::now() + Duration::from_secs(30);
    while s.must_hub_cmd(&["SessionList"]).contains(&gone) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(!s.must_hub_cmd(&["SessionList"]).contains(&gone));
    result
}
