//! A SoftEther VPN session's data channel: an engine with hub DEFAULT (SecureNAT on) and a
//! session logged in as vpnclient does, then the input as the client's stream, in chunks whose
//! sizes the first bytes pick; once plain and once with compression. Records, frames for the
//! hub and SecureNAT, keep-alives and broken framing: never a panic.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use etherhub_config::hash::{challenge_response, hash_user_password};
use etherhub_engine::softether::SoftEtherSessions;
use etherhub_engine::{Change, ConnId, Engine, HubSpec, UserAuth, UserSpec};
use etherhub_pack::Pack;
use etherhub_hub::VirtualHostConfig;
use etherhub_securenat::{DhcpConfig, NatConfig};
use etherhub_softether::session::Handoff;
use libfuzzer_sys::fuzz_target;

fn engine(now: Instant) -> Engine {
    let gw = Ipv4Addr::new(192, 168, 30, 1);
    let mut e = Engine::new(now);
    e.apply(
        now,
        Change::Hub(HubSpec {
            name: "DEFAULT".into(),
            online: true,
            static_network: None,
            securenat: Some(NatConfig {
                host: VirtualHostConfig {
                    ip: gw,
                    mask: Ipv4Addr::new(255, 255, 255, 0),
                    mac: [0x5e, 0, 0, 0, 0, 1],
                },
                nat_enabled: true,
                mtu: 1500,
                tcp_timeout: Duration::from_secs(1800),
                udp_timeout: Duration::from_secs(60),
                max_sessions: 64,
                dhcp: Some(DhcpConfig {
                    start: Ipv4Addr::new(192, 168, 30, 10),
                    end: Ipv4Addr::new(192, 168, 30, 200),
                    mask: Ipv4Addr::new(255, 255, 255, 0),
                    lease: Duration::from_secs(7200),
                    gateway: gw,
                    dns: gw,
                    dns2: Ipv4Addr::UNSPECIFIED,
                    domain: String::new(),
                    push_routes: Vec::new(),
                }),
                dns_servers: Vec::new(),
                seed: 1,
            }),
            access: Vec::new(),
        }),
    );
    e.apply(
        now,
        Change::User(UserSpec {
            hub: "DEFAULT".into(),
            name: "alice".into(),
            auth: UserAuth::Password(hash_user_password("alice", "pw")),
            ..UserSpec::default()
        }),
    );
    e
}

fn login(compress: bool) -> Vec<u8> {
    let random = [7u8; 20];
    let mut p = Pack::new();
    p.set_str("method", "login");
    p.set_str("hubname", "DEFAULT");
    p.set_str("username", "alice");
    p.set_int("authtype", 1);
    p.set_data(
        "secure_password",
        &challenge_response(&hash_user_password("alice", "pw"), &random),
    );
    p.set_int("max_connection", 2);
    p.set_bool("use_compress", compress);
    Handoff {
        random,
        session_key: [3; 20],
        cipher: String::new(),
        unix_secs: 0,
        request: p,
    }
    .to_bytes()
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    for compress in [false, true] {
        let t0 = Instant::now();
        let mut e = engine(t0);
        let se = e.register(Box::new(SoftEtherSessions::new()));
        let peer: SocketAddr = "198.18.0.2:40000".parse().unwrap();
        e.open_stream(t0, se, ConnId(1), peer, &login(compress));
        let chunk = usize::from(split % 64) + 1;
        for (i, part) in stream.chunks(chunk).enumerate() {
            let now = t0 + Duration::from_millis(i as u64);
            e.handle_stream(now, se, ConnId(1), part);
            e.end_of_batch(now);
            while e.poll_stream().is_some() {}
            while e.poll_outside().is_some() {}
            while e.poll_event().is_some() {}
            while e.poll_transmit().is_some() {}
        }
        e.handle_timeout(t0 + Duration::from_secs(60));
        while e.poll_stream().is_some() {}
    }
});
