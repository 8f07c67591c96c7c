//! The audit projection: one chained `audit_log` row per event.

use std::collections::HashMap;

use async_trait::async_trait;
use casebook_domain::actor::Role;
use casebook_domain::any_event::AnyEvent;
use casebook_domain::decision::{DecisionEvent, Verdict};
use casebook_domain::diagnosis::{Deferral, DiagnosisEvent};
use casebook_domain::ids::{DiagnosisId, JudgmentId, SessionId, TenantId};
use casebook_domain::judgment::{JudgmentEvent, JudgmentOrigin};
use casebook_domain::session::SessionEvent;
use casebook_domain::tenant::TenantEvent;
use casebook_domain::values::Confidence;
use sqlx::{PgConnection, Row};
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::chain::{AuditRecord, ChainHash, Encoding};
use super::COLUMNS;
use crate::chain;
use crate::decoded::DecodedEvent;
use crate::error::ApplyError;
use crate::log::Checkpoint;
use crate::projection::{Naming, Projection, ProjectionId};
use crate::sql::{enum_value, insert_unnest, json_text, reserved, to_i64};

/// The audit row of `e` in the current encoding, before it is numbered and chained (`seq` 0,
/// zero hashes).
pub fn row_of(e: &DecodedEvent) -> Result<AuditRecord, ApplyError> {
    row_in(e, Encoding::CURRENT)
}

