//! The vpncmd commands Etherhub supports, each a JSON-RPC call and vpncmd's output for it.

use std::io::{BufRead, IsTerminal, Write};

use etherhub_admin::wire::{ipv4_from_u32, ipv4_to_u32, parse_dt, DateTime};
use serde_json::{json, Value};

use crate::args::{parse_params, CmdParams};
use crate::client::CallError;
use crate::table::{num, Table};

/// Something that can make admin calls (the HTTPS client, or a fake in tests).
pub trait Api {
    fn call(&self, method: &str, params: Value) -> Result<Value, CallError>;
}

impl Api for crate::client::Client {
    fn call(&self, method: &str, params: Value) -> Result<Value, CallError> {
        crate::client::Client::call(self, method, params)
    }
}

/// State of one vpncmd session.
pub struct Ctx<'a> {
    pub api: &'a dyn Api,
    /// Hub selected with `Hub` (or the hub admin's hub).
    pub hub: Option<String>,
    pub csv: bool,
    pub interactive: bool,
    /// Output produced so far (flushed by the caller).
    pub out: String,
}

/// A failed command: the exit code and what to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdError {
    pub code: i32,
    pub message: String,
}

impl CmdError {
    fn usage(message: String) -> Self {
        Self { code: 38, message }
    }
}

/// Map a call failure to vpncmd's error text.
pub fn call_error(e: CallError) -> CmdError {
    match e {
        CallError::Rpc { code, message } => {
            let text = message.split_once(": ").map(|(_, t)| t.to_string()).unwrap_or(message);
            CmdError { code: code as i32, message: format!("Error occurred. (Error code: {code})\n{text}") }
        }
        CallError::Auth => CmdError {
            code: 9,
            message: "Error occurred. (Error code: 9)\nUser authentication failed.\nThe password is incorrect, or the account may not administer this server or hub.".into(),
        },
        CallError::Connect(m) => CmdError {
            code: 1,
            message: format!("Error occurred. (Error code: 1)\nConnection to the server failed. Check network connection and make sure that address and port number of destination server are correct.\n({m})"),
        },
        CallError::Protocol(m) => CmdError { code: 4, message: format!("Error occurred. (Error code: 4)\nA protocol error occurred. ({m})") },
    }
}

type Handler = fn(&mut Ctx<'_>, &CmdParams) -> Result<(), CmdError>;

/// One command: name, vpncmd's title, parameter names (`""` = default parameter), handler.
pub struct Command {
    pub name: &'static str,
    pub title: &'static str,
    pub params: &'static [&'static str],
    pub run: Handler,
}

pub const COMMANDS: &[Command] = &[
    Command { name: "ConfigGet", title: "Get the current configuration of the VPN Server", params: &[""], run: config_get },
    Command { name: "ConfigSet", title: "Write Configuration File to VPN Server", params: &[""], run: config_set },
    Command { name: "DhcpGet", title: "Get Virtual DHCP Server Function Setting of SecureNAT Function", params: &[], run: dhcp_get },
    Command { name: "DhcpSet", title: "Change Virtual DHCP Server Function Setting of SecureNAT Function", params: &["START", "END", "MASK", "EXPIRE", "GW", "DNS", "DNS2", "DOMAIN", "LOG", "PUSHROUTE"], run: dhcp_set },
    Command { name: "DhcpTable", title: "Get Virtual DHCP Server Function Lease Table of SecureNAT Function", params: &[], run: dhcp_table },
    Command { name: "Hub", title: "Select Virtual Hub to Manage", params: &[""], run: hub_select },
    Command { name: "HubCreate", title: "Create New Virtual Hub", params: &["", "PASSWORD"], run: hub_create },
    Command { name: "HubDelete", title: "Delete Virtual Hub", params: &[""], run: hub_delete },
    Command { name: "HubList", title: "Get List of Virtual Hubs", params: &[], run: hub_list },
    Command { name: "IpTable", title: "Get the IP Address Table Database", params: &[""], run: ip_table },
    Command { name: "ListenerCreate", title: "Create New TCP Listener", params: &[""], run: listener_create },
    Command { name: "ListenerDelete", title: "Delete TCP Listener", params: &[""], run: listener_delete },
    Command { name: "ListenerList", title: "Get List of TCP Listeners", params: &[], run: listener_list },
    Command { name: "MacTable", title: "Get the MAC Address Table Database", params: &[""], run: mac_table },
    Command { name: "NatGet", title: "Get Virtual NAT Function Setting of SecureNAT Function", params: &[], run: nat_get },
    Command { name: "NatSet", title: "Change Virtual NAT Function Setting of SecureNAT Function", params: &["MTU", "TCPTIMEOUT", "UDPTIMEOUT", "LOG"], run: nat_set },
    Command { name: "NatTable", title: "Get Virtual NAT Function Session Table of SecureNAT Function", params: &[], run: nat_table },
    Command { name: "OptionsGet", title: "Get Options Setting of Virtual Hubs", params: &[], run: options_get },
    Command { name: "PortsUDPGet", title: "Lists the UDP ports that the server is listening on", params: &[], run: ports_udp_get },
    Command { name: "PortsUDPSet", title: "Sets the UDP ports that the server should listen on", params: &[""], run: ports_udp_set },
    Command { name: "SecureNatDisable", title: "Disable the Virtual NAT and DHCP Server Function (SecureNat Function)", params: &[], run: snat_disable },
    Command { name: "SecureNatEnable", title: "Enable the Virtual NAT and DHCP Server Function (SecureNat Function)", params: &[], run: snat_enable },
    Command { name: "SecureNatStatusGet", title: "Get the Operating Status of the Virtual NAT and DHCP Server Function (SecureNat Function)", params: &[], run: snat_status },
    Command { name: "ServerInfoGet", title: "Get server information", params: &[], run: server_info },
    Command { name: "ServerPasswordSet", title: "Set VPN Server Administrator Password", params: &[""], run: server_password_set },
    Command { name: "ServerStatusGet", title: "Get Current Server Status", params: &[], run: server_status },
    Command { name: "SessionDisconnect", title: "Disconnect Session", params: &[""], run: session_disconnect },
    Command { name: "SessionGet", title: "Get Session Information", params: &[""], run: session_get },
    Command { name: "SessionList", title: "Get List of Connected Sessions", params: &[], run: session_list },
    Command { name: "SetStaticNetwork", title: "Set Virtual Hub static IPv4 network parameters", params: &["GATEWAY", "SUBNET"], run: set_static_network },
    Command { name: "UserCreate", title: "Create User ", params: &["", "GROUP", "REALNAME", "NOTE"], run: user_create },
    Command { name: "UserDelete", title: "Delete User", params: &[""], run: user_delete },
    Command { name: "UserGet", title: "Get User Information", params: &[""], run: user_get },
    Command { name: "UserList", title: "Get List of Users", params: &[], run: user_list },
    Command { name: "UserPasswordSet", title: "Set Password Authentication for User Auth Type and Set Password", params: &["", "PASSWORD"], run: user_password_set },
    Command { name: "WgPublicHostSet", title: "Set the host name client configs use as the WireGuard endpoint (Etherhub)", params: &[""], run: wg_public_host_set },
    Command { name: "WgServerInfo", title: "Show the server's WireGuard public key, preshared key and UDP ports (Etherhub)", params: &[], run: wg_server_info },
    Command { name: "WgkAdd", title: "Add a WireGuard key (without a key: generate one) and print the client config", params: &["", "HUB", "USER", "IP", "ALLTRAFFIC", "SAVE", "QR", "PNG"], run: wgk_add },
    Command { name: "WgkConfig", title: "Print a WireGuard key's client config (wg-quick), optionally as a QR code (Etherhub)", params: &["", "ALLTRAFFIC", "SAVE", "QR", "PNG"], run: wgk_config },
    Command { name: "WgkDelete", title: "Delete a WireGuard key", params: &[""], run: wgk_delete },
    Command { name: "WgkEnum", title: "List the WireGuard keys", params: &[], run: wgk_enum },
];

