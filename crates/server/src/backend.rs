//! The admin methods over the server state, in the typed messages of etherhub-admin.
//!
//! Every change goes through [`Server::change_config`]: on disk before the call returns
//! success, then into the data plane. Listings read the engine under its lock, briefly.

use crate::defaults::now_ms;
use crate::server::{decode_key, Server};
use crate::wgclient::{client_config, generated_psk};
use etherhub_admin::code::*;
use etherhub_admin::wire::node_u32;
use etherhub_admin::*;
use etherhub_config::ModelError;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

pub struct AdminBackend(pub Arc<Server>);

pub(crate) fn model_err(e: &ModelError) -> AdminError {
    let code = match e {
        ModelError::HubNotFound(_) => ERR_HUB_NOT_FOUND,
        ModelError::HubExists(_) => ERR_HUB_ALREADY_EXISTS,
        ModelError::UserNotFound { .. } | ModelError::WgKeyNotFound(_) => ERR_OBJECT_NOT_FOUND,
        ModelError::UserExists { .. } => ERR_USER_ALREADY_EXISTS,
        ModelError::BadName(_) => ERR_INVALID_NAME,
        ModelError::WgKeyExists(_) => ERR_OBJECT_EXISTS,
        ModelError::ListenerExists(_) => ERR_LISTENER_ALREADY_EXISTS,
        ModelError::ListenerNotFound(_) => ERR_LISTENER_NOT_FOUND,
        ModelError::WgAddressOutsideNetwork { .. } | ModelError::BadHostName(_) => {
            ERR_INVALID_PARAMETER
        }
        ModelError::WgAddressTaken { .. } => ERR_OBJECT_EXISTS,
        ModelError::WgNetworkFull { .. } => ERR_INVALID_VALUE,
        ModelError::GroupNotFound { .. } => ERR_GROUP_NOT_FOUND,
        ModelError::GroupExists { .. } => ERR_GROUP_ALREADY_EXISTS,
    };
    AdminError::new(code, e.to_string())
}

/// Maps a failed config change: model refusals keep their code, anything else (a save that
/// failed) is an internal error whose text says what happened.
fn change_err(e: anyhow::Error) -> AdminError {
    match e.downcast_ref::<ModelError>() {
        Some(m) => model_err(m),
        None => match e.downcast_ref::<AdminError>() {
            Some(a) => a.clone(),
            None => AdminError::new(ERR_INTERNAL_ERROR, format!("{e:#}")),
        },
    }
}

fn traffic(send: &etherhub_hub::Traffic, recv: &etherhub_hub::Traffic) -> Traffic {
    Traffic {
        send_unicast_count: send.unicast_packets,
        send_unicast_bytes: send.unicast_bytes,
        send_broadcast_count: send.broadcast_packets,
        send_broadcast_bytes: send.broadcast_bytes,
        recv_unicast_count: recv.unicast_packets,
        recv_unicast_bytes: recv.unicast_bytes,
        recv_broadcast_count: recv.broadcast_packets,
        recv_broadcast_bytes: recv.broadcast_bytes,
    }
}

fn add(total: &mut Traffic, t: &Traffic) {
    total.send_unicast_count += t.send_unicast_count;
    total.send_unicast_bytes += t.send_unicast_bytes;
    total.send_broadcast_count += t.send_broadcast_count;
    total.send_broadcast_bytes += t.send_broadcast_bytes;
    total.recv_unicast_count += t.recv_unicast_count;
    total.recv_unicast_bytes += t.recv_unicast_bytes;
    total.recv_broadcast_count += t.recv_broadcast_count;
    total.recv_broadcast_bytes += t.recv_broadcast_bytes;
}

fn ip(a: Ipv4Addr) -> Ip {
    Ip::from(a)
}

impl AdminBackend {
    fn server(&self) -> &Server {
        &self.0
    }

    /// A monotonic instant as SoftEther's time.
    fn dt(&self, t: Instant) -> Dt {
        let s = self.server();
        let since = t.saturating_duration_since(s.started_instant);
        let start = s
            .started
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Dt((start + since).as_millis() as u64)
    }

    fn change<T>(
        &self,
        f: impl FnOnce(&mut etherhub_config::Config) -> anyhow::Result<T>,
    ) -> AdminResult<T> {
        self.server().change_config(f).map_err(change_err)
    }

    fn require_hub(&self, hub: &str) -> AdminResult<()> {
        self.server()
            .config()
            .hub(hub)
            .map(|_| ())
            .map_err(|e| model_err(&e))
    }

    /// The hub's sessions, each with its tunnel's details when it is a tunnel.
    fn sessions_of(
        &self,
        hub: &str,
    ) -> AdminResult<
        Vec<(
            etherhub_hub::SessionInfo,
            Option<etherhub_engine::TunnelView>,
        )>,
    > {
        self.require_hub(hub)?;
        let dp = self.server().dataplane.lock();
        let Some(h) = dp.engine.hub(hub) else {
            return Ok(Vec::new());
        };
        Ok(h.sessions()
            .into_iter()
            .map(|s| {
                let t = dp.engine.tunnel_view(hub, s.id);
                (s, t)
            })
            .collect())
    }

    /// Reads the hub's SecureNAT host; SoftEther's error when SecureNAT is not running.
    fn with_nat<T>(
        &self,
        hub: &str,
        f: impl FnOnce(&etherhub_securenat::NatHost) -> T,
    ) -> AdminResult<T> {
        self.require_hub(hub)?;
        let dp = self.server().dataplane.lock();
        let host = dp
            .engine
            .hub(hub)
            .and_then(|h| h.securenat_host())
            .ok_or_else(|| AdminError::from_code(ERR_SNAT_NOT_RUNNING))?;
        Ok(f(host))
    }

