//! The real binary on free loopback ports (no root, no namespaces): the embedded default config
//! with its listeners moved to ports the test picks. Ended by its PID on drop.

use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct LoopbackServer {
    child: Child,
    /// the admin (TCP) port
    pub port: u16,
    /// the UDP port
    pub udp: u16,
    pub dir: tempfile::TempDir,
}

/// A port free for both TCP and UDP on 127.0.0.1.
pub fn free_port() -> u16 {
    loop {
        let p = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

impl LoopbackServer {
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    /// Starts the server after `adjust` has changed its config; waits until the admin port
    /// accepts connections.
    pub fn start_with(adjust: impl FnOnce(&mut etherhub_config::Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let udp = free_port();
        let path = dir.path().join("vpn_server.config");
        let mut cfg = etherhub_server::defaults::embedded_default().unwrap();
        for l in cfg.listeners() {
            cfg.remove_listener(l.port).unwrap();
        }
        cfg.add_listener(port, true).unwrap();
        cfg.set_udp_ports(&[udp]);
        adjust(&mut cfg);
        etherhub_config::Store::new(&path).save(&cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(super::ETHERHUB)
            .args(["server", "--config"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let s = LoopbackServer {
            child,
            port,
            udp,
            dir,
        };
        let end = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "server did not start:\n{}", s.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("vpn_server.config")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- etherhub log ---\n{}", self.log());
        }
    }
}
