//! The vpncmd commands Etherhub supports: each names its parameters in SoftEther's order with
//! SoftEther's prompts and checks, calls the admin API with the typed messages of
//! etherhub-admin, and prints vpncmd's output.

use std::io::Write;

use etherhub_admin::wire::{decode, encode, DateTime};
use etherhub_admin::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::args::{parse_params, CmdParams};
use crate::client::CallError;
use crate::console::Console;
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
    /// Where prompts read their answers.
    pub console: &'a mut dyn Console,
    /// Hub selected with `Hub` (or the hub admin's hub).
    pub hub: Option<String>,
    pub csv: bool,
    /// Output produced so far (shown before any prompt, and by the caller at the end).
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
            let text = message
                .split_once(": ")
                .map(|(_, t)| t.to_string())
                .unwrap_or(message);
            CmdError {
                code: code as i32,
                message: format!("Error occurred. (Error code: {code})\n{text}"),
            }
        }
        CallError::Auth => CmdError {
            code: 9,
            message: "Error occurred. (Error code: 9)\nUser authentication failed.\nThe password is incorrect, or the account may not administer this server or hub.".into(),
        },
        CallError::Connect(m) => CmdError {
            code: 1,
            message: format!("Error occurred. (Error code: 1)\nConnection to the server failed. Check network connection and make sure that address and port number of destination server are correct.\n({m})"),
        },
        CallError::Protocol(m) => CmdError {
            code: 4,
            message: format!("Error occurred. (Error code: 4)\nProtocol error occurred. ({m})"),
        },
    }
}

/// How a missing parameter is asked for (vpncmd's prompt functions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ask {
    /// Not asked: absent means absent.
    No,
    /// One line, after this prompt.
    Line(&'static str),
    /// A password, twice, without echo (vpncmd's `CmdPromptChoosePassword`).
    Password,
}

/// What a value must be (vpncmd's evaluation functions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Any,
    NotEmpty,
    /// An IPv4 address, `none` or empty.
    Ip,
    Port,
    PortList,
    /// An integer in `min..=max`; the message has two `{}` for them.
    MinMax(u32, u32, &'static str),
    IsFile,
}

/// One parameter: `[name]` is the unnamed one.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub name: &'static str,
    pub ask: Ask,
    pub check: Check,
}

const fn p(name: &'static str, ask: Ask, check: Check) -> Param {
    Param { name, ask, check }
}

/// A parameter that is never asked for.
const fn opt(name: &'static str) -> Param {
    p(name, Ask::No, Check::Any)
}

