//! The hub's access list, compiled for the switch: SoftEther's first-match-by-priority rules,
//! indexed by destination port (rules for one port) and by destination IPv4 network (rules for
//! an address or subnet, one table per mask length), so that a frame is checked against the
//! rules that could match it rather than against all of them.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use etherhub_config::AccessRule;
use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, Ipv6Packet};

const TCP: u8 = 6;
const UDP: u8 = 17;

/// What the access list reads of a frame, once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub l3: L3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3 {
    /// ARP: no rule matches it (SoftEther's default).
    Arp,
    V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        l4: L4,
    },
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        l4: L4,
    },
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L4 {
    pub protocol: u8,
    /// TCP or UDP ports.
    pub ports: Option<(u16, u16)>,
    /// TCP: anything but a SYN without ACK.
    pub established: Option<bool>,
}

impl FrameInfo {
    pub fn of(frame: &[u8]) -> Option<FrameInfo> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        let l4 = |protocol: IpProtocol, payload: &[u8]| {
            let protocol = u8::from(protocol);
            let ports = (matches!(protocol, TCP | UDP) && payload.len() >= 4).then(|| {
                (
                    u16::from_be_bytes([payload[0], payload[1]]),
                    u16::from_be_bytes([payload[2], payload[3]]),
                )
            });
            let established = (protocol == TCP && payload.len() >= 14).then(|| {
                let flags = payload[13];
                !(flags & 0x02 != 0 && flags & 0x10 == 0)
            });
            L4 {
                protocol,
                ports,
                established,
            }
        };
        let l3 = match eth.ethertype() {
            EthernetProtocol::Arp => L3::Arp,
            EthernetProtocol::Ipv4 => match Ipv4Packet::new_checked(eth.payload()) {
                Ok(p) => L3::V4 {
                    src: p.src_addr(),
                    dst: p.dst_addr(),
                    l4: l4(p.next_header(), p.payload()),
                },
                Err(_) => L3::Other,
            },
            EthernetProtocol::Ipv6 => match Ipv6Packet::new_checked(eth.payload()) {
                Ok(p) => L3::V6 {
                    src: p.src_addr(),
                    dst: p.dst_addr(),
                    l4: l4(p.next_header(), p.payload()),
                },
                Err(_) => L3::Other,
            },
            _ => L3::Other,
        };
        Some(FrameInfo {
            src_mac: eth.src_addr().0,
            dst_mac: eth.dst_addr().0,
            l3,
        })
    }
}

/// Who a session is, for rules that name users: its user and group, in upper case.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ident {
    pub user: String,
    pub group: String,
    /// One of the hub's own hosts (SecureNAT), not a VPN client: user lists never name it.
    pub host: bool,
}

impl Ident {
    pub fn new(user: &str, group: &str) -> Ident {
        Ident {
            user: simple_name(user),
            group: simple_name(group),
            host: false,
        }
    }

    fn is(&self, name: &str) -> bool {
        !name.is_empty() && (self.user == name || self.group == name)
    }
}

/// The user lists that access rules name as `include:FILE` or `exclude:FILE`: the user names
/// in each file (simple, upper case), as the hub's owner read them. A file it could not read
/// is an empty list: an include rule then matches nobody and an exclude rule every client, as
/// in SoftEther.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserLists(HashMap<String, HashSet<String>>);

impl UserLists {
    /// The file a rule's user name refers to, and whether it excludes (`exclude:`); `None` for
    /// a plain name.
    pub fn reference(name: &str) -> Option<(&str, bool)> {
        let head = name.get(..8)?;
        let exclude = if head.eq_ignore_ascii_case("include:") {
            false
        } else if head.eq_ignore_ascii_case("exclude:") {
            true
        } else {
            return None;
        };
        Some((name[8..].trim(), exclude))
    }

