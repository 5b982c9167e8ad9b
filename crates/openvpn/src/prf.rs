//! OpenVPN's older key derivation, for clients that cannot take keys from TLS's exporter
//! (before 2.6): TLS 1.0's PRF (RFC 2246 section 5: P_MD5 of the secret's first half XOR
//! P_SHA1 of its second half) over the key method 2 randoms and the session ids:
//!
//! master = PRF(client pre-master, "OpenVPN master secret" + client random1 + server random1, 48)
//! keys   = PRF(master, "OpenVPN key expansion" + client random2 + server random2
//!              + client session id + server session id, 256)

/// HMAC (RFC 2104) over a 64-byte-block hash.
fn hmac(hash: fn(&[u8]) -> Vec<u8>, key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > 64 {
        hash(key)
    } else {
        key.to_vec()
    };
    k.resize(64, 0);
    let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(data);
    let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&hash(&inner));
    hash(&outer)
}

fn md5_vec(d: &[u8]) -> Vec<u8> {
    etherhub_config::hash::md5(d).to_vec()
}

fn sha1_vec(d: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, d)
        .as_ref()
        .to_vec()
}

/// P_hash: HMAC(secret, A(i) + seed) for A(0) = seed, A(i) = HMAC(secret, A(i - 1)).
fn p_hash(hash: fn(&[u8]) -> Vec<u8>, secret: &[u8], seed: &[u8], out: &mut [u8]) {
    let mut a = seed.to_vec();
    let mut at = 0;
    while at < out.len() {
        a = hmac(hash, secret, &a);
        let mut input = a.clone();
        input.extend_from_slice(seed);
        let block = hmac(hash, secret, &input);
        let n = block.len().min(out.len() - at);
        out[at..at + n].copy_from_slice(&block[..n]);
        at += n;
    }
}

/// TLS 1.0's PRF of `secret` and `seed` (the label already in it), `out.len()` bytes.
pub fn prf(secret: &[u8], seed: &[u8], out: &mut [u8]) {
    let half = secret.len().div_ceil(2);
    let (s1, s2) = (&secret[..half], &secret[secret.len() - half..]);
    let mut md5_part = vec![0u8; out.len()];
    p_hash(md5_vec, s1, seed, &mut md5_part);
    p_hash(sha1_vec, s2, seed, out);
    for (o, m) in out.iter_mut().zip(md5_part) {
        *o ^= m;
    }
}

/// The 256-byte key block of OpenVPN's older derivation.
pub fn key_block(
    pre_master: &[u8; 48],
    client_randoms: (&[u8; 32], &[u8; 32]),
    server_randoms: (&[u8; 32], &[u8; 32]),
    client_session: &[u8; 8],
    server_session: &[u8; 8],
) -> [u8; 256] {
    let mut seed = b"OpenVPN master secret".to_vec();
    seed.extend_from_slice(client_randoms.0);
    seed.extend_from_slice(server_randoms.0);
    let mut master = [0u8; 48];
    prf(pre_master, &seed, &mut master);
    let mut seed = b"OpenVPN key expansion".to_vec();
    seed.extend_from_slice(client_randoms.1);
    seed.extend_from_slice(server_randoms.1);
    seed.extend_from_slice(client_session);
    seed.extend_from_slice(server_session);
    let mut block = [0u8; 256];
    prf(&master, &seed, &mut block);
    block
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;

    #[test]
    fn the_prf_matches_openvpns_own_test() {
        // OpenVPN's own unit test of its PRF
        let secret = b"Lorem ipsum dolor sit amet, consectetur adipisici elit, sed eiusmod tempor incidunt ut labore et dolore magna aliqua.";
        let seed = b"Quis aute iure reprehenderit in voluptate velit esse cillum dolore";
        let mut out = [0u8; 32];
        prf(secret, seed, &mut out);
        assert_eq!(
            out[..],
            hex("d98c8518c85e946927916acfc2d592fbb1567e4b4b1459e6a904ac2ddab72d67")[..]
        );
    }

    #[test]
    fn the_key_block_agrees_with_an_independent_computation() {
        let block = key_block(
            &[1; 48],
            (&[2; 32], &[4; 32]),
            (&[3; 32], &[5; 32]),
            &[0x11; 8],
            &[0x22; 8],
        );
        assert_eq!(
            block[..32],
            hex("1dd735e310d6aef91b7a0ab5f5dd275bf105f01437f8bb40c4268d3a361ed0a7")[..]
        );
    }
}
