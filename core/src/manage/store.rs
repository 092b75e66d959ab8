//! The management API's files: the config file itself (read with its version, written
//! atomically), the history of deployed versions, and the audit log.
//!
//! - Version: `sha256:` and the first 128 bits of the SHA-256 of the file's bytes. Derived from
//!   the bytes, not kept anywhere, so an edit by hand (or `git pull`) changes it too and a
//!   management write based on what was read before is refused (409) instead of undoing it.
//! - Atomic write: a temporary file in the same directory (same file system, so `rename` is
//!   atomic), `fsync`, `rename` over the config, `fsync` of the directory; the config's
//!   permissions are kept. A reader (SIGHUP, `mcpgate check`, an editor) sees the old file or
//!   the new one, never half of one.
//! - History: one copy per deployed version in a directory next to the config (default
//!   `<config>.history/`), named `<unix ms>-<version>.toml`, the last `history_keep` kept. The
//!   copies hold what the config holds (secrets included), so the directory is 0700 and the
//!   copies 0600.
//! - Audit log: one JSON object per line, appended (`O_APPEND`), 0600.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The file's version as the API shows it.
pub fn version_of(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let hex: String = d
        .as_ref()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Replaces `path` with `bytes` atomically (see the module header). A symbolic link is followed
/// and its target replaced (the config may be a link into a git checkout): renaming over the
/// link itself would turn it into a plain file and detach it from the checkout.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let resolved = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let path = resolved.as_path();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "config".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.mcpgate-tmp-{}", std::process::id()));
    let mode = fs::metadata(path).map_or(0o600, |m| m.permissions().mode() & 0o7777);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        // umask may have narrowed the mode given to open.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    // The rename itself is durable once the directory is synced.
    File::open(&dir)?.sync_all()
}

/// One deployed version in the history.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub id: String,
    pub time_ms: u64,
    pub version: String,
    pub bytes: u64,
}

/// The history directory of one config file.
#[derive(Debug, Clone)]
pub struct History {
    pub dir: PathBuf,
    pub keep: usize,
}

impl History {
    fn ensure_dir(&self) -> std::io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
    }

    /// Every entry, oldest first.
    pub fn list(&self) -> std::io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        let dir = match fs::read_dir(&self.dir) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for item in dir.flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".toml") else {
                continue;
            };
            let Some((time, hex)) = id.split_once('-') else {
                continue;
            };
            let Ok(time_ms) = time.parse::<u64>() else {
                continue;
            };
            out.push(Entry {
                id: id.to_string(),
                time_ms,
                version: format!("sha256:{hex}"),
                bytes: item.metadata().map_or(0, |m| m.len()),
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// The text of entry `id` (`None`: no such entry; ids are checked, never a path).
    pub fn get(&self, id: &str) -> std::io::Result<Option<String>> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Ok(None);
        }
        match fs::read_to_string(self.dir.join(format!("{id}.toml"))) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Records `text` as deployed now (unless the newest entry already is this version), then
    /// drops the oldest entries past `keep`.
    pub fn save(&self, text: &str) -> std::io::Result<String> {
        self.ensure_dir()?;
        let version = version_of(text.as_bytes());
        let entries = self.list()?;
        if let Some(last) = entries.last().filter(|e| e.version == version) {
            return Ok(last.id.clone());
        }
        let hex = version.trim_start_matches("sha256:");
        // Strictly increasing times keep the ids ordered even within one millisecond.
        let time = now_ms().max(entries.last().map_or(0, |e| e.time_ms + 1));
        let id = format!("{time:013}-{hex}");
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(self.dir.join(format!("{id}.toml")))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        let entries = self.list()?;
        let excess = entries.len().saturating_sub(self.keep);
        for old in entries.iter().take(excess) {
            let _ = fs::remove_file(self.dir.join(format!("{}.toml", old.id)));
        }
        Ok(id)
    }
}

/// Appends one JSON line to the audit log.
pub fn audit(path: &Path, record: &serde_json::Value) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut line = record.to_string();
    line.push('\n');
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    // One write per record: O_APPEND keeps concurrent writers' lines whole.
    f.write_all(line.as_bytes())?;
    f.sync_data()
}

/// The last `limit` records of the audit log, newest first.
pub fn audit_tail(path: &Path, limit: usize) -> std::io::Result<Vec<serde_json::Value>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str(l).ok())
        .take(limit)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mcpgate-manage-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    #[test]
    fn atomic_write_keeps_the_mode_and_leaves_no_temporary() {
        let dir = scratch("write");
        let file = dir.join("c.toml");
        fs::write(&file, "old").unwrap_or_else(|e| panic!("{e}"));
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640))
            .unwrap_or_else(|e| panic!("{e}"));
        write_atomic(&file, b"new").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fs::read_to_string(&file).unwrap_or_default(), "new");
        let mode = fs::metadata(&file).map_or(0, |m| m.permissions().mode() & 0o777);
        assert_eq!(mode, 0o640);
        let names: Vec<_> = fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_linked_config_is_written_through_the_link() {
        let dir = scratch("link");
        let target = dir.join("repo.toml");
        fs::write(&target, "old").unwrap_or_else(|e| panic!("{e}"));
        let link = dir.join("mcpgate.toml");
        std::os::unix::fs::symlink(&target, &link).unwrap_or_else(|e| panic!("{e}"));
        write_atomic(&link, b"new").unwrap_or_else(|e| panic!("{e}"));
        assert!(fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()));
        assert_eq!(fs::read_to_string(&target).unwrap_or_default(), "new");
    }

    #[test]
    fn history_keeps_the_last_n_and_skips_repeats() {
        let dir = scratch("history");
        let h = History {
            dir: dir.join("h"),
            keep: 2,
        };
        let a = h.save("a").unwrap_or_default();
        assert_eq!(
            h.save("a").unwrap_or_default(),
            a,
            "same version: no new entry"
        );
        h.save("b").unwrap_or_else(|e| panic!("{e}"));
        let c = h.save("c").unwrap_or_default();
        let list = h.list().unwrap_or_default();
        assert_eq!(list.len(), 2);
        assert_eq!(list.last().map(|e| e.id.clone()), Some(c.clone()));
        assert_eq!(h.get(&c).ok().flatten().as_deref(), Some("c"));
        assert_eq!(h.get(&a).ok().flatten(), None, "pruned");
        assert_eq!(h.get("../x").ok().flatten(), None);
        assert_eq!(
            list.last().map(|e| e.version.clone()),
            Some(version_of(b"c"))
        );
    }
}