type Handler = fn(&mut Ctx<'_>, &CmdParams) -> Result<(), CmdError>;

/// One command: name, vpncmd's title, parameters in SoftEther's order, handler.
pub struct Command {
    pub name: &'static str,
    pub title: &'static str,
    pub params: &'static [Param],
    pub run: Handler,
}

const NOT_EMPTY: Check = Check::NotEmpty;
const SAVE_LOG: Param = p("LOG", Ask::Line("Save Log (yes / no): "), NOT_EMPTY);

/// AccessAdd's parameters in vpncmd's order (with the source and destination address prompts of
/// its IP version), and with `ex` those of AccessAddEx too.
macro_rules! access_params {
    ($src:expr, $dst:expr) => {
        access_params!(@list $src, $dst;)
    };
    ($src:expr, $dst:expr, ex) => {
        access_params!(@list $src, $dst;
            p("DELAY", Ask::Line("Delays to Generate (in milliseconds: 0 - 10000): "), Check::MinMax(0, 10000, "Specify a delay of {} to {} milliseconds.")),
            p("JITTER", Ask::Line("Fluctuation of Jitters to Generate (Percent: 0 - 100): "), Check::MinMax(0, 100, "Specify a jitter of {} to {} percent.")),
            p("LOSS", Ask::Line("Ratio of Packet Losses (Percent: 0 - 100): "), Check::MinMax(0, 100, "Specify a loss of {} to {} percent.")),
            opt("REDIRECTURL"),
        )
    };
    (@list $src:expr, $dst:expr; $($extra:expr,)*) => {
        &[
            p("[pass|discard]", Ask::Line("Pass or Discard: "), NOT_EMPTY),
            p("MEMO", Ask::Line("Rule Description (Memo): "), Check::Any),
            p("PRIORITY", Ask::Line("Rule Priority: "), Check::MinMax(1, u32::MAX, "Specify an integer of 1 or higher for the priority.")),
            p("SRCUSERNAME", Ask::Line("Source User Name (all when unspecified): "), Check::Any),
            p("DESTUSERNAME", Ask::Line("Destination User Name (all when unspecified): "), Check::Any),
            p("SRCMAC", Ask::Line("Source MAC Address and Mask (all when unspecified): "), Check::Any),
            p("DESTMAC", Ask::Line("Destination MAC Address and Mask (all when unspecified): "), Check::Any),
            p("SRCIP", Ask::Line($src), NOT_EMPTY),
            p("DESTIP", Ask::Line($dst), NOT_EMPTY),
            p("PROTOCOL", Ask::Line("Protocol No. or Protocol Name (tcp/udp/icmpv4/icmpv6/ip): "), Check::Any),
            p("SRCPORT", Ask::Line("Source Port Number Range (tcp/udp only): "), Check::Any),
            p("DESTPORT", Ask::Line("Destination Port Number Range (tcp/udp only): "), Check::Any),
            p("TCPSTATE", Ask::Line("TCP Connection State (Established/Unestablished): "), Check::Any),
            $($extra,)*
        ]
    };
}

const SRCIP_PROMPT: &str = "Source IP Address (\"0.0.0.0/0\" specifies all): ";
const DESTIP_PROMPT: &str = "Destination IP Address (\"0.0.0.0/0\" specifies all): ";
const SRCIP6_PROMPT: &str = "Source IPv6 Address (\"::/0\" specifies all): ";
const DESTIP6_PROMPT: &str = "Destination IPv6 Address (\"::/0\" specifies all): ";

pub const COMMANDS: &[Command] = &[
    Command { name: "AccessAdd", title: "Add Rule to Access List (IPv4)", params: access_params!(SRCIP_PROMPT, DESTIP_PROMPT), run: access_add },
    Command { name: "AccessAdd6", title: "Add Rule to Access List (IPv6)", params: access_params!(SRCIP6_PROMPT, DESTIP6_PROMPT), run: access_add6 },
    Command { name: "AccessAddEx", title: "Add Extended Rule to Access List (IPv4, Delay, Jitter and Packet Loss Generating)", params: access_params!(SRCIP_PROMPT, DESTIP_PROMPT, ex), run: access_add },
    Command { name: "AccessAddEx6", title: "Add Extended Rule to Access List (IPv6, Delay, Jitter and Packet Loss Generating)", params: access_params!(SRCIP6_PROMPT, DESTIP6_PROMPT, ex), run: access_add6 },
    Command { name: "AccessDelete", title: "Delete Rule from Access List", params: &[p("[id]", Ask::Line("Access List Rule ID or Unique ID: "), NOT_EMPTY)], run: access_delete },
    Command { name: "AccessDisable", title: "Disable Access List Rule", params: &[p("[id]", Ask::Line("Access List Rule ID or Unique ID: "), NOT_EMPTY)], run: access_disable },
    Command { name: "AccessEnable", title: "Enable Access List Rule", params: &[p("[id]", Ask::Line("Access List Rule ID or Unique ID: "), NOT_EMPTY)], run: access_enable },
    Command { name: "AccessList", title: "Get Access List Rule List", params: &[], run: access_list },
    Command { name: "ConfigGet", title: "Get the current configuration of the VPN Server", params: &[opt("[path]")], run: config_get },
    Command { name: "ConfigSet", title: "Write Configuration File to VPN Server", params: &[p("[path]", Ask::Line("Config file path name to upload to server: "), Check::IsFile)], run: config_set },
    Command { name: "DhcpGet", title: "Get Virtual DHCP Server Function Setting of SecureNAT Function", params: &[], run: dhcp_get },
    Command { name: "DhcpSet", title: "Change Virtual DHCP Server Function Setting of SecureNAT Function", params: &[
        p("START", Ask::Line("Start Point for Distributed Address Band: "), Check::Ip),
        p("END", Ask::Line("End Point for Distributed Address Band: "), Check::Ip),
        p("MASK", Ask::Line("Subnet Mask: "), Check::Ip),
        p("EXPIRE", Ask::Line("Lease Limit (Seconds): "), Check::MinMax(10, 2_000_000_000, "Specify the number of seconds in the range {} to {} for the UDP session timeout.")),
        p("GW", Ask::Line("Default Gateway ('none' to not set this): "), Check::Ip),
        p("DNS", Ask::Line("DNS Server 1 ('none' to not set this): "), Check::Ip),
        p("DNS2", Ask::Line("DNS Server 2 ('none' to not set this): "), Check::Ip),
        p("DOMAIN", Ask::Line("Domain Name: "), Check::Any),
        SAVE_LOG,
        opt("PUSHROUTE"),
    ], run: dhcp_set },
    Command { name: "DhcpTable", title: "Get Virtual DHCP Server Function Lease Table of SecureNAT Function", params: &[], run: dhcp_table },
    Command { name: "GroupCreate", title: "Create Group", params: &[
        p("[name]", Ask::Line("Group Name: "), NOT_EMPTY),
        p("REALNAME", Ask::Line("Group Full Name: "), Check::Any),
        p("NOTE", Ask::Line("Group Description: "), Check::Any),
    ], run: group_create },
    Command { name: "GroupDelete", title: "Delete Group", params: &[p("[name]", Ask::Line("Group Name: "), NOT_EMPTY)], run: group_delete },
    Command { name: "GroupGet", title: "Get Group Information and List of Assigned Users", params: &[p("[name]", Ask::Line("Group Name: "), NOT_EMPTY)], run: group_get },
    Command { name: "GroupJoin", title: "Add User to Group", params: &[
        p("[name]", Ask::Line("Group Name: "), NOT_EMPTY),
        p("USERNAME", Ask::Line("Name of User to Join Group: "), NOT_EMPTY),
    ], run: group_join },
    Command { name: "GroupList", title: "Get List of Groups", params: &[], run: group_list },
    Command { name: "GroupPolicyRemove", title: "Delete Security Policy of Group", params: &[p("[name]", Ask::Line("Group Name: "), NOT_EMPTY)], run: group_policy_remove },
    Command { name: "GroupPolicySet", title: "Set Security Policy of Group", params: &[
        p("[name]", Ask::Line("Group Name: "), NOT_EMPTY),
        p("NAME", Ask::Line("Name of Policy Whose Value you want to Change: "), NOT_EMPTY),
        p("VALUE", Ask::Line("Value to newly set: "), Check::Any),
    ], run: group_policy_set },
    Command { name: "GroupSet", title: "Set Group Information", params: &[
        p("[name]", Ask::Line("Group Name: "), NOT_EMPTY),
        p("REALNAME", Ask::Line("Group Full Name: "), Check::Any),
        p("NOTE", Ask::Line("Group Description: "), Check::Any),
    ], run: group_set },
    Command { name: "GroupUnjoin", title: "Delete User from Group", params: &[p("[name]", Ask::Line("Name of User to Delete from Group: "), NOT_EMPTY)], run: group_unjoin },
    Command { name: "Hub", title: "Select Virtual Hub to Manage", params: &[opt("[name]")], run: hub_select },
    Command { name: "HubCreate", title: "Create New Virtual Hub", params: &[
        p("[name]", Ask::Line("Name of Virtual Hub to be created: "), NOT_EMPTY),
        p("PASSWORD", Ask::Password, Check::Any),
    ], run: hub_create },
    Command { name: "HubDelete", title: "Delete Virtual Hub", params: &[p("[name]", Ask::Line("Name of Virtual Hub to delete: "), NOT_EMPTY)], run: hub_delete },
    Command { name: "HubList", title: "Get List of Virtual Hubs", params: &[], run: hub_list },
    Command { name: "IPsecEnable", title: "Enable or Disable IPsec VPN Server Function", params: &[
        p("L2TP", Ask::Line("Enable L2TP over IPsec Server Function (yes / no): "), NOT_EMPTY),
        p("L2TPRAW", Ask::Line("Enable Raw L2TP Server Function (yes / no): "), NOT_EMPTY),
        p("ETHERIP", Ask::Line("Enable EtherIP / L2TPv3 over IPsec Server Function (yes / no): "), NOT_EMPTY),
        p("PSK", Ask::Line("Pre Shared Key for IPsec (Recommended: 9 letters at maximum): "), NOT_EMPTY),
        p("DEFAULTHUB", Ask::Line("Default Virtual HUB in a case of omitting the HUB on the Username: "), NOT_EMPTY),
    ], run: ipsec_enable },
    Command { name: "IPsecGet", title: "Get the Current IPsec VPN Server Settings", params: &[], run: ipsec_get },
    Command { name: "IpTable", title: "Get the IP Address Table Database", params: &[opt("[session_name]")], run: ip_table },
    Command { name: "ListenerCreate", title: "Create New TCP Listener", params: &[p("[port]", Ask::Line("Port number of newly added TCP/IP Listener: "), Check::Port)], run: listener_create },
    Command { name: "ListenerDelete", title: "Delete TCP Listener", params: &[p("[port]", Ask::Line("Port number of TCP/IP Listener: "), Check::Port)], run: listener_delete },
    Command { name: "ListenerList", title: "Get List of TCP Listeners", params: &[], run: listener_list },
    Command { name: "MacTable", title: "Get the MAC Address Table Database", params: &[opt("[session_name]")], run: mac_table },
    Command { name: "NatGet", title: "Get Virtual NAT Function Setting of SecureNAT Function", params: &[], run: nat_get },
    Command { name: "NatSet", title: "Change Virtual NAT Function Setting of SecureNAT Function", params: &[
        p("MTU", Ask::Line("MTU Value: "), Check::MinMax(62, 1500, "Specify a value in the range {} to {} for the MTU value.")),
        p("TCPTIMEOUT", Ask::Line("TCP Session Timeout (Seconds): "), Check::MinMax(60, 2_000_000_000, "Specify the number of seconds in the range {} to {} for the TCP session timeout.")),
        p("UDPTIMEOUT", Ask::Line("UDP Session Timeout (Seconds): "), Check::MinMax(10, 2_000_000_000, "Specify the number of seconds in the range {} to {} for the UDP session timeout.")),
        SAVE_LOG,
    ], run: nat_set },
    Command { name: "PolicyList", title: "Display List of Security Policy Types and Settable Values", params: &[opt("[name]")], run: policy_list },
    Command { name: "NatTable", title: "Get Virtual NAT Function Session Table of SecureNAT Function", params: &[], run: nat_table },
    Command { name: "OpenVpnMakeConfig", title: "Generate a Sample Setting File for OpenVPN Client", params: &[p("[ZIP_FileName]", Ask::Line("Output Filename of Setting Files (ZIP compressed file): "), NOT_EMPTY)], run: openvpn_make_config },
    Command { name: "OptionsGet", title: "Get Options Setting of Virtual Hubs", params: &[], run: options_get },
    Command { name: "ProtoOptionsGet", title: "Lists the options for the specified protocol", params: &[p("[protocol]", Ask::Line("Protocol: "), NOT_EMPTY)], run: proto_options_get },
    Command { name: "ProtoOptionsSet", title: "Sets an option's value for the specified protocol", params: &[
        p("[protocol]", Ask::Line("Protocol: "), NOT_EMPTY),
        p("NAME", Ask::Line("Option: "), NOT_EMPTY),
        p("VALUE", Ask::Line("Value: "), Check::Any),
    ], run: proto_options_set },
    Command { name: "PortsUDPGet", title: "Lists the UDP ports that the server is listening on", params: &[], run: ports_udp_get },
    Command { name: "PortsUDPSet", title: "Sets the UDP ports that the server should listen on", params: &[p("[ports]", Ask::Line("Multiple UDP ports can be specified by splitting them with a space or a comma, for example: \"443, 992, 1194, 5555\". \nSpecify \"0\" to disable the UDP listener. \n\nPorts: "), Check::PortList)], run: ports_udp_set },
    Command { name: "SecureNatDisable", title: "Disable the Virtual NAT and DHCP Server Function (SecureNat Function)", params: &[], run: snat_disable },
    Command { name: "SecureNatEnable", title: "Enable the Virtual NAT and DHCP Server Function (SecureNat Function)", params: &[], run: snat_enable },
    Command { name: "SecureNatHostGet", title: "Get Network Interface Setting of Virtual Host of SecureNAT Function", params: &[], run: snat_host_get },
    Command { name: "SecureNatHostSet", title: "Change Network Interface Setting of Virtual Host of SecureNAT Function", params: &[
        p("MAC", Ask::Line("MAC Address: "), Check::Any),
        p("IP", Ask::Line("IP Address: "), Check::Ip),
        p("MASK", Ask::Line("Subnet Mask: "), Check::Ip),
    ], run: snat_host_set },
    Command { name: "SecureNatStatusGet", title: "Get the Operating Status of the Virtual NAT and DHCP Server Function (SecureNat Function)", params: &[], run: snat_status },
    Command { name: "ServerCertGet", title: "Get SSL Certificate of VPN Server", params: &[p("[cert]", Ask::Line("Save X.509 certificate to file name: "), NOT_EMPTY)], run: server_cert_get },
    Command { name: "ServerInfoGet", title: "Get server information", params: &[], run: server_info },
    Command { name: "ServerPasswordSet", title: "Set VPN Server Administrator Password", params: &[p("[password]", Ask::Password, Check::Any)], run: server_password_set },
    Command { name: "ServerStatusGet", title: "Get Current Server Status", params: &[], run: server_status },
    Command { name: "SessionDisconnect", title: "Disconnect Session", params: &[p("[name]", Ask::Line("Session name: "), NOT_EMPTY)], run: session_disconnect },
    Command { name: "SessionGet", title: "Get Session Information", params: &[p("[name]", Ask::Line("Session name: "), NOT_EMPTY)], run: session_get },
    Command { name: "SessionList", title: "Get List of Connected Sessions", params: &[], run: session_list },
    Command { name: "SetStaticNetwork", title: "Set Virtual Hub static IPv4 network parameters", params: &[
        p("GATEWAY", Ask::Line("Gateway: "), Check::Ip),
        p("SUBNET", Ask::Line("Subnet mask: "), Check::Ip),
    ], run: set_static_network },
    Command { name: "UserCreate", title: "Create User ", params: &[
        p("[name]", Ask::Line("User Name: "), NOT_EMPTY),
        p("GROUP", Ask::Line("Assigned Group Name: "), Check::Any),
        p("REALNAME", Ask::Line("User Full Name: "), Check::Any),
        p("NOTE", Ask::Line("User Description: "), Check::Any),
    ], run: user_create },
    Command { name: "UserAnonymousSet", title: "Set Anonymous Authentication for User Auth Type", params: &[p("[name]", Ask::Line("User Name: "), NOT_EMPTY)], run: user_anonymous_set },
    Command { name: "UserDelete", title: "Delete User", params: &[p("[name]", Ask::Line("User Name: "), NOT_EMPTY)], run: user_delete },
    Command { name: "UserExpiresSet", title: "Set User's Expiration Date", params: &[
        p("[name]", Ask::Line("User Name: "), NOT_EMPTY),
        p("EXPIRES", Ask::Line("User Expiration Date (no expiration if nothing specified): "), Check::Any),
    ], run: user_expires_set },
    Command { name: "UserGet", title: "Get User Information", params: &[p("[name]", Ask::Line("User Name: "), NOT_EMPTY)], run: user_get },
    Command { name: "UserList", title: "Get List of Users", params: &[], run: user_list },
    Command { name: "UserPolicyRemove", title: "Delete User Security Policy", params: &[p("[name]", Ask::Line("User Name: "), NOT_EMPTY)], run: user_policy_remove },
    Command { name: "UserPolicySet", title: "Set User Security Policy", params: &[
        p("[name]", Ask::Line("User Name: "), NOT_EMPTY),
        p("NAME", Ask::Line("Name of Policy Whose Value you want to Change: "), NOT_EMPTY),
        p("VALUE", Ask::Line("Value to newly set: "), Check::Any),
    ], run: user_policy_set },
    Command { name: "UserPasswordSet", title: "Set Password Authentication for User Auth Type and Set Password", params: &[
        p("[name]", Ask::Line("User Name: "), NOT_EMPTY),
        p("PASSWORD", Ask::Password, Check::Any),
    ], run: user_password_set },
    Command { name: "WgPublicHostSet", title: "Set the host name client configs use as the WireGuard endpoint (Etherhub)", params: &[opt("[host]")], run: wg_public_host_set },
    Command { name: "WgServerInfo", title: "Show the server's WireGuard public key, preshared key and UDP ports (Etherhub)", params: &[], run: wg_server_info },
    // SoftEther's [key], HUB and USER, asked in that order; an empty key (or none, when there
    // is no input to ask) has the server generate the pair (Etherhub)
    Command { name: "WgkAdd", title: "Add a WireGuard key (without a key: generate one) and print the client config", params: &[
        p("[key]", Ask::Line("Key: "), Check::Any),
        p("HUB", Ask::Line("Hub: "), Check::Any),
        p("USER", Ask::Line("User: "), Check::Any),
        opt("IP"), opt("ALLTRAFFIC"), opt("SAVE"), opt("QR"), opt("PNG"),
    ], run: wgk_add },
    Command { name: "WgkConfig", title: "Print a WireGuard key's client config (wg-quick), optionally as a QR code (Etherhub)", params: &[
        p("[key]", Ask::Line("Key: "), NOT_EMPTY),
        opt("ALLTRAFFIC"), opt("SAVE"), opt("QR"), opt("PNG"),
    ], run: wgk_config },
    Command { name: "WgkDelete", title: "Delete a WireGuard key", params: &[p("[key]", Ask::Line("Key: "), NOT_EMPTY)], run: wgk_delete },
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
        match p.name.strip_prefix('[') {
            Some(n) => s.push_str(&format!(" [{}", n)),
            None => s.push_str(&format!(" [/{}:value]", p.name)),
        }
    }
    s.push('\n');
    s
}

/// The parser's key of a parameter: `""` for the unnamed one.
fn key(p: &Param) -> &'static str {
    if p.name.starts_with('[') {
        ""
    } else {
        p.name
    }
}

