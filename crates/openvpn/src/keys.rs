//! Key method 2: the first message each side writes inside TLS, and the data channel's keys.
//!
//! The client's message: four zero bytes, the method (2), 48 bytes of pre-master secret, two
//! 32-byte randoms, then strings (a 16-bit length counting a trailing NUL, the bytes, the NUL;
//! an absent string is a zero length): its options, user name, password and `peer_info`
//! (`NAME=value` lines). The server's is the same without the pre-master secret, with empty
//! user name, password and peer info.
//!
//! The data keys: 256 bytes, as two halves of a 64-byte cipher key and a 64-byte HMAC key; the
//! first half is the client's sending direction. Etherhub takes them from TLS's exporter
//! (label `EXPORTER-OpenVPN-datakeys`, no context), which a client uses when the push reply
//! says `key-derivation tls-ekm`; OpenVPN 2.6 clients announce they can (IV_PROTO bit 3).

use thiserror::Error;

/// The TLS exporter label of the data channel keys.
pub const EKM_LABEL: &[u8] = b"EXPORTER-OpenVPN-datakeys";
/// The longest options string OpenVPN sends (with its NUL).
pub const MAX_OPTIONS: usize = 512;
/// The longest user name or password taken.
pub const MAX_CREDENTIAL: usize = 4096;

/// IV_PROTO bits in the client's peer info.
pub const IV_PROTO_DATA_V2: u32 = 2;
pub const IV_PROTO_REQUEST_PUSH: u32 = 4;
pub const IV_PROTO_TLS_KEY_EXPORT: u32 = 8;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the key method 2 message is truncated")]
    Truncated,
    #[error("key method {0} (only 2 is spoken)")]
    Method(u8),
    #[error("the {0} string is too long")]
    TooLong(&'static str),
}

/// The client's key method 2 message.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientKeys {
    pub pre_master: [u8; 48],
    pub random1: [u8; 32],
    pub random2: [u8; 32],
    pub options: String,
    pub user: String,
    pub password: String,
    pub peer_info: String,
}

