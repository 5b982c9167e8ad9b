//! The rustls configurations: the server's for the listeners, and the client's SoftEther's
//! tools use (any server certificate).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
    ServerName, UnixTime,
};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};

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

/// Accepts any server certificate, as vpncmd does by default: VPN servers ship a self-signed
/// certificate generated at first start, so there is no CA to check it against. The TLS
/// signature over the handshake is still verified, so the session is bound to that key.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The client configuration of SoftEther's admin tools (`etherhub cmd`, tests, the capture
/// relay): TLS 1.2 or 1.3, any server certificate ([`AcceptAnyCert`]).
pub fn tls_client_config_any_cert() -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// A DER certificate as PEM text (what `ServerCertGet` saves and OpenVPN configs carry inline).
pub fn pem_certificate(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}
