//! vpncmd's command-line syntax: the global switches and `/NAME:value` command parameters.

use std::collections::HashMap;

/// The global part of `etherhub cmd [host[:port]] /SERVER [/HUB:x] [/ADMINHUB:x] [/PASSWORD:x]
/// [/CSV] [/CMD command args...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    pub host: String,
    pub port: u16,
    /// Hub to log in to as hub administrator (`/HUB` or `/ADMINHUB`).
    pub hub: Option<String>,
    pub password: Option<String>,
    pub csv: bool,
    /// The command to run in batch mode (`/CMD`), tokens as given.
    pub cmd: Option<Vec<String>>,
}

/// Default admin port (the server listens on 443, 992, 1194 and 5555).
pub const DEFAULT_PORT: u16 = 443;

fn split_switch(arg: &str) -> Option<(String, Option<String>)> {
    let rest = arg.strip_prefix('/').or_else(|| arg.strip_prefix('-'))?;
    match rest.split_once(':') {
        Some((k, v)) => Some((k.to_ascii_uppercase(), Some(v.to_string()))),
        None => Some((rest.to_ascii_uppercase(), None)),
    }
}

/// Parse `host`, `host:port`, `[v6]:port`.
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("Invalid host name \"{s}\"."))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p
                .parse()
                .map_err(|_| format!("Invalid port number in \"{s}\"."))?,
            None if after.is_empty() => DEFAULT_PORT,
            None => return Err(format!("Invalid host name \"{s}\".")),
        };
        return Ok((h.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            let port: u16 = p
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("Invalid port number in \"{s}\"."))?;
            if h.is_empty() {
                return Err(format!("Invalid host name \"{s}\"."));
            }
            Ok((h.to_string(), port))
        }
        _ if s.is_empty() => Err("Empty host name.".into()),
        _ => Ok((s.to_string(), DEFAULT_PORT)),
    }
}

/// Parse the global arguments (everything after `cmd`).
pub fn parse_global(args: &[String]) -> Result<Global, String> {
    let mut g = Global {
        host: "localhost".into(),
        port: DEFAULT_PORT,
        hub: None,
        password: None,
        csv: false,
        cmd: None,
    };
    let mut server = false;
    let mut host_set = false;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        match split_switch(a) {
            None => {
                if host_set {
                    return Err(format!("Unexpected argument \"{a}\"."));
                }
                (g.host, g.port) = parse_host_port(a)?;
                host_set = true;
            }
            Some((k, v)) => match k.as_str() {
                "SERVER" => {
                    server = true;
                    if let Some(v) = v.filter(|v| !v.is_empty()) {
                        (g.host, g.port) = parse_host_port(&v)?;
                        host_set = true;
                    } else if !host_set && args.get(i + 1).is_some_and(|n| !n.starts_with('/')) {
                        i += 1;
                        (g.host, g.port) = parse_host_port(&args[i])?;
                        host_set = true;
                    }
                }
                "HUB" | "ADMINHUB" => {
                    g.hub = Some(v.ok_or_else(|| format!("/{k} needs a value: /{k}:name"))?)
                }
                "PASSWORD" | "PASS" => g.password = Some(v.unwrap_or_default()),
                "CSV" => g.csv = true,
                "CMD" => {
                    let rest: Vec<String> = args[i + 1..].to_vec();
                    if rest.is_empty() {
                        return Err("/CMD must be followed by a command.".into());
                    }
                    g.cmd = Some(rest);
                    break;
                }
                "CLIENT" | "TOOLS" => {
                    return Err(format!(
                        "/{k} is not supported; Etherhub only manages a VPN server (/SERVER)."
                    ))
                }
                _ => return Err(format!("Unknown option \"{a}\".")),
            },
        }
        i += 1;
    }
    let _ = server; // /SERVER is the only mode; accepted with or without it.
    Ok(g)
}

/// Split an interactive line into tokens; double quotes group, `""` inside quotes is a quote.
pub fn tokenize(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_q = false;
    let mut has = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if in_q && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => {
                in_q = !in_q;
                has = true;
            }
            c if c.is_whitespace() && !in_q => {
                if has || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => cur.push(c),
        }
    }
    if has || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Parsed command parameters: upper-case name -> value; the bare default parameter is `""`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CmdParams(pub HashMap<String, String>);

impl CmdParams {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(&name.to_ascii_uppercase()).map(String::as_str)
    }
}

/// Parse a command's arguments against its parameter names (`""` = the default parameter).
pub fn parse_params(cmd: &str, args: &[String], names: &[&str]) -> Result<CmdParams, String> {
    let mut p = CmdParams::default();
    for a in args {
        let switch = split_switch(a).filter(|_| a.starts_with('/'));
        let known = |k: &str| {
            names
                .iter()
                .any(|n| !n.is_empty() && n.eq_ignore_ascii_case(k))
        };
        // A base64 WireGuard key may itself begin with '/': a token with no ':' that names no
        // parameter of the command is the command's unnamed value, when it takes one.
        let positional = matches!(&switch, Some((k, None)) if !known(k))
            && names.contains(&"")
            && !p.0.contains_key("");
        if let Some((k, v)) = switch.filter(|_| !positional) {
            if !names
                .iter()
                .any(|n| !n.is_empty() && n.eq_ignore_ascii_case(&k))
            {
                return Err(format!("The parameter \"/{k}\" is not valid for the {cmd} command. Type \"{cmd} ?\" to see its parameters."));
            }
            let v = v.ok_or_else(|| format!("The parameter \"/{k}\" needs a value: /{k}:value"))?;
            p.0.insert(k, v);
        } else if names.contains(&"") && !p.0.contains_key("") {
            p.0.insert(String::new(), a.clone());
        } else {
            return Err(format!("Unexpected argument \"{a}\" for the {cmd} command. Type \"{cmd} ?\" to see its parameters."));
        }
    }
    Ok(p)
}