/// Whether `v` passes `check`; the message vpncmd shows when not.
fn evaluate(check: Check, v: &str) -> Result<(), String> {
    let v = v.trim();
    match check {
        Check::Any => Ok(()),
        Check::NotEmpty if v.is_empty() => Err("You cannot make a blank specification.".into()),
        Check::NotEmpty => Ok(()),
        Check::Ip if v.is_empty() || v.eq_ignore_ascii_case("none") => Ok(()),
        Check::Ip => v
            .parse::<std::net::Ipv4Addr>()
            .map(|_| ())
            .map_err(|_| "The IP address is incorrectly specified.".into()),
        Check::Port => match v.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(()),
            _ => Err("Port number is invalid. Specify a port number that is within the range of 1 to 65535.".into()),
        },
        Check::PortList => {
            let ok = !v.is_empty()
                && v.split([',', ' ']).filter(|x| !x.is_empty()).all(|x| x.parse::<u16>().is_ok());
            if ok {
                Ok(())
            } else {
                Err("The port number list specification is invalid. \nThe list must have at least one port number set, and it is also possible to set multiple port numbers. When specifying multiple port numbers, separate them using a comma such as \"443,992,8888\".".into())
            }
        }
        Check::MinMax(min, max, msg) => match v.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(()),
            _ => Err(msg.replacen("{}", &min.to_string(), 1).replacen("{}", &max.to_string(), 1)),
        },
        Check::IsFile if v.is_empty() => Err("The file name is not specified.".into()),
        Check::IsFile if !std::path::Path::new(v).is_file() => {
            Err(format!("Cannot find specified file \"{v}\"."))
        }
        Check::IsFile => Ok(()),
    }
}

/// The end of input where a prompt wanted an answer: the command is canceled.
fn canceled(cmd: &Command, p: &Param) -> CmdError {
    let shown = match key(p) {
        "" => p.name.to_string(),
        k => format!("/{k}"),
    };
    CmdError::usage(format!(
        "The {} command was canceled: {shown} was not given and there was no input to ask for it.",
        cmd.name
    ))
}

