//! SoftEther's VPN sessions through the engine, driven as vpnclient drives them (the real
//! vpnclient is in crates/server/tests/vpnclient.rs): the login handed over after the hello,
//! the welcome, frames in blocks both ways, additional connections, keep-alives, timeouts, and
//! the refusals.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use etherhub_config::hash::{challenge_response, hash_user_password};
use etherhub_pack::Pack;
use etherhub_softether::blocks::{BlockReader, BlockWriter, Record, KEEP_ALIVE_MAGIC};
use etherhub_softether::session::Handoff;
use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol};

use super::kit::{hub, user};
use super::stream::{arp_request, drain, names};
use crate::softether::{SoftEtherSessions, SESSION_TIMEOUT};
use crate::{ConnId, Engine, EngineEvent, ProtocolId};

const GW: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 1);
const RANDOM: [u8; 20] = [0x5a; 20];
const KEY: [u8; 20] = [0x33; 20];

fn engine() -> (Engine, ProtocolId, Instant) {
    let t0 = Instant::now();
    let mut e = Engine::new(t0);
    e.apply(t0, crate::Change::Hub(hub("DEFAULT", GW)));
    e.apply(t0, user("DEFAULT", "alice"));
    let id = e.register(Box::new(SoftEtherSessions::new()));
    (e, id, t0)
}

/// vpnclient's login for `user` with `password`, as the front door hands it over.
fn login(user: &str, password: &str, edit: impl FnOnce(&mut Pack)) -> Vec<u8> {
    let mut p = Pack::new();
    p.set_str("method", "login");
    p.set_str("hubname", "DEFAULT");
    p.set_str("username", user);
    p.set_int("authtype", 1);
    p.set_data(
        "secure_password",
        &challenge_response(&hash_user_password(user, password), &RANDOM),
    );
    p.set_str("hello", "SoftEther VPN Client Developer Edition");
    p.set_int("client_ver", 501);
    p.set_int("client_build", 9674);
    p.set_int("max_connection", 1);
    p.set_int("use_encrypt", 1);
    p.set_bool("qos", true);
    p.set_str("ClientOsName", "Linux");
    edit(&mut p);
    handoff(p)
}

fn handoff(request: Pack) -> Vec<u8> {
    Handoff {
        random: RANDOM,
        session_key: KEY,
        cipher: "TLS13_AES_256_GCM_SHA384".into(),
        unix_secs: 1_795_554_100,
        request,
    }
    .to_bytes()
}

fn additional(key: [u8; 20]) -> Vec<u8> {
    let mut p = Pack::new();
    p.set_str("method", "additional_connect");
    p.set_data("session_key", &key);
    handoff(p)
}

/// The PACK of the HTTP response at the start of `bytes`, and the bytes after it.
fn answer(bytes: &[u8]) -> (Pack, &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (
        Pack::parse(&bytes[end..end + len]).unwrap(),
        &bytes[end + len..],
    )
}

/// The frames and keep-alives in a connection's block stream.
fn records(bytes: &[u8], compressed: bool) -> (Vec<Vec<u8>>, usize) {
    let (mut frames, mut keepalives) = (Vec::new(), 0);
    BlockReader::new(compressed)
        .feed(bytes, &mut |r| match r {
            Record::Frame(f) => frames.push(f.to_vec()),
            Record::KeepAlive => keepalives += 1,
            Record::Dropped => panic!("the engine wrote a block it cannot read"),
        })
        .unwrap();
    (frames, keepalives)
}

fn blocks(frames: &[&[u8]], compressed: bool) -> Vec<u8> {
    let mut out = Vec::new();
    BlockWriter::new(compressed).frames(frames.iter().copied(), &mut out);
    out
}

fn arp_reply_for(frames: &[Vec<u8>], mac: [u8; 6]) -> bool {
    frames.iter().any(|f| {
        EthernetFrame::new_checked(&f[..])
            .is_ok_and(|e| e.ethertype() == EthernetProtocol::Arp && e.dst_addr().0 == mac)
            && matches!(
                ArpRepr::parse(&ArpPacket::new_checked(&f[14..]).unwrap()),
                Ok(ArpRepr::EthernetIpv4 { operation: ArpOperation::Reply, source_protocol_addr, .. })
                    if source_protocol_addr == GW
            )
    })
}

