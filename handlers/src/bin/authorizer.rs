//! The `authorizer` Lambda: API Gateway's TOKEN authorizer (see
//! `casebook_handlers::authorizer`).

use std::sync::Arc;

use anyhow::Context;
use casebook_handlers::authorizer::TokenAuthorizerEvent;
use casebook_handlers::compose::Composition;
use casebook_handlers::settings::{Process, Settings};
use casebook_handlers::telemetry;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env(Process::Authorizer).context("reading the settings")?;
    telemetry::init();
    let compose = Composition::new(settings).await.context("starting")?;
    let authorizer = Arc::new(
        compose
            .authorizer()
            .await
            .context("building the authorizer")?,
    );
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
    .map_err(|err| anyhow::anyhow!(err))
    .context("lambda runtime")
}
