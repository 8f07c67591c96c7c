//! Business events: one record per event a practice or an operator talks about — a query
//! submitted, a proposal made, failed or deferred for the budget, a decision, an
//! auto-approval, a budget threshold crossed, a sign-up — told in words and measured, for the
//! logs and the metrics alike.
//!
//! [`BusinessEvents`] is a reaction: the log delivers each event to it once whatever process
//! committed it (the API, the worker, a schedule), so every record is written by one
//! subscription in one place. A crash between writing and checkpointing writes a batch
//! again; each record carries its event's id, so a reader counts distinct ids. The records'
//! form (CloudWatch Embedded Metric Format lines) is the [`BusinessLog`]'s business.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use casebook_domain::any_event::AnyEvent;
use casebook_domain::decision::{DecisionEvent, Outcome, Verdict};
use casebook_domain::diagnosis::{Deferral, Diagnosis, DiagnosisEvent};
use casebook_domain::ids::{DiagnosisId, TenantId};
use casebook_domain::policy::ModelTier;
use casebook_domain::session::SessionEvent;
use casebook_domain::tenant::TenantEvent;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::ports::EventRepository;
use crate::reactions::{Delivered, Reaction, ReactionError};
use crate::service::ServiceError;

/// One business event, told and measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BusinessEvent {
    /// What happened, as a stable snake_case name (`diagnosis_proposed`).
    pub kind: &'static str,
    /// The sentence a person reads.
    pub message: String,
    /// The tenant it happened in.
    pub tenant_id: TenantId,
    /// The event's stable id (`<Aggregate>/<id>/<sequence>`): a reader deduplicates on it.
    pub event_id: String,
    /// When the event was committed.
    pub recorded_at: DateTime<Utc>,
    /// The request that committed it.
    pub request_id: String,
    /// The chain it belongs to: for a decision, the chain of the query it decides, so one id
    /// finds a diagnosis from the customer's request to the consultant's decision.
    pub correlation_id: String,
    /// Named facts beside the sentence (ids, model, confidence, reason).
    pub details: BTreeMap<&'static str, Value>,
    /// What it adds to the metrics.
    pub measures: Vec<Measure>,
}

/// A metric value an event adds: its dimensions are low-cardinality names (model, tier,
/// outcome), never the tenant, which stays a searchable detail.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    /// The metric's name.
    pub metric: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// The value this event adds.
    pub value: f64,
    /// Its dimensions, besides the deployment's own.
    pub dimensions: Vec<(&'static str, String)>,
}

impl Measure {
    fn count(metric: &'static str, dimensions: Vec<(&'static str, String)>) -> Self {
        Self {
            metric,
            unit: Unit::Count,
            value: 1.0,
            dimensions,
        }
    }
}

/// The units business measures use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// A plain number (US dollars have no CloudWatch unit).
    None,
}

/// Where business events are written.
pub trait BusinessLog: Send + Sync {
    /// Writes `event`; a log never fails the event it tells.
    fn record(&self, event: &BusinessEvent);
}

/// The reaction that tells every business event once; see the module documentation.
pub struct BusinessEvents {
    log: Arc<dyn BusinessLog>,
    diagnoses: Arc<dyn EventRepository<Diagnosis>>,
}

impl BusinessEvents {
    /// Its name: its checkpoint in the log.
    pub const NAME: &'static str = "business_events";

    /// Tells events to `log`, reading a decided diagnosis from `diagnoses` for the chain its
    /// query started.
    pub fn new(log: Arc<dyn BusinessLog>, diagnoses: Arc<dyn EventRepository<Diagnosis>>) -> Self {
        Self { log, diagnoses }
    }

    /// The correlation id of the request that asked for `diagnosis`.
    async fn query_chain(
        &self,
        tenant: TenantId,
        diagnosis: DiagnosisId,
    ) -> Result<Option<String>, ReactionError> {
        let events = self
            .diagnoses
            .load_events(tenant, &diagnosis.to_string())
            .await
            .map_err(|err| ReactionError::Command(ServiceError::from(err)))?;
        Ok(events
            .first()
            .and_then(|first| first.metadata.get("correlation_id").cloned()))
    }
}

