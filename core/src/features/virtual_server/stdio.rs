//! Stdio upstreams of virtual APIs: one child process per configured stdio upstream, shared by
//! every client session of its API and multiplexed (`super::shared`: the gateway initializes it
//! once and remaps every JSON-RPC id onto its own counter). Shared processes also bound the
//! process count by configuration (`MAX_STDIO_PROCESSES`) rather than by client behaviour. The
//! cost, documented: server-side session state (log level, subscriptions) is common to the API's
//! clients.
//!
//! This module owns what is stdio's own: spawning the child with an explicit environment
//! (cleared, then `PATH` and `HOME`, then the configured `env` — the gateway's own variables and
//! secrets never reach it), the stdin writer thread (workers queue lines, never block on a full
//! pipe), the stderr thread (each line into the gateway's log with the upstream's name) and
//! reading stdout lines. The child dies with the gateway (`PR_SET_PDEATHSIG`), on shutdown
//! (`shared::stop_all`) and when a reload removes it (`shared::reconcile`).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::shared::{Connector, Hangup, Link, INIT_TIMEOUT};
use crate::config::virtual_server::{StdioCommand, Transport};

/// A stdio upstream's shared link.
pub type Process = Link;

/// The process serving `api`'s stdio upstream `upstream`, if the configuration has it.
pub fn process(api: &str, upstream: &str, spec: &StdioCommand) -> Option<Arc<Process>> {
    super::shared::link(api, upstream, &Transport::Stdio(spec.clone()))
}

/// How a stdio link connects: it runs the command.
pub struct StdioConnector(pub StdioCommand);

impl Hangup for Child {
    fn hang_up(&mut self) {
        let _ = self.kill();
    }
    fn reap(&mut self) {
        let _ = self.kill();
        let _ = self.wait();
    }
}

impl Connector for StdioConnector {
    fn kind(&self) -> &'static str {
        "stdio"
    }

    /// One life of the process. `Ok`: it exited (or closed stdout).
    fn run_once(&self, link: &Link) -> Result<(), String> {
        let spec = &self.0;
        let mut child = command(spec)
            .spawn()
            .map_err(|e| format!("cannot run `{}`: {e}", spec.command))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        if let Some(stderr) = child.stderr.take() {
            let label = link.label.clone();
            let _ = std::thread::Builder::new()
                .name("stdio-stderr".into())
                .spawn(move || {
                    for line in BufReader::new(stderr).lines() {
                        match line {
                            Ok(line) => crate::info!("stdio upstream {label} stderr: {line}"),
                            Err(_) => break,
                        }
                    }
                });
        }
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let (lines, to_write) = mpsc::channel::<Vec<u8>>();
        let writer = std::thread::Builder::new()
            .name("stdio-stdin".into())
            .spawn(move || {
                for mut line in to_write {
                    line.push(b'\n');
                    if stdin.write_all(&line).and_then(|()| stdin.flush()).is_err() {
                        break;
                    }
                }
            });
        if let Err(e) = writer {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("cannot start its stdin writer: {e}"));
        }
        if !link.attach(lines, Box::new(child))? {
            return Ok(());
        }
        let max_line = link.max_line;
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        let init_deadline = Instant::now() + INIT_TIMEOUT;
        loop {
            line.clear();
            let n = (&mut reader)
                .take(max_line as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("reading stdout: {e}"))?;
            if n == 0 {
                return Ok(());
            }
            if line.last() != Some(&b'\n') && line.len() > max_line {
                // Framing is lost past an oversized line: restart rather than misread the rest.
                return Err(format!(
                    "a line of more than {max_line} bytes (max_line_bytes); restarting it"
                ));
            }
            let Ok(message) = serde_json::from_slice::<Value>(&line) else {
                crate::debug!("stdio upstream {}: a line that is not JSON", link.label);
                continue;
            };
            link.dispatch(message, init_deadline)?;
        }
    }
}

fn command(spec: &StdioCommand) -> Command {
    let mut cmd = Command::new(&spec.command);
    cmd.args(&spec.args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Only what a program needs to be found and to find its files; everything else is the
    // operator's explicit `env`.
    for name in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    // SAFETY: prctl(2) is async-signal-safe; it runs in the child between fork and exec. The
    // child is killed when the thread that spawned it (its supervisor) ends, so it never outlives
    // the gateway, even one killed with SIGKILL.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}
