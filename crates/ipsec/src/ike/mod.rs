//! The IKEv1 responder (RFC 2407, 2408, 2409) for L2TP/IPsec clients: main mode and aggressive
//! mode authenticated with a pre-shared key, quick mode for ESP in transport mode, NAT traversal
//! (RFC 3947 and the drafts Windows and macOS still announce), dead peer detection (RFC 3706),
//! deletes and INITIAL-CONTACT. We never initiate.
//!
//! Sans-IO: [`Responder::handle`] takes one IKE message with the addresses it travelled
//! between and the current time, and appends [`Event`]s: datagrams to send, child SAs up and
//! down, refused peers. [`Responder::poll_timeout`] says when [`Responder::handle_timeout`]
//! wants to run. No sockets, threads or clock reads.
//!
//! Ports: messages arrive on UDP 500, or on 4500 after NAT-T floating with the 4-byte
//! non-ESP marker already removed by the caller. A [`Event::Transmit`] whose `local` port is
//! 4500 carries the marker in its datagram already, so the caller sends it as is. `local`
//! must be the address the peer actually sent to (not a wildcard): the NAT-D hashes are
//! computed honestly over the addresses seen, and our phase-1 ID is `local`'s IP.
//!
//! Supported: phase 1 AES-CBC-128/192/256 with SHA1 / SHA2-256/384/512, MODP groups 2, 5, 14,
//! pre-shared key; quick mode ESP with AES-CBC (+ HMAC-SHA1-96 / SHA2-256-128 / 384-192 /
//! 512-256) or AES-GCM-16, transport or UDP-encapsulated transport (RFC 3947 value 4 and the
//! drafts' 61444), optional PFS with the same groups, NAT-OA. Not supported: 3DES, DES, MD5,
//! certificates, XAUTH/mode-config, tunnel mode, kilobyte lifetimes (accepted but not
//! enforced here), initiating.

mod crypto;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::sa::{ChildSa, Encap, EspCipher, EspInteg, EspKeys};
use crypto::{ct_eq, iv_from, phase1_key, Aes, Group, HashAlg, Secret};
use wire::*;

/// The responder's settings.
#[derive(Clone)]
pub struct Config {
    /// The pre-shared key every peer authenticates with.
    pub psk: Vec<u8>,
    /// Phase-1 SAs not yet authenticated, per peer IP address; more initiations are dropped.
    pub max_half_open_per_ip: usize,
    /// Phase-1 SAs not yet authenticated, in all.
    pub max_half_open: usize,
    /// How long a phase-1 or quick-mode exchange may take before it is forgotten.
    pub half_open_timeout: Duration,
    /// A phase-1 SA's lifetime when the peer proposes none.
    pub phase1_lifetime: Duration,
    /// The longest phase-1 lifetime accepted (longer proposals are shortened to this; the
    /// peer's proposal is still echoed as RFC 2409 allows a responder to expire early).
    pub phase1_max_lifetime: Duration,
    /// A child SA's lifetime when the peer proposes none (RFC 2407 4.5: 28800 s).
    pub child_lifetime: Duration,
    /// The longest child SA lifetime accepted.
    pub child_max_lifetime: Duration,
    /// Whether aggressive mode is answered (it exposes HASH_R to offline PSK guessing).
    pub aggressive_mode: bool,
    /// Quick modes in progress per phase-1 SA.
    pub max_quick_per_sa: usize,
    /// An established phase-1 SA with no child SA and no authenticated message for this long
    /// is forgotten.
    pub phase1_idle_timeout: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            psk: Vec::new(),
            max_half_open_per_ip: 8,
            max_half_open: 1024,
            half_open_timeout: Duration::from_secs(30),
            phase1_lifetime: Duration::from_secs(8 * 3600),
            phase1_max_lifetime: Duration::from_secs(24 * 3600),
            child_lifetime: Duration::from_secs(28800),
            child_max_lifetime: Duration::from_secs(24 * 3600),
            aggressive_mode: true,
            max_quick_per_sa: 16,
            phase1_idle_timeout: Duration::from_secs(15 * 60),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("psk", &"<hidden>")
            .field("max_half_open_per_ip", &self.max_half_open_per_ip)
            .field("max_half_open", &self.max_half_open)
            .field("half_open_timeout", &self.half_open_timeout)
            .field("phase1_lifetime", &self.phase1_lifetime)
            .field("phase1_max_lifetime", &self.phase1_max_lifetime)
            .field("child_lifetime", &self.child_lifetime)
            .field("child_max_lifetime", &self.child_max_lifetime)
            .field("aggressive_mode", &self.aggressive_mode)
            .field("max_quick_per_sa", &self.max_quick_per_sa)
            .field("phase1_idle_timeout", &self.phase1_idle_timeout)
            .finish()
    }
}

/// What the responder asks of its caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Send `datagram` from `local` to `peer` over UDP. When `local`'s port is 4500 the
    /// datagram already starts with the 4-byte non-ESP marker.
    Transmit {
        local: SocketAddr,
        peer: SocketAddr,
        datagram: Vec<u8>,
    },
    /// Quick mode finished: install the child SA. With `Encap::Udp`, `peer` is where ESP-in-UDP
    /// goes (normally the peer's port 4500 address); with `Encap::Esp` only its IP matters.
    ChildUp {
        local: SocketAddr,
        peer: SocketAddr,
        sa: ChildSa,
    },
    /// The child SA with this inbound SPI is gone (deleted by the peer, replaced after an
    /// INITIAL-CONTACT, or expired).
    ChildDown { peer: SocketAddr, inbound_spi: u32 },
    /// A peer was turned away: wrong pre-shared key, or nothing acceptable proposed.
    Refused { peer: SocketAddr, reason: String },
}

/// Counters of messages dropped, by cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Truncated or inconsistent messages and payloads, bad DH values.
    pub malformed: u64,
    /// Initiations beyond the half-open limits, quick modes beyond `max_quick_per_sa`.
    pub flood: u64,
    /// Cookies of no SA we know.
    pub unknown_sa: u64,
    /// Phase-1 authentication failures (wrong pre-shared key).
    pub auth_failed: u64,
    /// Quick-mode or informational messages whose HASH did not verify.
    pub bad_hash: u64,
    /// Retransmissions (answered with our last reply when there was one) and replays.
    pub retransmit: u64,
    /// Nothing acceptable in a phase-1 or quick-mode SA payload.
    pub no_proposal_chosen: u64,
    /// Messages that do not fit the exchange's state, unsupported exchanges, aggressive mode
    /// when disabled.
    pub unexpected: u64,
    /// Unencrypted informational messages (unauthenticated: ignored).
    pub unauthenticated: u64,
}

/// A phase-1 SA, for diagnostics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phase1Info {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub established: bool,
    pub aggressive: bool,
    /// NAT traversal agreed (vendor IDs).
    pub nat_t: bool,
    /// The peer's NAT-D hash for its own address did not match what we see.
    pub peer_behind_nat: bool,
    /// The peer's NAT-D hash for our address did not match our local address.
    pub local_behind_nat: bool,
    /// E.g. "AES-CBC-256/SHA1/MODP-2048".
    pub proposal: String,
}

// Vendor IDs (MD5 of the names).
const VID_RFC3947: [u8; 16] = hex16("4a131c81070358455c5728f20e95452f");
const VID_DRAFT_03: [u8; 16] = hex16("7d9419a65310ca6f2c179d9215529d56");
const VID_DRAFT_02N: [u8; 16] = hex16("90cb80913ebb696e086381b5ec427b1f");
const VID_DRAFT_02: [u8; 16] = hex16("cd60464335df21f87cfdb2fc68b6a448");
const VID_DPD: [u8; 16] = hex16("afcad71368a1f1c96b8696fc77570100");

