//! The `scheduler` Lambda: input `{"job": "lag_check"}`
//! (see [`casebook_handlers::jobs`]). Outside Lambda it runs the job named by its first
//! argument once.

use anyhow::Context;
use casebook_adapters::config::Config;
use casebook_adapters::postgres::{self, DbRole};
use casebook_handlers::jobs::{run_job, JobReport, JobRequest};
use casebook_handlers::telemetry;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let config = Config::from_env().context("reading configuration")?;
    let pool = postgres::connect(config.database.connect_options(), DbRole::App, 4)
        .await
        .context("connecting")?;
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        let pool = &pool;
        lambda_runtime::run(service_fn(
            move |event: LambdaEvent<JobRequest>| async move {
                run_job(pool, event.payload.job)
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
        let report: JobReport = run_job(&pool, request.job).await?;
        println!("{}", serde_json::to_string(&report)?);
        Ok(())
    }
}
