//! The `diagnoses` read model: each diagnosis with its status, proposal, provenance and
//! decision. The consultant review queue is its proposed, undecided rows.

use std::collections::HashMap;

use async_trait::async_trait;
use casebook_domain::any_event::AnyEvent;
use casebook_domain::decision::{DecisionEvent, Outcome};
use casebook_domain::diagnosis::{
    Deferral, DiagnosisEvent, DiagnosisStatus, EmbeddingModel, Finding, Provenance,
};
use casebook_domain::ids::{DiagnosisId, JudgmentId, QueryId, SessionId, TenantId, UserId};
use casebook_domain::personal::ERASED;
use casebook_domain::values::Confidence;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::decoded::{purge_erased_subjects, DecodedEvent};
use crate::error::ApplyError;
use crate::projection::{Naming, Projection, ProjectionId};
use crate::sql::{
    col, decode_error, enum_value, get_json, get_opt_enum, get_opt_json, get_user, json_text,
    load_by_key, reserved, to_i64, upsert_unnest, Column, Touched,
};

/// A row of `diagnoses`.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    /// The diagnosis (and its decision's id).
    pub diagnosis_id: DiagnosisId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// The session of the query.
    pub session_id: SessionId,
    /// The query.
    pub query_id: QueryId,
    /// The query's text.
    pub query: String,
    /// The customer who asked.
    pub requested_by: UserId,
    /// When.
    pub requested_at: DateTime<Utc>,
    /// The global position of `DiagnosisRequested`: the list order and cursor.
    pub position: i64,
    /// Where it is in its lifecycle.
    pub status: DiagnosisStatus,
    /// The current (or last) attempt, from 1.
    pub attempt: i32,
    /// The latest failure's reason, if any attempt failed.
    pub failure_reason: Option<String>,
    /// While deferred for the budget: the day the tenant's budget renews (when it resumes at
    /// the latest, unless the plan grows first).
    pub budget_renews_on: Option<NaiveDate>,
    /// The model's proposal, once proposed.
    pub proposal: Option<Proposal>,
    /// The decision on the proposal, once decided.
    pub decision: Option<DiagnosisDecision>,
    /// When it was resolved, once resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// When the last event changed it.
    pub updated_at: DateTime<Utc>,
    /// The sequence of the diagnosis stream's last event.
    pub version: i64,
}

/// A diagnosis' proposal with its provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// The proposed diagnosis.
    pub text: String,
    /// Its structured findings.
    pub findings: Vec<Finding>,
    /// The model's confidence.
    pub confidence: Confidence,
    /// When it was proposed.
    pub proposed_at: DateTime<Utc>,
    /// The global position of `DiagnosisProposed`: the review queue's order and cursor.
    pub position: i64,
    /// Models, prompt template, precedents and their sources, attachments, tokens, cost and
    /// stop reason.
    pub provenance: Provenance,
}

/// The decision on a diagnosis, as the diagnosis sees it (the `decisions` table has more).
#[derive(Debug, Clone, PartialEq)]
pub struct DiagnosisDecision {
    /// What was decided.
    pub outcome: Outcome,
    /// The consultant, or the system for an auto-approval.
    pub decided_by: UserId,
    /// When.
    pub decided_at: DateTime<Utc>,
}

pub(crate) const COLUMNS: &[Column] = &[
    col("diagnosis_id", "uuid"),
    col("tenant_id", "uuid"),
    col("session_id", "uuid"),
    col("query_id", "uuid"),
    col("query", "text"),
    col("requested_by", "text"),
    col("requested_at", "timestamptz"),
    col("position", "int8"),
    col("status", "text"),
    col("attempt", "int4"),
    col("retryable", "bool"),
    col("failure_reason", "text"),
    col("budget_renews_on", "date"),
    col("proposal", "text"),
    col("findings", "jsonb"),
    col("confidence", "float8"),
    col("proposed_at", "timestamptz"),
    col("proposed_position", "int8"),
    col("model_id", "text"),
    col("model_tier", "text"),
    col("prompt_template_id", "text"),
    col("prompt_template_hash", "text"),
    col("retrieved_judgment_ids", "jsonb"),
    col("input_tokens", "int8"),
    col("output_tokens", "int8"),
    col("cost_usd_micros", "int8"),
    col("stop_reason", "text"),
    col("embedding_model_id", "text"),
    col("embedding_dimension", "int4"),
    col("precedents", "jsonb"),
    col("attachments", "jsonb"),
    col("decision_outcome", "text"),
    col("decided_by", "text"),
    col("decided_at", "timestamptz"),
    col("resolution_outcome", "text"),
    col("resolved_at", "timestamptz"),
    col("updated_at", "timestamptz"),
    col("version", "int8"),
];