const fn hex16(s: &str) -> [u8; 16] {
    const fn nib(c: u8) -> u8 {
        if c <= b'9' {
            c - b'0'
        } else {
            c - b'a' + 10
        }
    }
    let b = s.as_bytes();
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = nib(b[2 * i]) << 4 | nib(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// Which NAT traversal dialect the peer and we agreed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NatT {
    Rfc3947,
    /// draft-ietf-ipsec-nat-t-ike-02/03: the same, with payload types 130/131.
    Draft([u8; 16]),
}

impl NatT {
    fn from_vids(vids: &[&[u8]]) -> Option<NatT> {
        if vids.contains(&&VID_RFC3947[..]) {
            return Some(NatT::Rfc3947);
        }
        [VID_DRAFT_03, VID_DRAFT_02N, VID_DRAFT_02]
            .into_iter()
            .find(|v| vids.contains(&&v[..]))
            .map(NatT::Draft)
    }
    fn vid(self) -> [u8; 16] {
        match self {
            NatT::Rfc3947 => VID_RFC3947,
            NatT::Draft(v) => v,
        }
    }
    fn natd(self) -> u8 {
        match self {
            NatT::Rfc3947 => P_NATD,
            NatT::Draft(_) => P_NATD_DRAFT,
        }
    }
}

/// The phase-1 transform chosen.
struct P1Choice {
    proposal: u8,
    spi: Vec<u8>,
    transform: Vec<u8>,
    key_len: usize,
    hash: HashAlg,
    group: Group,
    lifetime: Option<u64>,
}

impl P1Choice {
    fn describe(&self) -> String {
        format!(
            "AES-CBC-{}/{}/{}",
            self.key_len * 8,
            self.hash.name(),
            self.group.name()
        )
    }
}

struct P1Keys {
    skeyid: Secret,
    d: Secret,
    a: Secret,
    cipher: Aes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum P1State {
    /// Main mode: message 2 sent.
    MmSaSent,
    /// Main mode: message 4 sent.
    MmKeSent,
    /// Aggressive mode: message 2 sent.
    AmSent,
    Established,
}

struct Quick {
    /// The IV for the exchange's next message.
    iv: [u8; 16],
    ni: Vec<u8>,
    nr: Vec<u8>,
    msg1: Vec<u8>,
    reply: Vec<u8>,
    pending: Option<ChildSa>,
    deadline: Instant,
}

struct Phase1 {
    icookie: [u8; 8],
    rcookie: [u8; 8],
    /// The address message 1 came from (the key of the retransmission index).
    init_peer: SocketAddr,
    local: SocketAddr,
    peer: SocketAddr,
    aggressive: bool,
    state: P1State,
    deadline: Instant,
    /// The last authenticated message (established SAs).
    last_seen: Instant,
    choice: P1Choice,
    sai_b: Vec<u8>,
    nat_t: Option<NatT>,
    dh: Secret,
    gxi: Vec<u8>,
    gxr: Vec<u8>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    keys: Option<P1Keys>,
    /// The phase-1 exchange's running IV.
    iv: [u8; 16],
    /// The last phase-1 CBC output block, the base of phase-2 IVs.
    p1_iv: [u8; 16],
    peer_behind_nat: bool,
    local_behind_nat: bool,
    /// IDii_b.
    idi: Vec<u8>,
    last_in: Vec<u8>,
    last_out: Vec<u8>,
    quick: HashMap<u32, Quick>,
    info_seen: VecDeque<u32>,
}

impl Phase1 {
    fn cookies(&self) -> [u8; 16] {
        let mut c = [0u8; 16];
        c[..8].copy_from_slice(&self.icookie);
        c[8..].copy_from_slice(&self.rcookie);
        c
    }
    fn established(&self) -> bool {
        self.state == P1State::Established
    }
    fn hash(&self) -> HashAlg {
        self.choice.hash
    }
}

struct Child {
    parent: [u8; 16],
    peer_id: Vec<u8>,
    peer: SocketAddr,
    outbound_spi: u32,
    deadline: Instant,
}

/// The IKEv1 responder: every phase-1 and child SA of every peer.
pub struct Responder {
    config: Config,
    rng: ChaCha20Rng,
    sas: HashMap<[u8; 16], Phase1>,
    /// (peer, initiator cookie) -> responder cookie, to spot retransmitted first messages.
    initiations: HashMap<(SocketAddr, [u8; 8]), [u8; 8]>,
    half_open_by_ip: HashMap<IpAddr, usize>,
    half_open: usize,
    children: HashMap<u32, Child>,
    /// Inbound SPIs in use: children and quick modes in progress.
    spis: HashSet<u32>,
    dropped: Dropped,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("phase1_sas", &self.sas.len())
            .field("half_open", &self.half_open)
            .field("children", &self.children.len())
            .field("dropped", &self.dropped)
            .finish()
    }
}

fn transmit(out: &mut Vec<Event>, local: SocketAddr, peer: SocketAddr, msg: &[u8]) {
    let mut datagram = Vec::with_capacity(msg.len() + 4);
    if local.port() == 4500 {
        datagram.extend_from_slice(&[0; 4]);
    }
    datagram.extend_from_slice(msg);
    out.push(Event::Transmit {
        local,
        peer,
        datagram,
    });
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// RFC 3947's NAT-D: HASH(CKY-I | CKY-R | IP | Port).
fn natd_hash(hash: HashAlg, cookies: &[u8; 16], addr: SocketAddr) -> Vec<u8> {
    hash.hash(&[cookies, &ip_bytes(addr.ip()), &addr.port().to_be_bytes()])
}

/// A message: header with `next` = the first payload's type, then the payload chain, which
/// is encrypted (padded per RFC 2409 5.3) when `cipher` is given, updating the IV.
fn message(
    icookie: [u8; 8],
    rcookie: [u8; 8],
    exchange: u8,
    mid: u32,
    items: &[(u8, &[u8])],
    cipher: Option<(&Aes, &mut [u8; 16])>,
) -> Vec<u8> {
    let mut body = chain(items);
    let mut flags = 0;
    if let Some((aes, iv)) = cipher {
        flags = FLAG_ENCRYPTED;
        let pad = 16 - body.len() % 16;
        body.resize(body.len() + pad, 0);
        let last = body.len() - 1;
        body[last] = (pad - 1) as u8;
        *iv = aes.cbc_encrypt(iv, &mut body);
    }
    let header = Header {
        icookie,
        rcookie,
        next: items.first().map_or(P_NONE, |i| i.0),
        version: 0x10,
        exchange,
        flags,
        mid,
        length: (HDR_LEN + body.len()) as u32,
    };
    let mut out = Vec::with_capacity(HDR_LEN + body.len());
    header.write(&mut out);
    out.extend_from_slice(&body);
    out
}

/// Decrypts a message's body: the plaintext and the last ciphertext block.
fn open(aes: &Aes, iv: &[u8; 16], msg: &[u8]) -> Option<(Vec<u8>, [u8; 16])> {
    let body = &msg[HDR_LEN..];
    if body.is_empty() || !body.len().is_multiple_of(16) {
        return None;
    }
    let mut plain = body.to_vec();
    let last = aes.cbc_decrypt(iv, &mut plain);
    Some((plain, last))
}

fn find<'a>(ps: &[Payload<'a>], kind: u8) -> Option<&'a [u8]> {
    ps.iter().find(|p| p.kind == kind).map(|p| p.body)
}

