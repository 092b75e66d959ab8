//! A virtual MCP server's configuration (docs/configuration.md, "Virtual servers"): an API whose
//! `upstream` is a list of `[[api.upstream]]` tables (each a Streamable HTTP `url`, or a stdio
//! `command` with `args`, `env` and `cwd`), its `[api.virtual]` table (name separator, failure
//! mode, stdio line limit), and the command line's `--upstream NAME=URL` / `--upstream-cmd
//! [NAME=]COMMAND`. Owns the serde shape, validation (errors name the field) and the runtime
//! form; `crate::features::virtual_server` serves it.
//!
//! ```toml
//! [[api]]
//! path = "/tools"
//! [api.virtual]
//! separator = "__"
//! [[api.upstream]]
//! name = "weather"
//! url = "http://127.0.0.1:3001/mcp"
//! [[api.upstream]]
//! name = "legacy"
//! url = "http://127.0.0.1:3002/sse"
//! transport = "sse"
//! [[api.upstream]]
//! name = "files"
//! command = "node"
//! args = ["server.js", "stdio"]
//! env = { ROOT = "/srv" }
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use mcpgate_policies::virtual_server::Naming;
use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Validator};

/// `[api.virtual] separator` when not given: two underscores are valid in every client's tool
/// names (`.` and `-` are not accepted by some), and rarer inside a server's own names than one.
pub const DEFAULT_SEPARATOR: &str = "__";
/// `[api.virtual] max_line_bytes` when not given: one JSON-RPC message from a stdio server.
pub const DEFAULT_MAX_LINE_BYTES: usize = 4 * 1024 * 1024;
/// `[api.virtual] call_timeout` when not given.
pub const DEFAULT_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Stdio processes across every API of one configuration (each stdio upstream is one process,
/// shared by the API's sessions).
pub const MAX_STDIO_PROCESSES: usize = 64;

/// One `[[api.upstream]]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpstream {
    pub name: Option<String>,
    pub url: Option<String>,
    /// `"streamable-http"` (the default) or `"sse"`; only with `url`.
    pub transport: Option<String>,
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
}

/// `[api.virtual]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserVirtual {
    pub separator: Option<Spanned<String>>,
    pub on_upstream_failure: Option<Spanned<String>>,
    pub max_line_bytes: Option<usize>,
    pub call_timeout: Option<Spanned<String>>,
}

/// The `--upstream NAME=URL` spelling of a legacy HTTP+SSE upstream: `NAME=sse+http://…/sse`.
pub const SSE_URL_PREFIX: &str = "sse+";

/// How an upstream of a virtual server is reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Streamable HTTP at this `http(s)://` URL.
    Http { url: String },
    /// The legacy HTTP+SSE transport (2024-11-05): the SSE stream is GET from this `http(s)://`
    /// URL; its `endpoint` event names where messages are POSTed.
    Sse { url: String },
    /// A child process speaking newline-delimited JSON-RPC on stdin/stdout.
    Stdio(StdioCommand),
}

/// A stdio upstream's command line and its explicit environment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StdioCommand {
    pub command: String,
    pub args: Vec<String>,
    /// The child's whole environment besides `PATH` and `HOME` (the gateway's own variables,
    /// secrets included, are never inherited).
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualUpstream {
    pub name: String,
    pub transport: Transport,
}

/// The validated form, shared by every worker of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServer {
    pub naming: Naming,
    pub upstreams: Vec<VirtualUpstream>,
    /// `fail_closed`: an upstream that cannot be reached fails the whole request (and
    /// `initialize`); else (`fail_open`) it drops out of lists and only its own calls fail.
    pub fail_closed: bool,
    pub max_line_bytes: usize,
    pub call_timeout: std::time::Duration,
}

/// The virtual server of an API (compared by value: a reload with the same tables keeps the
/// stdio processes, see `crate::features::virtual_server::stdio`).
pub type ApiVirtual = Arc<VirtualServer>;

/// Splits a command line on whitespace (no shell: no quoting, no expansion).
pub fn split_command(line: &str) -> Option<(String, Vec<String>)> {
    let mut words = line.split_whitespace().map(str::to_owned);
    let command = words.next()?;
    Some((command, words.collect()))
}

/// `NAME=VALUE` when the part before `=` is a plain name (an upstream URL or a command has a
/// `:` , `/` or space before any `=`).
pub fn split_named(s: &str) -> (Option<&str>, &str) {
    match s.split_once('=') {
        Some((name, rest))
            if !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) =>
        {
            (Some(name), rest)
        }
        _ => (None, s),
    }
}

