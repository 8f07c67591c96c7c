//! Progress bars on stderr, drawn only for a person watching: hidden when stderr is not a
//! terminal or with `--quiet`, so scripts and pipes see clean output.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::Output;

/// Whether bars are drawn for `output`.
pub fn visible(output: Output) -> bool {
    !output.quiet && std::io::stderr().is_terminal()
}

/// A bar counting `unit` up to `total` (a spinner when the total is unknown).
pub fn bar(output: Output, total: Option<u64>, unit: &str) -> ProgressBar {
    if !visible(output) {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(
                ProgressStyle::with_template(&format!(
                    "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, eta {{eta}})"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} [{{elapsed_precise}}] {{human_pos}} {unit} ({{per_sec}})"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// Resolves on Ctrl-C, which stops a rebuild after its batch in flight; never where no signal
/// handler can be installed (the build still ends once caught up).
pub async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
