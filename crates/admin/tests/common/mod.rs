//! An in-memory Backend for tests.
#![allow(dead_code)]

use std::sync::Mutex;

use etherhub_admin::*;

#[derive(Default)]
pub struct Fake {
    pub hubs: Mutex<Vec<HubConfig>>,
    pub users: Mutex<Vec<UserSpec>>,
    pub wgks: Mutex<Vec<WgKey>>,
    pub ports: Mutex<Vec<u16>>,
}

impl Fake {
    pub fn new() -> Self {
        let f = Fake::default();
        let mut h = HubConfig::new("DEFAULT");
        h.admin_password = Some("hubpw".into());
        f.hubs.lock().unwrap().push(h);
        f.hubs.lock().unwrap().push(HubConfig::new("OTHER"));
        *f.ports.lock().unwrap() = vec![443, 992, 1194, 5555];
        f
    }
    fn hub_exists(&self, name: &str) -> AdminResult<()> {
        if self
            .hubs
            .lock()
            .unwrap()
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(name))
        {
            Ok(())
        } else {
            Err(AdminError::from_code(code::ERR_HUB_NOT_FOUND))
        }
    }
}

fn unsupported<T>() -> AdminResult<T> {
    Err(AdminError::from_code(code::ERR_NOT_SUPPORTED))
}

