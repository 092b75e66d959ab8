//! The `mcpgate` binary: parse the command line, set up the log, load the configuration, run the
//! engine. Errors are printed as one `mcpgate: error: ...` line (with causes) and exit with
//! status 1.

use anyhow::Context;
use clap::Parser;
use mcpgate_core::cli::{self, Cli, Command};
use mcpgate_core::config;
use mcpgate_core::log::Format;

fn main() {
    let cli = Cli::parse();
    mcpgate_core::log::init(cli.log_format.as_deref().and_then(Format::parse));
    if let Err(e) = run(cli) {
        eprintln!("mcpgate: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            println!("mcpgate {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Check {
            file,
            admin_token_file,
        } => {
            let cfg = config::load_file(&file, &cli::check_overrides(admin_token_file))?;
            println!(
                "{}: ok ({} API{}, listen {})",
                file.display(),
                cfg.apis.len(),
                if cfg.apis.len() == 1 { "" } else { "s" },
                cfg.gateway.listen
            );
            for line in mcpgate_core::startup::api_lines(&cfg) {
                println!("  {line}");
            }
            for line in mcpgate_core::startup::el_translation_lines(&cfg) {
                println!("  {line}");
            }
            let secret = cfg.gateway.sessions.configured;
            for warning in mcpgate_core::startup::warnings(&cfg, cfg.gateway.admin, secret) {
                println!("  warning: {warning}");
            }
            Ok(())
        }
        Command::Pin(args) => {
            let request = args.request().map_err(anyhow::Error::msg)?;
            let done = mcpgate_core::features::integrity::pin_cli::run(&request)?;
            eprintln!("mcpgate: {done}");
            Ok(())
        }
        Command::Run(args) => {
            let source = args.source();
            let cfg = source.load()?;
            mcpgate_core::engine::run(cfg, source).context("mcpgate stopped on an error")
        }
    }
}
