//! `casebook-replay`: the auditors' and data teams' command-line tool.
//!
//! Auditors replay a tenant's history: [`stream`] its events (to stdout, a file or S3, as
//! JSONL or a table), rebuild an aggregate's [`state`] as it was at a point of the log or in
//! time, and [`audit`]-verify the tenant's hash chain in the database or offline from an
//! export, and export and verify its [`access_log`]. Data teams [`rebuild`] projections into shadow tables (resumable), verify them
//! against the live tables, swap them in, and read every subscription's status.
//!
//! | module | holds |
//! |---|---|
//! | [`cli`] | the clap command line |
//! | [`db`] | connections: read-only as `casebook_auditor`, or as the owner for rebuilds |
//! | [`bound`] | `POS\|TIME` arguments, resolved to points of the log |
//! | [`stream`] | the tenant's events in order, with the export line format |
//! | [`sink`] | where a stream goes: stdout, a file, or an S3 multipart upload |
//! | [`state`] | an aggregate's state as of a point, replayed through the domain |
//! | [`audit`] | chain verification from the database or from export files |
//! | [`access_log`] | the access log's export, and its chain's verification in the database or from exports |
//! | [`verifiable`] | the verifiable logs: proof bundles read from the database (`prove`), and checked offline with the published key (`verify --proofs`) |
//! | [`rebuild`] | rebuild, verify, swap and status |
//! | [`judgment_index`] | the judgment index's blue/green rebuild, verification, swap and status, embedding with the server's AI configuration |
//! | [`progress`] | progress bars on stderr (hidden when not a terminal or `--quiet`) |
//!
//! Exit codes: [`Verdict::Passed`] 0, [`Verdict::Failed`] 1 (a verification found a
//! difference), 2 for usage errors ([`Error::Usage`] and clap's own), 3 for runtime errors.

#![warn(missing_docs)]

pub mod access_log;
pub mod audit;
pub mod bound;
pub mod cli;
pub mod db;
pub mod erasure;
pub mod judgment_index;
pub mod progress;
pub mod rebuild;
pub mod sink;
pub mod state;
pub mod stream;
pub mod verifiable;

use casebook_projections::log::ReadError;
use casebook_projections::rebuild::RebuildError;

/// How a command that checks something ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Everything checked out (or there was nothing to check).
    Passed,
    /// A verification found a difference or a broken link.
    Failed,
}

impl Verdict {
    /// The process exit code: 0 or 1.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Passed => 0,
            Verdict::Failed => 1,
        }
    }
}

/// Why a command could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The arguments name nothing usable (an unknown projection, a position with no event,
    /// an aggregate with no events in the tenant).
    #[error("{0}")]
    Usage(String),
    /// The environment is incomplete (no `DATABASE_URL`).
    #[error("configuration")]
    Config(#[from] casebook_adapters::config::ConfigError),
    /// The database failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Reading the event log failed.
    #[error("reading the event log failed")]
    Read(#[from] ReadError),
    /// A rebuild step failed.
    #[error("rebuild failed")]
    Rebuild(#[from] RebuildError),
    /// Writing the output or reading an input file failed.
    #[error("I/O error")]
    Io(#[from] std::io::Error),
    /// Encoding JSON failed.
    #[error("JSON error")]
    Json(#[from] serde_json::Error),
    /// A stored event does not decode into the domain's events.
    #[error("cannot decode {event}")]
    Decode {
        /// `Type/id#sequence` of the event.
        event: String,
        /// Why.
        #[source]
        source: casebook_domain::any_event::DecodeError,
    },
    /// An S3 call failed.
    #[error("S3 {operation} failed")]
    S3 {
        /// The API operation.
        operation: &'static str,
        /// The SDK's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The database contradicts itself (e.g. the audit chain skips an event of the log).
    #[error("{0}")]
    Inconsistent(String),
    /// The vault's root key could not be read.
    #[error("the vault")]
    Vault(#[from] casebook_vault::VaultError),
    /// A rebuild stopped (Ctrl-C) before it caught up; `--resume` continues it.
    #[error("stopped before catching up; run again with --resume to continue")]
    Interrupted,
}

impl Error {
    /// The process exit code: 2 for usage errors, 3 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Config(_) => 2,
            _ => 3,
        }
    }
}
