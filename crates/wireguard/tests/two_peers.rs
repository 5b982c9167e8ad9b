//! Two peers in memory: a plain boringtun `Tunn` plays the client against `Server`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use etherhub_wireguard::{
    generate_private_key, public_key_of, Action, Event, Key, KeyAccess, PeerId, Server,
};

const SERVER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));

fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, last)), port)
}

/// The key directory of these tests: registered keys and their own preshared keys.
type Keys = HashMap<Key, KeyAccess>;

fn register(keys: &mut Keys, key: Key) {
    keys.insert(key, KeyAccess::default());
}

/// A minimal IPv4/UDP packet with a correct total length (boringtun checks it on receive).
fn ipv4_packet(payload: &[u8]) -> Vec<u8> {
    let total = 28 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 0, 0, 2]);
    p[16..20].copy_from_slice(&[10, 0, 0, 1]);
    p[20..22].copy_from_slice(&5000u16.to_be_bytes());
    p[22..24].copy_from_slice(&53u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

struct Client {
    tunn: Tunn,
    public: Key,
    addr: SocketAddr,
    buf: Vec<u8>,
}

impl Client {
    fn new(server_public: Key, psk: Option<Key>, addr: SocketAddr) -> Self {
        let private = generate_private_key();
        let tunn = Tunn::new(
            StaticSecret::from(private),
            PublicKey::from(server_public),
            psk,
            None,
            7,
            None,
        );
        Client {
            tunn,
            public: public_key_of(&private),
            addr,
            buf: vec![0u8; 2048],
        }
    }

    fn initiation(&mut self, force: bool) -> Vec<u8> {
        match self.tunn.format_handshake_initiation(&mut self.buf, force) {
            TunnResult::WriteToNetwork(b) => b.to_vec(),
            other => panic!("client made no initiation: {other:?}"),
        }
    }

    /// Feeds a datagram from the server; returns what the client wants to send back, if anything.
    fn receive(&mut self, datagram: &[u8]) -> Option<Vec<u8>> {
        match self
            .tunn
            .decapsulate(Some(SERVER_IP), datagram, &mut self.buf)
        {
            TunnResult::WriteToNetwork(b) => Some(b.to_vec()),
            TunnResult::Done => None,
            other => panic!("client refused a server datagram: {other:?}"),
        }
    }

    fn receive_packet(&mut self, datagram: &[u8]) -> Vec<u8> {
        match self
            .tunn
            .decapsulate(Some(SERVER_IP), datagram, &mut self.buf)
        {
            TunnResult::WriteToTunnelV4(p, _) => p.to_vec(),
            other => panic!("expected an IP packet, got {other:?}"),
        }
    }

    fn encrypt(&mut self, packet: &[u8]) -> Vec<u8> {
        match self.tunn.encapsulate(packet, &mut self.buf) {
            TunnResult::WriteToNetwork(b) => b.to_vec(),
            other => panic!("client could not encrypt: {other:?}"),
        }
    }
}

struct Setup {
    server: Server,
    keys: Keys,
    client: Client,
    out: Vec<u8>,
    now: Instant,
}

impl Setup {
    fn new() -> Self {
        Self::with_server(Server::new(generate_private_key(), None))
    }

    fn with_server(server: Server) -> Self {
        let client = Client::new(server.public_key(), None, addr(10, 51820));
        let mut keys = Keys::new();
        register(&mut keys, client.public);
        Setup {
            server,
            keys,
            client,
            out: vec![0u8; 2048],
            now: Instant::now(),
        }
    }

    /// Datagram from the client (at its current address) to the server.
    fn client_sends(&mut self, datagram: &[u8]) -> Action<'_> {
        self.server.handle_datagram(
            self.now,
            self.client.addr,
            datagram,
            &mut self.out,
            &self.keys,
        )
    }

    /// Runs the full handshake including the client's confirming keepalive; returns the peer.
    fn connect(&mut self) -> PeerId {
        let init = self.client.initiation(false);
        let client_addr = self.client.addr;
        let response = match self.client_sends(&init) {
            Action::Send(to, b) => {
                assert_eq!(to, client_addr);
                b.to_vec()
            }
            other => panic!("no handshake response: {other:?}"),
        };
        assert_eq!(response.len(), 92);
        let keepalive = self
            .client
            .receive(&response)
            .expect("client confirms with a keepalive");
        assert_eq!(keepalive.len(), 32);
        assert_eq!(self.client_sends(&keepalive), Action::Nothing);
        match self.server.poll_event() {
            Some(Event::Connected {
                peer,
                key,
                endpoint,
            }) => {
                assert_eq!(key, self.client.public);
                assert_eq!(endpoint, self.client.addr);
                peer
            }
            other => panic!("expected Connected, got {other:?}"),
        }
    }

    /// The server encrypts `packet` for `peer`; returns where it went and the datagram.
    fn server_sends(&mut self, peer: PeerId, packet: &[u8]) -> (SocketAddr, Vec<u8>) {
        match self.server.encapsulate(peer, packet, &mut self.out) {
            Action::Send(to, b) => (to, b.to_vec()),
            other => panic!("server did not send: {other:?}"),
        }
    }
}

