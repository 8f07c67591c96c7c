//! The `projector` Lambda: drains every subscription (read models, audit chain, judgment
//! index, reactions, tenants' usage keys, members' Cognito accounts, the relay to EventBridge
//! and SQS) until caught up or the invocation's time is nearly spent. Invoked by the API after commits and every minute by a schedule, as
//! a safety net.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use casebook_adapters::ai::{AiConfig, AiProviders};
use casebook_adapters::aws::shared_config;
use casebook_adapters::config::Config;
use casebook_adapters::people::PrintedMailbox;
use casebook_adapters::postgres::{self, DbRole};
use casebook_handlers::relay::{Relay, RelayConfig};
use casebook_handlers::server::{
    people_from_config, projector, projector_pool, usage_plans_from_env, with_people,
    with_usage_keys,
};
use casebook_handlers::telemetry;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};
use std::sync::Arc;

/// Left for the runner to commit its last batch and return before Lambda's deadline.
const MARGIN: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let config = Config::from_env().context("reading configuration")?;
    let projector_pool = projector_pool(&config).await.context("connecting")?;
    let app = postgres::connect_database(&config.database, DbRole::App, 4)
        .await
        .context("connecting")?;
    let service = casebook_handlers::compose::service(app.clone());
    let aws = shared_config().await;
    let relay_config = RelayConfig::from_env().context("relay configuration")?;
    let local_jobs_queue =
        std::env::var("LOCAL_JOBS_QUEUE_URL").context("LOCAL_JOBS_QUEUE_URL must be set")?;
    let ai = AiProviders::from_config(&AiConfig::from_env().context("AI configuration")?).await;
    let relay = Relay::new(&aws, &relay_config, app).with_local_jobs_queue(&aws, &local_jobs_queue);
    let usage_plans =
        usage_plans_from_env(&aws).context("CASEBOOK_USAGE_PLAN_PREFIX must be set")?;
    let people = Arc::new(
        people_from_config(&config)
            .await
            .context("user pool")?
            .context("CASEBOOK_USER_POOL_ID and CASEBOOK_USER_POOL_CLIENT_ID must be set")?,
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let runner = with_usage_keys(
            projector(
                projector_pool.clone(),
                service.clone(),
                ai.embedder.clone(),
                Some(relay.clone()),
            ),
            service.clone(),
            usage_plans.clone(),
        );
        // Cognito never mails through the process in AWS: nothing reaches this mailbox.
        let runner = with_people(
            runner,
            service.clone(),
            people.clone(),
            Arc::new(PrintedMailbox),
        );
        async move {
            let left = event
                .context
                .deadline()
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            let reports = runner.drain(left.saturating_sub(MARGIN)).await?;
            Ok::<_, lambda_runtime::Error>(json!({ "subscriptions": reports.len() }))
        }
    }))
    .await
}