    /// Sets the names of `file` (as a rule writes it after its prefix).
    pub fn insert(&mut self, file: &str, names: impl IntoIterator<Item = String>) {
        let names = names
            .into_iter()
            .map(|n| simple_name(&n))
            .filter(|n| !n.is_empty())
            .collect();
        self.0.insert(file.trim().to_string(), names);
    }

    /// Whether `who` matches a rule's `include:`/`exclude:` name.
    fn matches(&self, file: &str, exclude: bool, who: &Ident) -> bool {
        if file.is_empty() || who.host || who.user.is_empty() {
            return false;
        }
        let listed = self.0.get(file).is_some_and(|l| l.contains(&who.user));
        listed != exclude
    }
}

/// Whether a rule's user name (`""`: anyone) names `who` (`None`: no session, as for the
/// receiving side of rules checked once per frame).
fn names(spec: &str, who: Option<&Ident>, lists: &UserLists) -> bool {
    if let Some((file, exclude)) = UserLists::reference(spec) {
        return who.is_some_and(|w| lists.matches(file, exclude, w));
    }
    let n = simple_name(spec);
    n.is_empty() || who.is_some_and(|w| w.is(&n))
}

/// A user name as SoftEther compares it: without `@domain` or `DOMAIN\`, in upper case.
fn simple_name(name: &str) -> String {
    let n = name.split('@').next().unwrap_or("");
    let n = n.rsplit('\\').next().unwrap_or("");
    n.trim().to_ascii_uppercase()
}

/// Whether one rule matches; the reference the compiled list must agree with.
pub fn rule_matches(
    r: &AccessRule,
    f: &FrameInfo,
    src: &Ident,
    dst: Option<&Ident>,
    lists: &UserLists,
) -> bool {
    if !r.active {
        return false;
    }
    let mac_ok = |m: &Option<([u8; 6], [u8; 6])>, a: &[u8; 6]| {
        m.is_none_or(|(want, mask)| (0..6).all(|i| want[i] & mask[i] == a[i] & mask[i]))
    };
    if !mac_ok(&r.src_mac, &f.src_mac) || !mac_ok(&r.dst_mac, &f.dst_mac) {
        return false;
    }
    if !names(&r.src_user, Some(src), lists) || !names(&r.dst_user, dst, lists) {
        return false;
    }
    if f.l3 == L3::Arp {
        return false;
    }
    // both families as 128-bit numbers: the rule's networks, the frame's addresses when it is
    // of the rule's family
    let net = |ip: u128, mask: u128| (ip != 0 || mask != 0).then_some((ip, mask));
    let (src_net, dst_net) = if r.ipv6 {
        (
            net(r.src_ip6.into(), r.src_mask6.into()),
            net(r.dst_ip6.into(), r.dst_mask6.into()),
        )
    } else {
        let v4 = |a: Ipv4Addr| u128::from(u32::from(a));
        (
            net(v4(r.src_ip), v4(r.src_mask)),
            net(v4(r.dst_ip), v4(r.dst_mask)),
        )
    };
    let packet = match (f.l3, r.ipv6) {
        (L3::V4 { src, dst, l4 }, false) => {
            Some((u128::from(u32::from(src)), u128::from(u32::from(dst)), l4))
        }
        (L3::V6 { src, dst, l4 }, true) => Some((src.into(), dst.into(), l4)),
        _ => None,
    };
    let within = |a: u128, net: Option<(u128, u128)>| net.is_none_or(|(ip, m)| a & m == ip & m);
    let l4 = match packet {
        Some((src, dst, l4)) => {
            if !within(src, src_net) || !within(dst, dst_net) {
                return false;
            }
            Some(l4)
        }
        // an address condition needs a packet of the rule's family
        None if src_net.is_some() || dst_net.is_some() => return false,
        None => None,
    };
    let ports = r.src_ports != (0, 0) || r.dst_ports != (0, 0);
    if r.protocol == 0 && !ports && r.tcp_established.is_none() {
        // a rule of addresses, users and MACs only
        return true;
    }
    // the rest needs a packet of the rule's family
    let Some(l4) = l4 else {
        return false;
    };
    if r.protocol != 0 && u32::from(l4.protocol) != r.protocol {
        return false;
    }
    if ports {
        let Some((sp, dp)) = l4.ports else {
            return false;
        };
        let within = |(a, b): (u16, u16), p: u16| (a, b) == (0, 0) || (a <= p && p <= b.max(a));
        if !within(r.src_ports, sp) || !within(r.dst_ports, dp) {
            return false;
        }
    }
    if let Some(want) = r.tcp_established {
        if l4.established != Some(want) {
            return false;
        }
    }
    true
}

