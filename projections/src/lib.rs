//! Casebook's projections: everything built *from* the event log.
//!
//! | module | holds |
//! |---|---|
//! | [`log`] | the gap-safe reader of the global log: pages in `(transaction_id, global_position)` order below the oldest running transaction, as a catch-up stream or a tailing one woken by `NOTIFY` |
//! | [`subscription`] | the [`Subscription`](subscription::Subscription) trait: a named, checkpointed consumer of the log |
//! | [`runner`] | the [`Runner`](runner::Runner): batches, one transaction for rows and checkpoint, advisory lock, backoff, poison events; `run_until(shutdown)` for `casebook serve`, `drain(budget)` for a Lambda |
//! | [`checkpoints`], [`status`] | the `subscriptions` table: resume/stop, status and lag |
//! | [`projection`], [`decoded`] | the [`Projection`](projection::Projection) trait, Casebook's projections ([`ProjectionId`](projection::ProjectionId)), decoded events |
//! | [`models`] | the read models' rows and writers: tenants, sessions (with queries), diagnoses (with the review queue), decisions, usage |
//! | [`read`] | the read models' queries for the API (tenant-scoped, keyset pages) |
//! | [`audit`] | the hash-chained audit table, its canonical encodings (each row covering its event's full content since encoding 2) and verifiers |
//! | [`tlog`] | the verifiable logs: per tenant, a Merkle tree over the audit and access logs' rows as C2SP tiles, signed checkpoints, inclusion and consistency proofs, the offline check |
//! | [`rebuild`] | rebuild from history into shadow tables, verify by digest, swap |
//! | [`jobs`], [`judgment_index::IndexSearch`] | the application's ports over the log, the subscriptions and the index: tenants, decisions, lags, precedent search |
//! | [`error`] | [`ApplyError`](error::ApplyError): transient or permanent |
//!
//! ## Wiring
//! ```no_run
//! # async fn wire(projector: sqlx::PgPool, shutdown: impl std::future::Future<Output = ()> + Send) {
//! use casebook_projections::projection::ProjectionId;
//! use casebook_projections::runner::Runner;
//!
//! // `casebook serve`: every projection, following the log until shutdown.
//! Runner::new(projector.clone())
//!     .with_projections(ProjectionId::ALL)
//!     .run_until(shutdown)
//!     .await
//!     .expect("no subscription panicked");
//!
//! // A Lambda invocation: apply what is there, within a budget.
//! let reports = Runner::new(projector)
//!     .with_projections(ProjectionId::ALL)
//!     .drain(std::time::Duration::from_secs(50))
//!     .await
//!     .expect("no subscription panicked");
//! # }
//! ```

#![warn(missing_docs)]

pub mod access_log;
pub mod audit;
pub mod chain;
pub mod checkpoints;
pub mod decoded;
pub mod error;
pub mod jobs;
pub mod judgment_index;
pub mod log;
pub mod models;
pub mod projection;
pub mod read;
pub mod rebuild;
pub mod runner;
pub mod status;
pub mod subscription;
pub mod tlog;

mod sql;
