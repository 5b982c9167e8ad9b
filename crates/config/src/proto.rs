//! The protocols' options (SoftEther 5's `ProtoOptionsGet`/`ProtoOptionsSet`), kept under
//! `ServerConfiguration/Proto/<protocol>` as SoftEther writes them. Etherhub has OpenVPN's and
//! SSTP's, with one of its own for OpenVPN: `TlsCrypt` (tls-crypt required), whose key is kept beside them as
//! `byte TlsCryptKey` (an OpenVPN static key's 256 bytes).

use crate::model::Config;

/// An option's value: SoftEther's types 1 (string) and 2 (bool).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtoValue {
    Str(String),
    Bool(bool),
}

/// OpenVPN's options and their defaults, as SoftEther 5.01 has them (sorted by name), and
/// Etherhub's `TlsCrypt`.
pub const OPENVPN: &str = "OpenVPN";
/// The option that requires tls-crypt of OpenVPN clients (Etherhub's own).
pub const OPENVPN_TLS_CRYPT: &str = "TlsCrypt";
/// The bytes of the tls-crypt key.
pub const TLS_CRYPT_KEY_LEN: usize = 256;
/// SSTP's one option, `Enabled` (on by default, as in SoftEther 5).
pub const SSTP: &str = "SSTP";
pub const OPENVPN_DEFAULT_CLIENT_OPTION: &str = "dev-type tun,link-mtu 1500,tun-mtu 1500,cipher AES-128-CBC,auth SHA1,keysize 128,key-method 2,tls-client";

/// A protocol's name as Etherhub spells it, and its options with their defaults.
fn defaults(protocol: &str) -> Option<(&'static str, Vec<(&'static str, ProtoValue)>)> {
    if protocol.eq_ignore_ascii_case(SSTP) {
        return Some((SSTP, vec![("Enabled", ProtoValue::Bool(true))]));
    }
    protocol.eq_ignore_ascii_case(OPENVPN).then(|| {
        let options = vec![
            (
                "DefaultClientOption",
                ProtoValue::Str(OPENVPN_DEFAULT_CLIENT_OPTION.into()),
            ),
            ("Enabled", ProtoValue::Bool(true)),
            ("Obfuscation", ProtoValue::Bool(false)),
            ("ObfuscationMask", ProtoValue::Str(String::new())),
            ("PushDummyIPv4AddressOnL2Mode", ProtoValue::Bool(true)),
            (OPENVPN_TLS_CRYPT, ProtoValue::Bool(false)),
        ];
        (OPENVPN, options)
    })
}

/// A protocol's options, each with its value.
pub type ProtoOptions = Vec<(String, ProtoValue)>;

/// Why a protocol option change was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    #[error("no protocol named {0:?} (Etherhub has OpenVPN and SSTP)")]
    UnknownProtocol(String),
    #[error("{protocol} has no option {name:?}")]
    UnknownOption { protocol: String, name: String },
    #[error("{name} takes a {want}")]
    WrongType { name: String, want: &'static str },
    #[error("{0} is not supported by Etherhub (OpenVPN's XOR obfuscation needs patched clients)")]
    Unsupported(String),
}

impl Config {
    /// A protocol's options with their values (the defaults where the config has none); the
    /// protocol's name as Etherhub spells it.
    pub fn proto_options(
        &self,
        protocol: &str,
    ) -> Result<(&'static str, ProtoOptions), ProtoError> {
        let (spelled, defs) =
            defaults(protocol).ok_or_else(|| ProtoError::UnknownProtocol(protocol.into()))?;
        let folder = self.server().and_then(|s| s.path(&["Proto", spelled]));
        let options = defs
            .into_iter()
            .map(|(name, def)| {
                let v = match def {
                    ProtoValue::Str(d) => ProtoValue::Str(
                        folder
                            .and_then(|f| f.get_str(name))
                            .map(str::to_string)
                            .unwrap_or(d),
                    ),
                    ProtoValue::Bool(d) => {
                        ProtoValue::Bool(folder.and_then(|f| f.get_bool(name)).unwrap_or(d))
                    }
                };
                (name.to_string(), v)
            })
            .collect();
        Ok((spelled, options))
    }

