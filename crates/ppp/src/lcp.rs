//! LCP's options as this server negotiates them (RFC 1661 section 6, RFC 1994 section 3 for
//! CHAP's algorithm byte).
//!
//! From the peer: MRU (accepted within 576..=1500, else Nak'd into that range) and
//! Magic-Number (any but zero). Everything else is rejected, as SoftEther does: ACCM, PFC and
//! ACFC mean nothing on SSTP's and L2TP's framing (and the parser tolerates compressed frames
//! anyway), and an Authentication-Protocol in the peer's request asks the server to prove
//! itself, which it cannot (SoftEther takes it as a choice of method instead; pppd as a server
//! rejects it, as here).
//!
//! Ours: MRU (only when not the default 1500), Authentication-Protocol (the first method of
//! the preference list the peer has not refused) and Magic-Number.

use crate::fsm::{Negotiator, Verdict};
use crate::packet::{emit_options, Opt};

pub const OPT_MRU: u8 = 1;
pub const OPT_AUTH: u8 = 3;
pub const OPT_MAGIC: u8 = 5;

/// The MRU when none is negotiated (RFC 1661).
pub const DEFAULT_MRU: u16 = 1500;
/// The peer's MRU this server accepts.
pub const PEER_MRU: std::ops::RangeInclusive<u16> = 576..=1500;

/// An authentication method, as LCP's Authentication-Protocol option names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// CHAP with algorithm 0x81 (RFC 2759).
    MsChapV2,
    /// CHAP with algorithm 5 (RFC 1994).
    ChapMd5,
    /// PAP (RFC 1334).
    Pap,
}

impl AuthMethod {
    /// The option's value: protocol, and CHAP's algorithm.
    pub fn option_data(self) -> &'static [u8] {
        match self {
            AuthMethod::MsChapV2 => &[0xc2, 0x23, 0x81],
            AuthMethod::ChapMd5 => &[0xc2, 0x23, 0x05],
            AuthMethod::Pap => &[0xc0, 0x23],
        }
    }

    /// The method an option's value names, when it is one of these three.
    pub fn from_option(data: &[u8]) -> Option<AuthMethod> {
        match data {
            [0xc2, 0x23, 0x81] => Some(AuthMethod::MsChapV2),
            [0xc2, 0x23, 0x05] => Some(AuthMethod::ChapMd5),
            [0xc0, 0x23] => Some(AuthMethod::Pap),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::MsChapV2 => "MS-CHAPv2",
            AuthMethod::ChapMd5 => "CHAP-MD5",
            AuthMethod::Pap => "PAP",
        }
    }
}

/// LCP's side of the negotiation.
pub struct Lcp {
    /// The MRU we ask for (what we receive).
    mru: u16,
    ask_mru: bool,
    magic: u32,
    ask_magic: bool,
    /// The methods to offer, best first; the peer's Naks remove some.
    methods: Vec<AuthMethod>,
    /// The index in `methods` of the one offered now.
    offered: usize,
    /// The peer's MRU once acknowledged (what we may send).
    pub peer_mru: u16,
    /// The peer's magic number once acknowledged.
    pub peer_magic: Option<u32>,
}

impl Lcp {
    /// `methods` must not be empty (the session checks).
    pub fn new(mru: u16, magic: u32, methods: Vec<AuthMethod>) -> Lcp {
        Lcp {
            mru,
            ask_mru: mru != DEFAULT_MRU,
            // zero is not a magic number (RFC 1661 section 6.4)
            magic: if magic == 0 { 0x4554_4852 } else { magic },
            ask_magic: true,
            methods,
            offered: 0,
            peer_mru: DEFAULT_MRU,
            peer_magic: None,
        }
    }

    /// Our magic number as the peer knows it (zero when the peer rejected the option).
    pub fn magic(&self) -> u32 {
        if self.ask_magic {
            self.magic
        } else {
            0
        }
    }

    /// The method our request offers (the one in force once LCP is open).
    pub fn method(&self) -> AuthMethod {
        self.methods[self.offered]
    }
}

impl Negotiator for Lcp {
    fn request(&self) -> Vec<u8> {
        let mru = self.mru.to_be_bytes();
        let magic = self.magic.to_be_bytes();
        let mut opts = Vec::new();
        if self.ask_mru {
            opts.push(Opt {
                kind: OPT_MRU,
                data: &mru,
            });
        }
        opts.push(Opt {
            kind: OPT_AUTH,
            data: self.method().option_data(),
        });
        if self.ask_magic {
            opts.push(Opt {
                kind: OPT_MAGIC,
                data: &magic,
            });
        }
        emit_options(&opts)
    }

