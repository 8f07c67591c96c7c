//! Casebook's adapters: everything that talks to the outside world on the domain's behalf.
//!
//! - [`postgres`]: connection pools (each assuming its least-privileged role) and the
//!   embedded migrations.
//! - [`event_store`]: the cqrs-es event repository over the extended `events` table, with
//!   snapshots and typed errors ([`event_store::StoreError`]).
//! - [`config`]: the one typed configuration struct, read from the environment once.
//!
//! The AWS clients (Bedrock, S3, SQS, EventBridge) and the local embedded providers live
//! here too as they land; the domain and the projections never see them.

pub mod config;
pub mod event_store;
pub mod postgres;
