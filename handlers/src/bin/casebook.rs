//! `casebook`: the local all-in-one binary.

use anyhow::Context;
use casebook_adapters::config::Config;
use casebook_handlers::server::{shutdown_signal, Application};
use casebook_handlers::telemetry;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "casebook",
    version,
    about = "Casebook: event-sourced judgment capture"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database and serve the API until SIGINT/SIGTERM.
    Serve,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init();
    match cli.command {
        Command::Serve => {
            let config = Config::from_env().context("reading configuration")?;
            let app = Application::build(&config)
                .await
                .context("starting casebook")?;
            app.run_until(shutdown_signal()).await.context("serving")?;
        }
    }
    Ok(())
}
