//! Keeps the upstreams' addresses current while the gateway runs. Host names are resolved when
//! the configuration is loaded; a thread of its own (never a worker) resolves them again every
//! `[gateway.dns] refresh`, and soon after a worker fails to connect to an upstream (an address
//! may have moved). When an upstream's set of addresses changed, it publishes a new snapshot the
//! way a reload does, so workers pick it up between requests; unchanged answers (even reordered,
//! as round-robin DNS does) and failed lookups leave the running snapshot alone.

use std::net::SocketAddr;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::shared::Shared;
use crate::config::Config;
use crate::dns::{self, ResolveError};

/// With `refresh = "off"`, how often the thread looks whether a reload turned it on.
const OFF_RECHECK: Duration = Duration::from_secs(5);
/// Connect failures trigger at most one refresh per this interval (a down upstream fails every
/// request; it must not turn into a lookup per request).
const MIN_GAP: Duration = Duration::from_secs(2);

static NUDGE: OnceLock<SyncSender<()>> = OnceLock::new();

/// Asks for an early refresh (a worker failed to connect to an upstream). Never blocks; a no-op
/// when no refresher runs (tests, `mcpgate check`).
pub fn nudge() {
    if let Some(tx) = NUDGE.get() {
        let _ = tx.try_send(());
    }
}

/// Starts the refresher thread; it ends when the gateway drains.
pub fn spawn(shared: Arc<Shared>) -> std::io::Result<()> {
    let (tx, rx) = sync_channel(1);
    // One gateway per process: a second `spawn` (never done) would keep the first channel.
    let _ = NUDGE.set(tx);
    std::thread::Builder::new()
        .name("mcpgate-dns-refresh".into())
        .spawn(move || run(&shared, &rx))
        .map(drop)
}

fn run(shared: &Shared, nudges: &Receiver<()>) {
    let mut last = Instant::now(); // the snapshot was resolved just now, by the loader
    loop {
        let dns = shared.config().gateway.dns.clone();
        let event = nudges.recv_timeout(dns.refresh.unwrap_or(OFF_RECHECK));
        if shared.draining() {
            return;
        }
        match event {
            Err(RecvTimeoutError::Disconnected) => return,
            _ if dns.refresh.is_none() => continue,
            Ok(()) => {
                let since = last.elapsed();
                if since < MIN_GAP {
                    std::thread::sleep(MIN_GAP - since);
                }
                // Failures reported meanwhile are answered by this one refresh.
                while nudges.try_recv().is_ok() {}
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        refresh_once(shared, |host, port| {
            dns::resolve_blocking(host, port, dns.timeout)
        });
        last = Instant::now();
    }
}

/// Resolves every named upstream of the current snapshot with `resolve` and publishes a new
/// snapshot if some address set changed (unless a reload replaced the snapshot meanwhile: the
/// reload resolved its own names). Returns whether it published one.
pub fn refresh_once(
    shared: &Shared,
    resolve: impl Fn(&str, u16) -> Result<Vec<SocketAddr>, ResolveError>,
) -> bool {
    let current = shared.config();
    let mut next: Option<Config> = None;
    for (i, api) in current.apis.iter().enumerate() {
        let up = &api.upstream;
        if up.host_is_ip() {
            continue;
        }
        match resolve(&up.host, up.port) {
            Ok(addrs) if !same_set(&addrs, &up.addrs) => {
                crate::info!(
                    "api {}: `{}` now resolves to {addrs:?} (was {:?})",
                    api.name,
                    up.host,
                    up.addrs
                );
                let next = next.get_or_insert_with(|| (*current).clone());
                if let Some(api) = next.apis.get_mut(i) {
                    api.upstream.set_addrs(addrs);
                }
            }
            Ok(_) => {}
            Err(e) => crate::warn!(
                "api {}: keeping the upstream's addresses {:?}: {e}",
                api.name,
                up.addrs
            ),
        }
    }
    match next {
        Some(config) => shared.replace_config_if_current(&current, config),
        None => false,
    }
}

fn same_set(a: &[SocketAddr], b: &[SocketAddr]) -> bool {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_str, Overrides};

    const TOML: &str = "[[api]]\npath = \"/named\"\nupstream = \"http://localhost:3001/mcp\"\n\
                        [[api]]\npath = \"/literal\"\nupstream = \"http://127.0.0.1:3002/mcp\"\n";

    fn shared() -> Shared {
        Shared::new(
            load_str(TOML, "test.toml", &Overrides::default()).unwrap_or_else(|e| panic!("{e}")),
        )
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn a_moved_upstream_gets_a_new_snapshot() {
        let shared = shared();
        let before = shared.config();
        let generation = shared.generation();
        let asked = std::cell::RefCell::new(Vec::new());
        let moved = refresh_once(&shared, |host, port| {
            asked.borrow_mut().push((host.to_owned(), port));
            Ok(vec![addr("10.1.2.3:3001"), addr("10.1.2.4:3001")])
        });
        assert!(moved);
        // The literal upstream is never looked up.
        assert_eq!(*asked.borrow(), vec![("localhost".to_owned(), 3001)]);
        let after = shared.config();
        assert_ne!(shared.generation(), generation);
        assert_eq!(after.apis[0].upstream.addr, addr("10.1.2.3:3001"));
        assert_eq!(after.apis[0].upstream.addrs.len(), 2);
        assert_eq!(after.apis[1].upstream, before.apis[1].upstream);
        assert_eq!(after.apis[0].upstream.host_header, "localhost:3001");
    }

    #[test]
    fn same_addresses_or_a_failed_lookup_change_nothing() {
        let shared = shared();
        let generation = shared.generation();
        let mut current = shared.config().apis[0].upstream.addrs.clone();
        current.reverse(); // round-robin DNS reorders; the set is what counts
        assert!(!refresh_once(&shared, |_, _| Ok(current.clone())));
        assert!(!refresh_once(&shared, |host, _| Err(
            ResolveError::Timeout {
                host: host.to_owned(),
                timeout: Duration::from_secs(1),
            }
        )));
        assert_eq!(shared.generation(), generation);
    }

    #[test]
    fn a_reload_during_the_lookups_wins() {
        let shared = shared();
        let reloaded = load_str(TOML, "reloaded.toml", &Overrides::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let moved = refresh_once(&shared, |_, _| {
            // SIGHUP while this refresh was resolving.
            shared.replace_config(reloaded.clone());
            Ok(vec![addr("10.9.9.9:3001")])
        });
        assert!(!moved);
        assert_eq!(shared.config().source, "reloaded.toml");
        assert_ne!(shared.config().apis[0].upstream.addr, addr("10.9.9.9:3001"));
    }
}
