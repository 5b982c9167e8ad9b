//! The admin method table: any JSON-RPC method name and params, as server admin and as a hub
//! admin, against the in-memory backend the admin crate's tests use. Input: first byte picks
//! the scope and (when the JSON names none) the method, the rest is the params JSON.
#![no_main]

#[path = "../../crates/admin/tests/common/mod.rs"]
mod fake;

use etherhub_admin::{dispatch, AdminScope, METHODS};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(params) = serde_json::from_slice::<Value>(rest) else {
        return;
    };
    let backend = fake::Fake::new();
    let scope = if sel & 1 == 0 {
        AdminScope::Server
    } else {
        AdminScope::Hub("DEFAULT".into())
    };
    let method = params
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| METHODS[usize::from(sel >> 1) % METHODS.len()].name.to_string());
    let params = params.get("params").cloned().unwrap_or(params);
    let _ = dispatch(&backend, &scope, &method, &params);
});
