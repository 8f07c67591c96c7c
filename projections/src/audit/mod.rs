//! The audit table: one row per event — who, in which role, did what to which subjects,
//! with what outcome, reason and model provenance, under which request, correlation and
//! causation — hash-chained per tenant.
//!
//! - [`chain`]: the canonical encoding, the hash and a pure verifier (for exports, offline);
//! - [`content`]: the event digest, over an event's canonical JSON (RFC 8785);
//! - [`AuditProjection`]: the projection writing `audit_log`;
//! - [`verify_chain`] and [`records`]: a tenant's chain checked or read from the database.
//!
//! The auditors' standard queries are in `projections/AUDIT_QUERIES.md`.

pub mod chain;
pub mod content;
mod projection;

use casebook_domain::ids::{DecisionId, DiagnosisId, JudgmentId, QueryId, SessionId, TenantId};
use futures::TryStreamExt;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

pub use chain::{AuditRecord, BrokenLink, ChainHash, ChainVerifier, LinkProblem};
pub use projection::AuditProjection;

use crate::sql::{col, decode_error, get_opt_json, select_list, Column};

/// `audit_log`'s columns, in the canonical encoding's order, then the two hashes.
pub(crate) const COLUMNS: &[Column] = &[
    col("tenant_id", "uuid"),
    col("seq", "int8"),
    col("global_position", "int8"),
    col("recorded_at", "timestamptz"),
    col("actor_id", "text"),
    col("actor_role", "text"),
    col("source", "text"),
    col("action", "text"),
    col("aggregate_type", "text"),
    col("aggregate_id", "text"),
    col("event_sequence", "int8"),
    col("session_id", "uuid"),
    col("query_id", "uuid"),
    col("diagnosis_id", "uuid"),
    col("decision_id", "uuid"),
    col("judgment_id", "uuid"),
    col("outcome", "text"),
    col("reason", "text"),
    col("threshold", "float8"),
    col("confidence", "float8"),
    col("model_id", "text"),
    col("model_tier", "text"),
    col("prompt_template_id", "text"),
    col("prompt_template_hash", "text"),
    col("retrieved_judgment_ids", "jsonb"),
    col("input_tokens", "int8"),
    col("output_tokens", "int8"),
    col("cost_usd_micros", "int8"),
    col("request_id", "text"),
    col("correlation_id", "text"),
    col("causation_id", "text"),
    col("prev_hash", "bytea"),
    col("hash", "bytea"),
];

fn hash(row: &PgRow, column: &str) -> Result<ChainHash, sqlx::Error> {
    let bytes: Vec<u8> = row.try_get(column)?;
    ChainHash::try_from(bytes.as_slice()).map_err(|err| decode_error(column, err))
}

fn id<T>(row: &PgRow, column: &str, wrap: fn(Uuid) -> T) -> Result<Option<T>, sqlx::Error> {
    Ok(row.try_get::<Option<Uuid>, _>(column)?.map(wrap))
}

/// Reads a row selected with [`select_list`] of [`COLUMNS`].
fn from_row(row: &PgRow) -> Result<AuditRecord, sqlx::Error> {
    Ok(AuditRecord {
        tenant_id: TenantId::from_uuid(row.try_get("tenant_id")?),
        seq: row.try_get("seq")?,
        global_position: row.try_get("global_position")?,
        recorded_at: row.try_get("recorded_at")?,
        actor_id: row.try_get("actor_id")?,
        actor_role: row.try_get("actor_role")?,
        source: row.try_get("source")?,
        action: row.try_get("action")?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        event_sequence: row.try_get("event_sequence")?,
        session_id: id(row, "session_id", SessionId::from_uuid)?,
        query_id: id(row, "query_id", QueryId::from_uuid)?,
        diagnosis_id: id(row, "diagnosis_id", DiagnosisId::from_uuid)?,
        decision_id: id(row, "decision_id", DecisionId::from_uuid)?,
        judgment_id: id(row, "judgment_id", JudgmentId::from_uuid)?,
        outcome: row.try_get("outcome")?,
        reason: row.try_get("reason")?,
        threshold: row.try_get("threshold")?,
        confidence: row.try_get("confidence")?,
        model_id: row.try_get("model_id")?,
        model_tier: row.try_get("model_tier")?,
        prompt_template_id: row.try_get("prompt_template_id")?,
        prompt_template_hash: row.try_get("prompt_template_hash")?,
        retrieved_judgment_ids: get_opt_json(row, "retrieved_judgment_ids")?,
        input_tokens: row.try_get("input_tokens")?,
        output_tokens: row.try_get("output_tokens")?,
        cost_usd_micros: row.try_get("cost_usd_micros")?,
        request_id: row.try_get("request_id")?,
        correlation_id: row.try_get("correlation_id")?,
        causation_id: row.try_get("causation_id")?,
        prev_hash: hash(row, "prev_hash")?,
        hash: hash(row, "hash")?,
    })
}

/// Why a chain could not be verified.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The chain is broken at a row.
    #[error(transparent)]
    Broken(#[from] BrokenLink),
    /// The rows could not be read.
    #[error("reading the audit log failed")]
    Database(#[from] sqlx::Error),
}

/// Verifies `tenant`'s whole chain from `seq` 1, streaming its rows; returns how many rows
/// verified. Under the app or auditor role, `app.tenant_id` must be set to `tenant` (row-level
/// security hides every other tenant's rows, so an unset tenant verifies an empty chain).
///
/// A chain verified here proves no stored row was altered, removed or inserted *before its
/// last row*; dropping rows from the end is only detectable against an anchored head (see
/// [`ChainVerifier::heads`]) or the event log's count for the tenant.
pub async fn verify_chain(conn: &mut PgConnection, tenant: TenantId) -> Result<u64, VerifyError> {
    let sql = format!(
        "SELECT {} FROM audit_log WHERE tenant_id = $1 ORDER BY seq",
        select_list(COLUMNS)
    );
    let mut verifier = ChainVerifier::new();
    let mut rows = sqlx::query(&sql).bind(tenant.as_uuid()).fetch(conn);
    while let Some(row) = rows.try_next().await? {
        verifier.push(&from_row(&row)?)?;
    }
    Ok(verifier.verified())
}

/// `tenant`'s audit rows after `after_seq` (0 for the start), at most `limit`, in chain order:
/// a page of an export. Pass the last row's `seq` to get the next page.
pub async fn records(
    conn: &mut PgConnection,
    tenant: TenantId,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<AuditRecord>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM audit_log WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        select_list(COLUMNS)
    );
    sqlx::query(&sql)
        .bind(tenant.as_uuid())
        .bind(after_seq)
        .bind(limit)
        .fetch_all(conn)
        .await?
        .iter()
        .map(from_row)
        .collect()
}
