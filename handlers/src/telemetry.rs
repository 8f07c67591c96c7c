//! Structured logging: JSON lines on stderr (CloudWatch Logs reads them as they are).

use tracing_subscriber::EnvFilter;

/// Installs the global JSON subscriber; the filter comes from `RUST_LOG` (default `info`).
/// Safe to call more than once (later calls are ignored), as tests do.
pub fn init() {
    // The metrics recorder logs an error for each latency sample past EMF's 100 values per
    // metric between two flushes: under load that would be a line per request. The samples
    // past the hundredth are dropped either way (API Gateway's own latency metric is whole).
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,metrics_cloudwatch_embedded::collector=off"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        // stderr: stdout stays free for command output (`casebook demo` is sourced); Lambda
        // sends both to CloudWatch Logs.
        .with_writer(std::io::stderr)
        .try_init();
}
