//! The command line: `mcpgate run`, `mcpgate check`, `mcpgate version`, the global
//! `--log-format`, and how flags (and the environment variables the help lists) become config
//! overrides.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::virtual_server::split_named;
use crate::config::{AdminOverrides, ConfigSource, Overrides, PinOverrides};

/// Printed after every `--help`: what the environment changes, and where the docs are.
const ENVIRONMENT_HELP: &str = "\
Environment:
  MCPGATE_LOG             log level or RUST_LOG-style directives (default info),
                          e.g. debug, warn, info,mcpgate_core::engine=debug
  MCPGATE_LOG_FORMAT      text (default) or json; --log-format overrides it
  MCPGATE_ADMIN_TOKEN     bearer token for the admin listener (console, /metrics, logs);
                          --admin-token-file overrides it, it overrides [gateway.admin_auth]
  MCPGATE_SESSION_SECRET  key (>= 32 bytes) sealing the session ids of APIs with a plan; the
                          same on every replica, so any replica accepts any session
                          ([gateway.sessions] in the file takes precedence)
  MCPGATE_SESSION_SECRET_PREVIOUS
                          comma-separated retired secrets still accepted (key rotation)
  MCPGATE_CA_FILE         PEM file of extra CA certificates trusted when fetching JWKS, OAuth
                          metadata and introspection endpoints over https

Documentation: README.md and docs/ in the source tree — docs/tutorial.md (walk-through),
docs/configuration.md (every key), docs/auth.md, docs/acl.md, docs/observability.md.";

#[derive(Debug, Parser)]
#[command(
    name = "mcpgate",
    version,
    about = "An edge gateway for the Model Context Protocol",
    after_help = ENVIRONMENT_HELP
)]
pub struct Cli {
    /// Format of the gateway's own log lines on stderr: text or json (default: $MCPGATE_LOG_FORMAT, else text).
    #[arg(long, global = true, value_name = "FORMAT", value_parser = ["text", "json"])]
    pub log_format: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at startup: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (with no --config: the embedded default, /mcp-proxy -> http://127.0.0.1:3001/mcp).
    #[command(after_help = ENVIRONMENT_HELP)]
    Run(RunArgs),
    /// Validate a configuration file and exit (0 when valid); prints what each API will do.
    #[command(after_help = ENVIRONMENT_HELP)]
    Check {
        /// The TOML configuration file.
        file: PathBuf,
        /// Admin token file, as `run` would get it (checked like `run` checks it).
        #[arg(long, value_name = "FILE")]
        admin_token_file: Option<PathBuf>,
    },
    /// Write a pin lockfile from a live upstream: every tool's and prompt's definition and digest,
    /// for review (docs/integrity.md); `run --pin FILE` enforces it.
    Pin(PinArgs),
    /// Print the version and exit.
    Version,
}

#[derive(Debug, clap::Args)]
pub struct PinArgs {
    /// The upstream MCP endpoint to pin (http://host[:port]/path).
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// The lockfile to write (its other upstreams are kept); without it the lockfile is printed.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// A header sent with every request to the upstream ("Authorization: Bearer …"); repeatable.
    #[arg(long, value_name = "NAME: VALUE")]
    pub header: Vec<String>,
    /// How long each request may take.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub timeout: String,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// TOML configuration file; SIGHUP re-reads it.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Client listener address (overrides gateway.listen).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Upstream MCP endpoint; with --path it defines the only API (replacing the file's APIs).
    /// Repeatable as NAME=URL: a virtual API over every named upstream (names prefix tools);
    /// NAME=sse+http://HOST:PORT/sse for a legacy HTTP+SSE upstream.
    #[arg(long, value_name = "[NAME=]URL")]
    pub upstream: Vec<String>,
    /// A stdio upstream: a command line (split on spaces, no shell) run as a child process,
    /// NAME=COMMAND when there are several upstreams; repeatable.
    #[arg(long = "upstream-cmd", value_name = "[NAME=]COMMAND")]
    pub upstream_cmd: Vec<String>,
    /// Entrypoint path for --upstream / --upstream-cmd (default /mcp-proxy).
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Admin listener address, or "off" (overrides gateway.admin).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// Worker threads (default: available cores).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// I/O driver: auto (io_uring, epoll fallback), uring, epoll.
    #[arg(long, value_name = "DRIVER", value_parser = ["auto", "uring", "epoll"])]
    pub driver: Option<String>,
    /// A Gravitee MCP ACL JSON file applied to the API (the --upstream one, or the only one).
    #[arg(long, value_name = "FILE")]
    pub acl: Option<PathBuf>,
    /// File holding the admin listener's bearer token (overrides $MCPGATE_ADMIN_TOKEN and [gateway.admin_auth]).
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Run an admin listener without a token on a non-loopback address (something in front of it must authenticate).
    #[arg(long)]
    pub allow_unauthenticated_admin: bool,
    /// Serve the client listener over TLS with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Trust this PEM CA bundle for the https:// --upstream.
    #[arg(long, value_name = "FILE", requires = "upstream")]
    pub upstream_ca: Option<PathBuf>,
    /// A node-scope rate limit on every API, keyed by subject (else client address):
    /// 'METHOD[:NAME]=N/INTERVAL', e.g. 'tools/call=5/60s' (repeatable).
    #[arg(long = "limit", value_name = "RULE")]
    pub limits: Vec<String>,
    /// Pin lockfile every API's tools and prompts are checked against (`mcpgate pin` writes it).
    #[arg(long, value_name = "FILE")]
    pub pin: Option<PathBuf>,
    /// With --pin: FILE is a trust-on-first-use store — what an upstream lists first is pinned
    /// and written there.
    #[arg(long, requires = "pin")]
    pub trust_on_first_use: bool,
    /// What a new or changed tool or prompt does: alert (pass, log), hide (removed from lists,
    /// its use refused) or block (every list and call of its upstream refused).
    #[arg(long, value_name = "POLICY", value_parser = ["alert", "hide", "block"])]
    pub on_tool_change: Option<String>,
}

impl RunArgs {
    /// One `--upstream` without a name, and no `--upstream-cmd`: today's pass-through.
    fn single_upstream(&self) -> Option<String> {
        match self.upstream.as_slice() {
            [one] if self.upstream_cmd.is_empty() && split_named(one).0.is_none() => {
                Some(one.clone())
            }
            _ => None,
        }
    }

