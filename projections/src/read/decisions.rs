//! The `decisions` read model.

use casebook_domain::ids::{DecisionId, DiagnosisId, TenantId, UserId};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{fetch_limit, page, Page, PageRequest};
use crate::models::{decision_from_row, Decision, DECISION_COLUMNS};
use crate::sql::select_list;

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