/// The audit row of `e` in `encoding`, before it is numbered and chained.
fn row_in(e: &DecodedEvent, encoding: Encoding) -> Result<AuditRecord, ApplyError> {
    let event_digest =
        match encoding {
            Encoding::V1 => None,
            Encoding::V2 => Some(e.content().digest().map_err(|err| {
                ApplyError::permanent_from("cannot digest the event's content", err)
            })?),
        };
    let m = &e.metadata;
    let mut r = AuditRecord {
        tenant_id: TenantId::from_uuid(e.tenant_id),
        seq: 0,
        global_position: e.position(),
        recorded_at: e.recorded_at,
        actor_id: m.actor_id.to_string(),
        actor_role: enum_value(&m.actor_role)?,
        source: enum_value(&m.source)?,
        action: e.event_type.clone(),
        aggregate_type: e.aggregate_type.clone(),
        aggregate_id: e.aggregate_id.clone(),
        event_sequence: e.sequence,
        session_id: None,
        query_id: None,
        diagnosis_id: None,
        decision_id: None,
        judgment_id: None,
        outcome: None,
        reason: None,
        threshold: None,
        confidence: None,
        model_id: None,
        model_tier: None,
        prompt_template_id: None,
        prompt_template_hash: None,
        retrieved_judgment_ids: None,
        input_tokens: None,
        output_tokens: None,
        cost_usd_micros: None,
        request_id: m.request_id.clone(),
        correlation_id: m.correlation_id.clone(),
        causation_id: m.causation_id.clone(),
        event_digest,
        encoding,
        prev_hash: ChainHash::ZERO,
        hash: ChainHash::ZERO,
    };
    match &e.event {
        AnyEvent::Tenant(event) => match event {
            TenantEvent::AutoResolveThresholdSet { threshold } => {
                r.threshold = threshold.map(Confidence::value);
            }
            TenantEvent::TenantSuspended { reason } => r.reason = Some(reason.to_string()),
            // Who gave whom which access: the member's address in `reason` (why the row
            // exists: for whom), the access they hold afterwards in `outcome`.
            TenantEvent::TenantSignedUp { admin, .. } => {
                r.reason = Some(admin.email.to_string());
                r.outcome = Some(enum_value(&Role::Admin)?);
            }
            TenantEvent::UserInvited { invitee, role } => {
                r.reason = Some(invitee.email.to_string());
                r.outcome = Some(enum_value(role)?);
            }
            TenantEvent::UserRoleChanged { email, role, .. } => {
                r.reason = Some(email.to_string());
                r.outcome = Some(enum_value(role)?);
            }
            TenantEvent::UserDisabled { email } => {
                r.reason = Some(email.to_string());
                r.outcome = Some("disabled".to_owned());
            }
            TenantEvent::UserEnabled { email } => {
                r.reason = Some(email.to_string());
                r.outcome = Some("enabled".to_owned());
            }
            TenantEvent::UserProvisioned { email, .. } => {
                r.reason = Some(email.to_string());
                r.outcome = Some("provisioned".to_owned());
            }
            TenantEvent::TenantOnboarded { .. }
            | TenantEvent::PlanChanged { .. }
            | TenantEvent::ModelPolicySet { .. }
            | TenantEvent::TenantReactivated
            | TenantEvent::UsageKeyAssigned { .. }
            | TenantEvent::FinetuneExported { .. } => {}
            TenantEvent::TokenBudgetThresholdCrossed { threshold, .. } => {
                r.outcome = Some(format!("{}%", threshold.percent()));
            }
            // For whom, as the people events: the subject's id, which names no one once their
            // key is gone.
            TenantEvent::SubjectErased { subject, .. } => {
                r.reason = Some(subject.to_string());
                r.outcome = Some("erased".to_owned());
            }
            TenantEvent::TenantErased { .. } => r.outcome = Some("erased".to_owned()),
            // The practice's own models, named as provenance names them: "every promotion
            // of tenant X" is a filter on the outcome.
            TenantEvent::ModelRegistered { model_id, .. } => {
                r.model_id = Some(model_id.provenance_name());
                r.outcome = Some("registered".to_owned());
            }
            TenantEvent::ModelPromoted {
                model_id,
                evaluation,
                ..
            } => {
                r.model_id = Some(model_id.provenance_name());
                r.model_tier = Some(enum_value(&evaluation.tier)?);
                r.outcome = Some("promoted".to_owned());
            }
            TenantEvent::ModelRejected {
                model_id,
                evaluation,
            } => {
                r.model_id = Some(model_id.provenance_name());
                r.model_tier = Some(enum_value(&evaluation.tier)?);
                r.outcome = Some("rejected".to_owned());
            }
            TenantEvent::ModelRetired {
                model_id, reason, ..
            } => {
                r.model_id = Some(model_id.provenance_name());
                r.reason = Some(reason.to_string());
                r.outcome = Some("retired".to_owned());
            }
        },
        AnyEvent::Session(event) => {
            r.session_id = Some(SessionId::from_uuid(e.aggregate_uuid()?));
            if let SessionEvent::QuerySubmitted { query_id, .. } = event {
                r.query_id = Some(*query_id);
            }
        }
        AnyEvent::Diagnosis(event) => {
            let diagnosis = DiagnosisId::from_uuid(e.aggregate_uuid()?);
            r.diagnosis_id = Some(diagnosis);
            match event {
                DiagnosisEvent::DiagnosisRequested {
                    session_id,
                    query_id,
                    ..
                } => {
                    r.session_id = Some(*session_id);
                    r.query_id = Some(*query_id);
                }
                DiagnosisEvent::ContextRetrieved { judgments, .. } => {
                    r.retrieved_judgment_ids =
                        Some(judgments.iter().map(|j| j.judgment_id).collect());
                }
                DiagnosisEvent::DiagnosisProposed {
                    confidence,
                    provenance: p,
                    ..
                } => {
                    r.confidence = Some(confidence.value());
                    r.model_id = Some(p.model_id.clone());
                    r.model_tier = Some(enum_value(&p.model_tier)?);
                    r.prompt_template_id = Some(p.prompt_template_id.clone());
                    r.prompt_template_hash = Some(p.prompt_template_hash.clone());
                    r.retrieved_judgment_ids = Some(p.retrieved_judgment_ids.clone());
                    r.input_tokens = Some(i64::from(p.input_tokens));
                    r.output_tokens = Some(i64::from(p.output_tokens));
                    r.cost_usd_micros = Some(to_i64(p.cost_usd_micros, "cost_usd_micros")?);
                }
                DiagnosisEvent::DiagnosisFailed {
                    reason, retryable, ..
                } => {
                    r.outcome = Some(if *retryable { "retryable" } else { "final" }.to_owned());
                    r.reason = Some(reason.to_string());
                }
                DiagnosisEvent::DiagnosisResolved {
                    decision_id,
                    outcome,
                } => {
                    r.decision_id = Some(*decision_id);
                    r.outcome = Some(enum_value(outcome)?);
                }
                DiagnosisEvent::DiagnosisDeferred { deferral } => {
                    r.outcome = Some(match deferral {
                        Deferral::Budget { .. } => "budget".to_owned(),
                    });
                }
                DiagnosisEvent::DiagnosisResumed { .. } => {}
            }
        }
        AnyEvent::Decision(DecisionEvent::DecisionMade {
            decision_id,
            diagnosis_id,
            verdict,
            ..
        }) => {
            r.decision_id = Some(*decision_id);
            r.diagnosis_id = Some(*diagnosis_id);
            r.outcome = Some(enum_value(&verdict.outcome())?);
            // A sealed reason stays out of the chained row: the row outlives an erasure.
            match verdict {
                Verdict::Approved => {}
                Verdict::Amended { reason, .. } if !e.sealed => {
                    r.reason = reason.as_ref().map(|x| x.to_string())
                }
                Verdict::Rejected { reason } if !e.sealed => r.reason = Some(reason.to_string()),
                Verdict::Amended { .. } | Verdict::Rejected { .. } => {}
                Verdict::AutoApproved {
                    threshold,
                    confidence,
                } => {
                    r.threshold = Some(threshold.value());
                    r.confidence = Some(confidence.value());
                }
            }
        }
        AnyEvent::Judgment(event) => {
            r.judgment_id = Some(JudgmentId::from_uuid(e.aggregate_uuid()?));
            match event {
                JudgmentEvent::JudgmentCaptured {
                    origin:
                        JudgmentOrigin::Decision {
                            decision_id,
                            diagnosis_id,
                            ..
                        },
                    ..
                } => {
                    r.decision_id = Some(*decision_id);
                    r.diagnosis_id = Some(*diagnosis_id);
                }
                JudgmentEvent::JudgmentRetired { reason, .. } if !e.sealed => {
                    r.reason = Some(reason.to_string());
                }
                JudgmentEvent::JudgmentRetired { .. } => {}
                JudgmentEvent::JudgmentCaptured { .. } | JudgmentEvent::JudgmentRevised { .. } => {}
            }
        }
    }
    Ok(r)
}

