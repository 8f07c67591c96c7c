//! The judgment index: captured judgments embedded for tenant-scoped similarity search
//! (pgvector, HNSW, cosine).
//!
//! **Layout** (migrations `20261125002001_judgment_index.sql`,
//! `20261203000001_judgment_index_halfvec.sql`,
//! `20261205000001_judgment_index_graphs_at_ef_construction_400.sql` and
//! `20261209000001_judgment_index_blue_green.sql`): `judgment_index` is
//! LIST-partitioned by tenant, each tenant's partition with an HNSW index of its own (half
//! precision, cosine, m 16, ef_construction 400), created on demand — when the tenant is
//! onboarded, with its first judgment, or by [`ensure_tenant_partition`]. A search reads
//! the tenant's partition alone, so it never loses results to a tenant filter, and keeps
//! its plan per tenant ([`search_statement`]). Each row records its judgment, tenant,
//! source event position, embedding model and dimension, title, body and tags.
//!
//! **One model per index.** The first write records the embedder's model and dimension;
//! a write with another embedder fails with [`IndexError::ModelChanged`], and a search with a
//! query of another model with [`IndexError::QueryModel`]: changing the model means a
//! rebuild.
//!
//! **Blue/green rebuilds** ([`IndexRebuild`], decision 0028): a second generation of the
//! index, `judgment_index_green`, with its own model record, is built from the log beside the
//! live one (for every tenant or one) while searches keep reading the live partitions;
//! verified (rows per tenant against the log, and recall on a sample); then swapped in by one
//! transaction that renames its partitions into the live ones' names. The live subscription
//! carries on from there with the process's embedder.
//!
//! **Use.** [`JudgmentIndexSubscription`] (run by `casebook serve` with the process's
//! embedder) calls [`apply`] with each batch of the log, inside the transaction that also
//! moves its checkpoint (exactly-once effect); the diagnosis path calls [`search`] on a
//! connection of the search role. Both take a plain `&mut PgConnection`, so any runner can
//! drive them. The replay tool's `judgment-index` commands drive [`IndexRebuild`].

mod apply;
mod partition;
mod rebuild;
mod search;
mod subscription;

pub use apply::{apply, Applied};
pub use partition::{ensure_model, ensure_tenant_partition, IndexedModel};
pub use rebuild::{
    index_status, GreenStatus, InPlace, IndexRebuild, IndexStatus, IndexVerdict, Recall,
    RecallCheck, TenantCount,
};
pub use search::{search, search_statement, IndexSearch, JudgmentHit};
pub use subscription::{JudgmentIndexSubscription, SUBSCRIPTION};

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
    /// The index holds vectors of another model than the embedder's: run the index's model,
    /// or rebuild the index for this one (`casebook-replay judgment-index rebuild`).
    #[error("the judgment index holds {indexed_model} ({indexed_dimension} dimensions), not {embedder_model} ({embedder_dimension}): run the index's model, or rebuild the index for this one")]
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
    /// A query embedded with another model than the index's vectors: ranking it among them
    /// would be noise. Seen between a rebuild for a new model being swapped in and the
    /// processes being deployed with it.
    #[error("the judgment index holds vectors of {indexed_model}, the query was embedded with {query_model}: search with the index's model")]
    QueryModel {
        /// The model of the stored vectors.
        indexed_model: String,
        /// The query's model.
        query_model: String,
    },
}

impl IndexError {
    /// Whether trying again may succeed: database and transient embedding failures, and a
    /// model that differs from the index's, which a deploy of the index's model or the swap
    /// of a rebuild for this one resolves.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Database(_) | Self::ModelChanged { .. } | Self::QueryModel { .. } => true,
            Self::Embed(err) => err.is_retryable(),
            Self::Decode { .. } | Self::MalformedEvent { .. } => false,
        }
    }
}
