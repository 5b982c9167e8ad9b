//! The seam with a stream protocol: a toy protocol over "TCP connections" logs in with a
//! password the engine checks, then carries Ethernet frames, length-prefixed, both ways. It
//! stands for the protocols to come (SoftEther's own, SSTP, OpenVPN over TCP): a core and a
//! registration, nothing else.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr,
};

use super::kit::{hub, user};
use crate::{
    AddressRule, AuthRequest, CloseReason, ConnId, Credential, Engine, Io, Medium, Opened,
    Protocol, SessionDetails, StreamOutput, TunnelId,
};

struct Conn {
    buf: Vec<u8>,
    peer: SocketAddr,
    tunnel: Option<TunnelId>,
}

/// `LOGIN hub user password\n`, then frames as a 2-byte length and the frame.
#[derive(Default)]
struct Toy {
    conns: HashMap<ConnId, Conn>,
    next: u32,
}

impl Toy {
    fn conn_of(&self, tunnel: TunnelId) -> Option<ConnId> {
        self.conns
            .iter()
            .find(|(_, c)| c.tunnel == Some(tunnel))
            .map(|(id, _)| *id)
    }

    fn run(&mut self, id: ConnId, io: &mut dyn Io) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.tunnel.is_none() {
            let Some(end) = c.buf.iter().position(|&b| b == b'\n') else {
                return;
            };
            let line: Vec<u8> = c.buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line).trim().to_string();
            let w: Vec<&str> = line.split(' ').collect();
            let Some(["LOGIN", hub, user, password]) = w
                .get(..4)
                .and_then(|w| w.try_into().ok())
                .map(|a: [&str; 4]| a)
            else {
                io.close_stream(id);
                return;
            };
            match io.authenticate(AuthRequest::Password {
                hub,
                user,
                password,
            }) {
                Ok(g) => {
                    self.next += 1;
                    let t = TunnelId {
                        protocol: io.protocol(),
                        index: self.next,
                    };
                    c.tunnel = Some(t);
                    io.write_stream(id, b"OK\n");
                    let _ = io.opened(Opened {
                        tunnel: t,
                        hub: g.hub,
                        user: g.user,
                        medium: Medium::Ethernet,
                        client: c.peer,
                        address: AddressRule::Any,
                        credential: Credential::Password,
                        label: user.to_string(),
                        details: SessionDetails {
                            protocol: "TOY".into(),
                            ..Default::default()
                        },
                        monitor: false,
                    });
                }
                Err(e) => {
                    io.write_stream(id, format!("ERR {e:?}\n").as_bytes());
                    io.close_stream(id);
                    self.conns.remove(&id);
                    return;
                }
            }
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let t = c.tunnel.expect("logged in");
        while c.buf.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([c.buf[0], c.buf[1]]));
            if c.buf.len() < 2 + len {
                break;
            }
            let frame: Vec<u8> = c.buf.drain(..2 + len).skip(2).collect();
            io.packet(t, &frame);
        }
    }
}

impl Protocol for Toy {
    fn name(&self) -> &'static str {
        "toy"
    }

    fn open_stream(
        &mut self,
        _now: Instant,
        conn: ConnId,
        peer: SocketAddr,
        bytes: &[u8],
        io: &mut dyn Io,
    ) {
        self.conns.insert(
            conn,
            Conn {
                buf: bytes.to_vec(),
                peer,
                tunnel: None,
            },
        );
        self.run(conn, io);
    }

    fn handle_stream(&mut self, _now: Instant, conn: ConnId, bytes: &[u8], io: &mut dyn Io) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.buf.extend_from_slice(bytes);
        }
        self.run(conn, io);
    }

    fn stream_closed(&mut self, _now: Instant, conn: ConnId, io: &mut dyn Io) {
        if let Some(t) = self.conns.remove(&conn).and_then(|c| c.tunnel) {
            io.closed(t, CloseReason::Ended);
        }
    }

    fn send(&mut self, _now: Instant, tunnel: TunnelId, frame: Vec<u8>, io: &mut dyn Io) {
        assert!(
            !frame.windows(4).any(|w| w == b"BOOM"),
            "a frame this core cannot take"
        );
        if let Some(conn) = self.conn_of(tunnel) {
            let mut out = (frame.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&frame);
            io.write_stream(conn, &out);
        }
    }

    fn close(&mut self, _now: Instant, tunnel: TunnelId, io: &mut dyn Io) {
        if let Some(conn) = self.conn_of(tunnel) {
            self.conns.remove(&conn);
            io.close_stream(conn);
        }
    }
}

fn framed(frame: &[u8]) -> Vec<u8> {
    let mut v = (frame.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(frame);
    v
}

pub(super) fn ethernet(
    src: [u8; 6],
    dst: [u8; 6],
    ethertype: EthernetProtocol,
    payload: &[u8],
) -> Vec<u8> {
    let repr = EthernetRepr {
        src_addr: EthernetAddress(src),
        dst_addr: EthernetAddress(dst),
        ethertype,
    };
    let mut buf = vec![0u8; repr.buffer_len() + payload.len()];
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    repr.emit(&mut f);
    f.payload_mut().copy_from_slice(payload);
    buf
}

pub(super) fn arp_request(src_mac: [u8; 6], src_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(src_mac),
        source_protocol_addr: src_ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    let mut arp = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut arp[..]));
    ethernet(src_mac, [0xff; 6], EthernetProtocol::Arp, &arp)
}

