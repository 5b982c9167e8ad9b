//! The hello a server sends after the signature, the login PACK a client answers with, and the
//! PACKs that end a handshake.

use etherhub_pack::Pack;

/// The server's hello: who it is and the 20 random bytes the client hashes its password with.
/// `padding` (SoftEther sends 0..999 random bytes as `pencore`) hides the PACK's length.
pub fn hello(server: &str, version: u32, build: u32, random: &[u8; 20], padding: &[u8]) -> Pack {
    let mut p = Pack::new();
    p.set_str("hello", server);
    p.set_int("version", version);
    p.set_int("build", build);
    p.set_data("random", random);
    if !padding.is_empty() {
        p.set_data("pencore", padding);
    }
    p
}

/// A PACK that carries only a SoftEther error code (`{"error": code}`).
pub fn error_pack(code: u32) -> Pack {
    let mut p = Pack::new();
    p.set_int("error", code);
    p
}

/// What a login PACK asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// `admin` (vpncmd, the Server Manager), `login` (a VPN session), or another of
    /// SoftEther's methods; compare without regard to case.
    pub method: String,
    /// The hub to administer (`/HUB:`); `None` for the server administrator.
    pub hub: Option<String>,
    /// SHA-0(SHA-0(password) || the hello's random), for `admin`.
    pub secure_password: Option<[u8; 20]>,
    /// The client takes a login with the empty password (and is told so).
    pub accept_empty_password: bool,
    pub client_str: String,
    pub client_ver: u32,
    pub client_build: u32,
}

/// Why a login PACK cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("the login PACK has no method")]
    NoMethod,
    #[error("the login's secure_password is not 20 bytes")]
    BadSecurePassword,
    #[error("the login PACK carries error {0}")]
    ClientError(u32),
    #[error("the login names no hub or no user")]
    NoHubOrUser,
    #[error("the session key is not 20 bytes")]
    BadSessionKey,
}

impl Login {
    /// Reads a login PACK; an admin login must carry a 20-byte `secure_password`.
    pub fn from_pack(p: &Pack) -> Result<Login, LoginError> {
        if let Some(e) = p.int("error").filter(|&e| e != 0) {
            return Err(LoginError::ClientError(e));
        }
        let method = p
            .str("method")
            .filter(|m| !m.is_empty())
            .ok_or(LoginError::NoMethod)?
            .to_string();
        let secure_password = match p.data("secure_password") {
            Some(d) => Some(<[u8; 20]>::try_from(d).map_err(|_| LoginError::BadSecurePassword)?),
            None => None,
        };
        let login = Login {
            hub: p
                .str("hubname")
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_string),
            secure_password,
            accept_empty_password: p.bool("accept_empty_password").unwrap_or(false),
            client_str: p.str("client_str").unwrap_or("").to_string(),
            client_ver: p.int("client_ver").unwrap_or(0),
            client_build: p.int("client_build").unwrap_or(0),
            method,
        };
        if login.is_admin() && login.secure_password.is_none() {
            return Err(LoginError::BadSecurePassword);
        }
        Ok(login)
    }

    pub fn is_admin(&self) -> bool {
        self.method.eq_ignore_ascii_case("admin")
    }

    /// The login PACK a client sends (the client's side, for tools and tests).
    pub fn to_pack(&self) -> Pack {
        let mut p = Pack::new();
        p.set_str("client_str", &self.client_str);
        p.set_int("client_ver", self.client_ver);
        p.set_int("client_build", self.client_build);
        p.set_str("method", &self.method);
        p.set_bool("accept_empty_password", self.accept_empty_password);
        if let Some(s) = &self.secure_password {
            p.set_data("secure_password", s);
        }
        if let Some(h) = &self.hub {
            p.set_str("hubname", h);
        }
        p
    }

    /// vpncmd's admin login: `hub` for a hub admin, the password proved against `random`.
    pub fn vpncmd(hub: Option<&str>, secure_password: [u8; 20]) -> Login {
        Login {
            method: "admin".into(),
            hub: hub.map(str::to_string),
            secure_password: Some(secure_password),
            accept_empty_password: true,
            client_str: "SoftEther VPN Command-Line Admin Tool".into(),
            client_ver: 501,
            client_build: 9674,
        }
    }
}

/// The answer to a successful admin login: empty, or `empty_password` when the client logged
/// in with the empty password and said it takes that.
pub fn admin_welcome(empty_password: bool) -> Pack {
    let mut p = Pack::new();
    if empty_password {
        p.set_int("empty_password", 1);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vpncmd_login(hub: Option<&str>, secure: &[u8]) -> Pack {
        let mut p = Login::vpncmd(hub, [0; 20]).to_pack();
        p.set_data("secure_password", secure);
        p
    }

    #[test]
    fn reads_an_admin_login() {
        let l = Login::from_pack(&vpncmd_login(Some("DEFAULT"), &[3; 20])).unwrap();
        assert!(l.is_admin());
        assert_eq!(l.hub.as_deref(), Some("DEFAULT"));
        assert_eq!(l.secure_password, Some([3; 20]));
        assert!(l.accept_empty_password);
        assert_eq!((l.client_ver, l.client_build), (501, 9674));
        let server = Login::from_pack(&vpncmd_login(None, &[3; 20])).unwrap();
        assert_eq!(server.hub, None);
    }

    #[test]
    fn refuses_a_login_it_cannot_check() {
        assert_eq!(
            Login::from_pack(&vpncmd_login(None, &[3; 19])),
            Err(LoginError::BadSecurePassword)
        );
        let mut no_hash = vpncmd_login(None, &[0; 20]);
        no_hash.remove("secure_password");
        assert_eq!(
            Login::from_pack(&no_hash),
            Err(LoginError::BadSecurePassword)
        );
        assert_eq!(Login::from_pack(&Pack::new()), Err(LoginError::NoMethod));
        assert_eq!(
            Login::from_pack(&error_pack(9)),
            Err(LoginError::ClientError(9))
        );
    }

    #[test]
    fn the_hello_carries_the_challenge() {
        let p = hello("Etherhub", 501, 9674, &[9; 20], &[1, 2]);
        assert_eq!(p.str("hello"), Some("Etherhub"));
        assert_eq!(p.data("random"), Some(&[9u8; 20][..]));
        assert_eq!(p.int("build"), Some(9674));
        assert_eq!(p.data("pencore"), Some(&[1u8, 2][..]));
        assert!(admin_welcome(false).is_empty());
        assert_eq!(admin_welcome(true).int("empty_password"), Some(1));
    }
}
