//! The accounts the engine answers logins from: hubs (online or not), users and their password
//! hashes, and WireGuard's registered keys. Filled by [`crate::Change`]s; names are compared
//! without regard to case, as SoftEther does.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use etherhub_config::hash::{digest_eq, hash_user_password};
use etherhub_wireguard::Key;

use crate::change::{UserAuth, UserSpec, WgKeySpec};
use crate::seam::{AuthError, AuthRequest, Grant, KeyGrant};

/// A name as the accounts compare it.
pub(crate) fn fold(name: &str) -> String {
    name.to_ascii_uppercase()
}

#[derive(Default)]
pub(crate) struct Accounts {
    /// Hub names as spelled, and whether each is online.
    hubs: HashMap<String, (String, bool)>,
    users: HashMap<(String, String), UserSpec>,
    keys: HashMap<Key, WgKeySpec>,
}

impl Accounts {
    pub fn set_hub(&mut self, name: &str, online: bool) {
        self.hubs.insert(fold(name), (name.to_string(), online));
    }

    pub fn remove_hub(&mut self, name: &str) {
        let h = fold(name);
        self.hubs.remove(&h);
        self.users.retain(|(hub, _), _| *hub != h);
    }

    /// Stores a user; returns the previous record.
    pub fn set_user(&mut self, user: UserSpec) -> Option<UserSpec> {
        self.users.insert((fold(&user.hub), fold(&user.name)), user)
    }

    pub fn remove_user(&mut self, hub: &str, name: &str) -> Option<UserSpec> {
        self.users.remove(&(fold(hub), fold(name)))
    }

    /// Stores a key; returns the previous record.
    pub fn set_key(&mut self, key: WgKeySpec) -> Option<WgKeySpec> {
        self.keys.insert(key.key, key)
    }

    pub fn remove_key(&mut self, key: &Key) -> Option<WgKeySpec> {
        self.keys.remove(key)
    }

    /// Records the address a key's client took (see [`crate::seam::AddressRule::LearnFirst`]).
    pub fn set_key_address(&mut self, key: &Key, address: Ipv4Addr) {
        if let Some(k) = self.keys.get_mut(key) {
            k.address = Some(address);
        }
    }

    /// The key that holds `address` on `hub`, other than `except`.
    pub fn key_holding(&self, hub: &str, address: Ipv4Addr, except: &Key) -> Option<&Key> {
        let h = fold(hub);
        self.keys
            .values()
            .find(|k| k.address == Some(address) && fold(&k.hub) == h && k.key != *except)
            .map(|k| &k.key)
    }

    fn user(&self, hub: &str, name: &str) -> Option<&UserSpec> {
        self.users.get(&(fold(hub), fold(name)))
    }

    /// Whether the hub exists and is online; its spelling.
    fn hub(&self, name: &str) -> Result<&str, AuthError> {
        match self.hubs.get(&fold(name)) {
            None => Err(AuthError::NoSuchHub),
            Some((_, false)) => Err(AuthError::HubOffline),
            Some((spelled, true)) => Ok(spelled),
        }
    }

    pub fn authenticate(&self, request: AuthRequest<'_>) -> Result<Grant, AuthError> {
        match request {
            AuthRequest::Password {
                hub,
                user,
                password,
            } => {
                let hub_name = self.hub(hub)?;
                let u = self.user(hub, user).ok_or(AuthError::AccessDenied)?;
                match &u.auth {
                    UserAuth::Password(hash) => {
                        // SoftEther hashes with the user name as stored (upper case anyway)
                        let tried = hash_user_password(&u.name, password);
                        if !digest_eq(&tried, hash) {
                            return Err(AuthError::AccessDenied);
                        }
                    }
                    UserAuth::Anonymous => {}
                    UserAuth::NoPassword => return Err(AuthError::AccessDenied),
                    UserAuth::Other => return Err(AuthError::WrongMethod),
                }
                Ok(Grant {
                    hub: hub_name.to_string(),
                    user: u.name.clone(),
                })
            }
        }
    }

    /// WireGuard's handshake question: the key is registered, and its hub is online and has
    /// its user (a deleted user's keys stop working, as SoftEther's login would fail). The
    /// grant names hub and user as the accounts spell them.
    pub fn wireguard_key(&self, key: &Key) -> Option<KeyGrant> {
        let k = self.keys.get(key)?;
        let hub = self.hub(&k.hub).ok()?;
        let user = self.user(&k.hub, &k.user)?;
        Some(KeyGrant {
            grant: Grant {
                hub: hub.to_string(),
                user: user.name.clone(),
            },
            psk: k.psk,
            address: k.address,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> Accounts {
        let mut a = Accounts::default();
        a.set_hub("DEFAULT", true);
        a.set_user(UserSpec {
            hub: "DEFAULT".into(),
            name: "meta".into(),
            auth: UserAuth::Password(hash_user_password("meta", "secret123")),
        });
        a
    }

    fn login<'a>(hub: &'a str, user: &'a str, password: &'a str) -> AuthRequest<'a> {
        AuthRequest::Password {
            hub,
            user,
            password,
        }
    }

    #[test]
    fn passwords_are_checked_against_softethers_hash() {
        let a = accounts();
        let g = a
            .authenticate(login("default", "META", "secret123"))
            .unwrap();
        assert_eq!((g.hub.as_str(), g.user.as_str()), ("DEFAULT", "meta"));
        assert_eq!(
            a.authenticate(login("DEFAULT", "meta", "wrong")),
            Err(AuthError::AccessDenied)
        );
        assert_eq!(
            a.authenticate(login("DEFAULT", "nobody", "secret123")),
            Err(AuthError::AccessDenied)
        );
        assert_eq!(
            a.authenticate(login("OTHER", "meta", "secret123")),
            Err(AuthError::NoSuchHub)
        );
    }

    #[test]
    fn keys_need_their_user_and_an_online_hub() {
        let mut a = accounts();
        let key = [7u8; 32];
        a.set_key(WgKeySpec {
            key,
            hub: "default".into(),
            user: "META".into(),
            psk: None,
            address: None,
        });
        let g = a.wireguard_key(&key).unwrap();
        assert_eq!(
            (g.grant.hub.as_str(), g.grant.user.as_str()),
            ("DEFAULT", "meta")
        );
        a.set_hub("DEFAULT", false);
        assert!(a.wireguard_key(&key).is_none(), "hub offline");
        a.set_hub("DEFAULT", true);
        a.remove_user("DEFAULT", "meta");
        assert!(a.wireguard_key(&key).is_none(), "user deleted");
    }
}