/// The hub's session names.
pub(super) fn names(e: &Engine) -> Vec<String> {
    e.hub("DEFAULT")
        .unwrap()
        .sessions()
        .into_iter()
        .map(|s| s.name)
        .collect()
}

/// What the engine wrote to and closed of each connection.
pub(super) fn drain(e: &mut Engine) -> (HashMap<ConnId, Vec<u8>>, Vec<ConnId>) {
    let (mut writes, mut closes) = (HashMap::<ConnId, Vec<u8>>::new(), Vec::new());
    while let Some(o) = e.poll_stream() {
        match o {
            StreamOutput::Write { conn, bytes } => writes.entry(conn).or_default().extend(bytes),
            StreamOutput::Close { conn } => closes.push(conn),
        }
    }
    (writes, closes)
}

/// The frames in a connection's output after its `OK\n`.
fn frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    if let Some(rest) = bytes.strip_prefix(b"OK\n") {
        bytes = rest;
    }
    let mut v = Vec::new();
    while bytes.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
        v.push(bytes[2..2 + len].to_vec());
        bytes = &bytes[2 + len..];
    }
    v
}

#[test]
fn a_stream_protocol_logs_in_through_the_accounts_and_switches_frames() {
    let t0 = Instant::now();
    let mut e = Engine::new(t0);
    let gw = Ipv4Addr::new(192, 168, 30, 1);
    e.apply(t0, crate::Change::Hub(hub("DEFAULT", gw)));
    e.apply(t0, user("DEFAULT", "alice"));
    e.apply(t0, user("DEFAULT", "bob"));
    let toy = e.register(Box::new(Toy::default()));
    let peer: SocketAddr = "198.18.1.9:40000".parse().unwrap();
    let (alice, bob) = (ConnId(1), ConnId(3));
    e.open_stream(t0, toy, alice, peer, b"LOGIN default ALICE pw\n");
    e.open_stream(t0, toy, ConnId(2), peer, b"LOGIN DEFAULT bob wrong\n");
    e.open_stream(t0, toy, bob, peer, b"LOGIN DEFAULT bob pw\n");
    let (w, closed) = drain(&mut e);
    assert_eq!(w[&alice], b"OK\n");
    assert_eq!(w[&ConnId(2)], b"ERR AccessDenied\n");
    assert_eq!(closed, vec![ConnId(2)]);
    assert_eq!(
        names(&e),
        vec!["SID-SECURENAT-1", "SID-ALICE-[TOY]-2", "SID-BOB-[TOY]-3"]
    );

    // alice asks for the gateway's MAC: SecureNAT answers through the engine
    let (amac, bmac) = ([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb]);
    let a_ip = Ipv4Addr::new(192, 168, 30, 20);
    e.handle_stream(t0, toy, alice, &framed(&arp_request(amac, a_ip, gw)));
    let (w, _) = drain(&mut e);
    let replies = frames(&w[&alice]);
    let reply = replies
        .iter()
        .find(|f| {
            EthernetFrame::new_checked(&f[..])
                .is_ok_and(|f| f.ethertype() == EthernetProtocol::Arp && f.dst_addr().0 == amac)
        })
        .expect("an ARP reply for alice");
    let arp = ArpRepr::parse(&ArpPacket::new_checked(&reply[14..]).unwrap()).unwrap();
    assert!(
        matches!(arp, ArpRepr::EthernetIpv4 { operation: ArpOperation::Reply, source_protocol_addr, .. } if source_protocol_addr == gw)
    );

    // bob's frame to alice's MAC reaches alice alone
    let hello = ethernet(
        bmac,
        amac,
        EthernetProtocol::Unknown(0x88b5),
        b"hello alice",
    );
    e.handle_stream(t0, toy, bob, &framed(&hello));
    let (w, _) = drain(&mut e);
    assert_eq!(frames(&w[&alice]), vec![hello]);
    assert!(!w.contains_key(&bob));

    // a frame alice's core cannot take: her tunnel alone goes, bob's stays
    let boom = ethernet(bmac, amac, EthernetProtocol::Unknown(0x88b5), b"BOOM");
    e.handle_stream(t0, toy, bob, &framed(&boom));
    let (_, closed) = drain(&mut e);
    assert_eq!(closed, vec![alice]);
    assert_eq!(names(&e), vec!["SID-SECURENAT-1", "SID-BOB-[TOY]-3"]);
    let f = e.health().last_fault.unwrap();
    assert_eq!(f.session.as_deref(), Some("SID-ALICE-[TOY]-2"));
    assert!(f.message.contains("cannot take"));
    // bob still reaches the gateway
    e.handle_stream(
        t0,
        toy,
        bob,
        &framed(&arp_request(bmac, Ipv4Addr::new(192, 168, 30, 21), gw)),
    );
    let (w, _) = drain(&mut e);
    assert!(!frames(&w[&bob]).is_empty());
    // a changed password ends bob's password session
    e.apply(
        t0,
        crate::Change::User(crate::UserSpec {
            hub: "DEFAULT".into(),
            name: "bob".into(),
            auth: crate::UserAuth::Password(etherhub_config::hash::hash_user_password(
                "bob", "new",
            )),
            ..Default::default()
        }),
    );
    let (_, closed) = drain(&mut e);
    assert_eq!(closed, vec![bob]);
}