    fn set_securenat_enabled(&self, hub: &str, enabled: bool) -> AdminResult<()> {
        self.change(|c| {
            let mut s = c.hub(hub)?.securenat;
            s.enabled = enabled;
            Ok(c.set_securenat(hub, &s)?)
        })
    }
}

impl Backend for AdminBackend {
    fn authenticate(
        &self,
        hub: Option<&str>,
        proof: Proof<'_>,
        peer_is_loopback: bool,
    ) -> AdminResult<AdminScope> {
        let cfg = self.server().config();
        // an empty server admin password is good from this machine only (stricter than
        // SoftEther 5, which takes it from anywhere)
        let server_ok = if cfg.admin_password_is_empty() {
            peer_is_loopback && proof.is_empty()
        } else {
            proof.matches(&cfg.admin_password_hash())
        };
        if server_ok {
            return Ok(AdminScope::Server);
        }
        if let Some(h) = hub.filter(|h| !h.is_empty()) {
            if let Ok(settings) = cfg.hub(h) {
                let empty = etherhub_config::hash::hash_admin_password("");
                // a hub with no password cannot be administered as that hub
                if settings.hashed_password != empty && proof.matches(&settings.hashed_password) {
                    return Ok(AdminScope::Hub(settings.name));
                }
            }
        }
        Err(AdminError::from_code(ERR_ACCESS_DENIED))
    }

    fn openvpn_config_zip(&self) -> AdminResult<Vec<u8>> {
        let cfg = self.server().config().clone();
        if !cfg.proto_enabled(etherhub_config::proto::OPENVPN) {
            return Err(AdminError::from_code(ERR_OPENVPN_IS_NOT_ENABLED));
        }
        let (cert, _) = cfg
            .server_cert()
            .ok_or_else(|| AdminError::new(ERR_INTERNAL_ERROR, "the server has no certificate"))?;
        let host = crate::wgclient::host_name();
        // the public host WireGuard's configs name, without a port of its own
        let remote = cfg
            .wireguard_public_host()
            .map(|h| match h.rsplit_once(':') {
                Some((name, port)) if !name.contains(':') && port.parse::<u16>().is_ok() => {
                    name.to_string()
                }
                _ => h,
            })
            .unwrap_or_else(|| host.clone());
        let ports = cfg.udp_ports();
        let port = if ports.contains(&1194) {
            1194
        } else {
            ports.iter().copied().min().unwrap_or(1194)
        };
        // the tls-crypt key goes in only when the server requires it: otherwise the configs
        // are those of a plain server (a client given the key uses it all the same)
        let tls_crypt = if cfg.proto_flag(
            etherhub_config::proto::OPENVPN,
            etherhub_config::proto::OPENVPN_TLS_CRYPT,
        ) {
            let key: &[u8; 256] = cfg
                .openvpn_tls_crypt_key()
                .and_then(|k| k.try_into().ok())
                .ok_or_else(|| {
                    AdminError::new(
                        ERR_INTERNAL_ERROR,
                        "the server has no tls-crypt key (one is made when it starts)",
                    )
                })?;
            Some(*key)
        } else {
            None
        };
        let files = crate::ovpnconfig::files(&host, &remote, port, &cert, tls_crypt.as_ref());
        Ok(crate::ovpnconfig::zip(&files))
    }

    fn proto_options(
        &self,
        protocol: &str,
    ) -> AdminResult<(String, Vec<(String, etherhub_config::proto::ProtoValue)>)> {
        self.server()
            .config()
            .proto_options(protocol)
            .map(|(n, o)| (n.to_string(), o))
            .map_err(proto_err)
    }

    fn set_proto_options(
        &self,
        protocol: &str,
        options: &[(String, etherhub_config::proto::ProtoValue)],
    ) -> AdminResult<()> {
        self.change(|c| {
            c.set_proto_options(protocol, options)
                .map_err(|e| anyhow::Error::new(proto_err(e)))
        })
    }

    fn ipsec_services(&self) -> AdminResult<etherhub_config::ipsec::IpsecServices> {
        Ok(self.server().config().ipsec())
    }

    fn set_ipsec_services(&self, s: &etherhub_config::ipsec::IpsecServices) -> AdminResult<()> {
        if s.etherip_ipsec {
            // nothing serves it yet: say so rather than pretend
            return Err(AdminError::new(
                ERR_NOT_SUPPORTED,
                "EtherIP over IPsec is not served by Etherhub yet (L2TP over IPsec, raw L2TP, \
                 SSTP, OpenVPN, WireGuard and SoftEther's protocol are)",
            ));
        }
        self.change(|c| {
            c.set_ipsec(s).map_err(|e| {
                anyhow::Error::new(AdminError::new(ERR_INVALID_PARAMETER, e.to_string()))
            })
        })
    }

    fn change_user_password(
        &self,
        hub: &str,
        user: &str,
        old: Proof<'_>,
        new_hash: [u8; 20],
        new_nt: Option<[u8; 16]>,
    ) -> AdminResult<()> {
        self.change(|c| {
            let refuse = |code| anyhow::Error::new(AdminError::from_code(code));
            let u = c
                .user(hub, user)
                .map_err(|_| refuse(ERR_OLD_PASSWORD_WRONG))?;
            if u.auth_type != 1 {
                return Err(refuse(ERR_USER_AUTHTYPE_NOT_PASSWORD));
            }
            if c.effective_policy(hub, &u).named("FixPassword") != 0 {
                return Err(anyhow::Error::new(AdminError::new(
                    ERR_NOT_ENOUGH_RIGHT,
                    "the user's policy (FixPassword) denies changing the password",
                )));
            }
            if !old.matches(&u.auth_password) {
                return Err(refuse(ERR_OLD_PASSWORD_WRONG));
            }
            c.set_user_password_hashes(hub, &u.name, &new_hash, new_nt.as_ref(), now_ms())?;
            Ok(())
        })
    }

