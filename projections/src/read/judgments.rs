//! The practice's captured judgments as consultants browse them: filtered lists, and one
//! judgment with every version of its content.

use casebook_domain::ids::{DecisionId, JudgmentId, TenantId};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{fetch_limit, page, Page, PageRequest};
use crate::models::{
    judgment_from_row, revision_from_row, JudgmentRevision, JudgmentStatus, JudgmentSummary,
    JUDGMENT_COLUMNS, REVISION_COLUMNS,
};
use crate::sql::{enum_text, select_list};

/// Which judgments a list holds; every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JudgmentFilter {
    /// Only judgments with one of these statuses (empty: any).
    pub statuses: Vec<JudgmentStatus>,
    /// Only the judgment captured from this decision.
    pub decision: Option<DecisionId>,
    /// Only judgments captured from decisions (`Some(true)`) or authored (`Some(false)`).
    pub from_decisions: Option<bool>,
    /// Captured at or after.
    pub captured_from: Option<DateTime<Utc>>,
    /// Captured before.
    pub captured_before: Option<DateTime<Utc>>,
    /// Only these judgments (a search's hits).
    pub among: Option<Vec<JudgmentId>>,
}

/// A judgment and its history, oldest version first.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgmentWithHistory {
    /// The judgment as it stands.
    pub judgment: JudgmentSummary,
    /// Its capture, revisions and retirement, in order.
    pub history: Vec<JudgmentRevision>,
}

/// One page of `tenant`'s judgments that `filter` admits, the most recently changed first.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &JudgmentFilter,
    request: PageRequest,
) -> Result<Page<JudgmentSummary>, sqlx::Error> {
    let statuses = filter
        .statuses
        .iter()
        .map(enum_text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
    let rows = sqlx::query(&format!(
        "SELECT {} FROM judgments
          WHERE tenant_id = $1
            AND ($2::bigint IS NULL OR position < $2)
            AND (cardinality($3::text[]) = 0 OR status = ANY($3))
            AND ($4::uuid IS NULL OR decision_id = $4)
            AND ($5::bool IS NULL OR (origin = 'decision') = $5)
            AND ($6::timestamptz IS NULL OR captured_at >= $6)
            AND ($7::timestamptz IS NULL OR captured_at < $7)
            AND ($8::uuid[] IS NULL OR judgment_id = ANY($8))
          ORDER BY position DESC LIMIT $9",
        select_list(JUDGMENT_COLUMNS)
    ))
    .bind(tenant.as_uuid())
    .bind(request.after)
    .bind(statuses)
    .bind(filter.decision.map(|id| *id.as_uuid()))
    .bind(filter.from_decisions)
    .bind(filter.captured_from)
    .bind(filter.captured_before)
    .bind(
        filter
            .among
            .as_ref()
            .map(|ids| ids.iter().map(|id| *id.as_uuid()).collect::<Vec<_>>()),
    )
    .bind(fetch_limit(request))
    .fetch_all(conn)
    .await?;
    page(rows, request, judgment_from_row, |judgment| {
        judgment.position
    })
}

/// `tenant`'s judgment `id` with its history, if the tenant has it.
pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: JudgmentId,
) -> Result<Option<JudgmentWithHistory>, sqlx::Error> {
    let Some(row) = sqlx::query(&format!(
        "SELECT {} FROM judgments WHERE tenant_id = $1 AND judgment_id = $2",
        select_list(JUDGMENT_COLUMNS)
    ))
    .bind(tenant.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let judgment = judgment_from_row(&row)?;
    let history = sqlx::query(&format!(
        "SELECT {} FROM judgment_revisions
          WHERE tenant_id = $1 AND judgment_id = $2 ORDER BY revision",
        select_list(REVISION_COLUMNS)
    ))
    .bind(tenant.as_uuid())
    .bind(id.as_uuid())
    .fetch_all(conn)
    .await?
    .iter()
    .map(revision_from_row)
    .collect::<Result<_, _>>()?;
    Ok(Some(JudgmentWithHistory { judgment, history }))
}
