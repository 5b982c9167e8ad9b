//! Saving without ever losing a config: write a temporary file beside the real one, fsync it,
//! rename it over the old one, fsync the directory. The old file is first kept in a backup folder
//! (SoftEther keeps `backup.vpn_server.config/`); only the newest few backups are kept. A file that
//! fails to parse is reported and left exactly as it is.

use crate::model::Config;
use crate::tree::ParseError;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// How many dated backups to keep.
pub const BACKUPS_KEPT: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: {source} (the file is left untouched; fix or move it and start again)")]
    Parse { path: PathBuf, source: ParseError },
    #[error("cannot save {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// The config file on disk.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Store { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Removes the temporary files a save leaves behind when the process dies between
    /// creating and renaming them (kill -9, power loss): `.<name>.tmp.<pid>` beside the config
    /// and `.<backup>.tmp` in the backup folder. The config itself and finished backups are
    /// never touched. Call it at start-up, before this process saves anything.
    pub fn remove_stale_temporaries(&self) -> io::Result<usize> {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!(".{name}.tmp.");
        let mut removed = 0;
        for e in fs::read_dir(self.dir())?.filter_map(Result::ok) {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                fs::remove_file(e.path())?;
                removed += 1;
            }
        }
        if let Ok(entries) = fs::read_dir(self.backup_dir()) {
            for e in entries.filter_map(Result::ok) {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with('.') && n.ends_with(".tmp") {
                    fs::remove_file(e.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// The folder holding dated backups, beside the config file.
    pub fn backup_dir(&self) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "vpn_server.config".into());
        self.dir().join(format!("backup.{name}"))
    }

    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// Loads the config; `Ok(None)` when there is no file yet.
    pub fn load(&self) -> Result<Option<Config>, StoreError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let text = String::from_utf8(bytes).map_err(|e| StoreError::Parse {
            path: self.path.clone(),
            source: ParseError {
                line: 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count(),
                msg: "the file is not valid UTF-8".into(),
            },
        })?;
        Config::parse(&text)
            .map(Some)
            .map_err(|source| StoreError::Parse {
                path: self.path.clone(),
                source,
            })
    }

    /// Saves atomically; the previous file (when its content differs) goes to the backup folder.
    pub fn save(&self, config: &Config) -> Result<(), StoreError> {
        let werr = |source| StoreError::Write {
            path: self.path.clone(),
            source,
        };
        let text = config.to_text();
        let old = fs::read(&self.path).ok();
        if old.as_deref() == Some(text.as_bytes()) {
            return Ok(());
        }
        if let Some(old) = &old {
            self.backup(old).map_err(werr)?;
        }
        let tmp = self.dir().join(format!(
            ".{}.tmp.{}",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        ));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            restrict_permissions(&f)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &self.path)?;
            File::open(self.dir())?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(werr)
    }

    fn backup(&self, old: &[u8]) -> io::Result<()> {
        let dir = self.backup_dir();
        fs::create_dir_all(&dir)?;
        let stem = self
            .path
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "vpn_server".into());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let base = format!("{stem}_{}", timestamp(now.as_secs()));
        // several saves in one second each keep their own backup
        let mut name = format!("{base}.config");
        let mut n = 1;
        while dir.join(&name).exists() {
            name = format!("{base}_{n}.config");
            n += 1;
        }
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut f = File::create(&tmp)?;
        restrict_permissions(&f)?;
        f.write_all(old)?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join(&name))?;
        self.prune_backups(&dir, &stem)
    }

    fn prune_backups(&self, dir: &Path, stem: &str) -> io::Result<()> {
        let mut backups: Vec<(SystemTime, PathBuf)> = fs::read_dir(dir)?
            .filter_map(Result::ok)
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(stem) && n.ends_with(".config")
            })
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        backups.sort();
        let excess = backups.len().saturating_sub(BACKUPS_KEPT);
        for (_, p) in backups.into_iter().take(excess) {
            fs::remove_file(p)?;
        }
        Ok(())
    }

    /// The backups, oldest first.
    pub fn backups(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.backup_dir())
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "config"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by_key(|p| fs::metadata(p).and_then(|m| m.modified()).ok());
        v
    }
}

/// The config holds private keys: only the owner may read it.
fn restrict_permissions(f: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(fs::Permissions::from_mode(0o600))
}

/// `YYYYMMDD_HHMMSS` in UTC, as SoftEther names its backups.
pub fn timestamp(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    // civil-from-days (proleptic Gregorian), after H. Hinnant's published algorithm
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}_{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0), "19700101_000000");
        assert_eq!(timestamp(951_782_400), "20000229_000000");
        assert_eq!(timestamp(1_795_521_700), "20261124_120140");
    }
}