fn all<'a>(ps: &[Payload<'a>], kind: u8) -> Vec<&'a [u8]> {
    ps.iter()
        .filter(|p| p.kind == kind)
        .map(|p| p.body)
        .collect()
}

fn enc_name(v: Option<u64>) -> String {
    match v {
        Some(1) => "DES".into(),
        Some(5) => "3DES".into(),
        Some(7) => "AES-CBC".into(),
        Some(v) => format!("cipher#{v}"),
        None => "cipher?".into(),
    }
}

/// A phase-1 transform's attributes, checked: the choice, or a description of the offer.
fn phase1_transform(prop: &Proposal<'_>, t: &Transform<'_>) -> Result<P1Choice, String> {
    let (mut enc, mut hash, mut auth, mut group, mut key_len) = (None, None, None, None, None);
    let (mut life_type, mut lifetime, mut unknown) = (None, None, false);
    for (kind, value) in &t.attrs {
        let n = value.number();
        match kind {
            1 => enc = n,
            2 => hash = n,
            3 => auth = n,
            4 => group = n,
            11 => life_type = n,
            12 if life_type == Some(1) => lifetime = n,
            12 => {}
            14 => key_len = n,
            _ => unknown = true,
        }
    }
    let describe = || {
        let h = hash.and_then(HashAlg::from_attr).map_or_else(
            || format!("hash#{}", hash.unwrap_or(0)),
            |h| h.name().to_string(),
        );
        let a = match auth {
            Some(1) => "PSK".to_string(),
            Some(v) => format!("auth#{v}"),
            None => "auth?".into(),
        };
        let mut e = enc_name(enc);
        if let Some(k) = key_len {
            e = format!("{e}-{k}");
        }
        format!("{e}/{h}/{a}/group{}", group.unwrap_or(0))
    };
    let key_len = key_len.unwrap_or(128);
    let ok = t.id == 1
        && prop.protocol == PROTO_ISAKMP
        && !unknown
        && enc == Some(7)
        && matches!(key_len, 128 | 192 | 256)
        && auth == Some(1);
    match (
        ok,
        hash.and_then(HashAlg::from_attr),
        group.and_then(Group::from_id),
    ) {
        (true, Some(hash), Some(group)) => Ok(P1Choice {
            proposal: prop.number,
            spi: prop.spi.to_vec(),
            transform: t.body.to_vec(),
            key_len: key_len as usize / 8,
            hash,
            group,
            lifetime,
        }),
        _ => Err(describe()),
    }
}

/// The first acceptable phase-1 transform (in aggressive mode, of the group `ke_len` fits).
fn choose_phase1(sa: &Sa<'_>, ke_len: Option<usize>) -> Result<P1Choice, String> {
    let mut offered = Vec::new();
    for prop in &sa.proposals {
        for t in &prop.transforms {
            match phase1_transform(prop, t) {
                Ok(c) if ke_len.is_none_or(|l| l == c.group.len()) => return Ok(c),
                Ok(c) => offered.push(c.describe()),
                Err(d) => offered.push(d),
            }
        }
    }
    Err(offered.join(", "))
}

#[derive(Clone, Copy)]
enum EspAlg {
    Cbc { key: usize, integ: u64 },
    Gcm { key: usize },
}

/// The quick-mode transform chosen.
struct EspChoice {
    proposal: u8,
    peer_spi: u32,
    transform: Vec<u8>,
    alg: EspAlg,
    encap: Encap,
    lifetime: Option<u64>,
    group: Option<Group>,
}

fn esp_transform(prop: &Proposal<'_>, t: &Transform<'_>) -> Result<EspChoice, String> {
    let (mut life_type, mut lifetime, mut group, mut encap, mut auth, mut key_len) =
        (None, None, None, None, None, None);
    let mut bad = false;
    for (kind, value) in &t.attrs {
        let n = value.number();
        match kind {
            1 => life_type = n,
            2 if life_type == Some(1) => lifetime = n,
            2 => {}
            3 => group = n,
            4 => encap = n,
            5 => auth = n,
            6 => key_len = n,
            _ => bad = true,
        }
    }
    let name = match t.id {
        3 => "3DES".to_string(),
        12 => "AES-CBC".into(),
        20 => "AES-GCM-16".into(),
        v => format!("esp#{v}"),
    };
    let auth_name = match auth {
        None => "none".to_string(),
        Some(2) => "HMAC-SHA1".into(),
        Some(5) => "HMAC-SHA2-256".into(),
        Some(6) => "HMAC-SHA2-384".into(),
        Some(7) => "HMAC-SHA2-512".into(),
        Some(v) => format!("auth#{v}"),
    };
    let describe = format!(
        "{name}-{}/{auth_name}/mode{}",
        key_len.unwrap_or(0),
        encap.unwrap_or(0)
    );
    let key = key_len.unwrap_or(128);
    let encap = match encap {
        None | Some(2) => Some(Encap::Esp),
        Some(4) | Some(61444) => Some(Encap::Udp),
        _ => None,
    };
    let alg = match (t.id, auth) {
        (12, Some(a @ (2 | 5 | 6 | 7))) => Some(EspAlg::Cbc {
            key: key as usize / 8,
            integ: a,
        }),
        (20, None) => Some(EspAlg::Gcm {
            key: key as usize / 8,
        }),
        _ => None,
    };
    let group_ok = group.is_none_or(|g| Group::from_id(g).is_some());
    match (alg, encap) {
        (Some(alg), Some(encap))
            if !bad
                && group_ok
                && matches!(key, 128 | 192 | 256)
                && prop.protocol == PROTO_ESP
                && prop.spi.len() == 4 =>
        {
            Ok(EspChoice {
                proposal: prop.number,
                peer_spi: u32::from_be_bytes([prop.spi[0], prop.spi[1], prop.spi[2], prop.spi[3]]),
                transform: t.body.to_vec(),
                alg,
                encap,
                lifetime,
                group: group.and_then(Group::from_id),
            })
        }
        _ => Err(describe),
    }
}

/// The first acceptable ESP transform of a proposal that is ESP alone (RFC 2408 4.2: the
/// proposals sharing a number are taken together; we do ESP only).
fn choose_esp(sa: &Sa<'_>, pfs: bool) -> Result<EspChoice, String> {
    let mut offered = Vec::new();
    for prop in &sa.proposals {
        let together = sa
            .proposals
            .iter()
            .filter(|p| p.number == prop.number)
            .count();
        for t in &prop.transforms {
            match esp_transform(prop, t) {
                Ok(c) if together == 1 && c.group.is_some() == pfs => return Ok(c),
                Ok(_) if together != 1 => offered.push("bundle with AH/IPComp".to_string()),
                Ok(_) => offered.push("PFS group without KE (or KE without group)".to_string()),
                Err(d) => offered.push(d),
            }
        }
    }
    Err(offered.join(", "))
}

fn integ_len(id: u64) -> usize {
    match id {
        2 => 20,
        5 => 32,
        6 => 48,
        _ => 64,
    }
}

/// One direction's ESP keys out of KEYMAT.
fn esp_keys(alg: EspAlg, spi: u32, keymat: &[u8]) -> EspKeys {
    match alg {
        EspAlg::Cbc { key, integ } => {
            let (k, i) = keymat.split_at(key);
            let i = i.to_vec();
            EspKeys {
                spi,
                cipher: EspCipher::AesCbc { key: k.to_vec() },
                integ: match integ {
                    2 => EspInteg::HmacSha1_96 { key: i },
                    5 => EspInteg::HmacSha256_128 { key: i },
                    6 => EspInteg::HmacSha384_192 { key: i },
                    _ => EspInteg::HmacSha512_256 { key: i },
                },
            }
        }
        EspAlg::Gcm { key } => {
            let mut salt = [0u8; 4];
            salt.copy_from_slice(&keymat[key..key + 4]);
            EspKeys {
                spi,
                cipher: EspCipher::AesGcm16 {
                    key: keymat[..key].to_vec(),
                    salt,
                },
                integ: EspInteg::None,
            }
        }
    }
}

