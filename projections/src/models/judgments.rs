//! The `judgments` read model: every captured judgment of a practice with its status and
//! origin, and `judgment_revisions`, each version of its content.
//!
//! A batch inserts one revision row per judgment event, then recomputes the touched
//! judgments from their revisions in one statement: the revisions are the history a
//! consultant reads, and the judgment row is their summary, so the two cannot disagree.

use async_trait::async_trait;
use casebook_domain::any_event::AnyEvent;
use casebook_domain::ids::{DecisionId, DiagnosisId, JudgmentId, TenantId, UserId};
use casebook_domain::judgment::{JudgmentContent, JudgmentEvent, JudgmentOrigin};
use casebook_domain::personal::ERASED;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::decoded::{purge_erased_subjects, DecodedEvent};
use crate::error::ApplyError;
use crate::projection::{Naming, Projection, ProjectionId};
use crate::sql::{
    col, decode_error, enum_value, get_enum, get_opt_json, get_user, insert_unnest, json_text,
    reserved, Column,
};

/// Where a judgment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgmentStatus {
    /// Retrieved as captured or authored.
    Active,
    /// Retrieved, with content a consultant replaced.
    Revised,
    /// Withdrawn from retrieval for good.
    Retired,
}

/// Where a judgment came from, as the read model keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JudgmentSource {
    /// Captured from an approved or amended decision.
    Decision {
        /// The decision.
        decision_id: DecisionId,
        /// The diagnosis it decided.
        diagnosis_id: DiagnosisId,
    },
    /// Written by a consultant.
    Authored,
}

/// A row of `judgments`.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgmentSummary {
    /// The judgment.
    pub judgment_id: JudgmentId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Where it stands.
    pub status: JudgmentStatus,
    /// Where it came from.
    pub source: JudgmentSource,
    /// Its current title.
    pub title: String,
    /// Its current text.
    pub body: String,
    /// Its current labels.
    pub tags: Vec<String>,
    /// How many times its content was revised.
    pub revisions: i32,
    /// Why it was retired, once it is.
    pub retired_reason: Option<String>,
    /// The system (for a capture) or the authoring consultant.
    pub captured_by: UserId,
    /// When it was captured.
    pub captured_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The global position of its last event: the list order and cursor.
    pub position: i64,
}

/// What one event did to a judgment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevisionKind {
    /// Captured or authored.
    Captured,
    /// Content replaced.
    Revised,
    /// Withdrawn.
    Retired,
}

/// A row of `judgment_revisions`: one event of a judgment's history.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgmentRevision {
    /// 1-based position in the judgment's stream.
    pub revision: i64,
    /// What happened.
    pub kind: RevisionKind,
    /// The content set (captures and revisions).
    pub content: Option<RevisionContent>,
    /// Why (retirements).
    pub reason: Option<String>,
    /// Who.
    pub acted_by: UserId,
    /// When.
    pub recorded_at: DateTime<Utc>,
}

/// The content a capture or revision set.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionContent {
    /// Title.
    pub title: String,
    /// Text.
    pub body: String,
    /// Labels.
    pub tags: Vec<String>,
}

pub(crate) const COLUMNS: &[Column] = &[
    col("judgment_id", "uuid"),
    col("tenant_id", "uuid"),
    col("status", "text"),
    col("origin", "text"),
    col("decision_id", "uuid"),
    col("diagnosis_id", "uuid"),
    col("title", "text"),
    col("body", "text"),
    col("tags", "text[]"),
    col("revisions", "int4"),
    col("retired_reason", "text"),
    col("captured_by", "text"),
    col("captured_at", "timestamptz"),
    col("updated_at", "timestamptz"),
    col("position", "int8"),
];

pub(crate) const REVISION_COLUMNS: &[Column] = &[
    col("revision", "int8"),
    col("kind", "text"),
    col("title", "text"),
    col("body", "text"),
    col("tags", "jsonb"),
    col("reason", "text"),
    col("acted_by", "text"),
    col("recorded_at", "timestamptz"),
];

