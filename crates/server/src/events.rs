//! The engine's events in the log. Keys are public keys; no secret is ever in an event.

use etherhub_engine::{CloseReason, EngineEvent};

pub fn log(ev: &EngineEvent) {
    match ev {
        EngineEvent::SessionOpened {
            hub,
            session,
            user,
            client,
            label,
        } => tracing::info!(hub, session, user, %client, key = label, "session started"),
        EngineEvent::SessionClosed {
            hub,
            session,
            reason,
        } => match reason {
            CloseReason::Ended => tracing::info!(hub, session, "session ended"),
            CloseReason::Admin(why) => {
                tracing::info!(hub, session, why, "session ended by an admin change")
            }
            CloseReason::Refused(why) => tracing::info!(hub, session, why, "session refused"),
            CloseReason::Fault => {
                tracing::error!(hub, session, "session ended by a contained fault")
            }
        },
        EngineEvent::Refused {
            hub,
            user,
            label,
            reason,
        } => tracing::warn!(hub, user, key = label, reason, "tunnel refused"),
        EngineEvent::AddressLearned {
            hub,
            session,
            address,
            key,
        } => tracing::info!(
            hub,
            session,
            %address,
            key = etherhub_wireguard::key_to_base64(key),
            "WireGuard key took its client's address (saved with the key)"
        ),
        EngineEvent::SourceRefused {
            hub,
            session,
            label,
            sent_from,
            owns,
            dropped,
        } => match owns {
            Some(owns) => tracing::warn!(
                hub,
                session,
                key = label,
                %sent_from,
                %owns,
                dropped,
                "packets dropped: sent from an address other than the one the key owns"
            ),
            None => tracing::warn!(
                hub,
                session,
                key = label,
                %sent_from,
                dropped,
                "packets dropped: the source address is not a free address of the hub's network \
                 (another key owns it, or it is the gateway, SecureNAT's or outside the network)"
            ),
        },
        EngineEvent::LoginFailed { client, hub, user } => tracing::warn!(
            %client,
            hub,
            user,
            "security: VPN login failed (counted for the address's lockout)"
        ),
        EngineEvent::PeerRefused {
            client,
            protocol,
            reason,
        } => tracing::warn!(%client, protocol, reason, "security: VPN peer refused"),
        EngineEvent::Fault(f) => tracing::error!(
            input = f.input,
            hub = f.hub.as_deref().unwrap_or("-"),
            session = f.session.as_deref().unwrap_or("-"),
            message = f.message,
            "contained fault on the packet path: that session was reset, the rest goes on"
        ),
    }
}
