use etherhub_cli::args::{parse_global, parse_host_port, parse_params, tokenize};
use etherhub_cli::client::CallError;
use etherhub_cli::commands::{execute, Api, Ctx};
use etherhub_cli::console::Scripted;
use etherhub_cli::table::{num, Table};
use serde_json::{json, Value};

const FIX: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/softether-5.01.9674"
);

fn sv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The fixture's text from "<Cmd> command - " through "The command completed successfully.".
fn fixture_block(file: &str, cmd: &str) -> String {
    let text = std::fs::read_to_string(format!("{FIX}/{file}")).unwrap();
    let start = text.find(&format!("{cmd} command - ")).unwrap();
    let rest = &text[start..];
    let end = rest.find("The command completed successfully.\n").unwrap()
        + "The command completed successfully.\n".len();
    rest[..end].to_string()
}

struct FakeApi(fn(&str, &Value) -> Result<Value, CallError>);

impl Api for FakeApi {
    fn call(&self, method: &str, params: Value) -> Result<Value, CallError> {
        (self.0)(method, &params)
    }
}

/// Runs one command line with `answers` for its prompts; the result and everything shown.
fn run_answering(
    api: &FakeApi,
    hub: Option<&str>,
    line: &str,
    answers: &[&str],
) -> (Result<(), i32>, String) {
    let mut console = Scripted::new(answers);
    let mut ctx = Ctx {
        api,
        console: &mut console,
        hub: hub.map(str::to_string),
        csv: false,
        out: String::new(),
    };
    let r = execute(&mut ctx, &tokenize(line)).map_err(|e| {
        ctx.out.push_str(&e.message);
        e.code
    });
    let out = std::mem::take(&mut ctx.out);
    console.shown.push_str(&out);
    (r, console.shown)
}

fn run(api: &FakeApi, hub: Option<&str>, line: &str) -> (Result<(), i32>, String) {
    run_answering(api, hub, line, &[])
}

#[test]
fn global_args() {
    let g = parse_global(&sv(&[
        "localhost:5555",
        "/SERVER",
        "/PASSWORD:pw",
        "/CMD",
        "HubList",
    ]))
    .unwrap();
    assert_eq!(
        (g.host.as_str(), g.port, g.password.as_deref()),
        ("localhost", 5555, Some("pw"))
    );
    assert_eq!(g.cmd, Some(sv(&["HubList"])));
    let g = parse_global(&sv(&["/SERVER", "10.0.0.1:992", "/HUB:DEFAULT", "/csv"])).unwrap();
    assert_eq!(
        (g.host.as_str(), g.port, g.hub.as_deref(), g.csv),
        ("10.0.0.1", 992, Some("DEFAULT"), true)
    );
    let g = parse_global(&sv(&["/server:[::1]:5555"])).unwrap();
    assert_eq!((g.host.as_str(), g.port), ("::1", 5555));
    let g = parse_global(&sv(&["/SERVER"])).unwrap();
    assert_eq!((g.host.as_str(), g.port), ("localhost", 443));
    assert!(parse_global(&sv(&["/BOGUS"])).is_err());
    assert!(parse_global(&sv(&["host:0"])).is_err());
    assert!(parse_global(&sv(&["host:99999"])).is_err());
    assert!(parse_global(&sv(&["/CMD"])).is_err());
    assert!(parse_global(&sv(&["/HUB"])).is_err());
    assert!(parse_host_port("").is_err());
}

