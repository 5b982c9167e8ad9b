//! The IPsec services (SoftEther's `IPsecEnable`/`IPsecGet`), kept in the root's `IPsec`
//! folder as SoftEther writes it: L2TP over IPsec, raw L2TP, EtherIP, the pre-shared key and
//! the hub a user name without one logs in to. Off by default, with SoftEther's defaults for
//! the key (`vpn`) and the hub (`DEFAULT`).

use crate::model::{Config, DEFAULT_HUB};

/// The key SoftEther starts with.
pub const DEFAULT_SECRET: &str = "vpn";
/// The longest pre-shared key SoftEther keeps (its `MAX_SIZE` buffer, less the NUL).
pub const MAX_SECRET: usize = 255;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpsecServices {
    pub l2tp_ipsec: bool,
    pub l2tp_raw: bool,
    pub etherip_ipsec: bool,
    pub secret: String,
    pub default_hub: String,
}

impl Default for IpsecServices {
    fn default() -> Self {
        IpsecServices {
            l2tp_ipsec: false,
            l2tp_raw: false,
            etherip_ipsec: false,
            secret: DEFAULT_SECRET.into(),
            default_hub: DEFAULT_HUB.into(),
        }
    }
}

/// Why IPsec settings were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpsecError {
    #[error("the pre-shared key is empty")]
    EmptySecret,
    #[error("the pre-shared key is longer than {MAX_SECRET} bytes")]
    LongSecret,
    #[error("the default hub name is empty")]
    EmptyHub,
}

impl Config {
    /// The IPsec services (SoftEther's defaults where the config has none).
    pub fn ipsec(&self) -> IpsecServices {
        let d = IpsecServices::default();
        let Some(f) = self.root.path(&["IPsec"]) else {
            return d;
        };
        IpsecServices {
            l2tp_ipsec: f.get_bool("L2TP_IPsec").unwrap_or(d.l2tp_ipsec),
            l2tp_raw: f.get_bool("L2TP_Raw").unwrap_or(d.l2tp_raw),
            etherip_ipsec: f.get_bool("EtherIP_IPsec").unwrap_or(d.etherip_ipsec),
            secret: f.get_str("IPsec_Secret").map_or(d.secret, str::to_string),
            default_hub: f
                .get_str("L2TP_DefaultHub")
                .map_or(d.default_hub, str::to_string),
        }
    }

    /// Sets the IPsec services (the folder's other items, EtherIP's ids, stay).
    pub fn set_ipsec(&mut self, s: &IpsecServices) -> Result<(), IpsecError> {
        if s.secret.is_empty() {
            return Err(IpsecError::EmptySecret);
        }
        if s.secret.len() > MAX_SECRET {
            return Err(IpsecError::LongSecret);
        }
        if s.default_hub.trim().is_empty() {
            return Err(IpsecError::EmptyHub);
        }
        let f = self.root.path_or_create(&["IPsec"]);
        f.set_bool("EtherIP_IPsec", s.etherip_ipsec);
        f.set_str("IPsec_Secret", &s.secret);
        f.set_str("L2TP_DefaultHub", s.default_hub.trim());
        f.set_bool("L2TP_IPsec", s.l2tp_ipsec);
        f.set_bool("L2TP_Raw", s.l2tp_raw);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softethers_defaults_and_its_names_in_the_file() {
        let mut c = Config::parse("declare root\n{\n}\n").unwrap();
        assert_eq!(c.ipsec(), IpsecServices::default());
        let s = IpsecServices {
            l2tp_ipsec: true,
            l2tp_raw: true,
            etherip_ipsec: false,
            secret: "my psk".into(),
            default_hub: "SALES".into(),
        };
        c.set_ipsec(&s).unwrap();
        let text = c.to_text();
        for line in [
            "bool L2TP_IPsec true",
            "bool L2TP_Raw true",
            "string IPsec_Secret my$20psk",
            "string L2TP_DefaultHub SALES",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        let back = Config::parse(&text).unwrap();
        assert_eq!(back.ipsec(), s);
        assert_eq!(
            c.set_ipsec(&IpsecServices {
                secret: String::new(),
                ..s.clone()
            }),
            Err(IpsecError::EmptySecret)
        );
        assert_eq!(c.ipsec(), s, "a refused change loses nothing");
    }
}