impl EspAlg {
    fn keymat_len(self) -> usize {
        match self {
            EspAlg::Cbc { key, integ } => key + integ_len(integ),
            EspAlg::Gcm { key } => key + 4,
        }
    }
}

enum Outcome {
    Keep,
    Drop,
}

impl Responder {
    /// A responder with `config`, its randomness (cookies, nonces, DH exponents, SPIs) drawn
    /// from ChaCha20 seeded with `seed`, which must be secret and fresh.
    pub fn new(config: Config, seed: [u8; 32]) -> Responder {
        Responder {
            config,
            rng: ChaCha20Rng::from_seed(seed),
            sas: HashMap::new(),
            initiations: HashMap::new(),
            half_open_by_ip: HashMap::new(),
            half_open: 0,
            children: HashMap::new(),
            spis: HashSet::new(),
            dropped: Dropped::default(),
        }
    }

    /// Replaces the pre-shared key for negotiations from now on.
    pub fn set_psk(&mut self, psk: &[u8]) {
        self.config.psk = psk.to_vec();
    }

    /// The counters of dropped messages.
    pub fn dropped(&self) -> Dropped {
        self.dropped
    }

    /// The phase-1 SAs, half-open and established.
    pub fn phase1_sas(&self) -> Vec<Phase1Info> {
        self.sas
            .values()
            .map(|s| Phase1Info {
                peer: s.peer,
                local: s.local,
                established: s.established(),
                aggressive: s.aggressive,
                nat_t: s.nat_t.is_some(),
                peer_behind_nat: s.peer_behind_nat,
                local_behind_nat: s.local_behind_nat,
                proposal: s.choice.describe(),
            })
            .collect()
    }

    /// The inbound SPIs of the child SAs up.
    pub fn child_spis(&self) -> Vec<u32> {
        self.children.keys().copied().collect()
    }

