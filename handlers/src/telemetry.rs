//! Structured logging: JSON lines on stderr (CloudWatch Logs reads them as they are). Each
//! line lists its spans with their fields, so a line logged while handling a request or a
//! queue message carries that request's `request_id` and `correlation_id`.

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Installs the global JSON subscriber; the filter comes from `RUST_LOG` (default `info`).
/// Safe to call more than once (later calls are ignored), as tests do.
pub fn init() {
    // stderr: stdout stays free for command output (`casebook demo` is sourced) and the
    // metrics' EMF lines; Lambda sends both to CloudWatch Logs.
    init_writing_to(std::io::stderr);
}

/// [`init`], writing the lines to `writer` (tests read them back).
pub fn init_writing_to<W>(writer: W)
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    // The metrics recorder logs an error for each latency sample past EMF's 100 values per
    // metric between two flushes: under load, a line per request, whatever the level asked
    // for. The samples past the hundredth are dropped either way (API Gateway's own latency
    // metric is whole), so its lines are never written.
    // The S3 client logs each call's endpoint parameters at debug, the object's key among
    // them, and an upload's key ends in its customer's file name (personal, decision 0027):
    // those two targets log from info up, whatever the level asked for.
    let quiet = [
        "metrics_cloudwatch_embedded::collector=off",
        "aws_sdk_s3::endpoint_auth=info",
        "aws_smithy_runtime::client::orchestrator::endpoints=info",
    ];
    let filter = quiet.into_iter().fold(
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        |filter, directive| filter.add_directive(directive.parse().expect("a valid directive")),
    );
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .try_init();
}
