//! The `scheduler` Lambda: input `{"job": "lag_check" | "finetune_export" | "audit_archive"}`
//! from its EventBridge schedules (see [`casebook_handlers::jobs`]). Outside Lambda it runs
//! the job named by its first argument once.

use anyhow::Context;
use casebook_adapters::aws::shared_config;
use casebook_adapters::config::Config;
use casebook_adapters::postgres::{self, DbRole};
use casebook_handlers::jobs::{JobRequest, Jobs, JobsConfig};
use casebook_handlers::telemetry;
use chrono::Utc;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let config = Config::from_env().context("reading configuration")?;
    let jobs_config = JobsConfig::from_env().context("reading the jobs' configuration")?;
    let pool = postgres::connect_database(&config.database, DbRole::App, 2)
        .await
        .context("connecting")?;
    let log = postgres::connect_database(&config.database, DbRole::Projector, 2)
        .await
        .context("connecting")?;
    let jobs = Jobs::new(pool, log, &shared_config().await, &jobs_config);
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        let jobs = &jobs;
        lambda_runtime::run(service_fn(
            move |event: LambdaEvent<JobRequest>| async move {
                jobs.run(event.payload.job, Utc::now())
                    .await
                    .map_err(lambda_runtime::Error::from)
            },
        ))
        .await
        .map_err(|err| anyhow::anyhow!(err))
        .context("lambda runtime")
    } else {
        let name = std::env::args().nth(1).context("usage: scheduler <job>")?;
        let request: JobRequest =
            serde_json::from_value(serde_json::json!({ "job": name })).context("unknown job")?;
        let report = jobs.run(request.job, Utc::now()).await?;
        println!("{}", serde_json::to_string(&report)?);
        Ok(())
    }
}