    /// Sets options of a protocol (names case-insensitive; the others keep their values).
    pub fn set_proto_options(
        &mut self,
        protocol: &str,
        options: &[(String, ProtoValue)],
    ) -> Result<(), ProtoError> {
        let (name, current) = self.proto_options(protocol)?;
        let mut next = current;
        for (n, v) in options {
            let Some(slot) = next.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(n)) else {
                return Err(ProtoError::UnknownOption {
                    protocol: name.into(),
                    name: n.clone(),
                });
            };
            match (&slot.1, v) {
                (ProtoValue::Str(_), ProtoValue::Str(_))
                | (ProtoValue::Bool(_), ProtoValue::Bool(_)) => {}
                (ProtoValue::Str(_), _) => {
                    return Err(ProtoError::WrongType {
                        name: slot.0.clone(),
                        want: "string",
                    })
                }
                (ProtoValue::Bool(_), _) => {
                    return Err(ProtoError::WrongType {
                        name: slot.0.clone(),
                        want: "boolean",
                    })
                }
            }
            if slot.0 == "Obfuscation" && *v == ProtoValue::Bool(true) {
                return Err(ProtoError::Unsupported(slot.0.clone()));
            }
            slot.1 = v.clone();
        }
        let f = self.server_mut().path_or_create(&["Proto", name]);
        for (k, v) in &next {
            match v {
                ProtoValue::Str(s) => f.set_str(k, s),
                ProtoValue::Bool(b) => f.set_bool(k, *b),
            }
        }
        Ok(())
    }

    /// Whether a protocol's bool option `name` is true.
    pub fn proto_flag(&self, protocol: &str, name: &str) -> bool {
        self.proto_options(protocol).is_ok_and(|(_, o)| {
            o.iter()
                .any(|(k, v)| k == name && *v == ProtoValue::Bool(true))
        })
    }

    /// Whether a protocol is on (`Enabled`).
    pub fn proto_enabled(&self, protocol: &str) -> bool {
        self.proto_flag(protocol, "Enabled")
    }

    /// The OpenVPN tls-crypt key (`None`: none, or not 256 bytes).
    pub fn openvpn_tls_crypt_key(&self) -> Option<&[u8]> {
        self.server()
            .and_then(|s| s.path(&["Proto", OPENVPN]))
            .and_then(|f| f.get_bytes("TlsCryptKey"))
            .filter(|k| k.len() == TLS_CRYPT_KEY_LEN)
    }

    pub fn set_openvpn_tls_crypt_key(&mut self, key: &[u8; TLS_CRYPT_KEY_LEN]) {
        self.server_mut()
            .path_or_create(&["Proto", OPENVPN])
            .set_bytes("TlsCryptKey", key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openvpn_options_default_as_softether_and_are_set_by_name() {
        let mut c = Config::parse("declare root\n{\n}\n").unwrap();
        let (name, o) = c.proto_options("openvpn").unwrap();
        assert_eq!(name, "OpenVPN");
        assert_eq!(o.len(), 6);
        assert!(c.proto_enabled("OpenVPN"));
        assert!(!c.proto_flag("OpenVPN", "TlsCrypt"), "off by default");
        c.set_proto_options("OPENVPN", &[("enabled".into(), ProtoValue::Bool(false))])
            .unwrap();
        assert!(!c.proto_enabled("OpenVPN"));
        let text = c.to_text();
        assert!(text.contains("declare Proto"), "{text}");
        assert!(text.contains("bool Enabled false"), "{text}");
        assert_eq!(
            c.set_proto_options(
                "OpenVPN",
                &[("Enabled".into(), ProtoValue::Str("x".into()))]
            ),
            Err(ProtoError::WrongType {
                name: "Enabled".into(),
                want: "boolean"
            })
        );
        assert!(matches!(
            c.set_proto_options("OpenVPN", &[("Nope".into(), ProtoValue::Bool(true))]),
            Err(ProtoError::UnknownOption { .. })
        ));
        assert!(matches!(
            c.set_proto_options("OpenVPN", &[("Obfuscation".into(), ProtoValue::Bool(true))]),
            Err(ProtoError::Unsupported(_))
        ));
        assert!(matches!(
            c.proto_options("IPsec"),
            Err(ProtoError::UnknownProtocol(_))
        ));
        // SSTP: Enabled only, on by default, kept in its own folder
        let (name, o) = c.proto_options("sstp").unwrap();
        assert_eq!((name, o.len()), ("SSTP", 1));
        assert!(c.proto_enabled("SSTP"));
        let openvpn = c.proto_options("OpenVPN").unwrap();
        c.set_proto_options("SSTP", &[("enabled".into(), ProtoValue::Bool(false))])
            .unwrap();
        assert!(!c.proto_enabled("SSTP"));
        assert_eq!(
            c.proto_options("OpenVPN").unwrap(),
            openvpn,
            "OpenVPN's untouched"
        );
    }

    #[test]
    fn the_tls_crypt_key_is_kept_beside_the_options_and_is_no_option() {
        let mut c = Config::parse("declare root\n{\n}\n").unwrap();
        assert_eq!(c.openvpn_tls_crypt_key(), None);
        c.set_proto_options("OpenVPN", &[("tlscrypt".into(), ProtoValue::Bool(true))])
            .unwrap();
        assert!(c.proto_flag("OpenVPN", "TlsCrypt"));
        let key: [u8; 256] = std::array::from_fn(|i| i as u8);
        c.set_openvpn_tls_crypt_key(&key);
        let back = Config::parse(&c.to_text()).unwrap();
        assert_eq!(back.openvpn_tls_crypt_key(), Some(&key[..]));
        assert!(back.proto_flag("OpenVPN", "TlsCrypt"));
        // not an option: ProtoOptionsGet does not list it, nor does ProtoOptionsSet take it
        let (_, o) = back.proto_options("OpenVPN").unwrap();
        assert!(o.iter().all(|(k, _)| k != "TlsCryptKey"));
        assert!(matches!(
            c.set_proto_options(
                "OpenVPN",
                &[("TlsCryptKey".into(), ProtoValue::Str("x".into()))]
            ),
            Err(ProtoError::UnknownOption { .. })
        ));
        // setting options keeps the key
        c.set_proto_options("OpenVPN", &[("Enabled".into(), ProtoValue::Bool(false))])
            .unwrap();
        assert_eq!(c.openvpn_tls_crypt_key(), Some(&key[..]));
    }
}