impl Ctx<'_> {
    /// Shows what is pending, so a prompt comes after the output before it.
    fn show_pending(&mut self) {
        let out = std::mem::take(&mut self.out);
        if !out.is_empty() {
            self.console.write(&out);
        }
    }

    /// vpncmd's password prompt: twice, without echo, until both agree.
    fn ask_password(&mut self) -> Option<String> {
        self.show_pending();
        self.console
            .write("Please enter the password. To cancel press the Ctrl+D key.\n\n");
        loop {
            let a = self.console.read_password("Password: ")?;
            let b = self.console.read_password("Confirm input: ")?;
            self.console.write("\n");
            if a == b {
                return Some(a);
            }
            self.console.write("The password and the password confirmation do not match. Please input the password and confirmation again.\n\n");
        }
    }

    /// Fills in every parameter as vpncmd's ParseCommandList does: values given are checked,
    /// missing ones with a prompt are asked for, in order; a bad value is asked for again.
    fn resolve(&mut self, cmd: &Command, mut given: CmdParams) -> Result<CmdParams, CmdError> {
        for p in cmd.params {
            let k = key(p);
            let mut value = given.0.remove(k);
            loop {
                if let Some(v) = &value {
                    match evaluate(p.check, v) {
                        Ok(()) => {
                            given.0.insert(k.to_string(), v.clone());
                            break;
                        }
                        Err(msg) if p.ask == Ask::No => {
                            return Err(CmdError::usage(msg));
                        }
                        Err(msg) => {
                            self.show_pending();
                            self.console.write(&format!("{msg}\n"));
                        }
                    }
                }
                value = match p.ask {
                    Ask::No => break,
                    Ask::Line(prompt) => {
                        self.show_pending();
                        match self.console.read_line(prompt) {
                            Some(a) => {
                                self.console.write("\n");
                                Some(a.trim().to_string())
                            }
                            // Etherhub: WgkAdd with no key and no input generates the pair
                            None if cmd.name == "WgkAdd" && k.is_empty() => Some(String::new()),
                            None => return Err(canceled(cmd, p)),
                        }
                    }
                    Ask::Password => match self.ask_password() {
                        Some(pw) => Some(pw),
                        None => return Err(canceled(cmd, p)),
                    },
                };
            }
        }
        Ok(given)
    }

    /// Calls `method` with a typed request and reads the typed reply.
    fn rpc<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        method: &str,
        req: &Req,
    ) -> Result<Resp, CmdError> {
        let v = self.api.call(method, encode(req)).map_err(call_error)?;
        decode(v).map_err(|e| CmdError {
            code: 4,
            message: format!(
                "Error occurred. (Error code: 4)\nProtocol error occurred. (the reply to {method}: {})",
                e.message
            ),
        })
    }

    fn hub(&self) -> Result<String, CmdError> {
        self.hub.clone().ok_or_else(|| CmdError {
            code: 38,
            message: "Before executing this command, first select the Virtual Hub to manage using the Hub command.".into(),
        })
    }

    fn hub_name(&self) -> Result<HubName, CmdError> {
        Ok(HubName { hub: self.hub()? })
    }

    /// The user the command's unnamed parameter names.
    fn get_user(&self, p: &CmdParams) -> Result<User, CmdError> {
        let req = HubObject {
            hub: self.hub()?,
            name: p.get("").unwrap_or_default().to_string(),
        };
        self.rpc("GetUser", &req)
    }

    /// The group the command's unnamed parameter names.
    fn get_group(&self, p: &CmdParams) -> Result<Group, CmdError> {
        let req = HubObject {
            hub: self.hub()?,
            name: p.get("").unwrap_or_default().to_string(),
        };
        self.rpc("GetGroup", &req)
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

/// Run one command line (already split). The caller prints `ctx.out` and the error, if any.
pub fn execute(ctx: &mut Ctx<'_>, tokens: &[String]) -> Result<(), CmdError> {
    let Some(name) = tokens.first() else {
        return Ok(());
    };
    let Some(cmd) = find(name) else {
        return Err(CmdError {
            code: 117,
            message: format!("\"{name}\": Command not found. \nYou can use the HELP command to view a list of the available commands."),
        });
    };
    if tokens.get(1).map(String::as_str) == Some("?") {
        let params: Vec<&str> = cmd.params.iter().map(|p| p.name).collect();
        // SoftEther's own help text, when a SoftEther package on this machine has it
        match crate::strtable::StringTable::installed()
            .and_then(|t| t.command_help(cmd.name, &params))
        {
            Some(help) => {
                ctx.out
                    .push_str(&format!("{} command - {}\n{help}", cmd.name, cmd.title));
            }
            None => ctx.out.push_str(&usage(cmd)),
        }
        return Ok(());
    }
    let names: Vec<&str> = cmd.params.iter().map(key).collect();
    let given = parse_params(cmd.name, &tokens[1..], &names).map_err(CmdError::usage)?;
    if !ctx.csv {
        ctx.out
            .push_str(&format!("{} command - {}\n", cmd.name, cmd.title));
    }
    let params = ctx.resolve(cmd, given)?;
    (cmd.run)(ctx, &params)?;
    if !ctx.csv {
        ctx.out.push_str("The command completed successfully.\n");
    }
    Ok(())
}

/// `2026-11-24 21:01:40` (UTC), or `none` for an unset time.
fn dt_short(t: Dt, none: &str) -> String {
    if t.0 == 0 {
        return none.to_string();
    }
    let t = DateTime::from_unix_ms(t.0);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// `2026-11-24 (Tue) 21:01:40` (UTC).
fn dt_long(t: Dt, none: &str) -> String {
    if t.0 == 0 {
        return none.to_string();
    }
    let t = DateTime::from_unix_ms(t.0);
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
    match v.trim().to_ascii_lowercase().as_str() {
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

/// An address parameter where `none` (or nothing) means unset.
fn parse_ip_or_none(name: &str, v: &str) -> Result<std::net::Ipv4Addr, CmdError> {
    if v.trim().is_empty() || v.trim().eq_ignore_ascii_case("none") {
        Ok(std::net::Ipv4Addr::UNSPECIFIED)
    } else {
        parse_ip(name, v)
    }
}

fn mac_text(mac: &[u8]) -> String {
    etherhub_admin::format_mac(mac)
}

fn parse_mac(v: &str) -> Result<Vec<u8>, CmdError> {
    etherhub_admin::parse_mac(v)
        .map(|m| m.to_vec())
        .ok_or_else(|| CmdError::usage("/MAC must be a MAC address like 00-AC-01-23-45-67.".into()))
}

fn traffic_rows(t: &mut Table, tr: &Traffic) {
    let rows = [
        (
            "Outgoing Unicast Packets",
            tr.send_unicast_count,
            " packets",
        ),
        (
            "Outgoing Unicast Total Size",
            tr.send_unicast_bytes,
            " bytes",
        ),
        (
            "Outgoing Broadcast Packets",
            tr.send_broadcast_count,
            " packets",
        ),
        (
            "Outgoing Broadcast Total Size",
            tr.send_broadcast_bytes,
            " bytes",
        ),
        (
            "Incoming Unicast Packets",
            tr.recv_unicast_count,
            " packets",
        ),
        (
            "Incoming Unicast Total Size",
            tr.recv_unicast_bytes,
            " bytes",
        ),
        (
            "Incoming Broadcast Packets",
            tr.recv_broadcast_count,
            " packets",
        ),
        (
            "Incoming Broadcast Total Size",
            tr.recv_broadcast_bytes,
            " bytes",
        ),
    ];
    for (label, v, unit) in rows {
        t.row(&[label.to_string(), format!("{}{unit}", num(v))]);
    }
}

fn server_type(t: u32) -> &'static str {
    match t {
        1 => "Cluster Controller",
        2 => "Cluster Member Server",
        _ => "Standalone Server",
    }
}

fn hub_type(t: u32) -> &'static str {
    match t {
        1 => "Static Hub",
        2 => "Dynamic Hub",
        _ => "Standalone",
    }
}

fn auth_type(t: u32) -> &'static str {
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
    let v: ServerInfo = ctx.rpc("GetServerInfo", &Empty {})?;
    let mut t = Table::standard();
    t.row(&["Product Name", &v.product_name]);
    t.row(&["Version", &v.version_string]);
    t.row(&["Build", &v.build_info]);
    t.row(&["Host Name", &v.host_name]);
    t.row(&["Server Type", server_type(v.server_type)]);
    t.row(&["Type of Operating System", &v.os_system_name]);
    t.row(&["Product Name of Operating System", &v.os_product_name]);
    t.row(&["Operating System Vendor", &v.os_vendor_name]);
    t.row(&["Operating System Version", &v.os_version]);
    t.row(&["Type of OS Kernel", &v.kernel_name]);
    t.row(&["Version of OS Kernel", &v.kernel_version]);
    ctx.table(&t, false);
    Ok(())
}

fn server_status(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v: ServerStatus = ctx.rpc("GetServerStatus", &Empty {})?;
    let mut t = Table::standard();
    t.row(&["Server Type", server_type(v.server_type)]);
    t.row(&[
        "Number of Active Sockets".into(),
        num(u64::from(v.num_tcp_connections)),
    ]);
    t.row(&["Number of Virtual Hubs".into(), num(u64::from(v.num_hubs))]);
    t.row(&["Number of Sessions".into(), num(u64::from(v.num_sessions))]);
    t.row(&[
        "Number of MAC Address Tables".into(),
        num(u64::from(v.num_mac_tables)),
    ]);
    t.row(&[
        "Number of IP Address Tables".into(),
        num(u64::from(v.num_ip_tables)),
    ]);
    t.row(&["Number of Users".into(), num(u64::from(v.num_users))]);
    t.row(&["Number of Groups".into(), num(u64::from(v.num_groups))]);
    t.row(&[
        "Using Client Connection Licenses (This Server)".into(),
        num(u64::from(v.assigned_client_licenses)),
    ]);
    t.row(&[
        "Using Bridge Connection Licenses (This Server)".into(),
        num(u64::from(v.assigned_bridge_licenses)),
    ]);
    traffic_rows(&mut t, &v.traffic.0);
    t.row(&["Server Started at".into(), dt_long(v.start_time, "(None)")]);
    t.row(&[
        "Current Time".into(),
        format!(
            "{}.{:03}",
            dt_short(v.current_time, "(None)"),
            v.current_time.0 % 1000
        ),
    ]);
    t.row(&[
        "64 bit High-Precision Logical System Clock".into(),
        v.current_tick.to_string(),
    ]);
    // Etherhub's health of the data plane
    t.row(&[
        "Data Plane Last Moved a Packet at".into(),
        dt_long(v.data_plane_last_packet, "(Never)"),
    ]);
    t.row(&[
        "Data Plane Faults Contained".into(),
        num(v.data_plane_faults),
    ]);
    if !v.data_plane_last_fault.is_empty() {
        t.row(&["Last Contained Fault", &v.data_plane_last_fault]);
    }
    // Etherhub's counters of SoftEther's own sessions and of stream connections
    for (label, n) in [
        ("SoftEther VPN Logins", v.softether_logins),
        ("SoftEther VPN Logins Refused", v.softether_logins_refused),
        ("SoftEther Blocks Dropped", v.softether_blocks_dropped),
        (
            "SoftEther Connections Ended for Bad Framing",
            v.softether_streams_broken,
        ),
        (
            "SoftEther Session Keys From Other Addresses",
            v.softether_foreign_joins,
        ),
        (
            "Stream Writes Dropped (Slow Clients)",
            v.stream_writes_dropped,
        ),
    ] {
        t.row(&[label.into(), num(n)]);
    }
    ctx.table(&t, false);
    Ok(())
}

fn hub_create(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let h = Hub {
        name: p.get("").unwrap_or_default().to_string(),
        admin_password: p.get("PASSWORD").unwrap_or("").to_string(),
        ..Hub::default()
    };
    let _: Hub = ctx.rpc("CreateHub", &h)?;
    Ok(())
}

fn hub_delete(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let h = HubName {
        hub: p.get("").unwrap_or_default().to_string(),
    };
    let _: HubName = ctx.rpc("DeleteHub", &h)?;
    Ok(())
}

fn hub_list(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v: HubList = ctx.rpc("EnumHub", &Empty {})?;
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
    for h in &v.hubs {
        let tr = h.traffic.0;
        t.row(&[
            h.name.clone(),
            if h.online { "Online" } else { "Offline" }.to_string(),
            hub_type(h.hub_type).to_string(),
            num(u64::from(h.num_users)),
            num(u64::from(h.num_groups)),
            num(u64::from(h.num_sessions)),
            num(u64::from(h.num_mac_tables)),
            num(u64::from(h.num_ip_tables)),
            num(u64::from(h.num_login)),
            dt_short(h.last_login_time, "(None)"),
            dt_short(h.last_comm_time, "(None)"),
            num(tr.total_bytes()),
            num(tr.total_packets()),
        ]);
    }
    ctx.table(&t, true);
    Ok(())
}

fn hub_select(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    match p.get("").filter(|n| !n.is_empty()) {
        None => {
            ctx.hub = None;
            ctx.out
                .push_str("The Virtual Hub selection has been unselected.\n");
        }
        Some(name) => {
            let v: Hub = ctx.rpc("GetHub", &HubName { hub: name.into() })?;
            let real = if v.name.is_empty() {
                name.to_string()
            } else {
                v.name
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
    let v: Hub = ctx.rpc("GetHub", &HubName { hub: hub.clone() })?;
    if !ctx.csv {
        ctx.out
            .push_str(&format!("Options Setting List of Virtual Hub \"{hub}\"\n"));
    }
    let mut t = Table::standard();
    t.row(&[
        "Enumeration of Virtual Hub for Anonymous User",
        if v.no_enum { "Deny" } else { "Allow" },
    ]);
    t.row(&[
        "Max Number of Sessions".into(),
        if v.max_session == 0 {
            "Infinite".into()
        } else {
            v.max_session.to_string()
        },
    ]);
    t.row(&["Status", if v.online { "Online" } else { "Offline" }]);
    t.row(&["Virtual Hub Type", hub_type(v.hub_type)]);
    t.row(&["Default gateway".into(), v.default_gateway.0.to_string()]);
    t.row(&["Default subnet".into(), v.default_subnet.0.to_string()]);
    ctx.table(&t, false);
    Ok(())
}

fn set_static_network(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    let gw = parse_ip("GATEWAY", p.get("GATEWAY").unwrap_or_default())?;
    let mask = parse_ip("SUBNET", p.get("SUBNET").unwrap_or_default())?;
    let mut h: Hub = ctx.rpc("GetHub", &HubName { hub })?;
    h.default_gateway = IpU32(gw);
    h.default_subnet = IpU32(mask);
    h.admin_password.clear();
    let _: Hub = ctx.rpc("SetHub", &h)?;
    Ok(())
}

/// vpncmd writes `none` for an empty optional text.
fn none_empty(v: Option<&str>) -> String {
    v.filter(|v| !v.eq_ignore_ascii_case("none"))
        .unwrap_or("")
        .to_string()
}

fn user_create(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    // Like vpncmd, a new user has password authentication with no usable password until
    // UserPasswordSet.
    let u = User {
        hub: ctx.hub()?,
        name: p.get("").unwrap_or_default().to_string(),
        group_name: none_empty(p.get("GROUP")),
        real_name: none_empty(p.get("REALNAME")),
        note: none_empty(p.get("NOTE")),
        auth_type: 1,
        ..User::default()
    };
    let _: User = ctx.rpc("CreateUser", &u)?;
    Ok(())
}

fn user_password_set(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    let name = p.get("").unwrap_or_default().to_string();
    let mut u: User = ctx.rpc("GetUser", &HubObject { hub, name })?;
    u.auth_type = 1;
    u.password = p.get("PASSWORD").unwrap_or_default().to_string();
    let _: User = ctx.rpc("SetUser", &u)?;
    Ok(())
}

fn user_list(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v: UserList = ctx.rpc("EnumUser", &ctx.hub_name()?)?;
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
    for u in &v.users {
        let tr = u.traffic.0;
        t.row(&[
            u.name.clone(),
            u.real_name.clone(),
            if u.group_name.is_empty() {
                "-".to_string()
            } else {
                u.group_name.clone()
            },
            u.note.clone(),
            auth_type(u.auth_type).to_string(),
            num(u64::from(u.num_login)),
            dt_short(u.last_login_time, "(None)"),
            dt_short(u.expires, "No Expiration"),
            num(tr.total_bytes()),
            num(tr.total_packets()),
        ]);
    }
    ctx.table(&t, true);
    Ok(())
}

fn user_get(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let req = HubObject {
        hub: ctx.hub()?,
        name: p.get("").unwrap_or_default().to_string(),
    };
    let v: User = ctx.rpc("GetUser", &req)?;
    let mut t = Table::standard();
    t.row(&["User Name", &v.name]);
    t.row(&["Full Name", &v.real_name]);
    t.row(&["Description", &v.note]);
    if !v.group_name.is_empty() {
        t.row(&["Group Name", &v.group_name]);
    }
    t.row(&["Expiration Date".into(), dt_long(v.expire_time, "(None)")]);
    t.row(&["Auth Type", auth_type(v.auth_type)]);
    t.row(&["---", "---"]);
    t.row(&["Created on".into(), dt_long(v.created_time, "(None)")]);
    t.row(&["Updated on".into(), dt_long(v.updated_time, "(None)")]);
    traffic_rows(&mut t, &v.traffic.0);
    t.row(&["Number of Logins".into(), num(u64::from(v.num_login))]);
    ctx.table(&t, false);
    if v.use_policy {
        ctx.out.push_str("\nSecurity Policy Set for this User\n");
        policy_table(ctx, &v.policy);
    }
    Ok(())
}

fn user_anonymous_set(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let mut u = ctx.get_user(p)?;
    u.auth_type = 0;
    u.password.clear();
    let _: User = ctx.rpc("SetUser", &u)?;
    Ok(())
}

/// vpncmd's date: six numbers (year month day hour minute second) apart by any of `:/,. `
/// (read as UTC, the zone Etherhub's tools print in), or nothing / `none` for no expiry.
fn parse_expiry(v: &str) -> Result<u64, CmdError> {
    let v = v.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("none") {
        return Ok(0);
    }
    let bad = || {
        CmdError::usage(format!(
            "The date and time {v:?} is not valid: specify it as \"2026/12/31 23:59:59\"."
        ))
    };
    let n: Vec<u32> = v
        .split(|c: char| ":/,. -".contains(c))
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [year, month, day, hour, minute, second] = n[..] else {
        return Err(bad());
    };
    if !(1000..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(bad());
    }
    Ok(DateTime {
        year: i64::from(year),
        month,
        day,
        hour,
        minute,
        second,
        millis: 0,
        weekday: 0,
    }
    .to_unix_ms())
}

fn user_expires_set(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let expires = parse_expiry(p.get("EXPIRES").unwrap_or_default())?;
    let mut u = ctx.get_user(p)?;
    u.expire_time = Dt(expires);
    let _: User = ctx.rpc("SetUser", &u)?;
    Ok(())
}

/// UserPolicySet and GroupPolicySet: the object's policy (or the default one, when it has
/// none) with one item changed.
fn edit_policy(fields: &PolicyFields, p: &CmdParams) -> Result<PolicyFields, CmdError> {
    let mut policy = fields.policy.unwrap_or_default();
    let name = p.get("NAME").unwrap_or_default();
    policy
        .set_named(name, p.get("VALUE").unwrap_or_default())
        .map_err(|e| CmdError::usage(capitalized(&e.to_string())))?;
    Ok(PolicyFields::of(Some(policy)))
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A user or a group: what carries a policy.
trait PolicyHolder: Serialize + DeserializeOwned {
    const GET: &'static str;
    const SET: &'static str;
    fn policy(&mut self) -> (&mut bool, &mut PolicyFields);
}

impl PolicyHolder for User {
    const GET: &'static str = "GetUser";
    const SET: &'static str = "SetUser";
    fn policy(&mut self) -> (&mut bool, &mut PolicyFields) {
        (&mut self.use_policy, &mut self.policy)
    }
}

impl PolicyHolder for Group {
    const GET: &'static str = "GetGroup";
    const SET: &'static str = "SetGroup";
    fn policy(&mut self) -> (&mut bool, &mut PolicyFields) {
        (&mut self.use_policy, &mut self.policy)
    }
}

/// UserPolicySet/GroupPolicySet (`set`: one item changed) and UserPolicyRemove/
/// GroupPolicyRemove: the object read, its policy changed, written back.
fn change_policy<T: PolicyHolder>(
    ctx: &mut Ctx<'_>,
    p: &CmdParams,
    set: bool,
) -> Result<(), CmdError> {
    let req = HubObject {
        hub: ctx.hub()?,
        name: p.get("").unwrap_or_default().to_string(),
    };
    let mut o: T = ctx.rpc(T::GET, &req)?;
    let (use_policy, fields) = o.policy();
    *fields = if set {
        edit_policy(fields, p)?
    } else {
        PolicyFields::default()
    };
    *use_policy = set;
    let _: T = ctx.rpc(T::SET, &o)?;
    Ok(())
}

fn user_policy_set(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    change_policy::<User>(ctx, p, true)
}

fn user_policy_remove(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    change_policy::<User>(ctx, p, false)
}

fn group_create(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let g = Group {
        hub: ctx.hub()?,
        name: p.get("").unwrap_or_default().to_string(),
        real_name: none_empty(p.get("REALNAME")),
        note: none_empty(p.get("NOTE")),
        ..Group::default()
    };
    let _: Group = ctx.rpc("CreateGroup", &g)?;
    Ok(())
}

fn group_set(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let mut g = ctx.get_group(p)?;
    g.real_name = none_empty(p.get("REALNAME"));
    g.note = none_empty(p.get("NOTE"));
    let _: Group = ctx.rpc("SetGroup", &g)?;
    Ok(())
}

fn group_delete(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let req = HubObject {
        hub: ctx.hub()?,
        name: p.get("").unwrap_or_default().to_string(),
    };
    let _: HubObject = ctx.rpc("DeleteGroup", &req)?;
    Ok(())
}

fn group_list(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v: GroupList = ctx.rpc("EnumGroup", &ctx.hub_name()?)?;
    let mut t = Table::standard();
    for (i, g) in v.groups.iter().enumerate() {
        if i > 0 {
            t.row(&["---", "---"]);
        }
        t.row(&["Group Name", &g.name]);
        t.row(&["Full Name", &g.real_name]);
        t.row(&["Description", &g.note]);
        t.row(&["Num Users".into(), num(u64::from(g.num_users))]);
    }
    ctx.table(&t, false);
    Ok(())
}

/// vpncmd's policy table: every item, its title and its value.
fn policy_table(ctx: &mut Ctx<'_>, fields: &PolicyFields) {
    let Some(policy) = fields.policy else { return };
    let mut t = Table::new(&[
        "Policy name",
        "Simple description of policy",
        "Setting value",
    ]);
    for (id, item) in etherhub_admin::policy::ITEMS.iter().enumerate() {
        t.row(&[
            item.name.to_string(),
            item.title.to_string(),
            policy.format(id),
        ]);
    }
    ctx.table(&t, false);
}

fn group_get(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let g = ctx.get_group(p)?;
    let mut t = Table::standard();
    t.row(&["Group Name", &g.name]);
    t.row(&["Full Name", &g.real_name]);
    t.row(&["Description", &g.note]);
    ctx.table(&t, false);
    if g.use_policy {
        ctx.out
            .push_str("\nThis is the security policy that is set for this group.\n");
        policy_table(ctx, &g.policy);
    }
    let users: UserList = ctx.rpc("EnumUser", &ctx.hub_name()?)?;
    let members: Vec<&UserItem> = users
        .users
        .iter()
        .filter(|u| u.group_name.eq_ignore_ascii_case(&g.name))
        .collect();
    if !members.is_empty() {
        ctx.out
            .push_str("\nThis is a list of user names of users who are assigned to this group.\n");
        for u in members {
            ctx.out.push_str(&format!(" {}\n", u.name));
        }
        ctx.out.push('\n');
    }
    Ok(())
}

fn group_join(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let req = HubObject {
        hub: ctx.hub()?,
        name: p.get("USERNAME").unwrap_or_default().to_string(),
    };
    let mut u: User = ctx.rpc("GetUser", &req)?;
    u.group_name = p.get("").unwrap_or_default().to_string();
    let _: User = ctx.rpc("SetUser", &u)?;
    Ok(())
}

fn group_unjoin(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let mut u = ctx.get_user(p)?;
    u.group_name.clear();
    let _: User = ctx.rpc("SetUser", &u)?;
    Ok(())
}

fn group_policy_set(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    change_policy::<Group>(ctx, p, true)
}

fn group_policy_remove(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    change_policy::<Group>(ctx, p, false)
}

/// Every policy item with its title; or one item's range and default.
fn policy_list(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    use etherhub_admin::policy::{find, format_value, range_text, ITEMS};
    let name = p.get("").unwrap_or_default();
    if name.is_empty() {
        let mut t = Table::new(&["Policy name", "Simple description of policy"]);
        for item in ITEMS.iter() {
            t.row(&[item.name.to_string(), item.title.to_string()]);
        }
        ctx.table(&t, false);
        return Ok(());
    }
    let Some(id) = find(name) else {
        ctx.out.push_str("The specified policy name is invalid.\n");
        return Ok(());
    };
    let item = &ITEMS[id];
    let default = etherhub_admin::policy::Policy::default().0[id];
    ctx.out.push_str(&format!(
        "[Policy Name]\n {}\n\n[Simple Description of Policy]\n {}\n\n[Range of Settable Values]\n {}\n\n[Default Value]\n {}\n\n",
        item.name,
        item.title,
        range_text(id),
        format_value(id, default)
    ));
    Ok(())
}

/// `ip/mask`, the mask dotted or as a prefix length; `v6` for IPv6.
fn parse_ip_mask(
    name: &str,
    v: &str,
    v6: bool,
) -> Result<(std::net::IpAddr, std::net::IpAddr), CmdError> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let bad = || {
        CmdError::usage(if v6 {
            format!(
                "/{name}: specify an IPv6 address and mask like 2001:db8::/32 (\"::/0\" for all)."
            )
        } else {
            format!("/{name}: specify an IP address and mask like 192.168.0.0/24 or 192.168.0.0/255.255.255.0 (\"0.0.0.0/0\" for all).")
        })
    };
    let (ip, mask) = v.trim().split_once('/').ok_or_else(bad)?;
    let ip: IpAddr = ip.trim().parse().map_err(|_| bad())?;
    if ip.is_ipv6() != v6 {
        return Err(bad());
    }
    let mask = mask.trim();
    let mask = match mask.parse::<u32>() {
        Ok(bits) if !v6 && bits <= 32 => IpAddr::V4(Ipv4Addr::from(if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        })),
        Ok(bits) if v6 && bits <= 128 => IpAddr::V6(Ipv6Addr::from(if bits == 0 {
            0
        } else {
            u128::MAX << (128 - bits)
        })),
        Ok(_) => return Err(bad()),
        Err(_) => {
            let m: IpAddr = mask.parse().map_err(|_| bad())?;
            if m.is_ipv6() != v6 {
                return Err(bad());
            }
            m
        }
    };
    Ok((ip, mask))
}

/// vpncmd's protocol: a number, or a prefix of ip, tcp, udp, icmpv4, icmpv6 (in that order).
fn parse_protocol(v: &str) -> Result<u32, CmdError> {
    let v = v.trim().to_ascii_lowercase();
    if v.is_empty() {
        return Ok(0);
    }
    for (name, n) in [
        ("ip", 0),
        ("tcp", 6),
        ("udp", 17),
        ("icmpv4", 1),
        ("icmpv6", 58),
    ] {
        if name.starts_with(&v) {
            return Ok(n);
        }
    }
    match v.parse::<u32>() {
        Ok(n) if n <= 255 => Ok(n),
        _ => Err(CmdError::usage(
            "/PROTOCOL: specify tcp, udp, icmpv4, icmpv6, ip or a protocol number 0-255.".into(),
        )),
    }
}

/// `N` or `A-B` (empty: any).
fn parse_port_range(name: &str, v: &str) -> Result<(u32, u32), CmdError> {
    let v = v.trim();
    if v.is_empty() {
        return Ok((0, 0));
    }
    let bad = || {
        CmdError::usage(format!(
            "/{name}: specify a port like 80 or a range like 1000-2000."
        ))
    };
    let nums: Vec<u32> = v
        .split(['-', ' ', '\t'])
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let (a, b) = match nums[..] {
        [a] => (a, a),
        [a, b] => (a, b),
        _ => return Err(bad()),
    };
    if a > b || b > 65535 || (a == 0 && b != 0) {
        return Err(bad());
    }
    Ok((a, b))
}

/// `mac/mask` (empty: not checked).
fn parse_mac_mask(name: &str, v: &str) -> Result<Option<etherhub_admin::AccessMac>, CmdError> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let bad = || {
        CmdError::usage(format!(
            "/{name}: specify a MAC address and mask like 00-AC-00-11-22-33/FF-FF-FF-FF-FF-FF."
        ))
    };
    let (m, k) = v.split_once('/').ok_or_else(bad)?;
    let m = etherhub_admin::parse_mac(m).ok_or_else(bad)?;
    let k = etherhub_admin::parse_mac(k).ok_or_else(bad)?;
    Ok(Some((m, k)))
}

/// Established or Unestablished (a prefix of either; empty: not checked). Unlike vpncmd
/// 5.01, which reads these the wrong way round, each means what it says.
fn parse_tcp_state(v: &str) -> Result<Option<bool>, CmdError> {
    let v = v.trim().to_ascii_lowercase();
    if v.is_empty() {
        Ok(None)
    } else if "established".starts_with(&v) {
        Ok(Some(true))
    } else if "unestablished".starts_with(&v) {
        Ok(Some(false))
    } else {
        Err(CmdError::usage(
            "/TCPSTATE: specify Established or Unestablished.".into(),
        ))
    }
}

fn access_add(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    access_add_as(ctx, p, false)
}

fn access_add6(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    access_add_as(ctx, p, true)
}

fn access_add_as(ctx: &mut Ctx<'_>, p: &CmdParams, v6: bool) -> Result<(), CmdError> {
    // vpncmd reads `none` and `null` as nothing
    let get = |n: &str| {
        p.get(n)
            .filter(|v| {
                !v.trim().eq_ignore_ascii_case("none") && !v.trim().eq_ignore_ascii_case("null")
            })
            .unwrap_or_default()
    };
    let action = get("").trim().to_ascii_lowercase();
    // vpncmd: pass for a nonzero number or p/y/t; anything else discards
    let pass = action.parse::<u32>().is_ok_and(|n| n != 0) || action.starts_with(['p', 'y', 't']);
    let (src_ip, src_mask) = parse_ip_mask("SRCIP", get("SRCIP"), v6)?;
    let (dst_ip, dst_mask) = parse_ip_mask("DESTIP", get("DESTIP"), v6)?;
    let (sp, dp) = (
        parse_port_range("SRCPORT", get("SRCPORT"))?,
        parse_port_range("DESTPORT", get("DESTPORT"))?,
    );
    let src_mac = parse_mac_mask("SRCMAC", get("SRCMAC"))?;
    let dst_mac = parse_mac_mask("DESTMAC", get("DESTMAC"))?;
    let tcp = parse_tcp_state(get("TCPSTATE"))?;
    let num = |n: &str| get(n).trim().parse::<u32>().unwrap_or(0);
    let six = |a: std::net::IpAddr| match a {
        std::net::IpAddr::V6(a) => Bin(a.octets().to_vec()),
        std::net::IpAddr::V4(_) => Bin::default(),
    };
    let mut a = AccessEntry {
        note: none_empty(p.get("MEMO")),
        active: true,
        priority: num("PRIORITY"),
        discard: !pass,
        ipv6: v6,
        protocol: parse_protocol(get("PROTOCOL"))?,
        src_port_start: sp.0,
        src_port_end: sp.1,
        dst_port_start: dp.0,
        dst_port_end: dp.1,
        src_user: none_empty(p.get("SRCUSERNAME")),
        dst_user: none_empty(p.get("DESTUSERNAME")),
        check_tcp_state: tcp.is_some(),
        established: tcp.unwrap_or(false),
        delay: num("DELAY"),
        jitter: num("JITTER"),
        loss: num("LOSS"),
        redirect_url: none_empty(p.get("REDIRECTURL")),
        ..AccessEntry::default()
    };
    if v6 {
        (a.src_ip6, a.src_mask6, a.dst_ip6, a.dst_mask6) =
            (six(src_ip), six(src_mask), six(dst_ip), six(dst_mask));
    } else {
        (a.src_ip, a.src_mask, a.dst_ip, a.dst_mask) =
            (Ip(src_ip), Ip(src_mask), Ip(dst_ip), Ip(dst_mask));
    }
    if let Some((m, k)) = src_mac {
        (a.check_src_mac, a.src_mac, a.src_mac_mask) = (true, Bin(m.to_vec()), Bin(k.to_vec()));
    }
    if let Some((m, k)) = dst_mac {
        (a.check_dst_mac, a.dst_mac, a.dst_mac_mask) = (true, Bin(m.to_vec()), Bin(k.to_vec()));
    }
    let req = AddAccess {
        hub: ctx.hub()?,
        access: a,
        ..AddAccess::default()
    };
    let _: AccessList = ctx.rpc("AddAccess", &req)?;
    Ok(())
}

/// vpncmd's summary of a rule: `(ipv4) SrcIPv4=192.168.0.0/24, Protocol=TCP, DstPort=80`.
fn access_contents(a: &AccessEntry) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut l3 = false;
    let prefix = |m: std::net::IpAddr| -> String {
        let bits = match m {
            std::net::IpAddr::V4(m) => {
                let v = u32::from(m);
                (v.leading_ones() + v.trailing_zeros() == 32).then(|| v.leading_ones())
            }
            std::net::IpAddr::V6(m) => {
                let v = u128::from(m);
                (v.leading_ones() + v.trailing_zeros() == 128).then(|| v.leading_ones())
            }
        };
        bits.map_or(m.to_string(), |b| b.to_string())
    };
    let addr = |ip: std::net::IpAddr, mask: std::net::IpAddr| {
        (!ip.is_unspecified() || !mask.is_unspecified()).then(|| format!("{ip}/{}", prefix(mask)))
    };
    let v6 = |b: &Bin| {
        <[u8; 16]>::try_from(b.0.as_slice())
            .map(|o| std::net::IpAddr::V6(o.into()))
            .unwrap_or(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))
    };
    let (tag, src, dst) = if a.ipv6 {
        (
            "IPv6",
            addr(v6(&a.src_ip6), v6(&a.src_mask6)),
            addr(v6(&a.dst_ip6), v6(&a.dst_mask6)),
        )
    } else {
        (
            "IPv4",
            addr(a.src_ip.0, a.src_mask.0),
            addr(a.dst_ip.0, a.dst_mask.0),
        )
    };
    if let Some(s) = src {
        parts.push(format!("Src{tag}={s}"));
        l3 = true;
    }
    if let Some(d) = dst {
        parts.push(format!("Dst{tag}={d}"));
        l3 = true;
    }
    if a.protocol != 0 {
        let name = match a.protocol {
            1 => "ICMPv4".to_string(),
            6 => "TCP".to_string(),
            17 => "UDP".to_string(),
            58 => "ICMPv6".to_string(),
            n => format!("({n})"),
        };
        parts.push(format!("Protocol={name}"));
        l3 = true;
    }
    for (label, s, e) in [
        ("SrcPort", a.src_port_start, a.src_port_end),
        ("DstPort", a.dst_port_start, a.dst_port_end),
    ] {
        if s != 0 {
            parts.push(if e <= s {
                format!("{label}={s}")
            } else {
                format!("{label}={s}-{e}")
            });
            l3 = true;
        }
    }
    if !a.src_user.is_empty() {
        parts.push(format!("SrcUser={}", a.src_user));
    }
    if !a.dst_user.is_empty() {
        parts.push(format!("DstUser={}", a.dst_user));
    }
    let mac = |b: &Bin| mac_text(&b.0);
    if a.check_src_mac {
        parts.push(format!(
            "SrcMac={}/{}",
            mac(&a.src_mac),
            mac(&a.src_mac_mask)
        ));
    }
    if a.check_dst_mac {
        parts.push(format!(
            "DstMac={}/{}",
            mac(&a.dst_mac),
            mac(&a.dst_mac_mask)
        ));
    }
    if a.check_tcp_state {
        parts.push(
            if a.established {
                "Established"
            } else {
                "Unestablished"
            }
            .to_string(),
        );
        l3 = true;
    }
    if !a.discard {
        for (label, v) in [("Delay", a.delay), ("Jitter", a.jitter), ("Loss", a.loss)] {
            if v != 0 {
                parts.push(format!("{label}={v}"));
            }
        }
    }
    if !a.redirect_url.is_empty() {
        parts.push(format!("RedirectUrl={}", a.redirect_url));
    }
    let kind = match (l3, a.ipv6) {
        (true, true) => "(ipv6) ",
        (true, false) => "(ipv4) ",
        (false, _) => "(ether) ",
    };
    if parts.is_empty() {
        format!("{kind}*")
    } else {
        format!("{kind}{}", parts.join(", "))
    }
}

