//! What an admin change means for the data plane: the difference between the config before and
//! after it, as the engine's [`Change`] values. Every admin method goes through this one
//! function, so none can forget to tell the running hubs (as SetStaticNetwork once did).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use etherhub_config::{AccessRule, Config, SecureNatSettings};
use etherhub_engine::{Change, HubSpec, UserAuth, UserSpec, WgKeySpec, WireGuardSpec};
use etherhub_hub::{StaticNetwork, VirtualHostConfig};
use etherhub_securenat::{parse_push_routes, DhcpConfig, NatConfig};
use etherhub_wireguard::{key_from_base64, Key};

/// Most NAT flows per hub.
pub const MAX_NAT_SESSIONS: usize = 4096;

/// What the runtime adds to the config's SecureNAT settings: the resolvers DNS is relayed to and
/// a seed for smoltcp's sequence numbers.
pub struct NatEnv {
    pub resolvers: Vec<Ipv4Addr>,
    pub seed: fn() -> u64,
}

/// The resolvers in /etc/resolv.conf (IPv4 ones).
pub fn system_resolvers() -> Vec<Ipv4Addr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "nameserver").then_some(())?;
            w.next()?.parse().ok()
        })
        .collect()
}

/// The host's settings from the config's SecureNAT block.
pub fn nat_config(s: &SecureNatSettings, resolvers: Vec<Ipv4Addr>, seed: u64) -> NatConfig {
    NatConfig {
        host: VirtualHostConfig {
            ip: s.host_ip,
            mask: s.host_mask,
            mac: s.host_mac,
        },
        nat_enabled: s.nat_enabled,
        mtu: s.nat_mtu as usize,
        tcp_timeout: Duration::from_secs(u64::from(s.nat_tcp_timeout.max(1))),
        udp_timeout: Duration::from_secs(u64::from(s.nat_udp_timeout.max(1))),
        max_sessions: MAX_NAT_SESSIONS,
        dhcp: s.dhcp_enabled.then(|| DhcpConfig {
            start: s.dhcp_start,
            end: s.dhcp_end,
            mask: s.dhcp_mask,
            lease: Duration::from_secs(u64::from(s.dhcp_expire.max(60))),
            gateway: s.dhcp_gateway,
            dns: s.dhcp_dns,
            dns2: s.dhcp_dns2,
            domain: s.dhcp_domain.clone(),
            push_routes: parse_push_routes(&s.dhcp_push_routes),
        }),
        dns_servers: resolvers,
        seed,
    }
}

fn decode(b64: &str) -> Option<Key> {
    key_from_base64(b64).ok()
}

/// A hub as the config describes it, before the runtime's additions.
#[derive(Clone, Debug, PartialEq, Eq)]
struct HubView {
    name: String,
    online: bool,
    static_network: Option<(Ipv4Addr, Ipv4Addr)>,
    securenat: Option<SecureNatSettings>,
    access: Vec<AccessRule>,
}

/// The parts of a config the engine runs on, keyed for comparison.
#[derive(Default)]
struct View {
    wireguard: Option<WireGuardSpec>,
    /// OpenVPN's options as text, and its tls-crypt key (`TlsCryptKey`, the key file's text).
    openvpn: Vec<(String, String)>,
    /// SSTP's options as text, and the IPsec settings' default hub.
    sstp: Vec<(String, String)>,
    /// L2TP's: the IPsec settings' raw L2TP switch and default hub.
    l2tp: Vec<(String, String)>,
    hubs: BTreeMap<String, HubView>,
    users: BTreeMap<(String, String), UserSpec>,
    keys: BTreeMap<Key, WgKeySpec>,
}