/// Every column of `judgment_revisions`. The tags are a JSON array there, since Postgres has no
/// array of arrays of varying length to bind a batch's tags as.
const REVISION_WRITE_COLUMNS: &[Column] = &[
    col("judgment_id", "uuid"),
    col("revision", "int8"),
    col("tenant_id", "uuid"),
    col("kind", "text"),
    col("title", "text"),
    col("body", "text"),
    col("tags", "jsonb"),
    col("reason", "text"),
    col("origin", "text"),
    col("decision_id", "uuid"),
    col("diagnosis_id", "uuid"),
    col("customer", "text"),
    col("acted_by", "text"),
    col("recorded_at", "timestamptz"),
    col("position", "int8"),
];

/// Reads a row selected with [`crate::sql::select_list`] of [`COLUMNS`].
pub(crate) fn from_row(row: &PgRow) -> Result<JudgmentSummary, sqlx::Error> {
    let source = match row.try_get::<&str, _>("origin")? {
        "authored" => JudgmentSource::Authored,
        _ => {
            let id = |column: &str| -> Result<Uuid, sqlx::Error> {
                let value: Option<Uuid> = row.try_get(column)?;
                value.ok_or_else(|| {
                    decode_error(
                        column,
                        std::io::Error::other("NULL for a captured decision"),
                    )
                })
            };
            JudgmentSource::Decision {
                decision_id: DecisionId::from_uuid(id("decision_id")?),
                diagnosis_id: DiagnosisId::from_uuid(id("diagnosis_id")?),
            }
        }
    };
    Ok(JudgmentSummary {
        judgment_id: JudgmentId::from_uuid(row.try_get("judgment_id")?),
        tenant_id: TenantId::from_uuid(row.try_get("tenant_id")?),
        status: get_enum(row, "status")?,
        source,
        title: row.try_get("title")?,
        body: row.try_get("body")?,
        tags: row.try_get("tags")?,
        revisions: row.try_get("revisions")?,
        retired_reason: row.try_get("retired_reason")?,
        captured_by: get_user(row, "captured_by")?,
        captured_at: row.try_get("captured_at")?,
        updated_at: row.try_get("updated_at")?,
        position: row.try_get("position")?,
    })
}

