//! MS-CHAPv2's arithmetic (RFC 2759 section 8) and the MPPE keys derived from it (RFC 3079
//! section 3.4), for the server's side: verifying a peer's NT-Response against the NT hash the
//! caller keeps, the authenticator response that proves the server knew it too, and the master
//! and start keys SSTP's crypto binding will need. The client's side ([`nt_response`]) is here
//! too, for tests and for the verification itself (the server recomputes and compares).

use etherhub_config::hash::{digest_eq, md4, sha1};

use crate::des::encrypt_with_key56;

/// RFC 2759's `ChallengeHash`: the first 8 bytes of SHA-1 over the peer's challenge, the
/// authenticator's challenge and the user name without any `DOMAIN\` prefix.
pub fn challenge_hash(
    peer_challenge: &[u8; 16],
    auth_challenge: &[u8; 16],
    user: &[u8],
) -> [u8; 8] {
    let mut buf = Vec::with_capacity(32 + user.len());
    buf.extend_from_slice(peer_challenge);
    buf.extend_from_slice(auth_challenge);
    buf.extend_from_slice(strip_domain(user));
    let digest = sha1(&buf);
    digest[..8].try_into().expect("8 of 20 bytes")
}

/// The user name as the hashes see it: what follows the first backslash, when one separates
/// a domain (RFC 2759: "excluding any prepended domain name"). A trailing or leading
/// backslash is part of the name.
pub fn strip_domain(user: &[u8]) -> &[u8] {
    match user.iter().position(|b| *b == b'\\') {
        Some(i) if i > 0 && i + 1 < user.len() => &user[i + 1..],
        _ => user,
    }
}

/// RFC 2759's `ChallengeResponse`: the 8-byte challenge encrypted under three 7-byte pieces
/// of the NT hash padded with zeros to 21 bytes.
pub fn challenge_response(challenge: &[u8; 8], nt_hash: &[u8; 16]) -> [u8; 24] {
    let mut z = [0u8; 21];
    z[..16].copy_from_slice(nt_hash);
    let mut out = [0u8; 24];
    for (i, part) in out.chunks_exact_mut(8).enumerate() {
        let key: [u8; 7] = z[i * 7..i * 7 + 7].try_into().expect("7 bytes");
        part.copy_from_slice(&encrypt_with_key56(&key, *challenge));
    }
    out
}

/// RFC 2759's `GenerateNTResponse`: what the peer sends, from its password's NT hash.
pub fn nt_response(
    auth_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    user: &[u8],
    nt_hash: &[u8; 16],
) -> [u8; 24] {
    challenge_response(
        &challenge_hash(peer_challenge, auth_challenge, user),
        nt_hash,
    )
}

/// Whether `response` is what a peer knowing the password of `nt_hash` would have sent; the
/// comparison does not stop at the first differing byte.
pub fn verify(
    auth_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    user: &[u8],
    nt_hash: &[u8; 16],
    response: &[u8; 24],
) -> bool {
    let want = nt_response(auth_challenge, peer_challenge, user, nt_hash);
    digest_eq(&want, response)
}

/// RFC 2759's `HashNtPasswordHash`: MD4 of the NT hash.
pub fn hash_nt_hash(nt_hash: &[u8; 16]) -> [u8; 16] {
    md4(nt_hash)
}

const MAGIC1: &[u8] = b"Magic server to client signing constant";
const MAGIC2: &[u8] = b"Pad to make it do more than one iteration";

/// RFC 2759's `GenerateAuthenticatorResponse`, as the 20 bytes it hex-encodes.
pub fn authenticator_response(
    nt_hash: &[u8; 16],
    nt_response: &[u8; 24],
    peer_challenge: &[u8; 16],
    auth_challenge: &[u8; 16],
    user: &[u8],
) -> [u8; 20] {
    let mut buf = hash_nt_hash(nt_hash).to_vec();
    buf.extend_from_slice(nt_response);
    buf.extend_from_slice(MAGIC1);
    let digest = sha1(&buf);
    let mut buf = digest.to_vec();
    buf.extend_from_slice(&challenge_hash(peer_challenge, auth_challenge, user));
    buf.extend_from_slice(MAGIC2);
    sha1(&buf)
}

/// The Success message's authenticator string: `S=` and 40 upper-case hex digits.
pub fn authenticator_string(response: &[u8; 20]) -> String {
    let mut s = String::from("S=");
    s.push_str(&upper_hex(response));
    s
}

pub(crate) fn upper_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// RFC 3079's `GetMasterKey`: 16 bytes from the NT hash's hash and the peer's NT-Response.
pub fn master_key(nt_hash: &[u8; 16], nt_response: &[u8; 24]) -> [u8; 16] {
    let mut buf = hash_nt_hash(nt_hash).to_vec();
    buf.extend_from_slice(nt_response);
    buf.extend_from_slice(b"This is the MPPE Master Key");
    sha1(&buf)[..16].try_into().expect("16 of 20 bytes")
}

/// Which start key of [`asymmetric_start_key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyDirection {
    /// What the server sends with (the client receives with).
    ServerSend,
    /// What the server receives with (the client sends with).
    ServerReceive,
}

const MAGIC_CLIENT_SEND: &[u8] =
    b"On the client side, this is the send key; on the server side, it is the receive key.";
const MAGIC_CLIENT_RECEIVE: &[u8] =
    b"On the client side, this is the receive key; on the server side, it is the send key.";

