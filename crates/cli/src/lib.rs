//! `etherhub cmd`: vpncmd's command syntax, prompts and output, spoken over Etherhub's
//! JSON-RPC admin API (HTTPS `POST /api/`) with the typed messages of etherhub-admin. Batch
//! mode (`/CMD ...`) and an interactive `VPN Server>` prompt, both on one TLS connection.
//!
//! What this crate must not do: panic on any input, print or log passwords, talk to anything but
//! the admin API, or depend on server internals (it shares only the admin messages).

#![forbid(unsafe_code)]

pub mod args;
pub mod client;
pub mod commands;
pub mod console;
pub mod qr;
pub mod strtable;
pub mod table;

use args::{parse_global, tokenize};
use commands::{execute, help_text, Api, CmdError, Ctx};
use console::{Console, StdConsole};

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
    let out = std::mem::take(&mut ctx.out);
    ctx.console.write(&out);
    code
}

/// Session driver shared by the real client and tests: `api` is already logged in.
pub fn run_with(
    api: &dyn Api,
    console: &mut dyn Console,
    host: &str,
    port: u16,
    hub: Option<String>,
    csv: bool,
    cmd: Option<Vec<String>>,
) -> i32 {
    if !csv {
        console.write(&format!(
            "\nConnection has been established with VPN Server \"{host}\" (port {port}).\n\n"
        ));
        match &hub {
            Some(h) => console.write(&format!(
                "You have administrator privileges for Virtual Hub '{h}' on the VPN Server.\n\n"
            )),
            None => {
                console.write("You have administrator privileges for the entire VPN Server.\n\n")
            }
        }
    }
    let interactive = cmd.is_none();
    let mut ctx = Ctx {
        api,
        console,
        hub,
        csv,
        out: String::new(),
    };
    if let Some(cmd) = cmd {
        if !csv {
            let line = format!("{}{}\n", prompt_str(&ctx.hub), cmd.join(" "));
            ctx.console.write(&line);
        }
        let code = run_line(&mut ctx, &cmd);
        if !csv {
            ctx.console.write("\n");
        }
        return code;
    }
    debug_assert!(interactive);
    let mut last = 0;
    loop {
        let prompt = prompt_str(&ctx.hub);
        let Some(line) = ctx.console.read_line(&prompt) else {
            ctx.console.write("\n");
            return last;
        };
        let tokens = tokenize(line.trim());
        if tokens
            .first()
            .is_some_and(|t| t.eq_ignore_ascii_case("exit") || t.eq_ignore_ascii_case("quit"))
        {
            return last;
        }
        last = run_line(&mut ctx, &tokens);
        if !tokens.is_empty() && !csv {
            ctx.console.write("\n");
        }
    }
}

/// Logs in as vpncmd does: with the password given, else with an empty one first and, if the
/// server wants one, with the password asked for (without echo). One connection throughout;
/// the empty try costs no failed login on an Etherhub server. `Err`: the exit code.
fn log_in(
    client: &client::Client,
    console: &mut dyn Console,
    password_given: bool,
) -> Result<(), i32> {
    let first = client.call("GetServerInfo", serde_json::json!({}));
    let e = match first {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    if e != client::CallError::Auth || password_given {
        let e = commands::call_error(e);
        eprintln!("{}", e.message);
        return Err(e.code.max(1));
    }
    let Some(pw) = console.read_password("Password: ") else {
        let e = commands::call_error(e);
        eprintln!("{}", e.message);
        return Err(e.code);
    };
    client.set_password(&pw);
    client
        .call("GetServerInfo", serde_json::json!({}))
        .map(|_| ())
        .map_err(|e| {
            let e = commands::call_error(e);
            eprintln!("{}", e.message);
            e.code.max(1)
        })
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
    let hub = g.hub.as_deref().unwrap_or("");
    let client =
        match client::Client::new(&g.host, g.port, hub, g.password.as_deref().unwrap_or("")) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{}", commands::call_error(e).message);
                return 1;
            }
        };
    let mut console = StdConsole;
    if let Err(code) = log_in(&client, &mut console, g.password.is_some()) {
        return code;
    }
    run_with(
        &client,
        &mut console,
        &g.host,
        g.port,
        g.hub.clone(),
        g.csv,
        g.cmd.clone(),
    )
}