    fn peer_request(&mut self, options: &[Opt<'_>], nak_allowed: bool) -> Verdict {
        let mut reject = Vec::new();
        let mut nak = Vec::new();
        let (mut mru, mut magic) = (DEFAULT_MRU, None);
        for o in options {
            match (o.kind, o.u16(), o.u32()) {
                (OPT_MRU, Some(v), _) if PEER_MRU.contains(&v) => mru = v,
                (OPT_MRU, Some(v), _) if nak_allowed => {
                    let fixed = v.clamp(*PEER_MRU.start(), *PEER_MRU.end());
                    Opt {
                        kind: OPT_MRU,
                        data: &fixed.to_be_bytes(),
                    }
                    .emit(&mut nak);
                }
                (OPT_MAGIC, _, Some(v)) if v != 0 => magic = Some(v),
                _ => o.emit(&mut reject),
            }
        }
        if !reject.is_empty() {
            Verdict::Reject(reject)
        } else if !nak.is_empty() {
            Verdict::Nak(nak)
        } else {
            self.peer_mru = mru;
            self.peer_magic = magic;
            Verdict::Ack
        }
    }

    fn nak(&mut self, options: &[Opt<'_>]) -> Result<(), String> {
        for o in options {
            match o.kind {
                OPT_MRU => match o.u16() {
                    // the peer would rather we received less: fine, down to the minimum
                    Some(v) if PEER_MRU.contains(&v) => self.mru = v,
                    _ => self.ask_mru = false,
                },
                OPT_MAGIC => {
                    // the peer saw our number as its own (a loop, or a coincidence): another
                    self.magic = self.magic.rotate_left(13) ^ 0x9e37_79b9;
                }
                OPT_AUTH => {
                    // the peer names the method it wants: take it if we offer it at all,
                    // else go on down our list
                    let current = self.method();
                    let wanted = AuthMethod::from_option(o.data)
                        .and_then(|m| self.methods.iter().position(|x| *x == m))
                        .filter(|i| self.methods[*i] != current);
                    self.methods.remove(self.offered);
                    if self.methods.is_empty() {
                        return Err(format!(
                            "no authentication method in common (the peer refused {})",
                            current.name()
                        ));
                    }
                    self.offered = match wanted {
                        Some(i) if i > self.offered => i - 1,
                        Some(i) => i,
                        None => self.offered.min(self.methods.len() - 1),
                    };
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn reject(&mut self, options: &[Opt<'_>]) -> Result<(), String> {
        for o in options {
            match o.kind {
                OPT_MRU => self.ask_mru = false,
                OPT_MAGIC => self.ask_magic = false,
                OPT_AUTH => return Err("the peer refuses to authenticate".into()),
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;
    use crate::packet::parse_options;

    fn lcp() -> Lcp {
        Lcp::new(
            1500,
            0x1122_3344,
            vec![AuthMethod::MsChapV2, AuthMethod::ChapMd5, AuthMethod::Pap],
        )
    }

    fn judge(l: &mut Lcp, opts: &str) -> Verdict {
        let bytes = hex(opts);
        l.peer_request(&parse_options(&bytes).unwrap(), true)
    }

    #[test]
    fn our_request_offers_ms_chap_v2_and_a_magic_number() {
        assert_eq!(lcp().request(), hex("0305 c22381 0506 11223344"));
        let l = Lcp::new(1400, 7, vec![AuthMethod::Pap]);
        assert_eq!(l.request(), hex("0104 0578 0304 c023 0506 00000007"));
    }

    #[test]
    fn the_peers_mru_and_magic_are_taken_and_the_rest_rejected() {
        let mut l = lcp();
        assert_eq!(judge(&mut l, "0104 0578 0506 01020304"), Verdict::Ack);
        assert_eq!((l.peer_mru, l.peer_magic), (1400, Some(0x0102_0304)));
        // a Windows-like request: MRU, magic, PFC, ACFC, callback
        assert_eq!(
            judge(&mut l, "0104 05dc 0506 01020304 0702 0802 0d0306"),
            Verdict::Reject(hex("0702 0802 0d0306"))
        );
        assert_eq!(
            judge(&mut l, "0206 00000000"),
            Verdict::Reject(hex("0206 00000000"))
        );
        assert_eq!(
            judge(&mut l, "0506 00000000"),
            Verdict::Reject(hex("0506 00000000"))
        );
        // asking us to authenticate is refused
        assert_eq!(
            judge(&mut l, "0304 c023"),
            Verdict::Reject(hex("0304 c023"))
        );
    }

    #[test]
    fn an_mru_out_of_range_is_nakd_into_it() {
        let mut l = lcp();
        assert_eq!(judge(&mut l, "0104 0ffb"), Verdict::Nak(hex("0104 05dc")));
        assert_eq!(judge(&mut l, "0104 0100"), Verdict::Nak(hex("0104 0240")));
        let bytes = hex("0104 0ffb");
        assert_eq!(
            l.peer_request(&parse_options(&bytes).unwrap(), false),
            Verdict::Reject(bytes.clone())
        );
    }

    #[test]
    fn a_nak_of_the_method_switches_to_the_peers_choice_or_the_next() {
        let mut l = lcp();
        // the peer wants PAP: we offer it
        l.nak(&parse_options(&hex("0304 c023")).unwrap()).unwrap();
        assert_eq!(l.method(), AuthMethod::Pap);
        // the peer Naks PAP with EAP: CHAP-MD5 is what is left
        l.nak(&parse_options(&hex("0304 c227")).unwrap()).unwrap();
        assert_eq!(l.method(), AuthMethod::ChapMd5);
        let err = l
            .nak(&parse_options(&hex("0304 c227")).unwrap())
            .unwrap_err();
        assert!(err.contains("no authentication method in common"), "{err}");

        let mut l = lcp();
        l.nak(&parse_options(&hex("0305 c22380")).unwrap()).unwrap();
        assert_eq!(l.method(), AuthMethod::ChapMd5);
        assert!(l
            .reject(&parse_options(&hex("0305 c22305")).unwrap())
            .is_err());
    }

    #[test]
    fn rejected_options_leave_our_request() {
        let mut l = Lcp::new(1400, 1, vec![AuthMethod::Pap]);
        l.reject(&parse_options(&hex("0104 0578 0506 00000001")).unwrap())
            .unwrap();
        assert_eq!(l.request(), hex("0304 c023"));
        assert_eq!(l.magic(), 0);
    }
}
