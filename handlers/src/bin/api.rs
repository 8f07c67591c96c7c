//! The `api` Lambda: the same router as `casebook serve`, behind API Gateway. Outside Lambda
//! (no `AWS_LAMBDA_RUNTIME_API`) it serves over TCP instead, so the binary runs anywhere.

use std::sync::Arc;

use anyhow::Context;
use casebook_adapters::aws::shared_config;
use casebook_adapters::config::Config;
use casebook_handlers::http::router;
use casebook_handlers::relay::ProjectorNudge;
use casebook_handlers::server::{api_state, shutdown_signal, verifier};
use casebook_handlers::telemetry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let config = Config::from_env().context("reading configuration")?;
    let auth = config.require_auth()?;
    let state = api_state(&config, verifier(auth).context("token settings")?)
        .await
        .context("connecting")?;
    // Deployed, each committed write nudges the projector function (`PROJECTOR_FUNCTION_NAME`).
    let state = match ProjectorNudge::from_env(&shared_config().await) {
        Some(nudge) => state.with_nudge(Arc::new(nudge)),
        None => state,
    };
    let app = router(state);
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        lambda_http::run(app)
            .await
            .map_err(|err| anyhow::anyhow!(err))
            .context("lambda runtime")
    } else {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .context("binding")?;
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving")
    }
}
