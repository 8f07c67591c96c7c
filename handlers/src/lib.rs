//! Casebook's handlers: the processes that host the domain.
//!
//! - [`auth`]: Cognito ID-token verification into a tenant-scoped principal, shared by the API
//!   and the Lambda authorizer.
//! - [`http`]: the one axum [`Router`](axum::Router) — served by `axum::serve` in
//!   `casebook serve` and by `lambda_http` in the `api` Lambda.
//! - [`server`]: the local all-in-one process (`casebook serve`): config, migrations, router,
//!   graceful shutdown.
//! - [`telemetry`]: JSON logs through `tracing`.
//! - [`jobs`]: the scheduled jobs of the `scheduler` function.
//! - [`relay`]: the subscription publishing events to EventBridge and SQS.
//! - [`worker`]: the SQS message handlers, for the `worker` Lambda and the local loop.
//! - [`people`]: the subscription that keeps each member's Cognito account as their tenant
//!   says.

pub mod auth;
pub mod authorizer;
pub mod demo;
pub mod http;
pub mod jobs;
pub mod operator;
pub mod people;
pub mod reactions;
pub mod relay;
pub mod server;
pub mod service;
pub mod telemetry;
pub mod usage_keys;
pub mod worker;
