//! The `worker` Lambda: SQS `diagnosis` batches in, `batchItemFailures` out. Outside Lambda
//! (no `AWS_LAMBDA_RUNTIME_API`) it long-polls `DIAGNOSIS_QUEUE_URL` instead. Sessions'
//! attachments are read from `UPLOADS_BUCKET` when it is set.

use std::sync::Arc;

use anyhow::Context;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use casebook_adapters::ai::{AiConfig, AiProviders};
use casebook_adapters::aws::s3::TenantBucket;
use casebook_adapters::aws::shared_config;
use casebook_adapters::aws::sqs::Queue;
use casebook_adapters::config::Config;
use casebook_adapters::postgres::{self, DbRole};
use casebook_handlers::compose::{diagnoser, search_pool, service};
use casebook_handlers::server::shutdown_signal;
use casebook_handlers::telemetry;
use casebook_handlers::worker::{handle_sqs_event, run_worker_until, Worker};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let config = Config::from_env().context("reading configuration")?;
    let pool = postgres::connect_database(
        &config.database,
        DbRole::App,
        config.database.max_connections,
    )
    .await
    .context("connecting")?;
    let search_pool = search_pool(&config.database)
        .await
        .context("connecting the search pool")?;
    let ai = AiProviders::from_config(&AiConfig::from_env().context("AI configuration")?).await;
    let aws = shared_config().await;
    let mut diagnoser = diagnoser(service(pool), search_pool, &ai);
    if let Ok(bucket) = std::env::var("UPLOADS_BUCKET") {
        diagnoser = diagnoser.with_attachments(Arc::new(TenantBucket::new(&aws, bucket)));
    }
    let worker = Worker::new(diagnoser);
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        let worker = &worker;
        lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
            Ok::<SqsBatchResponse, lambda_runtime::Error>(
                handle_sqs_event(worker, event.payload).await,
            )
        }))
        .await
        .map_err(|err| anyhow::anyhow!(err))
        .context("lambda runtime")
    } else {
        let url =
            std::env::var("DIAGNOSIS_QUEUE_URL").context("DIAGNOSIS_QUEUE_URL must be set")?;
        let queue = Queue::new(&aws, url);
        run_worker_until(worker, queue, shutdown_signal()).await;
        Ok(())
    }
}
