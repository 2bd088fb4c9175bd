//! The `berth` binary: command line and wiring. Everything else lives in `crates/`.

mod cli;
mod public_addr;
mod serve;
mod service;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    cli::run(cli)
}
