//! An IKEv1 initiator written here, against the responder: main, aggressive and quick mode,
//! NAT-T, retransmissions, deletes, DPD, floods, garbage. The initiator derives every key
//! itself (RFC 2409 formulas written out again below) and compares the ESP keys; it shares
//! only the primitives (HMAC/hash from ring, AES block, the MODP exponentiation, which has its
//! own known-answer test) and the payload chain codec with the responder.

use super::crypto::{Aes, Group, HashAlg};
use super::wire::*;
use super::*;
use std::net::Ipv4Addr;

const PSK: &[u8] = b"etherhub test psk";

fn server() -> SocketAddr {
    "192.0.2.1:500".parse().unwrap()
}

fn client() -> SocketAddr {
    "198.51.100.7:500".parse().unwrap()
}

fn responder() -> Responder {
    let config = Config {
        psk: PSK.to_vec(),
        ..Config::default()
    };
    Responder::new(config, [7; 32])
}

fn attr(t: u16, v: u16) -> Vec<u8> {
    let mut b = (0x8000 | t).to_be_bytes().to_vec();
    b.extend_from_slice(&v.to_be_bytes());
    b
}

fn attr_var(t: u16, v: &[u8]) -> Vec<u8> {
    let mut b = t.to_be_bytes().to_vec();
    b.extend_from_slice(&(v.len() as u16).to_be_bytes());
    b.extend_from_slice(v);
    b
}

fn hash_id(h: HashAlg) -> u16 {
    match h {
        HashAlg::Sha1 => 2,
        HashAlg::Sha256 => 4,
        HashAlg::Sha384 => 5,
        HashAlg::Sha512 => 6,
    }
}

/// A test ESP proposal: (transform id, key bits, auth alg or 0, encapsulation mode).
#[derive(Clone, Copy)]
struct Esp {
    id: u8,
    key_bits: u16,
    auth: u16,
    mode: u16,
    pfs: Option<Group>,
}

impl Esp {
    fn cbc(key_bits: u16, auth: u16) -> Esp {
        Esp {
            id: 12,
            key_bits,
            auth,
            mode: 2,
            pfs: None,
        }
    }
    fn keymat_len(self) -> usize {
        let k = self.key_bits as usize / 8;
        match (self.id, self.auth) {
            (20, _) => k + 4,
            (_, 2) => k + 20,
            (_, 5) => k + 32,
            (_, 6) => k + 48,
            _ => k + 64,
        }
    }
}

struct Initiator {
    psk: Vec<u8>,
    hash: HashAlg,
    group: Group,
    key_bits: u16,
    ci: [u8; 8],
    cr: [u8; 8],
    x: [u8; 32],
    gxi: Vec<u8>,
    gxr: Vec<u8>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    sai_b: Vec<u8>,
    idi: Vec<u8>,
    skeyid: Vec<u8>,
    d: Vec<u8>,
    a: Vec<u8>,
    key: Vec<u8>,
    iv: [u8; 16],
    p1_iv: [u8; 16],
    me: SocketAddr,
    to: SocketAddr,
    fake_natd: bool,
    vids: Vec<[u8; 16]>,
    initial_contact: bool,
    /// NAT-D's payload type: 20 (RFC 3947) or 130 (drafts).
    natd_type: u8,
    /// Every message sent, for retransmissions.
    sent: std::cell::RefCell<Vec<Vec<u8>>>,
}

impl Initiator {
    fn new(hash: HashAlg, group: Group, key_bits: u16, seed: u8) -> Initiator {
        let mut x = [seed; 32];
        x[0] = 0x5a;
        Initiator {
            psk: PSK.to_vec(),
            hash,
            group,
            key_bits,
            ci: [seed, 1, 2, 3, 4, 5, 6, 7],
            cr: [0; 8],
            x,
            gxi: group.public(&x),
            gxr: Vec::new(),
            ni: vec![seed ^ 0x33; 24],
            nr: Vec::new(),
            sai_b: Vec::new(),
            idi: Vec::new(),
            skeyid: Vec::new(),
            d: Vec::new(),
            a: Vec::new(),
            key: Vec::new(),
            iv: [0; 16],
            p1_iv: [0; 16],
            me: client(),
            to: server(),
            fake_natd: false,
            vids: vec![VID_RFC3947, VID_DRAFT_02N, VID_DPD],
            initial_contact: true,
            natd_type: P_NATD,
            sent: Default::default(),
        }
    }

    fn prf(&self, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        self.hash.prf(key, data)
    }

    fn sa_body(&self) -> Vec<u8> {
        let mut attrs = Vec::new();
        attrs.extend(attr(1, 7));
        attrs.extend(attr(14, self.key_bits));
        attrs.extend(attr(2, hash_id(self.hash)));
        attrs.extend(attr(3, 1));
        attrs.extend(attr(4, self.group.id()));
        attrs.extend(attr(11, 1));
        attrs.extend(attr_var(12, &28800u32.to_be_bytes()));
        // an unacceptable transform (3DES) first, then ours
        let mut t0 = vec![1, 1, 0, 0];
        t0.extend(attr(1, 5));
        t0.extend(attr(2, 2));
        t0.extend(attr(3, 1));
        t0.extend(attr(4, 2));
        let mut t1 = vec![2, 1, 0, 0];
        t1.extend(attrs);
        let mut prop = vec![1, PROTO_ISAKMP, 0, 2];
        prop.extend(chain(&[(P_TRANSFORM, &t0), (P_TRANSFORM, &t1)]));
        let mut b = vec![0, 0, 0, 1, 0, 0, 0, 1];
        b.extend(chain(&[(P_PROPOSAL, &prop)]));
        b
    }

