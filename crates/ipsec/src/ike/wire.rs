//! ISAKMP's wire format (RFC 2408 section 3, RFC 2407 section 4, RFC 3947): the header, the
//! generic payload chain, SA / proposal / transform payloads with their data attributes, and
//! the fixed parts of ID, notification, delete and NAT-OA payloads. Parsing borrows from the
//! message and checks every length; anything inconsistent is `None`.

pub(crate) const HDR_LEN: usize = 28;

pub(crate) const EXCH_MAIN: u8 = 2;
pub(crate) const EXCH_AGGRESSIVE: u8 = 4;
pub(crate) const EXCH_INFO: u8 = 5;
pub(crate) const EXCH_QUICK: u8 = 32;

pub(crate) const FLAG_ENCRYPTED: u8 = 0x01;

pub(crate) const P_NONE: u8 = 0;
pub(crate) const P_SA: u8 = 1;
pub(crate) const P_PROPOSAL: u8 = 2;
pub(crate) const P_TRANSFORM: u8 = 3;
pub(crate) const P_KE: u8 = 4;
pub(crate) const P_ID: u8 = 5;
pub(crate) const P_HASH: u8 = 8;
pub(crate) const P_NONCE: u8 = 10;
pub(crate) const P_NOTIFY: u8 = 11;
pub(crate) const P_DELETE: u8 = 12;
pub(crate) const P_VID: u8 = 13;
pub(crate) const P_NATD: u8 = 20;
pub(crate) const P_NATOA: u8 = 21;
pub(crate) const P_NATD_DRAFT: u8 = 130;
pub(crate) const P_NATOA_DRAFT: u8 = 131;

pub(crate) const DOI_IPSEC: u32 = 1;
pub(crate) const SIT_IDENTITY_ONLY: u32 = 1;
pub(crate) const PROTO_ISAKMP: u8 = 1;
pub(crate) const PROTO_ESP: u8 = 3;

pub(crate) const ID_IPV4_ADDR: u8 = 1;
pub(crate) const ID_IPV6_ADDR: u8 = 5;

pub(crate) const N_NO_PROPOSAL_CHOSEN: u16 = 14;
pub(crate) const N_INITIAL_CONTACT: u16 = 24578;
pub(crate) const N_R_U_THERE: u16 = 36136;
pub(crate) const N_R_U_THERE_ACK: u16 = 36137;

/// The fixed ISAKMP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) icookie: [u8; 8],
    pub(crate) rcookie: [u8; 8],
    pub(crate) next: u8,
    pub(crate) version: u8,
    pub(crate) exchange: u8,
    pub(crate) flags: u8,
    pub(crate) mid: u32,
    pub(crate) length: u32,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Header {
    /// The header of a whole message: version 1.x and a length equal to the datagram's.
    pub(crate) fn parse(msg: &[u8]) -> Option<Header> {
        if msg.len() < HDR_LEN {
            return None;
        }
        let h = Header {
            icookie: msg[0..8].try_into().ok()?,
            rcookie: msg[8..16].try_into().ok()?,
            next: msg[16],
            version: msg[17],
            exchange: msg[18],
            flags: msg[19],
            mid: be32(&msg[20..24]),
            length: be32(&msg[24..28]),
        };
        if h.version >> 4 != 1 || h.length as usize != msg.len() {
            return None;
        }
        Some(h)
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.icookie);
        out.extend_from_slice(&self.rcookie);
        out.extend_from_slice(&[self.next, self.version, self.exchange, self.flags]);
        out.extend_from_slice(&self.mid.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }

    /// Both cookies, the ISAKMP SA's SPI.
    pub(crate) fn cookies(&self) -> [u8; 16] {
        let mut c = [0u8; 16];
        c[..8].copy_from_slice(&self.icookie);
        c[8..].copy_from_slice(&self.rcookie);
        c
    }
}

/// One payload of a chain: its type, its body (after the 4 byte generic header), and where
/// it ends within the chain's bytes (for the hashes over "everything after HASH").
#[derive(Clone, Copy, Debug)]
pub(crate) struct Payload<'a> {
    pub(crate) kind: u8,
    pub(crate) body: &'a [u8],
    pub(crate) end: usize,
}

