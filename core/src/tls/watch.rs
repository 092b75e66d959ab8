//! Certificate rotation from disk: a thread that looks at the files of every TLS listener (chain,
//! key, client CA bundle) every `watch` interval, and when any of them changed, builds the
//! listener's configuration again and installs it (connections open meanwhile keep theirs).
//!
//! A change is seen through the file's metadata, following symlinks (size, modification time,
//! device and inode), which also catches the symlink swaps of Kubernetes secret volumes
//! (cert-manager) and certbot's `live/` links. Polling rather than inotify: a handful of `stat`
//! calls every few seconds, no watch descriptors to lose when a directory is replaced.
//!
//! A file that fails to load (a key written after its certificate, a half-written file) keeps the
//! current certificate and logs why, once per change: the next change is tried again.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::server::{self, TlsAcceptor};

/// One file's identity and version as far as `stat` tells.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    dev: u64,
    ino: u64,
}

/// The stamps of a set of files (`None`: the file could not be read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileStamps(Vec<(PathBuf, Option<Stamp>)>);

impl FileStamps {
    pub fn take(paths: &[PathBuf]) -> FileStamps {
        FileStamps(
            paths
                .iter()
                .map(|p| {
                    let stamp = std::fs::metadata(p).ok().map(|m| Stamp {
                        modified: m.modified().ok(),
                        len: m.len(),
                        dev: m.dev(),
                        ino: m.ino(),
                    });
                    (p.clone(), stamp)
                })
                .collect(),
        )
    }
}

/// The shortest pause between two looks, whatever the configured interval.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Starts the watcher for the listeners that have a `watch` interval; does nothing when none has.
pub fn spawn(acceptors: Vec<Arc<TlsAcceptor>>) -> std::io::Result<()> {
    let watched: Vec<Arc<TlsAcceptor>> = acceptors
        .into_iter()
        .filter(|a| a.settings().0.watch.is_some())
        .collect();
    if watched.is_empty() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("mcpgate-tls-watch".into())
        .spawn(move || {
            let mut next: Vec<Instant> = watched.iter().map(|_| Instant::now()).collect();
            loop {
                let now = Instant::now();
                for (acceptor, due) in watched.iter().zip(next.iter_mut()) {
                    let Some(interval) = acceptor.settings().0.watch else {
                        continue;
                    };
                    if now >= *due {
                        check(acceptor);
                        *due = now + interval.max(MIN_INTERVAL);
                    }
                }
                let wake = next.iter().min().copied().unwrap_or(now + MIN_INTERVAL);
                std::thread::sleep(
                    wake.saturating_duration_since(Instant::now())
                        .max(MIN_INTERVAL),
                );
            }
        })
        .map(|_| ())
}

/// Reloads `acceptor` if its files changed since they were last read. Returns whether it
/// installed a new configuration.
pub fn check(acceptor: &TlsAcceptor) -> bool {
    let (settings, stamps) = acceptor.settings();
    let now = FileStamps::take(&settings.files());
    if now == stamps {
        return false;
    }
    match server::build(&settings) {
        Ok(loaded) => {
            acceptor.install(settings, &loaded);
            crate::info!(
                "tls {}: certificate files changed; reloaded: {}",
                acceptor.label,
                loaded.summary.join("; ")
            );
            true
        }
        Err(e) => {
            crate::error!(
                "tls {}: certificate files changed but cannot be used, keeping the current \
                 certificate: {e}",
                acceptor.label
            );
            acceptor.note_failed_stamps(now);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::tls::server::ServerTlsSettings;
    use crate::tls::test_certs::TestPki;
    use crate::tls::{CertKeyPaths, MinVersion};

    /// The stamps of the files the acceptor's configuration was read from.
    fn stamps(acceptor: &TlsAcceptor) -> FileStamps {
        acceptor.settings().1
    }

    #[test]
    fn changed_files_are_reloaded_and_bad_ones_kept_out() {
        let pki = TestPki::new("watch");
        let first = pki.server("first", &["localhost"]);
        let live = CertKeyPaths {
            cert: pki.path("live.pem"),
            key: pki.path("live.key"),
        };
        let copy = |from: &CertKeyPaths| {
            for (src, dst) in [(&from.key, &live.key), (&from.cert, &live.cert)] {
                let tmp = dst.with_extension("tmp");
                std::fs::copy(src, &tmp).unwrap_or_else(|e| panic!("{e}"));
                std::fs::rename(&tmp, dst).unwrap_or_else(|e| panic!("{e}"));
            }
        };
        copy(&first);
        let settings = ServerTlsSettings {
            certs: vec![live.clone()],
            client_ca: None,
            min_version: MinVersion::Tls13,
            handshake_timeout: Duration::from_secs(1),
            watch: Some(Duration::from_millis(100)),
        };
        let loaded = server::build(&settings).unwrap_or_else(|e| panic!("{e}"));
        let acceptor = TlsAcceptor::new("test".into(), settings, &loaded);
        assert!(!check(&acceptor), "nothing changed yet");
        let before = Arc::as_ptr(&acceptor.current().config);
        let stamps_before = stamps(&acceptor);

        copy(&pki.server("second", &["localhost"]));
        assert!(check(&acceptor), "a changed pair was not reloaded");
        assert_ne!(Arc::as_ptr(&acceptor.current().config), before);
        assert_ne!(stamps(&acceptor), stamps_before);
        assert!(!check(&acceptor), "reloaded twice");

        // A key that does not match: kept out, not retried until the files change again.
        let installed = Arc::as_ptr(&acceptor.current().config);
        let third = pki.server("third", &["localhost"]);
        std::fs::copy(&third.key, &live.key).unwrap_or_else(|e| panic!("{e}"));
        assert!(!check(&acceptor));
        assert_eq!(Arc::as_ptr(&acceptor.current().config), installed);
        assert!(!check(&acceptor));
        std::fs::copy(&third.cert, &live.cert).unwrap_or_else(|e| panic!("{e}"));
        assert!(check(&acceptor), "the completed pair was not reloaded");
    }
}
