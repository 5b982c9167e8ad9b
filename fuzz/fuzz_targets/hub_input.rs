//! Frames and packets from sessions into a virtual hub with SecureNAT's host on it: Ethernet,
//! ARP, IPv4/IPv6, ICMP, DHCP, whatever a client sends. Each chunk (split at `0xfe`) is
//! one input; its first byte picks the session and whether it is an IP packet or a frame.
//! The hub runs an access list (rules by port, by network, per receiving user, by TCP state)
//! and policies (privacy filter, bandwidth limits whose queues fill and drain, frame filters,
//! address limits), so that what reads frames for them is driven too.
#![no_main]

use etherhub_config::AccessRule;
use etherhub_hub::{Delivery, Filters, Hub, PortPolicy, StaticNetwork, VirtualHostConfig};
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
    hub.set_access_list(&[
        AccessRule {
            discard: true,
            protocol: 6,
            dst_ports: (80, 80),
            ..AccessRule::default()
        },
        AccessRule {
            priority: 2,
            dst_ip: Ipv4Addr::new(192, 168, 30, 0),
            dst_mask: Ipv4Addr::new(255, 255, 255, 0),
            tcp_established: Some(false),
            discard: true,
            ..AccessRule::default()
        },
        AccessRule {
            priority: 3,
            dst_user: "b".into(),
            src_ports: (1, 1024),
            discard: true,
            ..AccessRule::default()
        },
    ]);
    let limited = PortPolicy {
        privacy_filter: true,
        max_upload_bps: 100_000,
        max_download_bps: 200_000,
        max_mac: 3,
        max_ip: 4,
        ..PortPolicy::default()
    };
    hub.set_session_policy(l3a, limited);
    // every frame filter on the Ethernet session, both ways
    hub.set_session_policy(
        l2,
        PortPolicy {
            filters: Filters(
                Filters::DHCP_NO_SERVER
                    | Filters::ARP_DHCP_ONLY
                    | Filters::NO_SERVER
                    | Filters::RS_RA
                    | Filters::DHCPV6_NO_SERVER
                    | Filters::NON_IP,
            ),
            ..limited
        },
    );
    hub.set_session_group(l2, "staff");
    // the guards that rewrite or snoop: a VLAN, DHCPForce, IPv6 limits, RA rewrites
    let guarded = hub.add_l2_session("d", "native", Some("[2001:db8::1]:443".parse().unwrap()), now);
    hub.set_session_policy(
        guarded,
        PortPolicy {
            dhcp_force: true,
            check_ip: true,
            max_ipv6: 5,
            check_ipv6: true,
            ra_no_default_router_over_ipv6: true,
            vlan_id: 7,
            ..PortPolicy::default()
        },
    );
    let monitor = hub.add_l2_session("m", "native", None, now);
    hub.set_session_policy(
        monitor,
        PortPolicy {
            monitor: true,
            ra_no_default_router: true,
            ..PortPolicy::default()
        },
    );
    let mut out: Vec<Delivery> = Vec::new();
    let mut t = now;
    for chunk in data.split(|&b| b == 0xfe) {
        let Some((&sel, body)) = chunk.split_first() else {
            continue;
        };
        t += Duration::from_millis(u64::from(sel >> 4) * 100);
        match sel & 7 {
            0 => hub.input_ip(l3a, body, t, &mut out),
            1 => hub.input_ip(l3b, body, t, &mut out),
            2 => hub.input_frame(l2, body, t, &mut out),
            3 => hub.input_frame(guarded, body, t, &mut out),
            4 => hub.input_frame(monitor, body, t, &mut out),
            _ => {
                hub.tick(t, &mut out);
                hub.poll_shaped(t, &mut out);
            }
        }
        out.clear();
    }
    hub.tick(t + Duration::from_secs(700), &mut out);
    let _ = hub.sessions();
    let _ = hub.mac_table();
    let _ = hub.ip_table();
});