/// Find a command by name, case-insensitively.
pub fn find(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name.eq_ignore_ascii_case(name))
}

/// The `help` listing.
pub fn help_text() -> String {
    let mut s = format!(
        "You can use the following {} commands: \n",
        COMMANDS.len() + 3
    );
    let mut all: Vec<(&str, &str)> = COMMANDS.iter().map(|c| (c.name, c.title)).collect();
    all.push(("About", "Display the version information"));
    all.push(("Exit", "Exit vpncmd"));
    all.push(("Help", "Display a list of the available commands"));
    all.sort_by_key(|(n, _)| n.to_ascii_lowercase());
    for (n, t) in all {
        s.push_str(&format!(" {n:<27}- {t}\n"));
    }
    s
}

/// The `COMMAND ?` text.
pub fn usage(c: &Command) -> String {
    let mut s = format!("{} command - {}\nSyntax: {}", c.name, c.title, c.name);
    for p in c.params {
        if p.is_empty() {
            s.push_str(" [value]");
        } else {
            s.push_str(&format!(" [/{p}:value]"));
        }
    }
    s.push('\n');
    s
}

/// Run one command line (already split). The caller prints `ctx.out` and the error, if any.
pub fn execute(ctx: &mut Ctx<'_>, tokens: &[String]) -> Result<(), CmdError> {
    let Some(name) = tokens.first() else {
        return Ok(());
    };
    let Some(cmd) = find(name) else {
        return Err(CmdError { code: 117, message: format!("\"{name}\": Command not found. \nYou can use the HELP command to view a list of the available commands.") });
    };
    if tokens.get(1).map(String::as_str) == Some("?") {
        ctx.out.push_str(&usage(cmd));
        return Ok(());
    }
    let params = parse_params(cmd.name, &tokens[1..], cmd.params).map_err(CmdError::usage)?;
    if !ctx.csv {
        ctx.out
            .push_str(&format!("{} command - {}\n", cmd.name, cmd.title));
    }
    (cmd.run)(ctx, &params)?;
    if !ctx.csv {
        ctx.out.push_str("The command completed successfully.\n");
    }
    Ok(())
}

impl Ctx<'_> {
    fn call(&self, method: &str, params: Value) -> Result<Value, CmdError> {
        self.api.call(method, params).map_err(call_error)
    }

    fn hub(&self) -> Result<String, CmdError> {
        self.hub.clone().ok_or_else(|| CmdError { code: 38, message: "Before executing this command, first select the Virtual Hub to manage using the Hub command.".into() })
    }

    /// A parameter that must be present: asked for interactively, an error otherwise.
    fn need(&self, cmd: &str, p: &CmdParams, name: &str, prompt: &str) -> Result<String, CmdError> {
        if let Some(v) = p.get(name) {
            return Ok(v.to_string());
        }
        let shown = if name.is_empty() {
            "value".to_string()
        } else {
            format!("/{name}")
        };
        if self.interactive && std::io::stdin().is_terminal() {
            print!("{prompt}");
            let _ = std::io::stdout().flush();
            let mut line = String::new();
            if std::io::stdin().lock().read_line(&mut line).is_ok() && !line.trim().is_empty() {
                return Ok(line.trim().to_string());
            }
        }
        Err(CmdError::usage(format!(
            "The {cmd} command needs the parameter {shown} ({}). Type \"{cmd} ?\" for its syntax.",
            prompt.trim().trim_end_matches(':')
        )))
    }

    fn table(&mut self, t: &Table, vertical: bool) {
        let s = if self.csv {
            t.render_csv()
        } else if vertical {
            t.render_vertical()
        } else {
            t.render()
        };
        self.out.push_str(&s);
    }
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn n(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn b(v: &Value, k: &str) -> bool {
    v.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn dt_ms(v: &Value, k: &str) -> u64 {
    parse_dt(s(v, k)).unwrap_or(0)
}

/// `2026-11-24 21:01:40` (UTC), or `none` for an unset time.
fn dt_short(ms: u64, none: &str) -> String {
    if ms == 0 {
        return none.to_string();
    }
    let t = DateTime::from_unix_ms(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// `2026-11-24 (Tue) 21:01:40` (UTC).
fn dt_long(ms: u64, none: &str) -> String {
    if ms == 0 {
        return none.to_string();
    }
    let t = DateTime::from_unix_ms(ms);
    format!(
        "{:04}-{:02}-{:02} ({}) {:02}:{:02}:{:02}",
        t.year,
        t.month,
        t.day,
        t.weekday_name(),
        t.hour,
        t.minute,
        t.second
    )
}

fn yes_no(v: bool) -> &'static str {
    if v {
        "Yes"
    } else {
        "No"
    }
}

fn parse_yes_no(name: &str, v: &str) -> Result<bool, CmdError> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "1" | "on" => Ok(true),
        "no" | "n" | "false" | "0" | "off" => Ok(false),
        _ => Err(CmdError::usage(format!("/{name} must be yes or no."))),
    }
}

fn parse_u32(name: &str, v: &str) -> Result<u32, CmdError> {
    v.trim()
        .parse()
        .map_err(|_| CmdError::usage(format!("/{name} must be a number.")))
}

fn parse_ip(name: &str, v: &str) -> Result<std::net::Ipv4Addr, CmdError> {
    v.trim().parse().map_err(|_| {
        CmdError::usage(format!(
            "/{name} must be an IPv4 address like 192.168.30.1."
        ))
    })
}

fn traffic_rows(t: &mut Table, v: &Value, prefix: &str) {
    let rows = [
        ("Outgoing Unicast Packets", "Send.UnicastCount", " packets"),
        ("Outgoing Unicast Total Size", "Send.UnicastBytes", " bytes"),
        (
            "Outgoing Broadcast Packets",
            "Send.BroadcastCount",
            " packets",
        ),
        (
            "Outgoing Broadcast Total Size",
            "Send.BroadcastBytes",
            " bytes",
        ),
        ("Incoming Unicast Packets", "Recv.UnicastCount", " packets"),
        ("Incoming Unicast Total Size", "Recv.UnicastBytes", " bytes"),
        (
            "Incoming Broadcast Packets",
            "Recv.BroadcastCount",
            " packets",
        ),
        (
            "Incoming Broadcast Total Size",
            "Recv.BroadcastBytes",
            " bytes",
        ),
    ];
    for (label, key, unit) in rows {
        t.row(&[
            label.to_string(),
            format!("{}{unit}", num(n(v, &format!("{prefix}{key}_u64")))),
        ]);
    }
}

fn traffic_totals(v: &Value, prefix: &str) -> (u64, u64) {
    let g = |k: &str| n(v, &format!("{prefix}{k}_u64"));
    let bytes = g("Send.UnicastBytes")
        + g("Send.BroadcastBytes")
        + g("Recv.UnicastBytes")
        + g("Recv.BroadcastBytes");
    let pkts = g("Send.UnicastCount")
        + g("Send.BroadcastCount")
        + g("Recv.UnicastCount")
        + g("Recv.BroadcastCount");
    (bytes, pkts)
}

fn server_type(t: u64) -> &'static str {
    match t {
        1 => "Cluster Controller",
        2 => "Cluster Member Server",
        _ => "Standalone Server",
    }
}