    fn server_info(&self) -> AdminResult<ServerInfo> {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let version = env!("CARGO_PKG_VERSION");
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        Ok(ServerInfo {
            product_name: "Etherhub VPN Server".into(),
            version_string: format!("Version {version}"),
            build_info: format!("Etherhub {version} (Rust)"),
            version_int: major * 100 + minor,
            host_name: read("/proc/sys/kernel/hostname"),
            family_name: "Etherhub".into(),
            os_type: 3100,
            os_system_name: "Linux".into(),
            os_product_name: "Linux".into(),
            os_vendor_name: "Unknown Vendor".into(),
            os_version: read("/proc/sys/kernel/osrelease"),
            kernel_name: read("/proc/sys/kernel/ostype"),
            kernel_version: read("/proc/sys/kernel/osrelease"),
            ..ServerInfo::default()
        })
    }

    fn server_status(&self) -> AdminResult<ServerStatus> {
        let cfg = self.server().config().clone();
        let dp = self.server().dataplane.lock();
        let health = dp.engine.health();
        let hubs = cfg.hub_names().len() as u32;
        let tcp = self.server().connections.current().0;
        let mut st = ServerStatus {
            num_hubs: hubs,
            num_hubs_standalone: hubs,
            num_tcp_connections: tcp,
            num_tcp_connections_local: tcp,
            current_time: Dt(now_ms()),
            current_tick: self.server().started_instant.elapsed().as_millis() as u64,
            start_time: self.dt(self.server().started_instant),
            data_plane_last_packet: health.last_packet.map(|t| self.dt(t)).unwrap_or_default(),
            data_plane_faults: health.faults,
            data_plane_last_fault: health
                .last_fault
                .map(|f| {
                    format!(
                        "{} on {} ({}): {}",
                        f.session.as_deref().unwrap_or("-"),
                        f.hub.as_deref().unwrap_or("-"),
                        f.input,
                        f.message
                    )
                })
                .unwrap_or_default(),
            stream_writes_dropped: dp.stats.stream_drops,
            ..Default::default()
        };
        for (protocol, counter, value) in dp.engine.counters() {
            let field = match (protocol, counter) {
                ("SoftEther", "logins") => &mut st.softether_logins,
                ("SoftEther", "refused_logins") => &mut st.softether_logins_refused,
                ("SoftEther", "dropped_blocks") => &mut st.softether_blocks_dropped,
                ("SoftEther", "broken_streams") => &mut st.softether_streams_broken,
                ("SoftEther", "foreign_joins") => &mut st.softether_foreign_joins,
                _ => continue,
            };
            *field = value;
        }
        for name in cfg.hub_names() {
            st.num_users += cfg.users(&name).map(|u| u.len()).unwrap_or(0) as u32;
            if let Some(h) = dp.engine.hub(&name) {
                st.num_sessions += h.sessions().len() as u32;
                st.num_mac_tables += h.mac_table().len() as u32;
                st.num_ip_tables += h.ip_table().len() as u32;
                let t = h.traffic();
                add(&mut st.traffic.0, &traffic(&t.send, &t.recv));
            }
        }
        st.num_sessions_local = st.num_sessions;
        Ok(st)
    }

    fn server_cert(&self) -> AdminResult<Vec<u8>> {
        self.server()
            .config()
            .server_cert()
            .map(|(cert, _key)| cert)
            .ok_or_else(|| AdminError::new(ERR_INTERNAL_ERROR, "the server has no certificate"))
    }

    fn hub_status(&self, name: &str) -> AdminResult<HubStatus> {
        let cfg = self.server().config().clone();
        let h = cfg.hub(name).map_err(|e| model_err(&e))?;
        let item = self
            .enum_hubs()?
            .into_iter()
            .find(|i| i.name == h.name)
            .unwrap_or_default();
        Ok(HubStatus {
            name: h.name,
            online: h.online,
            hub_type: item.hub_type,
            num_sessions: item.num_sessions,
            num_sessions_client: item.num_sessions,
            num_users: item.num_users,
            num_mac_tables: item.num_mac_tables,
            num_ip_tables: item.num_ip_tables,
            securenat_enabled: h.securenat.enabled,
            last_comm_time: item.last_comm_time,
            last_login_time: item.last_login_time,
            created_time: item.created_time,
            num_login: item.num_login,
            traffic: TrafficFields(item.traffic.0),
            ..HubStatus::default()
        })
    }

    fn create_hub(&self, hub: &Hub) -> AdminResult<()> {
        self.change(|c| {
            c.create_hub(&hub.name, &hub.admin_password, now_ms())?;
            if hub.admin_password.is_empty() {
                if let Some(hashed) = hub.hashed_password.nonzero::<20>() {
                    let secure = hub.secure_password.nonzero::<20>().unwrap_or([0; 20]);
                    c.set_hub_password_hashes(&hub.name, &hashed, &secure)?;
                }
            }
            c.set_hub_online(&hub.name, hub.online)?;
            if !hub.default_gateway.0.is_unspecified() {
                c.set_static_network(&hub.name, hub.default_gateway.0, hub.default_subnet.0)?;
            }
            Ok(())
        })
    }

    fn delete_hub(&self, name: &str) -> AdminResult<()> {
        self.change(|c| Ok(c.delete_hub(name)?))
    }

