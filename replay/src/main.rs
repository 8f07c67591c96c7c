//! `casebook-replay`: see the crate documentation and `casebook-replay --help`.

use std::process::ExitCode;

use clap::Parser;

use casebook_replay::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    // clap exits with 2 on usage errors and 0 for --help/--version by itself.
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match cli.run().await {
        Ok(verdict) => ExitCode::from(verdict.exit_code()),
        Err(err) => {
            let mut message = format!("error: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{message}");
            ExitCode::from(err.exit_code())
        }
    }
}
