//! Faults on the packet path: a panic while the engine handles one input is caught, and only
//! the part it happened in is reset (the tunnel it was working for, or the hub's SecureNAT
//! host); everything else goes on. The runtime's panic hook asks [`in_containment`] to tell such
//! a panic from one anywhere else, after which the process must not go on.

use std::cell::Cell;
use std::time::Instant;

use crate::seam::TunnelId;

thread_local! {
    static CONTAINED: Cell<u32> = const { Cell::new(0) };
}

/// Whether the current thread is inside an engine call whose panics the engine contains.
pub fn in_containment() -> bool {
    CONTAINED.with(|c| c.get() > 0)
}

/// Marks the current thread as inside a contained call while it lives.
pub(crate) struct Containment(());

impl Containment {
    pub fn enter() -> Containment {
        CONTAINED.with(|c| c.set(c.get() + 1));
        Containment(())
    }
}

impl Drop for Containment {
    fn drop(&mut self) {
        CONTAINED.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

/// What the engine was working in when a panic came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Component {
    /// A protocol core, for this tunnel.
    Tunnel(TunnelId),
    /// A hub's switch or SecureNAT host (the hub's id).
    Hub(u32),
}

/// A contained fault, as the admin sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub at: Instant,
    /// Which input was being handled (`datagram`, `timeout`, ...).
    pub input: &'static str,
    /// The hub involved, if any.
    pub hub: Option<String>,
    /// The session that was reset (`SID-SECURENAT-1`, a tunnel's session), if any.
    pub session: Option<String>,
    /// The panic's message.
    pub message: String,
}

/// The text of a panic payload.
pub(crate) fn message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}