fn hub_type(t: u64) -> &'static str {
    match t {
        1 => "Static Hub",
        2 => "Dynamic Hub",
        _ => "Standalone",
    }
}

fn auth_type(t: u64) -> &'static str {
    match t {
        0 => "Anonymous Authentication",
        1 => "Password Authentication",
        2 => "Individual Certificate Authentication",
        3 => "Signed Certificate Authentication",
        4 => "RADIUS Authentication",
        5 => "NT Domain Authentication",
        _ => "Unknown",
    }
}

fn server_info(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v = ctx.call("GetServerInfo", json!({}))?;
    let mut t = Table::standard();
    t.row(&["Product Name", s(&v, "ServerProductName_str")]);
    t.row(&["Version", s(&v, "ServerVersionString_str")]);
    t.row(&["Build", s(&v, "ServerBuildInfoString_str")]);
    t.row(&["Host Name", s(&v, "ServerHostName_str")]);
    t.row(&["Server Type", server_type(n(&v, "ServerType_u32"))]);
    t.row(&["Type of Operating System", s(&v, "OsSystemName_str")]);
    t.row(&[
        "Product Name of Operating System",
        s(&v, "OsProductName_str"),
    ]);
    t.row(&["Operating System Vendor", s(&v, "OsVendorName_str")]);
    t.row(&["Operating System Version", s(&v, "OsVersion_str")]);
    t.row(&["Type of OS Kernel", s(&v, "KernelName_str")]);
    t.row(&["Version of OS Kernel", s(&v, "KernelVersion_str")]);
    ctx.table(&t, false);
    Ok(())
}

fn server_status(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v = ctx.call("GetServerStatus", json!({}))?;
    let mut t = Table::standard();
    t.row(&["Server Type", server_type(n(&v, "ServerType_u32"))]);
    t.row(&[
        "Number of Active Sockets".into(),
        num(n(&v, "NumTcpConnections_u32")),
    ]);
    t.row(&[
        "Number of Virtual Hubs".into(),
        num(n(&v, "NumHubTotal_u32")),
    ]);
    t.row(&[
        "Number of Sessions".into(),
        num(n(&v, "NumSessionsTotal_u32")),
    ]);
    t.row(&[
        "Number of MAC Address Tables".into(),
        num(n(&v, "NumMacTables_u32")),
    ]);
    t.row(&[
        "Number of IP Address Tables".into(),
        num(n(&v, "NumIpTables_u32")),
    ]);
    t.row(&["Number of Users".into(), num(n(&v, "NumUsers_u32"))]);
    t.row(&["Number of Groups".into(), num(n(&v, "NumGroups_u32"))]);
    t.row(&[
        "Using Client Connection Licenses (This Server)".into(),
        num(n(&v, "AssignedClientLicenses_u32")),
    ]);
    t.row(&[
        "Using Bridge Connection Licenses (This Server)".into(),
        num(n(&v, "AssignedBridgeLicenses_u32")),
    ]);
    traffic_rows(&mut t, &v, "");
    t.row(&[
        "Server Started at".into(),
        dt_long(dt_ms(&v, "StartTime_dt"), "(None)"),
    ]);
    let now = dt_ms(&v, "CurrentTime_dt");
    t.row(&[
        "Current Time".into(),
        format!("{}.{:03}", dt_short(now, "(None)"), now % 1000),
    ]);
    t.row(&[
        "64 bit High-Precision Logical System Clock".into(),
        n(&v, "CurrentTick_u64").to_string(),
    ]);
    ctx.table(&t, false);
    Ok(())
}

fn hub_create(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let name = ctx.need("HubCreate", p, "", "Name of Virtual Hub to be created: ")?;
    let pw = p.get("PASSWORD").unwrap_or("").to_string();
    ctx.call("CreateHub", json!({ "HubName_str": name, "AdminPasswordPlainText_str": pw, "Online_bool": true, "HubType_u32": 0 }))?;
    Ok(())
}

fn hub_delete(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let name = ctx.need("HubDelete", p, "", "Name of Virtual Hub to delete: ")?;
    ctx.call("DeleteHub", json!({ "HubName_str": name }))?;
    Ok(())
}

fn hub_list(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v = ctx.call("EnumHub", json!({}))?;
    let mut t = Table::new(&[
        "Virtual Hub Name",
        "Status",
        "Type",
        "Users",
        "Groups",
        "Sessions",
        "MAC Tables",
        "IP Tables",
        "Num Logins",
        "Last Login",
        "Last Communication",
        "Transfer Bytes",
        "Transfer Packets",
    ]);
    for h in v
        .get("HubList")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (bytes, pkts) = traffic_totals(h, "Ex.");
        t.row(&[
            s(h, "HubName_str").to_string(),
            if b(h, "Online_bool") {
                "Online"
            } else {
                "Offline"
            }
            .to_string(),
            hub_type(n(h, "HubType_u32")).to_string(),
            num(n(h, "NumUsers_u32")),
            num(n(h, "NumGroups_u32")),
            num(n(h, "NumSessions_u32")),
            num(n(h, "NumMacTables_u32")),
            num(n(h, "NumIpTables_u32")),
            num(n(h, "NumLogin_u32")),
            dt_short(dt_ms(h, "LastLoginTime_dt"), "(None)"),
            dt_short(dt_ms(h, "LastCommTime_dt"), "(None)"),
            num(bytes),
            num(pkts),
        ]);
    }
    ctx.table(&t, true);
    Ok(())
}

