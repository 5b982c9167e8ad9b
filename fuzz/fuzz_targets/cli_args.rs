//! vpncmd's argument syntax: global switches, host:port, interactive tokenizing, command
//! parameters. Arguments are the input split at NUL bytes.
#![no_main]

use etherhub_cli::args;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let argv: Vec<String> = text.split('\0').map(str::to_string).collect();
    let _ = args::parse_global(&argv);
    let _ = args::parse_host_port(&text);
    let tokens = args::tokenize(&text);
    let _ = args::parse_params("UserCreate", &tokens, &["", "GROUP", "REALNAME", "NOTE"]);
    let _ = args::parse_params("WgkAdd", &argv, &["", "HUB", "USER"]);
});
