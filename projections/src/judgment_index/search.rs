//! Tenant-scoped nearest-neighbour search.

use casebook_domain::ids::{JudgmentId, TenantId};
use casebook_domain::ports::Precedent;
use casebook_domain::values::{JudgmentBody, JudgmentTitle, Tag};
use sqlx::{Acquire, PgConnection, Row};
use uuid::Uuid;

use super::IndexError;

/// HNSW candidate list size per search (`hnsw.ef_search`): recall@10 ≥ 0.98 on 100,000 real
/// MiniLM vectors over 20 tenants (see `BENCHMARKS.md`).
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

/// The statement [`search`] prepares for vectors of `dimension` (`$1` tenant, `$2` the query
/// as `real[]`, `$3` k). Public for `EXPLAIN` in tests and benchmarks.
///
/// The cast matches the expression the partitions' HNSW indexes are built on. The tenant
/// predicate prunes to the tenant's one partition: when planning a custom plan, or when a
/// generic plan starts; either way only that partition's index is scanned.
pub fn search_sql(dimension: usize) -> String {
    format!(
        "SELECT judgment_id, (1 - (embedding::vector({dimension}) <=> $2::real[]::vector({dimension})))::real AS score,
                title, body, tags, source_position
           FROM judgment_index
          WHERE tenant_id = $1
          ORDER BY embedding::vector({dimension}) <=> $2::real[]::vector({dimension})
          LIMIT $3"
    )
}

/// The `k` judgments of `tenant` nearest to `query` (a vector of the index's model), best
/// first.
///
/// Runs in a transaction of its own (a savepoint inside the caller's) that sets, with
/// `SET LOCAL` semantics, `hnsw.ef_search` to [`EF_SEARCH`] and `app.tenant_id` to `tenant`,
/// so it works as the request-path role under row-level security. The statement is
/// prepared once per connection and dimension.
pub async fn search(
    conn: &mut PgConnection,
    tenant: TenantId,
    query: &[f32],
    k: u32,
) -> Result<Vec<JudgmentHit>, IndexError> {
    let sql = search_sql(query.len());
    let mut tx = conn.begin().await?;
    sqlx::query(
        "SELECT set_config('hnsw.ef_search', $1, true), set_config('app.tenant_id', $2, true)",
    )
    .bind(EF_SEARCH.to_string())
    .bind(tenant.to_string())
    .execute(&mut *tx)
    .await?;
    let rows = sqlx::query(&sql)
        .bind(tenant.as_uuid())
        .bind(query)
        .bind(i64::from(k))
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
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
