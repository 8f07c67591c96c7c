//! The `diagnoses` read model and the consultant review queue.

use std::time::Duration;

use casebook_domain::ids::{DiagnosisId, SessionId, TenantId};
use sqlx::{PgConnection, Row};

use super::{fetch_limit, newest_first, one, page, Listed, Page, PageRequest, Reach};
use crate::models::{diagnosis_from_row, Diagnosis, DIAGNOSIS_COLUMNS};
use crate::sql::select_list;

/// A diagnosis waiting for a consultant's decision.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueItem {
    /// The diagnosis, with its proposal.
    pub diagnosis: Diagnosis,
    /// How long it has waited since it was proposed (by the database's clock).
    pub age: Duration,
    /// The proposal's global position: the queue's order and cursor.
    pub position: i64,
}

fn diagnoses(columns: &str) -> Listed<'_> {
    Listed {
        table: "diagnoses",
        columns,
        owner_column: "requested_by",
    }
}

/// One diagnosis of `tenant`, if it is within `reach`.
pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    reach: Reach<'_>,
    diagnosis: DiagnosisId,
) -> Result<Option<Diagnosis>, sqlx::Error> {
    let columns = select_list(DIAGNOSIS_COLUMNS);
    one(
        conn,
        diagnoses(&columns),
        tenant,
        reach,
        ("diagnosis_id", *diagnosis.as_uuid()),
        diagnosis_from_row,
    )
    .await
}

/// `tenant`'s diagnoses within `reach`, newest first.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    reach: Reach<'_>,
    request: PageRequest,
) -> Result<Page<Diagnosis>, sqlx::Error> {
    let columns = select_list(DIAGNOSIS_COLUMNS);
    newest_first(
        conn,
        diagnoses(&columns),
        tenant,
        reach,
        request,
        diagnosis_from_row,
        |d| d.position,
    )
    .await
}

/// The diagnoses requested in one session of `tenant`, in request order.
pub async fn for_session(
    conn: &mut PgConnection,
    tenant: TenantId,
    session: SessionId,
) -> Result<Vec<Diagnosis>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM diagnoses WHERE tenant_id = $1 AND session_id = $2 ORDER BY position",
        select_list(DIAGNOSIS_COLUMNS)
    );
    sqlx::query(&sql)
        .bind(tenant.as_uuid())
        .bind(session.as_uuid())
        .fetch_all(conn)
        .await?
        .iter()
        .map(diagnosis_from_row)
        .collect()
}

/// The consultant review queue: `tenant`'s proposed, undecided diagnoses, oldest proposal
/// first, with their age. The cursor is the proposal's position.
pub async fn review_queue(
    conn: &mut PgConnection,
    tenant: TenantId,
    request: PageRequest,
) -> Result<Page<QueueItem>, sqlx::Error> {
    let sql = format!(
        "SELECT {}, GREATEST(EXTRACT(EPOCH FROM now() - proposed_at), 0)::float8 AS age_seconds
           FROM diagnoses
          WHERE tenant_id = $1 AND status = 'proposed' AND decided_at IS NULL
            AND ($2::bigint IS NULL OR proposed_position > $2)
          ORDER BY proposed_position LIMIT $3",
        select_list(DIAGNOSIS_COLUMNS)
    );
    let rows = sqlx::query(&sql)
        .bind(tenant.as_uuid())
        .bind(request.after)
        .bind(fetch_limit(request))
        .fetch_all(conn)
        .await?;
    page(
        rows,
        request,
        |row| {
            let age: f64 = row.try_get("age_seconds")?;
            Ok(QueueItem {
                diagnosis: diagnosis_from_row(row)?,
                age: Duration::from_secs_f64(age.max(0.0)),
                position: row.try_get("proposed_position")?,
            })
        },
        |item| item.position,
    )
}

/// `tenant`'s diagnoses deferred while its token budget was spent, oldest request first.
pub async fn deferred_for_budget(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Vec<DiagnosisId>, sqlx::Error> {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT diagnosis_id FROM diagnoses
          WHERE tenant_id = $1 AND status = 'deferred_budget' ORDER BY position",
    )
    .bind(tenant.as_uuid())
    .fetch_all(conn)
    .await?;
    Ok(ids.into_iter().map(DiagnosisId::from_uuid).collect())
}