    fn random<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.rng.fill_bytes(&mut b);
        b
    }

    fn random_mid(&mut self) -> u32 {
        loop {
            let m = self.rng.next_u32();
            if m != 0 {
                return m;
            }
        }
    }

    /// A fresh inbound SPI: not reserved (0-255) and unique among ours.
    fn new_spi(&mut self) -> u32 {
        loop {
            let s = self.rng.next_u32();
            if s > 255 && self.spis.insert(s) {
                return s;
            }
        }
    }

    /// One IKE message from `peer` to `local` (port 500, or 4500 with the non-ESP marker
    /// already removed).
    pub fn handle(
        &mut self,
        now: Instant,
        local: SocketAddr,
        peer: SocketAddr,
        message: &[u8],
        out: &mut Vec<Event>,
    ) {
        let Some(h) = Header::parse(message) else {
            self.dropped.malformed += 1;
            return;
        };
        if h.rcookie == [0; 8] {
            if h.mid != 0 || h.flags & FLAG_ENCRYPTED != 0 || h.icookie == [0; 8] {
                self.dropped.malformed += 1;
                return;
            }
            match h.exchange {
                EXCH_MAIN | EXCH_AGGRESSIVE => self.initiation(now, local, peer, &h, message, out),
                _ => self.dropped.unexpected += 1,
            }
            return;
        }
        let key = h.cookies();
        let Some(mut sa) = self.sas.remove(&key) else {
            self.dropped.unknown_sa += 1;
            return;
        };
        match self.process(now, &mut sa, &h, local, peer, message, out) {
            Outcome::Keep => {
                self.sas.insert(key, sa);
            }
            Outcome::Drop => self.forget(sa),
        }
    }

    /// Releases what an SA held (it is already out of the map). Its children stay.
    fn forget(&mut self, sa: Phase1) {
        self.initiations.remove(&(sa.init_peer, sa.icookie));
        if !sa.established() {
            self.release_half_open(sa.init_peer.ip());
        }
        for q in sa.quick.values() {
            if let Some(c) = &q.pending {
                self.spis.remove(&c.inbound.spi);
            }
        }
    }

    fn release_half_open(&mut self, ip: IpAddr) {
        self.half_open = self.half_open.saturating_sub(1);
        if let Some(n) = self.half_open_by_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.half_open_by_ip.remove(&ip);
            }
        }
    }

    /// A first message (responder cookie zero): a retransmission, or a new phase-1 SA.
    fn initiation(
        &mut self,
        now: Instant,
        local: SocketAddr,
        peer: SocketAddr,
        h: &Header,
        msg: &[u8],
        out: &mut Vec<Event>,
    ) {
        if let Some(rc) = self.initiations.get(&(peer, h.icookie)) {
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&h.icookie);
            key[8..].copy_from_slice(rc);
            self.dropped.retransmit += 1;
            if let Some(sa) = self.sas.get(&key) {
                if sa.last_in.len() == msg.len() && sa.last_in == msg && !sa.last_out.is_empty() {
                    transmit(out, sa.local, sa.peer, &sa.last_out);
                }
            }
            return;
        }
        // before any parsing: a flood from one address costs no more than this
        let per_ip = self.half_open_by_ip.get(&peer.ip()).copied().unwrap_or(0);
        if per_ip >= self.config.max_half_open_per_ip || self.half_open >= self.config.max_half_open
        {
            self.dropped.flood += 1;
            return;
        }
        let Some(ps) = payloads(h.next, &msg[HDR_LEN..]) else {
            self.dropped.malformed += 1;
            return;
        };
        let Some(sai) = find(&ps, P_SA) else {
            self.dropped.malformed += 1;
            return;
        };
        let Some(sa_offer) = Sa::parse(sai) else {
            self.dropped.malformed += 1;
            return;
        };
        let aggressive = h.exchange == EXCH_AGGRESSIVE;
        if aggressive && !self.config.aggressive_mode {
            self.dropped.unexpected += 1;
            return;
        }
        let ke = find(&ps, P_KE);
        let ni = find(&ps, P_NONCE);
        let idi = find(&ps, P_ID);
        if aggressive
            && (ke.is_none_or(|k| k.is_empty())
                || ni.is_none_or(|n| n.len() < 8 || n.len() > 256)
                || idi.is_none_or(|i| i.len() < 4))
        {
            self.dropped.malformed += 1;
            return;
        }
        let choice = match choose_phase1(&sa_offer, ke.filter(|_| aggressive).map(<[u8]>::len)) {
            Ok(c) => c,
            Err(offered) => {
                self.dropped.no_proposal_chosen += 1;
                out.push(Event::Refused {
                    peer,
                    reason: format!("no acceptable phase-1 proposal (offered: {offered})"),
                });
                let n = notify_body(PROTO_ISAKMP, N_NO_PROPOSAL_CHOSEN, &[], &[]);
                let m = message(h.icookie, [0; 8], EXCH_INFO, 0, &[(P_NOTIFY, &n)], None);
                transmit(out, local, peer, &m);
                return;
            }
        };
        let rcookie = loop {
            let c: [u8; 8] = self.random();
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&h.icookie);
            key[8..].copy_from_slice(&c);
            if c != [0; 8] && !self.sas.contains_key(&key) {
                break c;
            }
        };
        let vids = all(&ps, P_VID);
        let nat_t = NatT::from_vids(&vids);
        let dh: [u8; 32] = self.random();
        let mut sa = Phase1 {
            icookie: h.icookie,
            rcookie,
            init_peer: peer,
            local,
            peer,
            aggressive,
            state: P1State::MmSaSent,
            deadline: now + self.config.half_open_timeout,
            last_seen: now,
            choice,
            sai_b: sai.to_vec(),
            nat_t,
            dh: Secret(dh.to_vec()),
            gxi: Vec::new(),
            gxr: Vec::new(),
            ni: Vec::new(),
            nr: Vec::new(),
            keys: None,
            iv: [0; 16],
            p1_iv: [0; 16],
            peer_behind_nat: false,
            local_behind_nat: false,
            idi: Vec::new(),
            last_in: msg.to_vec(),
            last_out: Vec::new(),
            quick: HashMap::new(),
            info_seen: VecDeque::new(),
        };
        let sa_reply = sa_body(
            sa.choice.proposal,
            PROTO_ISAKMP,
            &sa.choice.spi,
            &sa.choice.transform,
        );
        let mut vid_out: Vec<[u8; 16]> = Vec::new();
        if let Some(n) = nat_t {
            vid_out.push(n.vid());
        }
        vid_out.push(VID_DPD);
        if aggressive {
            let (Some(ke), Some(ni), Some(idi)) = (ke, ni, idi) else {
                return;
            };
            let gxr = sa.choice.group.public(&dh);
            let Some(gxy) = sa.choice.group.shared(&dh, ke) else {
                self.dropped.malformed += 1;
                return;
            };
            sa.gxi = ke.to_vec();
            sa.gxr = gxr;
            sa.ni = ni.to_vec();
            sa.nr = self.random::<32>().to_vec();
            sa.idi = idi.to_vec();
            self.derive(&mut sa, &gxy);
            let idr = id_body(local.ip());
            let hash_r = self.hash_r(&sa, &idr);
            sa.state = P1State::AmSent;
            let cookies = sa.cookies();
            let mut items: Vec<(u8, &[u8])> = vec![
                (P_SA, &sa_reply),
                (P_KE, &sa.gxr),
                (P_NONCE, &sa.nr),
                (P_ID, &idr),
                (P_HASH, &hash_r),
            ];
            for v in &vid_out {
                items.push((P_VID, v));
            }
            let natd = nat_t.map(|n| {
                (
                    n.natd(),
                    natd_hash(sa.hash(), &cookies, peer),
                    natd_hash(sa.hash(), &cookies, local),
                )
            });
            if let Some((t, d1, d2)) = &natd {
                items.push((*t, d1));
                items.push((*t, d2));
            }
            sa.last_out = message(h.icookie, rcookie, EXCH_AGGRESSIVE, 0, &items, None);
        } else {
            let mut items: Vec<(u8, &[u8])> = vec![(P_SA, &sa_reply)];
            for v in &vid_out {
                items.push((P_VID, v));
            }
            sa.last_out = message(h.icookie, rcookie, EXCH_MAIN, 0, &items, None);
        }
        transmit(out, local, peer, &sa.last_out);
        *self.half_open_by_ip.entry(peer.ip()).or_insert(0) += 1;
        self.half_open += 1;
        self.initiations.insert((peer, h.icookie), rcookie);
        self.sas.insert(sa.cookies(), sa);
    }

    /// SKEYID and its offspring, the phase-1 cipher and its first IV (RFC 2409 5, B).
    fn derive(&self, sa: &mut Phase1, gxy: &[u8]) {
        let hash = sa.hash();
        let (ci, cr) = (&sa.icookie[..], &sa.rcookie[..]);
        let skeyid = Secret(hash.prf(&self.config.psk, &[&sa.ni, &sa.nr]));
        let d = Secret(hash.prf(&skeyid, &[gxy, ci, cr, &[0]]));
        let a = Secret(hash.prf(&skeyid, &[&d, gxy, ci, cr, &[1]]));
        let e = Secret(hash.prf(&skeyid, &[&a, gxy, ci, cr, &[2]]));
        let key = phase1_key(hash, &e, sa.choice.key_len);
        let cipher = Aes::new(&key).expect("16, 24 or 32 byte key");
        sa.iv = iv_from(hash, &[&sa.gxi, &sa.gxr]);
        sa.keys = Some(P1Keys {
            skeyid,
            d,
            a,
            cipher,
        });
    }

    fn hash_r(&self, sa: &Phase1, idr: &[u8]) -> Vec<u8> {
        let keys = sa.keys.as_ref().expect("keys derived");
        sa.hash().prf(
            &keys.skeyid,
            &[&sa.gxr, &sa.gxi, &sa.rcookie, &sa.icookie, &sa.sai_b, idr],
        )
    }

    fn hash_i(&self, sa: &Phase1, idi: &[u8]) -> Vec<u8> {
        let keys = sa.keys.as_ref().expect("keys derived");
        sa.hash().prf(
            &keys.skeyid,
            &[&sa.gxi, &sa.gxr, &sa.icookie, &sa.rcookie, &sa.sai_b, idi],
        )
    }

    /// Compares the peer's NAT-D hashes (first: ours as it sees us; then its own) with the
    /// addresses we see.
    fn nat_detect(sa: &mut Phase1, natds: &[&[u8]], local: SocketAddr, peer: SocketAddr) {
        if sa.nat_t.is_none() || natds.len() < 2 {
            return;
        }
        let cookies = sa.cookies();
        let ours = natd_hash(sa.hash(), &cookies, local);
        let theirs = natd_hash(sa.hash(), &cookies, peer);
        sa.local_behind_nat = !ct_eq(natds[0], &ours);
        sa.peer_behind_nat = !natds[1..].iter().any(|d| ct_eq(d, &theirs));
    }

    fn refuse_auth(&mut self, peer: SocketAddr, out: &mut Vec<Event>) -> Outcome {
        self.dropped.auth_failed += 1;
        out.push(Event::Refused {
            peer,
            reason: "pre-shared key mismatch (HASH_I did not verify)".into(),
        });
        Outcome::Drop
    }

    fn established(&mut self, now: Instant, sa: &mut Phase1) {
        sa.state = P1State::Established;
        sa.p1_iv = sa.iv;
        let life = sa
            .choice
            .lifetime
            .filter(|&l| l > 0)
            .map_or(self.config.phase1_lifetime, Duration::from_secs)
            .min(self.config.phase1_max_lifetime);
        sa.deadline = now + life;
        sa.last_seen = now;
        self.release_half_open(sa.init_peer.ip());
        self.initiations.remove(&(sa.init_peer, sa.icookie));
    }

    #[allow(clippy::too_many_arguments)]
    fn process(
        &mut self,
        now: Instant,
        sa: &mut Phase1,
        h: &Header,
        local: SocketAddr,
        peer: SocketAddr,
        msg: &[u8],
        out: &mut Vec<Event>,
    ) -> Outcome {
        if sa.last_in == msg {
            self.dropped.retransmit += 1;
            if !sa.last_out.is_empty() {
                transmit(out, local, peer, &sa.last_out);
            }
            return Outcome::Keep;
        }
        match (h.exchange, sa.state) {
            (EXCH_MAIN, P1State::MmSaSent) if h.mid == 0 => {
                self.main_3(sa, h, local, peer, msg, out)
            }
            (EXCH_MAIN, P1State::MmKeSent) if h.mid == 0 => {
                self.main_5(now, sa, h, local, peer, msg, out)
            }
            (EXCH_AGGRESSIVE, P1State::AmSent) if h.mid == 0 => {
                self.aggressive_3(now, sa, h, local, peer, msg, out)
            }
            (EXCH_QUICK, P1State::Established) if h.mid != 0 => {
                self.quick(now, sa, h, local, peer, msg, out)
            }
            (EXCH_INFO, _) => self.informational(now, sa, h, local, peer, msg, out),
            _ => {
                self.dropped.unexpected += 1;
                Outcome::Keep
            }
        }
    }

    fn main_3(
        &mut self,
        sa: &mut Phase1,
        h: &Header,
        local: SocketAddr,
        peer: SocketAddr,
        msg: &[u8],
        out: &mut Vec<Event>,
    ) -> Outcome {
        let ps = payloads(h.next, &msg[HDR_LEN..]);
        let parts = ps.as_ref().and_then(|ps| {
            let ke = find(ps, P_KE)?;
            let ni = find(ps, P_NONCE).filter(|n| n.len() >= 8 && n.len() <= 256)?;
            Some((ke, ni))
        });
        let (Some(ps), Some((ke, ni))) = (&ps, parts) else {
            self.dropped.malformed += 1;
            return Outcome::Keep;
        };
        if h.flags & FLAG_ENCRYPTED != 0 {
            self.dropped.malformed += 1;
            return Outcome::Keep;
        }
        let dh: [u8; 32] = sa.dh.0[..].try_into().expect("32 bytes");
        let Some(gxy) = sa.choice.group.shared(&dh, ke) else {
            self.dropped.malformed += 1;
            return Outcome::Keep;
        };
        sa.gxi = ke.to_vec();
        sa.gxr = sa.choice.group.public(&dh);
        sa.ni = ni.to_vec();
        sa.nr = self.random::<32>().to_vec();
        self.derive(sa, &gxy);
        let natds = sa.nat_t.map(|n| all(ps, n.natd())).unwrap_or_default();
        Self::nat_detect(sa, &natds, local, peer);
        let cookies = sa.cookies();
        let mut items: Vec<(u8, &[u8])> = vec![(P_KE, &sa.gxr), (P_NONCE, &sa.nr)];
        let natd = sa.nat_t.map(|n| {
            (
                n.natd(),
                natd_hash(sa.hash(), &cookies, peer),
                natd_hash(sa.hash(), &cookies, local),
            )
        });
        if let Some((t, d1, d2)) = &natd {
            items.push((*t, d1));
            items.push((*t, d2));
        }
        let reply = message(sa.icookie, sa.rcookie, EXCH_MAIN, 0, &items, None);
        sa.state = P1State::MmKeSent;
        sa.peer = peer;
        sa.local = local;
        sa.last_in = msg.to_vec();
        sa.last_out = reply;
        transmit(out, local, peer, &sa.last_out);
        Outcome::Keep
    }

    #[allow(clippy::too_many_arguments)]
    fn main_5(
        &mut self,
        now: Instant,
        sa: &mut Phase1,
        h: &Header,
        local: SocketAddr,
        peer: SocketAddr,
        msg: &[u8],
        out: &mut Vec<Event>,
    ) -> Outcome {
        let keys = sa.keys.as_ref().expect("keys after message 3");
        if h.flags & FLAG_ENCRYPTED == 0 {
            self.dropped.malformed += 1;
            return Outcome::Keep;
        }
        let Some((plain, last)) = open(&keys.cipher, &sa.iv, msg) else {
            self.dropped.malformed += 1;
            return Outcome::Keep;
        };
        let Some(ps) = payloads(h.next, &plain) else {
            return self.refuse_auth(peer, out);
        };
        let (Some(idi), Some(hash)) = (find(&ps, P_ID), find(&ps, P_HASH)) else {
            return self.refuse_auth(peer, out);
        };
        if !ct_eq(hash, &self.hash_i(sa, idi)) {
            return self.refuse_auth(peer, out);
        }
        sa.iv = last;
        sa.idi = idi.to_vec();
        sa.peer = peer;
        sa.local = local;
        let idr = id_body(local.ip());
        let hash_r = self.hash_r(sa, &idr);
        let keys = sa.keys.as_ref().expect("keys");
        let reply = message(
            sa.icookie,
            sa.rcookie,
            EXCH_MAIN,
            0,
            &[(P_ID, &idr), (P_HASH, &hash_r)],
            Some((&keys.cipher, &mut sa.iv)),
        );
        sa.last_in = msg.to_vec();
        sa.last_out = reply;
        transmit(out, local, peer, &sa.last_out);
        self.established(now, sa);
        if Self::has_initial_contact(&ps) {
            self.initial_contact(sa, out);
        }
        Outcome::Keep
    }

    #[allow(clippy::too_many_arguments)]
    fn aggressive_3(
        &mut self,
        now: Instant,
        sa: &mut Phase1,
        h: &Header,
        local: SocketAddr,
        peer: SocketAddr,
        msg: &[u8],
        out: &mut Vec<Event>,
    ) -> Outcome {
        let keys = sa.keys.as_ref().expect("keys after message 1");
        let (plain, iv) = if h.flags & FLAG_ENCRYPTED != 0 {
            let Some(p) = open(&keys.cipher, &sa.iv, msg) else {
                self.dropped.malformed += 1;
                return Outcome::Keep;
            };
            p
        } else {
            (msg[HDR_LEN..].to_vec(), sa.iv)
        };
        let ps = payloads(h.next, &plain);
        let Some(hash) = ps.as_ref().and_then(|ps| find(ps, P_HASH)) else {
            if h.flags & FLAG_ENCRYPTED != 0 {
                return self.refuse_auth(peer, out);
            }
            self.dropped.malformed += 1;
            return Outcome::Keep;
        };
        let ps = ps.as_ref().expect("parsed");
        if !ct_eq(hash, &self.hash_i(sa, &sa.idi)) {
            return self.refuse_auth(peer, out);
        }
        sa.iv = iv;
        let natds = sa.nat_t.map(|n| all(ps, n.natd())).unwrap_or_default();
        Self::nat_detect(sa, &natds, local, peer);
        sa.peer = peer;
        sa.local = local;
        sa.last_in = msg.to_vec();
        sa.last_out = Vec::new();
        self.established(now, sa);
        if Self::has_initial_contact(ps) {
            self.initial_contact(sa, out);
        }
        Outcome::Keep
    }

    fn has_initial_contact(ps: &[Payload<'_>]) -> bool {
        all(ps, P_NOTIFY)
            .iter()
            .filter_map(|b| Notify::parse(b))
            .any(|n| n.kind == N_INITIAL_CONTACT)
    }

    /// INITIAL-CONTACT: the peer (same IP, same identity) starts afresh; its older phase-1
    /// SAs and their children go.
    fn initial_contact(&mut self, sa: &Phase1, out: &mut Vec<Event>) {
        let current = sa.cookies();
        let old: Vec<[u8; 16]> = self
            .sas
            .iter()
            .filter(|(k, s)| {
                **k != current && s.established() && s.peer.ip() == sa.peer.ip() && s.idi == sa.idi
            })
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            if let Some(s) = self.sas.remove(&k) {
                self.forget(s);
            }
        }
        let gone: Vec<u32> = self
            .children
            .iter()
            .filter(|(_, c)| {
                c.parent != current && c.peer.ip() == sa.peer.ip() && c.peer_id == sa.idi
            })
            .map(|(s, _)| *s)
            .collect();
        for spi in gone {
            self.remove_child(spi, out);
        }
    }

    fn remove_child(&mut self, spi: u32, out: &mut Vec<Event>) {
        if let Some(c) = self.children.remove(&spi) {
            self.spis.remove(&spi);
            out.push(Event::ChildDown {
                peer: c.peer,
                inbound_spi: spi,
            });
        }
    }

    /// Decrypts a phase-2 message with `iv` and checks that it starts with a HASH payload:
    /// the payloads, the hash, the bytes it covers, and the last ciphertext block.
    fn open_phase2(
        sa: &Phase1,
        iv: &[u8; 16],
        h: &Header,
        msg: &[u8],
    ) -> Option<(Vec<u8>, [u8; 16])> {
        if h.flags & FLAG_ENCRYPTED == 0 {
            return None;
        }
        let keys = sa.keys.as_ref()?;
        open(&keys.cipher, iv, msg)
    }

    /// The HASH payload first, then the bytes after it up to the end of the last payload.
    fn split_hash<'a>(ps: &[Payload<'a>], plain: &'a [u8]) -> Option<(&'a [u8], &'a [u8])> {
        let first = ps.first().filter(|p| p.kind == P_HASH)?;
        let end = ps.last()?.end;
        Some((first.body, &plain[first.end..end]))
    }

    #[allow(clippy::too_many_arguments)]
    fn quick(
        &mut self,
        now: Instant,
        sa: &mut Phase1,
        h: &Header,
        local: SocketAddr,
        peer: SocketAddr,
        msg: &[u8],
        out: &mut Vec<Event>,
    ) -> Outcome {
        let hash = sa.hash();
        let mid = h.mid.to_be_bytes();
        let skeyid_a = sa.keys.as_ref().expect("established").a.clone();
        if let Some(q) = sa.quick.get_mut(&h.mid) {
            if q.msg1 == msg {
                self.dropped.retransmit += 1;
                transmit(out, local, peer, &q.reply);
                return Outcome::Keep;
            }
            if q.pending.is_none() {
                self.dropped.retransmit += 1;
                return Outcome::Keep;
            }
            let iv = q.iv;
            let Some((plain, _)) = Self::open_phase2(sa, &iv, h, msg) else {
                self.dropped.malformed += 1;
                return Outcome::Keep;
            };
            let q = sa.quick.get_mut(&h.mid).expect("present");
            let ok = payloads(h.next, &plain)
                .and_then(|ps| {
                    ps.first()
                        .filter(|p| p.kind == P_HASH)
                        .map(|p| p.body.to_vec())
                })
                .is_some_and(|got| ct_eq(&got, &hash.prf(&skeyid_a, &[&[0], &mid, &q.ni, &q.nr])));
            if !ok {
                self.dropped.bad_hash += 1;
                return Outcome::Keep;
            }
            let child = q.pending.take().expect("pending");
            sa.last_seen = now;
            sa.peer = peer;
            sa.local = local;
            let child_peer = match child.encap {
                Encap::Udp if local.port() != 4500 => SocketAddr::new(peer.ip(), 4500),
                _ => peer,
            };
            let life = child.lifetime;
            self.children.insert(
                child.inbound.spi,
                Child {
                    parent: sa.cookies(),
                    peer_id: sa.idi.clone(),
                    peer: child_peer,
                    outbound_spi: child.outbound.spi,
                    deadline: now + life,
                },
            );
            out.push(Event::ChildUp {
                local,
                peer: child_peer,
                sa: child,
            });
            return Outcome::Keep;
        }
        if sa.quick.len() >= self.config.max_quick_per_sa {
            self.dropped.flood += 1;
            return Outcome::Keep;
        }
        let iv = iv_from(hash, &[&sa.p1_iv, &mid]);
        let Some((plain, last)) = Self::open_phase2(sa, &iv, h, msg) else {
            self.dropped.malformed += 1;
            return Outcome::Keep;
        };
        let Some(ps) = payloads(h.next, &plain) else {
            self.dropped.bad_hash += 1;
            return Outcome::Keep;
        };
        let Some((got, covered)) = Self::split_hash(&ps, &plain) else {
            self.dropped.bad_hash += 1;
            return Outcome::Keep;
        };
        if !ct_eq(got, &hash.prf(&skeyid_a, &[&mid, covered])) {
            self.dropped.bad_hash += 1;
            return Outcome::Keep;
        }
        let offer = find(&ps, P_SA).and_then(Sa::parse);
        let ni = find(&ps, P_NONCE).filter(|n| n.len() >= 8 && n.len() <= 256);
        let ke = find(&ps, P_KE);
        let ids = all(&ps, P_ID);
        let (Some(offer), Some(ni)) = (offer, ni) else {
            self.dropped.malformed += 1;
            return Outcome::Keep;
        };
        if !(ids.is_empty() || ids.len() == 2) || ids.iter().any(|i| i.len() < 4) {
            self.dropped.malformed += 1;
            return Outcome::Keep;
        }
        let choice = match choose_esp(&offer, ke.is_some()) {
            Ok(c) => c,
            Err(offered) => {
                self.dropped.no_proposal_chosen += 1;
                out.push(Event::Refused {
                    peer,
                    reason: format!("no acceptable quick-mode proposal (offered: {offered})"),
                });
                return Outcome::Keep;
            }
        };
        let mut gqm = None;
        let mut ke_r = Vec::new();
        if let (Some(ke), Some(group)) = (ke, choice.group) {
            let x: [u8; 32] = self.random();
            let Some(z) = group.shared(&x, ke) else {
                self.dropped.malformed += 1;
                return Outcome::Keep;
            };
            ke_r = group.public(&x);
            gqm = Some(z);
        }
        let our_spi = self.new_spi();
        let nr = self.random::<32>().to_vec();
        let d = &sa.keys.as_ref().expect("established").d;
        let keymat = |spi: u32| {
            let spi = spi.to_be_bytes();
            let g: &[u8] = gqm.as_ref().map_or(&[], |z| &z[..]);
            let seed: [&[u8]; 5] = [g, &[PROTO_ESP], &spi, ni, &nr];
            Secret(hash.expand(d, &seed, &seed, choice.alg.keymat_len()))
        };
        let km_in = keymat(our_spi);
        let km_out = keymat(choice.peer_spi);
        // NAT-OAi: the first NAT-OA, of the RFC's type or the drafts'
        let peer_original = ps
            .iter()
            .find(|p| p.kind == P_NATOA || p.kind == P_NATOA_DRAFT)
            .and_then(|p| parse_nat_oa(p.body));
        let lifetime = choice
            .lifetime
            .filter(|&l| l > 0)
            .map_or(self.config.child_lifetime, Duration::from_secs)
            .min(self.config.child_max_lifetime);
        let child = ChildSa {
            inbound: esp_keys(choice.alg, our_spi, &km_in),
            outbound: esp_keys(choice.alg, choice.peer_spi, &km_out),
            encap: choice.encap,
            lifetime,
            peer_original,
        };
        // the reply: HASH(2), SA, Nr, [KE], [IDci, IDcr], [NAT-OA...]
        let sa_reply = sa_body(
            choice.proposal,
            PROTO_ESP,
            &our_spi.to_be_bytes(),
            &choice.transform,
        );
        let mut items: Vec<(u8, &[u8])> = vec![(P_SA, &sa_reply), (P_NONCE, &nr)];
        if gqm.is_some() {
            items.push((P_KE, &ke_r));
        }
        for id in &ids {
            items.push((P_ID, id));
        }
        let mut oas = Vec::new();
        if let IpAddr::V4(local4) = local.ip() {
            if !all(&ps, P_NATOA).is_empty() {
                if let IpAddr::V4(p4) = peer.ip() {
                    oas.push((P_NATOA, nat_oa_body(p4)));
                    oas.push((P_NATOA, nat_oa_body(local4)));
                }
            } else if !all(&ps, P_NATOA_DRAFT).is_empty() {
                oas.push((P_NATOA_DRAFT, nat_oa_body(local4)));
            }
        }
        for (t, b) in &oas {
            items.push((*t, b));
        }
        let covered = chain(&items);
        let hash2 = hash.prf(&skeyid_a, &[&mid, ni, &covered]);
        items.insert(0, (P_HASH, &hash2));
        let keys = sa.keys.as_ref().expect("established");
        let mut iv = last;
        let reply = message(
            sa.icookie,
            sa.rcookie,
            EXCH_QUICK,
            h.mid,
            &items,
            Some((&keys.cipher, &mut iv)),
        );
        transmit(out, local, peer, &reply);
        sa.peer = peer;
        sa.local = local;
        sa.last_seen = now;
        sa.quick.insert(
            h.mid,
            Quick {
                iv,
                ni: ni.to_vec(),
                nr,
                msg1: msg.to_vec(),
                reply,
                pending: Some(child),
                deadline: now + self.config.half_open_timeout,
            },
        );
        Outcome::Keep
    }

    #[allow(clippy::too_many_arguments)]
    fn informational(
        &mut self,
        now: Instant,
        sa: &mut Phase1,
        h: &Header,
        local: SocketAddr,
        peer: SocketAddr,
        msg: &[u8],
        out: &mut Vec<Event>,
    ) -> Outcome {
        if h.flags & FLAG_ENCRYPTED == 0 || !sa.established() {
            self.dropped.unauthenticated += 1;
            return Outcome::Keep;
        }
        if sa.info_seen.contains(&h.mid) {
            self.dropped.retransmit += 1;
            return Outcome::Keep;
        }
        let hash = sa.hash();
        let mid = h.mid.to_be_bytes();
        let iv = iv_from(hash, &[&sa.p1_iv, &mid]);
        let Some((plain, _)) = Self::open_phase2(sa, &iv, h, msg) else {
            self.dropped.malformed += 1;
            return Outcome::Keep;
        };
        let skeyid_a = &sa.keys.as_ref().expect("established").a;
        let verified = payloads(h.next, &plain).filter(|ps| {
            Self::split_hash(ps, &plain)
                .is_some_and(|(got, covered)| ct_eq(got, &hash.prf(skeyid_a, &[&mid, covered])))
        });
        let Some(ps) = verified else {
            self.dropped.bad_hash += 1;
            return Outcome::Keep;
        };
        sa.last_seen = now;
        sa.info_seen.push_back(h.mid);
        if sa.info_seen.len() > 64 {
            sa.info_seen.pop_front();
        }
        sa.peer = peer;
        sa.local = local;
        let mut outcome = Outcome::Keep;
        for p in &ps[1..] {
            match p.kind {
                P_NOTIFY => {
                    let Some(n) = Notify::parse(p.body) else {
                        continue;
                    };
                    match n.kind {
                        N_R_U_THERE if n.data.len() == 4 => {
                            let ack =
                                notify_body(PROTO_ISAKMP, N_R_U_THERE_ACK, &sa.cookies(), n.data);
                            self.send_info(sa, &[(P_NOTIFY, &ack)], out);
                        }
                        N_INITIAL_CONTACT => self.initial_contact(sa, out),
                        _ => {}
                    }
                }
                P_DELETE => {
                    let Some((proto, spis)) = parse_delete(p.body) else {
                        continue;
                    };
                    match proto {
                        PROTO_ESP => {
                            for spi in spis.iter().filter(|s| s.len() == 4) {
                                let spi = u32::from_be_bytes([spi[0], spi[1], spi[2], spi[3]]);
                                let ours = self
                                    .children
                                    .iter()
                                    .find(|(_, c)| {
                                        c.outbound_spi == spi && c.peer.ip() == peer.ip()
                                    })
                                    .map(|(s, _)| *s)
                                    .or_else(|| {
                                        self.children
                                            .get(&spi)
                                            .filter(|c| c.peer.ip() == peer.ip())
                                            .map(|_| spi)
                                    });
                                if let Some(s) = ours {
                                    self.remove_child(s, out);
                                }
                            }
                        }
                        PROTO_ISAKMP if spis.iter().any(|s| *s == sa.cookies()) => {
                            outcome = Outcome::Drop;
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        outcome
    }

    /// Sends an informational exchange: HASH(1), then `items`.
    fn send_info(&mut self, sa: &Phase1, items: &[(u8, &[u8])], out: &mut Vec<Event>) {
        let Some(keys) = sa.keys.as_ref() else {
            return;
        };
        let mid = self.random_mid();
        let mid_b = mid.to_be_bytes();
        let hash = sa.hash();
        let h1 = hash.prf(&keys.a, &[&mid_b, &chain(items)]);
        let mut all_items: Vec<(u8, &[u8])> = vec![(P_HASH, &h1)];
        all_items.extend_from_slice(items);
        let mut iv = iv_from(hash, &[&sa.p1_iv, &mid_b]);
        let m = message(
            sa.icookie,
            sa.rcookie,
            EXCH_INFO,
            mid,
            &all_items,
            Some((&keys.cipher, &mut iv)),
        );
        transmit(out, sa.local, sa.peer, &m);
    }

    /// Ends a child SA from our side: forgets it and tells the peer with a Delete over the
    /// phase-1 SA that made it (or another established one with the same peer). No
    /// `ChildDown` is emitted for it: the caller asked.
    pub fn delete_child(&mut self, now: Instant, inbound_spi: u32, out: &mut Vec<Event>) {
        let _ = now;
        let Some(child) = self.children.remove(&inbound_spi) else {
            return;
        };
        self.spis.remove(&inbound_spi);
        let key = if self.sas.get(&child.parent).is_some_and(Phase1::established) {
            Some(child.parent)
        } else {
            self.sas
                .iter()
                .find(|(_, s)| {
                    s.established() && s.peer.ip() == child.peer.ip() && s.idi == child.peer_id
                })
                .map(|(k, _)| *k)
        };
        if let Some(sa) = key.and_then(|k| self.sas.remove(&k)) {
            let d = delete_body(PROTO_ESP, &inbound_spi.to_be_bytes());
            self.send_info(&sa, &[(P_DELETE, &d)], out);
            self.sas.insert(sa.cookies(), sa);
        }
    }

    /// When `handle_timeout` next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = self.config.phase1_idle_timeout;
        let sas = self.sas.values().flat_map(|s| {
            let idle = s.established().then(|| s.last_seen + idle);
            std::iter::once(s.deadline)
                .chain(idle)
                .chain(s.quick.values().map(|q| q.deadline))
        });
        sas.chain(self.children.values().map(|c| c.deadline)).min()
    }

    /// Expires half-open, old and idle phase-1 SAs, unfinished quick modes and child SAs
    /// (emitting `ChildDown` for those).
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Event>) {
        let parents: HashSet<[u8; 16]> = self.children.values().map(|c| c.parent).collect();
        let idle = self.config.phase1_idle_timeout;
        let mut expired = Vec::new();
        for (k, s) in self.sas.iter_mut() {
            if s.established() && s.last_seen + idle <= now {
                if parents.contains(k) {
                    s.last_seen = now;
                } else {
                    expired.push(*k);
                    continue;
                }
            }
            if s.deadline <= now {
                expired.push(*k);
            }
        }
        for k in expired {
            if let Some(s) = self.sas.remove(&k) {
                self.forget(s);
            }
        }
        let mut freed = Vec::new();
        for s in self.sas.values_mut() {
            s.quick.retain(|_, q| {
                let keep = q.deadline > now;
                if !keep {
                    if let Some(c) = &q.pending {
                        freed.push(c.inbound.spi);
                    }
                }
                keep
            });
        }
        for spi in freed {
            self.spis.remove(&spi);
        }
        let gone: Vec<u32> = self
            .children
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(s, _)| *s)
            .collect();
        for spi in gone {
            self.remove_child(spi, out);
        }
    }
}