#[test]
fn handshake_then_data_both_ways() {
    let mut s = Setup::new();
    let peer = s.connect();
    assert_eq!(s.server.peer_by_key(&s.client.public), Some(peer));
    assert!(peer.0 > 0 && peer.0 < 1 << 24);
    assert_eq!(s.server.stats().handshakes_ok, 1);

    let up = ipv4_packet(b"hello server");
    let datagram = s.client.encrypt(&up);
    match s.client_sends(&datagram) {
        Action::Packet(p, bytes) => {
            assert_eq!(p, peer);
            assert_eq!(bytes, &up[..]);
        }
        other => panic!("expected a packet, got {other:?}"),
    }

    let down = ipv4_packet(b"hello client, longer reply");
    let (to, datagram) = s.server_sends(peer, &down);
    assert_eq!(to, s.client.addr);
    assert_eq!(s.client.receive_packet(&datagram), down);

    let info = s.server.peer(peer).unwrap();
    assert_eq!(info.public_key, s.client.public);
    assert_eq!((info.rx_packets, info.rx_bytes), (1, up.len() as u64));
    assert_eq!((info.tx_packets, info.tx_bytes), (1, down.len() as u64));
    assert_eq!(info.last_handshake, Some(s.now));
    assert_eq!(info.dropped, 0);
    assert_eq!(s.server.peers().len(), 1);
    assert!(s.server.poll_event().is_none());
}

#[test]
fn packets_sent_before_confirmation_are_flushed() {
    let mut s = Setup::new();
    let init = s.client.initiation(false);
    let response = match s.client_sends(&init) {
        Action::Send(_, b) => b.to_vec(),
        other => panic!("no handshake response: {other:?}"),
    };
    let peer = match s.server.poll_event() {
        Some(Event::Connected { peer, .. }) => peer,
        other => panic!("expected Connected, got {other:?}"),
    };
    // As responder the server may not use the session before the client has: the packet waits.
    let early = ipv4_packet(b"early");
    assert_eq!(
        s.server.encapsulate(peer, &early, &mut s.out),
        Action::Nothing
    );
    assert_eq!(s.server.poll_queued(&mut s.out), Action::Nothing);

    let keepalive = s.client.receive(&response).unwrap();
    assert_eq!(s.client_sends(&keepalive), Action::Nothing);
    let datagram = match s.server.poll_queued(&mut s.out) {
        Action::Send(to, b) => {
            assert_eq!(to, s.client.addr);
            b.to_vec()
        }
        other => panic!("queued packet not flushed: {other:?}"),
    };
    assert_eq!(s.server.poll_queued(&mut s.out), Action::Nothing);
    assert_eq!(s.server.flush(peer, &mut s.out), Action::Nothing);
    assert_eq!(s.client.receive_packet(&datagram), early);
    assert_eq!(s.server.peer(peer).unwrap().tx_packets, 1);
}

