//! The `projector` Lambda: drains every subscription (read models, audit chain, judgment
//! index, reactions, tenants' usage keys, members' Cognito accounts, the relay to EventBridge
//! and SQS) until caught up or the invocation's time is nearly spent, then integrates the new
//! audit and access rows into the verifiable logs and signs their checkpoints. Invoked by the API after
//! commits and every minute by a schedule, as a safety net.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use casebook_handlers::compose::Composition;
use casebook_handlers::metrics;
use casebook_handlers::settings::{Process, Settings};
use casebook_handlers::telemetry;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};

/// Left for the runner to commit its last batch and return before Lambda's deadline.
const MARGIN: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env(Process::Projector).context("reading the settings")?;
    telemetry::init();
    let compose = Composition::new(settings).await.context("starting")?;
    let subscriptions = compose
        .subscriptions()
        .await
        .context("building the subscriptions")?;
    let metrics = metrics::install_for(compose.settings())?;
    metrics_cloudwatch_embedded::lambda::service::run(
        metrics,
        service_fn(move |event: LambdaEvent<Value>| {
            let runner = subscriptions.runner();
            let subscriptions = subscriptions.clone();
            async move {
                let left = event
                    .context
                    .deadline()
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                let reports = runner.drain(left.saturating_sub(MARGIN)).await?;
                // The audit rows the drain wrote, signed before the invocation ends.
                subscriptions.integrate().await;
                Ok::<_, lambda_runtime::Error>(json!({ "subscriptions": reports.len() }))
            }
        }),
    )
    .await
    .map_err(|err| anyhow::anyhow!(err))
    .context("lambda runtime")
}
