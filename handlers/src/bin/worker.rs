//! The `worker` Lambda: SQS `diagnosis` batches in, `batchItemFailures` out. Outside Lambda
//! (no `AWS_LAMBDA_RUNTIME_API`) it long-polls the diagnosis queue itself instead. Sessions'
//! attachments are read from the uploads bucket.

use anyhow::Context;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use casebook_handlers::compose::Composition;
use casebook_handlers::metrics;
use casebook_handlers::settings::{Process, Settings};
use casebook_handlers::signal::shutdown_signal;
use casebook_handlers::telemetry;
use casebook_handlers::worker::{handle_sqs_event, run_worker_until};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env(Process::Worker).context("reading the settings")?;
    telemetry::init();
    let compose = Composition::new(settings).await.context("starting")?;
    let worker = compose.worker().await.context("building the worker")?;
    let metrics = metrics::install_for(compose.settings())?;
    if compose.settings().in_lambda {
        let worker = &worker;
        metrics_cloudwatch_embedded::lambda::service::run(
            metrics,
            service_fn(move |event: LambdaEvent<SqsEvent>| async move {
                Ok::<SqsBatchResponse, lambda_runtime::Error>(
                    handle_sqs_event(worker, event.payload).await,
                )
            }),
        )
        .await
        .map_err(|err| anyhow::anyhow!(err))
        .context("lambda runtime")
    } else {
        let queue = compose.diagnosis_queue().context("the diagnosis queue")?;
        run_worker_until(worker, queue, shutdown_signal()).await;
        Ok(())
    }
}
