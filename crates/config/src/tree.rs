//! The `declare` tree: SoftEther's text config format, parsed and written.
//!
//! A file is a tree of folders (`declare NAME { ... }`) whose leaves are items (`TYPE NAME VALUE`).
//! Order is kept as read; new entries are inserted where SoftEther would write them (sorted by
//! name, case-insensitively), so a file SoftEther wrote comes back byte for byte.

use base64::Engine as _;
use std::fmt;

/// The banner SoftEther writes above the tree (each line ends in CRLF).
pub const BANNER: &str = "# Software Configuration File\r\n\
# ---------------------------\r\n\
# \r\n\
# You may edit this file when the VPN Server / Client / Bridge program is not running.\r\n\
# \r\n\
# In prior to edit this file manually by your text editor,\r\n\
# shutdown the VPN Server / Client / Bridge background service.\r\n\
# Otherwise, all changes will be lost.\r\n\
# \r\n";

const BOM: &str = "\u{feff}";

/// One typed value, as the five item types of the format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    Uint(u32),
    Uint64(u64),
    Str(String),
    Byte(Vec<u8>),
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Bool(_) => "bool",
            Value::Uint(_) => "uint",
            Value::Uint64(_) => "uint64",
            Value::Str(_) => "string",
            Value::Byte(_) => "byte",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub name: String,
    pub value: Value,
}

/// A `declare NAME { ... }` block.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Folder {
    pub name: String,
    pub items: Vec<Item>,
    pub folders: Vec<Folder>,
}

/// SoftEther compares names case-insensitively (ASCII upper case) when it sorts and looks up.
fn name_key(s: &str) -> impl Iterator<Item = u8> + '_ {
    s.bytes().map(|b| b.to_ascii_uppercase())
}

fn name_eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl Folder {
    pub fn new(name: impl Into<String>) -> Self {
        Folder {
            name: name.into(),
            ..Default::default()
        }
    }

    pub fn folder(&self, name: &str) -> Option<&Folder> {
        self.folders.iter().find(|f| name_eq(&f.name, name))
    }

    pub fn folder_mut(&mut self, name: &str) -> Option<&mut Folder> {
        self.folders.iter_mut().find(|f| name_eq(&f.name, name))
    }

    /// The sub-folder `name`, created (in sorted position) when missing.
    pub fn folder_or_create(&mut self, name: &str) -> &mut Folder {
        let idx = match self.folders.iter().position(|f| name_eq(&f.name, name)) {
            Some(i) => i,
            None => {
                let at = self
                    .folders
                    .iter()
                    .position(|f| name_key(&f.name).cmp(name_key(name)).is_gt())
                    .unwrap_or(self.folders.len());
                self.folders.insert(at, Folder::new(name));
                at
            }
        };
        &mut self.folders[idx]
    }

    /// Follows a path of folder names.
    pub fn path(&self, path: &[&str]) -> Option<&Folder> {
        path.iter().try_fold(self, |f, p| f.folder(p))
    }

    pub fn path_or_create(&mut self, path: &[&str]) -> &mut Folder {
        path.iter().fold(self, |f, p| f.folder_or_create(p))
    }

    pub fn remove_folder(&mut self, name: &str) -> Option<Folder> {
        let i = self.folders.iter().position(|f| name_eq(&f.name, name))?;
        Some(self.folders.remove(i))
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.items
            .iter()
            .find(|i| name_eq(&i.name, name))
            .map(|i| &i.value)
    }

    /// Sets an item, replacing one of the same name (keeping its place) or inserting in sorted position.
    pub fn set(&mut self, name: &str, value: Value) {
        if let Some(item) = self.items.iter_mut().find(|i| name_eq(&i.name, name)) {
            item.value = value;
            return;
        }
        let at = self
            .items
            .iter()
            .position(|i| name_key(&i.name).cmp(name_key(name)).is_gt())
            .unwrap_or(self.items.len());
        self.items.insert(
            at,
            Item {
                name: name.to_string(),
                value,
            },
        );
    }

    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let i = self.items.iter().position(|i| name_eq(&i.name, name))?;
        Some(self.items.remove(i).value)
    }

    pub fn get_bool(&self, name: &str) -> Option<bool> {
        match self.get(name)? {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn get_u32(&self, name: &str) -> Option<u32> {
        match self.get(name)? {
            Value::Uint(v) => Some(*v),
            _ => None,
        }
    }
    pub fn get_u64(&self, name: &str) -> Option<u64> {
        match self.get(name)? {
            Value::Uint64(v) => Some(*v),
            Value::Uint(v) => Some(u64::from(*v)),
            _ => None,
        }
    }
    pub fn get_str(&self, name: &str) -> Option<&str> {
        match self.get(name)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        match self.get(name)? {
            Value::Byte(b) => Some(b),
            _ => None,
        }
    }
    pub fn set_bool(&mut self, name: &str, v: bool) {
        self.set(name, Value::Bool(v))
    }
    pub fn set_u32(&mut self, name: &str, v: u32) {
        self.set(name, Value::Uint(v))
    }
    pub fn set_u64(&mut self, name: &str, v: u64) {
        self.set(name, Value::Uint64(v))
    }
    pub fn set_str(&mut self, name: &str, v: &str) {
        self.set(name, Value::Str(v.to_string()))
    }
    pub fn set_bytes(&mut self, name: &str, v: &[u8]) {
        self.set(name, Value::Byte(v.to_vec()))
    }
}

/// Where and why a config text failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct ParseError {
    pub line: usize,
    pub msg: String,
}

