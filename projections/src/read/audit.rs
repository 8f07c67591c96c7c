//! The auditors' filtered view of `audit_log`.

use casebook_domain::ids::TenantId;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{fetch_limit, page, Page, PageRequest};
use crate::audit::AuditRecord;

/// An audit row as JSON (`record`), hashes in hex: decoded by [`AuditRecord`]'s own
/// `Deserialize`, as the chain verifier reads rows.
macro_rules! record_json {
    () => {
        "to_jsonb(a) || jsonb_build_object('prev_hash', encode(a.prev_hash, 'hex'),
                                            'hash', encode(a.hash, 'hex'),
                                            'event_digest', encode(a.event_digest, 'hex'))
            AS record"
    };
}

/// Which rows an auditor asks for; every filter given must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// The event type, e.g. `DecisionMade`.
    pub action: Option<String>,
    /// The acting user's id (the identity provider's subject, or `system`).
    pub actor_id: Option<String>,
    /// The role they acted in, e.g. `consultant`.
    pub actor_role: Option<String>,
    /// A decision's or resolution's outcome, e.g. `auto_approved`.
    pub outcome: Option<String>,
    /// The model of a proposal.
    pub model_id: Option<String>,
    /// Rows recorded at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Rows recorded before this instant.
    pub to: Option<DateTime<Utc>>,
}

/// `tenant`'s audit rows matching `filter`, in chain order (`seq`); the cursor is the last
/// row's `seq`.
///
/// Rows are read as JSON and decoded by [`AuditRecord`]'s own `Deserialize` (hashes as hex),
/// so this view and the chain verifier can never disagree on what a row holds.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &AuditFilter,
    request: PageRequest,
) -> Result<Page<AuditRecord>, sqlx::Error> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        record_json!(),
        " FROM audit_log a
          WHERE a.tenant_id = $1
            AND ($2::text IS NULL OR a.action = $2)
            AND ($3::text IS NULL OR a.actor_id = $3)
            AND ($4::text IS NULL OR a.actor_role = $4)
            AND ($5::text IS NULL OR a.outcome = $5)
            AND ($6::text IS NULL OR a.model_id = $6)
            AND ($7::timestamptz IS NULL OR a.recorded_at >= $7)
            AND ($8::timestamptz IS NULL OR a.recorded_at < $8)
            AND ($9::bigint IS NULL OR a.seq > $9)
          ORDER BY a.seq LIMIT $10"
    ))
    .bind(tenant.as_uuid())
    .bind(filter.action.as_deref())
    .bind(filter.actor_id.as_deref())
    .bind(filter.actor_role.as_deref())
    .bind(filter.outcome.as_deref())
    .bind(filter.model_id.as_deref())
    .bind(filter.from)
    .bind(filter.to)
    .bind(request.after)
    .bind(fetch_limit(request))
    .fetch_all(conn)
    .await?;
    page(rows, request, record_from_row, |record| record.seq)
}

fn record_from_row(row: &PgRow) -> Result<AuditRecord, sqlx::Error> {
    let sqlx::types::Json(record) = row.try_get::<sqlx::types::Json<AuditRecord>, _>("record")?;
    Ok(record)
}

/// The audit row of `subject`'s erasure in `tenant` (a `SubjectErased` row names its subject
/// in `reason`), or without a subject of the tenant's own (`TenantErased`), once projected:
/// the erasure's receipt is this row proven in the verifiable log.
pub async fn erasure(
    conn: &mut PgConnection,
    tenant: TenantId,
    subject: Option<&str>,
) -> Result<Option<AuditRecord>, sqlx::Error> {
    sqlx::query(concat!(
        "SELECT ",
        record_json!(),
        " FROM audit_log a
          WHERE a.tenant_id = $1
            AND a.action = CASE WHEN $2::text IS NULL THEN 'TenantErased' ELSE 'SubjectErased' END
            AND ($2::text IS NULL OR a.reason = $2)
          ORDER BY a.seq LIMIT 1"
    ))
    .bind(tenant.as_uuid())
    .bind(subject)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(record_from_row)
    .transpose()
}
