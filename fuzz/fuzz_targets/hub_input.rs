//! Frames and packets from sessions into a virtual hub with SecureNAT's host on it: Ethernet,
//! ARP, IPv4/IPv6, ICMP, DHCP, whatever a client sends. Each chunk (split at `0xfe`) is
//! one input; its first byte picks the session and whether it is an IP packet or a frame.
#![no_main]

use etherhub_hub::{Delivery, Hub, StaticNetwork, VirtualHostConfig};
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut hub = Hub::new("DEFAULT");
    hub.set_securenat(
        Some(VirtualHostConfig {
            ip: Ipv4Addr::new(192, 168, 30, 1),
            mask: Ipv4Addr::new(255, 255, 255, 0),
            mac: [0x5e, 0x00, 0x00, 0x00, 0x00, 0x01],
        }),
        now,
    );
    hub.set_static_network(Some(StaticNetwork {
        gateway: Ipv4Addr::new(192, 168, 30, 1),
        mask: Ipv4Addr::new(255, 255, 255, 0),
    }));
    let l3a = hub.add_l3_session("a", "wireguard", None, now);
    let l3b = hub.add_l3_session("b", "wireguard", None, now);
    let l2 = hub.add_l2_session("c", "native", None, now);
    let mut out: Vec<Delivery> = Vec::new();
    let mut t = now;
    for chunk in data.split(|&b| b == 0xfe) {
        let Some((&sel, body)) = chunk.split_first() else {
            continue;
        };
        t += Duration::from_millis(u64::from(sel >> 4) * 100);
        match sel & 3 {
            0 => hub.input_ip(l3a, body, t, &mut out),
            1 => hub.input_ip(l3b, body, t, &mut out),
            2 => hub.input_frame(l2, body, t, &mut out),
            _ => hub.tick(t, &mut out),
        }
        out.clear();
    }
    hub.tick(t + Duration::from_secs(700), &mut out);
    let _ = hub.sessions();
    let _ = hub.mac_table();
    let _ = hub.ip_table();
});