    fn enum_hubs(&self) -> AdminResult<Vec<HubItem>> {
        let cfg = self.server().config().clone();
        let dp = self.server().dataplane.lock();
        Ok(cfg
            .hub_names()
            .iter()
            .filter_map(|n| cfg.hub(n).ok())
            .map(|h| {
                let live = dp.engine.hub(&h.name);
                HubItem {
                    name: h.name.clone(),
                    online: h.online,
                    num_users: cfg.users(&h.name).map(|u| u.len()).unwrap_or(0) as u32,
                    num_sessions: live.map(|l| l.sessions().len()).unwrap_or(0) as u32,
                    num_mac_tables: live.map(|l| l.mac_table().len()).unwrap_or(0) as u32,
                    num_ip_tables: live.map(|l| l.ip_table().len()).unwrap_or(0) as u32,
                    last_comm_time: Dt(h.created_time),
                    last_login_time: Dt(h.created_time),
                    created_time: Dt(h.created_time),
                    traffic: TrafficFields(
                        live.map(|l| {
                            let t = l.traffic();
                            traffic(&t.send, &t.recv)
                        })
                        .unwrap_or_default(),
                    ),
                    ..HubItem::default()
                }
            })
            .collect())
    }

    fn get_hub(&self, name: &str) -> AdminResult<Hub> {
        let h = self
            .server()
            .config()
            .hub(name)
            .map_err(|e| model_err(&e))?;
        Ok(Hub {
            name: h.name,
            online: h.online,
            max_session: h.max_session,
            default_gateway: IpU32(h.default_gateway),
            default_subnet: IpU32(h.default_subnet),
            ..Hub::default()
        })
    }

    fn set_hub(&self, hub: &Hub) -> AdminResult<()> {
        if !hub.default_gateway.0.is_unspecified() {
            check_static_network(hub.default_gateway.0, hub.default_subnet.0)?;
        }
        self.change(|c| {
            c.set_hub_online(&hub.name, hub.online)?;
            if !hub.admin_password.is_empty() {
                c.set_hub_password(&hub.name, &hub.admin_password)?;
            } else if let Some(hashed) = hub.hashed_password.nonzero::<20>() {
                let secure = hub.secure_password.nonzero::<20>().unwrap_or([0; 20]);
                c.set_hub_password_hashes(&hub.name, &hashed, &secure)?;
            }
            if !hub.default_gateway.0.is_unspecified() {
                c.set_static_network(&hub.name, hub.default_gateway.0, hub.default_subnet.0)?;
            }
            Ok(())
        })
    }

    fn set_hub_online(&self, name: &str, online: bool) -> AdminResult<()> {
        self.change(|c| Ok(c.set_hub_online(name, online)?))
    }

    fn create_user(&self, user: &User) -> AdminResult<()> {
        self.change(|c| {
            let now = now_ms();
            c.create_user(&user.hub, &user.name, &user.real_name, &user.note, now)?;
            set_user_rest(c, user, None, now)
        })
    }

    fn set_user(&self, user: &User) -> AdminResult<()> {
        self.change(|c| {
            let old = c.user(&user.hub, &user.name)?.policy;
            c.set_user_info(&user.hub, &user.name, &user.real_name, &user.note)?;
            set_user_rest(c, user, old, now_ms())
        })
    }

    fn get_user(&self, hub: &str, name: &str) -> AdminResult<User> {
        let u = self
            .server()
            .config()
            .user(hub, name)
            .map_err(|e| model_err(&e))?;
        Ok(User {
            hub: hub.to_string(),
            name: u.name,
            group_name: u.group,
            real_name: u.realname,
            note: u.note,
            created_time: Dt(u.created_time),
            updated_time: Dt(u.updated_time),
            expire_time: Dt(u.expire_time),
            auth_type: u.auth_type,
            use_policy: u.policy.is_some(),
            policy: PolicyFields::of(u.policy),
            ..User::default()
        })
    }

    fn put_group(&self, g: &Group, create: bool) -> AdminResult<()> {
        self.change(|c| {
            let old = if create {
                None
            } else {
                c.group(&g.hub, &g.name)?.policy
            };
            c.put_group(
                &g.hub,
                &etherhub_config::GroupSettings {
                    name: g.name.clone(),
                    realname: g.real_name.clone(),
                    note: g.note.clone(),
                    policy: g.policy.applied(g.use_policy, old),
                },
                create,
            )?;
            Ok(())
        })
    }

    fn get_group(&self, hub: &str, name: &str) -> AdminResult<Group> {
        let g = self
            .server()
            .config()
            .group(hub, name)
            .map_err(|e| model_err(&e))?;
        Ok(Group {
            hub: hub.to_string(),
            name: g.name,
            real_name: g.realname,
            note: g.note,
            use_policy: g.policy.is_some(),
            policy: PolicyFields::of(g.policy),
            ..Group::default()
        })
    }

    fn delete_group(&self, hub: &str, name: &str) -> AdminResult<()> {
        self.change(|c| Ok(c.delete_group(hub, name)?))
    }

    fn enum_groups(&self, hub: &str) -> AdminResult<Vec<GroupItem>> {
        let cfg = self.server().config();
        let groups = cfg.groups(hub).map_err(|e| model_err(&e))?;
        let users = cfg.users(hub).map_err(|e| model_err(&e))?;
        Ok(groups
            .into_iter()
            .map(|g| GroupItem {
                num_users: users
                    .iter()
                    .filter(|u| u.group.eq_ignore_ascii_case(&g.name))
                    .count() as u32,
                deny_access: g.policy.is_some_and(|p| !p.access()),
                name: g.name,
                real_name: g.realname,
                note: g.note,
            })
            .collect())
    }

