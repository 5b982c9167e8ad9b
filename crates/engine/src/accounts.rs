//! The accounts the engine answers logins from: hubs (online or not), users and their password
//! hashes, and WireGuard's registered keys. Filled by [`crate::Change`]s; names are compared
//! without regard to case, as SoftEther does.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use etherhub_config::hash::{challenge_response, digest_eq, hash_user_password};
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

    pub fn user(&self, hub: &str, name: &str) -> Option<&UserSpec> {
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

    /// Checks a login. An anonymous user logs in whatever it presents (as in SoftEther); a
    /// password user with the proof of its password; a user without a password, or of a
    /// method Etherhub does not serve, never.
    pub fn authenticate(&self, request: AuthRequest<'_>) -> Result<Grant, AuthError> {
        let (hub, user) = match &request {
            AuthRequest::Password { hub, user, .. }
            | AuthRequest::Challenge { hub, user, .. }
            | AuthRequest::Anonymous { hub, user }
            | AuthRequest::NtHash { hub, user, .. } => (*hub, *user),
        };
        let hub_name = self.hub(hub)?;
        let u = self.user(hub, user).ok_or(AuthError::AccessDenied)?;
        let proven = match (&u.auth, &request) {
            // an MS-CHAPv2 client checks the server's answer, made with the same hash: an
            // anonymous user has none to make it with
            (UserAuth::Password(_), AuthRequest::NtHash { proves, .. }) => match &u.nt_hash {
                Some(h) => proves(h),
                None => return Err(AuthError::WrongMethod),
            },
            (_, AuthRequest::NtHash { .. }) => return Err(AuthError::WrongMethod),
            (UserAuth::Anonymous, _) => true,
            // SoftEther hashes with the user name in upper case, so its case does not matter
            (UserAuth::Password(hash), AuthRequest::Password { password, .. }) => {
                digest_eq(&hash_user_password(&u.name, password), hash)
            }
            (
                UserAuth::Password(hash),
                AuthRequest::Challenge {
                    response, random, ..
                },
            ) => digest_eq(&challenge_response(hash, *random), *response),
            (UserAuth::Password(_) | UserAuth::NoPassword, _) => false,
            (UserAuth::Other, _) => return Err(AuthError::WrongMethod),
        };
        if !proven {
            return Err(AuthError::AccessDenied);
        }
        Ok(Grant {
            hub: hub_name.to_string(),
            user: u.name.clone(),
            policy: u.policy,
        })
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
                policy: user.policy,
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
            ..Default::default()
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
    fn an_nt_hash_proof_is_checked_inside_the_accounts() {
        let mut a = accounts();
        let nt = etherhub_config::hash::nt_hash("secret123");
        let proves = |h: &[u8; 16]| *h == nt;
        let ask = |a: &Accounts, user| {
            a.authenticate(AuthRequest::NtHash {
                hub: "DEFAULT",
                user,
                proves: &proves,
            })
        };
        // no NT hash kept (a password set before Etherhub kept them): not this method
        assert_eq!(ask(&a, "meta"), Err(AuthError::WrongMethod));
        a.set_user(UserSpec {
            hub: "DEFAULT".into(),
            name: "meta".into(),
            auth: UserAuth::Password(hash_user_password("meta", "secret123")),
            nt_hash: Some(nt),
            ..Default::default()
        });
        assert_eq!(ask(&a, "META").unwrap().user, "meta");
        let wrong = |_: &[u8; 16]| false;
        let r = a.authenticate(AuthRequest::NtHash {
            hub: "DEFAULT",
            user: "meta",
            proves: &wrong,
        });
        assert_eq!(r, Err(AuthError::AccessDenied));
        assert_eq!(ask(&a, "nobody"), Err(AuthError::AccessDenied));
        // an anonymous user has no hash to prove anything with
        a.set_user(UserSpec {
            hub: "DEFAULT".into(),
            name: "guest".into(),
            auth: UserAuth::Anonymous,
            ..Default::default()
        });
        assert_eq!(ask(&a, "guest"), Err(AuthError::WrongMethod));
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
    fn softethers_challenge_and_anonymous_users() {
        let mut a = accounts();
        let random = [9u8; 20];
        // what vpnclient sends: SHA-0(SHA-0(password || UPPER(user)) || random)
        let proof =
            |user: &str, pw: &str| challenge_response(&hash_user_password(user, pw), &random);
        let good = proof("META", "secret123");
        let g = a
            .authenticate(AuthRequest::Challenge {
                hub: "DEFAULT",
                user: "Meta",
                response: &good,
                random: &random,
            })
            .unwrap();
        assert_eq!(g.user, "meta");
        let bad = proof("meta", "secret124");
        let wrong = AuthRequest::Challenge {
            hub: "DEFAULT",
            user: "meta",
            response: &bad,
            random: &random,
        };
        assert_eq!(a.authenticate(wrong), Err(AuthError::AccessDenied));
        let other_random = [8u8; 20];
        let replayed = AuthRequest::Challenge {
            hub: "DEFAULT",
            user: "meta",
            response: &good,
            random: &other_random,
        };
        assert_eq!(a.authenticate(replayed), Err(AuthError::AccessDenied));
        // no credential: only for a user the hub keeps as anonymous
        let anon = AuthRequest::Anonymous {
            hub: "DEFAULT",
            user: "meta",
        };
        assert_eq!(a.authenticate(anon.clone()), Err(AuthError::AccessDenied));
        a.set_user(UserSpec {
            hub: "DEFAULT".into(),
            name: "guest".into(),
            auth: UserAuth::Anonymous,
            ..Default::default()
        });
        let guest = AuthRequest::Anonymous {
            hub: "DEFAULT",
            user: "guest",
        };
        assert_eq!(a.authenticate(guest).unwrap().user, "guest");
        assert!(!format!(
            "{wrong:?}",
            wrong = AuthRequest::Password {
                hub: "h",
                user: "u",
                password: "hunter2"
            }
        )
        .contains("hunter2"));
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