/// Writes `audit_log`: numbers each tenant's rows on from its chain head and chains them.
///
/// Events up to the checkpoint in `audit_encoding_cutover` (where the rows written before
/// encoding 2 end) get rows of encoding 1, so a rebuild writes exactly the rows it replaces;
/// every later event gets a row of the current encoding.
pub struct AuditProjection {
    heads: String,
    insert: String,
    cutover: OnceCell<Option<Checkpoint>>,
}

impl AuditProjection {
    /// The projection over the tables `naming` names.
    pub fn new(naming: &Naming) -> Self {
        let table = naming.table("audit_log");
        Self {
            heads: chain::heads_query(&table),
            insert: insert_unnest(&table, COLUMNS),
            cutover: OnceCell::new(),
        }
    }

    /// Where the rows of encoding 1 end; read once, as only the migration that introduced
    /// encoding 2 writes it.
    async fn cutover(&self, conn: &mut PgConnection) -> Result<Option<Checkpoint>, ApplyError> {
        let cutover = self
            .cutover
            .get_or_try_init(|| async {
                let row = sqlx::query(
                    "SELECT checkpoint_tx::text::bigint AS tx, checkpoint_position
                       FROM audit_encoding_cutover",
                )
                .fetch_optional(&mut *conn)
                .await?;
                row.map(|row| {
                    Ok::<_, sqlx::Error>(Checkpoint {
                        transaction_id: row.try_get("tx")?,
                        global_position: row.try_get("checkpoint_position")?,
                    })
                })
                .transpose()
            })
            .await?;
        Ok(*cutover)
    }

