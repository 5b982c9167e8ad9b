//! SoftEther's password hashes, and the few old digests its protocols need. SoftEther hashes
//! admin and user passwords with SHA-0 (the 1993 original of SHA-1, without the one-bit rotation
//! in the message schedule); a config written by SoftEther only verifies if we compute the same
//! digests. It also keeps a user's NT hash (MD4 of the UTF-16LE password) for MS-CHAPv2; MD5 is
//! for OpenVPN's older PRF and PPP's CHAP-MD5. One implementation of each, here.

/// SHA-0 of `data` (20 bytes).
pub fn sha0(data: &[u8]) -> [u8; 20] {
    sha(data, false)
}

/// SHA-1 of `data` (20 bytes), for SoftEther's few SHA-1 uses (the signed `<INFO>` of an
/// access rule's redirect).
pub fn sha1(data: &[u8]) -> [u8; 20] {
    sha(data, true)
}

/// SHA-0, or SHA-1 when `rotate`.
fn sha(data: &[u8], rotate: bool) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for t in 16..80 {
            // SHA-1 rotates this left by one; SHA-0 does not.
            let x = w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16];
            w[t] = if rotate { x.rotate_left(1) } else { x };
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (t, wt) in w.iter().enumerate() {
            let (f, k) = match t {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let tmp = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wt);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = tmp;
        }
        for (hv, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hv = hv.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (i, v) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// The message padded as MD4 and MD5 want it: a one bit, zeros up to 56 bytes modulo 64, then
/// the length in bits as a little-endian u64.
fn pad_le(data: &[u8]) -> Vec<u8> {
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_le_bytes());
    msg
}

/// MD4 (RFC 1320), only for the NT password hash ([`nt_hash`]): broken as a hash, but the
/// hash Windows keeps of a password, and so what MS-CHAPv2 is defined over.
pub fn md4(data: &[u8]) -> [u8; 16] {
    let mut h: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    for block in pad_le(data).chunks_exact(64) {
        let x: Vec<u32> = block
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let mut v = h;
        // 48 steps in three rounds of 16; step i updates word (16 - i) % 4 of a, b, c, d
        // (a, d, c, b, a, ...) from the other three.
        for i in 0..48 {
            let (round, j) = (i / 16, i % 16);
            let (k, s, f) = match round {
                0 => (j, [3, 7, 11, 19][j % 4], 0u32),
                // the message words by columns, then in bit-reversed order
                1 => ((j % 4) * 4 + j / 4, [3, 5, 9, 13][j % 4], 0x5a82_7999),
                _ => {
                    const ORDER: [usize; 16] =
                        [0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15];
                    (ORDER[j], [3, 9, 11, 15][j % 4], 0x6ed9_eba1)
                }
            };
            let a = (4 - j % 4) % 4;
            let (b, c, d) = (v[(a + 1) % 4], v[(a + 2) % 4], v[(a + 3) % 4]);
            let mix = match round {
                0 => (b & c) | (!b & d),
                1 => (b & c) | (b & d) | (c & d),
                _ => b ^ c ^ d,
            };
            v[a] = v[a]
                .wrapping_add(mix)
                .wrapping_add(x[k])
                .wrapping_add(f)
                .rotate_left(s);
        }
        for (hv, n) in h.iter_mut().zip(v) {
            *hv = hv.wrapping_add(n);
        }
    }
    let mut out = [0u8; 16];
    for (i, v) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    out
}

/// The NT password hash (MS-CHAPv2's `NtPasswordHash`, RFC 2759 section 8.3): MD4 of the
/// password in UTF-16LE, no terminator.
pub fn nt_hash(password: &str) -> [u8; 16] {
    let utf16: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
    md4(&utf16)
}

/// MD5 (RFC 1321): OpenVPN's older key derivation (TLS 1.0's PRF) and PPP's CHAP-MD5.
pub fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    // the sine table: the integer part of 2^32 |sin(i + 1)|
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut h: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    for block in pad_le(data).chunks_exact(64) {
        let m: Vec<u32> = block
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let [mut a, mut b, mut c, mut d] = h;
        for i in 0..64 {
            let (f, g) = match i {
                0..=15 => ((b & c) | (!b & d), i),
                16..=31 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                32..=47 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let t = d;
            d = c;
            c = b;
            b = b.wrapping_add(
                a.wrapping_add(f)
                    .wrapping_add(k[i])
                    .wrapping_add(m[g])
                    .rotate_left(S[i]),
            );
            a = t;
        }
        for (hv, v) in h.iter_mut().zip([a, b, c, d]) {
            *hv = hv.wrapping_add(v);
        }
    }
    let mut out = [0u8; 16];
    for (i, v) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    out
}