/// RFC 3079's `GetAsymmetricStartKey` for 128-bit keys, from the server's side (the 40-bit
/// and 56-bit variants take a prefix of the same digest).
pub fn asymmetric_start_key(master_key: &[u8; 16], direction: KeyDirection) -> [u8; 16] {
    let magic = match direction {
        KeyDirection::ServerSend => MAGIC_CLIENT_RECEIVE,
        KeyDirection::ServerReceive => MAGIC_CLIENT_SEND,
    };
    let mut buf = master_key.to_vec();
    buf.extend_from_slice(&[0u8; 40]);
    buf.extend_from_slice(magic);
    buf.extend_from_slice(&[0xf2u8; 40]);
    sha1(&buf)[..16].try_into().expect("16 of 20 bytes")
}

/// The MS-CHAPv2 Response packet's value (49 bytes, RFC 2759 section 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseValue {
    pub peer_challenge: [u8; 16],
    pub nt_response: [u8; 24],
    pub flags: u8,
}

/// The length of [`ResponseValue`] on the wire.
pub const RESPONSE_LEN: usize = 49;

impl ResponseValue {
    /// The value of a Response packet: peer challenge (16), eight reserved zeros, NT-Response
    /// (24), flags (1). The reserved bytes are not checked (RFC 2759 says they MUST be zero,
    /// and the server gains nothing by refusing otherwise).
    pub fn parse(value: &[u8]) -> Option<ResponseValue> {
        if value.len() != RESPONSE_LEN {
            return None;
        }
        Some(ResponseValue {
            peer_challenge: value[..16].try_into().ok()?,
            nt_response: value[24..48].try_into().ok()?,
            flags: value[48],
        })
    }

    pub fn emit(&self) -> [u8; RESPONSE_LEN] {
        let mut v = [0u8; RESPONSE_LEN];
        v[..16].copy_from_slice(&self.peer_challenge);
        v[24..48].copy_from_slice(&self.nt_response);
        v[48] = self.flags;
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;
    use etherhub_config::hash::nt_hash;

    // RFC 2759 section 9.2
    const USER: &[u8] = b"User";
    const AUTH_CHALLENGE: &str = "5B5D7C7D7B3F2F3E3C2C602132262628";
    const PEER_CHALLENGE: &str = "21402324255E262A28295F2B3A337C7E";
    const NT_RESPONSE: &str = "82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF";

    fn a16(s: &str) -> [u8; 16] {
        hex(s).try_into().expect("16 bytes")
    }

    #[test]
    fn rfc_2759s_example_verifies() {
        let hash = nt_hash("clientPass");
        assert_eq!(hash, a16("44EBBA8D5312B8D611474411F56989AE"));
        assert_eq!(hash_nt_hash(&hash), a16("41C00C584BD2D91C4017A2A12FA59F3F"));
        let (auth, peer) = (a16(AUTH_CHALLENGE), a16(PEER_CHALLENGE));
        assert_eq!(
            challenge_hash(&peer, &auth, USER)[..],
            hex("D02E4386BCE91226")[..]
        );
        let nt = nt_response(&auth, &peer, USER, &hash);
        assert_eq!(nt[..], hex(NT_RESPONSE)[..]);
        assert!(verify(&auth, &peer, USER, &hash, &nt));
        let mut wrong = nt;
        wrong[23] ^= 1;
        assert!(!verify(&auth, &peer, USER, &hash, &wrong));
        assert!(!verify(&auth, &peer, USER, &nt_hash("clientpass"), &nt));
        let s = authenticator_string(&authenticator_response(&hash, &nt, &peer, &auth, USER));
        assert_eq!(s, "S=407A5589115FD0D6209F510FE9C04566932CDA56");
    }

    #[test]
    fn a_domain_prefix_is_not_hashed() {
        let (auth, peer) = (a16(AUTH_CHALLENGE), a16(PEER_CHALLENGE));
        assert_eq!(
            challenge_hash(&peer, &auth, b"HUB\\User"),
            challenge_hash(&peer, &auth, USER)
        );
        assert_eq!(strip_domain(b"\\User"), b"\\User");
        assert_eq!(strip_domain(b"User\\"), b"User\\");
        // user@HUB is a name of its own for MS-CHAPv2 (SoftEther does not split at '@' here)
        assert_eq!(strip_domain(b"User@HUB"), b"User@HUB");
    }

    #[test]
    fn rfc_3079s_mppe_keys() {
        // RFC 3079 section 3.5.3 (128-bit keys), from RFC 2759's example exchange
        let hash = nt_hash("clientPass");
        let nt: [u8; 24] = hex(NT_RESPONSE).try_into().unwrap();
        let master = master_key(&hash, &nt);
        assert_eq!(master, a16("FDECE3717A8C838CB388E527AE3CDD31"));
        assert_eq!(
            asymmetric_start_key(&master, KeyDirection::ServerSend),
            a16("8B7CDC149B993A1BA118CB153F56DCCB")
        );
        // the other direction's key differs (the RFC prints only the send key)
        assert_ne!(
            asymmetric_start_key(&master, KeyDirection::ServerReceive),
            asymmetric_start_key(&master, KeyDirection::ServerSend)
        );
    }

    #[test]
    fn the_response_value_round_trips() {
        let v = ResponseValue {
            peer_challenge: a16(PEER_CHALLENGE),
            nt_response: hex(NT_RESPONSE).try_into().unwrap(),
            flags: 0,
        };
        let bytes = v.emit();
        assert_eq!(ResponseValue::parse(&bytes), Some(v));
        assert_eq!(ResponseValue::parse(&bytes[..48]), None);
    }
}
