//! SoftEther's PACK from any bytes: parsing never panics, and what parses writes back to
//! bytes that parse to the same PACK (and to the same bytes again).
#![no_main]

use etherhub_pack::Pack;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Pack::parse(data) else {
        return;
    };
    let bytes = p.to_bytes();
    let again = Pack::parse(&bytes).expect("a written PACK parses");
    assert_eq!(again, p);
    assert_eq!(again.to_bytes(), bytes);
    for e in p.elements() {
        let _ = p.ip(&e.name);
        let _ = p.str(&e.name);
        let _ = p.count(&e.name);
    }
});
