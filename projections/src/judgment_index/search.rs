//! Tenant-scoped nearest-neighbour search.

use casebook_application::ports::{BoxError, FoundPrecedent, PrecedentSearch};
use casebook_domain::ids::{JudgmentId, TenantId};
use casebook_domain::ports::Precedent;
use casebook_domain::values::{JudgmentBody, JudgmentTitle, Tag};
use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection, Row};
use uuid::Uuid;

use super::partition::{Generation, IndexedModel};
use super::IndexError;

/// SQLSTATE of a statement naming a table that does not exist: the tenant's partition is
/// created with its first judgment (or when it is onboarded).
const UNDEFINED_TABLE: &str = "42P01";

/// SQLSTATE pgvector raises for a vector of another dimension than the cast's (a query of
/// another model than the index's).
const DATA_EXCEPTION: &str = "22000";

/// One judgment found by [`search`].
#[derive(Debug, Clone, PartialEq)]
pub struct JudgmentHit {
    /// The judgment.
    pub judgment_id: JudgmentId,
    /// Cosine similarity to the query (1 is identical).
    pub score: f32,
    /// Its title.
    pub title: JudgmentTitle,
    /// Its body.
    pub body: JudgmentBody,
    /// Its labels.
    pub tags: Vec<Tag>,
    /// The event the stored content came from.
    pub source_position: i64,
}

impl JudgmentHit {
    /// As a precedent for a diagnosis prompt.
    pub fn into_precedent(self) -> Precedent {
        Precedent {
            judgment_id: self.judgment_id,
            title: self.title,
            body: self.body,
            score: self.score,
        }
    }
}

/// The statement [`search`] prepares for `tenant` and query vectors of `dimension`
/// (`$1` tenant, `$2` the query as `real[]`, `$3` k). Public for `EXPLAIN` in tests and
/// benchmarks.
///
/// It names the tenant's partition, so each connection keeps one plan per tenant: the plan
/// of a statement over the partitioned parent would either be made again on every call
/// (a custom plan, pruned to one partition: planning cost more than a small tenant's walk)
/// or lock every tenant's partition on every call (a generic plan prunes only at run
/// time). The tenant filter is explicit all the same. The cast matches the expression the
/// partition's HNSW index is built on; the distance is computed once, for the order and the
/// score.
///
/// Each hit also carries the model its vector was made with, which [`search`] checks
/// against the query's: a swap may have put another model's vectors under the same name
/// (decision 0028).
pub fn search_statement(tenant: TenantId, dimension: usize) -> String {
    statement_on(Generation::Live, tenant, dimension)
}

/// [`search_statement`] over `generation`'s partition of `tenant`.
pub(crate) fn statement_on(generation: Generation, tenant: TenantId, dimension: usize) -> String {
    format!(
        "SELECT hit.judgment_id, (1 - hit.distance)::real AS score,
                hit.title, hit.body, hit.tags, hit.source_position, hit.embedding_model
           FROM (SELECT j.judgment_id, j.title, j.body, j.tags, j.source_position,
                        j.embedding_model,
                        j.embedding::halfvec({dimension}) <=> $2::halfvec({dimension}) AS distance
                   FROM {partition} j
                  WHERE j.tenant_id = $1
                  ORDER BY distance
                  LIMIT $3) hit
          ORDER BY hit.distance",
        partition = generation.partition(tenant),
    )
}

/// The `k` judgments of `tenant` nearest to `query`, a vector of `model`, best first; none
/// while the tenant has no partition.
///
/// `conn` must be a connection of the search role (`DbRole::Search` in
/// `casebook-adapters`), outside a transaction (a tenant without a partition fails the
/// statement, which is answered with no hits but would abort a transaction): its session
/// settings make every search walk the partition's HNSW graph whatever the partition's size
/// (an exact scan of a small partition is twice as slow). One round trip, with the plan the
/// connection keeps for the tenant ([`search_statement`]).
///
/// The walk stops after ef_search candidates, cheaper than an iterative scan that could go
/// on: a search finding fewer than `k` live judgments there (`k` exceeds ef_search, or row
/// versions a revision or retirement left dead until vacuum took up candidates) walks again
/// with the iterative scan on, until it has `k` or the tenant has no more. A tenant holding
/// fewer than `k` judgments pays that second walk on every search; its graph is tiny.
///
/// The index's vectors must be `model`'s: after a rebuild for another model is swapped in,
/// a process still embedding queries with the old one gets [`IndexError::QueryModel`] until
/// it runs the new one, never a ranking of one model's query among another's vectors.
pub async fn search(
    conn: &mut PgConnection,
    tenant: TenantId,
    model: &str,
    query: &[f32],
    k: u32,
) -> Result<Vec<JudgmentHit>, IndexError> {
    let statement = search_statement(tenant, query.len());
    let wanted = usize::try_from(k).unwrap_or(usize::MAX);
    let first = match fetch(&mut *conn, &statement, tenant, query, k).await {
        Err(IndexError::Database(sqlx::Error::Database(err)))
            if err.code().as_deref() == Some(DATA_EXCEPTION) =>
        {
            // The stored vectors are not of the query's dimension, so of another model;
            // any other data error keeps its own report.
            let indexed = partition_model(conn, Generation::Live, tenant).await?;
            return Err(match indexed {
                Some(indexed) if !same_model(&indexed, model, query.len()) => {
                    IndexError::QueryModel {
                        indexed_model: indexed.model,
                        query_model: model.to_owned(),
                    }
                }
                _ => IndexError::Database(sqlx::Error::Database(err)),
            });
        }
        other => other?,
    };
    let rows = match first {
        Some(rows) if rows.len() >= wanted => rows,
        Some(_) => {
            let mut tx = conn.begin().await?;
            sqlx::query("SET LOCAL hnsw.iterative_scan = strict_order")
                .execute(&mut *tx)
                .await?;
            let rows = fetch(&mut tx, &statement, tenant, query, k).await?;
            tx.commit().await?;
            rows.unwrap_or_default()
        }
        None => Vec::new(),
    };
    hits(&rows, model)
}