impl Validator<'_> {
    /// `[[api.upstream]]` tables (`value`: the array) and `[api.virtual]` of api `i`.
    pub(super) fn virtual_server(
        &self,
        i: usize,
        value: &Spanned<toml::Value>,
        user: Option<UserVirtual>,
    ) -> Result<VirtualServer, ConfigError> {
        let span = Some(value.span());
        let toml::Value::Array(items) = value.get_ref() else {
            return Err(self.invalid(
                span,
                &format!("api[{i}].upstream"),
                "must be a URL string or [[api.upstream]] tables",
            ));
        };
        let mut upstreams = Vec::with_capacity(items.len());
        for (j, item) in items.iter().enumerate() {
            let field = |k: &str| format!("api[{i}].upstream[{j}].{k}");
            let u = UserUpstream::deserialize(item.clone()).map_err(|e| {
                self.invalid(
                    span.clone(),
                    &format!("api[{i}].upstream[{j}]"),
                    e.message().trim_end().to_string(),
                )
            })?;
            let Some(name) = u.name else {
                return Err(self.invalid(span, &field("name"), "is required"));
            };
            let transport = match (u.url, u.command) {
                (Some(url), None) => {
                    if !u.args.is_empty() || !u.env.is_empty() || u.cwd.is_some() {
                        return Err(self.invalid(
                            span,
                            &field("url"),
                            "args, env and cwd belong to a stdio `command`, not a `url`",
                        ));
                    }
                    crate::urls::parse(&url)
                        .map_err(|e| self.invalid(span.clone(), &field("url"), e.to_string()))?;
                    match u.transport.as_deref() {
                        None | Some("streamable-http") => Transport::Http { url },
                        Some("sse") => Transport::Sse { url },
                        Some(other) => {
                            return Err(self.invalid(
                                span,
                                &field("transport"),
                                format!("`{other}`: expected \"streamable-http\" or \"sse\""),
                            ))
                        }
                    }
                }
                (None, Some(_)) if u.transport.is_some() => {
                    return Err(self.invalid(
                        span,
                        &field("transport"),
                        "applies to a `url` upstream; a `command` upstream is always stdio",
                    ))
                }
                (None, Some(command)) if command.trim().is_empty() => {
                    return Err(self.invalid(span, &field("command"), "must not be empty"))
                }
                (None, Some(command)) => Transport::Stdio(self.stdio_command(
                    command,
                    u.args,
                    u.env,
                    u.cwd,
                    &field("env"),
                )?),
                (Some(_), Some(_)) => {
                    return Err(self.invalid(
                        span,
                        &field("command"),
                        "give `url` (Streamable HTTP) or `command` (stdio), not both",
                    ))
                }
                (None, None) => {
                    return Err(self.invalid(
                        span,
                        &field("url"),
                        "give `url` (Streamable HTTP) or `command` (stdio)",
                    ))
                }
            };
            upstreams.push(VirtualUpstream { name, transport });
        }
        self.finish_virtual(&format!("api[{i}]"), upstreams, user)
    }

    fn stdio_command(
        &self,
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<String>,
        env_field: &str,
    ) -> Result<StdioCommand, ConfigError> {
        for key in env.keys() {
            if key.is_empty() || key.contains(['=', '\0']) {
                return Err(self.invalid(
                    None,
                    env_field,
                    format!("`{key}` is not a variable name"),
                ));
            }
        }
        Ok(StdioCommand {
            command,
            args,
            env: env.into_iter().collect(),
            cwd: cwd.map(|c| self.relative_to_config(&c)),
        })
    }

    /// The checks common to the file and the command line: names, separator, counts.
    fn finish_virtual(
        &self,
        at: &str,
        upstreams: Vec<VirtualUpstream>,
        user: Option<UserVirtual>,
    ) -> Result<VirtualServer, ConfigError> {
        let user = user.unwrap_or_default();
        if upstreams.is_empty() {
            return Err(self.invalid(None, &format!("{at}.upstream"), "lists no upstream"));
        }
        let separator = user
            .separator
            .as_ref()
            .map_or(DEFAULT_SEPARATOR.to_string(), |s| s.get_ref().clone());
        let naming = Naming {
            upstreams: upstreams.iter().map(|u| u.name.clone()).collect(),
            separator,
        };
        naming.validate().map_err(|(j, message)| {
            if j == usize::MAX {
                self.invalid(
                    user.separator.as_ref().map(|s| s.span()),
                    &format!("{at}.virtual.separator"),
                    message,
                )
            } else {
                self.invalid(None, &format!("{at}.upstream[{j}].name"), message)
            }
        })?;
        let fail_closed = match user.on_upstream_failure {
            None => false,
            Some(s) => match s.get_ref().as_str() {
                "fail_open" => false,
                "fail_closed" => true,
                _ => {
                    return Err(self.invalid(
                        Some(s.span()),
                        &format!("{at}.virtual.on_upstream_failure"),
                        "expected \"fail_open\" or \"fail_closed\"",
                    ))
                }
            },
        };
        let max_line_bytes = match user.max_line_bytes {
            Some(0) => {
                return Err(self.invalid(
                    None,
                    &format!("{at}.virtual.max_line_bytes"),
                    "must be positive",
                ))
            }
            Some(n) => n,
            None => DEFAULT_MAX_LINE_BYTES,
        };
        let call_timeout = self.duration_at(
            user.call_timeout,
            &format!("{at}.virtual.call_timeout"),
            DEFAULT_CALL_TIMEOUT,
        )?;
        Ok(VirtualServer {
            naming,
            upstreams,
            fail_closed,
            max_line_bytes,
            call_timeout,
        })
    }

    /// `--upstream NAME=URL` (named ones) and `--upstream-cmd [NAME=]COMMAND`, in that order.
    pub(super) fn command_line_virtual(
        &self,
        named: &[String],
        commands: &[String],
    ) -> Result<VirtualServer, ConfigError> {
        let mut upstreams = Vec::new();
        for s in named {
            let (name, url) = split_named(s);
            let Some(name) = name else {
                return Err(self.invalid(
                    None,
                    "--upstream",
                    format!("`{s}`: with several upstreams each is NAME=URL"),
                ));
            };
            // `sse+http://…`: the legacy HTTP+SSE transport (a scheme prefix, so one flag can
            // carry it, like `git+https`).
            let (url, sse) = match url.strip_prefix(SSE_URL_PREFIX) {
                Some(rest) => (rest, true),
                None => (url, false),
            };
            crate::urls::parse(url)
                .map_err(|e| self.invalid(None, "--upstream", format!("`{s}`: {e}")))?;
            let url = url.to_owned();
            upstreams.push(VirtualUpstream {
                name: name.to_owned(),
                transport: if sse {
                    Transport::Sse { url }
                } else {
                    Transport::Http { url }
                },
            });
        }
        for s in commands {
            let (name, line) = split_named(s);
            let name = match name {
                Some(n) => n.to_owned(),
                None if commands.len() == 1 && named.is_empty() => "stdio".to_owned(),
                None => {
                    return Err(self.invalid(
                        None,
                        "--upstream-cmd",
                        format!("`{s}`: with several upstreams each is NAME=COMMAND"),
                    ))
                }
            };
            let Some((command, args)) = split_command(line) else {
                return Err(self.invalid(None, "--upstream-cmd", format!("`{s}`: no command")));
            };
            upstreams.push(VirtualUpstream {
                name,
                transport: Transport::Stdio(StdioCommand {
                    command,
                    args,
                    env: Vec::new(),
                    cwd: None,
                }),
            });
        }
        self.finish_virtual("--upstream", upstreams, None)
    }
}

/// Stdio upstreams of a whole configuration, for the process cap.
pub fn stdio_count<'a>(servers: impl IntoIterator<Item = &'a VirtualServer>) -> usize {
    servers
        .into_iter()
        .flat_map(|v| &v.upstreams)
        .filter(|u| matches!(u.transport, Transport::Stdio(_)))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_names_are_told_from_urls_and_commands() {
        assert_eq!(
            split_named("a=http://h/x?y=1"),
            (Some("a"), "http://h/x?y=1")
        );
        assert_eq!(split_named("http://h/x?y=1"), (None, "http://h/x?y=1"));
        assert_eq!(split_named("npx pkg --opt=1"), (None, "npx pkg --opt=1"));
        assert_eq!(split_named("fs=node s.js"), (Some("fs"), "node s.js"));
        assert_eq!(
            split_command("  node  a.js stdio "),
            Some(("node".into(), vec!["a.js".into(), "stdio".into()]))
        );
        assert_eq!(split_command("   "), None);
    }
}