fn access_list(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v: AccessList = ctx.rpc("EnumAccess", &ctx.hub_name()?)?;
    let mut t = Table::new(&[
        "ID",
        "Action",
        "Status",
        "Priority",
        "Unique ID",
        "Contents",
        "Memo",
        "Matches",
    ]);
    for a in &v.list {
        t.row(&[
            a.id.to_string(),
            if a.discard { "Discard" } else { "Pass" }.to_string(),
            if a.active { "Enable" } else { "Disable" }.to_string(),
            a.priority.to_string(),
            a.unique_id.to_string(),
            access_contents(a),
            a.note.clone(),
            num(a.matches),
        ]);
    }
    ctx.table(&t, false);
    Ok(())
}

fn access_delete(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let id = parse_rule_id(p)?;
    let req = DeleteAccess {
        hub: ctx.hub()?,
        id,
    };
    let _: DeleteAccess = ctx.rpc("DeleteAccess", &req)?;
    Ok(())
}

fn parse_rule_id(p: &CmdParams) -> Result<u32, CmdError> {
    p.get("")
        .unwrap_or_default()
        .trim()
        .parse()
        .map_err(|_| CmdError::usage("Specify the rule's ID (or Unique ID) as a number.".into()))
}

fn access_enable(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    access_set_active(ctx, p, true)
}