/// The compiled list: rules in order, an index of the single-port rules by (protocol, port),
/// and a count of matches per rule.
#[derive(Clone, Debug, Default)]
pub struct AccessList {
    rules: Vec<AccessRule>,
    /// Rules checked once, as a frame comes in: those before the first rule that names a
    /// destination user (SoftEther's split); the rest are checked per receiving session.
    per_destination_from: usize,
    by_port: HashMap<(u8, u16), Vec<usize>>,
    /// IPv4 rules for a destination network, by mask and masked address.
    by_dst: Vec<(u32, HashMap<u32, Vec<usize>>)>,
    general: Vec<usize>,
    matches: Vec<u64>,
    /// The candidates of the frame at hand (kept to spare an allocation per frame).
    scratch: Vec<usize>,
    /// What the rule that passed the last frame at [`AccessList::check_in`] does to it.
    impairment: Option<Impairment>,
    /// The rule that matched the last frame at [`AccessList::check_in`], if it redirects.
    redirect: Option<usize>,
    /// The files `include:` and `exclude:` names refer to.
    lists: UserLists,
}

/// SoftEther's network simulation on a passing rule: the frames it passes are delayed by
/// `delay_ms`, give or take up to `jitter_pct` percent of that, and `loss_pct` percent of them
/// are lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Impairment {
    pub delay_ms: u32,
    pub jitter_pct: u32,
    pub loss_pct: u32,
}

/// A frame's fate at one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Discard,
    /// No rule of this part of the list matched.
    NoMatch,
}

