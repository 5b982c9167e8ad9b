//! The rustls server configuration for admin listeners.

use std::sync::Arc;

use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};
use rustls::ServerConfig;

/// Why a TLS server configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The key is neither PKCS#8, PKCS#1 (RSA) nor SEC1 (EC) DER, or of an unsupported type.
    #[error("the private key is not a supported PKCS#8, PKCS#1 RSA or SEC1 EC key")]
    UnsupportedKey,
    /// rustls refused the certificate/key pair or the protocol set.
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Build a server config (ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`) from one DER
/// certificate and its DER private key in PKCS#8 or PKCS#1 (SoftEther stores PKCS#1 RSA keys).
pub fn tls_server_config(
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let candidates: [PrivateKeyDer<'static>; 3] = [
        PrivatePkcs8KeyDer::from(key_der.clone()).into(),
        PrivatePkcs1KeyDer::from(key_der.clone()).into(),
        PrivateSec1KeyDer::from(key_der).into(),
    ];
    let key = candidates
        .into_iter()
        .find(|k| {
            provider
                .key_provider
                .load_private_key(k.clone_key())
                .is_ok()
        })
        .ok_or(TlsConfigError::UnsupportedKey)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert_der)], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