fn access_disable(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    access_set_active(ctx, p, false)
}

fn access_set_active(ctx: &mut Ctx<'_>, p: &CmdParams, active: bool) -> Result<(), CmdError> {
    let id = parse_rule_id(p)?;
    let mut v: AccessList = ctx.rpc("EnumAccess", &ctx.hub_name()?)?;
    let Some(rule) = v.list.iter_mut().find(|a| a.id == id) else {
        return Err(CmdError {
            code: 29,
            message: "Error occurred. (Error code: 29)\nObject not found.".into(),
        });
    };
    rule.active = active;
    let _: AccessList = ctx.rpc("SetAccessList", &v)?;
    Ok(())
}

fn user_delete(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let req = HubObject {
        hub: ctx.hub()?,
        name: p.get("").unwrap_or_default().to_string(),
    };
    let _: HubObject = ctx.rpc("DeleteUser", &req)?;
    Ok(())
}

fn session_list(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v: SessionList = ctx.rpc("EnumSession", &ctx.hub_name()?)?;
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
    for x in &v.sessions {
        let none = || "None".to_string();
        let (location, host, tcp) = if x.securenat_mode {
            ("SecureNAT Session", "Virtual Host".to_string(), none())
        } else if x.bridge_mode {
            (
                "Local Bridge Session",
                "Ethernet Bridge".to_string(),
                none(),
            )
        } else if x.layer3_mode {
            (
                "Local Session",
                "Virtual Layer 3 Switch".to_string(),
                none(),
            )
        } else if x.link_mode {
            ("Cascade Connection", "Virtual Host".to_string(), none())
        } else {
            (
                "Local Session",
                x.hostname.clone(),
                format!("{} / {}", x.current_num_tcp, x.max_num_tcp),
            )
        };
        t.row(&[
            x.name.clone(),
            if x.vlan_id == 0 {
                "-".into()
            } else {
                x.vlan_id.to_string()
            },
            location.to_string(),
            x.username.clone(),
            host,
            tcp,
            num(x.packet_size),
            num(x.packet_num),
        ]);
    }
    ctx.table(&t, true);
    Ok(())
}

fn session_get(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let req = HubObject {
        hub: ctx.hub()?,
        name: p.get("").unwrap_or_default().to_string(),
    };
    let v: SessionStatus = ctx.rpc("GetSessionStatus", &req)?;
    let mut t = Table::standard();
    t.row(&["Session Name", &v.name]);
    t.row(&["User Name (Authentication)", &v.username]);
    t.row(&["User Name (Database)", &v.real_username]);
    t.row(&["Group Name", &v.group_name]);
    t.row(&["Client IP Address".into(), v.client_ip.0.to_string()]);
    t.row(&["Client Host Name", &v.client_hostname]);
    t.row(&[
        "Connection Started at".into(),
        dt_long(v.start_time, "(None)"),
    ]);
    t.row(&[
        "Current Session has been Established since".into(),
        dt_long(v.current_connection_time, "(None)"),
    ]);
    t.row(&["Physical Underlay Protocol", &v.underlay_protocol]);
    t.row(&[
        "Use of Encryption".into(),
        if v.use_encrypt {
            format!("Enabled (Algorithm: {})", v.cipher_name)
        } else {
            "Disabled (No Encryption)".into()
        },
    ]);
    t.row(&[
        "Use of Compression",
        if v.use_compress {
            "Enabled"
        } else {
            "Disabled (No Compression)"
        },
    ]);
    t.row(&[
        "Number of TCP Connections".into(),
        num(u64::from(v.num_tcp_connections)),
    ]);
    t.row(&[
        "Outgoing Data Size".into(),
        format!("{} bytes", num(v.total_send_size)),
    ]);
    t.row(&[
        "Incoming Data Size".into(),
        format!("{} bytes", num(v.total_recv_size)),
    ]);
    traffic_rows(&mut t, &v.traffic.0);
    t.row(&["Client Product Name", &v.client_product_name]);
    t.row(&["Client OS Name", &v.client_os_name]);
    ctx.table(&t, false);
    Ok(())
}

fn session_disconnect(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let req = HubObject {
        hub: ctx.hub()?,
        name: p.get("").unwrap_or_default().to_string(),
    };
    let _: HubObject = ctx.rpc("DeleteSession", &req)?;
    Ok(())
}