impl AccessList {
    /// Compiles `rules` (in SoftEther's order, as the config keeps them).
    pub fn new(rules: &[AccessRule]) -> AccessList {
        let mut l = AccessList {
            rules: rules.to_vec(),
            per_destination_from: rules
                .iter()
                .position(|r| !r.dst_user.is_empty())
                .unwrap_or(rules.len()),
            matches: vec![0; rules.len()],
            ..AccessList::default()
        };
        for (i, r) in rules.iter().enumerate() {
            let (a, b) = r.dst_ports;
            let single = a != 0 && (b == a || b == 0);
            let protocols: &[u8] = match r.protocol {
                0 => &[TCP, UDP],
                6 => &[TCP],
                17 => &[UDP],
                _ => &[],
            };
            let mask = u32::from(r.dst_mask);
            if single && !protocols.is_empty() {
                for p in protocols {
                    l.by_port.entry((*p, a)).or_default().push(i);
                }
            } else if !r.ipv6 && mask != 0 {
                let at = match l.by_dst.iter().position(|(m, _)| *m == mask) {
                    Some(at) => at,
                    None => {
                        l.by_dst.push((mask, HashMap::new()));
                        l.by_dst.len() - 1
                    }
                };
                l.by_dst[at]
                    .1
                    .entry(u32::from(r.dst_ip) & mask)
                    .or_default()
                    .push(i);
            } else {
                l.general.push(i);
            }
        }
        l
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The user lists its `include:` and `exclude:` names refer to (kept when the rules
    /// change: see [`AccessList::take_user_lists`]).
    pub fn set_user_lists(&mut self, lists: UserLists) {
        self.lists = lists;
    }

    pub fn take_user_lists(&mut self) -> UserLists {
        std::mem::take(&mut self.lists)
    }

    /// Whether any rule is checked per receiving session.
    pub fn per_destination(&self) -> bool {
        self.per_destination_from < self.rules.len()
    }

    /// Matches counted per rule, in the list's order.
    pub fn matches(&self) -> &[u64] {
        &self.matches
    }

    /// The first rule in `range` that matches, among those that could, and its place.
    fn first_match(
        &mut self,
        range: Range<usize>,
        f: &FrameInfo,
        src: &Ident,
        dst: Option<&Ident>,
    ) -> (Verdict, Option<usize>) {
        let mut candidates = std::mem::take(&mut self.scratch);
        candidates.clear();
        candidates.extend(self.general.iter().copied());
        let (l4, dst_v4) = match f.l3 {
            L3::V4 { l4, dst, .. } => (Some(l4), Some(u32::from(dst))),
            L3::V6 { l4, .. } => (Some(l4), None),
            _ => (None, None),
        };
        if let Some(list) = l4
            .and_then(|l4| l4.ports.map(|(_, dp)| (l4.protocol, dp)))
            .and_then(|key| self.by_port.get(&key))
        {
            candidates.extend(list.iter().copied());
        }
        if let Some(d) = dst_v4 {
            for (mask, table) in &self.by_dst {
                if let Some(list) = table.get(&(d & mask)) {
                    candidates.extend(list.iter().copied());
                }
            }
        }
        candidates.sort_unstable();
        let mut verdict = (Verdict::NoMatch, None);
        for &i in candidates.iter().filter(|i| range.contains(i)) {
            let r = &self.rules[i];
            if rule_matches(r, f, src, dst, &self.lists) {
                self.matches[i] += 1;
                let v = if r.discard {
                    Verdict::Discard
                } else {
                    Verdict::Pass
                };
                verdict = (v, Some(i));
                break;
            }
        }
        self.scratch = candidates;
        verdict
    }

    /// The check as a frame comes in from `src`.
    pub fn check_in(&mut self, f: &FrameInfo, src: &Ident) -> Verdict {
        let (verdict, at) = self.first_match(0..self.per_destination_from, f, src, None);
        self.redirect = at.filter(|i| !self.rules[*i].redirect_url.trim().is_empty());
        self.impairment = at
            .filter(|_| verdict == Verdict::Pass)
            .map(|i| {
                let r = &self.rules[i];
                Impairment {
                    delay_ms: r.delay.min(10_000),
                    jitter_pct: r.jitter.min(100),
                    loss_pct: r.loss.min(100),
                }
            })
            .filter(|i| *i != Impairment::default());
        verdict
    }

    /// The URL of the rule that matched the last frame at [`AccessList::check_in`], if it has
    /// one: SoftEther answers that rule's web requests with a redirect to it.
    pub fn redirect_url(&self) -> Option<&str> {
        self.redirect.map(|i| self.rules[i].redirect_url.trim())
    }

    /// The delay, jitter and loss of the rule that passed the last frame at
    /// [`AccessList::check_in`], if it has any (SoftEther simulates them there only).
    pub fn impairment(&self) -> Option<Impairment> {
        self.impairment
    }

    /// The check for one receiving session, for a frame [`AccessList::check_in`] left
    /// undecided.
    pub fn check_to(&mut self, f: &FrameInfo, src: &Ident, dst: &Ident) -> Verdict {
        self.first_match(
            self.per_destination_from..self.rules.len(),
            f,
            src,
            Some(dst),
        )
        .0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The slow reference: every rule in order, SoftEther's split included.
    fn reference(rules: &[AccessRule], f: &FrameInfo, src: &Ident, dst: &Ident) -> bool {
        let split = rules
            .iter()
            .position(|r| !r.dst_user.is_empty())
            .unwrap_or(rules.len());
        for (i, r) in rules.iter().enumerate() {
            let d = (i >= split).then_some(dst);
            if rule_matches(r, f, src, d, &UserLists::default()) {
                return !r.discard;
            }
        }
        true
    }

    fn compiled(list: &mut AccessList, f: &FrameInfo, src: &Ident, dst: &Ident) -> bool {
        match list.check_in(f, src) {
            Verdict::Pass => true,
            Verdict::Discard => false,
            Verdict::NoMatch => list.check_to(f, src, dst) != Verdict::Discard,
        }
    }

    fn rule() -> impl Strategy<Value = AccessRule> {
        (
            (
                any::<bool>(),
                1u32..4,
                any::<bool>(),
                prop_oneof![Just(0u32), Just(6), Just(17), Just(1)],
            ),
            (
                prop_oneof![
                    Just((0u16, 0u16)),
                    Just((80, 80)),
                    Just((80, 0)),
                    Just((1000, 2000))
                ],
                prop_oneof![Just((0u16, 0u16)), Just((5000, 5000))],
            ),
            (
                prop_oneof![Just(0u8), Just(8), Just(24)],
                prop_oneof![Just(0u8), Just(16), Just(32)],
            ),
            (
                prop_oneof![Just(""), Just("alice"), Just("staff")],
                prop_oneof![Just(""), Just("bob")],
            ),
            (proptest::option::of(any::<bool>()), any::<bool>()),
        )
            .prop_map(
                |(
                    (active, priority, discard, protocol),
                    (dst_ports, src_ports),
                    (sp, dp),
                    (su, du),
                    (tcp, mac),
                )| {
                    let mask = |bits: u8| {
                        Ipv4Addr::from(if bits == 0 {
                            0
                        } else {
                            u32::MAX << (32 - bits)
                        })
                    };
                    AccessRule {
                        active,
                        priority,
                        discard,
                        protocol,
                        dst_ports,
                        src_ports,
                        src_ip: Ipv4Addr::new(10, 1, 2, 3),
                        src_mask: mask(sp),
                        dst_ip: Ipv4Addr::new(192, 168, 30, 1),
                        dst_mask: mask(dp),
                        src_user: su.into(),
                        dst_user: du.into(),
                        tcp_established: tcp,
                        src_mac: mac.then_some(([2, 0, 0, 0, 0, 1], [0xff, 0, 0, 0, 0, 0])),
                        ..AccessRule::default()
                    }
                },
            )
    }

    fn frame() -> impl Strategy<Value = FrameInfo> {
        (
            prop_oneof![Just(0u8), Just(1), Just(2), Just(3)],
            prop_oneof![Just(6u8), Just(17), Just(1)],
            prop_oneof![Just(80u16), Just(1500), Just(5000), Just(9)],
            prop_oneof![Just(80u16), Just(5000)],
            any::<bool>(),
            prop_oneof![
                Just([10, 1, 2, 3]),
                Just([10, 9, 9, 9]),
                Just([172, 16, 0, 1])
            ],
            prop_oneof![Just([192, 168, 30, 1]), Just([192, 168, 30, 77])],
            any::<bool>(),
        )
            .prop_map(|(kind, protocol, dp, sp, syn, s, d, mac)| {
                let l4 = L4 {
                    protocol,
                    ports: matches!(protocol, 6 | 17).then_some((sp, dp)),
                    established: (protocol == 6).then_some(!syn),
                };
                FrameInfo {
                    src_mac: if mac {
                        [2, 9, 9, 9, 9, 9]
                    } else {
                        [4, 0, 0, 0, 0, 1]
                    },
                    dst_mac: [0xff; 6],
                    l3: match kind {
                        0 => L3::Arp,
                        1 => L3::Other,
                        2 => L3::V6 {
                            src: Ipv6Addr::LOCALHOST,
                            dst: Ipv6Addr::LOCALHOST,
                            l4,
                        },
                        _ => L3::V4 {
                            src: Ipv4Addr::from(s),
                            dst: Ipv4Addr::from(d),
                            l4,
                        },
                    },
                }
            })
    }

    proptest! {
        #[test]
        fn the_indexed_list_decides_as_checking_every_rule_in_order_does(
            mut rules in proptest::collection::vec(rule(), 0..40),
            frames in proptest::collection::vec(frame(), 1..20),
            src_user in prop_oneof![Just("alice"), Just("carol")],
            src_group in prop_oneof![Just(""), Just("staff")],
            dst_user in prop_oneof![Just("bob"), Just("dave")],
        ) {
            etherhub_config::access::sort(&mut rules);
            let mut list = AccessList::new(&rules);
            let (src, dst) = (Ident::new(src_user, src_group), Ident::new(dst_user, ""));
            for f in &frames {
                prop_assert_eq!(compiled(&mut list, f, &src, &dst), reference(&rules, f, &src, &dst));
            }
        }
    }

    #[test]
    fn a_discard_rule_for_one_port_leaves_the_others_and_arp_alone() {
        let rules = vec![AccessRule {
            discard: true,
            protocol: 6,
            dst_ports: (5202, 5202),
            ..AccessRule::default()
        }];
        let mut list = AccessList::new(&rules);
        let tcp = |dp| FrameInfo {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            l3: L3::V4 {
                src: Ipv4Addr::new(192, 168, 30, 10),
                dst: Ipv4Addr::new(198, 19, 200, 2),
                l4: L4 {
                    protocol: 6,
                    ports: Some((40000, dp)),
                    established: Some(false),
                },
            },
        };
        let me = Ident::new("alice@example.com", "");
        assert_eq!(list.check_in(&tcp(5202), &me), Verdict::Discard);
        assert_eq!(list.check_in(&tcp(5201), &me), Verdict::NoMatch);
        let arp = FrameInfo {
            l3: L3::Arp,
            ..tcp(0)
        };
        assert_eq!(list.check_in(&arp, &me), Verdict::NoMatch);
        assert_eq!(list.matches(), &[1]);
        assert_eq!(me.user, "ALICE");
    }

    #[test]
    fn include_and_exclude_names_match_the_users_their_files_list() {
        let frame = FrameInfo {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            l3: L3::Other,
        };
        let rules = vec![
            AccessRule {
                discard: true,
                src_user: "exclude: staff.txt".into(),
                ..AccessRule::default()
            },
            AccessRule {
                priority: 2,
                src_user: "INCLUDE:/etc/vip".into(),
                ..AccessRule::default()
            },
        ];
        let mut list = AccessList::new(&rules);
        let mut lists = UserLists::default();
        lists.insert("staff.txt", ["alice".to_string(), "Bob@corp".to_string()]);
        lists.insert("/etc/vip", ["carol".to_string()]);
        list.set_user_lists(lists);
        let who = |u: &str| Ident::new(u, "");
        // alice and bob are staff: past the exclude rule; carol is not: discarded
        assert_eq!(list.check_in(&frame, &who("alice")), Verdict::NoMatch);
        assert_eq!(list.check_in(&frame, &who("BOB")), Verdict::NoMatch);
        assert_eq!(list.check_in(&frame, &who("carol")), Verdict::Discard);
        // the hub's own host is never named by a list
        let host = Ident {
            host: true,
            ..who("carol")
        };
        assert_eq!(list.check_in(&frame, &host), Verdict::NoMatch);
        // the include rule: alice (past the first) is not a VIP
        let mut vip = AccessList::new(&rules[1..]);
        let mut lists = UserLists::default();
        lists.insert("/etc/vip", ["carol".to_string()]);
        vip.set_user_lists(lists);
        assert_eq!(vip.check_in(&frame, &who("carol")), Verdict::Pass);
        assert_eq!(vip.check_in(&frame, &who("alice")), Verdict::NoMatch);
        // a file never read: an include names nobody, an exclude every client
        let mut unread = AccessList::new(&rules[..1]);
        assert_eq!(unread.check_in(&frame, &who("alice")), Verdict::Discard);
        assert_eq!(UserLists::reference("include:"), Some(("", false)));
        assert_eq!(UserLists::reference("alice"), None);
    }
}