    fn natd(&self, addr: SocketAddr) -> Vec<u8> {
        let mut c = self.ci.to_vec();
        c.extend_from_slice(&self.cr);
        let ip = match addr.ip() {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        self.hash.hash(&[&c, &ip, &addr.port().to_be_bytes()])
    }

    fn id(&self) -> Vec<u8> {
        let IpAddr::V4(a) = self.me.ip() else {
            panic!()
        };
        let mut b = vec![1, 17, 1, 244];
        b.extend_from_slice(&a.octets());
        b
    }

    fn header(&self, exchange: u8, flags: u8, mid: u32, next: u8, len: usize) -> Vec<u8> {
        let mut h = Vec::new();
        Header {
            icookie: self.ci,
            rcookie: self.cr,
            next,
            version: 0x10,
            exchange,
            flags,
            mid,
            length: (HDR_LEN + len) as u32,
        }
        .write(&mut h);
        h
    }

    fn plain(&self, exchange: u8, items: &[(u8, &[u8])]) -> Vec<u8> {
        let body = chain(items);
        let mut m = self.header(exchange, 0, 0, items[0].0, body.len());
        m.extend(body);
        m
    }

    /// Encrypts with zero padding (as strongSwan does); returns the message and the last block.
    fn sealed(
        &self,
        exchange: u8,
        mid: u32,
        iv: [u8; 16],
        items: &[(u8, &[u8])],
    ) -> (Vec<u8>, [u8; 16]) {
        let mut body = chain(items);
        while !body.len().is_multiple_of(16) {
            body.push(0);
        }
        let last = Aes::new(&self.key).unwrap().cbc_encrypt(&iv, &mut body);
        let mut m = self.header(exchange, FLAG_ENCRYPTED, mid, items[0].0, body.len());
        m.extend(body);
        (m, last)
    }

    fn unseal(&self, msg: &[u8], iv: [u8; 16]) -> (Header, Vec<u8>, [u8; 16]) {
        let h = Header::parse(msg).expect("header");
        assert_eq!(h.flags & FLAG_ENCRYPTED, FLAG_ENCRYPTED);
        let mut body = msg[HDR_LEN..].to_vec();
        let last = Aes::new(&self.key).unwrap().cbc_decrypt(&iv, &mut body);
        (h, body, last)
    }

    fn send(&self, r: &mut Responder, now: Instant, msg: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        r.handle(now, self.to, self.me, msg, &mut out);
        self.sent.borrow_mut().push(msg.to_vec());
        out
    }

    fn derive(&mut self) {
        let gxy = self.group.shared(&self.x, &self.gxr).expect("valid gxr");
        let (ci, cr) = (self.ci, self.cr);
        self.skeyid = self.prf(&self.psk, &[&self.ni, &self.nr]);
        self.d = self.prf(&self.skeyid, &[&gxy, &ci, &cr, &[0]]);
        self.a = self.prf(&self.skeyid, &[&self.d, &gxy, &ci, &cr, &[1]]);
        let e = self.prf(&self.skeyid, &[&self.a, &gxy, &ci, &cr, &[2]]);
        let need = self.key_bits as usize / 8;
        let mut key = if e.len() >= need {
            e.clone()
        } else {
            let mut k = self.prf(&e, &[&[0]]);
            let mut all = k.clone();
            while all.len() < need {
                k = self.prf(&e, &[&k]);
                all.extend_from_slice(&k);
            }
            all
        };
        key.truncate(need);
        self.key = key;
        let h = self.hash.hash(&[&self.gxi, &self.gxr]);
        self.iv.copy_from_slice(&h[..16]);
    }

    fn hash_i(&self) -> Vec<u8> {
        self.prf(
            &self.skeyid,
            &[
                &self.gxi,
                &self.gxr,
                &self.ci,
                &self.cr,
                &self.sai_b,
                &self.idi,
            ],
        )
    }

    /// Main mode against `r`; the events of message 5 (message 6 and any others).
    fn main_mode(&mut self, r: &mut Responder, now: Instant) -> Vec<Event> {
        // 1
        self.sai_b = self.sa_body();
        let mut items: Vec<(u8, &[u8])> = vec![(P_SA, &self.sai_b)];
        for v in &self.vids {
            items.push((P_VID, v));
        }
        let m1 = self.plain(EXCH_MAIN, &items);
        let ev = self.send(r, now, &m1);
        let m2 = only_transmit(&ev);
        let h2 = Header::parse(&m2).unwrap();
        self.cr = h2.rcookie;
        let ps = payloads(h2.next, &m2[HDR_LEN..]).unwrap();
        let best = [VID_RFC3947, VID_DRAFT_03, VID_DRAFT_02N, VID_DRAFT_02]
            .into_iter()
            .find(|v| self.vids.contains(v))
            .unwrap();
        assert_eq!(
            all(&ps, P_VID),
            vec![&best[..], &VID_DPD[..]],
            "the best NAT-T VID, DPD"
        );
        let sa = Sa::parse(ps[0].body).unwrap();
        assert_eq!(sa.proposals.len(), 1);
        assert_eq!(sa.proposals[0].transforms.len(), 1);
        assert_eq!(
            sa.proposals[0].transforms[0].number, 2,
            "our AES transform echoed"
        );
        // 3
        let (d_server, d_me) = if self.fake_natd {
            (
                self.natd(server()),
                self.natd("10.0.0.2:500".parse().unwrap()),
            )
        } else {
            (self.natd(self.to), self.natd(self.me))
        };
        let m3 = self.plain(
            EXCH_MAIN,
            &[
                (P_KE, &self.gxi),
                (P_NONCE, &self.ni),
                (self.natd_type, &d_server),
                (self.natd_type, &d_me),
            ],
        );
        let ev = self.send(r, now, &m3);
        let m4 = only_transmit(&ev);
        let h4 = Header::parse(&m4).unwrap();
        let ps = payloads(h4.next, &m4[HDR_LEN..]).unwrap();
        self.gxr = find(&ps, P_KE).unwrap().to_vec();
        assert_eq!(self.gxr.len(), self.group.len(), "full-length public value");
        self.nr = find(&ps, P_NONCE).unwrap().to_vec();
        let natd = all(&ps, self.natd_type);
        assert_eq!(natd.len(), 2);
        assert_eq!(
            natd[0],
            self.natd(self.me),
            "responder's NAT-D for us is honest"
        );
        assert_eq!(
            natd[1],
            self.natd(self.to),
            "responder's NAT-D for itself is honest"
        );
        self.derive();
        if self.fake_natd {
            // a NAT was detected: float to 4500
            self.me.set_port(4500);
            self.to.set_port(4500);
        }
        // 5
        self.idi = self.id();
        let hash_i = self.hash_i();
        let ic = notify_body(
            PROTO_ISAKMP,
            N_INITIAL_CONTACT,
            &[self.ci, self.cr].concat(),
            &[],
        );
        let mut items: Vec<(u8, &[u8])> = vec![(P_ID, &self.idi), (P_HASH, &hash_i)];
        if self.initial_contact {
            items.push((P_NOTIFY, &ic));
        }
        let (m5, last) = self.sealed(EXCH_MAIN, 0, self.iv, &items);
        self.iv = last;
        let ev = self.send(r, now, &m5);
        if let Some(m6) = transmit_of(&ev) {
            let (h6, plain, last) = self.unseal(&m6, self.iv);
            self.iv = last;
            self.p1_iv = last;
            let ps = payloads(h6.next, &plain).unwrap();
            let idr = find(&ps, P_ID).unwrap();
            let IpAddr::V4(s) = server().ip() else {
                panic!()
            };
            assert_eq!(idr, &[&[1u8, 0, 0, 0][..], &s.octets()].concat()[..]);
            let hash_r = self.prf(
                &self.skeyid,
                &[&self.gxr, &self.gxi, &self.cr, &self.ci, &self.sai_b, idr],
            );
            assert_eq!(find(&ps, P_HASH).unwrap(), &hash_r[..], "HASH_R verifies");
        }
        ev
    }

    fn keymat(&self, gqm: Option<&[u8]>, spi: u32, ni: &[u8], nr: &[u8], len: usize) -> Vec<u8> {
        let mut seed = gqm.unwrap_or(&[]).to_vec();
        seed.push(3);
        seed.extend_from_slice(&spi.to_be_bytes());
        seed.extend_from_slice(ni);
        seed.extend_from_slice(nr);
        let mut k = self.prf(&self.d, &[&seed]);
        let mut out = k.clone();
        while out.len() < len {
            k = self.prf(&self.d, &[&k, &seed]);
            out.extend_from_slice(&k);
        }
        out.truncate(len);
        out
    }

    /// Quick mode with message id `mid`; returns the ChildUp's SA and peer, after checking
    /// that our keys and the responder's agree.
    fn quick_mode(
        &self,
        r: &mut Responder,
        now: Instant,
        mid: u32,
        esp: Esp,
        spi_i: u32,
    ) -> (ChildSa, SocketAddr) {
        let mut attrs = attr(1, 1);
        attrs.extend(attr_var(2, &3600u32.to_be_bytes()));
        attrs.extend(attr(4, esp.mode));
        if esp.auth != 0 {
            attrs.extend(attr(5, esp.auth));
        }
        attrs.extend(attr(6, esp.key_bits));
        if let Some(g) = esp.pfs {
            attrs.extend(attr(3, g.id()));
        }
        let mut t = vec![1, esp.id, 0, 0];
        t.extend(attrs);
        let mut prop = vec![1, PROTO_ESP, 4, 1];
        prop.extend_from_slice(&spi_i.to_be_bytes());
        prop.extend(chain(&[(P_TRANSFORM, &t)]));
        let mut sa = vec![0, 0, 0, 1, 0, 0, 0, 1];
        sa.extend(chain(&[(P_PROPOSAL, &prop)]));
        let ni = vec![mid as u8; 16];
        let mut qx = [0x42u8; 32];
        qx[31] = mid as u8;
        let ke = esp.pfs.map(|g| g.public(&qx));
        let IpAddr::V4(me) = self.me.ip() else {
            panic!()
        };
        let IpAddr::V4(srv) = self.to.ip() else {
            panic!()
        };
        let idci = [&[1u8, 17, 6, 165][..], &me.octets()].concat();
        let idcr = [&[1u8, 17, 6, 165][..], &srv.octets()].concat();
        let oa_i = nat_oa_body(Ipv4Addr::new(10, 0, 0, 2));
        let oa_r = nat_oa_body(srv);
        let mut items: Vec<(u8, &[u8])> = vec![(P_SA, &sa), (P_NONCE, &ni)];
        if let Some(ke) = &ke {
            items.push((P_KE, ke));
        }
        items.push((P_ID, &idci));
        items.push((P_ID, &idcr));
        if esp.mode == 4 {
            items.push((P_NATOA, &oa_i));
            items.push((P_NATOA, &oa_r));
        }
        let mid_b = mid.to_be_bytes();
        let h1 = self.prf(&self.a, &[&mid_b, &chain(&items)]);
        items.insert(0, (P_HASH, &h1));
        let iv = self.hash.hash(&[&self.p1_iv, &mid_b]);
        let (m1, last) = self.sealed(EXCH_QUICK, mid, iv[..16].try_into().unwrap(), &items);
        let ev = self.send(r, now, &m1);
        let m2 = only_transmit(&ev);
        let (h2, plain, last) = self.unseal(&m2, last);
        assert_eq!(h2.mid, mid);
        let ps = payloads(h2.next, &plain).unwrap();
        assert_eq!(ps[0].kind, P_HASH);
        let end = ps.last().unwrap().end;
        let h2_expect = self.prf(&self.a, &[&mid_b, &ni, &plain[ps[0].end..end]]);
        assert_eq!(ps[0].body, &h2_expect[..], "HASH(2) verifies");
        let rsa = Sa::parse(find(&ps, P_SA).unwrap()).unwrap();
        let spi_r = u32::from_be_bytes(rsa.proposals[0].spi.try_into().unwrap());
        assert_eq!(
            rsa.proposals[0].transforms[0].body,
            &t[..],
            "transform echoed"
        );
        let nr = find(&ps, P_NONCE).unwrap().to_vec();
        assert_eq!(all(&ps, P_ID), vec![&idci[..], &idcr[..]], "IDs echoed");
        let gqm = esp.pfs.map(|g| {
            let ker = find(&ps, P_KE).expect("KE in reply");
            g.shared(&qx, ker).unwrap()
        });
        // 3
        let h3 = self.prf(&self.a, &[&[0], &mid_b, &ni, &nr]);
        let (m3, _) = self.sealed(EXCH_QUICK, mid, last, &[(P_HASH, &h3)]);
        let ev = self.send(r, now, &m3);
        let (child, peer) = ev
            .iter()
            .find_map(|e| match e {
                Event::ChildUp { sa, peer, .. } => Some((sa.clone(), *peer)),
                _ => None,
            })
            .expect("ChildUp");
        assert_eq!(child.inbound.spi, spi_r);
        assert_eq!(child.outbound.spi, spi_i);
        let len = esp.keymat_len();
        let g = gqm.as_deref();
        let to_r = self.keymat(g, spi_r, &ni, &nr, len);
        let to_i = self.keymat(g, spi_i, &ni, &nr, len);
        assert_eq!(key_bytes(&child.inbound), to_r, "inbound keys agree");
        assert_eq!(key_bytes(&child.outbound), to_i, "outbound keys agree");
        assert_eq!(child.lifetime, Duration::from_secs(3600));
        (child, peer)
    }

    /// An informational exchange from us; the events.
    fn info(&self, r: &mut Responder, now: Instant, mid: u32, items: &[(u8, &[u8])]) -> Vec<Event> {
        let mid_b = mid.to_be_bytes();
        let h1 = self.prf(&self.a, &[&mid_b, &chain(items)]);
        let mut all_items: Vec<(u8, &[u8])> = vec![(P_HASH, &h1)];
        all_items.extend_from_slice(items);
        let iv = self.hash.hash(&[&self.p1_iv, &mid_b]);
        let (m, _) = self.sealed(EXCH_INFO, mid, iv[..16].try_into().unwrap(), &all_items);
        self.send(r, now, &m)
    }

    /// Decrypts and verifies an informational message from the responder: its payloads.
    fn open_info(&self, msg: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let h = Header::parse(msg).unwrap();
        assert_eq!(h.exchange, EXCH_INFO);
        let mid_b = h.mid.to_be_bytes();
        let iv = self.hash.hash(&[&self.p1_iv, &mid_b]);
        let (_, plain, _) = self.unseal(msg, iv[..16].try_into().unwrap());
        let ps = payloads(h.next, &plain).unwrap();
        let end = ps.last().unwrap().end;
        let h1 = self.prf(&self.a, &[&mid_b, &plain[ps[0].end..end]]);
        assert_eq!(ps[0].body, &h1[..], "informational HASH(1) verifies");
        ps[1..].iter().map(|p| (p.kind, p.body.to_vec())).collect()
    }
}

fn key_bytes(k: &EspKeys) -> Vec<u8> {
    let mut out = match &k.cipher {
        EspCipher::AesCbc { key } => key.clone(),
        EspCipher::AesGcm16 { key, salt } => [&key[..], &salt[..]].concat(),
    };
    match &k.integ {
        EspInteg::None => {}
        EspInteg::HmacSha1_96 { key }
        | EspInteg::HmacSha256_128 { key }
        | EspInteg::HmacSha384_192 { key }
        | EspInteg::HmacSha512_256 { key } => out.extend_from_slice(key),
    }
    out
}

/// The one datagram sent (without a non-ESP marker).
fn transmit_of(ev: &[Event]) -> Option<Vec<u8>> {
    ev.iter().find_map(|e| match e {
        Event::Transmit {
            local, datagram, ..
        } => {
            if local.port() == 4500 {
                assert_eq!(&datagram[..4], &[0; 4], "non-ESP marker");
                Some(datagram[4..].to_vec())
            } else {
                Some(datagram.clone())
            }
        }
        _ => None,
    })
}

fn only_transmit(ev: &[Event]) -> Vec<u8> {
    assert_eq!(ev.len(), 1, "{ev:?}");
    transmit_of(ev).expect("a datagram")
}

fn established(r: &Responder) -> usize {
    r.phase1_sas().iter().filter(|s| s.established).count()
}

#[test]
fn modp_known_answers() {
    for (group, bits) in [
        (Group::Modp1024, 1024u16),
        (Group::Modp1536, 1536),
        (Group::Modp2048, 2048),
    ] {
        let p = group.prime();
        assert_eq!(p.len() * 8, bits as usize);
        assert_eq!(p[0], 0xff);
        assert_eq!(p[p.len() - 1], 0xff);
        // g^1 = 2
        let mut x = [0u8; 32];
        x[31] = 1;
        let mut two = vec![0u8; group.len()];
        two[group.len() - 1] = 2;
        assert_eq!(group.public(&x), two);
        // g^bits = 2^bits mod p = 2^bits - p (p > 2^(bits-1)): the two's complement of p
        let mut x = [0u8; 32];
        x[30..].copy_from_slice(&bits.to_be_bytes());
        let mut expect: Vec<u8> = p.iter().map(|b| !b).collect();
        for b in expect.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
        assert_eq!(group.public(&x), expect, "{group:?}");
        // agreement
        let (a, b) = ([3u8; 32], [9u8; 32]);
        let (ya, yb) = (group.public(&a), group.public(&b));
        assert_eq!(ya.len(), group.len());
        assert_eq!(
            group.shared(&a, &yb).unwrap(),
            group.shared(&b, &ya).unwrap()
        );
        // validation: 0, 1, p-1, p, too long
        let mut pm1 = p.clone();
        *pm1.last_mut().unwrap() -= 1;
        let mut long = vec![1u8];
        long.extend_from_slice(&two);
        for bad in [vec![0u8], vec![1u8], pm1, p.clone(), long, vec![]] {
            assert!(group.shared(&a, &bad).is_none());
        }
        // a short (unpadded) value is the same number
        assert_eq!(
            group.shared(&a, &[2]).unwrap(),
            group.shared(&a, &two).unwrap()
        );
    }
}

#[test]
fn prf_known_answer_and_expansion() {
    // RFC 2202 test case 2 (HMAC-SHA1) and RFC 4231 test case 2 (HMAC-SHA-256)
    let v = HashAlg::Sha1.prf(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
    assert_eq!(v, hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"));
    let v = HashAlg::Sha256.prf(b"Jefe", &[b"what do ya want for nothing?"]);
    assert_eq!(
        v,
        hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    );
    // appendix B: K1 = prf(e, 0), K2 = prf(e, K1)
    let e = vec![0x11u8; 20];
    let k = crypto::phase1_key(HashAlg::Sha1, &e, 32);
    let k1 = HashAlg::Sha1.prf(&e, &[&[0]]);
    let k2 = HashAlg::Sha1.prf(&e, &[&k1]);
    assert_eq!(&k[..], &[&k1[..], &k2[..12]].concat()[..]);
    assert_eq!(&crypto::phase1_key(HashAlg::Sha1, &e, 16)[..], &e[..16]);
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn main_and_quick_mode_every_suite() {
    let now = Instant::now();
    let hashes = [
        HashAlg::Sha1,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ];
    let groups = [Group::Modp1024, Group::Modp1536, Group::Modp2048];
    let esps = [
        Esp::cbc(128, 2),
        Esp::cbc(256, 5),
        Esp::cbc(192, 6),
        Esp::cbc(256, 7),
        Esp {
            id: 20,
            key_bits: 128,
            auth: 0,
            mode: 2,
            pfs: None,
        },
        Esp {
            id: 20,
            key_bits: 256,
            auth: 0,
            mode: 2,
            pfs: Some(Group::Modp2048),
        },
        Esp {
            pfs: Some(Group::Modp1024),
            ..Esp::cbc(128, 2)
        },
    ];
    let mut n = 0u8;
    for (hi, &hash) in hashes.iter().enumerate() {
        for (gi, &group) in groups.iter().enumerate() {
            let key_bits = [128u16, 192, 256][(hi + gi) % 3];
            n += 1;
            let mut r = responder();
            let mut i = Initiator::new(hash, group, key_bits, n);
            let ev = i.main_mode(&mut r, now);
            assert_eq!(ev.len(), 1, "{ev:?}");
            let info = &r.phase1_sas()[0];
            assert!(info.established);
            assert!(!info.peer_behind_nat && !info.local_behind_nat);
            let esp = esps[(n as usize) % esps.len()];
            let (child, peer) =
                i.quick_mode(&mut r, now, 0x1000 + n as u32, esp, 0xabc0_0000 + n as u32);
            assert_eq!(child.encap, Encap::Esp);
            assert_eq!(peer.ip(), client().ip());
            assert_eq!(child.peer_original, None);
            assert_eq!(r.dropped(), Dropped::default());
        }
    }
    // every ESP variant with one phase 1
    let mut r = responder();
    let mut i = Initiator::new(HashAlg::Sha256, Group::Modp2048, 256, 99);
    i.main_mode(&mut r, now);
    for (k, esp) in esps.iter().enumerate() {
        let (child, _) = i.quick_mode(&mut r, now, 0x2000 + k as u32, *esp, 0x5000 + k as u32);
        match (&child.inbound.cipher, &child.inbound.integ) {
            (EspCipher::AesGcm16 { key, .. }, EspInteg::None) => {
                assert_eq!(key.len() * 8, esp.key_bits as usize)
            }
            (EspCipher::AesCbc { key }, EspInteg::HmacSha1_96 { key: ik }) => {
                assert_eq!((key.len(), ik.len()), (esp.key_bits as usize / 8, 20))
            }
            (EspCipher::AesCbc { .. }, EspInteg::HmacSha256_128 { key }) => {
                assert_eq!(key.len(), 32)
            }
            (EspCipher::AesCbc { .. }, EspInteg::HmacSha384_192 { key }) => {
                assert_eq!(key.len(), 48)
            }
            (EspCipher::AesCbc { .. }, EspInteg::HmacSha512_256 { key }) => {
                assert_eq!(key.len(), 64)
            }
            _ => panic!("unexpected suite"),
        }
    }
    assert_eq!(r.child_spis().len(), esps.len());
}

#[test]
fn wrong_psk_is_refused() {
    let now = Instant::now();
    let mut r = responder();
    let mut i = Initiator::new(HashAlg::Sha1, Group::Modp2048, 128, 1);
    i.psk = b"not the key".to_vec();
    let ev = i.main_mode(&mut r, now);
    assert_eq!(
        ev,
        vec![Event::Refused {
            peer: client(),
            reason: "pre-shared key mismatch (HASH_I did not verify)".into()
        }]
    );
    assert_eq!(r.dropped().auth_failed, 1);
    assert!(r.phase1_sas().is_empty());
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn nat_detected_and_floating() {
    let now = Instant::now();
    let mut r = responder();
    let mut i = Initiator::new(HashAlg::Sha1, Group::Modp2048, 128, 3);
    i.fake_natd = true;
    let ev = i.main_mode(&mut r, now);
    match &ev[0] {
        Event::Transmit {
            local,
            peer,
            datagram,
        } => {
            assert_eq!(local.port(), 4500);
            assert_eq!(peer.port(), 4500);
            assert_eq!(&datagram[..4], &[0; 4]);
        }
        e => panic!("{e:?}"),
    }
    let info = &r.phase1_sas()[0];
    assert!(info.nat_t && info.peer_behind_nat && !info.local_behind_nat);
    assert_eq!(info.peer.port(), 4500);
    let esp = Esp {
        mode: 4,
        ..Esp::cbc(128, 2)
    };
    let (child, peer) = i.quick_mode(&mut r, now, 7, esp, 0x777);
    assert_eq!(child.encap, Encap::Udp);
    assert_eq!(peer, "198.51.100.7:4500".parse().unwrap());
    assert_eq!(child.peer_original, Some(Ipv4Addr::new(10, 0, 0, 2)));
    // the drafts' value too
    let esp = Esp {
        mode: 61444,
        ..Esp::cbc(256, 5)
    };
    let (child, _) = i.quick_mode(&mut r, now, 8, esp, 0x778);
    assert_eq!(child.encap, Encap::Udp);
}

#[test]
fn draft_nat_t() {
    let now = Instant::now();
    let mut r = responder();
    let mut i = Initiator::new(HashAlg::Sha1, Group::Modp1024, 256, 30);
    i.vids = vec![VID_DRAFT_02, VID_DRAFT_02N];
    i.natd_type = P_NATD_DRAFT;
    i.fake_natd = true;
    i.main_mode(&mut r, now);
    assert!(r.phase1_sas()[0].peer_behind_nat);
    let esp = Esp {
        mode: 61444,
        ..Esp::cbc(256, 2)
    };
    let (child, peer) = i.quick_mode(&mut r, now, 9, esp, 0x999);
    assert_eq!((child.encap, peer.port()), (Encap::Udp, 4500));
}

#[test]
fn aggressive_mode() {
    let now = Instant::now();
    for psk_ok in [true, false] {
        let mut r = responder();
        let mut i = Initiator::new(HashAlg::Sha256, Group::Modp1024, 256, 5);
        if !psk_ok {
            i.psk = b"wrong".to_vec();
        }
        i.sai_b = i.sa_body();
        i.idi = i.id();
        let items: Vec<(u8, &[u8])> = vec![
            (P_SA, &i.sai_b),
            (P_KE, &i.gxi),
            (P_NONCE, &i.ni),
            (P_ID, &i.idi),
            (P_VID, &VID_RFC3947),
        ];
        let m1 = i.plain(EXCH_AGGRESSIVE, &items);
        let m2 = only_transmit(&i.send(&mut r, now, &m1));
        let h2 = Header::parse(&m2).unwrap();
        i.cr = h2.rcookie;
        let ps = payloads(h2.next, &m2[HDR_LEN..]).unwrap();
        i.gxr = find(&ps, P_KE).unwrap().to_vec();
        i.nr = find(&ps, P_NONCE).unwrap().to_vec();
        i.derive();
        let idr = find(&ps, P_ID).unwrap();
        let hash_r = i.prf(&i.skeyid, &[&i.gxr, &i.gxi, &i.cr, &i.ci, &i.sai_b, idr]);
        assert_eq!(find(&ps, P_HASH).unwrap() == &hash_r[..], psk_ok);
        let natd = all(&ps, P_NATD);
        assert_eq!(natd, vec![&i.natd(client())[..], &i.natd(server())[..]]);
        // message 3, encrypted (as strongSwan does it)
        let hash_i = i.hash_i();
        let (d1, d2) = (i.natd(server()), i.natd(client()));
        let (m3, last) = i.sealed(
            EXCH_AGGRESSIVE,
            0,
            i.iv,
            &[(P_HASH, &hash_i), (P_NATD, &d1), (P_NATD, &d2)],
        );
        i.p1_iv = last;
        let ev = i.send(&mut r, now, &m3);
        if psk_ok {
            assert!(ev.is_empty(), "{ev:?}");
            assert!(r.phase1_sas()[0].aggressive && r.phase1_sas()[0].established);
            i.quick_mode(&mut r, now, 0x99, Esp::cbc(128, 5), 0x4242);
        } else {
            assert!(matches!(&ev[..], [Event::Refused { .. }]), "{ev:?}");
        }
    }
    // disabled
    let mut r = Responder::new(
        Config {
            psk: PSK.to_vec(),
            aggressive_mode: false,
            ..Config::default()
        },
        [1; 32],
    );
    let mut i = Initiator::new(HashAlg::Sha1, Group::Modp1024, 128, 6);
    i.sai_b = i.sa_body();
    i.idi = i.id();
    let m1 = i.plain(
        EXCH_AGGRESSIVE,
        &[
            (P_SA, &i.sai_b),
            (P_KE, &i.gxi),
            (P_NONCE, &i.ni),
            (P_ID, &i.idi),
        ],
    );
    assert!(i.send(&mut r, now, &m1).is_empty());
    assert_eq!(r.dropped().unexpected, 1);
}

#[test]
fn retransmissions_get_the_same_reply() {
    let now = Instant::now();
    let mut r = responder();
    let mut i = Initiator::new(HashAlg::Sha1, Group::Modp1024, 128, 8);
    i.sai_b = i.sa_body();
    let m1 = i.plain(EXCH_MAIN, &[(P_SA, &i.sai_b), (P_VID, &VID_RFC3947)]);
    let a = only_transmit(&i.send(&mut r, now, &m1));
    let b = only_transmit(&i.send(&mut r, now, &m1));
    assert_eq!(a, b);
    assert_eq!(r.phase1_sas().len(), 1);
    i.cr = Header::parse(&a).unwrap().rcookie;
    let (d1, d2) = (i.natd(server()), i.natd(client()));
    let m3 = i.plain(
        EXCH_MAIN,
        &[
            (P_KE, &i.gxi),
            (P_NONCE, &i.ni),
            (P_NATD, &d1),
            (P_NATD, &d2),
        ],
    );
    let a = only_transmit(&i.send(&mut r, now, &m3));
    let b = only_transmit(&i.send(&mut r, now, &m3));
    assert_eq!(a, b, "retransmitted message 3 gets the same message 4");
    assert_eq!(r.dropped().retransmit, 2);
    // a whole run, then retransmitted message 5 and quick mode 1 and 3
    let mut r = responder();
    let mut i = Initiator::new(HashAlg::Sha1, Group::Modp2048, 128, 9);
    let m6 = only_transmit(&i.main_mode(&mut r, now));
    assert_eq!(established(&r), 1);
    let m5 = i.sent.borrow().last().unwrap().clone();
    assert_eq!(only_transmit(&i.send(&mut r, now, &m5)), m6);
    let before = r.dropped().retransmit;
    i.quick_mode(&mut r, now, 0x51, Esp::cbc(128, 2), 0x5151);
    let (qm1, qm3) = {
        let sent = i.sent.borrow();
        (sent[sent.len() - 2].clone(), sent[sent.len() - 1].clone())
    };
    let ev = i.send(&mut r, now, &qm1);
    assert_eq!(
        ev.len(),
        1,
        "the same quick mode 2 again, no new child: {ev:?}"
    );
    assert!(i.send(&mut r, now, &qm3).is_empty(), "no second ChildUp");
    assert_eq!(r.dropped().retransmit, before + 2);
    assert_eq!(r.child_spis().len(), 1);
}

#[test]
fn rekeying_delete_dpd_and_initial_contact() {
    let now = Instant::now();
    let mut r = responder();
    let mut i = Initiator::new(HashAlg::Sha1, Group::Modp2048, 128, 10);
    i.main_mode(&mut r, now);
    let (c1, _) = i.quick_mode(&mut r, now, 1, Esp::cbc(128, 2), 0x1111);
    let (c2, _) = i.quick_mode(&mut r, now, 2, Esp::cbc(128, 2), 0x2222);
    assert_ne!(c1.inbound.spi, c2.inbound.spi);
    assert_eq!(r.child_spis().len(), 2, "the old child stays");
    // a new phase 1 (new cookies) at any time, without INITIAL-CONTACT: all stays
    let mut i2 = Initiator::new(HashAlg::Sha256, Group::Modp2048, 256, 11);
    i2.initial_contact = false;
    i2.main_mode(&mut r, now);
    let (c3, _) = i2.quick_mode(&mut r, now, 3, Esp::cbc(256, 5), 0x3333);
    assert_eq!(r.child_spis().len(), 3);
    assert_eq!(established(&r), 2);
    // Delete of the first child (by the peer's inbound SPI, our outbound)
    let d = delete_body(PROTO_ESP, &0x1111u32.to_be_bytes());
    let ev = i.info(&mut r, now, 0x77, &[(P_DELETE, &d)]);
    assert_eq!(
        ev,
        vec![Event::ChildDown {
            peer: client(),
            inbound_spi: c1.inbound.spi
        }]
    );
    // replayed: ignored
    assert!(i.info(&mut r, now, 0x77, &[(P_DELETE, &d)]).is_empty());
    // DPD
    let ruthere = notify_body(
        PROTO_ISAKMP,
        N_R_U_THERE,
        &[i.ci, i.cr].concat(),
        &[0, 0, 0, 42],
    );
    let ev = i.info(&mut r, now, 0x78, &[(P_NOTIFY, &ruthere)]);
    let ack = i.open_info(&only_transmit(&ev));
    let n = Notify::parse(&ack[0].1).unwrap();
    assert_eq!(
        (ack[0].0, n.kind, n.data),
        (P_NOTIFY, N_R_U_THERE_ACK, &[0u8, 0, 0, 42][..])
    );
    assert_eq!(n.spi, &[i.ci, i.cr].concat()[..]);
    assert_eq!(n.protocol, PROTO_ISAKMP);
    // a bad HASH(1) is dropped
    let before = r.dropped().bad_hash;
    let mut j = Initiator {
        a: vec![0; 20],
        ..Initiator::new(HashAlg::Sha1, Group::Modp2048, 128, 10)
    };
    j.ci = i.ci;
    j.cr = i.cr;
    j.key = i.key.clone();
    j.p1_iv = i.p1_iv;
    assert!(j
        .info(&mut r, now, 0x79, &[(P_NOTIFY, &ruthere)])
        .is_empty());
    assert_eq!(r.dropped().bad_hash, before + 1);
    // delete_child from our side: a Delete the peer can read
    let mut ev = Vec::new();
    r.delete_child(now, c2.inbound.spi, &mut ev);
    let del = i.open_info(&only_transmit(&ev));
    assert_eq!(del[0].0, P_DELETE);
    let (proto, spis) = parse_delete(&del[0].1).unwrap();
    assert_eq!(
        (proto, spis),
        (PROTO_ESP, vec![&c2.inbound.spi.to_be_bytes()[..]])
    );
    assert_eq!(r.child_spis(), vec![c3.inbound.spi]);
    // the peer restarts: a new phase 1 with INITIAL-CONTACT drops the older SAs and children
    let mut i3 = Initiator::new(HashAlg::Sha1, Group::Modp2048, 128, 12);
    let ev = i3.main_mode(&mut r, now);
    assert!(
        ev.contains(&Event::ChildDown {
            peer: client(),
            inbound_spi: c3.inbound.spi
        }),
        "{ev:?}"
    );
    assert_eq!(established(&r), 1);
    assert!(r.child_spis().is_empty());
    // Delete of the ISAKMP SA
    let d = delete_body(PROTO_ISAKMP, &[i3.ci, i3.cr].concat());
    assert!(i3.info(&mut r, now, 5, &[(P_DELETE, &d)]).is_empty());
    assert!(r.phase1_sas().is_empty());
}

#[test]
fn flood_from_one_address() {
    let now = Instant::now();
    let mut r = responder();
    let mut good = Initiator::new(HashAlg::Sha1, Group::Modp2048, 128, 13);
    good.me = "203.0.113.5:500".parse().unwrap();
    good.main_mode(&mut r, now);
    let mut flooder = Initiator::new(HashAlg::Sha1, Group::Modp1024, 128, 14);
    flooder.sai_b = flooder.sa_body();
    let mut sent = 0;
    for k in 0..10_000u32 {
        flooder.ci[..4].copy_from_slice(&k.to_be_bytes());
        let m1 = flooder.plain(EXCH_MAIN, &[(P_SA, &flooder.sai_b)]);
        sent += flooder.send(&mut r, now, &m1).len();
    }
    assert_eq!(sent, 8);
    assert_eq!(r.dropped().flood, 10_000 - 8);
    assert_eq!(r.phase1_sas().len(), 9);
    good.quick_mode(&mut r, now, 1, Esp::cbc(128, 2), 0x9999);
    // half-open SAs expire; the established one stays
    assert_eq!(r.poll_timeout(), Some(now + Duration::from_secs(30)));
    let mut ev = Vec::new();
    r.handle_timeout(now + Duration::from_secs(31), &mut ev);
    assert!(ev.is_empty());
    assert_eq!(r.phase1_sas().len(), 1);
    // and the address may try again
    flooder.ci = [0xee; 8];
    let m1 = flooder.plain(EXCH_MAIN, &[(P_SA, &flooder.sai_b)]);
    assert_eq!(
        flooder
            .send(&mut r, now + Duration::from_secs(31), &m1)
            .len(),
        1
    );
}

#[test]
fn lifetimes_expire() {
    let now = Instant::now();
    let mut r = responder();
    let mut i = Initiator::new(HashAlg::Sha1, Group::Modp1024, 128, 15);
    i.main_mode(&mut r, now);
    let (c, _) = i.quick_mode(&mut r, now, 1, Esp::cbc(128, 2), 0x1);
    assert_eq!(
        r.poll_timeout(),
        Some(now + Duration::from_secs(30)),
        "quick mode state"
    );
    let mut ev = Vec::new();
    r.handle_timeout(now + Duration::from_secs(3600), &mut ev);
    assert_eq!(
        ev,
        vec![Event::ChildDown {
            peer: client(),
            inbound_spi: c.inbound.spi
        }]
    );
    // the phase-1 SA, childless now, goes after its idle timeout
    let idle = now + Duration::from_secs(3600 + 15 * 60);
    assert_eq!(r.poll_timeout(), Some(idle));
    r.handle_timeout(idle - Duration::from_secs(1), &mut ev);
    assert_eq!(r.phase1_sas().len(), 1);
    r.handle_timeout(idle, &mut ev);
    assert!(r.phase1_sas().is_empty());
    assert_eq!(r.poll_timeout(), None);
    // with a child, only its lifetime ends it
    let mut r = responder();
    let mut i = Initiator::new(HashAlg::Sha1, Group::Modp1024, 128, 16);
    i.main_mode(&mut r, now);
    i.quick_mode(&mut r, now, 1, Esp::cbc(128, 2), 0x1);
    let mut t = now;
    while let Some(next) = r.poll_timeout() {
        if next >= now + Duration::from_secs(3600) {
            break;
        }
        t = next;
        r.handle_timeout(t, &mut ev);
    }
    assert_eq!(established(&r), 1, "kept alive by its child until {t:?}");
}

#[test]
fn garbage_is_counted() {
    let now = Instant::now();
    let mut r = responder();
    let mut i = Initiator::new(HashAlg::Sha1, Group::Modp1024, 128, 16);
    i.sai_b = i.sa_body();
    let m1 = i.plain(EXCH_MAIN, &[(P_SA, &i.sai_b)]);
    let mut out = Vec::new();
    for cut in 0..m1.len() {
        r.handle(now, server(), client(), &m1[..cut], &mut out);
    }
    // lengths patched to match but payloads cut
    for cut in HDR_LEN..m1.len() {
        let mut m = m1[..cut].to_vec();
        m[24..28].copy_from_slice(&(cut as u32).to_be_bytes());
        r.handle(now, server(), client(), &m, &mut out);
    }
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(r.dropped().malformed as usize, 2 * m1.len() - HDR_LEN);
    // pseudo-random junk
    let mut x = 0x1234_5678u32;
    for n in 0..2000 {
        let len = n % 300;
        let mut m: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        if m.len() >= HDR_LEN && n % 2 == 0 {
            m[17] = 0x10;
            m[24..28].copy_from_slice(&(len as u32).to_be_bytes());
            m[8..16].fill(0);
        }
        r.handle(now, server(), client(), &m, &mut out);
    }
    assert!(r.phase1_sas().len() <= 8);
}

#[test]
fn no_proposal_chosen() {
    let now = Instant::now();
    let mut r = responder();
    let i = Initiator::new(HashAlg::Sha1, Group::Modp1024, 128, 17);
    let mut t = vec![1, 1, 0, 0];
    t.extend(attr(1, 5));
    t.extend(attr(2, 1));
    t.extend(attr(3, 1));
    t.extend(attr(4, 2));
    let mut prop = vec![1, PROTO_ISAKMP, 0, 1];
    prop.extend(chain(&[(P_TRANSFORM, &t)]));
    let mut sa = vec![0, 0, 0, 1, 0, 0, 0, 1];
    sa.extend(chain(&[(P_PROPOSAL, &prop)]));
    let ev = i.send(&mut r, now, &i.plain(EXCH_MAIN, &[(P_SA, &sa)]));
    match &ev[..] {
        [Event::Refused { reason, .. }, Event::Transmit { .. }] => {
            assert!(reason.contains("3DES"), "{reason}")
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(r.dropped().no_proposal_chosen, 1);
    assert!(r.phase1_sas().is_empty());
}

#[test]
fn config_debug_hides_the_psk() {
    let c = Config {
        psk: b"sekrit-psk".to_vec(),
        ..Config::default()
    };
    assert!(!format!("{c:?}").contains("sekrit"));
}
