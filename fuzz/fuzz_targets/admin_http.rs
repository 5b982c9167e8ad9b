//! The admin connection after TLS: HTTP/1.1 request heads and bodies, the X-VPNADMIN login and
//! the JSON-RPC envelope, served by `serve_connection_with` over an in-memory stream against
//! the in-memory backend. The input is everything the client sends.
#![no_main]

#[path = "../../crates/admin/tests/common/mod.rs"]
mod fake;
mod front;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    front::serve(|end| front::finish(end, data));
});
