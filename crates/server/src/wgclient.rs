//! WireGuard without the chores: keys generated on the server, addresses from the hub's
//! network, and the client's ready wg-quick config.
//!
//! A generated private key lives only in the reply to the call that made it: it is written into
//! the returned config and dropped, never stored in the config file and never logged.

use crate::backend::{change_err, model_err, AdminBackend};
use crate::defaults;
use crate::server::decode_key;
use etherhub_admin::code::*;
use etherhub_admin::*;
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

/// The client config of a registered key, from the config file's view of it.
pub fn client_config(
    cfg: &Config,
    key: &etherhub_config::WgKey,
    private_key: Option<String>,
    all_traffic: bool,
) -> Result<ClientConfig, AdminError> {
    let hub = cfg.hub(&key.hub).map_err(|e| model_err(&e))?;
    let net = etherhub_config::HubNetwork::new(hub.default_gateway, hub.default_subnet);
    let wg = cfg
        .wireguard()
        .ok_or_else(|| AdminError::new(ERR_INTERNAL_ERROR, "the server has no WireGuard keys"))?;
    let server_public_key = decode_key(&wg.private_key)
        .map(|k| etherhub_wireguard::key_to_base64(&etherhub_wireguard::public_key_of(&k)))
        .ok_or_else(|| {
            AdminError::new(ERR_INTERNAL_ERROR, "the server's WireGuard key is unusable")
        })?;
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

impl AdminBackend {
    pub(crate) fn wg_add_keys_auto(
        &self,
        requests: &[WgKeyRequest],
        all_traffic: bool,
    ) -> AdminResult<Vec<WgKeyAdded>> {
        // keys first: a malformed one refuses the whole batch before anything changes
        let mut keys = Vec::with_capacity(requests.len());
        for r in requests {
            let (public, private) = if r.key.is_empty() {
                let private = etherhub_wireguard::generate_private_key();
                (etherhub_wireguard::public_key_of(&private), Some(private))
            } else {
                let public = decode_key(&r.key).ok_or_else(|| {
                    AdminError::invalid_param(
                        "Key_str",
                        &format!(
                            "{:?} is not a WireGuard public key (base64 of 32 bytes)",
                            r.key
                        ),
                    )
                })?;
                (public, None)
            };
            // a generated pair gets its own preshared key; a given key uses the server's
            let psk = private.map(|_| defaults::b64(&defaults::random_key()));
            keys.push((public, private, psk));
        }
        let registered = self
            .0
            .change_config(|c| {
                let mut out = Vec::with_capacity(requests.len());
                for (r, (public, private, psk)) in requests.iter().zip(&keys) {
                    // a key the client made, given without an address, takes the one its client
                    // uses first (SoftEther's way); a generated pair gets the next free one
                    let address = match (r.address, private) {
                        (None, None) => None,
                        (wanted, _) => Some(c.wg_address_for(&r.hub, wanted)?),
                    };
                    let k = etherhub_config::WgKey {
                        key: etherhub_wireguard::key_to_base64(public),
                        hub: r.hub.clone(),
                        user: r.user.clone(),
                        address,
                        preshared_key: psk.clone(),
                    };
                    c.add_wg_key_full(&k)?;
                    out.push(k);
                }
                Ok(out)
            })
            .map_err(change_err)?;
        let cfg = self.0.config();
        registered
            .into_iter()
            .zip(keys)
            .map(|(k, (_, private, _))| {
                let private = private.map(|p| defaults::b64(&p));
                let config = client_config(&cfg, &k, private, all_traffic)?.render();
                Ok(WgKeyAdded {
                    key: k.key,
                    hub: k.hub,
                    user: k.user,
                    address: k.address,
                    config,
                })
            })
            .collect()
    }

    pub(crate) fn wg_key_status(&self) -> AdminResult<Vec<WgKeyStatus>> {
        let keys = self.0.config().wg_keys();
        let dp = self.0.dataplane.lock();
        Ok(keys
            .into_iter()
            .map(|k| {
                let mut st = WgKeyStatus {
                    own_psk: k.preshared_key.is_some(),
                    address: k.address,
                    ..WgKeyStatus::default()
                };
                let live = decode_key(&k.key).and_then(|key| dp.engine.wireguard_session(&key));
                if let Some((hub, session, view)) = live {
                    st.session = dp
                        .engine
                        .hub(&hub)
                        .and_then(|h| h.session(session))
                        .map(|s| s.name);
                    st.spoofed_dropped = view.spoofed_dropped;
                    st.address = st.address.or(view.address);
                    if let Some(info) = dp.engine.wireguard().peer(view.tunnel) {
                        st.last_handshake_ms = info.last_handshake.map(|t| self.ms(t)).unwrap_or(0);
                        st.recv_bytes = info.rx_bytes;
                        st.send_bytes = info.tx_bytes;
                    }
                }
                WgKeyStatus {
                    key: k.key,
                    hub: k.hub,
                    user: k.user,
                    ..st
                }
            })
            .collect())
    }

    pub(crate) fn wg_config_of(&self, key: &str, all_traffic: bool) -> AdminResult<WgKeyAdded> {
        let cfg = self.0.config();
        let k = cfg
            .wg_keys()
            .into_iter()
            .find(|k| k.key == key.trim())
            .ok_or_else(|| {
                model_err(&etherhub_config::ModelError::WgKeyNotFound(key.to_string()))
            })?;
        let config = client_config(&cfg, &k, None, all_traffic)?.render();
        Ok(WgKeyAdded {
            key: k.key,
            hub: k.hub,
            user: k.user,
            address: k.address,
            config,
        })
    }

    pub(crate) fn wg_public_host_or_default(&self) -> String {
        self.0.config().wireguard_public_host().unwrap_or_default()
    }

    pub(crate) fn wg_set_public_host(&self, host: &str) -> AdminResult<()> {
        self.0
            .change_config(|c| Ok(c.set_wireguard_public_host(host)?))
            .map_err(change_err)
    }
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