impl std::fmt::Debug for ClientKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKeys")
            .field("options", &self.options)
            .field("user", &self.user)
            .field("peer_info", &self.peer_info)
            .finish_non_exhaustive()
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], KeyError> {
        if self.0.len() < n {
            return Err(KeyError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], KeyError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// A string; a missing one at the very end is empty (older clients stop early).
    fn string(&mut self, max: usize, what: &'static str) -> Result<String, KeyError> {
        if self.0.is_empty() {
            return Ok(String::new());
        }
        let len = u16::from_be_bytes(self.array::<2>()?) as usize;
        if len > max {
            return Err(KeyError::TooLong(what));
        }
        let bytes = self.take(len)?;
        let text = bytes.split(|b| *b == 0).next().unwrap_or(&[]);
        Ok(String::from_utf8_lossy(text).into_owned())
    }
}

impl ClientKeys {
    /// The message, and how many bytes it took.
    pub fn parse(bytes: &[u8]) -> Result<(ClientKeys, usize), KeyError> {
        let mut r = Reader(bytes);
        r.take(4)?;
        let method = r.array::<1>()?[0];
        if method & 0x0f != 2 {
            return Err(KeyError::Method(method & 0x0f));
        }
        let keys = ClientKeys {
            pre_master: r.array()?,
            random1: r.array()?,
            random2: r.array()?,
            options: r.string(MAX_OPTIONS, "options")?,
            user: r.string(MAX_CREDENTIAL, "user name")?,
            password: r.string(MAX_CREDENTIAL, "password")?,
            peer_info: r.string(MAX_CREDENTIAL * 4, "peer info")?,
        };
        let used = bytes.len() - r.0.len();
        Ok((keys, used))
    }

    /// A `NAME=value` of the peer info.
    pub fn info(&self, name: &str) -> Option<&str> {
        self.peer_info.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .map(str::trim)
        })
    }

    /// The IV_PROTO bits.
    pub fn iv_proto(&self) -> u32 {
        self.info("IV_PROTO")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// The data ciphers the client offers (IV_CIPHERS; with only IV_NCP=2, the two GCMs).
    pub fn ciphers(&self) -> Vec<String> {
        match self.info("IV_CIPHERS") {
            Some(list) => list.split(':').map(str::to_string).collect(),
            None if self.info("IV_NCP").and_then(|v| v.parse::<u32>().ok()) >= Some(2) => {
                vec!["AES-256-GCM".into(), "AES-128-GCM".into()]
            }
            None => Vec::new(),
        }
    }

    /// A client's message (for tests and a client of the crate).
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[0, 0, 0, 0, 2]);
        out.extend_from_slice(&self.pre_master);
        out.extend_from_slice(&self.random1);
        out.extend_from_slice(&self.random2);
        for s in [&self.options, &self.user, &self.password, &self.peer_info] {
            put_string(out, s);
        }
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    if s.is_empty() {
        out.extend_from_slice(&[0, 0]);
        return;
    }
    out.extend_from_slice(&((s.len() + 1) as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// The server's key method 2 message.
pub fn server_keys(random1: &[u8; 32], random2: &[u8; 32], options: &str) -> Vec<u8> {
    let mut out = vec![0, 0, 0, 0, 2];
    out.extend_from_slice(random1);
    out.extend_from_slice(random2);
    put_string(&mut out, options);
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    out
}

/// One direction's data channel key: the cipher key and the implicit IV (AEAD).
#[derive(Clone, PartialEq, Eq)]
pub struct DirectionKey {
    pub cipher: [u8; 64],
    pub hmac: [u8; 64],
}

/// The data channel's keys as the server uses them.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKeys {
    /// What the server encrypts with (the key block's second half).
    pub send: DirectionKey,
    /// What it decrypts with (the first half).
    pub receive: DirectionKey,
}

impl DataKeys {
    /// The server's keys from the 256-byte key block.
    pub fn from_block(block: &[u8; 256]) -> DataKeys {
        let half = |at: usize| {
            let mut k = DirectionKey {
                cipher: [0; 64],
                hmac: [0; 64],
            };
            k.cipher.copy_from_slice(&block[at..at + 64]);
            k.hmac.copy_from_slice(&block[at + 64..at + 128]);
            k
        };
        DataKeys {
            receive: half(0),
            send: half(128),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> ClientKeys {
        ClientKeys {
            pre_master: [1; 48],
            random1: [2; 32],
            random2: [3; 32],
            options: "V4,dev-type tun,link-mtu 1541,tun-mtu 1500,proto UDPv4,auth SHA1,keysize 128,key-method 2,tls-client".into(),
            user: "alice@DEFAULT".into(),
            password: "pw".into(),
            peer_info: "IV_VER=2.6.14\nIV_PLAT=linux\nIV_NCP=2\nIV_CIPHERS=AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305\nIV_PROTO=990\n".into(),
        }
    }

    #[test]
    fn the_clients_message_round_trips_and_its_peer_info_reads() {
        let c = client();
        let mut b = Vec::new();
        c.emit(&mut b);
        let (back, used) = ClientKeys::parse(&b).unwrap();
        assert_eq!(back, c);
        assert_eq!(used, b.len());
        assert_eq!(back.iv_proto(), 990);
        assert_eq!(
            back.iv_proto() & IV_PROTO_TLS_KEY_EXPORT,
            IV_PROTO_TLS_KEY_EXPORT
        );
        assert_eq!(back.ciphers()[2], "CHACHA20-POLY1305");
        assert_eq!(back.info("IV_PLAT"), Some("linux"));
        for cut in (0..5 + 48 + 64).chain([5 + 48 + 64 + 1, 5 + 48 + 64 + 10]) {
            assert!(ClientKeys::parse(&b[..cut]).is_err(), "{cut}");
        }
        let mut one = b.clone();
        one[4] = 1;
        assert_eq!(ClientKeys::parse(&one).unwrap_err(), KeyError::Method(1));
        // the password never shows in logs
        assert!(!format!("{back:?}").contains("pw\""));
    }

    #[test]
    fn the_servers_message_and_the_key_halves() {
        let m = server_keys(&[7; 32], &[8; 32], "V4,tls-server");
        assert_eq!(&m[..5], &[0, 0, 0, 0, 2]);
        assert_eq!(m.len(), 5 + 64 + 2 + 14 + 6);
        let mut block = [0u8; 256];
        for (i, b) in block.iter_mut().enumerate() {
            *b = i as u8;
        }
        let k = DataKeys::from_block(&block);
        assert_eq!(k.receive.cipher[0], 0);
        assert_eq!(k.receive.hmac[0], 64);
        assert_eq!(k.send.cipher[0], 128);
        assert_eq!(k.send.hmac[0], 192);
    }
}
