//! SoftEther's password hashes. SoftEther hashes admin and user passwords with SHA-0 (the 1993
//! original of SHA-1, without the one-bit rotation in the message schedule); a config written by
//! SoftEther only verifies if we compute the same digests.

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
}