fn live(e: &Engine, session: &str) -> crate::Live {
    let hub = e.hub("DEFAULT").unwrap();
    let id = hub
        .sessions()
        .into_iter()
        .find(|s| s.name == session)
        .unwrap()
        .id;
    e.tunnel_view("DEFAULT", id).unwrap().live.unwrap()
}

#[test]
fn a_vpnclient_session_logs_in_switches_frames_and_adds_connections() {
    let (mut e, se, t0) = engine();
    let peer: SocketAddr = "198.18.0.2:40000".parse().unwrap();
    let (c1, c2, c3) = (ConnId(1), ConnId(2), ConnId(3));
    e.open_stream(
        t0,
        se,
        c1,
        peer,
        &login("ALICE", "pw", |p| {
            p.set_int("max_connection", 2);
            p.set_int("use_compress", 1);
        }),
    );
    let (w, closed) = drain(&mut e);
    assert!(closed.is_empty());
    let (welcome, rest) = answer(&w[&c1]);
    assert_eq!(welcome.str("session_name"), Some("SID-ALICE-2"));
    assert_eq!(welcome.data("session_key"), Some(&KEY[..]));
    assert_eq!(welcome.int("max_connection"), Some(2));
    assert_eq!(welcome.int("use_compress"), Some(1));
    assert_eq!(welcome.int("qos"), Some(0), "QoS is declined");
    assert_eq!(
        welcome.int("timeout"),
        Some(SESSION_TIMEOUT.as_millis() as u32)
    );
    // the data channel starts with a keep-alive from the server
    assert_eq!(&rest[..4], &KEEP_ALIVE_MAGIC.to_be_bytes());
    assert_eq!(names(&e), vec!["SID-SECURENAT-1", "SID-ALICE-2"]);

    // an ARP request in a compressed block: SecureNAT's answer comes back the same way
    let mac = [2, 0, 0, 0, 0, 0xa];
    let arp = arp_request(mac, Ipv4Addr::new(192, 168, 30, 20), GW);
    e.handle_stream(t0, se, c1, &blocks(&[&arp], true));
    let (w, _) = drain(&mut e);
    let (frames, _) = records(&w[&c1], true);
    assert!(arp_reply_for(&frames, mac), "{frames:?}");

    // a second connection joins with the session key; a third is one too many
    e.open_stream(t0, se, c2, peer, &additional(KEY));
    e.open_stream(t0, se, c3, peer, &additional(KEY));
    let (w, closed) = drain(&mut e);
    let (joined, _) = answer(&w[&c2]);
    assert_eq!(
        (joined.int("error"), joined.int("direction")),
        (Some(0), Some(0))
    );
    assert_eq!(answer(&w[&c3]).0.int("error"), Some(15));
    assert_eq!(closed, vec![c3]);
    let l = live(&e, "SID-ALICE-2");
    assert_eq!(
        (l.connections, l.max_connections, l.compressed),
        (2, 2, true)
    );
    // an unknown key: the session is gone as far as the client can tell (13)
    e.open_stream(t0, se, ConnId(4), peer, &additional([9; 20]));
    let (w, closed) = drain(&mut e);
    assert_eq!(answer(&w[&ConnId(4)]).0.int("error"), Some(13));
    assert_eq!(closed, vec![ConnId(4)]);

    // the first connection drops: the session goes on over the second
    e.stream_closed(t0, se, c1);
    e.handle_stream(t0, se, c2, &blocks(&[&arp], true));
    let (w, _) = drain(&mut e);
    let (frames, _) = records(&w[&c2], true);
    assert!(arp_reply_for(&frames, mac));
    assert_eq!(live(&e, "SID-ALICE-2").connections, 1);

    // idle connections get keep-alives; a connection silent for the timeout ends, and a
    // session without connections ends after the timeout too
    let t1 = t0 + SESSION_TIMEOUT / 2;
    e.handle_timeout(t1);
    let (w, _) = drain(&mut e);
    assert!(records(&w[&c2], true).1 >= 1, "a keep-alive within T/2");
    let t2 = t0 + SESSION_TIMEOUT + Duration::from_millis(1);
    e.handle_timeout(t2);
    let (_, closed) = drain(&mut e);
    assert_eq!(closed, vec![c2]);
    assert!(
        names(&e).contains(&"SID-ALICE-2".to_string()),
        "waits for the client to come back"
    );
    e.handle_timeout(t2 + SESSION_TIMEOUT);
    assert_eq!(names(&e), vec!["SID-SECURENAT-1"]);
}

