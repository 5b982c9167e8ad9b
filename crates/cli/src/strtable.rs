//! SoftEther's string table, read from the `hamcore.se2` archive a SoftEther package installs,
//! for the help texts vpncmd prints (`COMMAND ?`). Etherhub ships none of SoftEther's texts:
//! where no SoftEther package is installed, `etherhub cmd` prints its own short usage instead.
//!
//! `hamcore.se2`: "HamCore", a big-endian u32 count, then per file a u32 length (of the name
//! plus one), the name, its size, its zlib-compressed size and its offset (u32 each); the
//! files' compressed bytes follow. A string table (`strtable_en.stb`) has a line per string:
//! its name, blanks, then the text with `\n`-style escapes; `#` and `//` start comments, and
//! `PREFIX p` puts `p@` before the names that follow (until `PREFIX NULL`).

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Where SoftEther's Debian packages put their archive; `ETHERHUB_HAMCORE` names another.
const INSTALLED: &[&str] = &[
    "/usr/libexec/softether/vpncmd/hamcore.se2",
    "/usr/share/softether-common/hamcore.se2",
    "/usr/libexec/softether/vpnserver/hamcore.se2",
];

/// The largest string table read (SoftEther's English one is about 650 kB).
const MAX_TABLE: u64 = 16 << 20;

/// Strings by upper-case name.
#[derive(Debug, Default)]
pub struct StringTable(HashMap<String, String>);

impl StringTable {
    /// The table of the SoftEther package installed on this machine, if there is one (read
    /// once).
    pub fn installed() -> Option<&'static StringTable> {
        static TABLE: OnceLock<Option<StringTable>> = OnceLock::new();
        TABLE
            .get_or_init(|| {
                let mut paths: Vec<PathBuf> = std::env::var_os("ETHERHUB_HAMCORE")
                    .map(PathBuf::from)
                    .into_iter()
                    .collect();
                paths.extend(INSTALLED.iter().map(PathBuf::from));
                paths
                    .iter()
                    .find_map(|p| std::fs::read(p).ok())
                    .and_then(|bytes| StringTable::from_hamcore(&bytes).ok())
            })
            .as_ref()
    }

    /// The English string table inside a `hamcore.se2` archive.
    pub fn from_hamcore(bytes: &[u8]) -> Result<StringTable, String> {
        let rest = bytes
            .strip_prefix(b"HamCore")
            .ok_or("not a hamcore archive")?;
        let mut at = 0usize;
        let u32_at = |at: &mut usize| -> Result<u32, String> {
            let b = rest.get(*at..*at + 4).ok_or("truncated file table")?;
            *at += 4;
            Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let count = u32_at(&mut at)?;
        for _ in 0..count {
            let len = u32_at(&mut at)? as usize;
            let name = rest
                .get(at..at + len.saturating_sub(1))
                .ok_or("truncated file name")?;
            at += len.saturating_sub(1);
            let size = u32_at(&mut at)?;
            let packed = u32_at(&mut at)? as usize;
            // offsets count from the start of the archive
            let offset = (u32_at(&mut at)? as usize)
                .checked_sub(7)
                .ok_or("bad offset")?;
            if !name.eq_ignore_ascii_case(b"strtable_en.stb") {
                continue;
            }
            let data = rest
                .get(offset..offset + packed)
                .ok_or("truncated file data")?;
            let mut text = Vec::with_capacity(size as usize);
            flate2::read::ZlibDecoder::new(data)
                .take(MAX_TABLE)
                .read_to_end(&mut text)
                .map_err(|e| format!("strtable_en.stb: {e}"))?;
            return Ok(StringTable::from_stb(&String::from_utf8_lossy(&text)));
        }
        Err("no strtable_en.stb in the archive".into())
    }

    /// A table from its text.
    pub fn from_stb(text: &str) -> StringTable {
        let mut map = HashMap::new();
        let mut prefix = String::new();
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
                continue;
            }
            let Some(end) = line.find([' ', '\t']) else {
                continue;
            };
            let (name, value) = (&line[..end], line[end..].trim_start_matches([' ', '\t']));
            if value.is_empty() {
                continue;
            }
            let value = unescape(value);
            if name.eq_ignore_ascii_case("PREFIX") {
                let p = value.trim();
                prefix = if p == "$" || p.eq_ignore_ascii_case("NULL") {
                    String::new()
                } else {
                    format!("{p}@")
                };
                continue;
            }
            map.insert(format!("{prefix}{name}").to_ascii_uppercase(), value);
        }
        StringTable(map)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(&name.to_ascii_uppercase()).map(String::as_str)
    }

    /// vpncmd's help for a command (what follows its "X command - title" line), on an
    /// 80-column console; `params` as the command declares them (`[name]` for the unnamed
    /// one). `None` if the table has no help for the command.
    pub fn command_help(&self, command: &str, params: &[&str]) -> Option<String> {
        let help = self.get(&format!("CMD_{command}_Help"))?;
        let purpose = self.get(&format!("CMD_{command}")).unwrap_or("");
        let args = self.get(&format!("CMD_{command}_Args")).unwrap_or("");
        let word =
            |name: &str, fallback: &'static str| self.get(name).unwrap_or(fallback).to_string();
        const CONSOLE: usize = 80;
        let width = CONSOLE - 2;
        let mut out = String::new();
        let mut line = |s: &str| {
            out.push_str(s);
            out.push('\n');
        };
        line(&word("CMD_HELP_TITLE", "Help for command \"%S\"").replace("%S", command));
        line("");
        let sections = [
            (word("CMD_HELP_DESCRIPTION", "Purpose:"), purpose),
            (word("CMD_HELP_HELP", "Description:"), help),
            (word("CMD_HELP_USAGE", "Usage:"), args),
        ];
        for (i, (head, text)) in sections.iter().enumerate() {
            if i > 0 {
                line("");
            }
            line(head);
            for l in separate_by_width(text, width - 2) {
                line(&format!("  {l}"));
            }
        }
        if !params.is_empty() {
            line("");
            line(&word("CMD_HELP_ARGS", "Parameters:"));
            // each name as shown ("/NAME", or "name" for "[name]") padded to the longest
            let shown: Vec<String> = params
                .iter()
                .map(|p| match p.strip_prefix('[') {
                    Some(n) => n.trim_end_matches(']').to_string(),
                    None => format!("/{p}"),
                })
                .collect();
            let widest = shown.iter().map(|s| s.chars().count()).max().unwrap_or(0);
            let console = CONSOLE - 1;
            let start = 2 + widest + 1;
            let text_width = if console >= start + 5 {
                console - start - 3
            } else {
                2
            };
            for (p, name) in params.iter().zip(&shown) {
                let text = self.get(&format!("CMD_{command}_{p}")).unwrap_or("");
                for (i, l) in separate_by_width(text, text_width).iter().enumerate() {
                    if i == 0 {
                        line(&format!("  {name:<widest$} - {l}"));
                    } else {
                        line(&format!("  {:widest$}   {l}", ""));
                    }
                }
            }
        }
        Some(out)
    }
}

