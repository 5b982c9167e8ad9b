//! The HTTP answers of a SoftEther server's front door: PACKs as `application/octet-stream`,
//! and its error pages. Old vpncmd builds recognise a SoftEther server by the start of its 403
//! page, so [`forbidden`] reproduces it to the byte.

use etherhub_pack::time::DateTime;
use etherhub_pack::Pack;

/// SoftEther's `Keep-Alive` header value.
pub const KEEP_ALIVE: &str = "timeout=15; max=19";

/// How many requests SoftEther serves on one connection before the signature.
pub const MAX_REQUESTS: u32 = 19;

/// The start of SoftEther's 403 page: what vpncmd 5.01 looks for before it goes on.
pub const FORBIDDEN_PREFIX: &str = "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\r\n<HTML><HEAD>\r\n<TITLE>403 Forbidden</TITLE>\r\n</HEAD><BODY>\r\n<H1>Forbidden</H1>\r\nYou don't have permission to access ";

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) of Unix seconds.
pub fn http_date(unix_secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = DateTime::from_unix_ms(unix_secs.saturating_mul(1000));
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        t.weekday_name(),
        t.day,
        MONTHS[(t.month as usize + 11) % 12],
        t.year,
        t.hour,
        t.minute,
        t.second
    )
}

/// A response with SoftEther's headers (in its order: sorted by name).
pub fn response(status: &str, content_type: &str, body: &[u8], unix_secs: u64) -> Vec<u8> {
    let head = format!(
        "HTTP/1.1 {status}\r\nConnection: Keep-Alive\r\nContent-Length: {}\r\nContent-Type: {content_type}\r\nDate: {}\r\nKeep-Alive: {KEEP_ALIVE}\r\n\r\n",
        body.len(),
        http_date(unix_secs)
    );
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    out
}

/// A PACK as the body of a `200 OK` (the hello and the login's answer).
pub fn pack_response(pack: &Pack, unix_secs: u64) -> Vec<u8> {
    response(
        "200 OK",
        "application/octet-stream",
        &pack.to_bytes(),
        unix_secs,
    )
}

/// A request target as SoftEther echoes it into a page: angle brackets become parentheses.
fn echo(target: &str) -> String {
    target
        .chars()
        .take(256)
        .map(|c| match c {
            '<' => '(',
            '>' => ')',
            c => c,
        })
        .collect()
}

fn html_page(status: &str, message: &str, host: &str, port: u16, unix_secs: u64) -> Vec<u8> {
    let title = &status[4..];
    let body = format!(
        "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\r\n<HTML><HEAD>\r\n<TITLE>{status}</TITLE>\r\n</HEAD><BODY>\r\n<H1>{title}</H1>\r\n{message}\r\n<HR>\r\n<ADDRESS>HTTP Server at {host} Port {port}</ADDRESS>\r\n</BODY></HTML>\r\n"
    );
    response(
        status,
        "text/html; charset=iso-8859-1",
        body.as_bytes(),
        unix_secs,
    )
}

/// `403 Forbidden`: SoftEther's answer to `GET /` and to a POST that is not a signature.
pub fn forbidden(target: &str, host: &str, port: u16, unix_secs: u64) -> Vec<u8> {
    let message = format!(
        "You don't have permission to access {}\r\non this server.<P>",
        echo(target)
    );
    html_page("403 Forbidden", &message, host, port, unix_secs)
}

/// `404 Not Found`.
pub fn not_found(target: &str, host: &str, port: u16, unix_secs: u64) -> Vec<u8> {
    let message = format!(
        "The requested URL {} was not found on this server.<P>",
        echo(target)
    );
    html_page("404 Not Found", &message, host, port, unix_secs)
}

/// `501 Method Not Implemented`.
pub fn not_implemented(method: &str, host: &str, port: u16, unix_secs: u64) -> Vec<u8> {
    let message = format!("{} is not supported by this server.<P>", echo(method));
    html_page(
        "501 Method Not Implemented",
        &message,
        host,
        port,
        unix_secs,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(resp: &[u8]) -> &[u8] {
        let at = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        &resp[at + 4..]
    }

    #[test]
    fn the_403_page_starts_as_old_vpncmd_expects_and_keeps_the_connection() {
        let r = forbidden("/", "198.18.0.1", 443, 784_111_777);
        let text = String::from_utf8(r.clone()).unwrap();
        assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: Keep-Alive\r\n"));
        assert!(text.contains("\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
        let b = body(&r);
        assert!(b.starts_with(FORBIDDEN_PREFIX.as_bytes()));
        assert!(text.contains(&format!("Content-Length: {}\r\n", b.len())));
        assert!(String::from_utf8_lossy(b).contains("Port 443"));
    }

    #[test]
    fn targets_are_echoed_without_markup() {
        let r = not_found("/<script>", "h", 1, 0);
        let b = String::from_utf8_lossy(body(&r)).into_owned();
        assert!(b.contains("/(script)") && !b.contains("<script>"), "{b}");
    }

    #[test]
    fn a_pack_goes_as_octet_stream() {
        let mut p = Pack::new();
        p.set_int("error", 0);
        let r = pack_response(&p, 0);
        let text = String::from_utf8_lossy(&r);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Type: application/octet-stream\r\n"));
        assert_eq!(body(&r), &p.to_bytes()[..]);
    }
}
