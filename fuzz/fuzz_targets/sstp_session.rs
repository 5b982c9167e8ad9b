//! SSTP's packet parser and a call fed arbitrary bytes: the input is split into reads at its
//! 0xff bytes, each read moving the clock by its first byte; the call answers, drops and
//! counts, or ends, and never panics. A call that opens sends a frame back.
#![no_main]

use std::time::{Duration, Instant};

use etherhub_sstp::packet;
use etherhub_sstp::session::{Event, Session};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((_, n))) = packet::parse(rest) {
        rest = &rest[n..];
    }

    let mut now = Instant::now();
    let mut s = Session::new(now, [3; 32]);
    let mut events = Vec::new();
    for read in data.split(|b| *b == 0xff) {
        now += Duration::from_millis(u64::from(read.first().copied().unwrap_or(0)) * 500);
        if s.poll_timeout().is_some_and(|t| t <= now) {
            s.handle_timeout(now, &mut events);
        }
        s.handle_bytes(now, read, &mut events);
        if s.is_open() {
            s.send_frame(read, &mut events);
        }
        if events.iter().any(|e| matches!(e, Event::Closed(_))) {
            assert!(s.is_closed());
            break;
        }
        events.clear();
    }
});