/// The table's escapes: `\\`, `\ `, `\n`, `\r`, `\t` (any other escaped character is
/// dropped, as SoftEther drops it).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            None => break,
            Some('\\') => out.push('\\'),
            Some(' ') => out.push(' '),
            Some('n' | 'N') => out.push('\n'),
            Some('r' | 'R') => out.push('\r'),
            Some('t' | 'T') => out.push('\t'),
            Some(_) => {}
        }
    }
    out
}

/// Characters vpncmd keeps together when it wraps: letters, digits and `_."',)]`.
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '"' | '\'' | ',' | ')' | ']')
}

/// vpncmd's wrapping: lines break at line breaks, before a word that does not fit in what is
/// left of the line (if it fits in a whole one), and wherever a line reaches `width`; each
/// line loses its leading blanks. Right after a line break, what is "left of the line" is
/// still measured against the line before it (vpncmd's buffer keeps it), so a first word that
/// would not have fitted there gets an empty line before it; vpncmd prints those too.
pub fn separate_by_width(s: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let chars: Vec<char> = s.chars().collect();
    let mut lines = Vec::new();
    let mut cur = String::new();
    // the width of the line the buffer still holds while `cur` is empty
    let mut stale = 0usize;
    let mut i = 0;
    while i <= chars.len() {
        let c = chars.get(i).copied();
        match c {
            None | Some('\n') | Some('\r') => {
                if c == Some('\r') && chars.get(i + 1) == Some(&'\n') {
                    i += 1;
                }
                if !cur.is_empty() {
                    stale = cur.chars().count();
                }
                lines.push(std::mem::take(&mut cur));
            }
            Some(c) => {
                let next_word = chars[i..].iter().take_while(|c| is_word_char(**c)).count();
                let used = if cur.is_empty() {
                    stale
                } else {
                    cur.chars().count()
                };
                let remain = width.saturating_sub(used);
                if remain >= 1 && next_word > remain && next_word <= width {
                    lines.push(std::mem::take(&mut cur));
                }
                cur.push(c);
                stale = 0;
                if cur.chars().count() >= width {
                    stale = width;
                    lines.push(std::mem::take(&mut cur));
                }
            }
        }
        i += 1;
    }
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
        .into_iter()
        .map(|l| l.trim_start().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_keeps_words_whole_when_they_fit_and_cuts_at_the_width() {
        // (the blank before a break stays at the end of its line, as in vpncmd)
        assert_eq!(
            separate_by_width("one two three four", 9),
            vec!["one two ", "three ", "four"]
        );
        // a word longer than a line is cut where the line is full, and the rest starts a new
        // line if it fits one; a line that ends full leaves an empty one after it (vpncmd's
        // way)
        assert_eq!(
            separate_by_width("abcdefghijkl", 5),
            vec!["abcde", "fg", "hijkl", ""]
        );
        // line breaks are kept; "(" is not a word character, so it stays on its line
        assert_eq!(separate_by_width("a (bc)\nd", 4), vec!["a (", "bc)", "d"]);
        assert_eq!(separate_by_width("", 10), vec![""]);
        // after a break, a first word that would not have fitted on the line before gets an
        // empty line first
        assert_eq!(
            separate_by_width("abcdefg\nhij k", 9),
            vec!["abcdefg", "", "hij k"]
        );
    }

    #[test]
    fn a_table_reads_escapes_prefixes_and_comments() {
        let t = StringTable::from_stb(
            "# a comment\nCMD_Demo\t\tDo a demo\nCMD_Demo_Help\tLine one. \\nLine two.\nPREFIX D_X\nTITLE\tinside\nPREFIX NULL\nonlyname\n",
        );
        assert_eq!(t.get("cmd_demo"), Some("Do a demo"));
        assert_eq!(t.get("CMD_Demo_Help"), Some("Line one. \nLine two."));
        assert_eq!(t.get("D_X@TITLE"), Some("inside"));
        assert_eq!(t.get("onlyname"), None);
    }

    #[test]
    fn command_help_has_vpncmds_sections_and_parameter_columns() {
        let t = StringTable::from_stb(concat!(
            "CMD_Demo\tDo a demo\n",
            "CMD_Demo_Help\tFirst paragraph. \\nSecond.\n",
            "CMD_Demo_Args\tDemo [name] [/LONGER:x]\n",
            "CMD_Demo_[name]\tThe name.\n",
            "CMD_Demo_LONGER\tA longer parameter.\n",
        ));
        let help = t.command_help("Demo", &["[name]", "LONGER"]).unwrap();
        assert_eq!(
            help,
            concat!(
                "Help for command \"Demo\"\n\n",
                "Purpose:\n  Do a demo\n\n",
                "Description:\n  First paragraph. \n  Second.\n\n",
                "Usage:\n  Demo [name] [/LONGER:x]\n\n",
                "Parameters:\n",
                "  name    - The name.\n",
                "  /LONGER - A longer parameter.\n",
            )
        );
        assert_eq!(t.command_help("Other", &[]), None);
    }

    #[test]
    fn an_archive_gives_its_english_table_and_bad_archives_an_error() {
        use std::io::Write;
        let stb = b"CMD_Demo_Help\tHelp text\n";
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(stb).unwrap();
        let packed = z.finish().unwrap();
        let name = b"strtable_en.stb";
        let mut a = b"HamCore".to_vec();
        a.extend_from_slice(&1u32.to_be_bytes());
        a.extend_from_slice(&(name.len() as u32 + 1).to_be_bytes());
        a.extend_from_slice(name);
        a.extend_from_slice(&(stb.len() as u32).to_be_bytes());
        a.extend_from_slice(&(packed.len() as u32).to_be_bytes());
        let offset = a.len() + 4;
        a.extend_from_slice(&(offset as u32).to_be_bytes());
        a.extend_from_slice(&packed);
        let t = StringTable::from_hamcore(&a).unwrap();
        assert_eq!(t.get("CMD_Demo_Help"), Some("Help text"));
        for cut in 0..a.len() {
            assert!(StringTable::from_hamcore(&a[..cut]).is_err());
        }
        assert!(StringTable::from_hamcore(b"NotHamCore").is_err());
    }
}
