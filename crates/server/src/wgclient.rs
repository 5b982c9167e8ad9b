//! WireGuard without the chores: the client's ready wg-quick config, from the config file's
//! view of a key (the admin methods that register keys are in `backend`).
//!
//! A generated private key lives only in the reply to the call that made it: it is written into
//! the returned config and dropped, never stored in the config file and never logged.

use crate::defaults;
use crate::server::decode_key;
use anyhow::Context as _;
use etherhub_config::Config;
use std::net::Ipv4Addr;

/// Keepalive the generated configs ask for: keeps NAT mappings on the client's side open.
pub const PERSISTENT_KEEPALIVE: u32 = 25;

/// What a client config says, before it is written out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// `None`: the client keeps its own private key; the config says so in a comment.
    pub private_key: Option<String>,
    /// `192.168.30.2/24`: the peer's address with the hub's prefix, so that wg-quick routes the
    /// hub's network into the tunnel (the hub answers ARP for the peer). `None`: the key was
    /// registered without one; the config says to pick one of `network`.
    pub address: Option<String>,
    /// The hub's network, `192.168.30.0/24`.
    pub network: String,
    pub dns: Vec<Ipv4Addr>,
    pub server_public_key: String,
    pub preshared_key: Option<String>,
    pub allowed_ips: String,
    pub endpoint: String,
}

impl ClientConfig {
    /// The wg-quick text.
    pub fn render(&self) -> String {
        let mut s = String::from("[Interface]\n");
        match &self.private_key {
            Some(k) => s.push_str(&format!("PrivateKey = {k}\n")),
            None => s.push_str(
                "# PrivateKey = (kept by the client: the server never had it; put it here)\n",
            ),
        }
        match &self.address {
            Some(a) => s.push_str(&format!("Address = {a}\n")),
            None => s.push_str(&format!(
                "# Address = (a free address of {} with its prefix: the server keeps the first \
                 one this client uses)\n",
                self.network
            )),
        }
        if !self.dns.is_empty() {
            let dns: Vec<String> = self.dns.iter().map(Ipv4Addr::to_string).collect();
            s.push_str(&format!("DNS = {}\n", dns.join(", ")));
        }
        s.push_str(&format!(
            "\n[Peer]\nPublicKey = {}\n",
            self.server_public_key
        ));
        if let Some(p) = &self.preshared_key {
            s.push_str(&format!("PresharedKey = {p}\n"));
        }
        s.push_str(&format!(
            "AllowedIPs = {}\nEndpoint = {}\nPersistentKeepalive = {PERSISTENT_KEEPALIVE}\n",
            self.allowed_ips, self.endpoint
        ));
        s
    }
}

/// `host:port` for the client: the public host as set (its own port wins), else `fallback`,
/// with the first UDP port (443 when none is set).
pub fn endpoint(public_host: Option<&str>, fallback: &str, udp_ports: &[u16]) -> String {
    let port = udp_ports.first().copied().unwrap_or(443);
    let host = public_host.unwrap_or(fallback);
    if host.starts_with('[') {
        return if host.contains("]:") {
            host.to_string()
        } else {
            format!("{host}:{port}")
        };
    }
    match host.matches(':').count() {
        0 => format!("{host}:{port}"),
        1 => host.to_string(),
        _ => format!("[{host}]:{port}"),
    }
}

/// The machine's host name (the endpoint when no public host is set).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A fresh preshared key for a key pair the server generates.
pub fn generated_psk() -> String {
    defaults::b64(&defaults::random_key())
}

/// The client config of a registered key, from the config file's view of it.
pub fn client_config(
    cfg: &Config,
    key: &etherhub_config::WgKey,
    private_key: Option<String>,
    all_traffic: bool,
) -> anyhow::Result<ClientConfig> {
    let hub = cfg.hub(&key.hub)?;
    let net = etherhub_config::HubNetwork::new(hub.default_gateway, hub.default_subnet);
    let wg = cfg
        .wireguard()
        .context("the server has no WireGuard keys")?;
    let server_public_key = decode_key(&wg.private_key)
        .map(|k| etherhub_wireguard::key_to_base64(&etherhub_wireguard::public_key_of(&k)))
        .context("the server's WireGuard key is unusable")?;
    let preshared_key = key
        .preshared_key
        .clone()
        .or(Some(wg.preshared_key).filter(|p| decode_key(p).is_some()));
    let mut dns = Vec::new();
    if hub.securenat.enabled {
        for d in [hub.securenat.dhcp_dns, hub.securenat.dhcp_dns2] {
            if !d.is_unspecified() {
                dns.push(d);
            }
        }
    }
    Ok(ClientConfig {
        private_key,
        address: key.address.map(|a| format!("{a}/{}", net.prefix)),
        network: net.cidr(),
        dns,
        server_public_key,
        preshared_key,
        allowed_ips: if all_traffic {
            "0.0.0.0/0".into()
        } else {
            net.cidr()
        },
        endpoint: endpoint(
            cfg.wireguard_public_host().as_deref(),
            &host_name(),
            &cfg.udp_ports(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(endpoint(None, "vpn", &[992, 443]), "vpn:992");
        assert_eq!(endpoint(Some("a.example"), "vpn", &[]), "a.example:443");
        assert_eq!(
            endpoint(Some("a.example:51820"), "vpn", &[443]),
            "a.example:51820"
        );
        assert_eq!(
            endpoint(Some("2001:db8::1"), "vpn", &[443]),
            "[2001:db8::1]:443"
        );
        assert_eq!(
            endpoint(Some("[2001:db8::1]"), "vpn", &[5555]),
            "[2001:db8::1]:5555"
        );
        assert_eq!(
            endpoint(Some("[2001:db8::1]:7"), "vpn", &[5555]),
            "[2001:db8::1]:7"
        );
    }

    #[test]
    fn renders_wg_quick_text() {
        let mut c = ClientConfig {
            private_key: Some("PRIV=".into()),
            address: Some("192.168.30.2/24".into()),
            network: "192.168.30.0/24".into(),
            dns: vec![Ipv4Addr::new(192, 168, 30, 1)],
            server_public_key: "PUB=".into(),
            preshared_key: Some("PSK=".into()),
            allowed_ips: "192.168.30.0/24".into(),
            endpoint: "vpn.example:443".into(),
        };
        assert_eq!(
            c.render(),
            "[Interface]\nPrivateKey = PRIV=\nAddress = 192.168.30.2/24\nDNS = 192.168.30.1\n\n\
             [Peer]\nPublicKey = PUB=\nPresharedKey = PSK=\nAllowedIPs = 192.168.30.0/24\n\
             Endpoint = vpn.example:443\nPersistentKeepalive = 25\n"
        );
        c.private_key = None;
        c.address = None;
        c.dns.clear();
        c.preshared_key = None;
        let t = c.render();
        assert!(
            t.starts_with("[Interface]\n# PrivateKey = (kept by the client"),
            "{t}"
        );
        assert!(
            t.contains("# Address = (a free address of 192.168.30.0/24"),
            "{t}"
        );
        assert!(!t.contains("DNS") && !t.contains("PresharedKey"), "{t}");
    }
}