    fn delete_user(&self, hub: &str, name: &str) -> AdminResult<()> {
        self.change(|c| Ok(c.delete_user(hub, name)?))
    }

    fn access_list(&self, hub: &str) -> AdminResult<Vec<(etherhub_config::AccessRule, u64)>> {
        let rules = self
            .server()
            .config()
            .access_list(hub)
            .map_err(|e| model_err(&e))?;
        let matches: Vec<u64> = {
            let dp = self.server().dataplane.lock();
            dp.engine
                .hub(hub)
                .map(|h| h.access_matches().to_vec())
                .unwrap_or_default()
        };
        // the counts are the running list's: they belong to these rules only if it is this one
        let same = matches.len() == rules.len();
        Ok(rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| (r, if same { matches[i] } else { 0 }))
            .collect())
    }

    fn set_access_list(&self, hub: &str, rules: &[etherhub_config::AccessRule]) -> AdminResult<()> {
        self.change(|c| Ok(c.set_access_list(hub, rules)?))
    }

    fn enum_users(&self, hub: &str) -> AdminResult<Vec<UserItem>> {
        let users = self
            .server()
            .config()
            .users(hub)
            .map_err(|e| model_err(&e))?;
        Ok(users
            .into_iter()
            .map(|u| UserItem {
                group_name: u.group,
                // SoftEther looks at the user's own policy only
                deny_access: u.policy.is_some_and(|p| !p.access()),
                name: u.name,
                real_name: u.realname,
                note: u.note,
                auth_type: u.auth_type,
                is_traffic_filled: true,
                is_expires_filled: true,
                expires: Dt(u.expire_time),
                ..UserItem::default()
            })
            .collect())
    }

    fn enum_sessions(&self, hub: &str) -> AdminResult<Vec<SessionItem>> {
        Ok(self
            .sessions_of(hub)?
            .into_iter()
            .map(|(s, tunnel)| {
                let t = traffic(&s.send, &s.recv);
                let client_ip = s
                    .client_addr
                    .map(|a| a.ip())
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                let securenat = tunnel.is_none() && s.protocol == "SECURENAT";
                // a stream tunnel's TCP connections; one for a datagram tunnel, as SoftEther
                // counts its WireGuard sessions
                let (tcp, max_tcp) = match tunnel.as_ref().and_then(|t| t.live) {
                    Some(l) => (l.connections, l.max_connections),
                    None => (u32::from(!securenat), u32::from(!securenat)),
                };
                SessionItem {
                    name: s.name,
                    username: if securenat {
                        "SecureNAT".into()
                    } else {
                        s.user
                    },
                    client_ip: Ip(client_ip),
                    ip: Ip(client_ip),
                    hostname: if securenat {
                        "Virtual Host".into()
                    } else {
                        client_ip.to_string()
                    },
                    securenat_mode: securenat,
                    max_num_tcp: max_tcp,
                    current_num_tcp: tcp,
                    packet_size: t.total_bytes(),
                    packet_num: t.total_packets(),
                    created_time: self.dt(s.created),
                    last_comm_time: self.dt(s.last_comm),
                    ..SessionItem::default()
                }
            })
            .collect())
    }

    fn session_status(&self, hub: &str, name: &str) -> AdminResult<SessionStatus> {
        let (s, tunnel) = self
            .sessions_of(hub)?
            .into_iter()
            .find(|(s, _)| s.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                AdminError::new(
                    ERR_OBJECT_NOT_FOUND,
                    format!("no session {name:?} on hub {hub:?}"),
                )
            })?;
        let t = traffic(&s.send, &s.recv);
        let live = tunnel.as_ref().and_then(|t| t.live);
        let details = tunnel.map(|t| t.details).unwrap_or_default();
        let product = self.server_info()?;
        let reported = &details.client;
        let client_ip = s
            .client_addr
            .map(|a| a.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let encrypted = !details.cipher.is_empty();
        let sent = t.send_unicast_bytes + t.send_broadcast_bytes;
        let received = t.recv_unicast_bytes + t.recv_broadcast_bytes;
        Ok(SessionStatus {
            hub: hub.to_string(),
            name: s.name.clone(),
            username: s.user.clone(),
            real_username: s.user,
            client_ip: Ip(client_ip),
            client_host_name: client_ip.to_string(),
            client_hostname: if details.client.hostname.is_empty() {
                client_ip.to_string()
            } else {
                details.client.hostname.clone()
            },
            server_product_name: product.product_name,
            server_product_ver: product.version_int,
            server_product_build: product.build_int,
            status_client_ip: Ip(client_ip),
            // the client's own view when it reports one (SoftEther's NodeInfo), else ours
            node_client_ip: Ip(reported.local.map_or(client_ip, |a| a.ip())),
            node_client_port: node_u32(
                reported
                    .local
                    .or(s.client_addr)
                    .map_or(0, |a| u32::from(a.port())),
            ),
            client_product_ver: node_u32(reported.version),
            client_product_build: node_u32(reported.build),
            client_os_name: reported.os_name.clone(),
            client_os_ver: reported.os_version.clone(),
            client_os_product_id: reported.os_product_id.clone(),
            server_hostname: read_hostname(),
            active: true,
            connected: true,
            session_status: 3,
            start_time: self.dt(s.created),
            first_connection_time: self.dt(s.created),
            current_connection_time: self.dt(s.created),
            num_connections_established: 1,
            max_tcp_connections: live.map_or(1, |l| l.max_connections),
            num_tcp_connections: live.map_or(u32::from(encrypted), |l| l.connections),
            half_connection: live.is_some_and(|l| l.half_duplex),
            use_compress: live.is_some_and(|l| l.compressed),
            use_encrypt: encrypted,
            cipher_name: details.cipher,
            underlay_protocol: if details.underlay.is_empty() {
                s.protocol.clone()
            } else {
                details.underlay
            },
            session_name: s.name,
            total_send_size: sent,
            total_recv_size: received,
            total_send_size_real: sent,
            total_recv_size_real: received,
            client_product_name: if details.client_product.is_empty() {
                s.protocol
            } else {
                details.client_product
            },
            traffic: TrafficFields(t),
            ..SessionStatus::default()
        })
    }

    fn delete_session(&self, hub: &str, name: &str) -> AdminResult<()> {
        self.require_hub(hub)?;
        let now = Instant::now();
        let done = self
            .server()
            .dataplane
            .with_engine(now, |e| e.disconnect(now, hub, name));
        match done {
            Ok(()) => Ok(()),
            Err(etherhub_engine::DisconnectError::NotATunnel) => Err(AdminError::new(
                ERR_NOT_SUPPORTED,
                "this session is the SecureNAT host; use SecureNatDisable",
            )),
            Err(_) => Err(AdminError::new(
                ERR_OBJECT_NOT_FOUND,
                format!("no session {name:?} on hub {hub:?}"),
            )),
        }
    }

    fn enum_ip_table(&self, hub: &str) -> AdminResult<Vec<IpItem>> {
        self.require_hub(hub)?;
        let dp = self.server().dataplane.lock();
        let live = dp.engine.hub(hub);
        // addresses SecureNAT's DHCP server leased show as "(DHCP)", as in SoftEther
        let leased: Vec<IpAddr> = live
            .and_then(|h| h.securenat_host())
            .map(|host| {
                host.leases()
                    .into_iter()
                    .map(|l| IpAddr::V4(l.ip))
                    .collect()
            })
            .unwrap_or_default();
        Ok(live
            .map(|h| h.ip_table())
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, e)| IpItem {
                key: i as u32 + 1,
                session_name: e.session_name,
                dhcp_allocated: leased.contains(&e.ip),
                ip: Ip(e.ip),
                created_time: self.dt(e.created),
                updated_time: self.dt(e.updated),
                ..IpItem::default()
            })
            .collect())
    }

    fn enum_mac_table(&self, hub: &str) -> AdminResult<Vec<MacItem>> {
        self.require_hub(hub)?;
        let dp = self.server().dataplane.lock();
        Ok(dp
            .engine
            .hub(hub)
            .map(|h| h.mac_table())
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, e)| MacItem {
                key: i as u32 + 1,
                session_name: e.session_name,
                mac: Bin(e.mac.to_vec()),
                created_time: self.dt(e.created),
                updated_time: self.dt(e.updated),
                ..MacItem::default()
            })
            .collect())
    }

    fn enable_secure_nat(&self, hub: &str) -> AdminResult<()> {
        self.set_securenat_enabled(hub, true)
    }

    fn disable_secure_nat(&self, hub: &str) -> AdminResult<()> {
        self.set_securenat_enabled(hub, false)
    }

    fn get_secure_nat_option(&self, hub: &str) -> AdminResult<SecureNatOption> {
        let s = self
            .server()
            .config()
            .hub(hub)
            .map_err(|e| model_err(&e))?
            .securenat;
        Ok(SecureNatOption {
            hub: hub.to_string(),
            mac: Bin(s.host_mac.to_vec()),
            ip: ip(s.host_ip),
            mask: ip(s.host_mask),
            use_nat: s.nat_enabled,
            mtu: s.nat_mtu,
            nat_tcp_timeout: s.nat_tcp_timeout,
            nat_udp_timeout: s.nat_udp_timeout,
            use_dhcp: s.dhcp_enabled,
            dhcp_lease_start: ip(s.dhcp_start),
            dhcp_lease_end: ip(s.dhcp_end),
            dhcp_subnet_mask: ip(s.dhcp_mask),
            dhcp_expire_secs: s.dhcp_expire,
            dhcp_gateway: ip(s.dhcp_gateway),
            dhcp_dns: ip(s.dhcp_dns),
            dhcp_dns2: ip(s.dhcp_dns2),
            dhcp_domain_name: s.dhcp_domain,
            save_log: s.save_log,
            apply_dhcp_push_routes: !s.dhcp_push_routes.is_empty(),
            dhcp_push_routes: s.dhcp_push_routes,
        })
    }

    fn set_secure_nat_option(&self, hub: &str, o: &SecureNatOption) -> AdminResult<()> {
        let mac: [u8; 6] = o
            .mac
            .0
            .as_slice()
            .try_into()
            .map_err(|_| AdminError::invalid_param("MacAddress_bin", "must be 6 bytes"))?;
        self.change(|c| {
            let mut s = c.hub(hub)?.securenat;
            s.host_mac = mac;
            s.host_ip = o.ip.v4();
            s.host_mask = o.mask.v4();
            s.nat_enabled = o.use_nat;
            s.nat_mtu = o.mtu;
            s.nat_tcp_timeout = o.nat_tcp_timeout;
            s.nat_udp_timeout = o.nat_udp_timeout;
            s.dhcp_enabled = o.use_dhcp;
            s.dhcp_start = o.dhcp_lease_start.v4();
            s.dhcp_end = o.dhcp_lease_end.v4();
            s.dhcp_mask = o.dhcp_subnet_mask.v4();
            s.dhcp_expire = o.dhcp_expire_secs;
            s.dhcp_gateway = o.dhcp_gateway.v4();
            s.dhcp_dns = o.dhcp_dns.v4();
            s.dhcp_dns2 = o.dhcp_dns2.v4();
            s.dhcp_domain = o.dhcp_domain_name.clone();
            s.save_log = o.save_log;
            s.dhcp_push_routes = if o.apply_dhcp_push_routes {
                o.dhcp_push_routes.clone()
            } else {
                String::new()
            };
            Ok(c.set_securenat(hub, &s)?)
        })
    }

    fn secure_nat_status(&self, hub: &str) -> AdminResult<SecureNatStatus> {
        self.with_nat(hub, |host| {
            let mut st = SecureNatStatus::default();
            for e in host.nat_table() {
                match e.protocol {
                    etherhub_securenat::NatProtocol::Tcp => st.num_tcp_sessions += 1,
                    etherhub_securenat::NatProtocol::Udp => st.num_udp_sessions += 1,
                    etherhub_securenat::NatProtocol::Dns => st.num_dns_sessions += 1,
                    etherhub_securenat::NatProtocol::Icmp => st.num_icmp_sessions += 1,
                }
            }
            st.num_dhcp_clients = host.leases().len() as u32;
            st
        })
    }

    fn enum_nat(&self, hub: &str) -> AdminResult<Vec<NatItem>> {
        let rows = self.with_nat(hub, |host| host.nat_table())?;
        Ok(rows
            .into_iter()
            .map(|e| NatItem {
                id: e.id.0,
                protocol: e.protocol as u32,
                src_ip: ip(*e.src.ip()),
                src_port: u32::from(e.src.port()),
                dest_ip: ip(*e.dst.ip()),
                dest_port: u32::from(e.dst.port()),
                created_time: self.dt(e.created),
                last_comm_time: self.dt(e.last),
                send_size: e.sent,
                recv_size: e.recv,
                tcp_status: e.tcp_status as u32,
                ..NatItem::default()
            })
            .collect())
    }

    fn enum_dhcp(&self, hub: &str) -> AdminResult<Vec<DhcpItem>> {
        let (leases, mask) = self.with_nat(hub, |host| {
            let mask = host
                .config()
                .dhcp
                .as_ref()
                .map(|d| d.mask)
                .unwrap_or(Ipv4Addr::UNSPECIFIED);
            (host.leases(), mask)
        })?;
        Ok(leases
            .into_iter()
            .map(|l| DhcpItem {
                id: l.id,
                leased_time: self.dt(l.leased),
                expire_time: self.dt(l.expires),
                mac: Bin(l.mac.to_vec()),
                ip: ip(l.ip),
                mask: IpU32(mask),
                hostname: l.hostname,
            })
            .collect())
    }

    fn add_wg_keys(
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
            keys.push((public, private));
        }
        let registered = self.change(|c| {
            let mut out = Vec::with_capacity(requests.len());
            for (r, (public, private)) in requests.iter().zip(&keys) {
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
                    // a generated pair gets its own preshared key; a given key uses the server's
                    preshared_key: private.map(|_| generated_psk()),
                };
                c.add_wg_key_full(&k)?;
                out.push(k);
            }
            Ok(out)
        })?;
        let cfg = self.0.config();
        registered
            .into_iter()
            .zip(keys)
            .map(|(k, (_, private))| {
                with_config(
                    &cfg,
                    k,
                    private.map(|p| crate::defaults::b64(&p)),
                    all_traffic,
                )
            })
            .collect()
    }

    fn delete_wg_keys(&self, keys: &[String]) -> AdminResult<()> {
        self.change(|c| {
            for k in keys {
                c.remove_wg_key(k)?;
            }
            Ok(())
        })
    }

    fn enum_wg_keys(&self) -> AdminResult<Vec<WgKeyStatus>> {
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
                        st.last_handshake =
                            info.last_handshake.map(|t| self.dt(t)).unwrap_or_default();
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

    fn wg_client_config(&self, key: &str, all_traffic: bool) -> AdminResult<WgKeyAdded> {
        let cfg = self.0.config();
        let k = cfg
            .wg_keys()
            .into_iter()
            .find(|k| k.key == key.trim())
            .ok_or_else(|| model_err(&ModelError::WgKeyNotFound(key.to_string())))?;
        with_config(&cfg, k, None, all_traffic)
    }

    fn wg_server_info(&self) -> AdminResult<WgServerInfo> {
        let cfg = self.server().config();
        let wg = cfg.wireguard();
        let public_key = wg
            .as_ref()
            .and_then(|w| decode_key(&w.private_key))
            .map(|k| etherhub_wireguard::key_to_base64(&etherhub_wireguard::public_key_of(&k)))
            .unwrap_or_default();
        let ports = cfg.udp_ports().into_iter().map(u32::from).collect();
        let public_host = cfg.wireguard_public_host().unwrap_or_default();
        drop(cfg);
        let (st, engine, runtime) = {
            let dp = self.server().dataplane.lock();
            (dp.engine.wireguard().stats(), dp.engine.stats(), dp.stats)
        };
        Ok(WgServerInfo {
            enabled: wg.as_ref().is_some_and(|w| w.enabled),
            public_key,
            preshared_key: wg.map(|w| w.preshared_key).unwrap_or_default(),
            udp_ports: ports,
            public_host,
            handshakes_ok: st.handshakes_ok,
            cookie_replies_sent: st.cookie_replies_sent,
            handshakes_rate_limited: st.handshakes_rate_limited,
            unknown_key_initiations: st.unknown_key_initiations,
            malformed_dropped: st.malformed_dropped,
            unknown_index_dropped: st.unknown_index_dropped,
            spoofed_dropped: engine.spoofed_dropped,
            unknown_datagrams: engine.unknown_datagrams,
            send_failures: runtime.send_failures,
            direct_forwarded: engine.direct_forwarded,
        })
    }

    fn set_wg_public_host(&self, host: &str) -> AdminResult<String> {
        self.change(|c| Ok(c.set_wireguard_public_host(host)?))?;
        Ok(self.0.config().wireguard_public_host().unwrap_or_default())
    }

    fn get_udp_ports(&self) -> AdminResult<Vec<u16>> {
        Ok(self.server().config().udp_ports())
    }

    fn set_udp_ports(&self, ports: &[u16]) -> AdminResult<()> {
        self.change(|c| {
            c.set_udp_ports(ports);
            Ok(())
        })
    }

    fn create_listener(&self, port: u16, enable: bool) -> AdminResult<()> {
        self.change(|c| Ok(c.add_listener(port, enable)?))
    }

    fn delete_listener(&self, port: u16) -> AdminResult<()> {
        self.change(|c| Ok(c.remove_listener(port)?))
    }

    fn enable_listener(&self, port: u16, enable: bool) -> AdminResult<()> {
        self.change(|c| Ok(c.set_listener_enabled(port, enable)?))
    }

    fn enum_listeners(&self) -> AdminResult<Vec<ListenerItem>> {
        let running = self.server().tcp_ports_running();
        Ok(self
            .server()
            .config()
            .listeners()
            .into_iter()
            .map(|l| ListenerItem {
                port: u32::from(l.port),
                enabled: l.enabled,
                error: l.enabled && !running.contains(&l.port),
            })
            .collect())
    }

    fn set_server_password(&self, p: &ServerPassword) -> AdminResult<()> {
        self.change(|c| {
            match p.hashed.nonzero::<20>() {
                Some(h) => c.set_admin_password_hash(&h),
                None => c.set_admin_password(&p.password),
            }
            Ok(())
        })
    }

    fn get_config(&self) -> AdminResult<ConfigFile> {
        let cfg = self.server().config();
        Ok(ConfigFile {
            file_name: self
                .server()
                .store
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "vpn_server.config".into()),
            data: Bin(cfg.to_text().into_bytes()),
        })
    }

    fn set_config(&self, data: &[u8]) -> AdminResult<()> {
        let text = std::str::from_utf8(data)
            .map_err(|_| AdminError::invalid_param("FileData_bin", "not UTF-8 text"))?;
        let new = etherhub_config::Config::parse(text).map_err(|e| {
            AdminError::new(
                ERR_INVALID_PARAMETER,
                format!("the config does not parse: {e}"),
            )
        })?;
        self.change(move |c| {
            *c = new;
            Ok(())
        })
    }
}

