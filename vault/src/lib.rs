//! Personal data sealed per data subject (decision 0027): the key tables, the root key that
//! wraps each tenant's key, and the sealing and opening of event payloads' personal fields.
//!
//! The event store seals as it appends and opens as it loads; the projections, the relay and
//! `casebook-replay` open what they read. Destroying a subject's key is the erasure: their
//! values then open as redactions, and nothing can bring them back.

#![warn(missing_docs)]

pub mod cipher;
pub mod keys;
pub mod payload;
pub mod root;

pub use keys::{subject_keys_query, SubjectKeys, Vault, WrappedSubjectKey};

/// Why a value could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The subject is erased: nothing seals under a key of theirs again.
    #[error("the data subject {0} is erased")]
    Erased(String),
    /// The whole tenant is erased: no key is made for it again.
    #[error("the tenant {0} is erased")]
    TenantErased(uuid::Uuid),
    /// A key or a sealed value does not open, or is malformed.
    #[error("{0}")]
    Damaged(String),
    /// The root key (the key file, KMS) refused or failed.
    #[error("{0}")]
    Root(String),
    /// A field's JSON.
    #[error("a sealed field's JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The key tables.
    #[error("the key tables: {0}")]
    Database(#[from] sqlx::Error),
}
