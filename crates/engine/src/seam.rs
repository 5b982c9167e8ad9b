//! The seam every protocol core plugs into.
//!
//! A core turns its protocol's bytes into three things the engine understands: a tunnel opened
//! for a user on a hub ([`Opened`]), a packet or frame from a tunnel ([`Io::packet`]), and a
//! tunnel closed ([`Io::closed`]). Whether a user may log in is a question it asks the engine
//! ([`Io::authenticate`], or [`Io::wireguard_key`] for WireGuard's static keys), which answers
//! from the accounts: a core never reads the configuration. What a core sends goes out through
//! [`Io::transmit`] (datagrams) or [`Io::write_stream`] (bytes of a TCP connection the runtime
//! holds); what the hub has for a tunnel comes back through [`Protocol::send`].
//!
//! The engine owns the tunnel's hub session: the medium decides how its traffic enters the hub
//! ([`Medium::Ip`] through the hub's L3 adapter, with the tunnel's inner source address checked;
//! [`Medium::Ethernet`] straight onto the switch).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use etherhub_config::Policy;
use etherhub_wireguard::Key;

/// A protocol's slot among the engine's registered protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProtocolId(pub u8);

/// One tunnel of one protocol; `index` is the core's own number for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TunnelId {
    pub protocol: ProtocolId,
    pub index: u32,
}

/// A TCP connection the runtime holds for a stream protocol (after TLS, if any).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// What a tunnel carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Medium {
    /// Bare IP packets (WireGuard, OpenVPN tun, PPP): the hub's L3 adapter gives the session a
    /// MAC address and answers ARP for it.
    Ip,
    /// Ethernet frames (SoftEther's own protocol, OpenVPN tap, EtherIP).
    Ethernet,
}

/// Which inner IPv4 source addresses an IP tunnel may send from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressRule {
    /// Only this one (WireGuard's AllowedIPs on receive).
    Fixed(Ipv4Addr),
    /// The source of the first IPv4 packet, if it is a free host address of the hub's network;
    /// only that one from then on (SoftEther's WireGuard behaviour, kept for keys registered
    /// without an address).
    LearnFirst,
    /// Any (Ethernet tunnels, whose addresses the hub learns).
    Any,
}

/// How a tunnel's user proved who they are; decides which admin changes end the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A WireGuard static key (deleting the key ends the session).
    WireGuardKey(Key),
    /// A password (changing it ends the session).
    Password,
    /// No credential (anonymous users).
    Anonymous,
}

/// What SessionGet shows about a tunnel's protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionDetails {
    /// The tag in the session name: `SID-<USER>-[<tag>]-<n>` for IP tunnels.
    pub protocol: String,
    /// SessionGet's "Physical Underlay Protocol", e.g. `Legacy VPN - WIREGUARD`.
    pub underlay: String,
    /// The cipher, e.g. `ChaCha20-Poly1305`; empty when the tunnel is not encrypted.
    pub cipher: String,
    /// SessionGet's "Client Product Name (Reported)".
    pub client_product: String,
    /// What the client reports of itself (SoftEther's NodeInfo), for SessionGet.
    pub client: ClientReport,
}

/// What a client reports of itself (SessionGet's "(Reported)" rows).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientReport {
    pub version: u32,
    pub build: u32,
    pub os_name: String,
    pub os_version: String,
    pub os_product_id: String,
    pub hostname: String,
    /// The client's own view of its address and port.
    pub local: Option<SocketAddr>,
}

/// A stream tunnel's state now (SessionList's "TCP Connections", SessionGet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Live {
    pub connections: u32,
    pub max_connections: u32,
    pub compressed: bool,
    pub half_duplex: bool,
}

