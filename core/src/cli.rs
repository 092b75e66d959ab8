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

// Parsed once at startup: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
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
    /// Serve the client listener over TLS with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Trust this PEM CA bundle for the https:// --upstream.
    #[arg(long, value_name = "FILE", requires = "upstream")]
    pub upstream_ca: Option<PathBuf>,
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
                tls_cert: self.tls_cert.clone(),
                tls_key: self.tls_key.clone(),
                upstream_ca: self.upstream_ca.clone(),
            },
        }
    }
}