fn hub_select(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    match p.get("") {
        None => {
            ctx.hub = None;
            ctx.out
                .push_str("The Virtual Hub selection has been unselected.\n");
        }
        Some(name) => {
            let v = ctx.call("GetHub", json!({ "HubName_str": name }))?;
            let real = s(&v, "HubName_str");
            let real = if real.is_empty() {
                name.to_string()
            } else {
                real.to_string()
            };
            ctx.out
                .push_str(&format!("The Virtual Hub \"{real}\" has been selected.\n"));
            ctx.hub = Some(real);
        }
    }
    Ok(())
}

fn options_get(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    let v = ctx.call("GetHub", json!({ "HubName_str": hub }))?;
    if !ctx.csv {
        ctx.out
            .push_str(&format!("Options Setting List of Virtual Hub \"{hub}\"\n"));
    }
    let mut t = Table::standard();
    t.row(&[
        "Enumeration of Virtual Hub for Anonymous User",
        if b(&v, "NoEnum_bool") {
            "Deny"
        } else {
            "Allow"
        },
    ]);
    let max = n(&v, "MaxSession_u32");
    t.row(&[
        "Max Number of Sessions".into(),
        if max == 0 {
            "Infinite".into()
        } else {
            max.to_string()
        },
    ]);
    t.row(&[
        "Status",
        if b(&v, "Online_bool") {
            "Online"
        } else {
            "Offline"
        },
    ]);
    t.row(&["Virtual Hub Type", hub_type(n(&v, "HubType_u32"))]);
    t.row(&[
        "Default gateway".into(),
        ipv4_from_u32(n(&v, "DefaultGateway_u32") as u32).to_string(),
    ]);
    t.row(&[
        "Default subnet".into(),
        ipv4_from_u32(n(&v, "DefaultSubnet_u32") as u32).to_string(),
    ]);
    ctx.table(&t, false);
    Ok(())
}

fn set_static_network(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    let gw = parse_ip(
        "GATEWAY",
        &ctx.need("SetStaticNetwork", p, "GATEWAY", "Gateway IP address: ")?,
    )?;
    let mask = parse_ip(
        "SUBNET",
        &ctx.need("SetStaticNetwork", p, "SUBNET", "Subnet mask: ")?,
    )?;
    ctx.call("SetHub", json!({ "HubName_str": hub, "DefaultGateway_u32": ipv4_to_u32(gw), "DefaultSubnet_u32": ipv4_to_u32(mask) }))?;
    Ok(())
}

fn user_create(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    let name = ctx.need("UserCreate", p, "", "User Name: ")?;
    let none = |v: Option<&str>| {
        v.filter(|v| !v.eq_ignore_ascii_case("none"))
            .unwrap_or("")
            .to_string()
    };
    // Like vpncmd, a new user has password authentication with no usable password until
    // UserPasswordSet.
    ctx.call(
        "CreateUser",
        json!({ "HubName_str": hub, "Name_str": name, "GroupName_str": none(p.get("GROUP")), "Realname_utf": none(p.get("REALNAME")), "Note_utf": none(p.get("NOTE")), "AuthType_u32": 1, "Auth_Password_str": "" }),
    )?;
    Ok(())
}

fn user_password_set(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    let name = ctx.need("UserPasswordSet", p, "", "User Name: ")?;
    let pw = ctx.need("UserPasswordSet", p, "PASSWORD", "Password: ")?;
    let u = ctx.call("GetUser", json!({ "HubName_str": hub, "Name_str": name }))?;
    let mut req =
        json!({ "HubName_str": hub, "Name_str": name, "AuthType_u32": 1, "Auth_Password_str": pw });
    for k in ["GroupName_str", "Realname_utf", "Note_utf", "ExpireTime_dt"] {
        if let Some(x) = u.get(k) {
            req[k] = x.clone();
        }
    }
    ctx.call("SetUser", req)?;
    Ok(())
}

fn user_list(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    let v = ctx.call("EnumUser", json!({ "HubName_str": hub }))?;
    let mut t = Table::new(&[
        "User Name",
        "Full Name",
        "Group Name",
        "Description",
        "Auth Method",
        "Num Logins",
        "Last Login",
        "Expiration Date",
        "Transfer Bytes",
        "Transfer Packets",
    ]);
    for u in v
        .get("UserList")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (bytes, pkts) = traffic_totals(u, "Ex.");
        let group = s(u, "GroupName_str");
        t.row(&[
            s(u, "Name_str").to_string(),
            s(u, "Realname_utf").to_string(),
            if group.is_empty() {
                "-".to_string()
            } else {
                group.to_string()
            },
            s(u, "Note_utf").to_string(),
            auth_type(n(u, "AuthType_u32")).to_string(),
            num(n(u, "NumLogin_u32")),
            dt_short(dt_ms(u, "LastLoginTime_dt"), "(None)"),
            dt_short(dt_ms(u, "Expires_dt"), "No Expiration"),
            num(bytes),
            num(pkts),
        ]);
    }
    ctx.table(&t, true);
    Ok(())
}

fn user_get(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    let name = ctx.need("UserGet", p, "", "User Name: ")?;
    let v = ctx.call("GetUser", json!({ "HubName_str": hub, "Name_str": name }))?;
    let mut t = Table::standard();
    t.row(&["User Name", s(&v, "Name_str")]);
    t.row(&["Full Name", s(&v, "Realname_utf")]);
    t.row(&["Description", s(&v, "Note_utf")]);
    let group = s(&v, "GroupName_str");
    if !group.is_empty() {
        t.row(&["Group Name", group]);
    }
    t.row(&[
        "Expiration Date".into(),
        dt_long(dt_ms(&v, "ExpireTime_dt"), "(None)"),
    ]);
    t.row(&["Auth Type", auth_type(n(&v, "AuthType_u32"))]);
    t.row(&["---", "---"]);
    t.row(&[
        "Created on".into(),
        dt_long(dt_ms(&v, "CreatedTime_dt"), "(None)"),
    ]);
    t.row(&[
        "Updated on".into(),
        dt_long(dt_ms(&v, "UpdatedTime_dt"), "(None)"),
    ]);
    traffic_rows(&mut t, &v, "");
    t.row(&["Number of Logins".into(), num(n(&v, "NumLogin_u32"))]);
    ctx.table(&t, false);
    Ok(())
}