/// A tunnel is up and wants a session on a hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    pub tunnel: TunnelId,
    pub hub: String,
    pub user: String,
    pub medium: Medium,
    /// The client's address as the server sees it.
    pub client: SocketAddr,
    pub address: AddressRule,
    pub credential: Credential,
    /// How logs name the tunnel when they cannot use its session (a key, a user name).
    pub label: String,
    pub details: SessionDetails,
    /// The client asked for monitoring mode (SoftEther's `require_monitor_mode`), and its
    /// policy's MonitorPort allows it: the session receives every frame and sends none.
    pub monitor: bool,
}

/// The address an IP tunnel's client gets from the server, and its network (OpenVPN's
/// `ifconfig` and `route-gateway`, PPP's IPCP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpConfig {
    pub address: Ipv4Addr,
    pub mask: Ipv4Addr,
    /// `0.0.0.0` when the network has none.
    pub gateway: Ipv4Addr,
    pub dns: Vec<Ipv4Addr>,
    pub domain: String,
}

/// Why a tunnel went away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client left or its session expired.
    Ended,
    /// An admin ended it (SessionDisconnect, a deleted key or user, a changed password, a hub
    /// deleted or taken offline).
    Admin(String),
    /// The engine refused it (no such hub, hub offline).
    Refused(String),
    /// A fault inside the engine while handling it.
    Fault,
}

/// A login to check against the accounts.
#[derive(Clone)]
pub enum AuthRequest<'a> {
    /// A plain-text password (OpenVPN's auth-user-pass, PAP, SoftEther's plain password).
    Password {
        hub: &'a str,
        user: &'a str,
        password: &'a str,
    },
    /// SoftEther's challenge response: SHA-0(SHA-0(password || UPPER(user)) || `random`), the
    /// random being what the server sent in its hello.
    Challenge {
        hub: &'a str,
        user: &'a str,
        response: &'a [u8; 20],
        random: &'a [u8; 20],
    },
    /// No credential: the hub must hold `user` as an anonymous user.
    Anonymous { hub: &'a str, user: &'a str },
    /// A proof made with the user's NT hash (MS-CHAPv2): the accounts hand the hash to
    /// `proves`, which checks the client's response with it; the hash goes nowhere else.
    NtHash {
        hub: &'a str,
        user: &'a str,
        proves: &'a dyn Fn(&[u8; 16]) -> bool,
    },
}

impl std::fmt::Debug for AuthRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, hub, user) = match self {
            AuthRequest::Password { hub, user, .. } => ("Password", hub, user),
            AuthRequest::Challenge { hub, user, .. } => ("Challenge", hub, user),
            AuthRequest::Anonymous { hub, user } => ("Anonymous", hub, user),
            AuthRequest::NtHash { hub, user, .. } => ("NtHash", hub, user),
        };
        write!(f, "{kind} {{ hub: {hub:?}, user: {user:?}, .. }}")
    }
}

/// The hub a user name without one logs in to.
pub const DEFAULT_HUB: &str = "DEFAULT";

/// A user name as SoftEther reads it (OpenVPN, PPP): `user@HUB`, `HUB\user`, or `user` (hub
/// DEFAULT); the hub and the user.
pub fn split_user(name: &str) -> (&str, &str) {
    split_user_or(name, DEFAULT_HUB)
}

/// [`split_user`] with another hub for a name that names none (SoftEther's IPsec
/// `L2TP_DefaultHub`, which its PPP protocols follow).
pub fn split_user_or<'a>(name: &'a str, default_hub: &'a str) -> (&'a str, &'a str) {
    if let Some((hub, user)) = name.split_once('\\') {
        return (hub, user);
    }
    if let Some((user, hub)) = name.rsplit_once('@') {
        return (hub, user);
    }
    (default_hub, name)
}

/// Who an accepted login is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The hub's and the user's names as the accounts spell them.
    pub hub: String,
    pub user: String,
    /// The user's security policy (its own, else its group's, else the default).
    pub policy: Policy,
}

/// What the accounts say of a WireGuard client key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyGrant {
    pub grant: Grant,
    /// The key's own preshared key (`None`: the server-wide one).
    pub psk: Option<Key>,
    /// The one inner source address its client may use (`None`: learnt from the first packet).
    pub address: Option<Ipv4Addr>,
}