/// A protocol's options as the engine's cores take them: text (`true`/`false` for booleans).
fn options_text(cfg: &Config, protocol: &str) -> Vec<(String, String)> {
    cfg.proto_options(protocol)
        .map(|(_, o)| {
            o.into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        etherhub_config::proto::ProtoValue::Str(s) => s,
                        etherhub_config::proto::ProtoValue::Bool(b) => b.to_string(),
                    };
                    (k, v)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn fold(s: &str) -> String {
    s.to_ascii_uppercase()
}

impl View {
    fn of(cfg: &Config) -> View {
        let mut v = View {
            wireguard: cfg.wireguard().filter(|w| w.enabled).and_then(|w| {
                Some(WireGuardSpec {
                    private_key: decode(&w.private_key)?,
                    psk: decode(&w.preshared_key),
                })
            }),
            openvpn: options_text(cfg, etherhub_config::proto::OPENVPN),
            sstp: options_text(cfg, etherhub_config::proto::SSTP),
            ..View::default()
        };
        let ipsec = cfg.ipsec();
        v.sstp
            .push(("DefaultHub".into(), ipsec.default_hub.clone()));
        if let Some((cert, _)) = cfg.server_cert() {
            // what SSTP's crypto binding must hash
            let hex: String = cert.iter().map(|b| format!("{b:02x}")).collect();
            v.sstp.push(("ServerCert".into(), hex));
        }
        v.l2tp = vec![
            ("RawEnabled".into(), ipsec.l2tp_raw.to_string()),
            ("IpsecEnabled".into(), ipsec.l2tp_ipsec.to_string()),
            ("Psk".into(), ipsec.secret.clone()),
            ("DefaultHub".into(), ipsec.default_hub),
        ];
        if let Some(k) = cfg.openvpn_tls_crypt_key().and_then(|k| k.try_into().ok()) {
            let text = etherhub_openvpn::tls_crypt::StaticKey::from_bytes(k).to_text();
            v.openvpn.push(("TlsCryptKey".into(), text));
        }
        for name in cfg.hub_names() {
            let Ok(h) = cfg.hub(&name) else { continue };
            for u in cfg.users(&name).unwrap_or_default() {
                let empty = etherhub_config::hash::hash_user_password(&u.name, "");
                let auth = match u.auth_type {
                    0 => UserAuth::Anonymous,
                    1 if u.auth_password.len() == 20 && u.auth_password != empty => {
                        let mut hash = [0u8; 20];
                        hash.copy_from_slice(&u.auth_password);
                        UserAuth::Password(hash)
                    }
                    1 => UserAuth::NoPassword,
                    _ => UserAuth::Other,
                };
                v.users.insert(
                    (fold(&name), fold(&u.name)),
                    UserSpec {
                        hub: h.name.clone(),
                        policy: cfg.effective_policy(&name, &u),
                        expires_ms: u.expire_time,
                        group: u.group.clone(),
                        nt_hash: u.nt_hash.as_slice().try_into().ok(),
                        name: u.name,
                        auth,
                    },
                );
            }
            v.hubs.insert(
                fold(&name),
                HubView {
                    name: h.name.clone(),
                    online: h.online,
                    static_network: (!h.default_gateway.is_unspecified())
                        .then_some((h.default_gateway, h.default_subnet)),
                    securenat: h.securenat.enabled.then_some(h.securenat),
                    access: cfg.access_list(&name).unwrap_or_default(),
                },
            );
        }
        for k in cfg.wg_keys() {
            let Some(key) = decode(&k.key) else { continue };
            v.keys.insert(
                key,
                WgKeySpec {
                    key,
                    hub: k.hub,
                    user: k.user,
                    psk: k.preshared_key.as_deref().and_then(decode),
                    address: k.address,
                },
            );
        }
        v
    }
}

fn hub_spec(h: &HubView, env: &NatEnv) -> HubSpec {
    HubSpec {
        name: h.name.clone(),
        online: h.online,
        static_network: h
            .static_network
            .map(|(gateway, mask)| StaticNetwork { gateway, mask }),
        securenat: h
            .securenat
            .as_ref()
            .map(|s| nat_config(s, env.resolvers.clone(), (env.seed)())),
        access: h.access.clone(),
    }
}

/// What changed from `old` (`None`: an empty server) to `new`, in the order the engine takes it:
/// WireGuard's keys, deleted hubs, hubs, deleted users, users, deleted keys, keys.
pub fn diff(old: Option<&Config>, new: &Config, env: &NatEnv) -> Vec<Change> {
    let old = old.map(View::of).unwrap_or_default();
    let new = View::of(new);
    let mut out = Vec::new();
    if old.wireguard != new.wireguard {
        out.push(Change::WireGuard(new.wireguard.clone()));
    }
    if old.openvpn != new.openvpn {
        out.push(Change::ProtoOptions {
            protocol: etherhub_config::proto::OPENVPN.into(),
            options: new.openvpn.clone(),
        });
    }
    if old.sstp != new.sstp {
        out.push(Change::ProtoOptions {
            protocol: etherhub_config::proto::SSTP.into(),
            options: new.sstp.clone(),
        });
    }
    if old.l2tp != new.l2tp {
        out.push(Change::ProtoOptions {
            protocol: "L2TP".into(),
            options: new.l2tp.clone(),
        });
    }
    for (k, h) in &old.hubs {
        if !new.hubs.contains_key(k) {
            out.push(Change::HubRemoved(h.name.clone()));
        }
    }
    for (k, h) in &new.hubs {
        if old.hubs.get(k) != Some(h) {
            out.push(Change::Hub(hub_spec(h, env)));
        }
    }
    for (k, u) in &old.users {
        if !new.users.contains_key(k) && new.hubs.contains_key(&k.0) {
            out.push(Change::UserRemoved {
                hub: u.hub.clone(),
                name: u.name.clone(),
            });
        }
    }
    for (k, u) in &new.users {
        if old.users.get(k) != Some(u) {
            out.push(Change::User(u.clone()));
        }
    }
    for k in old.keys.keys() {
        if !new.keys.contains_key(k) {
            out.push(Change::WgKeyRemoved(*k));
        }
    }
    for (k, spec) in &new.keys {
        if old.keys.get(k) != Some(spec) {
            out.push(Change::WgKey(spec.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> NatEnv {
        NatEnv {
            resolvers: vec![],
            seed: || 7,
        }
    }

    fn names(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                Change::WireGuard(s) => format!("wireguard {}", s.is_some()),
                Change::Hub(h) => format!("hub {}", h.name),
                Change::HubRemoved(h) => format!("hub- {h}"),
                Change::AccessUserLists { hub, .. } => format!("lists {hub}"),
                Change::ProtoOptions { protocol, .. } => format!("proto {protocol}"),
                Change::User(u) => format!("user {}/{}", u.hub, u.name),
                Change::UserRemoved { hub, name } => format!("user- {hub}/{name}"),
                Change::WgKey(k) => format!("key {}", k.user),
                Change::WgKeyRemoved(_) => "key-".into(),
            })
            .collect()
    }

    #[test]
    fn the_embedded_default_is_wireguard_and_one_hub_with_securenat() {
        let cfg = crate::defaults::embedded_default().unwrap();
        let c = diff(None, &cfg, &env());
        assert_eq!(
            names(&c),
            vec![
                "wireguard true",
                "proto OpenVPN",
                "proto SSTP",
                "proto L2TP",
                "hub DEFAULT"
            ]
        );
        let Change::ProtoOptions { options, .. } = &c[1] else {
            panic!()
        };
        assert!(
            options.contains(&("Enabled".into(), "true".into())),
            "OpenVPN on by default"
        );
        assert!(options.contains(&("TlsCrypt".into(), "false".into())));
        let key = options.iter().find(|(k, _)| k == "TlsCryptKey").unwrap();
        assert!(key.1.contains("-----BEGIN OpenVPN Static key V1-----"));
        let Change::ProtoOptions { options, .. } = &c[2] else {
            panic!()
        };
        let text = |a: &str, b: &str| (a.to_string(), b.to_string());
        // SSTP's crypto binding is checked against the server's certificate, in hex
        let (cert, _) = cfg.server_cert().expect("the default has a certificate");
        let hex: String = cert.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            options,
            &vec![
                text("Enabled", "true"),
                text("DefaultHub", "DEFAULT"),
                text("ServerCert", &hex)
            ]
        );
        let Change::ProtoOptions { options, .. } = &c[3] else {
            panic!()
        };
        // raw L2TP and L2TP over IPsec are off until IPsecEnable turns them on, with
        // SoftEther's key, as in SoftEther
        assert_eq!(
            options,
            &vec![
                text("RawEnabled", "false"),
                text("IpsecEnabled", "false"),
                text("Psk", "vpn"),
                text("DefaultHub", "DEFAULT")
            ]
        );
        let Change::Hub(h) = &c[4] else { panic!() };
        assert!(h.securenat.is_some());
        assert_eq!(
            h.static_network.map(|n| n.gateway),
            Some(Ipv4Addr::new(192, 168, 30, 1))
        );
        assert!(
            diff(Some(&cfg), &cfg, &env()).is_empty(),
            "no change, nothing to do"
        );
    }

    #[test]
    fn every_kind_of_admin_change_is_seen() {
        let before = crate::defaults::embedded_default().unwrap();
        let mut cfg = before.clone();
        cfg.create_user("DEFAULT", "meta", "", "", 0).unwrap();
        cfg.set_user_password("DEFAULT", "meta", "pw", 0).unwrap();
        let key = etherhub_wireguard::key_to_base64(&[9u8; 32]);
        cfg.add_wg_key(&key, "DEFAULT", "meta").unwrap();
        assert_eq!(
            names(&diff(Some(&before), &cfg, &env())),
            vec!["user DEFAULT/meta", "key meta"]
        );
        let mid = cfg.clone();
        cfg.set_static_network(
            "DEFAULT",
            Ipv4Addr::new(192, 168, 30, 254),
            Ipv4Addr::new(255, 255, 255, 0),
        )
        .unwrap();
        let c = diff(Some(&mid), &cfg, &env());
        let Change::Hub(h) = &c[0] else {
            panic!("{:?}", names(&c))
        };
        assert_eq!(
            h.static_network.unwrap().gateway,
            Ipv4Addr::new(192, 168, 30, 254)
        );
        let mid = cfg.clone();
        cfg.delete_user("DEFAULT", "meta").unwrap();
        cfg.remove_wg_key(&key).unwrap();
        assert_eq!(
            names(&diff(Some(&mid), &cfg, &env())),
            vec!["user- DEFAULT/meta", "key-"]
        );
        let mid = cfg.clone();
        cfg.delete_hub("DEFAULT").unwrap();
        assert_eq!(names(&diff(Some(&mid), &cfg, &env())), vec!["hub- DEFAULT"]);
    }

    #[test]
    fn a_user_without_a_password_is_not_a_password_of_nothing() {
        let mut cfg = crate::defaults::embedded_default().unwrap();
        cfg.create_user("DEFAULT", "meta", "", "", 0).unwrap();
        let c = diff(None, &cfg, &env());
        let user = c.iter().find_map(|c| match c {
            Change::User(u) => Some(u),
            _ => None,
        });
        assert_eq!(user.unwrap().auth, UserAuth::NoPassword);
    }
}