#[test]
fn command_params() {
    let p = parse_params(
        "WgkAdd",
        &sv(&["KEY=", "/hub:h", "/USER:u"]),
        &["", "HUB", "USER"],
    )
    .unwrap();
    assert_eq!(
        (p.get(""), p.get("HUB"), p.get("user")),
        (Some("KEY="), Some("h"), Some("u"))
    );
    assert!(parse_params("WgkAdd", &sv(&["/NOPE:x"]), &["", "HUB"]).is_err());
    assert!(parse_params("WgkAdd", &sv(&["/HUB"]), &["", "HUB"]).is_err());
    assert!(parse_params("HubList", &sv(&["extra"]), &[]).is_err());
    // a base64 key may begin with '/': it is the unnamed value, not a switch
    let key = "/FFFUGUILcQIqnNPPqNrbLTReE8U3pwgLUH0KmgWYQY=";
    let p = parse_params("WgkAdd", &sv(&[key, "/HUB:h"]), &["", "HUB", "USER"]).unwrap();
    assert_eq!((p.get(""), p.get("HUB")), (Some(key), Some("h")));
    let p = parse_params("WgkAdd", &sv(&["/HUB:h", key]), &["", "HUB", "USER"]).unwrap();
    assert_eq!(p.get(""), Some(key));
    // but a second unnamed value, or one where the command takes none, is still refused
    assert!(parse_params("WgkAdd", &sv(&["KEY=", key]), &["", "HUB"]).is_err());
    assert!(parse_params("HubList", &sv(&[key]), &[]).is_err());
    assert_eq!(
        tokenize(r#"HubCreate "my hub" /PASSWORD:"a ""b""""#),
        sv(&["HubCreate", "my hub", r#"/PASSWORD:a "b""#])
    );
}

#[test]
fn listener_list_matches_fixture() {
    let api = FakeApi(|m, _| {
        assert_eq!(m, "EnumListener");
        let l: Vec<Value> = [443, 992, 1194, 5555]
            .iter()
            .map(|p| json!({"Ports_u32": p, "Enables_bool": true, "Errors_bool": false}))
            .collect();
        Ok(json!({ "ListenerList": l }))
    });
    let (r, out) = run(&api, None, "ListenerList");
    r.unwrap();
    assert_eq!(
        out,
        fixture_block("vpncmd-ListenerList.txt", "ListenerList")
    );
}

#[test]
fn ports_udp_get_matches_fixture() {
    let api = FakeApi(|_, _| Ok(json!({ "Ports_u32": [443, 992, 1194, 5555] })));
    let (r, out) = run(&api, None, "portsudpget");
    r.unwrap();
    assert_eq!(out, fixture_block("vpncmd-PortsUDPGet.txt", "PortsUDPGet"));
}

#[test]
fn hub_list_matches_fixture() {
    let api = FakeApi(|_, _| {
        let hub = |name: &str, t: &str| json!({"HubName_str": name, "Online_bool": true, "HubType_u32": 0, "LastLoginTime_dt": t, "LastCommTime_dt": t});
        Ok(
            json!({ "NumHub_u32": 2, "HubList": [hub("DEFAULT", "2026-11-24T21:01:40.000"), hub("SECURENAT", "2026-11-24T21:01:53.000")] }),
        )
    });
    let (r, out) = run(&api, None, "HubList");
    r.unwrap();
    assert_eq!(out, fixture_block("vpncmd-HubList.txt", "HubList"));
}

#[test]
fn user_get_and_user_list_match_fixture() {
    let api = FakeApi(|method, _| match method {
        "GetUser" => Ok(json!({
            "HubName_str": "SECURENAT", "Name_str": "meta", "GroupName_str": "",
            "Realname_utf": "", "Note_utf": "", "AuthType_u32": 1, "NumLogin_u32": 0,
            "CreatedTime_dt": "2026-11-24T21:16:31.000", "UpdatedTime_dt": "2026-11-24T21:16:31.000",
            "ExpireTime_dt": "1970-01-01T00:00:00.000"
        })),
        "EnumUser" => Ok(json!({"HubName_str": "SECURENAT", "UserList": [{
            "Name_str": "meta", "GroupName_str": "", "Realname_utf": "", "Note_utf": "",
            "AuthType_u32": 1, "NumLogin_u32": 0, "LastLoginTime_dt": "1970-01-01T00:00:00.000",
            "Expires_dt": "1970-01-01T00:00:00.000"
        }]})),
        other => panic!("unexpected call {other}"),
    });
    let (r, out) = run(&api, Some("SECURENAT"), "UserGet meta");
    r.unwrap();
    assert_eq!(out, fixture_block("vpncmd-hub-session.txt", "UserGet"));
    let (r, out) = run(&api, Some("SECURENAT"), "UserList");
    r.unwrap();
    assert_eq!(out, fixture_block("vpncmd-hub-session.txt", "UserList"));
}

#[test]
fn server_info_matches_fixture() {
    let api = FakeApi(|_, _| {
        Ok(json!({
            "ServerProductName_str": "SoftEther VPN Server Developer Edition (64 bit) (Open Source)",
            "ServerVersionString_str": "Version 5.01 Build 9674   (English)",
            "ServerBuildInfoString_str": "Compiled 2022/10/16 09:04:12 by Unknown at Unknown",
            "ServerHostName_str": "vm", "ServerType_u32": 0, "OsSystemName_str": "Linux",
            "OsProductName_str": "Debian GNU/Linux", "OsVendorName_str": "https://www.debian.org/",
            "OsVersion_str": "12 (bookworm)", "KernelName_str": "UNIX", "KernelVersion_str": "#1 SMP PREEMPT_DYNAMIC @0"
        }))
    });
    let (r, out) = run(&api, None, "ServerInfoGet");
    r.unwrap();
    assert_eq!(
        out,
        fixture_block("vpncmd-ServerInfoGet.txt", "ServerInfoGet")
    );
}

#[test]
fn secure_nat_status_matches_fixture() {
    let api = FakeApi(|_, _| Ok(json!({"NumTcpSessions_u32": 0, "IsKernelMode_bool": false})));
    let (r, out) = run(&api, Some("SECURENAT"), "SecureNatStatusGet");
    r.unwrap();
    assert_eq!(
        out,
        fixture_block("vpncmd-hub-session.txt", "SecureNatStatusGet")
    );
}

#[test]
fn empty_ip_table_matches_fixture() {
    let api = FakeApi(|_, _| Ok(json!({"IpTable": []})));
    let (r, out) = run(&api, Some("SECURENAT"), "IpTable");
    r.unwrap();
    assert_eq!(out, fixture_block("vpncmd-hub-session.txt", "IpTable"));
}

#[test]
fn errors_are_reported_with_codes() {
    let api = FakeApi(|_, _| {
        Err(CallError::Rpc { code: 57, message: "Error code 57: The Virtual Hub with the specified name already exists on the server.".into() })
    });
    let (r, out) = run(&api, None, "HubCreate X /PASSWORD:y");
    assert_eq!(r, Err(57));
    assert!(out.ends_with("Error occurred. (Error code: 57)\nThe Virtual Hub with the specified name already exists on the server."), "{out}");
    let (r, out) = run(&api, None, "NoSuchCommand");
    assert_eq!(r, Err(117));
    assert!(out.contains("Command not found"));
    let (r, _) = run(&api, None, "UserList");
    assert_eq!(r, Err(38), "hub not selected");
    // A parameter vpncmd asks for, with no input left to ask: the command is canceled.
    let (r, out) = run(&api, None, "WgkAdd KEY= /HUB:h");
    assert_eq!(r, Err(38));
    assert!(out.contains("User: "), "the prompt was shown: {out}");
    assert!(out.contains("/USER was not given"), "{out}");
    let auth = FakeApi(|_, _| Err(CallError::Auth));
    let (r, _) = run(&auth, None, "HubList");
    assert_eq!(r, Err(9));
}

#[test]
fn wgk_add_sends_softether_arrays() {
    let api = FakeApi(|m, p| {
        assert_eq!(m, "AddWgk");
        assert_eq!(
            p,
            &json!({"Key_str": ["K="], "Hub_str": ["H"], "User_str": ["u"],
                    "Address_str": ["10.0.0.7"], "AllTraffic_bool": false})
        );
        Ok(
            json!({"Key_str": ["K="], "Hub_str": ["H"], "User_str": ["u"],
                  "Address_str": ["10.0.0.7"], "Config_str": ["[Interface]\nAddress = 10.0.0.7/24\n"]}),
        )
    });
    let (r, out) = run(&api, None, "WgkAdd K= /HUB:H /USER:u /IP:10.0.0.7");
    r.unwrap();
    assert!(out.contains("Address"), "{out}");
    assert!(out.contains("10.0.0.7/24"), "{out}");
    assert!(!out.contains("generated"), "{out}");
}

#[test]
fn wgk_add_without_key_asks_the_server_to_generate_and_saves_the_config() {
    let dir = tempdir();
    let conf = dir.join("wg9.conf");
    let png = dir.join("wg9.png");
    let api = FakeApi(|m, p| {
        assert_eq!(m, "AddWgk");
        assert_eq!(p["Key_str"], json!([""]));
        assert_eq!(p["Address_str"], json!([""]));
        assert_eq!(p["AllTraffic_bool"], json!(true));
        Ok(
            json!({"Key_str": ["PUB="], "Hub_str": ["H"], "User_str": ["u"],
                  "Address_str": ["10.0.0.2"], "Config_str": ["[Interface]\nPrivateKey = SECRET=\n"]}),
        )
    });
    let line = format!(
        "WgkAdd /HUB:H /USER:u /ALLTRAFFIC:yes /SAVE:{} /PNG:{} /QR:yes",
        conf.display(),
        png.display()
    );
    let (r, out) = run(&api, None, &line);
    r.unwrap();
    assert!(out.contains("shown only this once"), "{out}");
    assert!(
        !out.contains("SECRET="),
        "with /SAVE the key goes to the file only: {out}"
    );
    assert!(
        out.contains('▀') || out.contains('▄'),
        "no terminal QR code: {out}"
    );
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "[Interface]\nPrivateKey = SECRET=\n"
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wgk_add_refuses_a_bad_address_before_calling() {
    let api = FakeApi(|_, _| panic!("no call expected"));
    let (r, out) = run(&api, None, "WgkAdd K= /HUB:H /USER:u /IP:10.0.0.300");
    assert!(r.is_err());
    assert!(out.contains("/IP must be an IPv4 address"), "{out}");
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "etherhub-cli-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn csv_and_table_helpers() {
    let mut t = Table::new(&["Key", "Hub"]);
    t.row(&["a,b", "say \"hi\""]);
    t.row(&["plain", ""]);
    assert_eq!(
        t.render_csv(),
        "Key,Hub\n\"a,b\",\"say \"\"hi\"\"\"\nplain,\n"
    );
    assert_eq!(num(0), "0");
    assert_eq!(num(1234567), "1,234,567");
    let mut long = Table::standard();
    long.row(&["x".repeat(50), "y".repeat(50)]);
    long.row(&["---", "---"]);
    let out = long.render();
    assert_eq!(
        out.lines().nth(1).unwrap().len(),
        101,
        "the heading rule is not cut (as in vpncmd)"
    );
    assert_eq!(
        out.lines().nth(3).unwrap().len(),
        79,
        "--- rows are cut to the console width"
    );
}

#[test]
fn wgk_add_asks_key_hub_and_user_in_softethers_order() {
    let api = FakeApi(|m, p| {
        assert_eq!(m, "AddWgk");
        assert_eq!(p["Key_str"], json!(["KEY="]));
        assert_eq!(p["Hub_str"], json!(["DEFAULT"]));
        assert_eq!(p["User_str"], json!(["meta"]));
        Ok(
            json!({"Key_str": ["KEY="], "Hub_str": ["DEFAULT"], "User_str": ["meta"],
                  "Address_str": [""], "Config_str": [""]}),
        )
    });
    let (r, out) = run_answering(&api, None, "WgkAdd", &["KEY=", "DEFAULT", "meta"]);
    r.unwrap();
    let key = out.find("Key: KEY=\n").expect("asked for the key");
    let hub = out.find("Hub: DEFAULT\n").expect("asked for the hub");
    let user = out.find("User: meta\n").expect("asked for the user");
    assert!(key < hub && hub < user, "{out}");
    assert!(
        out.find("WgkAdd command - ").unwrap() < key,
        "the title comes first: {out}"
    );
    // an empty key has the server generate the pair
    let api = FakeApi(|_, p| {
        assert_eq!(p["Key_str"], json!([""]));
        Ok(
            json!({"Key_str": ["NEW="], "Hub_str": ["DEFAULT"], "User_str": ["meta"],
                  "Address_str": ["192.168.30.2"], "Config_str": ["[Interface]\n"]}),
        )
    });
    let (r, out) = run_answering(&api, None, "WgkAdd", &["", "DEFAULT", "meta"]);
    r.unwrap();
    assert!(out.contains("generated this client's key pair"), "{out}");
}

#[test]
fn a_blank_or_bad_answer_is_asked_again_and_passwords_twice() {
    let api = FakeApi(|m, p| {
        assert_eq!(m, "CreateUser");
        assert_eq!(p["Name_str"], "meta");
        assert_eq!(p["Realname_utf"], "Meta Person");
        Ok(json!({}))
    });
    let (r, out) = run_answering(
        &api,
        Some("DEFAULT"),
        "UserCreate",
        &["", "meta", "", "Meta Person", ""],
    );
    r.unwrap();
    assert!(
        out.contains("You cannot make a blank specification."),
        "{out}"
    );
    assert_eq!(out.matches("User Name: ").count(), 2, "{out}");
    // a password: asked twice without echo, until both agree
    let api = FakeApi(|m, p| {
        assert_eq!(m, "CreateHub");
        assert_eq!(p["AdminPasswordPlainText_str"], "s3cret");
        Ok(json!({}))
    });
    let (r, out) = run_answering(
        &api,
        None,
        "HubCreate SALES",
        &["a", "b", "s3cret", "s3cret"],
    );
    r.unwrap();
    assert!(out.contains("Please enter the password."), "{out}");
    assert!(out.contains("do not match"), "{out}");
    assert!(!out.contains("s3cret"), "a password is never shown: {out}");
    // a value outside vpncmd's range is refused with its message and asked for again
    let api = FakeApi(|m, p| match m {
        "GetSecureNATOption" => {
            Ok(json!({"RpcHubName_str": "DEFAULT", "MacAddress_bin": "XgABAgME", "Mtu_u32": 1500}))
        }
        "SetSecureNATOption" => {
            assert_eq!(p["Mtu_u32"], 1400);
            assert_eq!(p["NatTcpTimeout_u32"], 3600);
            Ok(json!({}))
        }
        other => panic!("unexpected {other}"),
    });
    let (r, out) = run_answering(
        &api,
        Some("DEFAULT"),
        "NatSet /MTU:10 /TCPTIMEOUT:3600 /UDPTIMEOUT:60 /LOG:no",
        &["1400"],
    );
    r.unwrap();
    assert!(
        out.contains("Specify a value in the range 62 to 1500 for the MTU value."),
        "{out}"
    );
}
