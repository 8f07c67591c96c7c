//! Casebook's adapters: everything that talks to the outside world on the application's
//! behalf, implementing the ports of `casebook-application` and the domain.
//!
//! - [`postgres`]: connection pools (each assuming its least-privileged role) and the
//!   embedded migrations; [`rds_iam`] signs IAM auth tokens for RDS Proxy.
//! - [`event_store`]: the cqrs-es event repository over the extended `events` table, with
//!   snapshots, typed errors ([`event_store::StoreError`]) and a group commit that lets
//!   concurrent commands share one append statement ([`event_store::Appender`]).
//! - [`idempotency`]: the API's `Idempotency-Key` records.
//! - [`records`]: what the request path keeps beside events (upload grants, address claims,
//!   sign-up attempts), the application's `RequestRecords`.
//! - [`config`]: the one typed configuration struct, read from the environment once.
//! - [`cognito`]: Cognito user pools from the administrator's side (pool, groups, app client,
//!   users, sign-in) and the identity contract: the `custom:tenant_id` attribute and the
//!   group ↔ role mapping; [`people`] is the application's `IdentityProvider` over a pool.
//! - [`ai`]: the AI providers behind the domain's `Embedder` and `Llm` ports — Bedrock
//!   (Titan v2 embeddings, Converse per model tier) or embedded local models
//!   (all-MiniLM-L6-v2 and a GGUF model on candle) — with prompt templates and prices.
//! - [`aws`]: the messaging clients — EventBridge `PutEvents` in size-limited batches with
//!   per-entry retries, SQS send/receive/delete — and the idempotent creation of the bus and
//!   the queues with their dead-letter queues (local emulator, tests).
//!
//! The AWS clients (Bedrock, S3, SQS, EventBridge) and the local embedded providers live
//! here too as they land; the domain and the projections never see them.

pub mod ai;
pub mod aws;
pub mod cognito;
pub mod config;
pub mod event_store;
pub mod idempotency;
#[cfg(feature = "cognito")]
pub mod people;
pub mod postgres;
pub mod rds_iam;
pub mod records;