#[test]
fn refusals_say_softethers_codes_and_bad_streams_end_their_connection() {
    let (mut e, se, t0) = engine();
    let peer: SocketAddr = "198.18.0.2:40000".parse().unwrap();
    let code = |e: &mut Engine, conn: ConnId, bytes: Vec<u8>| {
        e.open_stream(t0, se, conn, peer, &bytes);
        let (w, closed) = drain(e);
        assert_eq!(closed, vec![conn]);
        answer(&w[&conn]).0.int("error")
    };
    assert_eq!(
        code(&mut e, ConnId(1), login("alice", "wrong", |_| {})),
        Some(9)
    );
    let failed = std::iter::from_fn(|| e.poll_event())
        .filter(|ev| matches!(ev, EngineEvent::LoginFailed { client, .. } if *client == peer))
        .count();
    assert_eq!(failed, 1, "a wrong password is reported for the lockout");
    assert_eq!(
        code(&mut e, ConnId(2), login("nobody", "pw", |_| {})),
        Some(9)
    );
    let other_hub = login("alice", "pw", |p| p.set_str("hubname", "NOPE"));
    assert_eq!(code(&mut e, ConnId(3), other_hub), Some(8));
    let cert = login("alice", "pw", |p| p.set_int("authtype", 3));
    assert_eq!(code(&mut e, ConnId(4), cert), Some(7));
    let no_user = login("alice", "pw", |p| {
        p.remove("username");
    });
    assert_eq!(code(&mut e, ConnId(5), no_user), Some(4));
    e.open_stream(t0, se, ConnId(6), peer, b"not a handoff");
    assert_eq!(drain(&mut e).1, vec![ConnId(6)]);
    assert_eq!(names(&e), vec!["SID-SECURENAT-1"]);

    // a block announcing more than SoftEther's 3200 bytes ends that connection, not the server
    e.open_stream(t0, se, ConnId(7), peer, &login("alice", "pw", |_| {}));
    drain(&mut e);
    e.handle_stream(t0, se, ConnId(7), &[0, 0, 0, 1, 0, 0, 0x0c, 0x81]);
    assert_eq!(drain(&mut e).1, vec![ConnId(7)]);
    // the session key from another address: refused as if the session were gone, and
    // reported for the lockout
    let thief: SocketAddr = "198.18.9.9:40000".parse().unwrap();
    e.open_stream(t0, se, ConnId(9), thief, &additional(KEY));
    let (w, closed) = drain(&mut e);
    assert_eq!(answer(&w[&ConnId(9)]).0.int("error"), Some(13));
    assert_eq!(closed, vec![ConnId(9)]);
    assert!(std::iter::from_fn(|| e.poll_event())
        .any(|ev| matches!(ev, EngineEvent::LoginFailed { client, .. } if client == thief)));
    // a frame over 1600 bytes in a block within the limit is dropped, the connection stays
    e.open_stream(t0, se, ConnId(8), peer, &additional(KEY));
    drain(&mut e);
    let mut big = vec![0, 0, 0, 1, 0, 0, 0x07, 0xd0];
    big.extend(vec![0u8; 2000]);
    e.handle_stream(t0, se, ConnId(8), &big);
    assert!(drain(&mut e).1.is_empty());
}

/// alice (password "pw") on DEFAULT under `policy`.
fn alice(policy: etherhub_config::Policy) -> crate::Change {
    crate::Change::User(crate::UserSpec {
        hub: "DEFAULT".into(),
        name: "alice".into(),
        auth: crate::UserAuth::Password(hash_user_password("alice", "pw")),
        policy,
        ..Default::default()
    })
}

