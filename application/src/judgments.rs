//! Searching a practice's captured judgment by meaning: the query embedded by the same
//! embedder the judgment index was built with, then the tenant's nearest judgments. The
//! diagnosis use case retrieves its precedents the same way ([`nearest`]).

use std::sync::Arc;

use casebook_domain::ids::TenantId;
use casebook_domain::ports::{EmbedError, Embedder};

use crate::ports::{BoxError, FoundPrecedent, PrecedentSearch};

/// The most judgments one search returns.
pub const MAX_RESULTS: u32 = 50;

/// The longest search text, in characters: a question, not a document.
pub const MAX_QUERY_CHARS: usize = 2_000;

/// Why a search found nothing to show.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The search text is empty, too long, or asks for no results or too many.
    #[error("{0}")]
    Invalid(String),
    /// The embedder failed (transiently or not).
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The embedder answered with something other than one vector.
    #[error("the embedder returned {0} vectors for one text")]
    Malformed(usize),
    /// The index could not be searched.
    #[error("searching the judgment index failed")]
    Index(#[source] BoxError),
}

/// `tenant`'s `k` judgments nearest to `text`, best first (none before its first judgment is
/// indexed): `text` embedded by `embedder`, the index searched through `search`.
pub async fn nearest(
    embedder: &dyn Embedder,
    search: &dyn PrecedentSearch,
    tenant: TenantId,
    text: &str,
    k: u32,
) -> Result<Vec<FoundPrecedent>, SearchError> {
    let vectors = embedder.embed(&[text.to_owned()]).await?;
    let [vector] = vectors.as_slice() else {
        return Err(SearchError::Malformed(vectors.len()));
    };
    search
        .nearest(tenant, vector, k)
        .await
        .map_err(SearchError::Index)
}

/// Consultants' semantic search of their practice's judgments.
#[derive(Clone)]
pub struct JudgmentSearch {
    embedder: Arc<dyn Embedder>,
    index: Arc<dyn PrecedentSearch>,
}

impl JudgmentSearch {
    /// Searches `index`, embedding queries with `embedder` (the worker's: vectors of another
    /// model would not compare).
    pub fn new(embedder: Arc<dyn Embedder>, index: Arc<dyn PrecedentSearch>) -> Self {
        Self { embedder, index }
    }

    /// `tenant`'s judgments nearest in meaning to `query` (trimmed), at most `k`, best first.
    pub async fn search(
        &self,
        tenant: TenantId,
        query: &str,
        k: u32,
    ) -> Result<Vec<FoundPrecedent>, SearchError> {
        let query = query.trim();
        if query.is_empty() {
            return Err(SearchError::Invalid("the search text is empty".into()));
        }
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(SearchError::Invalid(format!(
                "the search text is longer than {MAX_QUERY_CHARS} characters"
            )));
        }
        if !(1..=MAX_RESULTS).contains(&k) {
            return Err(SearchError::Invalid(format!(
                "between 1 and {MAX_RESULTS} results may be asked for"
            )));
        }
        nearest(
            self.embedder.as_ref(),
            self.index.as_ref(),
            tenant,
            query,
            k,
        )
        .await
    }
}
