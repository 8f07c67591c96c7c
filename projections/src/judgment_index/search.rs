//! Tenant-scoped nearest-neighbour search.

use casebook_domain::ids::{JudgmentId, TenantId};
use casebook_domain::ports::Precedent;
use casebook_domain::values::{JudgmentBody, JudgmentTitle, Tag};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::IndexError;

/// HNSW candidate list size per search (`hnsw.ef_search`, set by `judgment_index_search`):
/// on the partitions' half-precision graphs (ef_construction 200), recall@10 ≥ 0.98 on
/// 100,000 real MiniLM vectors over 20 tenants, also for the largest (see `BENCHMARKS.md`).
pub const EF_SEARCH: u32 = 40;

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

/// The statement `judgment_index_search` plans for each call with vectors of `dimension`
/// (`$1` tenant, `$2` the query as `real[]`, `$3` k), as the database renders it. For
/// `EXPLAIN` in tests and benchmarks.
///
/// The cast matches the expression the partitions' HNSW indexes are built on. The tenant
/// predicate prunes to the tenant's one partition, so only that partition's index is scanned.
pub async fn search_sql(conn: &mut PgConnection, dimension: usize) -> Result<String, IndexError> {
    Ok(sqlx::query_scalar("SELECT judgment_index_search_sql($1)")
        .bind(i32::try_from(dimension).unwrap_or(i32::MAX))
        .fetch_one(conn)
        .await?)
}

/// The `k` judgments of `tenant` nearest to `query` (a vector of the index's model), best
/// first.
///
/// One round trip: the prepared call of the SQL function `judgment_index_search`, which
/// scopes `hnsw.ef_search` ([`EF_SEARCH`]) and `app.tenant_id` to itself, so it works as the
/// request-path role under row-level security, inside or outside the caller's transaction.
/// It walks the tenant's HNSW graph whatever the partition's size (an exact scan of a small
/// partition is twice as slow), and keeps walking until it has `k` live judgments (when `k`
/// exceeds [`EF_SEARCH`], or dead row versions took up candidates).
pub async fn search(
    conn: &mut PgConnection,
    tenant: TenantId,
    query: &[f32],
    k: u32,
) -> Result<Vec<JudgmentHit>, IndexError> {
    let rows = sqlx::query(
        "SELECT judgment_id, score, title, body, tags, source_position
           FROM judgment_index_search($1, $2, $3)",
    )
    .bind(tenant.as_uuid())
    .bind(query)
    .bind(i32::try_from(k).unwrap_or(i32::MAX))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let judgment_id: Uuid = row.try_get("judgment_id")?;
            let corrupt = |reason: String| IndexError::CorruptRow {
                judgment_id,
                reason,
            };
            let tags: Vec<String> = row.try_get("tags")?;
            Ok(JudgmentHit {
                judgment_id: JudgmentId::from_uuid(judgment_id),
                score: row.try_get("score")?,
                title: JudgmentTitle::parse(row.try_get::<String, _>("title")?)
                    .map_err(|err| corrupt(err.to_string()))?,
                body: JudgmentBody::parse(row.try_get::<String, _>("body")?)
                    .map_err(|err| corrupt(err.to_string()))?,
                tags: tags
                    .into_iter()
                    .map(|tag| Tag::parse(tag).map_err(|err| corrupt(err.to_string())))
                    .collect::<Result<_, _>>()?,
                source_position: row.try_get("source_position")?,
            })
        })
        .collect()
}