#[test]
fn the_users_policy_sets_connections_timeout_and_who_gets_in() {
    let (mut e, se, t0) = engine();
    let peer: SocketAddr = "198.18.0.2:40000".parse().unwrap();
    let mut policy = etherhub_config::Policy::default();
    policy.set_named("MaxConnection", "1").unwrap();
    policy.set_named("TimeOut", "8").unwrap();
    policy.set_named("MultiLogins", "1").unwrap();
    e.apply(t0, alice(policy));
    // the client asks for 4 connections and half duplex; the policy allows one
    let wants = |p: &mut Pack| {
        p.set_int("max_connection", 4);
        p.set_int("half_connection", 1);
    };
    e.open_stream(t0, se, ConnId(1), peer, &login("alice", "pw", wants));
    let (w, closed) = drain(&mut e);
    assert!(closed.is_empty());
    let (welcome, _) = answer(&w[&ConnId(1)]);
    assert_eq!(welcome.int("max_connection"), Some(1));
    assert_eq!(welcome.int("half_connection"), Some(0));
    assert_eq!(welcome.int("timeout"), Some(8000));
    assert_eq!(welcome.int("policy:MultiLogins"), Some(1));
    e.open_stream(t0, se, ConnId(2), peer, &additional(KEY));
    let (w, _) = drain(&mut e);
    assert_eq!(answer(&w[&ConnId(2)]).0.int("error"), Some(15));
    // a second login of alice: too many sessions of one user (20)
    e.open_stream(t0, se, ConnId(3), peer, &login("alice", "pw", |_| {}));
    let (w, _) = drain(&mut e);
    assert_eq!(answer(&w[&ConnId(3)]).0.int("error"), Some(20));
    // the policy's timeout, not the default one, ends a silent connection
    e.handle_timeout(t0 + Duration::from_secs(9));
    assert_eq!(drain(&mut e).1, vec![ConnId(1)]);
    // access denied by policy: error 12, not a wrong password
    policy.set_named("Access", "no").unwrap();
    e.apply(t0, alice(policy));
    e.open_stream(t0, se, ConnId(4), peer, &login("alice", "pw", |_| {}));
    let (w, _) = drain(&mut e);
    assert_eq!(answer(&w[&ConnId(4)]).0.int("error"), Some(12));
}

#[test]
fn monitoring_mode_needs_monitor_port_and_auto_disconnect_ends_the_session() {
    let (mut e, se, t0) = engine();
    let peer: SocketAddr = "198.18.0.2:40000".parse().unwrap();
    let monitor = |p: &mut Pack| p.set_bool("require_monitor_mode", true);
    // monitoring mode without MonitorPort: SoftEther's 107
    e.open_stream(t0, se, ConnId(1), peer, &login("alice", "pw", monitor));
    let (w, _) = drain(&mut e);
    assert_eq!(answer(&w[&ConnId(1)]).0.int("error"), Some(107));
    // with it, the session monitors: its port gets the monitor flag
    let mut policy = etherhub_config::Policy::default();
    policy.set_named("MonitorPort", "yes").unwrap();
    policy.set_named("AutoDisconnect", "30").unwrap();
    policy.set_named("TimeOut", "60").unwrap();
    e.apply(t0, alice(policy));
    e.open_stream(t0, se, ConnId(2), peer, &login("alice", "pw", monitor));
    let (w, _) = drain(&mut e);
    assert_eq!(answer(&w[&ConnId(2)]).0.int("error"), None);
    let hub = e.hub("DEFAULT").unwrap();
    let session = hub
        .sessions()
        .into_iter()
        .find(|s| s.user == "alice")
        .expect("alice's session");
    assert!(hub.session_policy(session.id).unwrap().monitor);
    // AutoDisconnect 30 s (its connection's timeout is 60 s): the session ends when they
    // have passed
    e.handle_timeout(t0 + Duration::from_secs(29));
    let alive = |e: &Engine| {
        e.hub("DEFAULT")
            .unwrap()
            .sessions()
            .iter()
            .any(|s| s.user == "alice")
    };
    assert!(alive(&e), "not yet");
    e.handle_timeout(t0 + Duration::from_secs(31));
    e.handle_timeout(t0 + Duration::from_secs(32));
    assert!(!alive(&e), "ended by AutoDisconnect");
    // the policy no longer allows monitoring: a monitoring session ends
    let mut policy = etherhub_config::Policy::default();
    policy.set_named("MonitorPort", "yes").unwrap();
    e.apply(t0, alice(policy));
    let t1 = t0 + Duration::from_secs(40);
    e.open_stream(t1, se, ConnId(3), peer, &login("alice", "pw", monitor));
    drain(&mut e);
    assert!(alive(&e));
    e.apply(t1, alice(etherhub_config::Policy::default()));
    assert!(!alive(&e), "monitoring ends with MonitorPort");
}
