//! The projections against the real Postgres: read models, runner, faults, rebuilds, the
//! audit chain and its verifiable log, the auditors' queries and row-level security.

mod audit;
mod audit_queries;
mod faults;
mod oracle;
mod read_models;
mod rebuild;
mod rls;
mod runner;
mod support;
mod verifiable_log;
