//! The first request of every SoftEther connection: a POST of the "watermark" (a 1411-byte
//! GIF that every SoftEther build carries) plus up to 1999 random bytes, to
//! `/vpnsvc/connect.cgi`. A server takes a body that starts with the watermark, or the ten
//! bytes `VPNCONNECT`.

/// Where the signature is posted.
pub const SIGNATURE_TARGET: &str = "/vpnsvc/connect.cgi";
/// Where the login PACK (and, in SoftEther, PACKs over HTTP in general) is posted.
pub const VPN_TARGET: &str = "/vpnsvc/vpn.cgi";
/// The short signature SoftEther also accepts.
pub const ALT_SIGNATURE: &[u8] = b"VPNCONNECT";

/// SoftEther's watermark image (`WaterMark[]`).
pub static WATERMARK: &[u8; 1411] = include_bytes!("watermark.gif");

/// Random bytes a client may append after the watermark, at most.
pub const MAX_PADDING: usize = 2000;

/// Whether a signature POST of this Content-Length is worth reading: SoftEther closes the
/// connection on any other size.
pub fn signature_size_ok(len: usize) -> bool {
    len == ALT_SIGNATURE.len() || (WATERMARK.len()..=WATERMARK.len() + MAX_PADDING).contains(&len)
}

/// Whether a body is a SoftEther client's signature.
pub fn is_signature(body: &[u8]) -> bool {
    body == ALT_SIGNATURE || body.starts_with(WATERMARK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_with_any_padding_or_the_short_form() {
        assert_eq!(&WATERMARK[..6], b"GIF89a");
        assert_eq!(WATERMARK[WATERMARK.len() - 1], 0x3b, "a GIF ends with ';'");
        let mut body = WATERMARK.to_vec();
        assert!(is_signature(&body) && signature_size_ok(body.len()));
        body.extend_from_slice(&[7; 1999]);
        assert!(is_signature(&body) && signature_size_ok(body.len()));
        assert!(is_signature(b"VPNCONNECT") && signature_size_ok(10));
        assert!(!signature_size_ok(11) && !signature_size_ok(1410) && !signature_size_ok(3412));
        body[100] ^= 1;
        assert!(!is_signature(&body));
        assert!(!is_signature(&WATERMARK[..1410]));
    }
}