fn user_delete(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    let name = ctx.need("UserDelete", p, "", "User Name: ")?;
    ctx.call(
        "DeleteUser",
        json!({ "HubName_str": hub, "Name_str": name }),
    )?;
    Ok(())
}

fn session_list(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    let v = ctx.call("EnumSession", json!({ "HubName_str": hub }))?;
    let mut t = Table::new(&[
        "Session Name",
        "VLAN ID",
        "Location",
        "User Name",
        "Source Host Name",
        "TCP Connections",
        "Transfer Bytes",
        "Transfer Packets",
    ]);
    for x in v
        .get("SessionList")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let vlan = n(x, "VLanId_u32");
        let (location, host, tcp) = if b(x, "SecureNATMode_bool") {
            (
                "SecureNAT Session",
                "Virtual Host".to_string(),
                "None".to_string(),
            )
        } else if b(x, "BridgeMode_bool") {
            (
                "Local Bridge Session",
                "Ethernet Bridge".to_string(),
                "None".to_string(),
            )
        } else if b(x, "Layer3Mode_bool") {
            (
                "Local Session",
                "Virtual Layer 3 Switch".to_string(),
                "None".to_string(),
            )
        } else if b(x, "LinkMode_bool") {
            (
                "Cascade Connection",
                "Virtual Host".to_string(),
                "None".to_string(),
            )
        } else {
            (
                "Local Session",
                s(x, "Hostname_str").to_string(),
                format!("{} / {}", n(x, "CurrentNumTcp_u32"), n(x, "MaxNumTcp_u32")),
            )
        };
        t.row(&[
            s(x, "Name_str").to_string(),
            if vlan == 0 {
                "-".into()
            } else {
                vlan.to_string()
            },
            location.to_string(),
            s(x, "Username_str").to_string(),
            host,
            tcp,
            num(n(x, "PacketSize_u64")),
            num(n(x, "PacketNum_u64")),
        ]);
    }
    ctx.table(&t, true);
    Ok(())
}

fn session_get(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    let name = ctx.need("SessionGet", p, "", "Session name: ")?;
    let v = ctx.call(
        "GetSessionStatus",
        json!({ "HubName_str": hub, "Name_str": name }),
    )?;
    let mut t = Table::standard();
    t.row(&["Session Name", s(&v, "Name_str")]);
    t.row(&["User Name (Authentication)", s(&v, "Username_str")]);
    t.row(&["User Name (Database)", s(&v, "RealUsername_str")]);
    t.row(&["Group Name", s(&v, "GroupName_str")]);
    t.row(&["Client IP Address", s(&v, "Client_Ip_Address_ip")]);
    t.row(&["Client Host Name", s(&v, "ClientHostname_str")]);
    t.row(&[
        "Connection Started at".into(),
        dt_long(dt_ms(&v, "StartTime_dt"), "(None)"),
    ]);
    t.row(&[
        "Current Session has been Established since".into(),
        dt_long(dt_ms(&v, "CurrentConnectionEstablishTime_dt"), "(None)"),
    ]);
    t.row(&["Physical Underlay Protocol", s(&v, "UnderlayProtocol_str")]);
    t.row(&[
        "Use of Encryption".into(),
        if b(&v, "UseEncrypt_bool") {
            format!("Enabled (Algorithm: {})", s(&v, "CipherName_str"))
        } else {
            "Disabled (No Encryption)".into()
        },
    ]);
    t.row(&[
        "Use of Compression",
        if b(&v, "UseCompress_bool") {
            "Enabled"
        } else {
            "Disabled (No Compression)"
        },
    ]);
    t.row(&[
        "Number of TCP Connections".into(),
        num(n(&v, "NumTcpConnections_u32")),
    ]);
    t.row(&[
        "Outgoing Data Size".into(),
        format!("{} bytes", num(n(&v, "TotalSendSize_u64"))),
    ]);
    t.row(&[
        "Incoming Data Size".into(),
        format!("{} bytes", num(n(&v, "TotalRecvSize_u64"))),
    ]);
    traffic_rows(&mut t, &v, "Ex.");
    t.row(&["Client Product Name", s(&v, "ClientProductName_str")]);
    t.row(&["Client OS Name", s(&v, "ClientOsName_str")]);
    ctx.table(&t, false);
    Ok(())
}

fn session_disconnect(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    let name = ctx.need("SessionDisconnect", p, "", "Session name: ")?;
    ctx.call(
        "DeleteSession",
        json!({ "HubName_str": hub, "Name_str": name }),
    )?;
    Ok(())
}

fn ip_table(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    let v = ctx.call("EnumIpTable", json!({ "HubName_str": hub }))?;
    let mut t = Table::new(&[
        "ID",
        "Session Name",
        "IP Address",
        "Created at",
        "Updated at",
        "Location",
    ]);
    for e in v
        .get("IpTable")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if p.get("")
            .is_some_and(|f| !f.eq_ignore_ascii_case(s(e, "SessionName_str")))
        {
            continue;
        }
        let ip = s(e, "IpAddress_ip");
        t.row(&[
            n(e, "Key_u32").to_string(),
            s(e, "SessionName_str").to_string(),
            if b(e, "DhcpAllocated_bool") {
                format!("{ip} (DHCP)")
            } else {
                ip.to_string()
            },
            dt_short(dt_ms(e, "CreatedTime_dt"), "-"),
            dt_short(dt_ms(e, "UpdatedTime_dt"), "-"),
            "On This Server".to_string(),
        ]);
    }
    ctx.table(&t, true);
    Ok(())
}

fn mac_table(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    use base64::Engine as _;
    let hub = ctx.hub()?;
    let v = ctx.call("EnumMacTable", json!({ "HubName_str": hub }))?;
    let mut t = Table::new(&[
        "ID",
        "Session Name",
        "VLAN ID",
        "MAC Address",
        "Created at",
        "Updated at",
        "Location",
    ]);
    for e in v
        .get("MacTable")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if p.get("")
            .is_some_and(|f| !f.eq_ignore_ascii_case(s(e, "SessionName_str")))
        {
            continue;
        }
        let mac = base64::engine::general_purpose::STANDARD
            .decode(s(e, "MacAddress_bin"))
            .unwrap_or_default();
        let mac: Vec<String> = mac.iter().map(|x| format!("{x:02X}")).collect();
        let vlan = n(e, "VlanId_u32");
        t.row(&[
            n(e, "Key_u32").to_string(),
            s(e, "SessionName_str").to_string(),
            if vlan == 0 {
                "-".into()
            } else {
                vlan.to_string()
            },
            mac.join("-"),
            dt_short(dt_ms(e, "CreatedTime_dt"), "-"),
            dt_short(dt_ms(e, "UpdatedTime_dt"), "-"),
            "On This Server".to_string(),
        ]);
    }
    ctx.table(&t, true);
    Ok(())
}