fn ip_table(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let v: IpTable = ctx.rpc("EnumIpTable", &ctx.hub_name()?)?;
    let mut t = Table::new(&[
        "ID",
        "Session Name",
        "IP Address",
        "Created at",
        "Updated at",
        "Location",
    ]);
    let only = p.get("").filter(|f| !f.is_empty());
    for e in &v.entries {
        if only.is_some_and(|f| !f.eq_ignore_ascii_case(&e.session_name)) {
            continue;
        }
        let ip = e.ip.0.to_string();
        t.row(&[
            e.key.to_string(),
            e.session_name.clone(),
            if e.dhcp_allocated {
                format!("{ip} (DHCP)")
            } else {
                ip
            },
            dt_short(e.created_time, "-"),
            dt_short(e.updated_time, "-"),
            "On This Server".to_string(),
        ]);
    }
    ctx.table(&t, true);
    Ok(())
}

fn mac_table(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let v: MacTable = ctx.rpc("EnumMacTable", &ctx.hub_name()?)?;
    let mut t = Table::new(&[
        "ID",
        "Session Name",
        "VLAN ID",
        "MAC Address",
        "Created at",
        "Updated at",
        "Location",
    ]);
    let only = p.get("").filter(|f| !f.is_empty());
    for e in &v.entries {
        if only.is_some_and(|f| !f.eq_ignore_ascii_case(&e.session_name)) {
            continue;
        }
        t.row(&[
            e.key.to_string(),
            e.session_name.clone(),
            if e.vlan_id == 0 {
                "-".into()
            } else {
                e.vlan_id.to_string()
            },
            mac_text(&e.mac.0),
            dt_short(e.created_time, "-"),
            dt_short(e.updated_time, "-"),
            "On This Server".to_string(),
        ]);
    }
    ctx.table(&t, true);
    Ok(())
}

fn snat_enable(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let _: HubName = ctx.rpc("EnableSecureNAT", &ctx.hub_name()?)?;
    Ok(())
}

fn snat_disable(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let _: HubName = ctx.rpc("DisableSecureNAT", &ctx.hub_name()?)?;
    Ok(())
}

fn nat_option(ctx: &Ctx<'_>) -> Result<SecureNatOption, CmdError> {
    ctx.rpc("GetSecureNATOption", &RpcHubName { hub: ctx.hub()? })
}

fn snat_host_get(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v = nat_option(ctx)?;
    let mut t = Table::standard();
    t.row(&["MAC Address".into(), mac_text(&v.mac.0)]);
    t.row(&["IP Address".into(), v.ip.0.to_string()]);
    t.row(&["Subnet Mask".into(), v.mask.0.to_string()]);
    ctx.table(&t, false);
    Ok(())
}

fn snat_host_set(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let mut o = nat_option(ctx)?;
    let given = |name: &str| {
        p.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("none"))
    };
    if let Some(mac) = given("MAC") {
        o.mac = Bin(parse_mac(mac)?);
    }
    if let Some(ip) = given("IP") {
        o.ip = Ip::from(parse_ip("IP", ip)?);
    }
    if let Some(mask) = given("MASK") {
        o.mask = Ip::from(parse_ip("MASK", mask)?);
    }
    let _: SecureNatOption = ctx.rpc("SetSecureNATOption", &o)?;
    Ok(())
}

fn snat_status(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let hub = ctx.hub()?;
    let v: SecureNatStatus = ctx.rpc("GetSecureNATStatus", &HubName { hub: hub.clone() })?;
    let mut t = Table::standard();
    t.row(&["Virtual Hub Name", hub.as_str()]);
    let count = |n: u32, unit: &str| format!("{} {unit}", num(u64::from(n)));
    t.row(&[
        "NAT TCP/IP Sessions".into(),
        count(v.num_tcp_sessions, "Session"),
    ]);
    t.row(&[
        "NAT UDP/IP Sessions".into(),
        count(v.num_udp_sessions, "Session"),
    ]);
    t.row(&[
        "NAT ICMP Sessions".into(),
        count(v.num_icmp_sessions, "Session"),
    ]);
    t.row(&[
        "NAT DNS Sessions".into(),
        count(v.num_dns_sessions, "Session"),
    ]);
    t.row(&[
        "Allocated DHCP Clients".into(),
        count(v.num_dhcp_clients, "Client"),
    ]);
    t.row(&["Kernel-mode NAT is Active", yes_no(v.is_kernel_mode)]);
    t.row(&["Raw IP mode NAT is Active", yes_no(v.is_raw_ip_mode)]);
    ctx.table(&t, false);
    Ok(())
}

fn ipsec_enable(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let v = IpsecServices {
        l2tp_ipsec: parse_yes_no("L2TP", p.get("L2TP").unwrap_or_default())?,
        l2tp_raw: parse_yes_no("L2TPRAW", p.get("L2TPRAW").unwrap_or_default())?,
        etherip_ipsec: parse_yes_no("ETHERIP", p.get("ETHERIP").unwrap_or_default())?,
        secret: p.get("PSK").unwrap_or_default().to_string(),
        default_hub: p.get("DEFAULTHUB").unwrap_or_default().to_string(),
    };
    let _: IpsecServices = ctx.rpc("SetIPsecServices", &v)?;
    Ok(())
}

fn ipsec_get(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v: IpsecServices = ctx.rpc("GetIPsecServices", &IpsecServices::default())?;
    let mut t = Table::standard();
    t.row(&[
        "L2TP over IPsec Server Function Enabled",
        yes_no(v.l2tp_ipsec),
    ]);
    t.row(&["Raw L2TP Server Function Enabled", yes_no(v.l2tp_raw)]);
    t.row(&[
        "EtherIP / L2TPv3 over IPsec Server Function Enabled",
        yes_no(v.etherip_ipsec),
    ]);
    t.row(&["IPsec Pre-Shared Key String", &v.secret]);
    t.row(&["Name of Default Virtual Hub", &v.default_hub]);
    ctx.table(&t, false);
    Ok(())
}

fn nat_get(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v = nat_option(ctx)?;
    let mut t = Table::standard();
    t.row(&["Use Virtual NAT Function", yes_no(v.use_nat)]);
    t.row(&["MTU Value".into(), v.mtu.to_string()]);
    t.row(&[
        "TCP Session Timeout (Seconds)".into(),
        v.nat_tcp_timeout.to_string(),
    ]);
    t.row(&[
        "UDP Session Timeout (Seconds)".into(),
        v.nat_udp_timeout.to_string(),
    ]);
    t.row(&["Save NAT and DHCP Operation Log", yes_no(v.save_log)]);
    ctx.table(&t, false);
    Ok(())
}

fn nat_set(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let mut o = nat_option(ctx)?;
    o.mtu = parse_u32("MTU", p.get("MTU").unwrap_or_default())?;
    o.nat_tcp_timeout = parse_u32("TCPTIMEOUT", p.get("TCPTIMEOUT").unwrap_or_default())?;
    o.nat_udp_timeout = parse_u32("UDPTIMEOUT", p.get("UDPTIMEOUT").unwrap_or_default())?;
    o.save_log = parse_yes_no("LOG", p.get("LOG").unwrap_or_default())?;
    let _: SecureNatOption = ctx.rpc("SetSecureNATOption", &o)?;
    Ok(())
}

fn dhcp_get(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v = nat_option(ctx)?;
    let ip = |a: &Ip| {
        if a.0.is_unspecified() {
            "None".to_string()
        } else {
            a.0.to_string()
        }
    };
    let mut t = Table::standard();
    t.row(&["Use Virtual DHCP Function", yes_no(v.use_dhcp)]);
    t.row(&[
        "Start Distribution Address Band".into(),
        ip(&v.dhcp_lease_start),
    ]);
    t.row(&[
        "End Distribution Address Band".into(),
        ip(&v.dhcp_lease_end),
    ]);
    t.row(&["Subnet Mask".into(), ip(&v.dhcp_subnet_mask)]);
    t.row(&[
        "Lease Limit (Seconds)".into(),
        v.dhcp_expire_secs.to_string(),
    ]);
    t.row(&["Default Gateway Address".into(), ip(&v.dhcp_gateway)]);
    t.row(&["DNS Server Address 1".into(), ip(&v.dhcp_dns)]);
    t.row(&["DNS Server Address 2".into(), ip(&v.dhcp_dns2)]);
    t.row(&["Domain Name", &v.dhcp_domain_name]);
    t.row(&["Save NAT and DHCP Operation Log", yes_no(v.save_log)]);
    t.row(&["Static Routing Table to Push", &v.dhcp_push_routes]);
    ctx.table(&t, false);
    Ok(())
}

fn dhcp_set(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let mut o = nat_option(ctx)?;
    let ip = |name: &str| -> Result<Ip, CmdError> {
        Ok(Ip::from(parse_ip_or_none(
            name,
            p.get(name).unwrap_or_default(),
        )?))
    };
    o.dhcp_lease_start = ip("START")?;
    o.dhcp_lease_end = ip("END")?;
    o.dhcp_subnet_mask = ip("MASK")?;
    o.dhcp_expire_secs = parse_u32("EXPIRE", p.get("EXPIRE").unwrap_or_default())?;
    o.dhcp_gateway = ip("GW")?;
    o.dhcp_dns = ip("DNS")?;
    o.dhcp_dns2 = ip("DNS2")?;
    o.dhcp_domain_name = none_empty(p.get("DOMAIN"));
    o.save_log = parse_yes_no("LOG", p.get("LOG").unwrap_or_default())?;
    if let Some(routes) = p.get("PUSHROUTE") {
        o.dhcp_push_routes = routes.to_string();
        o.apply_dhcp_push_routes = true;
    }
    let _: SecureNatOption = ctx.rpc("SetSecureNATOption", &o)?;
    Ok(())
}

/// Writes `bytes` to `path`, with vpncmd's message when it cannot.
fn save(path: &str, bytes: &[u8]) -> Result<(), CmdError> {
    std::fs::write(path, bytes).map_err(|e| CmdError {
        code: 23,
        message: format!("Creation of specified file failed. ({e})"),
    })
}

fn openvpn_make_config(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let mut path = p.get("").unwrap_or_default().to_string();
    if !path.ends_with(".zip") {
        path.push_str(".zip");
    }
    let v: ReadLogFile = ctx.rpc("MakeOpenVpnConfigFile", &ReadLogFile::default())?;
    save(&path, &v.buffer.0)?;
    ctx.out.push_str(&format!(
        "The sample setting file was saved as \"{path}\". You can unzip this file to extract setting files.\n"
    ));
    Ok(())
}

fn server_cert_get(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let v: ServerCert = ctx.rpc("GetServerCert", &Empty {})?;
    let pem = pem_certificate(&v.cert.0);
    save(p.get("").unwrap_or_default(), pem.as_bytes())
}

fn proto_options_get(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let asked = p.get("").unwrap_or_default().to_string();
    let req = ProtoOptions {
        protocol: asked.clone(),
        ..ProtoOptions::default()
    };
    let v: ProtoOptions = ctx.rpc("GetProtoOptions", &req)?;
    let table = crate::strtable::StringTable::installed();
    let mut t = Table::new(&["Name", "Type", "Value", "Description"]);
    for (name, value) in v.options().map_err(|e| CmdError::usage(e.message))? {
        let (ty, value) = match value {
            ProtoValue::Bool(b) => ("Boolean", if b { "True" } else { "False" }.to_string()),
            ProtoValue::Str(s) => ("String", s),
        };
        // SoftEther's description, when its string table is on the machine
        let description = table
            .and_then(|t| t.get(&format!("CMD_ProtoOptions_Description_{asked}_{name}")))
            .unwrap_or("");
        t.row(&[name, ty.to_string(), value, description.to_string()]);
    }
    ctx.table(&t, false);
    Ok(())
}