/// Reads a row selected with [`crate::sql::select_list`] of [`REVISION_COLUMNS`].
pub(crate) fn revision_from_row(row: &PgRow) -> Result<JudgmentRevision, sqlx::Error> {
    let title: Option<String> = row.try_get("title")?;
    let content = match title {
        Some(title) => Some(RevisionContent {
            title,
            body: row
                .try_get::<Option<String>, _>("body")?
                .unwrap_or_default(),
            tags: get_opt_json(row, "tags")?.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(JudgmentRevision {
        revision: row.try_get("revision")?,
        kind: get_enum(row, "kind")?,
        content,
        reason: row.try_get("reason")?,
        acted_by: get_user(row, "acted_by")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

/// One event of a judgment's history, as the batch writes it.
struct Revision<'a> {
    judgment: Uuid,
    kind: RevisionKind,
    content: Option<&'a JudgmentContent>,
    reason: Option<String>,
    origin: Option<&'a JudgmentOrigin>,
    acted_by: &'a UserId,
}

impl<'a> Revision<'a> {
    fn of(e: &'a DecodedEvent) -> Result<Option<Self>, ApplyError> {
        let AnyEvent::Judgment(event) = &e.event else {
            return Ok(None);
        };
        let stream = || {
            Uuid::parse_str(&e.aggregate_id)
                .map_err(|err| ApplyError::permanent_from("judgment id", err))
        };
        Ok(Some(match event {
            JudgmentEvent::JudgmentCaptured {
                judgment_id,
                origin,
                content,
                captured_by,
                ..
            } => Self {
                judgment: *judgment_id.as_uuid(),
                kind: RevisionKind::Captured,
                content: Some(content),
                reason: None,
                origin: Some(origin),
                acted_by: captured_by,
            },
            JudgmentEvent::JudgmentRevised {
                content,
                revised_by,
            } => Self {
                judgment: stream()?,
                kind: RevisionKind::Revised,
                content: Some(content),
                reason: None,
                origin: None,
                acted_by: revised_by,
            },
            JudgmentEvent::JudgmentRetired { reason, retired_by } => Self {
                judgment: stream()?,
                kind: RevisionKind::Retired,
                content: None,
                reason: Some(reason.to_string()),
                origin: None,
                acted_by: retired_by,
            },
        }))
    }
}

/// Each column of the revisions written by one batch.
#[derive(Default)]
struct RevisionRows {
    judgments: Vec<Uuid>,
    revisions: Vec<i64>,
    tenants: Vec<Uuid>,
    kinds: Vec<String>,
    titles: Vec<Option<String>>,
    bodies: Vec<Option<String>>,
    tags: Vec<Option<String>>,
    reasons: Vec<Option<String>>,
    origins: Vec<Option<&'static str>>,
    decisions: Vec<Option<Uuid>>,
    diagnoses: Vec<Option<Uuid>>,
    customers: Vec<Option<String>>,
    acted_by: Vec<String>,
    recorded_at: Vec<DateTime<Utc>>,
    positions: Vec<i64>,
}

impl RevisionRows {
    fn push(&mut self, e: &DecodedEvent, revision: Revision<'_>) -> Result<(), ApplyError> {
        let (origin, decision, diagnosis, customer) = match revision.origin {
            Some(JudgmentOrigin::Decision {
                decision_id,
                diagnosis_id,
                customer,
            }) => (
                Some("decision"),
                Some(*decision_id.as_uuid()),
                Some(*diagnosis_id.as_uuid()),
                customer.as_ref().map(ToString::to_string),
            ),
            Some(JudgmentOrigin::Authored) => (Some("authored"), None, None, None),
            None => (None, None, None, None),
        };
        let content = revision.content;
        self.judgments.push(revision.judgment);
        self.revisions.push(e.sequence);
        self.tenants.push(e.tenant_id);
        self.kinds.push(enum_value(&revision.kind)?);
        self.titles.push(content.map(|c| c.title.to_string()));
        self.bodies.push(content.map(|c| c.body.to_string()));
        self.tags
            .push(content.map(|c| json_text(&c.tags)).transpose()?);
        self.reasons.push(revision.reason);
        self.origins.push(origin);
        self.decisions.push(decision);
        self.diagnoses.push(diagnosis);
        self.customers.push(customer);
        self.acted_by.push(revision.acted_by.to_string());
        self.recorded_at.push(e.recorded_at);
        self.positions.push(e.position());
        Ok(())
    }
}

/// Writes `judgments` and `judgment_revisions`.
pub struct JudgmentsProjection {
    insert_revisions: String,
    summarize: String,
    purges: [String; 2],
}

impl JudgmentsProjection {
    /// The projection over the tables `naming` names.
    pub fn new(naming: &Naming) -> Self {
        let judgments = naming.table("judgments");
        let revisions = naming.table("judgment_revisions");
        Self {
            insert_revisions: insert_unnest(&revisions, REVISION_WRITE_COLUMNS),
            summarize: format!(
                "INSERT INTO {judgments} (judgment_id, tenant_id, status, origin, decision_id,
                     diagnosis_id, customer, title, body, tags, revisions, retired_reason,
                     captured_by, captured_at, updated_at, position)
                 SELECT captured.judgment_id, captured.tenant_id,
                        CASE WHEN retired.judgment_id IS NOT NULL THEN 'retired'
                             WHEN history.revisions > 0 THEN 'revised'
                             ELSE 'active' END,
                        captured.origin, captured.decision_id, captured.diagnosis_id,
                        captured.customer, content.title, content.body,
                        ARRAY(SELECT jsonb_array_elements_text(content.tags)),
                        history.revisions, retired.reason, captured.acted_by,
                        captured.recorded_at, history.updated_at, history.position
                   FROM {revisions} captured
                   CROSS JOIN LATERAL (
                        SELECT title, body, tags FROM {revisions} r
                         WHERE r.judgment_id = captured.judgment_id AND r.kind <> 'retired'
                         ORDER BY r.revision DESC LIMIT 1) content
                   CROSS JOIN LATERAL (
                        SELECT count(*) FILTER (WHERE kind = 'revised')::int AS revisions,
                               max(recorded_at) AS updated_at, max(position) AS position
                          FROM {revisions} r WHERE r.judgment_id = captured.judgment_id) history
                   LEFT JOIN {revisions} retired
                          ON retired.judgment_id = captured.judgment_id
                         AND retired.kind = 'retired'
                  WHERE captured.judgment_id = ANY($1::uuid[]) AND captured.kind = 'captured'
                 ON CONFLICT (judgment_id) DO UPDATE
                    SET status = EXCLUDED.status, title = EXCLUDED.title, body = EXCLUDED.body,
                        tags = EXCLUDED.tags, revisions = EXCLUDED.revisions,
                        retired_reason = EXCLUDED.retired_reason,
                        updated_at = EXCLUDED.updated_at, position = EXCLUDED.position"
            ),
            // What a rebuild reads once the customer's (or the tenant's) keys are gone: the
            // judgments captured from their queries redacted, with every version
            // (decision 0027). An erased tenant's authored judgments go with it.
            purges: [
                format!(
                    "UPDATE {revisions}
                        SET title = CASE WHEN title IS NOT NULL THEN '{ERASED}' END,
                            body = CASE WHEN body IS NOT NULL THEN '{ERASED}' END,
                            tags = CASE WHEN tags IS NOT NULL THEN '[]'::jsonb END,
                            reason = CASE WHEN reason IS NOT NULL THEN '{ERASED}' END
                      WHERE tenant_id = $1
                        AND ($2::text IS NULL OR judgment_id IN (
                             SELECT judgment_id FROM {judgments}
                              WHERE tenant_id = $1 AND customer = $2))"
                ),
                format!(
                    "UPDATE {judgments}
                        SET title = '{ERASED}', body = '{ERASED}', tags = '{{}}',
                            retired_reason = CASE WHEN retired_reason IS NOT NULL
                                                  THEN '{ERASED}' END
                      WHERE tenant_id = $1 AND ($2::text IS NULL OR customer = $2)"
                ),
            ],
        }
    }
}

#[async_trait]
impl Projection for JudgmentsProjection {
    fn id(&self) -> ProjectionId {
        ProjectionId::Judgments
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[DecodedEvent],
    ) -> Result<(), ApplyError> {
        let mut rows = RevisionRows::default();
        let mut touched = Vec::new();
        for e in events {
            if let Some(revision) = Revision::of(e)? {
                touched.push(revision.judgment);
                rows.push(e, revision)?;
            }
        }
        if !touched.is_empty() {
            sqlx::query_with(&self.insert_revisions, reserved(rows.positions.len() * 512))
                .bind(rows.judgments)
                .bind(rows.revisions)
                .bind(rows.tenants)
                .bind(rows.kinds)
                .bind(rows.titles)
                .bind(rows.bodies)
                .bind(rows.tags)
                .bind(rows.reasons)
                .bind(rows.origins)
                .bind(rows.decisions)
                .bind(rows.diagnoses)
                .bind(rows.customers)
                .bind(rows.acted_by)
                .bind(rows.recorded_at)
                .bind(rows.positions)
                .execute(&mut *conn)
                .await?;
            touched.sort_unstable();
            touched.dedup();
            sqlx::query(&self.summarize)
                .bind(touched)
                .execute(&mut *conn)
                .await?;
        }
        let [revisions, judgments] = &self.purges;
        purge_erased_subjects(conn, events, &[revisions, judgments]).await?;
        Ok(())
    }
}
