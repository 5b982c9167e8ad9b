//! The embedded default: what `etherhub server` writes on first start when there is no config.
//!
//! A hub named DEFAULT (as SoftEther names it) with SecureNAT enabled on 192.168.30.1/24, a fresh
//! WireGuard key pair and preshared key, a fresh OpenVPN tls-crypt key (used only by clients
//! that have it, unless ProtoOptions OpenVPN TlsCrypt requires it), a self-signed TLS
//! certificate, and listeners on TCP and
//! UDP 443, 992, 1194 and 5555. The server admin password is empty, and SoftEther's rule applies:
//! an empty password is accepted only from the local machine (loopback); set one with
//! `ServerPasswordSet` before administering from elsewhere.

use base64::Engine as _;
use etherhub_config::{Config, Folder, WireGuardSettings, DEFAULT_HUB, DEFAULT_PORTS};
use rand::RngCore;

/// Milliseconds since the UNIX epoch, as SoftEther stores times.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A fresh self-signed certificate and its private key (both DER; the key as PKCS#8).
pub fn self_signed_cert(common_name: &str) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![common_name.to_string()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2037, 12, 31);
    // an explicit "not a CA" (basicConstraints): vpncmd calls a self-signed certificate
    // without basicConstraints "the old format" and warns at every connect
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    let cert = params.self_signed(&key)?;
    Ok((cert.der().to_vec(), key.serialize_der()))
}

pub fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut k);
    k
}

/// A fresh OpenVPN tls-crypt key (what `openvpn --genkey tls-crypt` makes: 256 random bytes).
pub fn tls_crypt_key() -> [u8; 256] {
    let mut k = [0u8; 256];
    rand::rngs::OsRng.fill_bytes(&mut k);
    k
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Builds the embedded default configuration with fresh secrets.
pub fn embedded_default() -> anyhow::Result<Config> {
    let mut cfg = Config {
        root: Folder::new("root"),
    };
    let now = now_ms();
    cfg.root.set_u32("ConfigRevision", 0);
    for port in DEFAULT_PORTS {
        cfg.add_listener(port, true)?;
    }
    cfg.set_admin_password("");
    let hostname = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "etherhub".into());
    let (cert, key) = self_signed_cert(&hostname)?;
    cfg.set_server_cert(&cert, &key);
    cfg.set_udp_ports(&DEFAULT_PORTS);
    let private = x25519_dalek::StaticSecret::from(random_key());
    cfg.set_wireguard(&WireGuardSettings {
        enabled: true,
        preshared_key: b64(&random_key()),
        private_key: b64(private.as_bytes()),
    });
    cfg.set_openvpn_tls_crypt_key(&tls_crypt_key());
    cfg.create_hub(DEFAULT_HUB, "", now)?;
    let mut sn = cfg.hub(DEFAULT_HUB)?.securenat;
    sn.enabled = true;
    cfg.set_securenat(DEFAULT_HUB, &sn)?;
    cfg.root.folder_or_create("WireGuardKeyList");
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_has_everything_the_walkthrough_needs() {
        let a = embedded_default().unwrap();
        let b = embedded_default().unwrap();
        let ports: Vec<u16> = a.listeners().iter().map(|l| l.port).collect();
        assert_eq!(ports, DEFAULT_PORTS);
        assert_eq!(a.udp_ports(), DEFAULT_PORTS);
        let hub = a.hub(DEFAULT_HUB).unwrap();
        assert!(hub.securenat.enabled);
        assert_eq!(hub.securenat.host_ip.to_string(), "192.168.30.1");
        assert_eq!(hub.default_gateway.to_string(), "192.168.30.1");
        let wg = a.wireguard().unwrap();
        assert!(wg.enabled);
        let key = base64::engine::general_purpose::STANDARD
            .decode(&wg.private_key)
            .unwrap();
        assert_eq!(key.len(), 32);
        // secrets are fresh each time
        assert_ne!(wg.private_key, b.wireguard().unwrap().private_key);
        assert_ne!(wg.preshared_key, b.wireguard().unwrap().preshared_key);
        let tc = a.openvpn_tls_crypt_key().expect("a tls-crypt key");
        assert_ne!(Some(tc), b.openvpn_tls_crypt_key());
        assert!(a.server_cert().is_some());
        assert!(a.admin_password_is_empty());
        // and it survives its own file format
        let back = Config::parse(&a.to_text()).unwrap();
        assert_eq!(back, a);
    }
}