fn snat_enable(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    ctx.call("EnableSecureNAT", json!({ "HubName_str": hub }))?;
    Ok(())
}

fn snat_disable(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    ctx.call("DisableSecureNAT", json!({ "HubName_str": hub }))?;
    Ok(())
}

fn snat_status(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    let v = ctx.call("GetSecureNATStatus", json!({ "HubName_str": hub }))?;
    let mut t = Table::standard();
    t.row(&["Virtual Hub Name", hub.as_str()]);
    t.row(&[
        "NAT TCP/IP Sessions".into(),
        format!("{} Session", num(n(&v, "NumTcpSessions_u32"))),
    ]);
    t.row(&[
        "NAT UDP/IP Sessions".into(),
        format!("{} Session", num(n(&v, "NumUdpSessions_u32"))),
    ]);
    t.row(&[
        "NAT ICMP Sessions".into(),
        format!("{} Session", num(n(&v, "NumIcmpSessions_u32"))),
    ]);
    t.row(&[
        "NAT DNS Sessions".into(),
        format!("{} Session", num(n(&v, "NumDnsSessions_u32"))),
    ]);
    t.row(&[
        "Allocated DHCP Clients".into(),
        format!("{} Client", num(n(&v, "NumDhcpClients_u32"))),
    ]);
    t.row(&[
        "Kernel-mode NAT is Active",
        yes_no(b(&v, "IsKernelMode_bool")),
    ]);
    t.row(&[
        "Raw IP mode NAT is Active",
        yes_no(b(&v, "IsRawIpMode_bool")),
    ]);
    ctx.table(&t, false);
    Ok(())
}

fn nat_get(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    let v = ctx.call("GetSecureNATOption", json!({ "RpcHubName_str": hub }))?;
    let mut t = Table::standard();
    t.row(&["Use Virtual NAT Function", yes_no(b(&v, "UseNat_bool"))]);
    t.row(&["MTU Value".into(), n(&v, "Mtu_u32").to_string()]);
    t.row(&[
        "TCP Session Timeout (Seconds)".into(),
        n(&v, "NatTcpTimeout_u32").to_string(),
    ]);
    t.row(&[
        "UDP Session Timeout (Seconds)".into(),
        n(&v, "NatUdpTimeout_u32").to_string(),
    ]);
    t.row(&[
        "Save NAT and DHCP Operation Log",
        yes_no(b(&v, "SaveLog_bool")),
    ]);
    ctx.table(&t, false);
    Ok(())
}

fn nat_set(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    let mut req = json!({ "RpcHubName_str": hub });
    if let Some(v) = p.get("MTU") {
        req["Mtu_u32"] = json!(parse_u32("MTU", v)?);
    }
    if let Some(v) = p.get("TCPTIMEOUT") {
        req["NatTcpTimeout_u32"] = json!(parse_u32("TCPTIMEOUT", v)?);
    }
    if let Some(v) = p.get("UDPTIMEOUT") {
        req["NatUdpTimeout_u32"] = json!(parse_u32("UDPTIMEOUT", v)?);
    }
    if let Some(v) = p.get("LOG") {
        req["SaveLog_bool"] = json!(parse_yes_no("LOG", v)?);
    }
    ctx.call("SetSecureNATOption", req)?;
    Ok(())
}

fn dhcp_get(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    let v = ctx.call("GetSecureNATOption", json!({ "RpcHubName_str": hub }))?;
    let ip = |k: &str| {
        let x = s(&v, k);
        if x.is_empty() || x == "0.0.0.0" {
            "None".to_string()
        } else {
            x.to_string()
        }
    };
    let mut t = Table::standard();
    t.row(&["Use Virtual DHCP Function", yes_no(b(&v, "UseDhcp_bool"))]);
    t.row(&[
        "Start Distribution Address Band".into(),
        ip("DhcpLeaseIPStart_ip"),
    ]);
    t.row(&[
        "End Distribution Address Band".into(),
        ip("DhcpLeaseIPEnd_ip"),
    ]);
    t.row(&["Subnet Mask".into(), ip("DhcpSubnetMask_ip")]);
    t.row(&[
        "Lease Limit (Seconds)".into(),
        n(&v, "DhcpExpireTimeSpan_u32").to_string(),
    ]);
    t.row(&[
        "Default Gateway Address".into(),
        ip("DhcpGatewayAddress_ip"),
    ]);
    t.row(&["DNS Server Address 1".into(), ip("DhcpDnsServerAddress_ip")]);
    t.row(&[
        "DNS Server Address 2".into(),
        ip("DhcpDnsServerAddress2_ip"),
    ]);
    t.row(&["Domain Name", s(&v, "DhcpDomainName_str")]);
    t.row(&[
        "Save NAT and DHCP Operation Log",
        yes_no(b(&v, "SaveLog_bool")),
    ]);
    t.row(&["Static Routing Table to Push", s(&v, "DhcpPushRoutes_str")]);
    ctx.table(&t, false);
    Ok(())
}

fn dhcp_set(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    let mut req = json!({ "RpcHubName_str": hub });
    for (param, field) in [
        ("START", "DhcpLeaseIPStart_ip"),
        ("END", "DhcpLeaseIPEnd_ip"),
        ("MASK", "DhcpSubnetMask_ip"),
        ("GW", "DhcpGatewayAddress_ip"),
        ("DNS", "DhcpDnsServerAddress_ip"),
        ("DNS2", "DhcpDnsServerAddress2_ip"),
    ] {
        if let Some(v) = p.get(param) {
            let ip = if v.eq_ignore_ascii_case("none") {
                std::net::Ipv4Addr::UNSPECIFIED
            } else {
                parse_ip(param, v)?
            };
            req[field] = json!(ip.to_string());
        }
    }
    if let Some(v) = p.get("EXPIRE") {
        req["DhcpExpireTimeSpan_u32"] = json!(parse_u32("EXPIRE", v)?);
    }
    if let Some(v) = p.get("DOMAIN") {
        req["DhcpDomainName_str"] = json!(if v.eq_ignore_ascii_case("none") {
            ""
        } else {
            v
        });
    }
    if let Some(v) = p.get("LOG") {
        req["SaveLog_bool"] = json!(parse_yes_no("LOG", v)?);
    }
    if let Some(v) = p.get("PUSHROUTE") {
        req["DhcpPushRoutes_str"] = json!(v);
        req["ApplyDhcpPushRoutes_bool"] = json!(true);
    }
    ctx.call("SetSecureNATOption", req)?;
    Ok(())
}

fn ports_udp_get(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v = ctx.call("GetPortsUDP", json!({}))?;
    let ports: Vec<String> = v
        .get("Ports_u32")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .map(|p| p.to_string())
        .collect();
    let mut t = Table::standard();
    t.row(&["UDP ports".into(), ports.join(", ")]);
    ctx.table(&t, false);
    Ok(())
}