#[async_trait]
impl Reaction for BusinessEvents {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn wants(&self, aggregate_type: &str, event_type: &str) -> bool {
        matches!(
            (aggregate_type, event_type),
            ("TenantSession", "QuerySubmitted")
                | (
                    "Diagnosis",
                    "DiagnosisProposed" | "DiagnosisFailed" | "DiagnosisDeferred"
                )
                | ("ConsultantDecision", "DecisionMade")
                | ("Tenant", "TenantSignedUp" | "TokenBudgetThresholdCrossed")
        )
    }

    async fn react(&self, event: &Delivered) -> Result<(), ReactionError> {
        let chain = match &event.event {
            AnyEvent::Decision(DecisionEvent::DecisionMade { diagnosis_id, .. }) => {
                self.query_chain(event.metadata.tenant_id, *diagnosis_id)
                    .await?
            }
            _ => None,
        };
        if let Some(business) = tell(event, chain) {
            self.log.record(&business);
        }
        Ok(())
    }
}

/// `event` as a business event, if it is one; `chain` overrides its correlation id.
pub fn tell(event: &Delivered, chain: Option<String>) -> Option<BusinessEvent> {
    let tenant = event.metadata.tenant_id;
    let mut details = BTreeMap::new();
    let (kind, message, measures) = match &event.event {
        AnyEvent::Session(SessionEvent::QuerySubmitted {
            query_id,
            submitted_by,
            ..
        }) => {
            details.insert("session_id", json!(event.aggregate_id));
            details.insert("query_id", json!(query_id));
            details.insert("submitted_by", json!(submitted_by));
            (
                "query_submitted",
                format!("tenant {tenant} submitted query {query_id}"),
                vec![Measure::count("Queries", vec![])],
            )
        }
        AnyEvent::Diagnosis(DiagnosisEvent::DiagnosisProposed {
            confidence,
            provenance,
            ..
        }) => {
            let tokens = u64::from(provenance.input_tokens) + u64::from(provenance.output_tokens);
            let cost = provenance.cost_usd_micros as f64 / 1_000_000.0;
            let model = vec![
                ("Model", provenance.model_id.clone()),
                ("Tier", tier_name(provenance.model_tier).to_owned()),
            ];
            details.insert("diagnosis_id", json!(event.aggregate_id));
            details.insert("model", json!(provenance.model_id));
            details.insert("tier", json!(tier_name(provenance.model_tier)));
            details.insert("confidence", json!(confidence.value()));
            details.insert("input_tokens", json!(provenance.input_tokens));
            details.insert("output_tokens", json!(provenance.output_tokens));
            details.insert("cost_usd", json!(cost));
            (
                "diagnosis_proposed",
                format!(
                    "AI proposed diagnosis {} ({}, confidence {confidence}, {tokens} tokens, {cost:.6} USD)",
                    event.aggregate_id, provenance.model_id
                ),
                vec![
                    Measure::count("Proposals", vec![("Outcome", "proposed".to_owned())]),
                    Measure {
                        metric: "LlmTokens",
                        unit: Unit::Count,
                        value: tokens as f64,
                        dimensions: model.clone(),
                    },
                    Measure {
                        metric: "LlmCostUsd",
                        unit: Unit::None,
                        value: cost,
                        dimensions: model,
                    },
                ],
            )
        }
        AnyEvent::Diagnosis(DiagnosisEvent::DiagnosisFailed {
            attempt,
            reason,
            retryable,
        }) => {
            let outcome = if *retryable { "retrying" } else { "failed" };
            details.insert("diagnosis_id", json!(event.aggregate_id));
            details.insert("attempt", json!(attempt));
            details.insert("reason", json!(reason));
            (
                "diagnosis_failed",
                format!(
                    "attempt {attempt} at diagnosis {} failed ({outcome}): {reason}",
                    event.aggregate_id
                ),
                vec![Measure::count(
                    "Proposals",
                    vec![("Outcome", outcome.to_owned())],
                )],
            )
        }
        AnyEvent::Decision(DecisionEvent::DecisionMade {
            diagnosis_id,
            verdict,
            decided_by,
            ..
        }) => {
            let outcome = outcome_name(verdict.outcome());
            details.insert("decision_id", json!(event.aggregate_id));
            details.insert("diagnosis_id", json!(diagnosis_id));
            details.insert("decided_by", json!(decided_by));
            details.insert("outcome", json!(outcome));
            let decided = vec![Measure::count(
                "Decisions",
                vec![("Outcome", outcome.to_owned())],
            )];
            match verdict {
                Verdict::AutoApproved {
                    threshold,
                    confidence,
                } => {
                    details.insert("threshold", json!(threshold.value()));
                    details.insert("confidence", json!(confidence.value()));
                    let mut measures = decided;
                    measures.push(Measure::count("AutoApprovals", vec![]));
                    (
                        "auto_approved",
                        format!(
                            "diagnosis {diagnosis_id} auto-approved at threshold {threshold} (confidence {confidence})"
                        ),
                        measures,
                    )
                }
                Verdict::Approved => (
                    "consultant_decided",
                    format!("consultant {decided_by} approved diagnosis {diagnosis_id}"),
                    decided,
                ),
                Verdict::Amended { reason, .. } => {
                    details.insert("reason", json!(reason));
                    let because = reason
                        .as_ref()
                        .map(|reason| format!(" with reason {reason}"))
                        .unwrap_or_default();
                    (
                        "consultant_decided",
                        format!(
                            "consultant {decided_by} amended diagnosis {diagnosis_id}{because}"
                        ),
                        decided,
                    )
                }
                Verdict::Rejected { reason } => {
                    details.insert("reason", json!(reason));
                    (
                        "consultant_decided",
                        format!(
                            "consultant {decided_by} rejected diagnosis {diagnosis_id} with reason {reason}"
                        ),
                        decided,
                    )
                }
            }
        }
        AnyEvent::Diagnosis(DiagnosisEvent::DiagnosisDeferred {
            deferral: Deferral::Budget { budget },
        }) => {
            details.insert("diagnosis_id", json!(event.aggregate_id));
            details.insert("tokens_used", json!(budget.tokens_used));
            details.insert("tokens_budget", json!(budget.tokens_budget));
            (
                "diagnosis_deferred",
                format!(
                    "diagnosis {} deferred: tenant {tenant} spent its monthly token budget ({} of {} tokens)",
                    event.aggregate_id, budget.tokens_used, budget.tokens_budget
                ),
                // Counted where it is decided (`DiagnosesDeferred`).
                vec![],
            )
        }
        AnyEvent::Tenant(TenantEvent::TokenBudgetThresholdCrossed { threshold, budget }) => {
            details.insert("threshold_percent", json!(threshold.percent()));
            details.insert("tokens_used", json!(budget.tokens_used));
            details.insert("tokens_budget", json!(budget.tokens_budget));
            (
                "token_budget_threshold_crossed",
                format!(
                    "tenant {tenant} used {} % of its monthly token budget ({} of {} tokens)",
                    threshold.percent(),
                    budget.tokens_used,
                    budget.tokens_budget
                ),
                // Counted where it is recorded (`TokenBudgetThresholdCrossed`).
                vec![],
            )
        }
        AnyEvent::Tenant(TenantEvent::TenantSignedUp { name, plan, .. }) => {
            details.insert("plan", json!(plan.as_str()));
            (
                "tenant_signed_up",
                format!(
                    "practice {name} signed up as tenant {tenant} on {}",
                    plan.as_str()
                ),
                vec![Measure::count("SignUps", vec![])],
            )
        }
        _ => return None,
    };
    Some(BusinessEvent {
        kind,
        message,
        tenant_id: tenant,
        event_id: format!(
            "{}/{}/{}",
            event.aggregate_type, event.aggregate_id, event.sequence
        ),
        recorded_at: event.recorded_at,
        request_id: event.metadata.request_id.clone(),
        correlation_id: chain.unwrap_or_else(|| event.metadata.correlation_id.clone()),
        details,
        measures,
    })
}

fn tier_name(tier: ModelTier) -> &'static str {
    match tier {
        ModelTier::Triage => "triage",
        ModelTier::Standard => "standard",
        ModelTier::Strongest => "strongest",
        ModelTier::OpenWeights => "open_weights",
    }
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Approved => "approved",
        Outcome::Amended => "amended",
        Outcome::Rejected => "rejected",
        Outcome::AutoApproved => "auto_approved",
    }
}