    /// Every `--upstream` of a virtual API (validation names the one without `NAME=`).
    fn named_upstreams(&self) -> Vec<String> {
        if self.single_upstream().is_some() {
            Vec::new()
        } else {
            self.upstream.clone()
        }
    }

    pub fn source(&self) -> ConfigSource {
        let mut admin_auth = AdminOverrides::from_env();
        admin_auth.token_file = self.admin_token_file.clone();
        admin_auth.allow_unauthenticated = self.allow_unauthenticated_admin;
        ConfigSource {
            file: self.config.clone(),
            overrides: Overrides {
                listen: self.listen.clone(),
                admin: self.admin.clone(),
                workers: self.workers,
                driver: self.driver.clone(),
                upstream: self.single_upstream(),
                named_upstreams: self.named_upstreams(),
                upstream_cmds: self.upstream_cmd.clone(),
                path: self.path.clone(),
                acl: self.acl.clone(),
                admin_auth,
                tls_cert: self.tls_cert.clone(),
                tls_key: self.tls_key.clone(),
                upstream_ca: self.upstream_ca.clone(),
                limits: self.limits.clone(),
                pin: PinOverrides {
                    file: self.pin.clone(),
                    tofu: self.trust_on_first_use,
                    on_change: self.on_tool_change.clone(),
                },
            },
        }
    }
}

impl PinArgs {
    /// The request `features::integrity::pin_cli` runs.
    pub fn request(&self) -> Result<crate::features::integrity::pin_cli::PinRequest, String> {
        let timeout = crate::config::parse_duration(&self.timeout)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                format!(
                    "--timeout {}: expected a duration like \"10s\"",
                    self.timeout
                )
            })?;
        let headers = self
            .header
            .iter()
            .map(|h| match h.split_once(':') {
                Some((name, value)) if !name.trim().is_empty() => {
                    Ok((name.trim().to_owned(), value.trim().to_owned()))
                }
                _ => Err(format!("--header {h:?}: expected \"Name: value\"")),
            })
            .collect::<Result<_, _>>()?;
        Ok(crate::features::integrity::pin_cli::PinRequest {
            upstream: self.upstream.clone(),
            out: self.out.clone(),
            headers,
            timeout,
        })
    }
}

/// What `check` validates against: the file with the environment's admin token (as `run`
/// would see it) and `--admin-token-file`.
pub fn check_overrides(admin_token_file: Option<PathBuf>) -> Overrides {
    let mut admin_auth = AdminOverrides::from_env();
    admin_auth.token_file = admin_token_file;
    Overrides {
        admin_auth,
        ..Overrides::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn help_names_the_environment_and_the_docs() {
        let help = Cli::command().render_long_help().to_string();
        for needle in [
            "MCPGATE_LOG",
            "MCPGATE_LOG_FORMAT",
            "MCPGATE_SESSION_SECRET",
            "MCPGATE_SESSION_SECRET_PREVIOUS",
            "MCPGATE_CA_FILE",
            "MCPGATE_ADMIN_TOKEN",
            "docs/configuration.md",
            "--log-format",
        ] {
            assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
        }
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "mcpgate",
            "run",
            "--log-format",
            "json",
            "--admin-token-file",
            "/x",
            "--allow-unauthenticated-admin",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cli.log_format.as_deref(), Some("json"));
        match cli.command {
            Command::Run(args) => {
                let source = args.source();
                assert_eq!(
                    source.overrides.admin_auth.token_file,
                    Some(PathBuf::from("/x"))
                );
                assert!(source.overrides.admin_auth.allow_unauthenticated);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Cli::try_parse_from(["mcpgate", "version"]).map(|c| c.command),
            Ok(Command::Version)
        ));
        assert!(Cli::try_parse_from(["mcpgate", "--log-format", "xml", "version"]).is_err());
    }
}
