//! Process managers: events that cause further commands.
//!
//! - `DecisionMade` → resolve the diagnosis; if approved or amended, capture it as judgment.
//! - `DiagnosisProposed` → auto-approve when the tenant's threshold allows it.
//!
//! Each reaction issues its commands as the system, with the triggering event as causation
//! and the chain's correlation id. Delivery is at least once, so every reaction must be
//! idempotent: the target aggregates refuse a repeat (already resolved, already decided,
//! already captured), and such a refusal counts as done.

use casebook_domain::actor::Actor;
use casebook_domain::any_event::{AnyEvent, DecodeError};
use casebook_domain::decision::{DecisionEvent, Verdict};
use casebook_domain::diagnosis::{DiagnosisCommand, DiagnosisEvent};
use casebook_domain::ids::{DecisionId, DiagnosisId, TenantId};
use casebook_domain::judgment::{DecisionSnapshot, JudgmentContent};
use casebook_domain::metadata::{EventMetadata, MetadataError, Source};
use casebook_domain::values::{JudgmentBody, JudgmentTitle, ValidationError};
use casebook_projections::error::ApplyError;
use casebook_projections::log::RecordedEvent;
use casebook_projections::subscription::Subscription;

use crate::service::{RequestContext, Service, ServiceError};

/// Why a reaction could not be carried out (the subscription retries or stops on it).
#[derive(Debug, thiserror::Error)]
pub enum ReactionError {
    /// The event could not be decoded.
    #[error("undecodable event at position {position}")]
    Decode {
        /// The event's global position.
        position: i64,
        /// Why.
        #[source]
        source: DecodeError,
    },
    /// The event's metadata could not be read.
    #[error("unreadable metadata at position {position}")]
    Metadata {
        /// The event's global position.
        position: i64,
        /// Why.
        #[source]
        source: MetadataError,
    },
    /// The event's payload is not JSON.
    #[error("payload at position {position} is not JSON")]
    Payload {
        /// The event's global position.
        position: i64,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The event's aggregate id is not the id its type requires.
    #[error("malformed aggregate id at position {position}")]
    AggregateId {
        /// The event's global position.
        position: i64,
    },
    /// Captured judgment could not be built from the diagnosis.
    #[error("cannot build judgment from diagnosis {0}")]
    Content(DiagnosisId, #[source] ValidationError),
    /// The resulting command failed for another reason than "already done".
    #[error("reaction command failed")]
    Command(#[from] ServiceError),
}

impl ReactionError {
    /// The subscription's verdict on a reaction to `event` that failed this way: worth
    /// retrying when the command's store was unavailable or raced, final otherwise.
    pub(crate) fn into_apply_error(self, event: &RecordedEvent) -> ApplyError {
        match self {
            ReactionError::Command(ServiceError::Unavailable(_) | ServiceError::Concurrency) => {
                ApplyError::Transient(Box::new(self))
            }
            other => ApplyError::permanent_from(
                format!(
                    "reaction to {} {}/{} failed",
                    event.event_type, event.aggregate_type, event.aggregate_id
                ),
                other,
            ),
        }
    }
}

/// The reactions, over the application service.
#[derive(Clone)]
pub struct Reactions {
    service: Service,
}

impl Reactions {
    /// Reactions issuing their commands through `service`.
    pub fn new(service: Service) -> Self {
        Self { service }
    }

    /// Reacts to one event (most events need nothing).
    pub async fn react(&self, event: &RecordedEvent) -> Result<(), ReactionError> {
        let position = event.global_position();
        let payload = serde_json::from_str(event.payload.get())
            .map_err(|source| ReactionError::Payload { position, source })?;
        let decoded = AnyEvent::decode(
            &event.aggregate_type,
            &event.event_type,
            &event.event_version,
            payload,
        )
        .map_err(|source| ReactionError::Decode { position, source })?;
        let cause = || caused_by(event);
        match decoded {
            AnyEvent::Decision(DecisionEvent::DecisionMade {
                decision_id,
                diagnosis_id,
                tenant_id,
                verdict,
                ..
            }) => {
                let ctx = cause()?;
                self.resolve(&ctx, decision_id, diagnosis_id, &verdict)
                    .await?;
                if verdict.outcome().captures_judgment() {
                    self.capture(&ctx, decision_id, diagnosis_id, tenant_id, &verdict)
                        .await?;
                }
            }
            AnyEvent::Diagnosis(DiagnosisEvent::DiagnosisProposed { .. }) => {
                let ctx = cause()?;
                let diagnosis_id: DiagnosisId = event
                    .aggregate_id
                    .parse()
                    .map_err(|_| ReactionError::AggregateId { position })?;
                done_if_repeated(
                    self.service
                        .auto_approve_if_allowed(&ctx, diagnosis_id)
                        .await,
                )?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn resolve(
        &self,
        ctx: &RequestContext,
        decision_id: DecisionId,
        diagnosis_id: DiagnosisId,
        verdict: &Verdict,
    ) -> Result<(), ReactionError> {
        let command = DiagnosisCommand::Resolve {
            actor: ctx.actor.clone(),
            decision_id,
            outcome: verdict.outcome(),
        };
        done_if_repeated(
            self.service
                .advance_diagnosis(ctx, diagnosis_id, command)
                .await,
        )
    }

    async fn capture(
        &self,
        ctx: &RequestContext,
        decision_id: DecisionId,
        diagnosis_id: DiagnosisId,
        tenant_id: TenantId,
        verdict: &Verdict,
    ) -> Result<(), ReactionError> {
        let (query, proposal) = self
            .service
            .diagnosis_texts(tenant_id, diagnosis_id)
            .await?;
        let body = match verdict {
            Verdict::Amended { text, .. } => text.as_str().to_owned(),
            _ => proposal,
        };
        let content = judgment_content(&query, &body)
            .map_err(|err| ReactionError::Content(diagnosis_id, err))?;
        let decision = DecisionSnapshot {
            decision_id,
            diagnosis_id,
            tenant_id,
            outcome: verdict.outcome(),
        };
        done_if_repeated(self.service.capture_judgment(ctx, decision, content).await)
    }
}

/// The system acting in `event`'s tenant, with `event` as the cause of its commands.
pub(crate) fn caused_by(event: &RecordedEvent) -> Result<RequestContext, ReactionError> {
    let metadata: EventMetadata = event
        .metadata::<serde_json::Value>()
        .map_err(MetadataError::from)
        .and_then(EventMetadata::from_json)
        .map_err(|source| ReactionError::Metadata {
            position: event.global_position(),
            source,
        })?;
    Ok(system_context(event, &metadata))
}

/// The system acting in the triggering event's tenant, correlated with its chain.
fn system_context(event: &RecordedEvent, cause: &EventMetadata) -> RequestContext {
    let actor = Actor::system(cause.tenant_id);
    let causing_event = format!(
        "{}/{}/{}",
        event.aggregate_type, event.aggregate_id, event.sequence
    );
    let metadata = EventMetadata::caused_by(&actor, cause, causing_event, Source::Reaction);
    RequestContext { actor, metadata }
}

/// A judgment's title is the question, shortened; its body the accepted answer.
fn judgment_content(query: &str, answer: &str) -> Result<JudgmentContent, ValidationError> {
    const TITLE_CHARS: usize = 120;
    let first_line = query
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or(query);
    let title: String = first_line.trim().chars().take(TITLE_CHARS).collect();
    Ok(JudgmentContent {
        title: JudgmentTitle::parse(title)?,
        body: JudgmentBody::parse(format!("Q: {}\n\nA: {}", query.trim(), answer.trim()))?,
        tags: Vec::new(),
    })
}

/// A reaction delivered twice finds its command refused as a repeat: that is success.
fn done_if_repeated<T>(result: Result<T, ServiceError>) -> Result<(), ReactionError> {
    match result {
        Ok(_) => Ok(()),
        Err(ServiceError::Conflict(reason)) => {
            tracing::info!(%reason, "reaction already applied");
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}

/// The reactions as a checkpointed subscription of the projections runner. Commands go
/// through the event store (their own transactions), so delivery is at least once and the
/// reactions' idempotency is what makes a redelivery harmless.
pub struct ReactionSubscription {
    reactions: Reactions,
}

impl ReactionSubscription {
    /// The subscription's name in `subscriptions`.
    pub const NAME: &'static str = "reactions";

    /// A subscription running `reactions`.
    pub fn new(reactions: Reactions) -> Self {
        Self { reactions }
    }
}

#[async_trait::async_trait]
impl Subscription for ReactionSubscription {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn apply(
        &mut self,
        _conn: &mut sqlx::PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ApplyError> {
        for event in events {
            self.reactions
                .react(event)
                .await
                .map_err(|err| err.into_apply_error(event))?;
        }
        Ok(())
    }
}
