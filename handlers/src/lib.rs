//! Casebook's handlers: the processes that host the domain.
//!
//! - [`auth`]: Cognito ID-token verification into a tenant-scoped principal, shared by the API
//!   and the Lambda authorizer.
//! - [`http`]: the one axum [`Router`](axum::Router) — served by `axum::serve` in
//!   `casebook serve` and by `lambda_http` in the `api` Lambda.
//! - [`settings`]: every environment variable, read once at start-up into
//!   [`Settings`](settings::Settings) and checked against what the starting process needs.
//! - [`server`]: the all-in-one process (`casebook serve`): migrations, router, background
//!   work, graceful shutdown; [`signal`]: the shutdown signal.
//! - [`telemetry`]: JSON logs through `tracing`.
//! - [`access_log`]: the access log's writer: every API request's record, queued and written
//!   in batches.
//! - [`metrics`]: CloudWatch Embedded Metric Format lines, aggregated and per business event.
//! - [`jobs`]: the scheduled jobs of the `scheduler` function.
//! - [`budget`]: the monthly token budgets' reads of the usage and diagnoses read models.
//! - [`own_models`]: the evaluation gate's held-out decisions, read from the decisions and
//!   diagnoses read models.
//! - [`relay`]: the subscription publishing events to EventBridge and SQS.
//! - [`worker`]: the SQS message handlers, for the `worker` Lambda and the local loop.
//! - [`trainer`]: the practice's trainer (`casebook trainer`), the reference consumer of the
//!   `local-jobs` queue: a fine-tune export in, a GGUF model for the registry out.
//! - [`reactions`]: the application's reactions as subscriptions of the global log.
//! - [`compose`]: the application's use cases over the real adapters — the composition root,
//!   which builds every process's parts from its settings.
//!
//! The use cases themselves live in `casebook-application`; nothing here holds SQL.
//!
//! Features say which adapters a build links (`local-models`, `bedrock`, `cognito`; all by
//! default): each Lambda function is built with only those its work needs, so `server`,
//! `demo` and the subscriptions' Cognito side exist only with `cognito`.

pub mod access_log;
pub mod auth;
pub mod authorizer;
pub mod budget;
pub mod compose;
#[cfg(feature = "cognito")]
pub mod demo;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod operator;
pub mod own_models;
pub mod reactions;
pub mod relay;
#[cfg(feature = "cognito")]
pub mod server;
pub mod settings;
pub mod signal;
pub mod telemetry;
pub mod trainer;
pub mod worker;