fn proto_options_set(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let req = ProtoOptions {
        protocol: p.get("").unwrap_or_default().to_string(),
        ..ProtoOptions::default()
    };
    let v: ProtoOptions = ctx.rpc("GetProtoOptions", &req)?;
    let mut options = v.options().map_err(|e| CmdError::usage(e.message))?;
    let name = p.get("NAME").unwrap_or_default();
    let Some(slot) = options
        .iter_mut()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
    else {
        return Err(CmdError {
            code: 29,
            message: "Object not found.".into(),
        });
    };
    let value = p.get("VALUE").unwrap_or_default().trim();
    slot.1 = match slot.1 {
        // vpncmd's yes: starts with y or t, or a number other than 0
        ProtoValue::Bool(_) => ProtoValue::Bool(
            value.starts_with(['y', 'Y', 't', 'T']) || value.parse::<i64>().is_ok_and(|n| n != 0),
        ),
        ProtoValue::Str(_) => ProtoValue::Str(value.to_string()),
    };
    let _: ProtoOptions = ctx.rpc("SetProtoOptions", &ProtoOptions::of(v.protocol, options))?;
    Ok(())
}

fn ports_udp_get(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v: PortsUdp = ctx.rpc("GetPortsUDP", &Empty {})?;
    let ports: Vec<String> = v.ports.iter().map(u32::to_string).collect();
    let mut t = Table::standard();
    t.row(&["UDP ports".into(), ports.join(", ")]);
    ctx.table(&t, false);
    Ok(())
}

fn ports_udp_set(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let list = p.get("").unwrap_or_default();
    let mut ports = Vec::new();
    for x in list.split([',', ' ']).filter(|x| !x.is_empty()) {
        let port: u16 = x
            .parse()
            .map_err(|_| CmdError::usage(format!("\"{x}\" is not a port number (1-65535).")))?;
        // "0" turns the UDP listener off, as in vpncmd
        if port != 0 {
            ports.push(u32::from(port));
        }
    }
    let _: PortsUdp = ctx.rpc("SetPortsUDP", &PortsUdp { ports })?;
    Ok(())
}

fn listener(p: &CmdParams, enable: bool) -> Listener {
    Listener {
        port: p.get("").and_then(|v| v.trim().parse().ok()).unwrap_or(0),
        enable,
    }
}

fn listener_create(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let _: Listener = ctx.rpc("CreateListener", &listener(p, true))?;
    Ok(())
}

fn listener_delete(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let _: Listener = ctx.rpc("DeleteListener", &listener(p, false))?;
    Ok(())
}

fn listener_list(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v: ListenerList = ctx.rpc("EnumListener", &Empty {})?;
    let mut t = Table::new(&["Port Number", "Status"]);
    for l in &v.listeners {
        let status = if l.error {
            "Error"
        } else if l.enabled {
            "Listening"
        } else {
            "Stopped"
        };
        t.row(&[format!("TCP {}", l.port), status.to_string()]);
    }
    ctx.table(&t, false);
    Ok(())
}

fn server_password_set(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let req = ServerPassword {
        password: p.get("").unwrap_or_default().to_string(),
        ..ServerPassword::default()
    };
    let _: ServerPassword = ctx.rpc("SetServerPassword", &req)?;
    Ok(())
}

fn config_get(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let v: ConfigFile = ctx.rpc("GetConfig", &Empty {})?;
    match p.get("").filter(|f| !f.is_empty()) {
        Some(path) => {
            save(path, &v.data.0)?;
        }
        None => {
            ctx.out.push_str(&format!(
                "Config name: \"{}\", Size: {}\n",
                v.file_name,
                v.data.0.len()
            ));
            ctx.out.push_str(&String::from_utf8_lossy(&v.data.0));
            if !ctx.out.ends_with('\n') {
                ctx.out.push('\n');
            }
        }
    }
    Ok(())
}

fn config_set(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let path = p.get("").unwrap_or_default();
    let data = std::fs::read(path).map_err(|e| CmdError {
        code: 38,
        message: format!("Reading from specified file failed. ({e})"),
    })?;
    let _: ConfigFile = ctx.rpc(
        "SetConfig",
        &ConfigFile {
            file_name: String::new(),
            data: Bin(data),
        },
    )?;
    Ok(())
}

fn all_traffic(p: &CmdParams) -> Result<bool, CmdError> {
    match p.get("ALLTRAFFIC") {
        Some(v) => parse_yes_no("ALLTRAFFIC", v),
        None => Ok(false),
    }
}

fn wgk_add(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    // no key: the server generates the pair and hands back the private key this once
    let key = p.get("").unwrap_or("").trim().to_string();
    let ip = match p.get("IP") {
        Some(v) => parse_ip("IP", v)?.to_string(),
        None => String::new(),
    };
    let req = WgkAdd {
        keys: vec![key.clone()],
        hubs: vec![p.get("HUB").unwrap_or_default().to_string()],
        users: vec![p.get("USER").unwrap_or_default().to_string()],
        addresses: vec![ip],
        all_traffic: all_traffic(p)?,
    };
    let v: WgkConfigs = ctx.rpc("AddWgk", &req)?;
    print_client_config(ctx, p, &v, key.is_empty())
}

fn wgk_config(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let req = WgkConfigRequest {
        key: p.get("").unwrap_or_default().to_string(),
        all_traffic: all_traffic(p)?,
    };
    let v: WgkConfigs = ctx.rpc("GetWgkConfig", &req)?;
    print_client_config(ctx, p, &v, false)
}

fn first(v: &[String]) -> &str {
    v.first().map(String::as_str).unwrap_or("")
}

/// Shows what AddWgk or GetWgkConfig returned: the key's table, then the config as text (or
/// into /SAVE), as a terminal QR code (/QR:yes) and as a PNG file (/PNG:path).
fn print_client_config(
    ctx: &mut Ctx<'_>,
    p: &CmdParams,
    v: &WgkConfigs,
    generated: bool,
) -> Result<(), CmdError> {
    let config = first(&v.configs).to_string();
    let mut t = Table::standard();
    t.row(&["Public Key", first(&v.keys)]);
    t.row(&["Virtual Hub", first(&v.hubs)]);
    t.row(&["User", first(&v.users)]);
    let address = first(&v.addresses);
    t.row(&[
        "Address",
        if address.is_empty() {
            "(the first one its client uses)"
        } else {
            address
        },
    ]);
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
    let req = WgPublicHost {
        host: p.get("").unwrap_or("").to_string(),
    };
    let v: WgPublicHost = ctx.rpc("SetWgPublicHost", &req)?;
    ctx.out.push_str(&format!(
        "Client configs now name {} as the endpoint host.\n",
        if v.host.is_empty() {
            "the server's host name"
        } else {
            &v.host
        }
    ));
    Ok(())
}

fn wgk_delete(ctx: &mut Ctx<'_>, p: &CmdParams) -> Result<(), CmdError> {
    let req = WgkKeys {
        keys: vec![p.get("").unwrap_or_default().to_string()],
    };
    let _: WgkKeys = ctx.rpc("DeleteWgk", &req)?;
    Ok(())
}

fn wgk_enum(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v: WgkList = ctx.rpc("EnumWgk", &Empty {})?;
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
    let cell = |col: &[String], i: usize| col.get(i).cloned().unwrap_or_default();
    let count = |col: &[u64], i: usize| num(col.get(i).copied().unwrap_or(0));
    for (i, k) in v.keys.iter().enumerate() {
        let session = match cell(&v.sessions, i) {
            s if s.is_empty() => "(Offline)".to_string(),
            s => s,
        };
        let address = match cell(&v.addresses, i) {
            a if a.is_empty() => "(first used)".to_string(),
            a => a,
        };
        t.row(&[
            k.clone(),
            cell(&v.hubs, i),
            cell(&v.users, i),
            address,
            session,
            dt_short(
                v.last_handshakes.get(i).copied().unwrap_or_default(),
                "(None)",
            ),
            count(&v.recv_bytes, i),
            count(&v.send_bytes, i),
            count(&v.spoofed_dropped, i),
        ]);
    }
    ctx.table(&t, false);
    Ok(())
}

fn wg_server_info(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v: WgServerInfo = ctx.rpc("GetWgServerInfo", &Empty {})?;
    let ports: Vec<String> = v.udp_ports.iter().map(u32::to_string).collect();
    let mut t = Table::standard();
    t.row(&["WireGuard", if v.enabled { "Enabled" } else { "Disabled" }]);
    t.row(&["Public Key", &v.public_key]);
    t.row(&[
        "Preshared Key",
        if v.preshared_key.is_empty() {
            "(None)"
        } else {
            &v.preshared_key
        },
    ]);
    t.row(&["UDP ports".into(), ports.join(", ")]);
    t.row(&[
        "Public Host",
        if v.public_host.is_empty() {
            "(the server's host name)"
        } else {
            &v.public_host
        },
    ]);
    for (label, n) in [
        ("Handshakes Completed", v.handshakes_ok),
        ("Cookie Replies Sent (under load)", v.cookie_replies_sent),
        ("Handshakes Rate-Limited", v.handshakes_rate_limited),
        ("Initiations from Unknown Keys", v.unknown_key_initiations),
        ("Malformed Datagrams Dropped", v.malformed_dropped),
        ("Unknown Receiver Index Dropped", v.unknown_index_dropped),
        ("Spoofed Source Dropped", v.spoofed_dropped),
        ("Unrecognised Datagrams", v.unknown_datagrams),
        ("Send Failures", v.send_failures),
        ("Forwarded Client to Client Directly", v.direct_forwarded),
    ] {
        t.row(&[label.into(), num(n)]);
    }
    ctx.table(&t, false);
    Ok(())
}

fn nat_table(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v: NatTable = ctx.rpc("EnumNAT", &ctx.hub_name()?)?;
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
    for e in &v.entries {
        let status = if e.protocol == 0 {
            match e.tcp_status {
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
            e.id.to_string(),
            match e.protocol {
                0 => "TCP",
                1 => "UDP",
                2 => "DNS",
                _ => "ICMP",
            }
            .to_string(),
            e.src_ip.0.to_string(),
            e.src_host.clone(),
            e.src_port.to_string(),
            e.dest_ip.0.to_string(),
            e.dest_host.clone(),
            e.dest_port.to_string(),
            dt_short(e.created_time, "-"),
            dt_short(e.last_comm_time, "-"),
            format!("{} bytes", num(e.send_size)),
            format!("{} bytes", num(e.recv_size)),
            status.to_string(),
        ]);
    }
    ctx.table(&t, true);
    Ok(())
}

fn dhcp_table(ctx: &mut Ctx<'_>, _p: &CmdParams) -> Result<(), CmdError> {
    let v: DhcpTable = ctx.rpc("EnumDHCP", &ctx.hub_name()?)?;
    let mut t = Table::new(&[
        "ID",
        "Leased at",
        "Expiration Date",
        "MAC Address",
        "Allocated IP",
        "Client Host Name",
    ]);
    for e in &v.entries {
        t.row(&[
            e.id.to_string(),
            dt_short(e.leased_time, "-"),
            dt_short(e.expire_time, "-"),
            mac_text(&e.mac.0),
            e.ip.0.to_string(),
            e.hostname.clone(),
        ]);
    }
    ctx.table(&t, true);
    Ok(())
}