/// Why a login was refused. Cores report these with SoftEther's error codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    NoSuchHub,
    HubOffline,
    /// Unknown user or wrong password: one answer for both, so that names cannot be probed.
    AccessDenied,
    /// The user's authentication method is not one this request can satisfy.
    WrongMethod,
    /// The password was right, but the user's policy denies access or the user has expired
    /// (SoftEther's ERR_ACCESS_DENIED).
    Denied,
    /// The user has as many sessions as its MultiLogins policy allows
    /// (ERR_TOO_MANY_USER_SESSION).
    TooManySessions,
}

/// Output of the engine after one protocol step: a datagram to send.
#[derive(Debug, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// The local UDP address (listener) it leaves from.
    pub local: SocketAddr,
    pub to: SocketAddr,
    /// One datagram, or several of `segment_size` bytes (the last may be shorter) for one UDP
    /// GSO send.
    pub contents: &'a [u8],
    pub segment_size: Option<usize>,
}

impl Transmit<'_> {
    /// The datagrams it holds (a GSO run counts as its segments).
    pub fn datagrams(&self) -> usize {
        self.segment_size
            .map_or(1, |s| self.contents.len().div_ceil(s.max(1)))
    }
}

/// What the runtime should do with a stream connection.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamOutput {
    Write { conn: ConnId, bytes: Vec<u8> },
    Close { conn: ConnId },
}

/// A protocol core as the engine drives it. Every method gets the engine's [`Io`] for its
/// results; none may block, read the clock or touch a socket.
pub trait Protocol: Send {
    /// The protocol's name in logs.
    fn name(&self) -> &'static str;

    /// UDP ports of the protocol's own (L2TP's 1701, IKE's 500 and 4500): every datagram to
    /// them is this protocol's, whatever its shape. Port 0 stands for IP protocol 50 (ESP),
    /// which the runtime reads from a raw socket and hands over without its IP header, with
    /// port 0 on both addresses.
    fn udp_ports(&self) -> &'static [u16] {
        &[]
    }

    /// Whether a datagram on a shared UDP port is this protocol's, judged by its first bytes
    /// and shape. Must not claim another protocol's datagrams.
    fn claims_datagram(&self, _datagram: &[u8]) -> bool {
        false
    }

    /// One datagram this protocol claimed.
    fn handle_datagram(
        &mut self,
        _now: Instant,
        _local: SocketAddr,
        _from: SocketAddr,
        _datagram: &[u8],
        _io: &mut dyn Io,
    ) {
    }

    /// A TCP connection the runtime decided is this protocol's (by its first bytes or HTTP
    /// request), with the bytes read so far.
    fn open_stream(
        &mut self,
        _now: Instant,
        conn: ConnId,
        _peer: SocketAddr,
        _bytes: &[u8],
        io: &mut dyn Io,
    ) {
        io.close_stream(conn);
    }

    /// More bytes of a stream connection.
    fn handle_stream(&mut self, _now: Instant, _conn: ConnId, _bytes: &[u8], _io: &mut dyn Io) {}

    /// The runtime's side of the connection closed.
    fn stream_closed(&mut self, _now: Instant, _conn: ConnId, _io: &mut dyn Io) {}

    /// A packet ([`Medium::Ip`]) or frame ([`Medium::Ethernet`]) from the hub for `tunnel`,
    /// handed over as the hub delivered it: a protocol may keep it (WireGuard's, for a worker
    /// to seal) rather than copy it.
    fn send(&mut self, now: Instant, tunnel: TunnelId, packet: Vec<u8>, io: &mut dyn Io);

    /// Timers: call at [`Protocol::poll_timeout`] (or later).
    fn handle_timeout(&mut self, _now: Instant, _io: &mut dyn Io) {}

    /// When this core next needs [`Protocol::handle_timeout`].
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// The engine ends a tunnel (admin action, refusal, fault). The core forgets it and reports
    /// nothing more about it; it must not call [`Io::closed`] for it.
    fn close(&mut self, now: Instant, tunnel: TunnelId, io: &mut dyn Io);

    /// What changes during a tunnel's life, for the admin (stream protocols).
    fn live(&self, _tunnel: TunnelId) -> Option<Live> {
        None
    }

    /// One of the protocol's options (SoftEther 5's ProtoOptions), as text (`true`/`false` for
    /// booleans). New sessions follow it; a core may end live tunnels an option no longer
    /// allows (reporting them through [`Io::closed`]).
    fn set_option(&mut self, _now: Instant, _name: &str, _value: &str, _io: &mut dyn Io) {}

    /// The core's own counters (logins, refusals, dropped input), by name.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// Fills a datagram's buffer and says where it goes and how long it is (`None`: nothing to
