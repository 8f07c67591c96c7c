//! The `api` Lambda: the same router as `casebook serve`, behind API Gateway. Outside Lambda
//! (no `AWS_LAMBDA_RUNTIME_API`) it serves over TCP on `CASEBOOK_LISTEN` instead, so the
//! binary runs anywhere.

use anyhow::Context;
use casebook_handlers::compose::Composition;
use casebook_handlers::http::router;
use casebook_handlers::metrics;
use casebook_handlers::settings::{Process, Settings};
use casebook_handlers::signal::shutdown_signal;
use casebook_handlers::telemetry;

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env(Process::Api).context("reading the settings")?;
    // In Lambda an instance serves one request at a time: on one thread a database reply wakes
    // the request on the thread that read it (the HTTP bench through the router: p50 0.605 to
    // 0.554 ms, p99 1.25 to 1.06 ms); over TCP requests come concurrently and get the cores.
    let runtime = if settings.in_lambda {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build()
    .context("starting the runtime")?;
    runtime.block_on(serve(settings))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    telemetry::init();
    let compose = Composition::new(settings).await.context("starting")?;
    let state = compose.api_state().await.context("building the API")?;
    // In Lambda the router drains the access log before each answer; here, once at the end.
    let access_log = state.access_log.clone();
    let app = router(state);
    let metrics = metrics::install_for(compose.settings())?;
    if compose.settings().in_lambda {
        metrics_cloudwatch_embedded::lambda::service::run_http(metrics, app)
            .await
            .map_err(|err| anyhow::anyhow!(err))
            .context("lambda runtime")
    } else {
        let listener = tokio::net::TcpListener::bind(compose.settings().listen)
            .await
            .context("binding")?;
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving")?;
        if let Some(log) = access_log {
            log.drain().await;
        }
        // What was counted since the last timed flush.
        metrics
            .flush(std::io::stdout())
            .context("writing the last metrics")
    }
}
