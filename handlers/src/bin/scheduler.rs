//! The `scheduler` Lambda: input
//! `{"job": "lag_check" | "fine_tune_export" | "audit_archive" | "budget_resume"}` from its
//! EventBridge schedules (see [`casebook_handlers::jobs`]). Outside Lambda it runs the job
//! named by its first argument once.

use anyhow::Context;
use casebook_handlers::compose::Composition;
use casebook_handlers::jobs::JobRequest;
use casebook_handlers::metrics;
use casebook_handlers::settings::{Process, Settings};
use casebook_handlers::telemetry;
use chrono::Utc;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env(Process::Scheduler).context("reading the settings")?;
    // The job to run by hand is checked with the settings, before anything is reached.
    let by_hand = if settings.in_lambda {
        None
    } else {
        let name = std::env::args().nth(1).context("usage: scheduler <job>")?;
        let request: JobRequest = serde_json::from_value(serde_json::json!({ "job": name }))
            .with_context(|| format!("unknown job {name:?}"))?;
        Some(request.job)
    };
    telemetry::init();
    let compose = Composition::new(settings).await.context("starting")?;
    let jobs = compose.jobs().await.context("building the jobs")?;
    match by_hand {
        None => {
            let metrics = metrics::install_for(compose.settings())?;
            let jobs = &jobs;
            metrics_cloudwatch_embedded::lambda::service::run(
                metrics,
                service_fn(move |event: LambdaEvent<JobRequest>| async move {
                    jobs.run(event.payload.job, Utc::now())
                        .await
                        .map_err(lambda_runtime::Error::from)
                }),
            )
            .await
            .map_err(|err| anyhow::anyhow!(err))
            .context("lambda runtime")
        }
        Some(job) => {
            let report = jobs.run(job, Utc::now()).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
    }
}
