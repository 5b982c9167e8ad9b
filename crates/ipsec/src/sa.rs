//! What IKE agrees and ESP uses: one child SA's keys, both directions.

use std::net::Ipv4Addr;
use std::time::Duration;

/// ESP's cipher, with its key.
#[derive(Clone, PartialEq, Eq)]
pub enum EspCipher {
    /// AES in CBC mode (RFC 3602), 16, 24 or 32 byte key, 16 byte IV on the wire.
    AesCbc { key: Vec<u8> },
    /// AES-GCM with a 16 byte ICV (RFC 4106): 16, 24 or 32 byte key, 4 byte salt, 8 byte IV.
    AesGcm16 { key: Vec<u8>, salt: [u8; 4] },
}

/// ESP's integrity check; `None` with AES-GCM.
#[derive(Clone, PartialEq, Eq)]
pub enum EspInteg {
    None,
    /// HMAC-SHA1-96 (RFC 2404): 20 byte key, 12 byte ICV.
    HmacSha1_96 {
        key: Vec<u8>,
    },
    /// HMAC-SHA-256-128 (RFC 4868): 32 byte key, 16 byte ICV.
    HmacSha256_128 {
        key: Vec<u8>,
    },
    /// HMAC-SHA-384-192: 48 byte key, 24 byte ICV.
    HmacSha384_192 {
        key: Vec<u8>,
    },
    /// HMAC-SHA-512-256: 64 byte key, 32 byte ICV.
    HmacSha512_256 {
        key: Vec<u8>,
    },
}

/// One direction of a child SA.
#[derive(Clone, PartialEq, Eq)]
pub struct EspKeys {
    /// The SPI on the wire in this direction (inbound: ours, chosen by the responder;
    /// outbound: the peer's).
    pub spi: u32,
    pub cipher: EspCipher,
    pub integ: EspInteg,
}

impl std::fmt::Debug for EspKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the keys
        write!(f, "EspKeys {{ spi: {:08x} }}", self.spi)
    }
}

/// How ESP travels to and from the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encap {
    /// IP protocol 50: there is no NAT between us.
    Esp,
    /// ESP in UDP on port 4500 (RFC 3948): a NAT was detected, or the peer asked for it.
    Udp,
}

/// A child SA agreed in quick mode: ESP in transport mode between the peer and us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildSa {
    /// Packets from the peer carry `inbound.spi`.
    pub inbound: EspKeys,
    /// Packets to the peer carry `outbound.spi`.
    pub outbound: EspKeys,
    pub encap: Encap,
    /// The lifetime agreed (seconds); the peer rekeys before it ends.
    pub lifetime: Duration,
    /// The peer's own address before its NAT (NAT-OA), when it sent one.
    pub peer_original: Option<Ipv4Addr>,
}