/// send). See [`Io::transmit`].
pub type WriteDatagram<'a> = dyn FnMut(&mut [u8]) -> Option<(SocketAddr, usize)> + 'a;

/// What a protocol core may ask of the engine while it handles an input.
pub trait Io {
    /// The protocol slot of the core being driven (for building [`TunnelId`]s).
    fn protocol(&self) -> ProtocolId;

    /// Queues a datagram: `write` fills the buffer it is given (at least `max_len` bytes) and
    /// returns the destination and the length written, or `None` to send nothing.
    fn transmit(&mut self, local: SocketAddr, max_len: usize, write: &mut WriteDatagram<'_>);

    /// Bytes for a stream connection.
    fn write_stream(&mut self, conn: ConnId, bytes: &[u8]);

    /// Asks the runtime to close a stream connection.
    fn close_stream(&mut self, conn: ConnId);

    /// A tunnel is up. The engine links it to a new hub session and returns the session's
    /// name, or refuses it (`None`) and calls [`Protocol::close`] right after the current call.
    fn opened(&mut self, opened: Opened) -> Option<String>;

    /// A packet or frame from an open tunnel.
    fn packet(&mut self, tunnel: TunnelId, bytes: &[u8]);

    /// The client's address changed (roaming).
    fn roamed(&mut self, tunnel: TunnelId, client: SocketAddr);

    /// The tunnel is gone on the protocol's side.
    fn closed(&mut self, tunnel: TunnelId, reason: CloseReason);

    /// Checks a login against the accounts.
    fn authenticate(&self, request: AuthRequest<'_>) -> Result<Grant, AuthError>;

    /// An address for an open IP tunnel whose client takes the one the server gives: a lease
    /// from the hub's SecureNAT DHCP server, taken on the client's behalf, held while the
    /// tunnel lives; the tunnel may then send from that address only. `None` when the hub has
    /// no DHCP server or no free address.
    fn lease_address(&mut self, tunnel: TunnelId) -> Option<IpConfig>;

    /// Whether `client`'s address is locked out after failed logins (cores whose logins the
    /// runtime does not see first ask before checking a password).
    fn locked_out(&self, client: IpAddr) -> bool;

    /// A login from `client` failed its password check (the runtime counts these per address,
    /// with the admin logins, and locks an address out).
    fn login_failed(&mut self, client: SocketAddr, hub: &str, user: &str);

    /// A peer was refused before any login (IKE: a pre-shared key that does not match, no
    /// acceptable proposal): the runtime logs the reason.
    fn peer_refused(&mut self, client: SocketAddr, protocol: &'static str, reason: &str);

    /// WireGuard's question during a handshake: may this static key connect, as whom, with
    /// which preshared key and address?
    fn wireguard_key(&self, key: &Key) -> Option<KeyGrant>;

    /// The wall clock, Unix milliseconds, if the runtime has said
    /// ([`crate::Engine::set_unix_time`]).
    fn unix_ms(&self) -> Option<u64>;
}