    /// Each tenant's last `seq` and hash, for the tenants in `events`.
    async fn heads(
        &self,
        conn: &mut PgConnection,
        events: &[DecodedEvent],
    ) -> Result<HashMap<Uuid, chain::Head>, ApplyError> {
        let mut tenants: Vec<Uuid> = events.iter().map(|e| e.tenant_id).collect();
        tenants.sort_unstable();
        tenants.dedup();
        Ok(chain::read_heads(conn, &self.heads, &tenants).await?)
    }
}

/// The column arrays of one insert, in [`COLUMNS`] order.
struct Arrays {
    tenant_id: Vec<Uuid>,
    seq: Vec<i64>,
    global_position: Vec<i64>,
    recorded_at: Vec<chrono::DateTime<chrono::Utc>>,
    actor_id: Vec<String>,
    actor_role: Vec<String>,
    source: Vec<String>,
    action: Vec<String>,
    aggregate_type: Vec<String>,
    aggregate_id: Vec<String>,
    event_sequence: Vec<i64>,
    session_id: Vec<Option<Uuid>>,
    query_id: Vec<Option<Uuid>>,
    diagnosis_id: Vec<Option<Uuid>>,
    decision_id: Vec<Option<Uuid>>,
    judgment_id: Vec<Option<Uuid>>,
    outcome: Vec<Option<String>>,
    reason: Vec<Option<String>>,
    threshold: Vec<Option<f64>>,
    confidence: Vec<Option<f64>>,
    model_id: Vec<Option<String>>,
    model_tier: Vec<Option<String>>,
    prompt_template_id: Vec<Option<String>>,
    prompt_template_hash: Vec<Option<String>>,
    retrieved_judgment_ids: Vec<Option<String>>,
    input_tokens: Vec<Option<i64>>,
    output_tokens: Vec<Option<i64>>,
    cost_usd_micros: Vec<Option<i64>>,
    request_id: Vec<String>,
    correlation_id: Vec<String>,
    causation_id: Vec<String>,
    event_digest: Vec<Option<Vec<u8>>>,
    encoding: Vec<i16>,
    prev_hash: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
}

