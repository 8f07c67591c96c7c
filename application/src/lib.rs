//! Casebook's application layer: the use cases, generic over the ports this crate owns.
//!
//! | module | what |
//! |---|---|
//! | [`service`] | commands from people and the system: preconditions read from other aggregates, metadata attached, failures mapped to [`ServiceError`] |
//! | [`diagnosis`] | the diagnosis use case: read attachments, embed, retrieve precedents, route between model tiers, propose or record the failure |
//! | [`budget`] | monthly token budgets: diagnoses deferred while one is spent and resumed when it allows, thresholds recorded and counted once a month |
//! | [`business`] | business events: each query, proposal, decision, auto-approval and sign-up told once, in words and measures |
//! | [`reactions`] | what follows an event: resolve and capture a decision, auto-approve, provision people, put a tenant's key on its plan |
//! | [`erasure`] | what an erasure purges in S3: the customer's uploads, and the fine-tune exports rewritten without them |
//! | [`judgments`] | consultants' semantic search of their practice's judgments, and the nearest-judgment lookup the diagnosis shares |
//! | [`jobs`] | the scheduled jobs: the fine-tune export, the audit archive, the lag check |
//! | [`own_models`] | a practice's own models: an upload registered, put through the evaluation gate, promoted or rejected |
//! | [`ports`] | what the use cases need from outside: the event store, precedent search, identity provider, gateway keys, the request path's records, upload grants |
//! | [`in_memory`] | every port in memory, for tests that run in milliseconds without Postgres or the emulator |
//!
//! Nothing here knows SQL, HTTP, SQS or Lambda: `casebook-adapters` and
//! `casebook-projections` implement the ports, `casebook-handlers` translates transports into
//! calls and holds the one composition root.

pub mod budget;
pub mod business;
pub mod diagnosis;
pub mod erasure;
pub mod in_memory;
pub mod jobs;
pub mod judgments;
pub mod own_models;
pub mod ports;
pub mod reactions;
pub mod service;

pub use service::{Accepted, RequestContext, Service, ServiceError};
