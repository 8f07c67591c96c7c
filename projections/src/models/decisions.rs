//! The `decisions` read model: every decision on a diagnosis, with its verdict.

use async_trait::async_trait;
use casebook_domain::actor::Role;
use casebook_domain::any_event::AnyEvent;
use casebook_domain::decision::{DecisionEvent, Outcome, Verdict};
use casebook_domain::ids::{DecisionId, DiagnosisId, TenantId, UserId};
use casebook_domain::personal::ERASED;
use casebook_domain::values::{Confidence, DiagnosisText, Reason};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::decoded::{purge_erased_subjects, DecodedEvent};
use crate::error::ApplyError;
use crate::projection::{Naming, Projection, ProjectionId};
use crate::sql::{
    col, decode_error, enum_value, get_enum, get_user, insert_unnest, reserved, Column,
};

/// A row of `decisions`.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The decision (the diagnosis' own UUID).
    pub decision_id: DecisionId,
    /// The diagnosis it decides.
    pub diagnosis_id: DiagnosisId,
    /// Their tenant.
    pub tenant_id: TenantId,
    /// What was decided, with its details.
    pub verdict: Verdict,
    /// The consultant, or the system for an auto-approval.
    pub decided_by: UserId,
    /// The role they acted in.
    pub decided_by_role: Role,
    /// When.
    pub decided_at: DateTime<Utc>,
    /// The global position of `DecisionMade`: the list order and cursor.
    pub position: i64,
}

pub(crate) const COLUMNS: &[Column] = &[
    col("decision_id", "uuid"),
    col("diagnosis_id", "uuid"),
    col("tenant_id", "uuid"),
    col("outcome", "text"),
    col("amended_text", "text"),
    col("reason", "text"),
    col("threshold", "float8"),
    col("confidence", "float8"),
    col("decided_by", "text"),
    col("decided_by_role", "text"),
    col("decided_at", "timestamptz"),
    col("position", "int8"),
    col("customer", "text"),
];

fn verdict_from_row(row: &PgRow) -> Result<Verdict, sqlx::Error> {
    let outcome: Outcome = get_enum(row, "outcome")?;
    let text = |column: &str| -> Result<Option<String>, sqlx::Error> { row.try_get(column) };
    let required = |column: &str| {
        decode_error(
            column,
            std::io::Error::other("required by the outcome but NULL"),
        )
    };
    let reason = text("reason")?.map(Reason::from_stored);
    let confidence = |column: &str| -> Result<Confidence, sqlx::Error> {
        let value: Option<f64> = row.try_get(column)?;
        Confidence::from_stored(value.ok_or_else(|| required(column))?)
            .map_err(|err| decode_error(column, err))
    };
    Ok(match outcome {
        Outcome::Approved => Verdict::Approved,
        Outcome::Amended => Verdict::Amended {
            text: DiagnosisText::from_stored(
                text("amended_text")?.ok_or_else(|| required("amended_text"))?,
            ),
            reason,
        },
        Outcome::Rejected => Verdict::Rejected {
            reason: reason.ok_or_else(|| required("reason"))?,
        },
        Outcome::AutoApproved => Verdict::AutoApproved {
            threshold: confidence("threshold")?,
            confidence: confidence("confidence")?,
        },
    })
}

/// Reads a row selected with [`crate::sql::select_list`] of [`COLUMNS`].
pub(crate) fn from_row(row: &PgRow) -> Result<Decision, sqlx::Error> {
    Ok(Decision {
        decision_id: DecisionId::from_uuid(row.try_get("decision_id")?),
        diagnosis_id: DiagnosisId::from_uuid(row.try_get("diagnosis_id")?),
        tenant_id: TenantId::from_uuid(row.try_get("tenant_id")?),
        verdict: verdict_from_row(row)?,
        decided_by: get_user(row, "decided_by")?,
        decided_by_role: get_enum(row, "decided_by_role")?,
        decided_at: row.try_get("decided_at")?,
        position: row.try_get("position")?,
    })
}

/// Writes `decisions`; each `DecisionMade` inserts one row.
pub struct DecisionsProjection {
    insert: String,
    purge: String,
}

impl DecisionsProjection {
    /// The projection over the tables `naming` names.
    pub fn new(naming: &Naming) -> Self {
        let table = naming.table("decisions");
        Self {
            insert: insert_unnest(&table, COLUMNS),
            // What a rebuild reads once the customer's key is gone: the verdict's texts
            // redacted (decision 0027).
            purge: format!(
                "UPDATE {table}
                    SET amended_text = CASE WHEN amended_text IS NOT NULL THEN '{ERASED}' END,
                        reason = CASE WHEN reason IS NOT NULL THEN '{ERASED}' END
                  WHERE tenant_id = $1 AND ($2::text IS NULL OR customer = $2)"
            ),
        }
    }
}

#[async_trait]
impl Projection for DecisionsProjection {
    fn id(&self) -> ProjectionId {
        ProjectionId::Decisions
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[DecodedEvent],
    ) -> Result<(), ApplyError> {
        let mut ids = Vec::new();
        let mut diagnoses = Vec::new();
        let mut tenants = Vec::new();
        let mut outcomes = Vec::new();
        let mut amended = Vec::new();
        let mut reasons = Vec::new();
        let mut thresholds = Vec::new();
        let mut confidences = Vec::new();
        let mut decided_by = Vec::new();
        let mut roles = Vec::new();
        let mut decided_at = Vec::new();
        let mut positions = Vec::new();
        let mut customers = Vec::new();
        for e in events {
            let AnyEvent::Decision(DecisionEvent::DecisionMade {
                decision_id,
                diagnosis_id,
                tenant_id,
                verdict,
                decided_by: by,
                customer,
            }) = &e.event
            else {
                continue;
            };
            ids.push(*decision_id.as_uuid());
            diagnoses.push(*diagnosis_id.as_uuid());
            tenants.push(*tenant_id.as_uuid());
            outcomes.push(enum_value(&verdict.outcome())?);
            let (text, reason, threshold, confidence) = match verdict {
                Verdict::Approved => (None, None, None, None),
                Verdict::Amended { text, reason } => (
                    Some(text.to_string()),
                    reason.as_ref().map(ToString::to_string),
                    None,
                    None,
                ),
                Verdict::Rejected { reason } => (None, Some(reason.to_string()), None, None),
                Verdict::AutoApproved {
                    threshold,
                    confidence,
                } => (
                    None,
                    None,
                    Some(threshold.value()),
                    Some(confidence.value()),
                ),
            };
            amended.push(text);
            reasons.push(reason);
            thresholds.push(threshold);
            confidences.push(confidence);
            decided_by.push(by.to_string());
            roles.push(enum_value(&e.metadata.actor_role)?);
            decided_at.push(e.recorded_at);
            positions.push(e.position());
            customers.push(customer.as_ref().map(ToString::to_string));
        }
        if !ids.is_empty() {
            sqlx::query_with(&self.insert, reserved(positions.len() * 256))
                .bind(ids)
                .bind(diagnoses)
                .bind(tenants)
                .bind(outcomes)
                .bind(amended)
                .bind(reasons)
                .bind(thresholds)
                .bind(confidences)
                .bind(decided_by)
                .bind(roles)
                .bind(decided_at)
                .bind(positions)
                .bind(customers)
                .execute(&mut *conn)
                .await?;
        }
        purge_erased_subjects(conn, events, &[&self.purge]).await?;
        Ok(())
    }
}
