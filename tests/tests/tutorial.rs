//! Runs docs/tutorial.md (issue 18): every fenced block the tutorial marks is executed in order
//! and every output it promises is checked, so the tutorial cannot drift from the binary.
//!
//! - ```` ```toml file=NAME ```` is written to NAME in a scratch directory (the working
//!   directory of every command);
//! - ```` ```sh tutorial ```` runs in `bash -eo pipefail` after the `prelude` blocks (variables,
//!   the `mcp` helper), and must succeed; the ```` ```text expect ```` block after it lists lines
//!   its output must contain. With `retry`, the block runs again until they appear (records and
//!   metrics are published by the workers within a fraction of a second), 15 s at most;
//! - ```` ```sh tutorial bg=NAME wait=ADDR ```` starts a long-running process (a server, the
//!   gateway) and waits until ADDR accepts connections; a later block with the same NAME replaces
//!   it (the reader's Ctrl-C and restart).
//!
//! What differs from a reader's terminal, and only that: the fixed ports of the tutorial (8080,
//! 9901, 3001, 3002, 9000) become free ports picked for this run, everywhere they appear;
//! `mcpgate` is the binary under test; `npx @modelcontextprotocol/server-everything` runs the
//! copy installed from the lockfile; `NODE` is the Node 22 the test peers ship.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mcpgate_tests::net::{free_port, wait_for_listener};
use mcpgate_tests::peers::{ensure_js_installed, repo_root, tests_dir};
use mcpgate_tests::process::{run_to_completion, ManagedChild};
use mcpgate_tests::{auth::node22, mcpgate_bin};

/// One fenced block of the tutorial that the test acts on.
#[derive(Debug, Clone)]
enum Block {
    File {
        name: String,
        text: String,
    },
    Run {
        script: String,
        prelude: bool,
        retry: bool,
    },
    Background {
        name: String,
        wait: String,
        script: String,
    },
    Expect(String),
}

fn parse(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let mut body = String::new();
        for inner in lines.by_ref() {
            if inner.trim_start().starts_with("```") {
                break;
            }
            body.push_str(inner);
            body.push('\n');
        }
        let words: Vec<&str> = info.split_whitespace().collect();
        let attr = |key: &str| {
            words
                .iter()
                .find_map(|w| w.strip_prefix(&format!("{key}=")))
                .map(str::to_string)
        };
        match words.as_slice() {
            ["toml", ..] if attr("file").is_some() => blocks.push(Block::File {
                name: attr("file").unwrap_or_default(),
                text: body,
            }),
            ["sh", "tutorial", ..] => match attr("bg") {
                Some(name) => blocks.push(Block::Background {
                    name,
                    wait: attr("wait").unwrap_or_else(|| panic!("bg block without wait=: {info}")),
                    script: body,
                }),
                None => blocks.push(Block::Run {
                    script: body,
                    prelude: words.contains(&"prelude"),
                    retry: words.contains(&"retry"),
                }),
            },
            ["text", "expect", ..] => blocks.push(Block::Expect(body)),
            _ => {}
        }
    }
    blocks
}

/// The tutorial's fixed addresses and this run's.
struct Ports(BTreeMap<u16, u16>);

impl Ports {
    fn pick() -> Self {
        let mut map = BTreeMap::new();
        for fixed in [8080, 9901, 3001, 3002, 9000] {
            let mut port = free_port();
            while map.values().any(|p| *p == port) {
                port = free_port();
            }
            map.insert(fixed, port);
        }
        Ports(map)
    }

    /// Replaces `127.0.0.1:PORT` and `PORT=PORT` of every fixed port (not followed by a digit).
    fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (fixed, port) in &self.0 {
            for (from, to) in [
                (format!("127.0.0.1:{fixed}"), format!("127.0.0.1:{port}")),
                (format!("PORT={fixed}"), format!("PORT={port}")),
            ] {
                let mut result = String::with_capacity(out.len());
                let mut rest = out.as_str();
                while let Some(at) = rest.find(&from) {
                    let after = rest.get(at + from.len()..).unwrap_or("");
                    result.push_str(rest.get(..at).unwrap_or(""));
                    if after.starts_with(|c: char| c.is_ascii_digit()) {
                        result.push_str(&from);
                    } else {
                        result.push_str(&to);
                    }
                    rest = after;
                }
                result.push_str(rest);
                out = result;
            }
        }
        out
    }
}

