//! The `authorizer` Lambda: API Gateway's TOKEN authorizer (see
//! `casebook_handlers::authorizer`).

use std::sync::Arc;

use anyhow::Context;
use casebook_adapters::aws::shared_config;
use casebook_adapters::config::Config;
use casebook_adapters::postgres::{self, DbRole};
use casebook_handlers::authorizer::{Authorizer, TokenAuthorizerEvent};
use casebook_handlers::server::{usage_plans_from_env, verifier};
use casebook_handlers::telemetry;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let config = Config::from_env().context("reading configuration")?;
    let auth = config.require_auth()?;
    let pool = postgres::connect_database(&config.database, DbRole::App, 2)
        .await
        .context("connecting")?;
    let keys = usage_plans_from_env(&shared_config().await)
        .context("CASEBOOK_USAGE_PLAN_PREFIX must be set")?;
    let authorizer = Arc::new(Authorizer::new(
        verifier(auth).context("token settings")?,
        casebook_handlers::compose::service(pool),
        Some(Arc::new(keys)),
    ));
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<TokenAuthorizerEvent>| {
            let authorizer = authorizer.clone();
            async move {
                authorizer
                    .authorize(&event.payload)
                    .await
                    .map_err(lambda_runtime::Error::from)
            }
        },
    ))
    .await
}
