//! QR codes of client configs: for the terminal (Unicode half blocks, two module rows per text
//! line) and as a PNG file (1-bit grayscale, uncompressed deflate: no image crates needed).
//!
//! Both draw the 4-module quiet zone the QR standard asks for. The terminal form assumes a dark
//! background, as `qrencode -t UTF8` does: light modules are drawn, dark ones left blank.

use qrcode::{Color, EcLevel, QrCode};

/// Why a text has no QR code.
#[derive(Debug)]
pub struct QrError(pub String);

impl std::error::Error for QrError {}

impl std::fmt::Display for QrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

const QUIET: usize = 4;

/// The modules of `text`'s QR code with the quiet zone, `true` = dark, row by row.
pub fn modules(text: &str) -> Result<(usize, Vec<bool>), QrError> {
    // Level L keeps a whole wg-quick config (about 300 bytes) in a code phones read easily.
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L)
        .map_err(|e| QrError(format!("the text does not fit in a QR code ({e})")))?;
    let w = code.width();
    let colors = code.to_colors();
    let size = w + 2 * QUIET;
    let mut out = vec![false; size * size];
    for y in 0..w {
        for x in 0..w {
            out[(y + QUIET) * size + x + QUIET] = colors[y * w + x] == Color::Dark;
        }
    }
    Ok((size, out))
}

/// The code as terminal text, one line per two module rows.
pub fn to_terminal(text: &str) -> Result<String, QrError> {
    let (size, m) = modules(text)?;
    let light = |x: usize, y: usize| y < size && !m[y * size + x];
    let mut s = String::new();
    for y in (0..size).step_by(2) {
        for x in 0..size {
            s.push(match (light(x, y), light(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        s.push('\n');
    }
    Ok(s)
}

/// The code as a PNG image, `scale` pixels per module.
pub fn to_png(text: &str, scale: usize) -> Result<Vec<u8>, QrError> {
    let (size, m) = modules(text)?;
    let px = size * scale;
    let row_bytes = px.div_ceil(8);
    // raw scanlines: filter byte 0, then 1 bit per pixel, 1 = white
    let mut raw = Vec::with_capacity(px * (row_bytes + 1));
    for y in 0..px {
        raw.push(0u8);
        let mut row = vec![0u8; row_bytes];
        for x in 0..px {
            if !m[(y / scale) * size + x / scale] {
                row[x / 8] |= 0x80 >> (x % 8);
            }
        }
        raw.extend_from_slice(&row);
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&(px as u32).to_be_bytes());
    ihdr.extend_from_slice(&(px as u32).to_be_bytes());
    ihdr.extend_from_slice(&[1, 0, 0, 0, 0]); // depth 1, grayscale, deflate, no filter, no interlace
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &zlib_stored(&raw));
    chunk(&mut png, b"IEND", &[]);
    Ok(png)
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream of stored (uncompressed) deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let mut blocks = data.chunks(65_535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(b) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = b.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(b);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_known_values() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
    }

    #[test]
    fn stored_blocks_split_at_64k() {
        let data = vec![7u8; 70_000];
        let z = zlib_stored(&data);
        assert_eq!(&z[..2], &[0x78, 0x01]);
        assert_eq!(z[2], 0, "first block is not final");
        assert_eq!(&z[3..5], &65_535u16.to_le_bytes());
        let second = 2 + 5 + 65_535; // zlib header, block header, data
        assert_eq!(z[second], 1, "second block is final");
        assert_eq!(&z[second + 1..second + 3], &4_465u16.to_le_bytes());
        assert_eq!(z.len(), 2 + 2 * 5 + 70_000 + 4);
    }

    #[test]
    fn terminal_code_has_quiet_zone_and_half_rows() {
        let t = to_terminal("hello").unwrap();
        let lines: Vec<&str> = t.lines().collect();
        let size = 21 + 2 * QUIET; // version 1
        assert_eq!(lines.len(), size.div_ceil(2));
        assert!(lines.iter().all(|l| l.chars().count() == size));
        assert!(lines[0].chars().all(|c| c == '█'), "quiet zone is light");
    }

    #[test]
    fn png_header_and_size() {
        let p = to_png("hello", 3).unwrap();
        assert_eq!(&p[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&p[12..16], b"IHDR");
        let side = ((21 + 2 * QUIET) * 3) as u32;
        assert_eq!(&p[16..20], &side.to_be_bytes());
        assert_eq!(&p[p.len() - 8..p.len() - 4], b"IEND");
    }
}
