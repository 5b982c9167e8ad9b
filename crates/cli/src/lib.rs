//! `etherhub cmd`: vpncmd's command syntax and output, spoken over Etherhub's JSON-RPC admin
//! API (HTTPS `POST /api/`). Batch mode (`/CMD ...`) and an interactive `VPN Server>` prompt.
//!
//! What this crate must not do: panic on any input, print or log passwords, talk to anything but
//! the admin API, or depend on server internals (it only shares wire helpers with
//! `etherhub-admin`).

#![forbid(unsafe_code)]

pub mod args;
pub mod client;
pub mod commands;
pub mod qr;
pub mod table;

use std::io::{BufRead, IsTerminal, Write};

use args::{parse_global, tokenize};
use commands::{execute, help_text, Api, CmdError, Ctx};

fn prompt_password() -> Option<String> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    // No echo suppression without a terminal crate; say so rather than pretend.
    print!("Password (will be echoed): ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok()?;
    Some(line.trim_end_matches(['\r', '\n']).to_string())
}

fn prompt_str(hub: &Option<String>) -> String {
    match hub {
        Some(h) => format!("VPN Server/{h}>"),
        None => "VPN Server>".to_string(),
    }
}

/// Run one command line and print its output; returns the error code (0 = success).
fn run_line(ctx: &mut Ctx<'_>, tokens: &[String]) -> i32 {
    let code = match tokens.first().map(|s| s.to_ascii_lowercase()) {
        None => 0,
        Some(ref c) if c == "help" || c == "?" => {
            ctx.out.push_str(&help_text());
            0
        }
        Some(ref c) if c == "about" => {
            ctx.out.push_str(&format!(
                "Etherhub {} - vpncmd-compatible command line\n",
                env!("CARGO_PKG_VERSION")
            ));
            0
        }
        Some(_) => match execute(ctx, tokens) {
            Ok(()) => 0,
            Err(CmdError { code, message }) => {
                ctx.out.push_str(&message);
                ctx.out.push('\n');
                code.max(1)
            }
        },
    };
    print!("{}", std::mem::take(&mut ctx.out));
    let _ = std::io::stdout().flush();
    code
}

/// Session driver shared by the real client and tests.
pub fn run_with(
    api: &dyn Api,
    host: &str,
    port: u16,
    hub: Option<String>,
    csv: bool,
    cmd: Option<Vec<String>>,
) -> i32 {
    // Check the login first, as vpncmd does on connect.
    if let Err(e) = api.call("GetServerInfo", serde_json::json!({})) {
        let e = commands::call_error(e);
        eprintln!("{}", e.message);
        return e.code.max(1);
    }
    let mut ctx = Ctx {
        api,
        hub: hub.clone(),
        csv,
        interactive: cmd.is_none(),
        out: String::new(),
    };
    if !csv {
        println!("\nConnection has been established with VPN Server \"{host}\" (port {port}).\n");
        match &hub {
            Some(h) => println!(
                "You have administrator privileges for Virtual Hub '{h}' on the VPN Server.\n"
            ),
            None => println!("You have administrator privileges for the entire VPN Server.\n"),
        }
    }
    if let Some(cmd) = cmd {
        if !csv {
            println!("{}{}", prompt_str(&ctx.hub), cmd.join(" "));
        }
        let code = run_line(&mut ctx, &cmd);
        if !csv {
            println!();
        }
        return code;
    }
    let stdin = std::io::stdin();
    let mut last = 0;
    loop {
        print!("{}", prompt_str(&ctx.hub));
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => {
                println!();
                return last;
            }
            Ok(_) => {}
        }
        let tokens = tokenize(line.trim());
        if tokens
            .first()
            .is_some_and(|t| t.eq_ignore_ascii_case("exit") || t.eq_ignore_ascii_case("quit"))
        {
            return last;
        }
        last = run_line(&mut ctx, &tokens);
        if !tokens.is_empty() && !csv {
            println!();
        }
    }
}

/// Entry point of `etherhub cmd ARGS...`; returns the process exit code.
pub fn run(args: Vec<String>) -> i32 {
    let g = match parse_global(&args) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}\nUsage: etherhub cmd [host[:port]] /SERVER [/HUB:name] [/PASSWORD:pw] [/CSV] [/CMD command args...]");
            return 2;
        }
    };
    let password = match g.password.clone() {
        Some(p) => p,
        None => {
            // as vpncmd does: try the empty password first, ask only when it is refused
            let hub = g.hub.as_deref().unwrap_or("");
            let empty_ok = client::Client::new(&g.host, g.port, hub, "")
                .ok()
                .is_some_and(|c| c.call("GetServerInfo", serde_json::json!({})).is_ok());
            if empty_ok {
                String::new()
            } else {
                prompt_password().unwrap_or_default()
            }
        }
    };
    let client =
        match client::Client::new(&g.host, g.port, g.hub.as_deref().unwrap_or(""), &password) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{}", commands::call_error(e).message);
                return 1;
            }
        };
    run_with(
        &client,
        &g.host,
        g.port,
        g.hub.clone(),
        g.csv,
        g.cmd.clone(),
    )
}
