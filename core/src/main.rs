//! The `mcpgate` binary: parse the command line, load the configuration, run the engine.
//! Errors are printed as one `mcpgate: error: ...` line (with causes) and exit with status 1.

use anyhow::Context;
use clap::Parser;
use mcpgate_core::cli::{Cli, Command};
use mcpgate_core::config::{self, Overrides};

fn main() {
    mcpgate_core::log::init_from_env();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("mcpgate: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Check { file } => {
            let cfg = config::load_file(&file, &Overrides::default())?;
            println!(
                "{}: ok ({} API{}, listen {})",
                file.display(),
                cfg.apis.len(),
                if cfg.apis.len() == 1 { "" } else { "s" },
                cfg.gateway.listen
            );
            Ok(())
        }
        Command::Run(args) => {
            let source = args.source();
            let cfg = source.load()?;
            mcpgate_core::engine::run(cfg, source).context("mcpgate stopped on an error")
        }
    }
}