fn ports_udp_set(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let list = ctx.need("PortsUDPSet", p, "", "Ports: ")?;
    let mut ports = Vec::new();
    for x in list.split([',', ' ']).filter(|x| !x.is_empty()) {
        let port: u16 =
            x.parse().ok().filter(|p| *p != 0).ok_or_else(|| {
                CmdError::usage(format!("\"{x}\" is not a port number (1-65535)."))
            })?;
        ports.push(port);
    }
    ctx.call("SetPortsUDP", json!({ "Ports_u32": ports }))?;
    Ok(())
}

fn port_param(ctx: &Ctx<'_>, cmd: &str, p: &CmdParams) -> Result<u16, CmdError> {
    let v = ctx.need(cmd, p, "", "Port number: ")?;
    v.trim()
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| CmdError::usage(format!("\"{v}\" is not a port number (1-65535).")))
}

fn listener_create(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let port = port_param(ctx, "ListenerCreate", p)?;
    ctx.call(
        "CreateListener",
        json!({ "Port_u32": port, "Enable_bool": true }),
    )?;
    Ok(())
}

fn listener_delete(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let port = port_param(ctx, "ListenerDelete", p)?;
    ctx.call("DeleteListener", json!({ "Port_u32": port }))?;
    Ok(())
}

fn listener_list(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v = ctx.call("EnumListener", json!({}))?;
    let mut t = Table::new(&["Port Number", "Status"]);
    for l in v
        .get("ListenerList")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let status = if b(l, "Errors_bool") {
            "Error"
        } else if b(l, "Enables_bool") {
            "Listening"
        } else {
            "Stopped"
        };
        t.row(&[format!("TCP {}", n(l, "Ports_u32")), status.to_string()]);
    }
    ctx.table(&t, false);
    Ok(())
}

fn server_password_set(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let pw = ctx.need("ServerPasswordSet", p, "", "Password: ")?;
    ctx.call("SetServerPassword", json!({ "PlainTextPassword_str": pw }))?;
    Ok(())
}

fn config_get(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    use base64::Engine as _;
    let v = ctx.call("GetConfig", json!({}))?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(s(&v, "FileData_bin"))
        .map_err(|_| CmdError {
            code: 4,
            message: "The server sent a malformed configuration.".into(),
        })?;
    match p.get("") {
        Some(path) => {
            std::fs::write(path, &data).map_err(|e| CmdError {
                code: 23,
                message: format!("Creation of specified file failed. ({e})"),
            })?;
        }
        None => {
            ctx.out.push_str(&format!(
                "Config name: \"{}\", Size: {}\n",
                s(&v, "FileName_str"),
                data.len()
            ));
            ctx.out.push_str(&String::from_utf8_lossy(&data));
            if !ctx.out.ends_with('\n') {
                ctx.out.push('\n');
            }
        }
    }
    Ok(())
}

fn config_set(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    use base64::Engine as _;
    let path = ctx.need(
        "ConfigSet",
        p,
        "",
        "Config file path name to upload to server: ",
    )?;
    let data = std::fs::read(&path).map_err(|e| CmdError {
        code: 38,
        message: format!("Reading from specified file failed. ({e})"),
    })?;
    ctx.call("SetConfig", json!({ "FileName_str": "", "FileData_bin": base64::engine::general_purpose::STANDARD.encode(data) }))?;
    Ok(())
}

fn wgk_add(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    // no key: the server generates the pair and hands back the private key this once
    let key = p.get("").unwrap_or("").to_string();
    let hub = ctx.need("WgkAdd", p, "HUB", "Hub: ")?;
    let user = ctx.need("WgkAdd", p, "USER", "User: ")?;
    let ip = match p.get("IP") {
        Some(v) => parse_ip("IP", v)?.to_string(),
        None => String::new(),
    };
    let all = match p.get("ALLTRAFFIC") {
        Some(v) => parse_yes_no("ALLTRAFFIC", v)?,
        None => false,
    };
    let v = ctx.call(
        "AddWgk",
        json!({ "Key_str": [key], "Hub_str": [hub], "User_str": [user], "Address_str": [ip], "AllTraffic_bool": all }),
    )?;
    print_client_config(ctx, p, &v, key.is_empty())
}

fn wgk_config(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let key = ctx.need("WgkConfig", p, "", "Key: ")?;
    let all = match p.get("ALLTRAFFIC") {
        Some(v) => parse_yes_no("ALLTRAFFIC", v)?,
        None => false,
    };
    let v = ctx.call(
        "GetWgkConfig",
        json!({ "Key_str": key, "AllTraffic_bool": all }),
    )?;
    print_client_config(ctx, p, &v, false)
}

/// The first entry of a parallel-array field.
fn first<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k)
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Shows what AddWgk or GetWgkConfig returned: the key's table, then the config as text (or
/// into /SAVE), as a terminal QR code (/QR:yes) and as a PNG file (/PNG:path).
fn print_client_config(
    ctx: &mut Ctx<'_>,
    p: &CmdParams,
    v: &Value,
    generated: bool,
) -> Result<(), CmdError> {
    let config = first(v, "Config_str").to_string();
    let mut t = Table::standard();
    t.row(&["Public Key", first(v, "Key_str")]);
    t.row(&["Virtual Hub", first(v, "Hub_str")]);
    t.row(&["User", first(v, "User_str")]);
    t.row(&["Address", first(v, "Address_str")]);
    ctx.table(&t, false);
    if config.is_empty() {
        return Ok(());
    }
    let write_err = |what: &str, path: &str, e: std::io::Error| CmdError {
        code: 23,
        message: format!("Writing the {what} to {path:?} failed. ({e})"),
    };
    if generated {
        ctx.out.push_str(
            "The server generated this client's key pair. Its private key is in the config \
             below and is shown only this once: the server does not keep it.\n",
        );
    }
    match p.get("SAVE") {
        Some(path) => {
            write_private(path, config.as_bytes()).map_err(|e| write_err("config", path, e))?;
            ctx.out
                .push_str(&format!("The client config was written to {path}.\n"));
        }
        None => {
            ctx.out.push('\n');
            ctx.out.push_str(&config);
            ctx.out.push('\n');
        }
    }
    if let Some(v) = p.get("QR") {
        if parse_yes_no("QR", v)? {
            let qr = crate::qr::to_terminal(&config).map_err(|e| CmdError {
                code: 45,
                message: e.to_string(),
            })?;
            ctx.out.push_str(&qr);
        }
    }
    if let Some(path) = p.get("PNG") {
        let png = crate::qr::to_png(&config, 8).map_err(|e| CmdError {
            code: 45,
            message: e.to_string(),
        })?;
        write_private(path, &png).map_err(|e| write_err("QR code", path, e))?;
        ctx.out
            .push_str(&format!("The QR code was written to {path}.\n"));
    }
    Ok(())
}

