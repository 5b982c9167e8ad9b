//! ESP and port 4500 datagrams from anyone: `natt::classify`, `natt::udp_payload`,
//! `esp::spi_of` and `Inbound::open` with two fixed SAs (AES-128-CBC with HMAC-SHA1-96, and
//! AES-128-GCM). Three modes (first byte): raw datagrams; payloads sealed by the matching
//! `Outbound` that must open to themselves once and then be refused as replays; sealed packets
//! with one byte changed, which must never open.
#![no_main]

use etherhub_ipsec::esp::{self, EspError, Inbound, Outbound};
use etherhub_ipsec::natt::{self, Kind};
use etherhub_ipsec::{EspCipher, EspInteg, EspKeys};
use libfuzzer_sys::fuzz_target;

const SPI: u32 = 0x0000_4321;
const IV_SECRET: [u8; 16] = [0x5a; 16];

fn suites() -> [EspKeys; 2] {
    [
        EspKeys {
            spi: SPI,
            cipher: EspCipher::AesCbc {
                key: vec![0x11; 16],
            },
            integ: EspInteg::HmacSha1_96 {
                key: vec![0x22; 20],
            },
        },
        EspKeys {
            spi: SPI,
            cipher: EspCipher::AesGcm16 {
                key: vec![0x33; 16],
                salt: [1, 2, 3, 4],
            },
            integ: EspInteg::None,
        },
    ]
}

/// Whatever came in on port 4500 (or as protocol 50), to both SAs.
fn raw(data: &[u8]) {
    let _ = natt::udp_payload(data);
    let _ = esp::spi_of(data);
    let packet = match natt::classify(data) {
        Some(Kind::Keepalive) => {
            assert_eq!(data, natt::KEEPALIVE);
            return;
        }
        Some(Kind::Ike(message)) => {
            assert_eq!(&data[4..], message);
            return;
        }
        Some(Kind::Esp(packet)) => {
            assert_eq!(
                esp::spi_of(packet),
                Some(u32::from_be_bytes([data[0], data[1], data[2], data[3]]))
            );
            packet
        }
        None => data,
    };
    for keys in suites() {
        let mut rx = Inbound::new(keys).unwrap();
        let mut buf = packet.to_vec();
        if let Ok((next_header, payload)) = rx.open(&mut buf) {
            if next_header == 17 {
                let _ = natt::udp_payload(payload);
            }
            let mut again = packet.to_vec();
            assert!(matches!(rx.open(&mut again), Err(EspError::Replay(_))));
        }
    }
}

/// Sealed, the payload opens to itself, once.
fn round_trip(data: &[u8]) {
    let Some((&next_header, payload)) = data.split_first() else {
        return;
    };
    for keys in suites() {
        let mut tx = Outbound::new(keys.clone(), IV_SECRET).unwrap();
        let mut rx = Inbound::new(keys).unwrap();
        let mut inner = Vec::new();
        natt::push_udp(1701, 1701, payload, &mut inner);
        let mut packet = vec![0xee];
        tx.seal(next_header, &inner, &mut packet).unwrap();
        assert!(packet.len() - 1 <= inner.len() + tx.overhead());
        let mut datagram = Vec::new();
        datagram.extend_from_slice(&packet[1..]);
        let Some(Kind::Esp(esp_packet)) = natt::classify(&datagram) else {
            panic!("a sealed packet is not ESP on port 4500");
        };
        let mut buf = esp_packet.to_vec();
        let (got_header, got) = rx.open(&mut buf).unwrap();
        assert_eq!(got_header, next_header);
        assert_eq!(got, &inner[..]);
        assert_eq!(natt::udp_payload(got), Some((1701, 1701, payload)));
        let mut again = packet[1..].to_vec();
        assert_eq!(rx.open(&mut again), Err(EspError::Replay(1)));
    }
}

/// A sealed packet with one byte changed never opens.
fn tampered(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let at = usize::from(u16::from_be_bytes([data[0], data[1]]));
    let mask = data[2] | 1;
    for keys in suites() {
        let mut tx = Outbound::new(keys.clone(), IV_SECRET).unwrap();
        let mut rx = Inbound::new(keys).unwrap();
        let mut packet = Vec::new();
        tx.seal(17, &data[3..], &mut packet).unwrap();
        let at = at % packet.len();
        packet[at] ^= mask;
        let got = rx.open(&mut packet);
        assert!(got.is_err(), "a changed byte at {at} went unnoticed");
        if at < 4 {
            assert!(matches!(got, Err(EspError::WrongSpi(_))));
        }
        assert_eq!(rx.received(), 0);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => raw(rest),
        1 => round_trip(rest),
        _ => tampered(rest),
    }
});