#[test]
fn unknown_key_gets_silence() {
    let mut s = Setup::new();
    let mut stranger = Client::new(s.server.public_key(), None, addr(66, 4000));
    let init = stranger.initiation(false);
    let action = s
        .server
        .handle_datagram(s.now, stranger.addr, &init, &mut s.out, &s.keys);
    assert_eq!(action, Action::Nothing);
    assert_eq!(s.server.stats().unknown_key_initiations, 1);
    assert_eq!(s.server.stats().handshakes_ok, 0);
    assert!(s.server.peers().is_empty());
    assert!(s.server.poll_event().is_none());
}

#[test]
fn a_deleted_key_loses_its_session_and_its_handshakes() {
    let mut s = Setup::new();
    let peer = s.connect();
    let key = s.client.public;
    s.keys.remove(&key);
    assert_eq!(s.server.disconnect_key(&key), Some(peer));
    assert_eq!(s.server.poll_event(), Some(Event::Disconnected { peer }));
    assert!(s.server.peer(peer).is_none());
    assert_eq!(s.server.peer_by_key(&key), None);
    assert_eq!(s.server.disconnect_key(&key), None);

    let datagram = s.client.encrypt(&ipv4_packet(b"anyone there?"));
    assert_eq!(s.client_sends(&datagram), Action::Nothing);
    assert_eq!(s.server.stats().unknown_index_dropped, 1);
    assert_eq!(
        s.server.encapsulate(peer, &ipv4_packet(b"x"), &mut s.out),
        Action::Nothing
    );

    // The directory no longer knows the key: a new handshake is met with silence.
    let init = s.client.initiation(true);
    assert_eq!(s.client_sends(&init), Action::Nothing);
    assert_eq!(s.server.stats().unknown_key_initiations, 1);
}

#[test]
fn a_disconnected_key_comes_back_as_a_new_peer_when_the_directory_allows() {
    let mut s = Setup::new();
    let peer = s.connect();
    let key = s.client.public;
    assert_eq!(s.server.disconnect_key(&key), Some(peer));
    assert_eq!(s.server.poll_event(), Some(Event::Disconnected { peer }));
    let again = s.connect();
    assert_ne!(again, peer);
    assert_eq!(s.server.peer_by_key(&key), Some(again));
}

#[test]
fn roaming_follows_the_authenticated_source() {
    let mut s = Setup::new();
    let peer = s.connect();
    let old = s.client.addr;
    let new = addr(20, 40000);
    s.client.addr = new;

    let datagram = s.client.encrypt(&ipv4_packet(b"from the new network"));
    assert!(matches!(s.client_sends(&datagram), Action::Packet(p, _) if p == peer));
    assert_eq!(s.server.peer(peer).unwrap().endpoint, new);
    let (to, reply) = s.server_sends(peer, &ipv4_packet(b"reply"));
    assert_eq!(to, new);
    s.client.receive_packet(&reply);

    // A forged copy from elsewhere (a replay) does not move the endpoint back.
    let replayed = s
        .server
        .handle_datagram(s.now, old, &datagram, &mut s.out, &s.keys);
    assert_eq!(replayed, Action::Nothing);
    assert_eq!(s.server.peer(peer).unwrap().endpoint, new);
    assert_eq!(s.server.peer(peer).unwrap().dropped, 1);
}

#[test]
fn malformed_datagrams_are_counted() {
    let mut s = Setup::new();
    let peer = s.connect();
    let base = s.server.stats().malformed_dropped;

    assert_eq!(s.client_sends(&[1, 2, 3]), Action::Nothing);
    let mut garbage_init = vec![0u8; 148];
    garbage_init[0] = 1;
    assert_eq!(s.client_sends(&garbage_init), Action::Nothing);
    assert_eq!(s.server.stats().malformed_dropped, base + 2);

    // A real data message for the live peer with one bit flipped fails the AEAD tag.
    let mut datagram = s.client.encrypt(&ipv4_packet(b"tamper"));
    let last = datagram.len() - 1;
    datagram[last] ^= 1;
    assert_eq!(s.client_sends(&datagram), Action::Nothing);
    assert_eq!(s.server.stats().malformed_dropped, base + 3);
    assert_eq!(s.server.peer(peer).unwrap().dropped, 1);
    assert_eq!(s.server.peer(peer).unwrap().rx_packets, 0);
}

