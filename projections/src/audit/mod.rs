//! The audit table: one row per event — who, in which role, did what to which subjects,
//! with what outcome, reason and model provenance, under which request, correlation and
//! causation — hash-chained per tenant.
//!
//! - [`chain`]: the canonical encodings (1 and 2), the hash and a pure verifier (for
//!   exports, offline);
//! - [`content`]: the event digest, over an event's canonical JSON (RFC 8785), which rows of
//!   encoding 2 carry and hash;
//! - [`AuditProjection`]: the projection writing `audit_log`; [`row_of`] an event's row;
//! - [`verify_chain`] and [`records`]: a tenant's chain checked (with every event's content)
//!   or read from the database.
//!
//! The auditors' standard queries are in `projections/AUDIT_QUERIES.md`.

pub mod archives;
pub mod chain;
pub mod content;
mod projection;

use casebook_domain::ids::{DecisionId, DiagnosisId, JudgmentId, QueryId, SessionId, TenantId};
use futures::TryStreamExt;
use serde_json::value::RawValue;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

pub use chain::{
    AuditRecord, BrokenLink, ChainHash, ChainVerifier, Encoding, EventAtHand, LinkProblem,
};
pub use content::EventContent;
pub use projection::{row_of, AuditProjection};

use crate::sql::{col, decode_error, get_opt_json, select_list, Column};

/// `audit_log`'s columns, in the canonical encoding's order (version 2), then the encoding
/// and the two hashes.
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
    col("event_digest", "bytea"),
    col("encoding", "int2"),
    col("prev_hash", "bytea"),
    col("hash", "bytea"),
];

fn hash(row: &PgRow, column: &str) -> Result<ChainHash, sqlx::Error> {
    let bytes: Vec<u8> = row.try_get(column)?;
    ChainHash::try_from(bytes.as_slice()).map_err(|err| decode_error(column, err))
}

fn opt_hash(row: &PgRow, column: &str) -> Result<Option<ChainHash>, sqlx::Error> {
    let bytes: Option<Vec<u8>> = row.try_get(column)?;
    bytes
        .map(|bytes| ChainHash::try_from(bytes.as_slice()))
        .transpose()
        .map_err(|err| decode_error(column, err))
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
        event_digest: opt_hash(row, "event_digest")?,
        encoding: Encoding::try_from(row.try_get::<i16, _>("encoding")?)
            .map_err(|err| decode_error("encoding", err))?,
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

/// What a verified chain held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Rows verified.
    pub rows: u64,
    /// Rows whose event's content was checked against their digest (every row of encoding 2;
    /// rows of encoding 1 carry no digest).
    pub content_checked: u64,
}

/// Verifies `tenant`'s whole chain from `seq` 1, streaming its rows with their events; every
/// row of encoding 2 must carry the digest of its event as the `events` table holds it. Under
/// the app or auditor role, `app.tenant_id` must be set to `tenant` (row-level security hides
/// every other tenant's rows, so an unset tenant verifies an empty chain).
///
/// A chain verified here proves no stored row was altered, removed or inserted *before its
/// last row*, and no event of a version-2 row was altered; dropping rows from the end is only
/// detectable against an anchored head (see [`ChainVerifier::heads`]) or the event log's count
/// for the tenant.
pub async fn verify_chain(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Verified, VerifyError> {
    let columns = COLUMNS
        .iter()
        .map(|c| format!("a.{}", c.name))
        .collect::<Vec<_>>();
    let rows = format!(
        "SELECT {} FROM audit_log WHERE tenant_id = $1",
        select_list(COLUMNS)
    );
    let sql = format!(
        "SELECT {}, e.global_position IS NOT NULL AS event_found,
                e.aggregate_type AS event_aggregate_type, e.aggregate_id AS event_aggregate_id,
                e.sequence AS event_stream_sequence, e.event_type, e.event_version,
                e.payload::text AS event_payload, e.metadata::text AS event_metadata
           FROM ({rows}) a
           LEFT JOIN events e ON e.tenant_id = a.tenant_id AND e.global_position = a.global_position
          ORDER BY a.seq",
        columns.join(", "),
    );
    let mut verifier = ChainVerifier::new();
    let mut rows = sqlx::query(&sql).bind(tenant.as_uuid()).fetch(conn);
    while let Some(row) = rows.try_next().await? {
        let record = from_row(&row)?;
        let stored = if row.try_get("event_found")? {
            Some(StoredEvent::from_row(&row)?)
        } else {
            None
        };
        let event = match &stored {
            Some(stored) => EventAtHand::Content(stored.content(record.global_position)),
            None => EventAtHand::Missing,
        };
        verifier.push(&record, event)?;
    }
    Ok(Verified {
        rows: verifier.verified(),
        content_checked: verifier.content_checked(),
    })
}

/// An event's stored columns, read beside its audit row.
struct StoredEvent {
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: Box<RawValue>,
    metadata: Box<RawValue>,
}

impl StoredEvent {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        let json = |column: &str| -> Result<Box<RawValue>, sqlx::Error> {
            RawValue::from_string(row.try_get(column)?).map_err(|err| decode_error(column, err))
        };
        Ok(Self {
            aggregate_type: row.try_get("event_aggregate_type")?,
            aggregate_id: row.try_get("event_aggregate_id")?,
            sequence: row.try_get("event_stream_sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload: json("event_payload")?,
            metadata: json("event_metadata")?,
        })
    }

    /// The event at `global_position` (where the join found it).
    fn content(&self, global_position: i64) -> EventContent<'_> {
        EventContent {
            global_position,
            aggregate_type: &self.aggregate_type,
            aggregate_id: &self.aggregate_id,
            sequence: self.sequence,
            event_type: &self.event_type,
            event_version: &self.event_version,
            payload: &self.payload,
            metadata: &self.metadata,
        }
    }
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