/// Needs a real program; missing, the test fails with how to install it.
fn require(program: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{program}` is not installed: the tutorial uses it (scripts/test.sh installs it, or \
         `apt-get install {program}`)"
    );
}

struct Tutorial {
    scratch: PathBuf,
    bin_dir: PathBuf,
    node: PathBuf,
    ports: Ports,
    prelude: String,
    background: BTreeMap<String, ManagedChild>,
}

impl Tutorial {
    fn command(&self, script: &str) -> Command {
        let everything = tests_dir()
            .join("js/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        let script = self.ports.apply(script).replace(
            "npx @modelcontextprotocol/server-everything",
            &format!("node {}", everything.display()),
        );
        let path = format!(
            "{}:{}",
            self.bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(format!("set -eo pipefail\n{}\n{script}", self.prelude))
            .current_dir(&self.scratch)
            .env("PATH", path)
            .env("MCPGATE_REPO", repo_root())
            .env("NODE", &self.node)
            .env_remove("MCPGATE_ADMIN_TOKEN")
            .env_remove("MCPGATE_SESSION_SECRET")
            .env_remove("MCPGATE_LOG");
        command
    }

    fn run(&self, script: &str) -> Result<String, String> {
        let done = run_to_completion(self.command(script), Duration::from_secs(120))
            .map_err(|e| format!("cannot run bash: {e}"))?;
        let output = format!("{}{}", done.stdout, done.stderr);
        if done.status.is_some_and(|s| s.success()) && !done.timed_out {
            Ok(output)
        } else {
            Err(format!(
                "failed ({:?}, timed out: {}):\n{script}\n--- output ---\n{output}",
                done.status, done.timed_out
            ))
        }
    }

    fn background(&mut self, name: &str, wait: &str, script: &str) {
        // The reader stops the old one (Ctrl-C) before starting the new one.
        if let Some(mut old) = self.background.remove(name) {
            old.signal(libc::SIGTERM);
            let _ = old.wait_exit(Duration::from_secs(15));
        }
        let addr: SocketAddr = self
            .ports
            .apply(wait)
            .parse()
            .unwrap_or_else(|e| panic!("wait={wait}: {e}"));
        let mut child = ManagedChild::spawn(format!("tutorial {name}"), self.command(script))
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        if let Err(e) = wait_for_listener(addr, &mut child, Duration::from_secs(60)) {
            panic!("tutorial: {name} did not start:\n{script}\n{e}");
        }
        self.background.insert(name.to_string(), child);
    }

    fn context(&self) -> String {
        self.background
            .iter()
            .map(|(name, child)| format!("--- {name} ---\n{}", child.output()))
            .collect()
    }
}

fn missing_lines(output: &str, expected: &str) -> Vec<String> {
    expected
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| !output.contains(l))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_tutorial_runs_as_written() {
    require("curl");
    require("jq");
    ensure_js_installed();
    let markdown = std::fs::read_to_string(repo_root().join("docs/tutorial.md"))
        .unwrap_or_else(|e| panic!("docs/tutorial.md: {e}"));
    let blocks = parse(&markdown);
    let runs = blocks
        .iter()
        .filter(|b| matches!(b, Block::Run { .. }))
        .count();
    assert!(runs >= 15, "only {runs} runnable blocks found: {blocks:#?}");

    let scratch = std::env::temp_dir().join(format!("mcpgate-tutorial-{}", std::process::id()));
    let bin_dir = scratch.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(mcpgate_bin(), bin_dir.join("mcpgate"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut tutorial = Tutorial {
        scratch: scratch.clone(),
        bin_dir,
        node: node22(),
        ports: Ports::pick(),
        prelude: String::new(),
        background: BTreeMap::new(),
    };

    let mut i = 0;
    while let Some(block) = blocks.get(i).cloned() {
        i += 1;
        match block {
            Block::File { name, text } => {
                let path: &Path = Path::new(&name);
                std::fs::write(scratch.join(path), tutorial.ports.apply(&text))
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            Block::Background { name, wait, script } => {
                tutorial.background(&name, &wait, &script);
            }
            Block::Expect(_) => panic!("an expect block follows no command (block {i})"),
            Block::Run {
                script,
                prelude,
                retry,
            } => {
                let expected = match blocks.get(i) {
                    Some(Block::Expect(text)) => {
                        i += 1;
                        Some(tutorial.ports.apply(text))
                    }
                    _ => None,
                };
                // Records and metrics are published by the workers within ~100 ms; a reader
                // never sees the gap, a script might, so blocks that read them poll.
                let reads_records = script.contains("/api/logs") || script.contains("/metrics");
                let deadline = Instant::now()
                    + if retry || reads_records {
                        Duration::from_secs(15)
                    } else {
                        Duration::ZERO
                    };
                loop {
                    let outcome = tutorial.run(&script).and_then(|output| {
                        let missing = expected
                            .as_deref()
                            .map(|e| missing_lines(&output, e))
                            .unwrap_or_default();
                        if missing.is_empty() {
                            Ok(output)
                        } else {
                            Err(format!(
                                "the tutorial promises lines this run did not print:\n{}\n\
                                 --- the block ---\n{script}\n--- its output ---\n{output}",
                                missing.join("\n")
                            ))
                        }
                    });
                    match outcome {
                        Ok(_) => break,
                        Err(e) if Instant::now() >= deadline => {
                            panic!("tutorial block failed: {e}\n{}", tutorial.context())
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(200)),
                    }
                }
                if prelude {
                    tutorial.prelude.push_str(&script);
                    tutorial.prelude.push('\n');
                }
            }
        }
    }
    drop(tutorial);
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn port_substitution_keeps_other_numbers() {
    let ports = Ports(BTreeMap::from([(8080, 41000), (3001, 42000)]));
    assert_eq!(
        ports.apply("listen = \"127.0.0.1:8080\" 127.0.0.1:80801 PORT=3001 x3001 PORT=30011"),
        "listen = \"127.0.0.1:41000\" 127.0.0.1:80801 PORT=42000 x3001 PORT=30011"
    );
}
