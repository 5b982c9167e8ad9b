//! SoftEther error codes and the two error types of the admin API.
//!
//! `AdminError` is what a [`crate::Backend`] returns: a SoftEther error code (the numbers in
//! SoftEther's `Cedar.h`, which vpncmd and every JSON-RPC client already understand) plus a
//! human message. `RpcError` is what goes on the wire in a JSON-RPC `error` object.

use std::fmt;

/// SoftEther error codes (values from `src/Cedar/Cedar.h`). Only the ones Etherhub produces or
/// that clients commonly test for are listed; any other `u32` is still carried through.
pub mod code {
    /// Success.
    pub const ERR_NO_ERROR: u32 = 0;
    /// Connection to the server failed (client side).
    pub const ERR_CONNECT_FAILED: u32 = 1;
    /// The connection was interrupted.
    pub const ERR_DISCONNECTED: u32 = 3;
    /// Protocol error.
    pub const ERR_PROTOCOL_ERROR: u32 = 4;
    /// The Virtual Hub does not exist.
    pub const ERR_HUB_NOT_FOUND: u32 = 8;
    /// User authentication failed.
    pub const ERR_AUTH_FAILED: u32 = 9;
    /// Access denied.
    pub const ERR_ACCESS_DENIED: u32 = 12;
    /// Internal error.
    pub const ERR_INTERNAL_ERROR: u32 = 23;
    /// The object was not found (also used for users, sessions and WireGuard keys).
    pub const ERR_OBJECT_NOT_FOUND: u32 = 29;
    /// Unsupported.
    pub const ERR_NOT_SUPPORTED: u32 = 33;
    /// A parameter is invalid.
    pub const ERR_INVALID_PARAMETER: u32 = 38;
    /// A value is invalid.
    pub const ERR_INVALID_VALUE: u32 = 45;
    /// An empty password from another machine.
    pub const ERR_NULL_PASSWORD_LOCAL_ONLY: u32 = 51;
    /// The caller's administrative scope is too narrow (hub admin calling a server method).
    pub const ERR_NOT_ENOUGH_RIGHT: u32 = 52;
    /// The TCP listener was not found.
    pub const ERR_LISTENER_NOT_FOUND: u32 = 53;
    /// A TCP listener on that port already exists.
    pub const ERR_LISTENER_ALREADY_EXISTS: u32 = 54;
    /// A Virtual Hub with that name already exists.
    pub const ERR_HUB_ALREADY_EXISTS: u32 = 57;
    /// Too many Virtual Hubs.
    pub const ERR_TOO_MANY_HUBS: u32 = 58;
    /// Too many sessions of one user (the MultiLogins policy).
    pub const ERR_TOO_MANY_USER_SESSION: u32 = 20;
    /// Too many access rules on the hub.
    pub const ERR_TOO_MANY_ACCESS_LIST: u32 = 62;
    /// The group does not exist.
    pub const ERR_GROUP_NOT_FOUND: u32 = 65;
    /// A user with that name already exists.
    pub const ERR_USER_ALREADY_EXISTS: u32 = 66;
    /// A group with that name already exists.
    pub const ERR_GROUP_ALREADY_EXISTS: u32 = 67;
    /// The user does not log in with a password (a password change).
    pub const ERR_USER_AUTHTYPE_NOT_PASSWORD: u32 = 68;
    /// No such user, or the old password is wrong (a password change).
    pub const ERR_OLD_PASSWORD_WRONG: u32 = 69;
    /// OpenVPN is off (ProtoOptions OpenVPN Enabled).
    pub const ERR_OPENVPN_IS_NOT_ENABLED: u32 = 142;
    /// SecureNAT is not running.
    pub const ERR_SNAT_NOT_RUNNING: u32 = 80;
    /// The name is invalid.
    pub const ERR_INVALID_NAME: u32 = 94;
    /// The object already exists.
    pub const ERR_OBJECT_EXISTS: u32 = 112;
}

/// The English text SoftEther's string table gives for an error code (`ERR_<n>` entries).
pub fn error_text(code: u32) -> &'static str {
    match code {
        0 => "No error.",
        1 => "Connection to the server failed. Check network connection and make sure that address and port number of destination server are correct.",
        3 => "Connection has been disconnected.",
        4 => "Protocol error occurred.",
        8 => "The specified Virtual Hub does not exist on the server.",
        9 => "User authentication failed.",
        12 => "Access has been denied.",
        23 => "An internal error occurred.",
        29 => "Object not found.",
        33 => "Unsupported.",
        38 => "Invalid parameter.",
        45 => "The specified value is invalid.",
        51 => "The user's password used to connect was blank so the connection from remote is prohibited. Blank password can be allowed only to connections from the VPN Server's localhost (127.0.0.1).",
        52 => "Not enough privileges.",
        53 => "Specified listener not found.",
        54 => "The listener of the specified port number already exists.",
        57 => "The Virtual Hub with the specified name already exists on the server.",
        58 => "There are too many registered Virtual Hubs. No more can be created. Delete the old Virtual Hubs.",
        20 => "There are too many sessions by the same user. Other person might be connected to the Virtual Hub as the same user.",
        62 => "There are too many access lists.",
        65 => "The specified group does not exist.",
        66 => "The user with the specified name already exists on the Virtual Hub.",
        67 => "The group with the specified name already exists on the Virtual Hub.",
        68 => "The user's authentication method is not password authentication.",
        69 => "The user does not exist, or the old password is wrong.",
        80 => "The SecureNAT is not operating.",
        142 => "The OpenVPN Server function is not enabled.",
        94 => "The specified name is invalid. Check if the name contains characters that cannot be used.",
        112 => "The specified object already exists.",
        _ => "An unknown error occurred.",
    }
}

/// An error returned by a [`crate::Backend`] operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("error code {code}: {message}")]
pub struct AdminError {
    /// SoftEther error code (see [`code`]).
    pub code: u32,
    /// Message for the administrator; must not contain secrets.
    pub message: String,
}

impl AdminError {
    /// An error with an explicit message.
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// An error whose message is SoftEther's standard text for the code.
    pub fn from_code(code: u32) -> Self {
        Self::new(code, error_text(code))
    }

    /// `ERR_INVALID_PARAMETER` naming the offending field.
    pub fn invalid_param(field: &str, why: &str) -> Self {
        Self::new(
            code::ERR_INVALID_PARAMETER,
            format!("Invalid parameter: {field}: {why}"),
        )
    }
}

/// JSON-RPC error code for a method that does not exist (JSON-RPC 2.0 standard value).
pub const JSONRPC_METHOD_NOT_FOUND: i64 = -32601;

/// The `error` member of a JSON-RPC response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// SoftEther error code, or a negative JSON-RPC code (`-32601` for an unknown method).
    pub code: i64,
    /// `"Error code N: text"`, the shape SoftEther's JSON-RPC server produces.
    pub message: String,
}

impl RpcError {
    /// The JSON-RPC error for an unknown method.
    pub fn method_not_found(method: &str) -> Self {
        Self {
            code: JSONRPC_METHOD_NOT_FOUND,
            message: format!("Method not found: {method}"),
        }
    }

    /// The error object as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "code": self.code, "message": self.message })
    }
}

impl From<AdminError> for RpcError {
    fn from(e: AdminError) -> Self {
        Self {
            code: i64::from(e.code),
            message: format!("Error code {}: {}", e.code, e.message),
        }
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}
