//! An in-memory Backend for tests.
#![allow(dead_code)]

use std::sync::Mutex;

use etherhub_admin::*;

/// A key of the fake's key list.
#[derive(Clone)]
pub struct Wgk {
    pub key: String,
    pub hub: String,
    pub user: String,
}

#[derive(Default)]
pub struct Fake {
    pub hubs: Mutex<Vec<Hub>>,
    pub users: Mutex<Vec<User>>,
    pub wgks: Mutex<Vec<Wgk>>,
    pub ports: Mutex<Vec<u16>>,
}

fn hub(name: &str, password: &str) -> Hub {
    Hub {
        name: name.into(),
        admin_password: password.into(),
        ..Hub::default()
    }
}

impl Fake {
    pub fn new() -> Self {
        let f = Fake::default();
        f.hubs.lock().unwrap().push(hub("DEFAULT", "hubpw"));
        f.hubs.lock().unwrap().push(hub("OTHER", ""));
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
        proof: Proof<'_>,
        _loopback: bool,
    ) -> AdminResult<AdminScope> {
        let denied = || AdminError::from_code(code::ERR_ACCESS_DENIED);
        let knows =
            |password: &str| proof.matches(&etherhub_config::hash::sha0(password.as_bytes()));
        match hub {
            None if knows("serverpw") => Ok(AdminScope::Server),
            None => Err(denied()),
            Some(h) => {
                let hubs = self.hubs.lock().unwrap();
                let hub = hubs
                    .iter()
                    .find(|x| x.name.eq_ignore_ascii_case(h))
                    .ok_or_else(denied)?;
                if !hub.admin_password.is_empty() && knows(&hub.admin_password) {
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
            build_date: Dt(1_700_000_000_000),
            ..Default::default()
        })
    }
    fn server_status(&self) -> AdminResult<ServerStatus> {
        Ok(ServerStatus {
            num_hubs: self.hubs.lock().unwrap().len() as u32,
            ..Default::default()
        })
    }
    fn create_hub(&self, hub: &Hub) -> AdminResult<()> {
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
    fn enum_hubs(&self) -> AdminResult<Vec<HubItem>> {
        Ok(self
            .hubs
            .lock()
            .unwrap()
            .iter()
            .map(|h| HubItem {
                name: h.name.clone(),
                online: h.online,
                ..Default::default()
            })
            .collect())
    }
    fn get_hub(&self, name: &str) -> AdminResult<Hub> {
        let hubs = self.hubs.lock().unwrap();
        let mut h = hubs
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .cloned()
            .ok_or_else(|| AdminError::from_code(code::ERR_HUB_NOT_FOUND))?;
        h.admin_password.clear();
        Ok(h)
    }
    fn set_hub(&self, hub: &Hub) -> AdminResult<()> {
        let mut hubs = self.hubs.lock().unwrap();
        let h = hubs
            .iter_mut()
            .find(|h| h.name.eq_ignore_ascii_case(&hub.name))
            .ok_or_else(|| AdminError::from_code(code::ERR_HUB_NOT_FOUND))?;
        let pw = h.admin_password.clone();
        *h = hub.clone();
        if h.admin_password.is_empty() {
            h.admin_password = pw;
        }
        Ok(())
    }
    fn set_hub_online(&self, name: &str, online: bool) -> AdminResult<()> {
        let mut h = self.get_hub(name)?;
        h.online = online;
        self.set_hub(&h)
    }
    fn create_user(&self, user: &User) -> AdminResult<()> {
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
    fn set_user(&self, user: &User) -> AdminResult<()> {
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
    fn get_user(&self, hub: &str, name: &str) -> AdminResult<User> {
        self.hub_exists(hub)?;
        let users = self.users.lock().unwrap();
        let u = users
            .iter()
            .find(|u| u.hub.eq_ignore_ascii_case(hub) && u.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| AdminError::from_code(code::ERR_OBJECT_NOT_FOUND))?;
        Ok(User {
            hub: u.hub.clone(),
            name: u.name.clone(),
            auth_type: u.auth_type,
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
    fn put_group(&self, _: &Group, _: bool) -> AdminResult<()> {
        unsupported()
    }
    fn get_group(&self, _: &str, _: &str) -> AdminResult<Group> {
        unsupported()
    }
    fn delete_group(&self, _: &str, _: &str) -> AdminResult<()> {
        unsupported()
    }
    fn enum_groups(&self, _: &str) -> AdminResult<Vec<GroupItem>> {
        unsupported()
    }
    fn access_list(&self, _: &str) -> AdminResult<Vec<(etherhub_config::AccessRule, u64)>> {
        unsupported()
    }
    fn set_access_list(&self, _: &str, _: &[etherhub_config::AccessRule]) -> AdminResult<()> {
        unsupported()
    }
    fn enum_users(&self, hub: &str) -> AdminResult<Vec<UserItem>> {
        self.hub_exists(hub)?;
        Ok(self
            .users
            .lock()
            .unwrap()
            .iter()
            .filter(|u| u.hub.eq_ignore_ascii_case(hub))
            .map(|u| UserItem {
                name: u.name.clone(),
                auth_type: u.auth_type,
                ..Default::default()
            })
            .collect())
    }
    fn enum_sessions(&self, hub: &str) -> AdminResult<Vec<SessionItem>> {
        self.hub_exists(hub)?;
        Ok(vec![SessionItem {
            name: "SID-SECURENAT-1".into(),
            username: "SecureNAT".into(),
            securenat_mode: true,
            unique_id: Bin(vec![1, 2]),
            ..Default::default()
        }])
    }
    fn session_status(&self, _hub: &str, _name: &str) -> AdminResult<SessionStatus> {
        Err(AdminError::from_code(code::ERR_OBJECT_NOT_FOUND))
    }
    fn delete_session(&self, _hub: &str, _name: &str) -> AdminResult<()> {
        Err(AdminError::from_code(code::ERR_OBJECT_NOT_FOUND))
    }
    fn enum_ip_table(&self, hub: &str) -> AdminResult<Vec<IpItem>> {
        self.hub_exists(hub)?;
        Ok(vec![IpItem {
            key: 1,
            session_name: "SID-META-[WIREGUARD]-4".into(),
            ip: Ip("192.168.30.10".parse().unwrap()),
            dhcp_allocated: true,
            ..Default::default()
        }])
    }
    fn enum_mac_table(&self, hub: &str) -> AdminResult<Vec<MacItem>> {
        self.hub_exists(hub)?;
        Ok(vec![MacItem {
            key: 1,
            session_name: "SID-SECURENAT-1".into(),
            mac: Bin(vec![0x5e, 0x78, 6, 0xb6, 0xf0, 0x65]),
            ..Default::default()
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
    fn enum_nat(&self, _hub: &str) -> AdminResult<Vec<NatItem>> {
        Err(AdminError::from_code(code::ERR_SNAT_NOT_RUNNING))
    }
    fn enum_dhcp(&self, _hub: &str) -> AdminResult<Vec<DhcpItem>> {
        Err(AdminError::from_code(code::ERR_SNAT_NOT_RUNNING))
    }
    /// A backend that cannot generate keys or assign addresses: plain keys only.
    fn add_wg_keys(&self, keys: &[WgKeyRequest], _all: bool) -> AdminResult<Vec<WgKeyAdded>> {
        if keys.iter().any(|k| k.key.is_empty() || k.address.is_some()) {
            return Err(AdminError::new(
                code::ERR_NOT_SUPPORTED,
                "this server cannot generate keys or assign addresses",
            ));
        }
        let mut list = self.wgks.lock().unwrap();
        if keys.iter().any(|k| list.iter().any(|x| x.key == k.key)) {
            return Err(AdminError::from_code(code::ERR_OBJECT_EXISTS));
        }
        list.extend(keys.iter().map(|k| Wgk {
            key: k.key.clone(),
            hub: k.hub.clone(),
            user: k.user.clone(),
        }));
        Ok(keys
            .iter()
            .map(|k| WgKeyAdded {
                key: k.key.clone(),
                hub: k.hub.clone(),
                user: k.user.clone(),
                address: None,
                config: String::new(),
            })
            .collect())
    }
    fn delete_wg_keys(&self, keys: &[String]) -> AdminResult<()> {
        let mut list = self.wgks.lock().unwrap();
        if !keys.iter().all(|k| list.iter().any(|x| &x.key == k)) {
            return Err(AdminError::from_code(code::ERR_OBJECT_NOT_FOUND));
        }
        list.retain(|x| !keys.contains(&x.key));
        Ok(())
    }
    fn enum_wg_keys(&self) -> AdminResult<Vec<WgKeyStatus>> {
        Ok(self
            .wgks
            .lock()
            .unwrap()
            .iter()
            .map(|k| WgKeyStatus {
                key: k.key.clone(),
                hub: k.hub.clone(),
                user: k.user.clone(),
                ..Default::default()
            })
            .collect())
    }
    fn wg_client_config(&self, _key: &str, _all: bool) -> AdminResult<WgKeyAdded> {
        unsupported()
    }
    fn wg_server_info(&self) -> AdminResult<WgServerInfo> {
        Ok(WgServerInfo {
            enabled: true,
            public_key: "PUB=".into(),
            preshared_key: "PSK=".into(),
            udp_ports: self
                .ports
                .lock()
                .unwrap()
                .iter()
                .map(|&p| u32::from(p))
                .collect(),
            cookie_replies_sent: 7,
            ..Default::default()
        })
    }
    fn set_wg_public_host(&self, host: &str) -> AdminResult<String> {
        Ok(host.to_string())
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
    fn enum_listeners(&self) -> AdminResult<Vec<ListenerItem>> {
        Ok([443u32, 992, 1194, 5555]
            .iter()
            .map(|p| ListenerItem {
                port: *p,
                enabled: true,
                error: false,
            })
            .collect())
    }
    fn server_cert(&self) -> AdminResult<Vec<u8>> {
        Ok(vec![0x30, 0x03, 0x02, 0x01, 0x00])
    }
    fn hub_status(&self, name: &str) -> AdminResult<HubStatus> {
        let h = self.get_hub(name)?;
        Ok(HubStatus {
            name: h.name,
            online: h.online,
            ..HubStatus::default()
        })
    }
    fn set_server_password(&self, _password: &ServerPassword) -> AdminResult<()> {
        Ok(())
    }
    fn get_config(&self) -> AdminResult<ConfigFile> {
        Ok(ConfigFile {
            file_name: "vpn_server.config".into(),
            data: Bin(b"declare root\r\n{\r\n}\r\n".to_vec()),
        })
    }
    fn set_config(&self, _data: &[u8]) -> AdminResult<()> {
        Ok(())
    }
}
