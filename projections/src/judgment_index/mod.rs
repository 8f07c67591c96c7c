//! The judgment index: captured judgments embedded for tenant-scoped similarity search
//! (pgvector, HNSW, cosine).
//!
//! **Layout** (migrations `20261125002001_judgment_index.sql`,
//! `20261203000001_judgment_index_halfvec.sql` and
//! `20261205000001_judgment_index_graphs_at_ef_construction_400.sql`): `judgment_index` is
//! LIST-partitioned by tenant, each tenant's partition with an HNSW index of its own (half
//! precision, cosine, m 16, ef_construction 400), created on demand — when the tenant is
//! onboarded, with its first judgment, or by [`ensure_tenant_partition`]. A search reads
//! the tenant's partition alone, so it never loses results to a tenant filter, and keeps
//! its plan per tenant ([`search_statement`]). Each row records its judgment, tenant,
//! source event position, embedding model and dimension, title, body and tags.
//!
//! **One model per index.** The first write records the embedder's model and dimension;
//! a write with another embedder fails with [`IndexError::ModelChanged`]: changing the
//! model means a rebuild ([`rebuild`]: [`reset`], then replaying the log).
//!
//! **Use.** [`JudgmentIndexSubscription`] (run by `casebook serve` with the process's
//! embedder) calls [`apply`] with each batch of the log, inside the transaction that also
//! moves its checkpoint (exactly-once effect); the diagnosis path calls [`search`] on a
//! connection of the search role. Both take a plain `&mut PgConnection`, so any runner can
//! drive them. [`rebuild`] empties the index
//! and rewinds the subscription, which then replays the log with its (new) embedder.

mod apply;
mod partition;
mod search;
mod subscription;

pub use apply::{apply, Applied};
pub use partition::{ensure_model, ensure_tenant_partition, reset};
pub use search::{search, search_statement, IndexSearch, JudgmentHit};
pub use subscription::{rebuild, JudgmentIndexSubscription, SUBSCRIPTION};

use casebook_domain::any_event::DecodeError;
use casebook_domain::ports::EmbedError;

/// Why the judgment index could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The database failed the statement or the connection.
    #[error("judgment index query failed")]
    Database(#[from] sqlx::Error),
    /// The embedder failed.
    #[error("embedding judgments failed")]
    Embed(#[from] EmbedError),
    /// A stored event does not decode.
    #[error("cannot decode event at position {position}")]
    Decode {
        /// The event's global position.
        position: i64,
        /// Why.
        #[source]
        source: DecodeError,
    },
    /// A stored event's payload is not JSON, or its aggregate id not a UUID.
    #[error("malformed event at position {position}: {reason}")]
    MalformedEvent {
        /// The event's global position.
        position: i64,
        /// What is wrong.
        reason: String,
    },
    /// The index holds vectors of another model: rebuild it to switch models.
    #[error("the judgment index holds {indexed_model} ({indexed_dimension} dimensions), not {embedder_model} ({embedder_dimension}): rebuild it to change models")]
    ModelChanged {
        /// The model of the stored vectors.
        indexed_model: String,
        /// Their dimension.
        indexed_dimension: usize,
        /// The embedder's model.
        embedder_model: String,
        /// Its dimension.
        embedder_dimension: usize,
    },
}

impl IndexError {
    /// Whether trying again may succeed: database and transient embedding failures.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Database(_) => true,
            Self::Embed(err) => err.is_retryable(),
            Self::Decode { .. } | Self::MalformedEvent { .. } | Self::ModelChanged { .. } => false,
        }
    }
}
