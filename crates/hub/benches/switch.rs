//! The hub's forwarding path: an IP packet from one WireGuard (L3) session to another, through
//! the L3 adapter (wrap in Ethernet), the learning switch, and the peer's adapter (unwrap).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etherhub_config::AccessRule;
use etherhub_hub::{Delivery, Hub, PortPolicy, VirtualHostConfig};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{IpProtocol, Ipv4Packet, Ipv4Repr};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Instant;

fn ipv4(src: [u8; 4], dst: [u8; 4], total: usize) -> Vec<u8> {
    let repr = Ipv4Repr {
        src_addr: Ipv4Addr::from(src),
        dst_addr: Ipv4Addr::from(dst),
        next_header: IpProtocol::Udp,
        payload_len: total - 20,
        hop_limit: 64,
    };
    let mut buf = vec![0u8; total];
    let mut p = Ipv4Packet::new_unchecked(&mut buf);
    repr.emit(&mut p, &ChecksumCapabilities::default());
    buf
}

fn forward(c: &mut Criterion) {
    let now = Instant::now();
    let mut hub = Hub::new("DEFAULT");
    hub.set_securenat(Some(VirtualHostConfig::default()), now);
    let a = hub.add_l3_session("a", "WIREGUARD", None, now);
    let b = hub.add_l3_session("b", "WIREGUARD", None, now);
    let mut out: Vec<Delivery> = Vec::new();
    let from_b = ipv4([192, 168, 30, 234], [192, 168, 30, 1], 64);
    hub.input_ip(b, &from_b, now, &mut out);
    let pkt = ipv4([192, 168, 30, 233], [192, 168, 30, 234], 1420);
    // first packet resolves b's MAC by ARP inside the hub
    hub.input_ip(a, &pkt, now, &mut out);
    out.clear();
    hub.input_ip(a, &pkt, now, &mut out);
    assert_eq!(out.len(), 1, "the packet reaches b");
    assert_eq!(out[0].session, b);
    let mut g = c.benchmark_group("hub");
    g.throughput(Throughput::Bytes(pkt.len() as u64));
    g.bench_function("L3 session to L3 session 1420B", |bch| {
        bch.iter(|| {
            out.clear();
            hub.input_ip(a, black_box(&pkt), now, &mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

/// The same path with 100 access rules that name other ports (the indexed case, as a hub's
/// per-service rules are) and 100 that must each be looked at, and a policy on both sessions,
/// beside the plain one: what a rule check costs per frame.
fn forward_with_rules(c: &mut Criterion) {
    let now = Instant::now();
    let setup = |rules: &[AccessRule], limited: bool| {
        let mut hub = Hub::new("DEFAULT");
        hub.set_securenat(Some(VirtualHostConfig::default()), now);
        let a = hub.add_l3_session("a", "WIREGUARD", None, now);
        let b = hub.add_l3_session("b", "WIREGUARD", None, now);
        if limited {
            // checked on every frame, limiting nothing here (a bandwidth limit would drop
            // what the loop sends faster than any link)
            let policy = PortPolicy {
                privacy_filter: true,
                ..PortPolicy::default()
            };
            hub.set_session_policy(a, policy);
            hub.set_session_group(a, "staff");
        }
        hub.set_access_list(rules);
        let mut out: Vec<Delivery> = Vec::new();
        hub.input_ip(
            b,
            &ipv4([192, 168, 30, 234], [192, 168, 30, 1], 64),
            now,
            &mut out,
        );
        let pkt = ipv4([192, 168, 30, 233], [192, 168, 30, 234], 1420);
        hub.input_ip(a, &pkt, now, &mut out);
        out.clear();
        hub.input_ip(a, &pkt, now, &mut out);
        assert_eq!(out.len(), 1, "the packet reaches b");
        (hub, a, pkt)
    };
    let per_port: Vec<AccessRule> = (0..100)
        .map(|i| AccessRule {
            discard: true,
            protocol: 17,
            dst_ports: (10_000 + i, 10_000 + i),
            priority: 1 + u32::from(i),
            ..AccessRule::default()
        })
        .collect();
    let general: Vec<AccessRule> = (0..100u32)
        .map(|i| AccessRule {
            discard: true,
            dst_ip: Ipv4Addr::new(10, 0, (i / 256) as u8, (i % 256) as u8),
            dst_mask: Ipv4Addr::new(255, 255, 255, 255),
            priority: 1 + i,
            ..AccessRule::default()
        })
        .collect();
    let mut g = c.benchmark_group("hub with rules");
    for (name, rules, limited) in [
        ("no rules, no policy", &[][..], false),
        (
            "100 port rules, policy on each session",
            &per_port[..],
            true,
        ),
        (
            "100 address rules, policy on each session",
            &general[..],
            true,
        ),
    ] {
        let (mut hub, a, pkt) = setup(rules, limited);
        let mut out: Vec<Delivery> = Vec::new();
        for _ in 0..1000 {
            out.clear();
            hub.input_ip(a, &pkt, now, &mut out);
            assert_eq!(out.len(), 1, "{name}: every packet reaches b");
        }
        g.throughput(Throughput::Bytes(pkt.len() as u64));
        g.bench_function(name, |bch| {
            bch.iter(|| {
                out.clear();
                hub.input_ip(a, black_box(&pkt), now, &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, forward, forward_with_rules);
criterion_main!(benches);