#[test]
fn rekey_keeps_the_peer_and_replayed_initiation_is_refused() {
    let mut s = Setup::new();
    let peer = s.connect();
    let init = s.client.initiation(true);
    let response = match s.client_sends(&init) {
        Action::Send(_, b) => b.to_vec(),
        other => panic!("no response to rekey: {other:?}"),
    };
    assert_eq!(s.server.stats().handshakes_ok, 2);
    assert!(
        s.server.poll_event().is_none(),
        "rekey is not a new connection"
    );
    assert_eq!(s.server.peer_by_key(&s.client.public), Some(peer));
    let keepalive = s.client.receive(&response).unwrap();
    assert_eq!(s.client_sends(&keepalive), Action::Nothing);

    assert_eq!(s.client_sends(&init), Action::Nothing);
    assert_eq!(s.server.stats().handshakes_ok, 2);

    let packet = ipv4_packet(b"on the new session");
    let datagram = s.client.encrypt(&packet);
    assert!(matches!(s.client_sends(&datagram), Action::Packet(p, b) if p == peer && b == packet));
}

#[test]
fn cookie_reply_under_load_then_handshake_with_mac2() {
    // Rate limit 0: every handshake counts as "under load".
    let mut s = Setup::with_server(Server::with_handshake_rate_limit(
        generate_private_key(),
        None,
        0,
    ));
    let init = s.client.initiation(false);
    let client_addr = s.client.addr;
    let cookie = match s.client_sends(&init) {
        Action::Send(to, b) => {
            assert_eq!(to, client_addr);
            b.to_vec()
        }
        other => panic!("expected a cookie reply, got {other:?}"),
    };
    assert_eq!((cookie.len(), cookie[0]), (64, 3));
    assert_eq!(s.server.stats().cookie_replies_sent, 1);
    assert!(
        s.server.peers().is_empty(),
        "no state before the cookie is proven"
    );
    assert_eq!(s.client.receive(&cookie), None);

    // The retry carries MAC2 and gets through.
    let init = s.client.initiation(true);
    match s.client_sends(&init) {
        Action::Send(_, b) => assert_eq!(b.len(), 92),
        other => panic!("expected a response, got {other:?}"),
    }
    assert_eq!(s.server.stats().cookie_replies_sent, 1);
    assert!(matches!(
        s.server.poll_event(),
        Some(Event::Connected { .. })
    ));
}

#[test]
fn under_load_one_source_with_valid_mac2_is_rate_limited() {
    // Rate limit 0: always under load. A client that holds a cookie can pass the gate, but its
    // address gets only a burst of handshakes processed, then about 20 a second.
    let mut s = Setup::with_server(Server::with_handshake_rate_limit(
        generate_private_key(),
        None,
        0,
    ));
    let init = s.client.initiation(false);
    let cookie = match s.client_sends(&init) {
        Action::Send(_, b) => b.to_vec(),
        other => panic!("expected a cookie reply, got {other:?}"),
    };
    assert_eq!(s.client.receive(&cookie), None);
    let mut responses = 0;
    for _ in 0..50 {
        let init = s.client.initiation(true);
        if let Action::Send(_, b) = s.client_sends(&init) {
            assert_eq!(
                b.len(),
                92,
                "a MAC2 initiation gets a response, not a cookie"
            );
            responses += 1;
        }
    }
    let limited = s.server.stats().handshakes_rate_limited;
    assert!(
        (1..=etherhub_wireguard::PER_SOURCE_BURST as usize).contains(&responses),
        "{responses} handshakes processed in a burst"
    );
    assert_eq!(limited, 50 - responses as u64);
    // a second later the bucket has refilled for a burst again
    s.now += Duration::from_secs(1);
    let init = s.client.initiation(true);
    assert!(matches!(s.client_sends(&init), Action::Send(_, b) if b.len() == 92));
}

