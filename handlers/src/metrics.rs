//! Metrics as CloudWatch Embedded Metric Format (EMF) lines on stdout: CloudWatch Logs turns
//! each line into metrics in namespace [`NAMESPACE`], every one with the deployment's `Stage`
//! dimension. Nothing calls CloudWatch; locally the lines are part of `casebook serve`'s
//! output.
//!
//! Two writers, because the metrics are of two kinds:
//! - **Operational** metrics (requests, commands, rate-limit refusals, lag, relay and worker
//!   outcomes, dropped access records) are counted through the `metrics` facade anywhere in
//!   the code and aggregated by `metrics_cloudwatch_embedded`'s recorder ([`install`]), which
//!   writes one line per dimension set when flushed: after every Lambda invocation, every
//!   [`SERVE_FLUSH_INTERVAL`] in `casebook serve`.
//! - **Business** metrics (queries, proposals, tokens, cost, decisions, auto-approvals,
//!   sign-ups) come one line per event from the business-events subscription
//!   ([`EmfBusinessLog`]): the line is the event's log record and its metrics at once, so the
//!   tenant and the diagnosis stay searchable properties of the metric without ever being
//!   dimensions. The recorder aggregates across tenants and can carry no per-event property,
//!   so these documents are written here.
//!
//! The dashboard and alarms in `infra/template.yaml` name exactly what these emit (a test
//! reads both).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use casebook_application::business::{BusinessEvent, BusinessLog, Unit};
use metrics_cloudwatch_embedded::{Builder, Collector};
use serde_json::{json, Map, Value};

use crate::settings::Settings;

/// The CloudWatch namespace of every Casebook metric.
pub const NAMESPACE: &str = "Casebook";

/// How often `casebook serve` writes its aggregated metrics.
pub const SERVE_FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// When the recorder writes what it aggregated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// After each Lambda invocation (the function is frozen in between): the Lambda runtime
    /// wrapped by `metrics_cloudwatch_embedded::lambda` does it.
    PerInvocation,
    /// On a timer, for a long-running process.
    Every(Duration),
    /// Only when the owner calls [`Collector::flush`] (tests).
    OnDemand,
}

/// Why the recorder could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the metrics recorder: {0}")]
pub struct InstallError(String);

/// Installs the process-wide EMF recorder for deployment `stage`. Once per process.
pub fn install(stage: &str, flush: Flush) -> Result<&'static Collector, InstallError> {
    let builder = Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension("Stage", stage.to_owned());
    let builder = match flush {
        Flush::Every(interval) => builder.with_auto_flush_interval(interval),
        Flush::PerInvocation | Flush::OnDemand => builder,
    };
    let collector = builder
        .init()
        .map_err(|err| InstallError(err.to_string()))?;
    describe_units();
    Ok(collector)
}

/// The units of the recorder's metrics (a counter's is a count).
fn describe_units() {
    use metrics::Unit;
    metrics::describe_histogram!("ApiLatency", Unit::Milliseconds, "API request latency");
    metrics::describe_histogram!(
        "ProjectionLagSeconds",
        Unit::Seconds,
        "how far a subscription is behind the log"
    );
    metrics::describe_histogram!(
        "RelayLagSeconds",
        Unit::Seconds,
        "how far the relay is behind the log"
    );
    for counter in [
        "Commands",
        "RateLimitRefusals",
        "RelayPublishFailures",
        "WorkerMessages",
        "WorkerRetries",
    ] {
        metrics::describe_counter!(counter, Unit::Count, "");
    }
}

/// Installs the recorder for the process `settings` describe: flushed after each invocation
/// in Lambda, every [`SERVE_FLUSH_INTERVAL`] elsewhere.
pub fn install_for(settings: &Settings) -> Result<&'static Collector, InstallError> {
    let flush = if settings.in_lambda {
        Flush::PerInvocation
    } else {
        Flush::Every(SERVE_FLUSH_INTERVAL)
    };
    install(&settings.stage, flush)
}

/// Where EMF lines go: stdout, or a buffer in tests.
pub type LineSink = Arc<Mutex<dyn Write + Send>>;

/// The business-events log as EMF lines: see the module documentation.
pub struct EmfBusinessLog {
    stage: String,
    sink: LineSink,
}

impl EmfBusinessLog {
    /// Lines on stdout, for deployment `stage`.
    pub fn stdout(stage: &str) -> Self {
        Self::new(stage, Arc::new(Mutex::new(std::io::stdout())))
    }

    /// Lines into `sink`.
    pub fn new(stage: &str, sink: LineSink) -> Self {
        Self {
            stage: stage.to_owned(),
            sink,
        }
    }
}

impl BusinessLog for EmfBusinessLog {
    fn record(&self, event: &BusinessEvent) {
        let line = business_document(&self.stage, event).to_string();
        let mut sink = self
            .sink
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Err(err) = writeln!(sink, "{line}") {
            tracing::warn!(error = %err, event_id = %event.event_id, "cannot write a business event");
        }
    }
}

/// `event` as one EMF document: its measures grouped by dimension set (one metric directive
/// each), the event's facts beside them as properties. Its timestamp is the event's commit,
/// so a rebuilt subscription's lines land when the events happened (CloudWatch keeps no
/// metric older than two weeks; the log line stays).
pub fn business_document(stage: &str, event: &BusinessEvent) -> Value {
    let mut document = Map::new();
    let mut directives: BTreeMap<Vec<&str>, Vec<Value>> = BTreeMap::new();
    document.insert("Stage".into(), json!(stage));
    for measure in &event.measures {
        let mut dimensions = vec!["Stage"];
        for (name, value) in &measure.dimensions {
            dimensions.push(name);
            document.insert((*name).into(), json!(value));
        }
        let unit = match measure.unit {
            Unit::Count => "Count",
            Unit::None => "None",
        };
        directives
            .entry(dimensions)
            .or_default()
            .push(json!({ "Name": measure.metric, "Unit": unit }));
        document.insert(measure.metric.into(), json!(measure.value));
    }
    let directives: Vec<Value> = directives
        .into_iter()
        .map(|(dimensions, metrics)| {
            json!({ "Namespace": NAMESPACE, "Dimensions": [dimensions], "Metrics": metrics })
        })
        .collect();
    document.insert(
        "_aws".into(),
        json!({
            "Timestamp": event.recorded_at.timestamp_millis(),
            "CloudWatchMetrics": directives,
        }),
    );
    for (name, value) in &event.details {
        document.insert((*name).into(), value.clone());
    }
    document.insert("level".into(), json!("INFO"));
    document.insert("target".into(), json!("casebook::business"));
    document.insert("message".into(), json!(event.message));
    document.insert("event".into(), json!(event.kind));
    document.insert("tenant_id".into(), json!(event.tenant_id));
    document.insert("event_id".into(), json!(event.event_id));
    document.insert("request_id".into(), json!(event.request_id));
    document.insert("correlation_id".into(), json!(event.correlation_id));
    Value::Object(document)
}
