//! The command line: `mcpgate run` and `mcpgate check`, and how flags become config overrides.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{ConfigSource, Overrides};

#[derive(Debug, Parser)]
#[command(
    name = "mcpgate",
    version,
    about = "An edge gateway for the Model Context Protocol"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (with no --config: the embedded default, /mcp-proxy -> http://127.0.0.1:3001/mcp).
    Run(RunArgs),
    /// Validate a configuration file and exit (0 when valid).
    Check {
        /// The TOML configuration file.
        file: PathBuf,
    },
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
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Entrypoint path for --upstream (default /mcp-proxy).
    #[arg(long, value_name = "PATH", requires = "upstream")]
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
    /// A node-scope rate limit on every API, keyed by subject (else client address):
    /// 'METHOD[:NAME]=N/INTERVAL', e.g. 'tools/call=5/60s' (repeatable).
    #[arg(long = "limit", value_name = "RULE")]
    pub limits: Vec<String>,
}

impl RunArgs {
    pub fn source(&self) -> ConfigSource {
        ConfigSource {
            file: self.config.clone(),
            overrides: Overrides {
                listen: self.listen.clone(),
                admin: self.admin.clone(),
                workers: self.workers,
                driver: self.driver.clone(),
                upstream: self.upstream.clone(),
                path: self.path.clone(),
                acl: self.acl.clone(),
                limits: self.limits.clone(),
            },
        }
    }
}