/// The hits in `rows` of a search statement, refused when their vectors are not `model`'s.
pub(crate) fn hits(rows: &[PgRow], model: &str) -> Result<Vec<JudgmentHit>, IndexError> {
    if let Some(row) = rows.first() {
        let indexed: String = row.try_get("embedding_model")?;
        if indexed != model {
            return Err(IndexError::QueryModel {
                indexed_model: indexed,
                query_model: model.to_owned(),
            });
        }
    }
    rows.iter()
        .map(|row| {
            let judgment_id: Uuid = row.try_get("judgment_id")?;
            let tags: Vec<String> = row.try_get("tags")?;
            // As stored: the index holds what history accepted, whatever today's limits say.
            Ok(JudgmentHit {
                judgment_id: JudgmentId::from_uuid(judgment_id),
                score: row.try_get("score")?,
                title: JudgmentTitle::from_stored(row.try_get::<String, _>("title")?),
                body: JudgmentBody::from_stored(row.try_get::<String, _>("body")?),
                tags: tags.into_iter().map(Tag::from_stored).collect(),
                source_position: row.try_get("source_position")?,
            })
        })
        .collect()
}

fn same_model(indexed: &IndexedModel, model: &str, dimension: usize) -> bool {
    indexed.model == model && indexed.dimension == dimension
}

/// The model of the vectors in `generation`'s partition of `tenant` (`None`: no rows, or no
/// partition).
async fn partition_model(
    conn: &mut PgConnection,
    generation: Generation,
    tenant: TenantId,
) -> Result<Option<IndexedModel>, IndexError> {
    let row: Option<(String, i32)> = match sqlx::query_as(&format!(
        "SELECT embedding_model, embedding_dim FROM {} LIMIT 1",
        generation.partition(tenant)
    ))
    .fetch_optional(conn)
    .await
    {
        Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some(UNDEFINED_TABLE) => None,
        other => other?,
    };
    Ok(row.map(|(model, dimension)| IndexedModel {
        model,
        dimension: usize::try_from(dimension).unwrap_or(0),
    }))
}

/// Runs the search `statement`; `None` if the tenant's partition does not exist.
pub(crate) async fn fetch(
    conn: &mut PgConnection,
    statement: &str,
    tenant: TenantId,
    query: &[f32],
    k: u32,
) -> Result<Option<Vec<PgRow>>, IndexError> {
    let found = sqlx::query(statement)
        .bind(tenant.as_uuid())
        .bind(query)
        .bind(i32::try_from(k).unwrap_or(i32::MAX))
        .fetch_all(conn)
        .await;
    match found {
        Ok(rows) => Ok(Some(rows)),
        Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some(UNDEFINED_TABLE) => {
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}

/// The application's precedent search over the index, on the search role's pool.
///
/// The worker handles one message at a time, so one connection is enough, and keeping it
/// keeps the tenants' prepared search plans.
#[derive(Clone)]
pub struct IndexSearch {
    pool: sqlx::PgPool,
    model: String,
}

impl IndexSearch {
    /// Searches through `pool` (which should run as `casebook_search`) with query vectors
    /// of `model` (the process's embedder's): an index holding another model's answers
    /// [`IndexError::QueryModel`].
    pub fn new(pool: sqlx::PgPool, model: impl Into<String>) -> Self {
        Self {
            pool,
            model: model.into(),
        }
    }
}

#[async_trait::async_trait]
impl PrecedentSearch for IndexSearch {
    async fn nearest(
        &self,
        tenant: TenantId,
        vector: &[f32],
        k: u32,
    ) -> Result<Vec<FoundPrecedent>, BoxError> {
        let mut conn = self.pool.acquire().await?;
        let hits = search(&mut conn, tenant, &self.model, vector, k).await?;
        Ok(hits
            .into_iter()
            .map(|hit| FoundPrecedent {
                source_position: hit.source_position,
                precedent: hit.into_precedent(),
            })
            .collect())
    }
}