/// SoftEther's escaping: `$` alone is the empty string; control characters, space, tab and `$`
/// become `$XX` (two upper-case hex digits).
pub fn escape(s: &str) -> String {
    if s.is_empty() {
        return "$".to_string();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let b = c as u32;
        if b <= 31 || c == ' ' || c == '$' {
            out.push_str(&format!("${b:02X}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// Inverse of [`escape`]. A `$` not followed by two hex digits is kept literally, as SoftEther does.
pub fn unescape(s: &str) -> Result<String, String> {
    if s == "$" {
        return Ok(String::new());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 3 <= bytes.len() {
            let (h, l) = (bytes[i + 1], bytes[i + 2]);
            if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() {
                let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                out.push(digit(h) * 16 + digit(l));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not valid UTF-8 after unescaping"))
}

/// Parses a whole config text; returns the `root` folder.
pub fn parse(text: &str) -> Result<Folder, ParseError> {
    let text = text.strip_prefix(BOM).unwrap_or(text);
    // A stack of open folders; the bottom one is a holder for the top-level declares.
    let mut stack: Vec<(Folder, usize)> = vec![(Folder::new(""), 0)];
    let mut expect_brace: Option<usize> = None;
    let mut last_line = 0;
    for (n, raw) in text.split('\n').enumerate() {
        let line_no = n + 1;
        last_line = line_no;
        let line = raw.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
        if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
            continue;
        }
        let err = |msg: String| ParseError { line: line_no, msg };
        let tokens: Vec<&str> = line.split([' ', '\t']).filter(|t| !t.is_empty()).collect();
        if let Some(decl_line) = expect_brace.take() {
            if tokens != ["{"] {
                return Err(err(format!(
                    "expected '{{' to open the block declared on line {decl_line}"
                )));
            }
            continue;
        }
        match tokens[0] {
            t if t.eq_ignore_ascii_case("declare") => {
                if tokens.len() != 2 {
                    return Err(err("'declare' takes exactly one name".into()));
                }
                let name = unescape(tokens[1]).map_err(err)?;
                stack.push((Folder::new(name), line_no));
                expect_brace = Some(line_no);
            }
            "}" => {
                if tokens.len() != 1 {
                    return Err(err("unexpected text after '}'".into()));
                }
                if stack.len() == 1 {
                    return Err(err("'}' without an open block".into()));
                }
                let (done, _) = stack.pop().expect("checked above");
                stack.last_mut().expect("holder stays").0.folders.push(done);
            }
            "{" => return Err(err("'{' without a 'declare' before it".into())),
            ty => {
                if stack.len() == 1 {
                    return Err(err(format!("value {ty:?} outside any block")));
                }
                if tokens.len() != 3 {
                    return Err(err(format!(
                        "expected 'TYPE NAME VALUE', found {} token(s)",
                        tokens.len()
                    )));
                }
                let name = unescape(tokens[1]).map_err(err)?;
                let data = tokens[2];
                let value = match ty.to_ascii_lowercase().as_str() {
                    "bool" => match data.to_ascii_lowercase().as_str() {
                        "true" => Value::Bool(true),
                        "false" => Value::Bool(false),
                        other => match other.parse::<u32>() {
                            Ok(v) => Value::Bool(v != 0),
                            Err(_) => return Err(err(format!("bad bool {data:?} for {name}"))),
                        },
                    },
                    "uint" => Value::Uint(
                        data.parse()
                            .map_err(|_| err(format!("bad uint {data:?} for {name}")))?,
                    ),
                    "uint64" => Value::Uint64(
                        data.parse()
                            .map_err(|_| err(format!("bad uint64 {data:?} for {name}")))?,
                    ),
                    "string" => Value::Str(unescape(data).map_err(err)?),
                    "byte" => {
                        let b64 = unescape(data).map_err(err)?;
                        Value::Byte(
                            base64::engine::general_purpose::STANDARD
                                .decode(b64.as_bytes())
                                .map_err(|e| err(format!("bad base64 for {name}: {e}")))?,
                        )
                    }
                    _ => return Err(err(format!("unknown value type {ty:?}"))),
                };
                let folder = &mut stack.last_mut().expect("checked above").0;
                folder.items.push(Item { name, value });
            }
        }
    }
    if let Some(decl_line) = expect_brace {
        return Err(ParseError {
            line: last_line,
            msg: format!("the block declared on line {decl_line} never opens"),
        });
    }
    if stack.len() > 1 {
        let (f, line) = stack.last().expect("len > 1");
        return Err(ParseError {
            line: last_line,
            msg: format!("block {:?} opened on line {line} is never closed", f.name),
        });
    }
    let (mut holder, _) = stack.pop().expect("holder");
    let mut root = holder.remove_folder("root").ok_or(ParseError {
        line: last_line,
        msg: "no 'declare root' block".into(),
    })?;
    // found case-insensitively, as SoftEther does; spelled as `write` spells it, so a parsed
    // tree writes and parses back to itself (found by fuzzing: `declare rooT`)
    root.name = "root".into();
    Ok(root)
}

fn push_line(out: &mut String, depth: usize, text: &str) {
    for _ in 0..depth {
        out.push('\t');
    }
    out.push_str(text);
    out.push_str("\r\n");
}

fn write_folder(out: &mut String, f: &Folder, depth: usize) {
    push_line(out, depth, &format!("declare {}", escape(&f.name)));
    push_line(out, depth, "{");
    for item in &f.items {
        let data = match &item.value {
            Value::Bool(b) => b.to_string(),
            Value::Uint(v) => v.to_string(),
            Value::Uint64(v) => v.to_string(),
            Value::Str(s) => escape(s),
            Value::Byte(b) => escape(&base64::engine::general_purpose::STANDARD.encode(b)),
        };
        push_line(
            out,
            depth + 1,
            &format!("{} {} {}", item.value.type_name(), escape(&item.name), data),
        );
    }
    if !f.items.is_empty() && !f.folders.is_empty() {
        out.push_str("\r\n");
    }
    for sub in &f.folders {
        write_folder(out, sub, depth + 1);
    }
    push_line(out, depth, "}");
}

/// Writes `root` as SoftEther does: BOM, banner, CRLF line ends, tab indents.
pub fn write(root: &Folder) -> String {
    let mut out = String::with_capacity(64 * 1024);
    out.push_str(BOM);
    out.push_str(BANNER);
    let mut root = root.clone();
    root.name = "root".into();
    write_folder(&mut out, &root, 0);
    out
}

impl fmt::Display for Folder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&write(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_matches_softether() {
        assert_eq!(escape(""), "$");
        assert_eq!(escape("443, 992"), "443,$20992");
        assert_eq!(escape("a$b\tc\n"), "a$24b$09c$0A");
        assert_eq!(escape("héllo"), "héllo");
        for s in ["", "443, 992", "a$b\tc\n", "$", "$$20", "日本 語"] {
            assert_eq!(unescape(&escape(s)).unwrap(), s);
        }
    }

    #[test]
    fn unescape_keeps_a_lone_dollar_that_is_not_hex() {
        assert_eq!(unescape("a$zz").unwrap(), "a$zz");
        assert_eq!(unescape("a$2").unwrap(), "a$2");
    }

    #[test]
    fn parse_errors_name_the_line() {
        let e = parse("declare root\n{\n\tuint X notanumber\n}\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.msg.contains("bad uint"), "{e}");
        let e = parse("declare root\n{\n\tdeclare A\n\t{\n").unwrap_err();
        assert!(e.msg.contains("never closed"), "{e}");
        let e = parse("declare other\n{\n}\n").unwrap_err();
        assert!(e.msg.contains("no 'declare root'"), "{e}");
        let e = parse("declare root\n{\n\tfloat X 1\n}\n").unwrap_err();
        assert_eq!(e.line, 3);
        let e = parse("declare root\n{\n}\n}\n").unwrap_err();
        assert_eq!(e.line, 4);
    }

    #[test]
    fn set_inserts_sorted_like_softether() {
        let mut f = Folder::new("x");
        f.set_u32("Zeta", 1);
        f.set_u32("alpha", 2);
        f.set_u32("PACKET_LOG_ARP", 3);
        f.set_u32("PacketLogSwitchType", 4);
        let names: Vec<_> = f.items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            ["alpha", "PacketLogSwitchType", "PACKET_LOG_ARP", "Zeta"]
        );
        f.set_u32("ZETA", 9);
        assert_eq!(f.get_u32("zeta"), Some(9));
        assert_eq!(f.items.len(), 4);
    }
}
