//! Real infrastructure peers of the rate-limit tests, from Debian (scripts/test.sh installs
//! them): `redis-server`, the store cluster-scope rules share, which a test can stop and start
//! again on the same port; and `haproxy`, a real balancer in front of several gateways.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::net::{free_port, spawn_listening, wait_for_listener};
use crate::process::ManagedChild;

/// A `redis-server` on a loopback port, without persistence (a restart starts empty, as a
/// replaced Redis would).
pub struct RedisServer {
    process: Option<ManagedChild>,
    addr: SocketAddr,
}

fn redis_command(port: u16) -> Command {
    let mut command = Command::new("redis-server");
    command.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "no",
    ]);
    command
}

impl RedisServer {
    pub fn start() -> Self {
        let (process, addr) = spawn_listening("redis-server", redis_command);
        Self {
            process: Some(process),
            addr,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Kills it (connections reset, nothing kept).
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Starts it again on the same port (empty).
    pub fn restart(&mut self) {
        self.stop();
        let mut last = String::new();
        // The port was ours a moment ago; a retry covers the kernel releasing it late.
        for _ in 0..20 {
            let mut process = ManagedChild::spawn(
                format!("redis-server :{}", self.addr.port()),
                redis_command(self.addr.port()),
            )
            .unwrap_or_else(|e| panic!("cannot run redis-server: {e}"));
            match wait_for_listener(self.addr, &mut process, Duration::from_secs(10)) {
                Ok(()) => {
                    self.process = Some(process);
                    return;
                }
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not restart on {}: {last}", self.addr);
    }
}

/// A scratch file removed on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `haproxy` in HTTP mode balancing requests round-robin over `backends`.
pub struct HaProxy {
    _process: ManagedChild,
    addr: SocketAddr,
    _config: TempFile,
}

impl HaProxy {
    pub fn start(backends: &[SocketAddr]) -> Self {
        let mut last = String::new();
        for attempt in 0..3 {
            let port = free_port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut text = format!(
                "global\n  maxconn 1000\n\
                 defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
                 frontend front\n  bind 127.0.0.1:{port}\n  default_backend gateways\n\
                 backend gateways\n  balance roundrobin\n"
            );
            for (i, b) in backends.iter().enumerate() {
                text.push_str(&format!("  server gw{i} {b}\n"));
            }
            let file = std::env::temp_dir().join(format!(
                "mcpgate-haproxy-{}-{port}-{attempt}.cfg",
                std::process::id()
            ));
            if let Err(e) = std::fs::write(&file, text) {
                panic!("cannot write {}: {e}", file.display());
            }
            let config = TempFile(file);
            let mut command = Command::new("haproxy");
            command.arg("-db").arg("-f").arg(&config.0);
            let mut process = ManagedChild::spawn(format!("haproxy :{port}"), command)
                .unwrap_or_else(|e| panic!("cannot run haproxy (is it installed?): {e}"));
            match wait_for_listener(addr, &mut process, Duration::from_secs(20)) {
                Ok(()) => {
                    return Self {
                        _process: process,
                        addr,
                        _config: config,
                    }
                }
                Err(e) => last = e,
            }
        }
        panic!("haproxy did not start: {last}");
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}
