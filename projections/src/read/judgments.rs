//! The practice's captured judgments as the judgment index holds them: the active ones (a
//! retired judgment leaves the index), newest first.

use casebook_domain::ids::{JudgmentId, TenantId};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{fetch_limit, page, Page, PageRequest};

/// One active judgment.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedJudgment {
    /// The judgment.
    pub judgment_id: JudgmentId,
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// Its labels.
    pub tags: Vec<String>,
    /// When its current content was indexed.
    pub indexed_at: DateTime<Utc>,
    /// The log position of the event its content comes from: the list's order and cursor.
    pub position: i64,
}

fn from_row(row: &PgRow) -> Result<IndexedJudgment, sqlx::Error> {
    Ok(IndexedJudgment {
        judgment_id: JudgmentId::from_uuid(row.try_get("judgment_id")?),
        title: row.try_get("title")?,
        body: row.try_get("body")?,
        tags: row.try_get("tags")?,
        indexed_at: row.try_get("indexed_at")?,
        position: row.try_get("source_position")?,
    })
}

/// One page of `tenant`'s active judgments, the most recently captured or revised first.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    request: PageRequest,
) -> Result<Page<IndexedJudgment>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT judgment_id, title, body, tags, indexed_at, source_position
           FROM judgment_index
          WHERE tenant_id = $1 AND ($2::bigint IS NULL OR source_position < $2)
          ORDER BY source_position DESC LIMIT $3",
    )
    .bind(tenant.as_uuid())
    .bind(request.after)
    .bind(fetch_limit(request))
    .fetch_all(conn)
    .await?;
    page(rows, request, from_row, |judgment| judgment.position)
}