/// The `status` column's text.
fn status_text(status: &DiagnosisStatus) -> &'static str {
    match status {
        DiagnosisStatus::Requested => "requested",
        DiagnosisStatus::ContextRetrieved => "context_retrieved",
        DiagnosisStatus::Proposed => "proposed",
        DiagnosisStatus::DeferredBudget => "deferred_budget",
        DiagnosisStatus::Failed { .. } => "failed",
        DiagnosisStatus::Resolved { .. } => "resolved",
    }
}

fn missing(column: &str) -> sqlx::Error {
    decode_error(
        column,
        std::io::Error::other("required by the row's status but NULL"),
    )
}

fn unsigned<T: TryFrom<i64>>(row: &PgRow, column: &str) -> Result<T, sqlx::Error>
where
    T::Error: std::error::Error + Send + Sync + 'static,
{
    let value: Option<i64> = row.try_get(column)?;
    T::try_from(value.ok_or_else(|| missing(column))?).map_err(|err| decode_error(column, err))
}

fn status_from_row(row: &PgRow) -> Result<DiagnosisStatus, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(match status.as_str() {
        "requested" => DiagnosisStatus::Requested,
        "context_retrieved" => DiagnosisStatus::ContextRetrieved,
        "proposed" => DiagnosisStatus::Proposed,
        "deferred_budget" => DiagnosisStatus::DeferredBudget,
        "failed" => DiagnosisStatus::Failed {
            retryable: row
                .try_get::<Option<bool>, _>("retryable")?
                .ok_or_else(|| missing("retryable"))?,
        },
        "resolved" => DiagnosisStatus::Resolved {
            outcome: get_opt_enum(row, "resolution_outcome")?
                .ok_or_else(|| missing("resolution_outcome"))?,
        },
        other => {
            return Err(decode_error(
                "status",
                std::io::Error::other(format!("unknown status {other:?}")),
            ))
        }
    })
}

fn proposal_from_row(row: &PgRow) -> Result<Option<Proposal>, sqlx::Error> {
    let Some(text) = row.try_get::<Option<String>, _>("proposal")? else {
        return Ok(None);
    };
    let confidence: Option<f64> = row.try_get("confidence")?;
    let confidence = Confidence::from_stored(confidence.ok_or_else(|| missing("confidence"))?)
        .map_err(|err| decode_error("confidence", err))?;
    let required_text = |column: &str| -> Result<String, sqlx::Error> {
        row.try_get::<Option<String>, _>(column)?
            .ok_or_else(|| missing(column))
    };
    let provenance = Provenance {
        model_id: required_text("model_id")?,
        model_tier: get_opt_enum(row, "model_tier")?.ok_or_else(|| missing("model_tier"))?,
        prompt_template_id: required_text("prompt_template_id")?,
        prompt_template_hash: required_text("prompt_template_hash")?,
        retrieved_judgment_ids: get_json::<Vec<JudgmentId>>(row, "retrieved_judgment_ids")?,
        input_tokens: unsigned(row, "input_tokens")?,
        output_tokens: unsigned(row, "output_tokens")?,
        cost_usd_micros: unsigned(row, "cost_usd_micros")?,
        stop_reason: get_opt_enum(row, "stop_reason")?,
        embedding: embedding_from_row(row)?,
        precedents: get_opt_json(row, "precedents")?,
        attachments: get_opt_json(row, "attachments")?,
    };
    Ok(Some(Proposal {
        text,
        findings: get_json(row, "findings")?,
        confidence,
        proposed_at: row
            .try_get::<Option<DateTime<Utc>>, _>("proposed_at")?
            .ok_or_else(|| missing("proposed_at"))?,
        position: row
            .try_get::<Option<i64>, _>("proposed_position")?
            .ok_or_else(|| missing("proposed_position"))?,
        provenance,
    }))
}