/// A registered key with its client's wg-quick config.
fn with_config(
    cfg: &etherhub_config::Config,
    k: etherhub_config::WgKey,
    private_key: Option<String>,
    all_traffic: bool,
) -> AdminResult<WgKeyAdded> {
    let config = client_config(cfg, &k, private_key, all_traffic)
        .map_err(change_err)?
        .render();
    Ok(WgKeyAdded {
        key: k.key,
        hub: k.hub,
        user: k.user,
        address: k.address,
        config,
    })
}

/// SetStaticNetwork's gateway must sit inside its subnet mask's network, and the mask must be
/// contiguous.
/// A user's password from a CreateUser or SetUser: the plain text if given, else the hashes
/// vpncmd sends (all-zero hashes keep the current password, as in SoftEther).
/// What CreateUser and SetUser set beyond the names: the authentication, the group (a group
/// that does not exist refuses the whole change), the expiry and the user's own policy.
fn set_user_rest(
    c: &mut etherhub_config::Config,
    u: &User,
    old_policy: Option<etherhub_config::Policy>,
    now: u64,
) -> anyhow::Result<()> {
    if u.auth_type == 0 {
        c.set_user_anonymous(&u.hub, &u.name, now)?;
    } else if !u.password.is_empty() {
        c.set_user_password(&u.hub, &u.name, &u.password, now)?;
    } else if let Some(h) = u.hashed_key.nonzero::<20>() {
        let nt = u.nt_hash.nonzero::<16>();
        c.set_user_password_hashes(&u.hub, &u.name, &h, nt.as_ref(), now)?;
    }
    c.set_user_group(&u.hub, &u.name, &u.group_name)?;
    c.set_user_expires(&u.hub, &u.name, u.expire_time.0)?;
    c.set_user_policy(
        &u.hub,
        &u.name,
        u.policy.applied(u.use_policy, old_policy).as_ref(),
    )?;
    Ok(())
}

