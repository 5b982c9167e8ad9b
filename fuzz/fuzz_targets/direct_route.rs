//! Decrypted packets from clients, as a worker reads them to forward from peer to peer without
//! the engine: `etherhub_engine::direct::forwardable`. What it accepts must be a well-formed
//! IPv4 packet within the input, its addresses read where IPv4 has them.
#![no_main]

use etherhub_engine::direct::forwardable;
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    let Some((src, dst, len)) = forwardable(data) else {
        return;
    };
    let header = usize::from(data[0] & 0x0f) * 4;
    assert_eq!(data[0] >> 4, 4);
    assert!(header >= 20 && header <= len && len <= data.len());
    assert_eq!(usize::from(u16::from_be_bytes([data[2], data[3]])), len);
    assert_eq!(src, Ipv4Addr::new(data[12], data[13], data[14], data[15]));
    assert_eq!(dst, Ipv4Addr::new(data[16], data[17], data[18], data[19]));
    if data[9] == 17 && len >= header + 4 {
        let ports = &data[header..header + 4];
        assert_ne!(u16::from_be_bytes([ports[0], ports[1]]), 67, "a DHCP reply let through");
        assert_ne!(u16::from_be_bytes([ports[2], ports[3]]), 68, "a DHCP reply let through");
    }
});