/// The server's and a hub's `HashedPassword`: SHA-0 of the password.
pub fn hash_admin_password(password: &str) -> [u8; 20] {
    sha0(password.as_bytes())
}

/// A user's `AuthPassword`: SHA-0 of the password followed by the user name in upper case.
pub fn hash_user_password(user: &str, password: &str) -> [u8; 20] {
    let mut buf = password.as_bytes().to_vec();
    buf.extend_from_slice(user.to_ascii_uppercase().as_bytes());
    sha0(&buf)
}

/// A hub's `SecurePassword`: SHA-0 of the password followed by `ADMINISTRATOR` (the hash of
/// the hub administrator as a user named "administrator").
pub fn hash_hub_secure_password(password: &str) -> [u8; 20] {
    hash_user_password("administrator", password)
}

/// SoftEther's proof of a password over a fresh random: SHA-0 of the stored hash followed by
/// the server's 20 random bytes (what vpncmd and vpnclient send as `secure_password`).
pub fn challenge_response(hash: &[u8], random: &[u8]) -> [u8; 20] {
    let mut buf = hash.to_vec();
    buf.extend_from_slice(random);
    sha0(&buf)
}

/// Compares two digests without an early exit on the first differing byte.
pub fn digest_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn sha0_known_vectors() {
        // FIPS 180 (1993) test vectors for SHA-0.
        assert_eq!(
            hex(&sha0(b"abc")),
            "0164b8a914cd2a5e74c4f7ff082c4d97f1edf880"
        );
        assert_eq!(hex(&sha0(b"")), "f96cea198ad1dd5617ac084a3d92c6107708c0ef");
        assert_eq!(
            hex(&sha0(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "d2516ee1acfa5baf33dfc1c471e438449ef134c8"
        );
    }

    #[test]
    fn sha1_known_vectors() {
        // FIPS 180-1 test vectors.
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(&sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
    }

    // RFC 1320's test suite
    const SUITE: [&[u8]; 7] = [
        b"",
        b"a",
        b"abc",
        b"message digest",
        b"abcdefghijklmnopqrstuvwxyz",
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
    ];

    #[test]
    fn md4_matches_rfc_1320s_test_suite() {
        let want = [
            "31d6cfe0d16ae931b73c59d7e0c089c0",
            "bde52cb31de33e46245e05fbdbd6fb24",
            "a448017aaf21d8525fc10ae87aa6729d",
            "d9130a8164549fe818874806e1c7014b",
            "d79e1c308aa5bbcdeea8ed63df412da9",
            "043f8582f241db351ce627e153e7f0e4",
            "e33b4ddc9c38f2199c3e7b164fcc0536",
        ];
        for (input, want) in SUITE.iter().zip(want) {
            assert_eq!(
                hex(&md4(input)),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn md5_matches_rfc_1321s_test_suite() {
        // RFC 1321's suite is RFC 1320's inputs
        let want = [
            "d41d8cd98f00b204e9800998ecf8427e",
            "0cc175b9c0f1b6a831c399e269772661",
            "900150983cd24fb0d6963f7d28e17f72",
            "f96b697d7cb7938d525a2f31aaf161d0",
            "c3fcd3d76192e4007dfb496cca67e13b",
            "d174ab98d277d9f5a5611c2c9f419d9f",
            "57edf4a22be3c955ac49da2e2107b67a",
        ];
        for (input, want) in SUITE.iter().zip(want) {
            assert_eq!(
                hex(&md5(input)),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn nt_hash_matches_rfc_2759s_example() {
        // RFC 2759 section 9.2: password "clientPass"
        assert_eq!(
            hex(&nt_hash("clientPass")),
            "44ebba8d5312b8d611474411f56989ae"
        );
        // padding crosses a block boundary: 28 UTF-16 units are 56 bytes
        assert_eq!(nt_hash(&"x".repeat(28)).len(), 16);
        assert_eq!(hex(&nt_hash("")), "31d6cfe0d16ae931b73c59d7e0c089c0");
    }
}
