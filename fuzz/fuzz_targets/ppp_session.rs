//! PPP's parsers and a server session fed arbitrary frames: the input splits at 0x7e (HDLC's
//! flag byte) into frames; each frame's first byte moves the clock, its last byte picks the
//! caller's answer to a login (accept, a password, an NT hash, refuse, unknown) and whether
//! an address is given. LCP, PAP, CHAP, IPCP, IPv4 and the rest: dropped and counted, or
//! answered, never a panic.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use etherhub_config::hash::nt_hash;
use etherhub_ppp::mschapv2::ResponseValue;
use etherhub_ppp::packet::{parse_options, ChapValue, Packet, PapRequest};
use etherhub_ppp::{frame, Addressing, AuthAnswer, Config, Event, Session};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((_, info)) = frame::parse(data) {
        if let Ok(p) = Packet::parse(info) {
            let _ = parse_options(p.data);
            let _ = PapRequest::parse(p.data);
            if let Ok(v) = ChapValue::parse(p.data) {
                let _ = ResponseValue::parse(v.value);
            }
        }
    }

    let mut now = Instant::now();
    let mut out = Vec::new();
    let mut s = Session::new(now, Config::default(), [7; 32], &mut out);
    for chunk in data.split(|b| *b == 0x7e) {
        s.handle_frame(now, chunk, &mut out);
        let pick = chunk.last().copied().unwrap_or(0);
        for e in std::mem::take(&mut out) {
            match e {
                Event::Authenticate(_) => {
                    let answer = match pick % 5 {
                        0 => AuthAnswer::Accept,
                        1 => AuthAnswer::Password("secret".into()),
                        2 => AuthAnswer::NtHash(nt_hash("secret")),
                        3 => AuthAnswer::Refuse,
                        _ => AuthAnswer::Unknown,
                    };
                    s.auth_result(now, answer, &mut out);
                }
                Event::NeedAddress { .. } => {
                    let addressing = (pick & 0x80 == 0).then(|| Addressing {
                        peer: Ipv4Addr::new(192, 168, 30, 10),
                        local: Ipv4Addr::new(192, 168, 30, 1),
                        dns: [Some(Ipv4Addr::new(192, 168, 30, 1)), None],
                        nbns: [None, None],
                    });
                    s.set_addressing(now, addressing, &mut out);
                }
                _ => {}
            }
        }
        now += Duration::from_millis(u64::from(chunk.first().copied().unwrap_or(0)) * 100);
        s.handle_timeout(now, &mut out);
        let _ = s.send_ip(chunk, &mut out);
        let _ = s.poll_timeout();
        out.clear();
    }
});
