//! Child processes owned by a test: each in its own process group, its output captured for
//! diagnostics, the whole group killed when the owner is dropped (including when a test panics),
//! and the captured output printed when the drop happens during a panic.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Output lines of a child, shared with the threads that read its pipes.
#[derive(Clone, Default)]
pub struct OutputLog(Arc<Mutex<String>>);

impl OutputLog {
    fn push_line(&self, stream: &str, line: &str) {
        let mut log = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        log.push_str(stream);
        log.push_str(line);
        if !line.ends_with('\n') {
            log.push('\n');
        }
    }

    /// Everything captured so far.
    pub fn snapshot(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// Puts the child in a process group of its own (so everything it forks dies with it) and asks
/// the kernel to kill it if the thread that spawned it goes away without dropping us (an aborted
/// test), so no server outlives its test.
fn isolate(command: &mut Command) {
    command.process_group(0);
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2), which is
    // async-signal-safe; it touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn pump<R: Read + Send + 'static>(
    reader: R,
    stream: &'static str,
    log: OutputLog,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => log.push_line(stream, &line),
            }
        }
    })
}

/// A long-running child (a server) that is killed with its process group on drop.
pub struct ManagedChild {
    name: String,
    child: Child,
    log: OutputLog,
    pumps: Vec<JoinHandle<()>>,
}

impl ManagedChild {
    /// Spawns `command` with stdout and stderr captured into the child's log.
    pub fn spawn(name: impl Into<String>, mut command: Command) -> std::io::Result<Self> {
        isolate(&mut command);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn()?;
        let log = OutputLog::default();
        let mut pumps = Vec::new();
        if let Some(out) = child.stdout.take() {
            pumps.push(pump(out, "out| ", log.clone()));
        }
        if let Some(err) = child.stderr.take() {
            pumps.push(pump(err, "err| ", log.clone()));
        }
        Ok(Self {
            name: name.into(),
            child,
            log,
            pumps,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the child has already exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// What the child printed so far, for failure messages.
    pub fn output(&self) -> String {
        self.log.snapshot()
    }

    /// Sends `signal` to the child alone (not its group).
    pub fn signal(&self, signal: libc::c_int) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on a pid we spawned and have not reaped; no memory is involved.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }

    /// Waits until the child exits, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill_group(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on the process group we created for this child (pgid == its pid).
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ManagedChild {
    fn drop(&mut self) {
        self.kill_group();
        for pump in self.pumps.drain(..) {
            let _ = pump.join();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- output of {} (pid {}) -----\n{}----- end of {} -----",
                self.name,
                self.child.id(),
                self.log.snapshot(),
                self.name
            );
        }
    }
}

/// The result of a short-lived command run to completion.
#[derive(Debug)]
pub struct Finished {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

/// Runs `command` to completion with a deadline; on timeout the process group is killed and
/// `timed_out` is set, so a hung client fails its test instead of hanging the suite.
pub fn run_to_completion(mut command: Command, timeout: Duration) -> std::io::Result<Finished> {
    isolate(&mut command);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let out_log = OutputLog::default();
    let err_log = OutputLog::default();
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(pump(out, "", out_log.clone()));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(pump(err, "", err_log.clone()));
    }
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            timed_out = true;
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: kill(2) on the process group created for this child.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            break child.wait().ok();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Anything the child left behind in its group would keep our pipes open forever.
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on the process group created for this child; ESRCH when it is empty.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    for pump in pumps {
        let _ = pump.join();
    }
    Ok(Finished {
        status,
        stdout: out_log.snapshot(),
        stderr: err_log.snapshot(),
        timed_out,
    })
}