#[test]
fn preshared_keys_must_match() {
    let psk = generate_private_key();
    let mut server = Server::new(generate_private_key(), Some(psk));
    let mut good = Client::new(server.public_key(), Some(psk), addr(1, 1));
    let mut bad = Client::new(server.public_key(), None, addr(2, 2));
    let mut keys = Keys::new();
    register(&mut keys, good.public);
    register(&mut keys, bad.public);
    let mut out = vec![0u8; 2048];
    let now = Instant::now();

    // The preshared key enters only the response, so the server cannot tell at the initiation;
    // the client with the wrong key cannot open the response and no data ever flows.
    let init = bad.initiation(false);
    let response = match server.handle_datagram(now, bad.addr, &init, &mut out, &keys) {
        Action::Send(_, b) => b.to_vec(),
        other => panic!("expected a response, got {other:?}"),
    };
    assert!(matches!(
        bad.tunn
            .decapsulate(Some(SERVER_IP), &response, &mut bad.buf),
        TunnResult::Err(_)
    ));

    let init = good.initiation(false);
    let response = match server.handle_datagram(now, good.addr, &init, &mut out, &keys) {
        Action::Send(_, b) => b.to_vec(),
        other => panic!("expected a response, got {other:?}"),
    };
    let keepalive = good
        .receive(&response)
        .expect("good client accepts the response");
    assert_eq!(
        server.handle_datagram(now, good.addr, &keepalive, &mut out, &keys),
        Action::Nothing
    );
    let packet = ipv4_packet(b"psk ok");
    let datagram = good.encrypt(&packet);
    assert!(matches!(
        server.handle_datagram(now, good.addr, &datagram, &mut out, &keys),
        Action::Packet(_, b) if b == packet
    ));
}

#[test]
fn peer_without_handshake_for_180s_expires() {
    let mut s = Setup::new();
    let peer = s.connect();
    let mut sends = Vec::new();
    s.server
        .handle_timers(s.now + Duration::from_secs(1), &mut sends);
    assert!(s.server.peer(peer).is_some());
    assert!(s.server.poll_event().is_none());

    s.server
        .handle_timers(s.now + Duration::from_secs(181), &mut sends);
    assert_eq!(s.server.poll_event(), Some(Event::Disconnected { peer }));
    assert!(s.server.peer(peer).is_none());
    assert_eq!(s.server.peer_by_key(&s.client.public), None);
    assert_eq!(s.server.stats().peers_expired, 1);

    // The key is still registered: the client can come back as a new peer.
    let again = s.connect();
    assert_ne!(again, peer);
}

#[test]
fn small_buffers_are_refused_without_panicking() {
    let mut s = Setup::new();
    let peer = s.connect();
    let mut tiny = [0u8; 64];
    let big = ipv4_packet(&[7u8; 200]);
    assert_eq!(s.server.encapsulate(peer, &big, &mut tiny), Action::Nothing);
    let datagram = s.client.encrypt(&big);
    assert_eq!(
        s.server
            .handle_datagram(s.now, s.client.addr, &datagram, &mut tiny, &s.keys),
        Action::Nothing
    );
    assert_eq!(s.server.peer(peer).unwrap().dropped, 1);
}

#[test]
fn many_keys_are_looked_up_by_hash() {
    let mut server = Server::new(generate_private_key(), None);
    let mut keys = Keys::new();
    for i in 0..100_000u32 {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&i.to_le_bytes());
        register(&mut keys, k);
    }
    let mut client = Client::new(server.public_key(), None, addr(3, 3));
    register(&mut keys, client.public);
    let mut out = vec![0u8; 2048];
    let init = client.initiation(false);
    let started = Instant::now();
    assert!(matches!(
        server.handle_datagram(Instant::now(), client.addr, &init, &mut out, &keys),
        Action::Send(..)
    ));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn server_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Server>();
}