/// Writes a file only its owner may read: it may hold a private key.
fn write_private(path: &str, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

fn wg_public_host_set(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    // an empty value goes back to the server's host name
    let host = p.get("").unwrap_or("").to_string();
    let v = ctx.call("SetWgPublicHost", json!({ "PublicHost_str": host }))?;
    let shown = s(&v, "PublicHost_str");
    ctx.out.push_str(&format!(
        "Client configs now name {} as the endpoint host.\n",
        if shown.is_empty() {
            "the server's host name"
        } else {
            shown
        }
    ));
    Ok(())
}

fn wgk_delete(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let key = ctx.need("WgkDelete", p, "", "Key: ")?;
    ctx.call("DeleteWgk", json!({ "Key_str": [key] }))?;
    Ok(())
}

fn wgk_enum(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v = ctx.call("EnumWgk", json!({}))?;
    let col = |k: &str| -> Vec<String> {
        v.get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => yes_no(*b).to_string(),
                _ => String::new(),
            })
            .collect()
    };
    let keys = col("Key_str");
    let cols = [
        col("Hub_str"),
        col("User_str"),
        col("Address_str"),
        col("SessionName_str"),
        col("LastHandshake_dt"),
        col("RecvBytes_u64"),
        col("SendBytes_u64"),
        col("SpoofedDropped_u64"),
    ];
    let mut t = Table::new(&[
        "Key",
        "Hub",
        "User",
        "Address",
        "Session",
        "Last Handshake",
        "Received Bytes",
        "Sent Bytes",
        "Spoofed Dropped",
    ]);
    for (i, k) in keys.iter().enumerate() {
        let cell = |c: usize| cols[c].get(i).cloned().unwrap_or_default();
        let handshake = match cell(4) {
            h if h.is_empty() => "(None)".to_string(),
            h => parse_dt(&h).map(|ms| dt_short(ms, "(None)")).unwrap_or(h),
        };
        let session = match cell(3) {
            s if s.is_empty() => "(Offline)".to_string(),
            s => s,
        };
        let num_cell = |c: usize| num(cell(c).parse().unwrap_or(0));
        t.row(&[
            k.clone(),
            cell(0),
            cell(1),
            cell(2),
            session,
            handshake,
            num_cell(5),
            num_cell(6),
            num_cell(7),
        ]);
    }
    ctx.table(&t, false);
    Ok(())
}

fn wg_server_info(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v = ctx.call("GetWgServerInfo", json!({}))?;
    let ports: Vec<String> = v
        .get("Ports_u32")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .map(|p| p.to_string())
        .collect();
    let psk = s(&v, "PresharedKey_str");
    let mut t = Table::standard();
    t.row(&[
        "WireGuard",
        if b(&v, "Enabled_bool") {
            "Enabled"
        } else {
            "Disabled"
        },
    ]);
    t.row(&["Public Key", s(&v, "PublicKey_str")]);
    t.row(&["Preshared Key", if psk.is_empty() { "(None)" } else { psk }]);
    t.row(&["UDP ports".into(), ports.join(", ")]);
    let host = s(&v, "PublicHost_str");
    t.row(&[
        "Public Host",
        if host.is_empty() {
            "(the server's host name)"
        } else {
            host
        },
    ]);
    for (label, field) in [
        ("Handshakes Completed", "HandshakesOk_u64"),
        ("Cookie Replies Sent (under load)", "CookieRepliesSent_u64"),
        ("Handshakes Rate-Limited", "HandshakesRateLimited_u64"),
        ("Initiations from Unknown Keys", "UnknownKeyInitiations_u64"),
        ("Malformed Datagrams Dropped", "MalformedDropped_u64"),
        ("Unknown Receiver Index Dropped", "UnknownIndexDropped_u64"),
        ("Spoofed Source Dropped", "SpoofedDropped_u64"),
        ("Unrecognised Datagrams", "UnknownDatagrams_u64"),
        ("Send Failures", "SendFailures_u64"),
    ] {
        t.row(&[label.into(), num(n(&v, field))]);
    }
    ctx.table(&t, false);
    Ok(())
}

fn nat_table(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    let v = ctx.call("EnumNAT", json!({ "HubName_str": hub }))?;
    let mut t = Table::new(&[
        "ID",
        "Protocol",
        "Src IP Address",
        "Src Host Name",
        "Src Port",
        "Dest IP Address",
        "Dest Host Name",
        "Dest Port",
        "Created at",
        "Last Comm at",
        "Transmitted Size",
        "Received Size",
        "TCP Status",
    ]);
    for e in v
        .get("NatTable")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let protocol = n(e, "Protocol_u32");
        let status = if protocol == 0 {
            match n(e, "TcpStatus_u32") {
                0 => "Connecting",
                1 => "Sending Reset",
                2 => "Connected",
                3 => "Established",
                _ => "Wait for Disconnect",
            }
        } else {
            "-"
        };
        t.row(&[
            n(e, "Id_u32").to_string(),
            match protocol {
                0 => "TCP",
                1 => "UDP",
                2 => "DNS",
                _ => "ICMP",
            }
            .to_string(),
            s(e, "SrcIp_ip").to_string(),
            s(e, "SrcHost_str").to_string(),
            n(e, "SrcPort_u32").to_string(),
            s(e, "DestIp_ip").to_string(),
            s(e, "DestHost_str").to_string(),
            n(e, "DestPort_u32").to_string(),
            dt_short(dt_ms(e, "CreatedTime_dt"), "-"),
            dt_short(dt_ms(e, "LastCommTime_dt"), "-"),
            format!("{} bytes", num(n(e, "SendSize_u64"))),
            format!("{} bytes", num(n(e, "RecvSize_u64"))),
            status.to_string(),
        ]);
    }
    ctx.table(&t, true);
    Ok(())
}

fn dhcp_table(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    use base64::Engine as _;
    let hub = ctx.hub()?;
    let v = ctx.call("EnumDHCP", json!({ "HubName_str": hub }))?;
    let mut t = Table::new(&[
        "ID",
        "Leased at",
        "Expiration Date",
        "MAC Address",
        "Allocated IP",
        "Client Host Name",
    ]);
    for e in v
        .get("DhcpTable")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mac = base64::engine::general_purpose::STANDARD
            .decode(s(e, "MacAddress_bin"))
            .unwrap_or_default()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join("-");
        t.row(&[
            n(e, "Id_u32").to_string(),
            dt_short(dt_ms(e, "LeasedTime_dt"), "-"),
            dt_short(dt_ms(e, "ExpireTime_dt"), "-"),
            mac,
            s(e, "IpAddress_ip").to_string(),
            s(e, "Hostname_str").to_string(),
        ]);
    }
    ctx.table(&t, true);
    Ok(())
}
