//! IPCP's options as this server negotiates them (RFC 1332, RFC 1877 for DNS and NBNS).
//!
//! The peer gets the address the caller assigned: IP-Address 0.0.0.0, another address or none
//! at all is Nak'd with it. DNS (129, 131) and NBNS (130, 132) are Nak'd with the caller's
//! servers, and rejected when the caller has none. IP-Compression-Protocol (Van Jacobson) and
//! everything else is rejected.
//!
//! Ours: IP-Address with the server's own address (the gateway). A peer that Naks it gets
//! 192.0.0.8 instead (RFC 7600's dummy address, as SoftEther falls back to), then no address
//! option at all.

use std::net::Ipv4Addr;

use crate::fsm::{Negotiator, Verdict};
use crate::packet::{emit_options, Opt};

pub const OPT_COMPRESSION: u8 = 2;
pub const OPT_ADDRESS: u8 = 3;
pub const OPT_DNS1: u8 = 129;
pub const OPT_NBNS1: u8 = 130;
pub const OPT_DNS2: u8 = 131;
pub const OPT_NBNS2: u8 = 132;

/// The address IPCP falls back to when the peer will not have ours (RFC 7600).
pub const DUMMY: Ipv4Addr = Ipv4Addr::new(192, 0, 0, 8);

/// What the caller gives a peer for IPv4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addressing {
    /// The peer's address.
    pub peer: Ipv4Addr,
    /// The server's own address on the link (the hub's gateway, SecureNAT's address).
    pub local: Ipv4Addr,
    /// Primary and secondary DNS servers.
    pub dns: [Option<Ipv4Addr>; 2],
    /// Primary and secondary NBNS (WINS) servers; usually none.
    pub nbns: [Option<Ipv4Addr>; 2],
}

pub struct Ipcp {
    pub addressing: Addressing,
    /// Our own address as we ask for it; `None` once the peer refused it twice or rejected it.
    ours: Option<Ipv4Addr>,
}

impl Ipcp {
    pub fn new(addressing: Addressing) -> Ipcp {
        let ours = Some(addressing.local).filter(|a| !a.is_unspecified());
        Ipcp { addressing, ours }
    }

    /// The value the server wants for one of the peer's address options, when it has one.
    fn wanted(&self, kind: u8) -> Option<Ipv4Addr> {
        let a = &self.addressing;
        match kind {
            OPT_ADDRESS => Some(a.peer),
            OPT_DNS1 => a.dns[0],
            OPT_DNS2 => a.dns[1],
            OPT_NBNS1 => a.nbns[0],
            OPT_NBNS2 => a.nbns[1],
            _ => None,
        }
    }
}

impl Negotiator for Ipcp {
    fn request(&self) -> Vec<u8> {
        match self.ours {
            Some(a) => emit_options(&[Opt {
                kind: OPT_ADDRESS,
                data: &a.octets(),
            }]),
            None => Vec::new(),
        }
    }

    fn peer_request(&mut self, options: &[Opt<'_>], nak_allowed: bool) -> Verdict {
        let mut reject = Vec::new();
        let mut nak = Vec::new();
        for o in options {
            match (self.wanted(o.kind), o.ipv4()) {
                (Some(want), Some(got)) if want == got => {}
                (Some(want), Some(_)) if nak_allowed => Opt {
                    kind: o.kind,
                    data: &want.octets(),
                }
                .emit(&mut nak),
                _ => o.emit(&mut reject),
            }
        }
        // a peer that asks no address is told the one it has (as SoftEther does)
        if nak_allowed && !options.iter().any(|o| o.kind == OPT_ADDRESS) {
            Opt {
                kind: OPT_ADDRESS,
                data: &self.addressing.peer.octets(),
            }
            .emit(&mut nak);
        }
        if !reject.is_empty() {
            Verdict::Reject(reject)
        } else if !nak.is_empty() {
            Verdict::Nak(nak)
        } else {
            Verdict::Ack
        }
    }

    fn nak(&mut self, options: &[Opt<'_>]) -> Result<(), String> {
        if options.iter().any(|o| o.kind == OPT_ADDRESS) {
            self.ours = match self.ours {
                Some(a) if a != DUMMY => Some(DUMMY),
                _ => None,
            };
        }
        Ok(())
    }

    fn reject(&mut self, options: &[Opt<'_>]) -> Result<(), String> {
        if options.iter().any(|o| o.kind == OPT_ADDRESS) {
            self.ours = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;
    use crate::packet::parse_options;

    fn ipcp(dns: bool) -> Ipcp {
        Ipcp::new(Addressing {
            peer: Ipv4Addr::new(192, 168, 30, 10),
            local: Ipv4Addr::new(192, 168, 30, 1),
            dns: if dns {
                [Some(Ipv4Addr::new(192, 168, 30, 1)), None]
            } else {
                [None, None]
            },
            nbns: [None, None],
        })
    }

    fn judge(i: &mut Ipcp, opts: &str) -> Verdict {
        let bytes = hex(opts);
        i.peer_request(&parse_options(&bytes).unwrap(), true)
    }

    #[test]
    fn a_windows_like_request_converges() {
        let mut i = ipcp(true);
        // address, DNS, NBNS, DNS2, NBNS2, all zero: the unknown ones rejected first
        let first = "0306 00000000 8106 00000000 8206 00000000 8306 00000000 8406 00000000";
        assert_eq!(
            judge(&mut i, first),
            Verdict::Reject(hex("8206 00000000 8306 00000000 8406 00000000"))
        );
        assert_eq!(
            judge(&mut i, "0306 00000000 8106 00000000"),
            Verdict::Nak(hex("0306 c0a81e0a 8106 c0a81e01"))
        );
        assert_eq!(judge(&mut i, "0306 c0a81e0a 8106 c0a81e01"), Verdict::Ack);
    }

    #[test]
    fn another_address_or_none_is_nakd_and_compression_rejected() {
        let mut i = ipcp(false);
        assert_eq!(
            judge(&mut i, "0306 0a000005"),
            Verdict::Nak(hex("0306 c0a81e0a"))
        );
        assert_eq!(judge(&mut i, ""), Verdict::Nak(hex("0306 c0a81e0a")));
        assert_eq!(
            judge(&mut i, "0306 c0a81e0a 0206 002d0f01"),
            Verdict::Reject(hex("0206 002d0f01"))
        );
        assert_eq!(
            judge(&mut i, "0306 c0a81e0a 8106 00000000"),
            Verdict::Reject(hex("8106 00000000"))
        );
    }

    #[test]
    fn our_address_falls_back_to_the_dummy_then_to_none() {
        let mut i = ipcp(false);
        assert_eq!(i.request(), hex("0306 c0a81e01"));
        let nak = hex("0306 0a000001");
        i.nak(&parse_options(&nak).unwrap()).unwrap();
        assert_eq!(i.request(), hex("0306 c0000008"));
        i.nak(&parse_options(&nak).unwrap()).unwrap();
        assert_eq!(i.request(), hex(""));
    }
}