impl Backend for Fake {
    fn authenticate(
        &self,
        hub: Option<&str>,
        password: &str,
        _loopback: bool,
    ) -> AdminResult<AdminScope> {
        let denied = || AdminError::from_code(code::ERR_ACCESS_DENIED);
        match hub {
            None if password == "serverpw" => Ok(AdminScope::Server),
            None => Err(denied()),
            Some(h) => {
                let hubs = self.hubs.lock().unwrap();
                let hub = hubs
                    .iter()
                    .find(|x| x.name.eq_ignore_ascii_case(h))
                    .ok_or_else(denied)?;
                if hub.admin_password.as_deref() == Some(password) {
                    Ok(AdminScope::Hub(hub.name.clone()))
                } else {
                    Err(denied())
                }
            }
        }
    }
    fn server_info(&self) -> AdminResult<ServerInfo> {
        Ok(ServerInfo {
            product_name: "Etherhub".into(),
            host_name: "vm".into(),
            build_date_ms: 1_700_000_000_000,
            ..Default::default()
        })
    }
    fn server_status(&self) -> AdminResult<ServerStatus> {
        Ok(ServerStatus {
            num_hubs: self.hubs.lock().unwrap().len() as u32,
            ..Default::default()
        })
    }
    fn create_hub(&self, hub: &HubConfig) -> AdminResult<()> {
        if self.hub_exists(&hub.name).is_ok() {
            return Err(AdminError::from_code(code::ERR_HUB_ALREADY_EXISTS));
        }
        self.hubs.lock().unwrap().push(hub.clone());
        Ok(())
    }
    fn delete_hub(&self, name: &str) -> AdminResult<()> {
        self.hub_exists(name)?;
        self.hubs
            .lock()
            .unwrap()
            .retain(|h| !h.name.eq_ignore_ascii_case(name));
        Ok(())
    }
    fn enum_hubs(&self) -> AdminResult<Vec<HubSummary>> {
        Ok(self
            .hubs
            .lock()
            .unwrap()
            .iter()
            .map(|h| HubSummary {
                name: h.name.clone(),
                online: h.online,
                ..Default::default()
            })
            .collect())
    }
    fn get_hub(&self, name: &str) -> AdminResult<HubConfig> {
        let hubs = self.hubs.lock().unwrap();
        let mut h = hubs
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .cloned()
            .ok_or_else(|| AdminError::from_code(code::ERR_HUB_NOT_FOUND))?;
        h.admin_password = None;
        Ok(h)
    }
    fn set_hub(&self, hub: &HubConfig) -> AdminResult<()> {
        let mut hubs = self.hubs.lock().unwrap();
        let h = hubs
            .iter_mut()
            .find(|h| h.name.eq_ignore_ascii_case(&hub.name))
            .ok_or_else(|| AdminError::from_code(code::ERR_HUB_NOT_FOUND))?;
        let pw = h.admin_password.clone();
        *h = hub.clone();
        if h.admin_password.is_none() {
            h.admin_password = pw;
        }
        Ok(())
    }
    fn set_hub_online(&self, name: &str, online: bool) -> AdminResult<()> {
        let mut h = self.get_hub(name)?;
        h.online = online;
        self.set_hub(&h)
    }
    fn create_user(&self, user: &UserSpec) -> AdminResult<()> {
        self.hub_exists(&user.hub)?;
        let mut users = self.users.lock().unwrap();
        if users.iter().any(|u| {
            u.hub.eq_ignore_ascii_case(&user.hub) && u.name.eq_ignore_ascii_case(&user.name)
        }) {
            return Err(AdminError::from_code(code::ERR_USER_ALREADY_EXISTS));
        }
        users.push(user.clone());
        Ok(())
    }
    fn set_user(&self, user: &UserSpec) -> AdminResult<()> {
        let mut users = self.users.lock().unwrap();
        let u = users
            .iter_mut()
            .find(|u| {
                u.hub.eq_ignore_ascii_case(&user.hub) && u.name.eq_ignore_ascii_case(&user.name)
            })
            .ok_or_else(|| AdminError::from_code(code::ERR_OBJECT_NOT_FOUND))?;
        *u = user.clone();
        Ok(())
    }
    fn get_user(&self, hub: &str, name: &str) -> AdminResult<UserInfo> {
        self.hub_exists(hub)?;
        let users = self.users.lock().unwrap();
        let u = users
            .iter()
            .find(|u| u.hub.eq_ignore_ascii_case(hub) && u.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| AdminError::from_code(code::ERR_OBJECT_NOT_FOUND))?;
        Ok(UserInfo {
            hub: u.hub.clone(),
            name: u.name.clone(),
            auth_type: u.auth.auth_type(),
            ..Default::default()
        })
    }
    fn delete_user(&self, hub: &str, name: &str) -> AdminResult<()> {
        self.get_user(hub, name)?;
        self.users
            .lock()
            .unwrap()
            .retain(|u| !(u.hub.eq_ignore_ascii_case(hub) && u.name.eq_ignore_ascii_case(name)));
        Ok(())
    }
    fn enum_users(&self, hub: &str) -> AdminResult<Vec<UserSummary>> {
        self.hub_exists(hub)?;
        Ok(self
            .users
            .lock()
            .unwrap()
            .iter()
            .filter(|u| u.hub.eq_ignore_ascii_case(hub))
            .map(|u| UserSummary {
                name: u.name.clone(),
                auth_type: u.auth.auth_type(),
                ..Default::default()
            })
            .collect())
    }
    fn enum_sessions(&self, hub: &str) -> AdminResult<Vec<SessionSummary>> {
        self.hub_exists(hub)?;
        Ok(vec![SessionSummary {
            name: "SID-SECURENAT-1".into(),
            username: "SecureNAT".into(),
            client_ip: "0.0.0.0".parse().unwrap(),
            hostname: String::new(),
            kind: SessionKind::SecureNat,
            max_num_tcp: 0,
            current_num_tcp: 0,
            packet_size: 0,
            packet_num: 0,
            vlan_id: 0,
            unique_id: vec![1, 2],
            created_time_ms: 0,
            last_comm_time_ms: 0,
        }])
    }
    fn session_status(&self, _hub: &str, _name: &str) -> AdminResult<SessionStatus> {
        Err(AdminError::from_code(code::ERR_OBJECT_NOT_FOUND))
    }
    fn delete_session(&self, _hub: &str, _name: &str) -> AdminResult<()> {
        Err(AdminError::from_code(code::ERR_OBJECT_NOT_FOUND))
    }
    fn enum_ip_table(&self, hub: &str) -> AdminResult<Vec<IpEntry>> {
        self.hub_exists(hub)?;
        Ok(vec![IpEntry {
            key: 1,
            session_name: "SID-META-[WIREGUARD]-4".into(),
            ip: "192.168.30.10".parse().unwrap(),
            dhcp_allocated: true,
            created_time_ms: 0,
            updated_time_ms: 0,
        }])
    }
    fn enum_mac_table(&self, hub: &str) -> AdminResult<Vec<MacEntry>> {
        self.hub_exists(hub)?;
        Ok(vec![MacEntry {
            key: 1,
            session_name: "SID-SECURENAT-1".into(),
            mac: [0x5e, 0x78, 6, 0xb6, 0xf0, 0x65],
            vlan_id: 0,
            created_time_ms: 0,
            updated_time_ms: 0,
        }])
    }
    fn enable_secure_nat(&self, hub: &str) -> AdminResult<()> {
        self.hub_exists(hub)
    }
    fn disable_secure_nat(&self, hub: &str) -> AdminResult<()> {
        self.hub_exists(hub)
    }
    fn get_secure_nat_option(&self, hub: &str) -> AdminResult<SecureNatOption> {
        self.hub_exists(hub)?;
        Ok(SecureNatOption::default())
    }
    fn set_secure_nat_option(&self, hub: &str, _o: &SecureNatOption) -> AdminResult<()> {
        self.hub_exists(hub)
    }
    fn secure_nat_status(&self, hub: &str) -> AdminResult<SecureNatStatus> {
        self.hub_exists(hub)?;
        Ok(SecureNatStatus::default())
    }
    fn add_wg_keys(&self, keys: &[WgKey]) -> AdminResult<()> {
        let mut list = self.wgks.lock().unwrap();
        if keys.iter().any(|k| list.iter().any(|x| x.key == k.key)) {
            return Err(AdminError::from_code(code::ERR_OBJECT_EXISTS));
        }
        list.extend_from_slice(keys);
        Ok(())
    }
    fn delete_wg_keys(&self, keys: &[String]) -> AdminResult<()> {
        let mut list = self.wgks.lock().unwrap();
        if !keys.iter().all(|k| list.iter().any(|x| &x.key == k)) {
            return Err(AdminError::from_code(code::ERR_OBJECT_NOT_FOUND));
        }
        list.retain(|x| !keys.contains(&x.key));
        Ok(())
    }
    fn enum_wg_keys(&self) -> AdminResult<Vec<WgKey>> {
        Ok(self.wgks.lock().unwrap().clone())
    }
    fn wg_server_info(&self) -> AdminResult<WgServerInfo> {
        Ok(WgServerInfo {
            enabled: true,
            public_key: "PUB=".into(),
            preshared_key: "PSK=".into(),
            udp_ports: self.ports.lock().unwrap().clone(),
            counters: etherhub_admin::WgCounters {
                cookie_replies_sent: 7,
                ..Default::default()
            },
        })
    }
    fn get_udp_ports(&self) -> AdminResult<Vec<u16>> {
        Ok(self.ports.lock().unwrap().clone())
    }
    fn set_udp_ports(&self, ports: &[u16]) -> AdminResult<()> {
        *self.ports.lock().unwrap() = ports.to_vec();
        Ok(())
    }
    fn create_listener(&self, _port: u16, _enable: bool) -> AdminResult<()> {
        unsupported()
    }
    fn delete_listener(&self, _port: u16) -> AdminResult<()> {
        Err(AdminError::from_code(code::ERR_LISTENER_NOT_FOUND))
    }
    fn enable_listener(&self, _port: u16, _enable: bool) -> AdminResult<()> {
        unsupported()
    }
    fn enum_listeners(&self) -> AdminResult<Vec<ListenerInfo>> {
        Ok([443u16, 992, 1194, 5555]
            .iter()
            .map(|p| ListenerInfo {
                port: *p,
                enabled: true,
                error: false,
            })
            .collect())
    }
    fn set_server_password(&self, _password: &str) -> AdminResult<()> {
        Ok(())
    }
    fn get_config(&self) -> AdminResult<ConfigFile> {
        Ok(ConfigFile {
            file_name: "vpn_server.config".into(),
            data: b"declare root\r\n{\r\n}\r\n".to_vec(),
        })
    }
    fn set_config(&self, _data: &[u8]) -> AdminResult<()> {
        Ok(())
    }
}
