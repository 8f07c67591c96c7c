//! The `decisions` read model.

use casebook_domain::ids::{DecisionId, DiagnosisId, TenantId, UserId};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{fetch_limit, page, Page, PageRequest};
use crate::models::{decision_from_row, Decision, DECISION_COLUMNS};
use crate::sql::select_list;
use casebook_domain::personal::ERASED;

/// One decision of `tenant`.
pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    decision: DecisionId,
) -> Result<Option<Decision>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM decisions WHERE tenant_id = $1 AND decision_id = $2",
        select_list(DECISION_COLUMNS)
    );
    sqlx::query(&sql)
        .bind(tenant.as_uuid())
        .bind(decision.as_uuid())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(decision_from_row)
        .transpose()
}

/// The decisions of those of `diagnoses` that `tenant` has decided, in no particular order:
/// one statement for a page of diagnoses.
pub async fn of_diagnoses(
    conn: &mut PgConnection,
    tenant: TenantId,
    diagnoses: &[DiagnosisId],
) -> Result<Vec<Decision>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM decisions WHERE tenant_id = $1 AND diagnosis_id = ANY($2)",
        select_list(DECISION_COLUMNS)
    );
    let ids: Vec<Uuid> = diagnoses.iter().map(|id| *id.as_uuid()).collect();
    sqlx::query(&sql)
        .bind(tenant.as_uuid())
        .bind(ids)
        .fetch_all(conn)
        .await?
        .iter()
        .map(decision_from_row)
        .collect()
}

/// `tenant`'s decisions, newest first; only `decided_by`'s when given.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    decided_by: Option<&UserId>,
    request: PageRequest,
) -> Result<Page<Decision>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM decisions
          WHERE tenant_id = $1 AND ($2::text IS NULL OR decided_by = $2)
            AND ($3::bigint IS NULL OR position < $3)
          ORDER BY position DESC LIMIT $4",
        select_list(DECISION_COLUMNS)
    );
    let rows = sqlx::query(&sql)
        .bind(tenant.as_uuid())
        .bind(decided_by.map(UserId::as_str))
        .bind(request.after)
        .bind(fetch_limit(request))
        .fetch_all(conn)
        .await?;
    page(rows, request, decision_from_row, |d| d.position)
}

/// An approved or amended decision as an example of the practice's judgment: the query and
/// the text the consultant let stand.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovedExample {
    /// The decision.
    pub decision_id: DecisionId,
    /// What the customer asked.
    pub query: String,
    /// The proposal as approved, or the consultant's amendment.
    pub approved_text: String,
    /// The approved proposal's findings, by summary (none for an amendment: the consultant
    /// replaced the text the findings belonged to).
    pub findings: Vec<String>,
}

/// `tenant`'s newest `limit` approved and amended decisions, newest first; those whose query
/// or text reads as erased are left out (an erased customer's matter teaches nothing).
pub async fn approved_examples(
    conn: &mut PgConnection,
    tenant: TenantId,
    limit: i64,
) -> Result<Vec<ApprovedExample>, sqlx::Error> {
    let rows: Vec<(Uuid, String, String, Option<Vec<String>>)> = sqlx::query_as(&format!(
        "SELECT d.decision_id, g.query,
                COALESCE(d.amended_text, g.proposal) AS approved_text,
                CASE WHEN d.outcome = 'approved' THEN
                     ARRAY(SELECT f->>'summary' FROM jsonb_array_elements(g.findings) f)
                END AS findings
           FROM decisions d
           JOIN diagnoses g ON g.diagnosis_id = d.diagnosis_id AND g.tenant_id = d.tenant_id
          WHERE d.tenant_id = $1 AND d.outcome IN ('approved', 'amended')
            AND g.query <> '{ERASED}' AND COALESCE(d.amended_text, g.proposal) <> '{ERASED}'
          ORDER BY d.position DESC LIMIT $2"
    ))
    .bind(tenant.as_uuid())
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(decision, query, approved_text, findings)| ApprovedExample {
                decision_id: DecisionId::from_uuid(decision),
                query,
                approved_text,
                findings: findings.unwrap_or_default(),
            },
        )
        .collect())
}