/// The at most 64 payloads of a chain starting with type `first`; bytes after the last one
/// (encryption padding) are ignored. None on any length inconsistency or a nonzero RESERVED.
pub(crate) fn payloads(first: u8, data: &[u8]) -> Option<Vec<Payload<'_>>> {
    let mut out = Vec::new();
    let mut kind = first;
    let mut pos = 0;
    while kind != P_NONE {
        if out.len() == 64 || data.len() - pos < 4 {
            return None;
        }
        let next = data[pos];
        let len = be16(&data[pos + 2..]) as usize;
        if len < 4 || pos + len > data.len() {
            return None;
        }
        out.push(Payload {
            kind,
            body: &data[pos + 4..pos + len],
            end: pos + len,
        });
        pos += len;
        kind = next;
    }
    Some(out)
}

/// A chain's bytes for (type, body) items, each generic header naming the next item's type.
pub(crate) fn chain(items: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (_, body)) in items.iter().enumerate() {
        let next = items.get(i + 1).map_or(P_NONE, |n| n.0);
        out.extend_from_slice(&[next, 0]);
        out.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
        out.extend_from_slice(body);
    }
    out
}

/// A data attribute's value: TV (16 bits) or TLV (variable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttrValue<'a> {
    Basic(u16),
    Var(&'a [u8]),
}

impl AttrValue<'_> {
    /// The value as a number, when it fits 64 bits.
    pub(crate) fn number(&self) -> Option<u64> {
        match self {
            AttrValue::Basic(v) => Some(u64::from(*v)),
            AttrValue::Var(b) if !b.is_empty() && b.len() <= 8 => {
                Some(b.iter().fold(0u64, |a, &x| a << 8 | u64::from(x)))
            }
            AttrValue::Var(_) => None,
        }
    }
}

/// The at most 32 data attributes in `data`, which they must fill exactly.
pub(crate) fn attributes(data: &[u8]) -> Option<Vec<(u16, AttrValue<'_>)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        if out.len() == 32 || data.len() - pos < 4 {
            return None;
        }
        let t = be16(&data[pos..]);
        let v = be16(&data[pos + 2..]);
        if t & 0x8000 != 0 {
            out.push((t & 0x7fff, AttrValue::Basic(v)));
            pos += 4;
        } else {
            let len = v as usize;
            if data.len() - pos - 4 < len {
                return None;
            }
            out.push((t, AttrValue::Var(&data[pos + 4..pos + 4 + len])));
            pos += 4 + len;
        }
    }
    Some(out)
}

/// A transform payload.
#[derive(Clone, Debug)]
pub(crate) struct Transform<'a> {
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) number: u8,
    pub(crate) id: u8,
    pub(crate) attrs: Vec<(u16, AttrValue<'a>)>,
    /// The whole body, to echo the chosen transform verbatim.
    pub(crate) body: &'a [u8],
}

/// A proposal payload with its transforms.
#[derive(Clone, Debug)]
pub(crate) struct Proposal<'a> {
    pub(crate) number: u8,
    pub(crate) protocol: u8,
    pub(crate) spi: &'a [u8],
    pub(crate) transforms: Vec<Transform<'a>>,
}

/// An SA payload of the IPsec DOI with situation SIT_IDENTITY_ONLY.
#[derive(Clone, Debug)]
pub(crate) struct Sa<'a> {
    pub(crate) proposals: Vec<Proposal<'a>>,
}

