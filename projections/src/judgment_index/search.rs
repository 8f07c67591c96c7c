//! Tenant-scoped nearest-neighbour search.

use casebook_application::ports::{BoxError, FoundPrecedent, PrecedentSearch};
use casebook_domain::ids::{JudgmentId, TenantId};
use casebook_domain::ports::Precedent;
use casebook_domain::values::{JudgmentBody, JudgmentTitle, Tag};
use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection, Row};
use uuid::Uuid;

use super::partition::partition_name;
use super::IndexError;

/// SQLSTATE of a statement naming a table that does not exist: the tenant's partition is
/// created with its first judgment (or when it is onboarded), and dropped by a rebuild.
const UNDEFINED_TABLE: &str = "42P01";

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
pub fn search_statement(tenant: TenantId, dimension: usize) -> String {
    format!(
        "SELECT hit.judgment_id, (1 - hit.distance)::real AS score,
                hit.title, hit.body, hit.tags, hit.source_position
           FROM (SELECT j.judgment_id, j.title, j.body, j.tags, j.source_position,
                        j.embedding::halfvec({dimension}) <=> $2::halfvec({dimension}) AS distance
                   FROM {partition} j
                  WHERE j.tenant_id = $1
                  ORDER BY distance
                  LIMIT $3) hit
          ORDER BY hit.distance",
        partition = partition_name(tenant),
    )
}

/// The `k` judgments of `tenant` nearest to `query` (a vector of the index's model), best
/// first; none while the tenant has no partition.
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
pub async fn search(
    conn: &mut PgConnection,
    tenant: TenantId,
    query: &[f32],
    k: u32,
) -> Result<Vec<JudgmentHit>, IndexError> {
    let statement = search_statement(tenant, query.len());
    let wanted = usize::try_from(k).unwrap_or(usize::MAX);
    let rows = match fetch(&mut *conn, &statement, tenant, query, k).await? {
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

/// Runs the search `statement`; `None` if the tenant's partition does not exist.
async fn fetch(
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
}

impl IndexSearch {
    /// Searches through `pool` (which should run as `casebook_search`).
    pub fn new(pool: sqlx::PgPool) -> Self {
        Self { pool }
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
        let hits = search(&mut conn, tenant, vector, k).await?;
        Ok(hits
            .into_iter()
            .map(|hit| FoundPrecedent {
                source_position: hit.source_position,
                precedent: hit.into_precedent(),
            })
            .collect())
    }
}