/// SoftEther's codes for a refused protocol option: an unknown protocol or a wrong type 38, an
/// unknown option 29, what Etherhub does not do 33.
fn proto_err(e: etherhub_config::proto::ProtoError) -> AdminError {
    use etherhub_config::proto::ProtoError;
    let code = match e {
        ProtoError::UnknownProtocol(_) | ProtoError::WrongType { .. } => ERR_INVALID_PARAMETER,
        ProtoError::UnknownOption { .. } => ERR_OBJECT_NOT_FOUND,
        ProtoError::Unsupported(_) => ERR_NOT_SUPPORTED,
    };
    AdminError::new(code, e.to_string())
}

/// This machine's host name (what SoftEther reports as the server's).
fn read_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn check_static_network(gw: Ipv4Addr, mask: Ipv4Addr) -> AdminResult<()> {
    let m = u32::from(mask);
    if m == 0 || m.leading_ones() + m.trailing_zeros() != 32 {
        return Err(AdminError::invalid_param(
            "DefaultSubnet_u32",
            &format!("{mask} is not a subnet mask"),
        ));
    }
    let host = u32::from(gw) & !m;
    if host == 0 || host == !m {
        return Err(AdminError::invalid_param(
            "DefaultGateway_u32",
            &format!("{gw} is the network or broadcast address of {mask}"),
        ));
    }
    Ok(())
}
