//! The user lists that access rules name as `include:FILE` or `exclude:FILE` (SoftEther's): a
//! file of user names, one per line (blank lines and lines starting with `#`, `//` or `;`
//! skipped), at most 1 MiB. A relative path is relative to the config file's folder (SoftEther:
//! to its program's). The runtime reads them after every config change and every 30 s, and
//! gives the engine those that changed.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use etherhub_config::Config;
use etherhub_hub::UserLists;

/// SoftEther's ACCESS_LIST_INCLUDE_FILE_MAX_SIZE.
const MAX_FILE: u64 = 1 << 20;

/// How often the files are read again (SoftEther's default AccessListIncludeFileCacheLifetime).
pub const REFRESH: std::time::Duration = std::time::Duration::from_secs(30);

/// The names in a list file; an unreadable or oversized file is an empty list (as in
/// SoftEther), said in the log.
pub fn read_list(path: &Path) -> Vec<String> {
    let mut text = String::new();
    let read = std::fs::File::open(path).and_then(|f| {
        let mut f = f.take(MAX_FILE + 1);
        f.read_to_string(&mut text)
    });
    match read {
        Ok(n) if n as u64 > MAX_FILE => {
            tracing::warn!(path = %path.display(), "access list user file over 1 MiB: used as an empty list");
            return Vec::new();
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "access list user file unreadable: used as an empty list");
            return Vec::new();
        }
    }
    text.lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with('#') && !l.starts_with("//") && !l.starts_with(';')
        })
        .map(str::to_string)
        .collect()
}

/// Each hub's lists, for the files its access rules name; `base`: the config file's folder.
pub fn lists_of(cfg: &Config, base: &Path) -> BTreeMap<String, UserLists> {
    let mut out = BTreeMap::new();
    for hub in cfg.hub_names() {
        let mut lists = UserLists::default();
        let rules = cfg.access_list(&hub).unwrap_or_default();
        let named = rules
            .iter()
            .flat_map(|r| [r.src_user.as_str(), r.dst_user.as_str()])
            .filter_map(UserLists::reference);
        for (file, _) in named {
            if !file.is_empty() {
                lists.insert(file, read_list(&base.join(file)));
            }
        }
        out.insert(hub, lists);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_file_is_names_without_comments_and_blanks() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("staff.txt");
        std::fs::write(&f, "# staff\r\nalice\n\n  bob  \n// old\n; carol\ndave\n").unwrap();
        assert_eq!(read_list(&f), vec!["alice", "bob", "dave"]);
        assert!(read_list(&dir.path().join("missing")).is_empty());
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; (MAX_FILE + 10) as usize]).unwrap();
        assert!(read_list(&big).is_empty());
    }
}