impl Arrays {
    fn with_capacity(n: usize) -> Self {
        Self {
            tenant_id: Vec::with_capacity(n),
            seq: Vec::with_capacity(n),
            global_position: Vec::with_capacity(n),
            recorded_at: Vec::with_capacity(n),
            actor_id: Vec::with_capacity(n),
            actor_role: Vec::with_capacity(n),
            source: Vec::with_capacity(n),
            action: Vec::with_capacity(n),
            aggregate_type: Vec::with_capacity(n),
            aggregate_id: Vec::with_capacity(n),
            event_sequence: Vec::with_capacity(n),
            session_id: Vec::with_capacity(n),
            query_id: Vec::with_capacity(n),
            diagnosis_id: Vec::with_capacity(n),
            decision_id: Vec::with_capacity(n),
            judgment_id: Vec::with_capacity(n),
            outcome: Vec::with_capacity(n),
            reason: Vec::with_capacity(n),
            threshold: Vec::with_capacity(n),
            confidence: Vec::with_capacity(n),
            model_id: Vec::with_capacity(n),
            model_tier: Vec::with_capacity(n),
            prompt_template_id: Vec::with_capacity(n),
            prompt_template_hash: Vec::with_capacity(n),
            retrieved_judgment_ids: Vec::with_capacity(n),
            input_tokens: Vec::with_capacity(n),
            output_tokens: Vec::with_capacity(n),
            cost_usd_micros: Vec::with_capacity(n),
            request_id: Vec::with_capacity(n),
            correlation_id: Vec::with_capacity(n),
            causation_id: Vec::with_capacity(n),
            event_digest: Vec::with_capacity(n),
            encoding: Vec::with_capacity(n),
            prev_hash: Vec::with_capacity(n),
            hash: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, r: AuditRecord) -> Result<(), ApplyError> {
        self.tenant_id.push(*r.tenant_id.as_uuid());
        self.seq.push(r.seq);
        self.global_position.push(r.global_position);
        self.recorded_at.push(r.recorded_at);
        self.actor_id.push(r.actor_id);
        self.actor_role.push(r.actor_role);
        self.source.push(r.source);
        self.action.push(r.action);
        self.aggregate_type.push(r.aggregate_type);
        self.aggregate_id.push(r.aggregate_id);
        self.event_sequence.push(r.event_sequence);
        self.session_id.push(r.session_id.map(|id| *id.as_uuid()));
        self.query_id.push(r.query_id.map(|id| *id.as_uuid()));
        self.diagnosis_id
            .push(r.diagnosis_id.map(|id| *id.as_uuid()));
        self.decision_id.push(r.decision_id.map(|id| *id.as_uuid()));
        self.judgment_id.push(r.judgment_id.map(|id| *id.as_uuid()));
        self.outcome.push(r.outcome);
        self.reason.push(r.reason);
        self.threshold.push(r.threshold);
        self.confidence.push(r.confidence);
        self.model_id.push(r.model_id);
        self.model_tier.push(r.model_tier);
        self.prompt_template_id.push(r.prompt_template_id);
        self.prompt_template_hash.push(r.prompt_template_hash);
        self.retrieved_judgment_ids.push(
            r.retrieved_judgment_ids
                .as_ref()
                .map(json_text)
                .transpose()?,
        );
        self.input_tokens.push(r.input_tokens);
        self.output_tokens.push(r.output_tokens);
        self.cost_usd_micros.push(r.cost_usd_micros);
        self.request_id.push(r.request_id);
        self.correlation_id.push(r.correlation_id);
        self.causation_id.push(r.causation_id);
        self.event_digest
            .push(r.event_digest.map(|digest| digest.0.to_vec()));
        self.encoding.push(i16::from(r.encoding));
        self.prev_hash.push(r.prev_hash.0.to_vec());
        self.hash.push(r.hash.0.to_vec());
        Ok(())
    }
}

#[async_trait]
impl Projection for AuditProjection {
    fn id(&self) -> ProjectionId {
        ProjectionId::Audit
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[DecodedEvent],
    ) -> Result<(), ApplyError> {
        if events.is_empty() {
            return Ok(());
        }
        let cutover = self.cutover(conn).await?;
        let mut heads = self.heads(conn, events).await?;
        let mut a = Arrays::with_capacity(events.len());
        for e in events {
            let encoding = match cutover {
                Some(cutover) if e.checkpoint <= cutover => Encoding::V1,
                _ => Encoding::CURRENT,
            };
            let mut record = row_in(e, encoding)?;
            chain::extend(&mut heads, [&mut record]);
            a.push(record)?;
        }
        sqlx::query_with(&self.insert, reserved(events.len() * 512))
            .bind(a.tenant_id)
            .bind(a.seq)
            .bind(a.global_position)
            .bind(a.recorded_at)
            .bind(a.actor_id)
            .bind(a.actor_role)
            .bind(a.source)
            .bind(a.action)
            .bind(a.aggregate_type)
            .bind(a.aggregate_id)
            .bind(a.event_sequence)
            .bind(a.session_id)
            .bind(a.query_id)
            .bind(a.diagnosis_id)
            .bind(a.decision_id)
            .bind(a.judgment_id)
            .bind(a.outcome)
            .bind(a.reason)
            .bind(a.threshold)
            .bind(a.confidence)
            .bind(a.model_id)
            .bind(a.model_tier)
            .bind(a.prompt_template_id)
            .bind(a.prompt_template_hash)
            .bind(a.retrieved_judgment_ids)
            .bind(a.input_tokens)
            .bind(a.output_tokens)
            .bind(a.cost_usd_micros)
            .bind(a.request_id)
            .bind(a.correlation_id)
            .bind(a.causation_id)
            .bind(a.event_digest)
            .bind(a.encoding)
            .bind(a.prev_hash)
            .bind(a.hash)
            .execute(conn)
            .await?;
        Ok(())
    }
}