/// The embedding model of a proposal recorded with one (v3 on), else `None`.
fn embedding_from_row(row: &PgRow) -> Result<Option<EmbeddingModel>, sqlx::Error> {
    let Some(model_id) = row.try_get::<Option<String>, _>("embedding_model_id")? else {
        return Ok(None);
    };
    let dimension: Option<i32> = row.try_get("embedding_dimension")?;
    let dimension = dimension.ok_or_else(|| missing("embedding_dimension"))?;
    Ok(Some(EmbeddingModel {
        model_id,
        dimension: u32::try_from(dimension)
            .map_err(|err| decode_error("embedding_dimension", err))?,
    }))
}

fn decision_from_row(row: &PgRow) -> Result<Option<DiagnosisDecision>, sqlx::Error> {
    let Some(decided_at) = row.try_get::<Option<DateTime<Utc>>, _>("decided_at")? else {
        return Ok(None);
    };
    Ok(Some(DiagnosisDecision {
        outcome: get_opt_enum(row, "decision_outcome")?
            .ok_or_else(|| missing("decision_outcome"))?,
        decided_by: crate::sql::get_opt_user(row, "decided_by")?
            .ok_or_else(|| missing("decided_by"))?,
        decided_at,
    }))
}

/// Reads a row selected with [`crate::sql::select_list`] of [`COLUMNS`].
pub(crate) fn from_row(row: &PgRow) -> Result<Diagnosis, sqlx::Error> {
    Ok(Diagnosis {
        diagnosis_id: DiagnosisId::from_uuid(row.try_get("diagnosis_id")?),
        tenant_id: TenantId::from_uuid(row.try_get("tenant_id")?),
        session_id: SessionId::from_uuid(row.try_get("session_id")?),
        query_id: QueryId::from_uuid(row.try_get("query_id")?),
        query: row.try_get("query")?,
        requested_by: get_user(row, "requested_by")?,
        requested_at: row.try_get("requested_at")?,
        position: row.try_get("position")?,
        status: status_from_row(row)?,
        attempt: row.try_get("attempt")?,
        failure_reason: row.try_get("failure_reason")?,
        budget_renews_on: row.try_get("budget_renews_on")?,
        proposal: proposal_from_row(row)?,
        decision: decision_from_row(row)?,
        resolved_at: row.try_get("resolved_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

/// The diagnosis an event concerns and whether it creates it, for the events this model reads.
fn subject(e: &DecodedEvent) -> Result<Option<(Uuid, bool)>, ApplyError> {
    Ok(match &e.event {
        AnyEvent::Diagnosis(event) => Some((
            e.aggregate_uuid()?,
            matches!(event, DiagnosisEvent::DiagnosisRequested { .. }),
        )),
        AnyEvent::Decision(DecisionEvent::DecisionMade { diagnosis_id, .. }) => {
            Some((*diagnosis_id.as_uuid(), false))
        }
        _ => None,
    })
}

/// Folds one event into the rows.
fn fold(rows: &mut HashMap<Uuid, Diagnosis>, e: &DecodedEvent) -> Result<(), ApplyError> {
    let Some((id, _)) = subject(e)? else {
        return Ok(());
    };
    if let AnyEvent::Diagnosis(DiagnosisEvent::DiagnosisRequested {
        diagnosis_id,
        tenant_id,
        session_id,
        query_id,
        query,
        requested_by,
    }) = &e.event
    {
        if rows.contains_key(&id) {
            return Err(ApplyError::permanent(format!(
                "diagnosis {id} requested twice"
            )));
        }
        rows.insert(
            id,
            Diagnosis {
                diagnosis_id: *diagnosis_id,
                tenant_id: *tenant_id,
                session_id: *session_id,
                query_id: *query_id,
                query: query.to_string(),
                requested_by: requested_by.clone(),
                requested_at: e.recorded_at,
                position: e.position(),
                status: DiagnosisStatus::Requested,
                attempt: 1,
                failure_reason: None,
                budget_renews_on: None,
                proposal: None,
                decision: None,
                resolved_at: None,
                updated_at: e.recorded_at,
                version: e.sequence,
            },
        );
        return Ok(());
    }
    let row = rows.get_mut(&id).ok_or_else(|| {
        ApplyError::permanent(format!("{} for unknown diagnosis {id}", e.event_type))
    })?;
    let attempt = |attempt: u32| {
        i32::try_from(attempt).map_err(|err| ApplyError::permanent_from("attempt overflows", err))
    };
    match &e.event {
        AnyEvent::Diagnosis(event) => {
            match event {
                DiagnosisEvent::DiagnosisRequested { .. } => {}
                DiagnosisEvent::ContextRetrieved { attempt: n, .. } => {
                    row.status = DiagnosisStatus::ContextRetrieved;
                    row.attempt = attempt(*n)?;
                }
                DiagnosisEvent::DiagnosisProposed {
                    text,
                    findings,
                    confidence,
                    provenance,
                } => {
                    row.status = DiagnosisStatus::Proposed;
                    row.proposal = Some(Proposal {
                        text: text.to_string(),
                        findings: findings.clone(),
                        confidence: *confidence,
                        proposed_at: e.recorded_at,
                        position: e.position(),
                        provenance: provenance.clone(),
                    });
                }
                DiagnosisEvent::DiagnosisFailed {
                    attempt: n,
                    reason,
                    retryable,
                } => {
                    row.status = DiagnosisStatus::Failed {
                        retryable: *retryable,
                    };
                    row.attempt = attempt(*n)?;
                    row.failure_reason = Some(reason.to_string());
                }
                DiagnosisEvent::DiagnosisResolved { outcome, .. } => {
                    row.status = DiagnosisStatus::Resolved { outcome: *outcome };
                    row.resolved_at = Some(e.recorded_at);
                }
                DiagnosisEvent::DiagnosisDeferred {
                    deferral: Deferral::Budget { budget },
                } => {
                    row.status = DiagnosisStatus::DeferredBudget;
                    row.budget_renews_on = Some(budget.month.renews_on());
                }
                DiagnosisEvent::DiagnosisResumed { to } => {
                    row.status = *to;
                    row.budget_renews_on = None;
                }
            }
            row.version = e.sequence;
        }
        AnyEvent::Decision(DecisionEvent::DecisionMade {
            verdict,
            decided_by,
            ..
        }) => {
            row.decision = Some(DiagnosisDecision {
                outcome: verdict.outcome(),
                decided_by: decided_by.clone(),
                decided_at: e.recorded_at,
            });
        }
        _ => {}
    }
    row.updated_at = e.recorded_at;
    Ok(())
}

/// Writes `diagnoses`.
pub struct DiagnosesProjection {
    load: String,
    store: String,
    purge: String,
}

impl DiagnosesProjection {
    /// The projection over the tables `naming` names.
    pub fn new(naming: &Naming) -> Self {
        let table = naming.table("diagnoses");
        Self {
            load: load_by_key(&table, COLUMNS, "diagnosis_id", "uuid"),
            store: upsert_unnest(&table, COLUMNS, &["diagnosis_id"]),
            // What a rebuild reads once the subject's key is gone: the redactions of the
            // query, the proposal, its findings and the attachments it read (decision 0027).
            purge: format!(
                "UPDATE {table} SET query = '{ERASED}',
                        proposal = CASE WHEN proposal IS NOT NULL THEN '{ERASED}' END,
                        findings = CASE WHEN findings IS NOT NULL THEN '[]'::jsonb END,
                        attachments = CASE WHEN attachments IS NOT NULL THEN '[]'::jsonb END
                  WHERE tenant_id = $1 AND ($2::text IS NULL OR requested_by = $2)"
            ),
        }
    }

    async fn store_rows(
        &self,
        conn: &mut PgConnection,
        rows: HashMap<Uuid, Diagnosis>,
    ) -> Result<(), ApplyError> {
        let rows_len = rows.len();
        let mut a = Arrays::with_capacity(rows_len);
        for row in rows.into_values() {
            a.push(row)?;
        }
        sqlx::query_with(&self.store, reserved(rows_len * 1024))
            .bind(a.diagnosis_id)
            .bind(a.tenant_id)
            .bind(a.session_id)
            .bind(a.query_id)
            .bind(a.query)
            .bind(a.requested_by)
            .bind(a.requested_at)
            .bind(a.position)
            .bind(a.status)
            .bind(a.attempt)
            .bind(a.retryable)
            .bind(a.failure_reason)
            .bind(a.budget_renews_on)
            .bind(a.proposal)
            .bind(a.findings)
            .bind(a.confidence)
            .bind(a.proposed_at)
            .bind(a.proposed_position)
            .bind(a.model_id)
            .bind(a.model_tier)
            .bind(a.prompt_template_id)
            .bind(a.prompt_template_hash)
            .bind(a.retrieved_judgment_ids)
            .bind(a.input_tokens)
            .bind(a.output_tokens)
            .bind(a.cost_usd_micros)
            .bind(a.stop_reason)
            .bind(a.embedding_model_id)
            .bind(a.embedding_dimension)
            .bind(a.precedents)
            .bind(a.attachments)
            .bind(a.decision_outcome)
            .bind(a.decided_by)
            .bind(a.decided_at)
            .bind(a.resolution_outcome)
            .bind(a.resolved_at)
            .bind(a.updated_at)
            .bind(a.version)
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// The column arrays of one upsert, in [`COLUMNS`] order.
struct Arrays {
    diagnosis_id: Vec<Uuid>,
    tenant_id: Vec<Uuid>,
    session_id: Vec<Uuid>,
    query_id: Vec<Uuid>,
    query: Vec<String>,
    requested_by: Vec<String>,
    requested_at: Vec<DateTime<Utc>>,
    position: Vec<i64>,
    status: Vec<&'static str>,
    attempt: Vec<i32>,
    retryable: Vec<Option<bool>>,
    failure_reason: Vec<Option<String>>,
    budget_renews_on: Vec<Option<NaiveDate>>,
    proposal: Vec<Option<String>>,
    findings: Vec<Option<String>>,
    confidence: Vec<Option<f64>>,
    proposed_at: Vec<Option<DateTime<Utc>>>,
    proposed_position: Vec<Option<i64>>,
    model_id: Vec<Option<String>>,
    model_tier: Vec<Option<String>>,
    prompt_template_id: Vec<Option<String>>,
    prompt_template_hash: Vec<Option<String>>,
    retrieved_judgment_ids: Vec<Option<String>>,
    input_tokens: Vec<Option<i64>>,
    output_tokens: Vec<Option<i64>>,
    cost_usd_micros: Vec<Option<i64>>,
    stop_reason: Vec<Option<String>>,
    embedding_model_id: Vec<Option<String>>,
    embedding_dimension: Vec<Option<i32>>,
    precedents: Vec<Option<String>>,
    attachments: Vec<Option<String>>,
    decision_outcome: Vec<Option<String>>,
    decided_by: Vec<Option<String>>,
    decided_at: Vec<Option<DateTime<Utc>>>,
    resolution_outcome: Vec<Option<String>>,
    resolved_at: Vec<Option<DateTime<Utc>>>,
    updated_at: Vec<DateTime<Utc>>,
    version: Vec<i64>,
}

impl Arrays {
    fn with_capacity(n: usize) -> Self {
        Self {
            diagnosis_id: Vec::with_capacity(n),
            tenant_id: Vec::with_capacity(n),
            session_id: Vec::with_capacity(n),
            query_id: Vec::with_capacity(n),
            query: Vec::with_capacity(n),
            requested_by: Vec::with_capacity(n),
            requested_at: Vec::with_capacity(n),
            position: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            attempt: Vec::with_capacity(n),
            retryable: Vec::with_capacity(n),
            failure_reason: Vec::with_capacity(n),
            budget_renews_on: Vec::with_capacity(n),
            proposal: Vec::with_capacity(n),
            findings: Vec::with_capacity(n),
            confidence: Vec::with_capacity(n),
            proposed_at: Vec::with_capacity(n),
            proposed_position: Vec::with_capacity(n),
            model_id: Vec::with_capacity(n),
            model_tier: Vec::with_capacity(n),
            prompt_template_id: Vec::with_capacity(n),
            prompt_template_hash: Vec::with_capacity(n),
            retrieved_judgment_ids: Vec::with_capacity(n),
            input_tokens: Vec::with_capacity(n),
            output_tokens: Vec::with_capacity(n),
            cost_usd_micros: Vec::with_capacity(n),
            stop_reason: Vec::with_capacity(n),
            embedding_model_id: Vec::with_capacity(n),
            embedding_dimension: Vec::with_capacity(n),
            precedents: Vec::with_capacity(n),
            attachments: Vec::with_capacity(n),
            decision_outcome: Vec::with_capacity(n),
            decided_by: Vec::with_capacity(n),
            decided_at: Vec::with_capacity(n),
            resolution_outcome: Vec::with_capacity(n),
            resolved_at: Vec::with_capacity(n),
            updated_at: Vec::with_capacity(n),
            version: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, row: Diagnosis) -> Result<(), ApplyError> {
        self.diagnosis_id.push(*row.diagnosis_id.as_uuid());
        self.tenant_id.push(*row.tenant_id.as_uuid());
        self.session_id.push(*row.session_id.as_uuid());
        self.query_id.push(*row.query_id.as_uuid());
        self.query.push(row.query);
        self.requested_by.push(row.requested_by.to_string());
        self.requested_at.push(row.requested_at);
        self.position.push(row.position);
        self.status.push(status_text(&row.status));
        self.attempt.push(row.attempt);
        self.retryable.push(match row.status {
            DiagnosisStatus::Failed { retryable } => Some(retryable),
            _ => None,
        });
        self.resolution_outcome.push(match &row.status {
            DiagnosisStatus::Resolved { outcome } => Some(enum_value(outcome)?),
            _ => None,
        });
        self.failure_reason.push(row.failure_reason);
        self.budget_renews_on.push(row.budget_renews_on);
        match row.proposal {
            Some(proposal) => {
                let p = proposal.provenance;
                self.proposal.push(Some(proposal.text));
                self.findings.push(Some(json_text(&proposal.findings)?));
                self.confidence.push(Some(proposal.confidence.value()));
                self.proposed_at.push(Some(proposal.proposed_at));
                self.proposed_position.push(Some(proposal.position));
                self.model_tier.push(Some(enum_value(&p.model_tier)?));
                self.model_id.push(Some(p.model_id));
                self.prompt_template_id.push(Some(p.prompt_template_id));
                self.prompt_template_hash.push(Some(p.prompt_template_hash));
                self.retrieved_judgment_ids
                    .push(Some(json_text(&p.retrieved_judgment_ids)?));
                self.input_tokens.push(Some(i64::from(p.input_tokens)));
                self.output_tokens.push(Some(i64::from(p.output_tokens)));
                self.cost_usd_micros
                    .push(Some(to_i64(p.cost_usd_micros, "cost_usd_micros")?));
                self.stop_reason
                    .push(p.stop_reason.as_ref().map(enum_value).transpose()?);
                let (model_id, dimension) = match p.embedding {
                    Some(e) => (
                        Some(e.model_id),
                        Some(i32::try_from(e.dimension).map_err(|err| {
                            ApplyError::permanent_from("embedding dimension overflows", err)
                        })?),
                    ),
                    None => (None, None),
                };
                self.embedding_model_id.push(model_id);
                self.embedding_dimension.push(dimension);
                self.precedents
                    .push(p.precedents.as_ref().map(json_text).transpose()?);
                self.attachments
                    .push(p.attachments.as_ref().map(json_text).transpose()?);
            }
            None => {
                self.proposal.push(None);
                self.findings.push(None);
                self.confidence.push(None);
                self.proposed_at.push(None);
                self.proposed_position.push(None);
                self.model_tier.push(None);
                self.model_id.push(None);
                self.prompt_template_id.push(None);
                self.prompt_template_hash.push(None);
                self.retrieved_judgment_ids.push(None);
                self.input_tokens.push(None);
                self.output_tokens.push(None);
                self.cost_usd_micros.push(None);
                self.stop_reason.push(None);
                self.embedding_model_id.push(None);
                self.embedding_dimension.push(None);
                self.precedents.push(None);
                self.attachments.push(None);
            }
        }
        match row.decision {
            Some(decision) => {
                self.decision_outcome
                    .push(Some(enum_value(&decision.outcome)?));
                self.decided_by.push(Some(decision.decided_by.to_string()));
                self.decided_at.push(Some(decision.decided_at));
            }
            None => {
                self.decision_outcome.push(None);
                self.decided_by.push(None);
                self.decided_at.push(None);
            }
        }
        self.resolved_at.push(row.resolved_at);
        self.updated_at.push(row.updated_at);
        self.version.push(row.version);
        Ok(())
    }
}

#[async_trait]
impl Projection for DiagnosesProjection {
    fn id(&self) -> ProjectionId {
        ProjectionId::Diagnoses
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[DecodedEvent],
    ) -> Result<(), ApplyError> {
        let mut touched = Touched::default();
        for e in events {
            if let Some((id, creates)) = subject(e)? {
                touched.touch(id, creates);
            }
        }
        if !touched.is_empty() {
            let mut rows = touched
                .load(conn, &self.load, "diagnosis_id", from_row)
                .await?;
            for e in events {
                fold(&mut rows, e)?;
            }
            self.store_rows(conn, rows).await?;
        }
        purge_erased_subjects(conn, events, &[&self.purge]).await?;
        Ok(())
    }
}