impl<'a> Sa<'a> {
    pub(crate) fn parse(body: &'a [u8]) -> Option<Sa<'a>> {
        if body.len() < 8 || be32(body) != DOI_IPSEC || be32(&body[4..]) != SIT_IDENTITY_ONLY {
            return None;
        }
        let mut proposals = Vec::new();
        for p in payloads(P_PROPOSAL, &body[8..])? {
            if p.kind != P_PROPOSAL || p.body.len() < 4 {
                return None;
            }
            let (number, protocol, spi_len, count) = (p.body[0], p.body[1], p.body[2], p.body[3]);
            let rest = &p.body[4..];
            if rest.len() < spi_len as usize {
                return None;
            }
            let (spi, rest) = rest.split_at(spi_len as usize);
            let mut transforms = Vec::new();
            let chain = payloads(P_TRANSFORM, rest)?;
            if chain.last().is_some_and(|t| t.end != rest.len()) {
                return None;
            }
            for t in chain {
                if t.kind != P_TRANSFORM || t.body.len() < 4 {
                    return None;
                }
                transforms.push(Transform {
                    number: t.body[0],
                    id: t.body[1],
                    attrs: attributes(&t.body[4..])?,
                    body: t.body,
                });
            }
            if transforms.len() != count as usize || transforms.is_empty() {
                return None;
            }
            proposals.push(Proposal {
                number,
                protocol,
                spi,
                transforms,
            });
        }
        if proposals.is_empty() {
            return None;
        }
        Some(Sa { proposals })
    }
}

/// The body of an SA payload with one proposal holding one transform (its body verbatim).
pub(crate) fn sa_body(number: u8, protocol: u8, spi: &[u8], transform: &[u8]) -> Vec<u8> {
    let mut prop = vec![number, protocol, spi.len() as u8, 1];
    prop.extend_from_slice(spi);
    prop.extend_from_slice(&chain(&[(P_TRANSFORM, transform)]));
    let mut body = Vec::new();
    body.extend_from_slice(&DOI_IPSEC.to_be_bytes());
    body.extend_from_slice(&SIT_IDENTITY_ONLY.to_be_bytes());
    body.extend_from_slice(&chain(&[(P_PROPOSAL, &prop)]));
    body
}

/// A notification payload (RFC 2408 3.14).
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Notify<'a> {
    pub(crate) protocol: u8,
    pub(crate) kind: u16,
    pub(crate) spi: &'a [u8],
    pub(crate) data: &'a [u8],
}

impl<'a> Notify<'a> {
    pub(crate) fn parse(body: &'a [u8]) -> Option<Notify<'a>> {
        if body.len() < 8 {
            return None;
        }
        let spi_len = body[5] as usize;
        if body.len() - 8 < spi_len {
            return None;
        }
        Some(Notify {
            protocol: body[4],
            kind: be16(&body[6..]),
            spi: &body[8..8 + spi_len],
            data: &body[8 + spi_len..],
        })
    }
}

pub(crate) fn notify_body(protocol: u8, kind: u16, spi: &[u8], data: &[u8]) -> Vec<u8> {
    let mut b = DOI_IPSEC.to_be_bytes().to_vec();
    b.extend_from_slice(&[protocol, spi.len() as u8]);
    b.extend_from_slice(&kind.to_be_bytes());
    b.extend_from_slice(spi);
    b.extend_from_slice(data);
    b
}

/// A delete payload (RFC 2408 3.15): the protocol and its SPIs.
pub(crate) fn parse_delete(body: &[u8]) -> Option<(u8, Vec<&[u8]>)> {
    if body.len() < 8 {
        return None;
    }
    let spi_len = body[5] as usize;
    let count = be16(&body[6..]) as usize;
    if spi_len == 0 || body.len() - 8 != spi_len * count {
        return None;
    }
    Some((body[4], body[8..].chunks(spi_len).collect()))
}

pub(crate) fn delete_body(protocol: u8, spi: &[u8]) -> Vec<u8> {
    let mut b = DOI_IPSEC.to_be_bytes().to_vec();
    b.extend_from_slice(&[protocol, spi.len() as u8, 0, 1]);
    b.extend_from_slice(spi);
    b
}

/// An ID payload body for an address, protocol and port zero (phase 1, RFC 2407 4.6.2).
pub(crate) fn id_body(ip: std::net::IpAddr) -> Vec<u8> {
    match ip {
        std::net::IpAddr::V4(a) => {
            let mut b = vec![ID_IPV4_ADDR, 0, 0, 0];
            b.extend_from_slice(&a.octets());
            b
        }
        std::net::IpAddr::V6(a) => {
            let mut b = vec![ID_IPV6_ADDR, 0, 0, 0];
            b.extend_from_slice(&a.octets());
            b
        }
    }
}

/// A NAT-OA payload's IPv4 address (RFC 3947 5.2); other ID types are None.
pub(crate) fn parse_nat_oa(body: &[u8]) -> Option<std::net::Ipv4Addr> {
    if body.len() == 8 && body[0] == ID_IPV4_ADDR {
        Some(std::net::Ipv4Addr::new(body[4], body[5], body[6], body[7]))
    } else {
        None
    }
}

pub(crate) fn nat_oa_body(ip: std::net::Ipv4Addr) -> Vec<u8> {
    let mut b = vec![ID_IPV4_ADDR, 0, 0, 0];
    b.extend_from_slice(&ip.octets());
    b
}
