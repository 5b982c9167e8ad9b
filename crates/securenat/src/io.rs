//! The boundary between the sans-IO core and the runtime's sockets.
//!
//! The core asks for I/O with [`IoRequest`]s (taken with `NatHost::poll_io`) and learns what the
//! sockets did through [`IoEvent`]s (given with `NatHost::handle_io`). Payloads travel as owned
//! `Vec<u8>`s that are moved, not copied, between the two sides: one copy out of smoltcp's
//! buffers on the way out, one copy into them on the way in.

use std::net::{Ipv4Addr, SocketAddrV4};

/// One NAT flow (a TCP connection, a UDP or DNS flow, or an ICMP echo flow). Ids are never
/// reused within a host's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub u32);

/// What the core asks the runtime to do.
#[derive(Debug, PartialEq, Eq)]
pub enum IoRequest {
    /// Open a TCP connection to `dst`; answer with `TcpConnected` or `TcpError`.
    TcpConnect { flow: FlowId, dst: SocketAddrV4 },
    /// Write these bytes to the flow's socket, in order; answer with `TcpSent` once written.
    TcpSend { flow: FlowId, data: Vec<u8> },
    /// The core has room for `bytes` more bytes from the flow's socket (it never gets more
    /// `TcpData` than it granted).
    TcpGrant { flow: FlowId, bytes: usize },
    /// The client finished sending: shut down the socket's write side after queued data.
    TcpShutdown { flow: FlowId },
    /// The flow is gone: close the socket (abortively if data is still queued).
    TcpClose { flow: FlowId },
    /// Send one datagram to `dst` from the flow's own socket (opened on first use).
    UdpSend {
        flow: FlowId,
        dst: SocketAddrV4,
        data: Vec<u8>,
    },
    /// The UDP flow timed out: close its socket.
    UdpClose { flow: FlowId },
    /// Send an ICMP echo request to `dst`; answer with `IcmpReply`.
    IcmpEcho {
        flow: FlowId,
        dst: Ipv4Addr,
        ident: u16,
        seq_no: u16,
        data: Vec<u8>,
    },
}

/// What the runtime's sockets did.
#[derive(Debug, PartialEq, Eq)]
pub enum IoEvent {
    TcpConnected {
        flow: FlowId,
    },
    /// `bytes` of earlier `TcpSend` data were written to the socket.
    TcpSent {
        flow: FlowId,
        bytes: usize,
    },
    /// Bytes read from the socket (never more than granted).
    TcpData {
        flow: FlowId,
        data: Vec<u8>,
    },
    /// The far end closed its side.
    TcpEof {
        flow: FlowId,
    },
    /// Connecting failed or the connection broke.
    TcpError {
        flow: FlowId,
    },
    /// A datagram the flow's socket received.
    UdpData {
        flow: FlowId,
        data: Vec<u8>,
    },
    /// An echo reply for the flow.
    IcmpReply {
        flow: FlowId,
        seq_no: u16,
        data: Vec<u8>,
    },
}
