//! What follows an event: process managers that turn events into further commands or calls.
//!
//! - [`Reactions`]: `DecisionMade` → resolve the diagnosis and, if approved or amended,
//!   capture it as judgment; `DiagnosisProposed` → auto-approve when the tenant's threshold
//!   allows it.
//! - [`People`]: a member invited, changed, disabled or enabled → their account made what the
//!   tenant says now, and its subject recorded on the tenant.
//! - [`UsageKeyAssignment`]: a tenant onboarded or on a new plan → its own gateway key put on
//!   that plan and recorded.
//! - [`ErasurePurge`](crate::erasure::ErasurePurge): a customer erased → their uploads
//!   deleted and the fine-tune exports rewritten without them.
//!
//! Each issues its commands as the system, with the triggering event as causation and the
//! chain's correlation id. Delivery is at least once, so every reaction is idempotent: the
//! target aggregates refuse a repeat (already resolved, decided, captured, recorded), and
//! such a refusal counts as done; calls outside set what the tenant says *now*, so a replayed
//! old event never undoes a later change.

use std::sync::Arc;

use async_trait::async_trait;
use casebook_domain::actor::Actor;
use casebook_domain::any_event::AnyEvent;
use casebook_domain::decision::{DecisionEvent, Verdict};
use casebook_domain::diagnosis::{DiagnosisCommand, DiagnosisEvent};
use casebook_domain::ids::{DecisionId, DiagnosisId, TenantId, UserId};
use casebook_domain::judgment::{DecisionSnapshot, JudgmentContent};
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::tenant::{TenantCommand, TenantEvent};
use casebook_domain::values::{JudgmentBody, JudgmentTitle, ValidationError};

use crate::jobs::JobError;
use crate::ports::{BoxError, IdentityError, IdentityProvider, Mailbox, UsageKeys};
use crate::service::{RequestContext, Service, ServiceError};

/// An event as the log delivers it to a reaction.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// Its aggregate's type.
    pub aggregate_type: String,
    /// Its aggregate's id.
    pub aggregate_id: String,
    /// Its type, as stored.
    pub event_type: String,
    /// Its position in the aggregate's stream.
    pub sequence: i64,
    /// Its position in the global log.
    pub global_position: i64,
    /// When it was committed.
    pub recorded_at: chrono::DateTime<chrono::Utc>,
    /// The event.
    pub event: AnyEvent,
    /// Its metadata (the tenant, the chain it belongs to).
    pub metadata: EventMetadata,
}

impl Delivered {
    /// The system acting in this event's tenant, with this event as the cause of its
    /// commands.
    pub(crate) fn system_context(&self) -> RequestContext {
        let actor = Actor::system(self.metadata.tenant_id);
        let causing_event = format!(
            "{}/{}/{}",
            self.aggregate_type, self.aggregate_id, self.sequence
        );
        let metadata =
            EventMetadata::caused_by(&actor, &self.metadata, causing_event, Source::Reaction);
        RequestContext { actor, metadata }
    }

    /// The aggregate id, parsed as the id its type requires.
    pub(crate) fn id<T: std::str::FromStr>(&self) -> Result<T, ReactionError> {
        self.aggregate_id
            .parse()
            .map_err(|_| ReactionError::AggregateId {
                position: self.global_position,
            })
    }
}

/// Why a reaction could not be carried out (the subscription retries or stops on it).
#[derive(Debug, thiserror::Error)]
pub enum ReactionError {
    /// The event's aggregate id is not the id its type requires.
    #[error("malformed aggregate id at position {position}")]
    AggregateId {
        /// The event's global position.
        position: i64,
    },
    /// Captured judgment could not be built from the diagnosis.
    #[error("cannot build judgment from diagnosis {0}")]
    Content(DiagnosisId, #[source] ValidationError),
    /// The event names a member the tenant doesn't know.
    #[error("{event_type} names {email}, whom tenant {tenant_id} doesn't know")]
    UnknownMember {
        /// The event's type.
        event_type: &'static str,
        /// The address.
        email: String,
        /// The tenant.
        tenant_id: TenantId,
    },
    /// The identity provider handed back a subject that is no user id.
    #[error("the provider's subject for {email}: {reason}")]
    Subject {
        /// The address.
        email: String,
        /// Why.
        reason: String,
    },
    /// A service outside (the identity provider, the gateway) failed; a retry may succeed.
    #[error("{0} unavailable")]
    Outside(&'static str, #[source] BoxError),
    /// The resulting command failed for another reason than "already done".
    #[error("reaction command failed")]
    Command(#[from] ServiceError),
    /// The fine-tune exports could not be written again.
    #[error("rewriting the fine-tune exports failed")]
    Exports(#[from] JobError),
}

impl ReactionError {
    /// Whether delivering the event again may succeed: the store or a service outside was
    /// unavailable or raced. Anything else will fail the same way every time.
    pub fn is_retryable(&self) -> bool {
        match self {
            ReactionError::Outside(..)
            | ReactionError::Command(ServiceError::Unavailable(_) | ServiceError::Concurrency) => {
                true
            }
            ReactionError::Exports(err) => err.is_retryable(),
            _ => false,
        }
    }
}

/// A reaction the log feeds: it says which events it wants, so the others are never decoded
/// for it.
#[async_trait]
pub trait Reaction: Send + Sync {
    /// Its name: the log checkpoints each reaction on its own.
    fn name(&self) -> &'static str;

    /// Whether it reacts to `event_type` events of `aggregate_type`.
    fn wants(&self, aggregate_type: &str, event_type: &str) -> bool;

    /// Reacts to one event it wants.
    async fn react(&self, event: &Delivered) -> Result<(), ReactionError>;
}

/// The decision and diagnosis reactions, over the application service.
#[derive(Clone)]
pub struct Reactions {
    service: Service,
}

impl Reactions {
    /// Reactions issuing their commands through `service`.
    pub fn new(service: Service) -> Self {
        Self { service }
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
        decision: DecisionSnapshot,
        verdict: &Verdict,
    ) -> Result<(), ReactionError> {
        let (query, proposal) = self
            .service
            .diagnosis_texts(decision.tenant_id, decision.diagnosis_id)
            .await?;
        let body = match verdict {
            Verdict::Amended { text, .. } => text.as_str().to_owned(),
            _ => proposal,
        };
        let content = judgment_content(&query, &body)
            .map_err(|err| ReactionError::Content(decision.diagnosis_id, err))?;
        done_if_repeated(self.service.capture_judgment(ctx, decision, content).await)
    }
}

#[async_trait]
impl Reaction for Reactions {
    fn name(&self) -> &'static str {
        "reactions"
    }

    fn wants(&self, _aggregate_type: &str, event_type: &str) -> bool {
        matches!(event_type, "DecisionMade" | "DiagnosisProposed")
    }

    async fn react(&self, delivered: &Delivered) -> Result<(), ReactionError> {
        match &delivered.event {
            AnyEvent::Decision(DecisionEvent::DecisionMade {
                decision_id,
                diagnosis_id,
                tenant_id,
                verdict,
                customer,
                ..
            }) => {
                let ctx = delivered.system_context();
                self.resolve(&ctx, *decision_id, *diagnosis_id, verdict)
                    .await?;
                if verdict.outcome().captures_judgment() {
                    let decision = DecisionSnapshot {
                        decision_id: *decision_id,
                        diagnosis_id: *diagnosis_id,
                        tenant_id: *tenant_id,
                        outcome: verdict.outcome(),
                        customer: customer.clone(),
                    };
                    self.capture(&ctx, decision, verdict).await?;
                }
            }
            AnyEvent::Diagnosis(DiagnosisEvent::DiagnosisProposed { .. }) => {
                let ctx = delivered.system_context();
                let diagnosis_id: DiagnosisId = delivered.id()?;
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
}

/// A judgment's title is the question, shortened; its body the question and the accepted
/// answer. A query and an answer may each be as long as a body, so when both don't fit the
/// question is cut (it is the title already): the answer is the judgment.
fn judgment_content(query: &str, answer: &str) -> Result<JudgmentContent, ValidationError> {
    const TITLE_CHARS: usize = 120;
    const CUT: char = '…';
    let (query, answer) = (query.trim(), answer.trim());
    let first_line = query
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or(query);
    let title: String = first_line.trim().chars().take(TITLE_CHARS).collect();
    let answer_part = format!("\n\nA: {answer}");
    let room_for_query = JudgmentBody::MAX_CHARS
        .saturating_sub(answer_part.chars().count())
        .saturating_sub("Q: ".len() + 1);
    let query_part = if query.chars().count() <= room_for_query + 1 {
        query.to_owned()
    } else {
        let kept: String = query.chars().take(room_for_query).collect();
        format!("{kept}{CUT}")
    };
    let body = if room_for_query == 0 {
        answer.chars().take(JudgmentBody::MAX_CHARS).collect()
    } else {
        format!("Q: {query_part}{answer_part}")
    };
    Ok(JudgmentContent {
        title: JudgmentTitle::parse(title)?,
        body: JudgmentBody::parse(body)?,
        tags: Vec::new(),
    })
}

/// A command delivered twice is refused as a repeat: that is success. (For a tenant record,
/// also when the tenant moved on meanwhile: the reaction to that change records it again.)
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

/// A tenant's people in the identity provider: every member's account made what the tenant's
/// events say — it exists, holds their role's group and only that one, and is enabled or
/// disabled.
///
/// The order is **event first, account after**: the admin's command appends `UserInvited`
/// (`UserRoleChanged`, `UserDisabled`, …) and answers; this reaction then calls the provider
/// and, for a new account, records its subject (`UserProvisioned`). A provider outage fails
/// nothing the admin did, and a crash between the event and the call loses nothing: the event
/// is delivered again. The reverse order could leave an account whose event never landed — a
/// user who can sign in to a tenant that never invited them.
pub struct People {
    service: Service,
    identity: Arc<dyn IdentityProvider>,
    mailbox: Arc<dyn Mailbox>,
}

impl People {
    /// Accounts kept through `identity`, subjects recorded through `service`, invitations the
    /// provider hands back put in `mailbox`.
    pub fn new(
        service: Service,
        identity: Arc<dyn IdentityProvider>,
        mailbox: Arc<dyn Mailbox>,
    ) -> Self {
        Self {
            service,
            identity,
            mailbox,
        }
    }
}

#[async_trait]
impl Reaction for People {
    fn name(&self) -> &'static str {
        "people"
    }

    fn wants(&self, aggregate_type: &str, event_type: &str) -> bool {
        aggregate_type == "Tenant"
            && matches!(
                event_type,
                "TenantSignedUp"
                    | "UserInvited"
                    | "UserRoleChanged"
                    | "UserDisabled"
                    | "UserEnabled"
            )
    }

    async fn react(&self, delivered: &Delivered) -> Result<(), ReactionError> {
        let AnyEvent::Tenant(tenant_event) = &delivered.event else {
            return Ok(());
        };
        let (event_type, email) = match tenant_event {
            TenantEvent::TenantSignedUp { admin, .. } => ("TenantSignedUp", &admin.email),
            TenantEvent::UserInvited { invitee, .. } => ("UserInvited", &invitee.email),
            TenantEvent::UserRoleChanged { email, .. } => ("UserRoleChanged", email),
            TenantEvent::UserDisabled { email } => ("UserDisabled", email),
            TenantEvent::UserEnabled { email } => ("UserEnabled", email),
            _ => return Ok(()),
        };
        let tenant_id: TenantId = delivered.id()?;
        let tenant = self.service.tenant_state(tenant_id).await?;
        let Some(member) = tenant.member(email) else {
            return Err(ReactionError::UnknownMember {
                event_type,
                email: email.to_string(),
                tenant_id,
            });
        };
        let provisioned = match self.identity.converge(tenant_id, email, member).await {
            Ok(provisioned) => provisioned,
            Err(IdentityError::Unavailable(err)) => {
                return Err(ReactionError::Outside("the identity provider", err))
            }
            // Not Casebook's account to change: holding up every tenant's people for it would
            // be worse. The claim on each address makes this an operator's doing.
            Err(err @ IdentityError::OtherTenant { .. }) => {
                tracing::error!(error = %err, %tenant_id, "member not provisioned");
                return Ok(());
            }
        };
        if let Some(password) = &provisioned.temporary_password {
            self.mailbox.invitation(tenant_id, email, password);
        }
        if member.user_id.is_some() {
            return Ok(());
        }
        let user_id = UserId::parse(provisioned.sub).map_err(|err| ReactionError::Subject {
            email: email.to_string(),
            reason: err.to_string(),
        })?;
        let ctx = delivered.system_context();
        let record = TenantCommand::RecordUserProvisioned {
            actor: ctx.actor.clone(),
            email: email.clone(),
            user_id,
        };
        done_if_repeated(self.service.administer_tenant(&ctx, record).await)
    }
}

/// Each tenant's own API key at the gateway: when a tenant is onboarded or changes plan, its
/// key (created on first use) is put on the plan's usage plan and recorded on the tenant
/// (`UsageKeyAssigned`), so throttles and quotas are per tenant, not shared by a plan.
pub struct UsageKeyAssignment {
    service: Service,
    keys: Arc<dyn UsageKeys>,
}

impl UsageKeyAssignment {
    /// Keys managed through `keys`, recorded through `service`.
    pub fn new(service: Service, keys: Arc<dyn UsageKeys>) -> Self {
        Self { service, keys }
    }
}

#[async_trait]
impl Reaction for UsageKeyAssignment {
    fn name(&self) -> &'static str {
        "usage_keys"
    }

    fn wants(&self, aggregate_type: &str, event_type: &str) -> bool {
        aggregate_type == "Tenant"
            && matches!(
                event_type,
                "TenantOnboarded" | "TenantSignedUp" | "PlanChanged"
            )
    }

    async fn react(&self, delivered: &Delivered) -> Result<(), ReactionError> {
        let tenant_id: TenantId = delivered.id()?;
        let tenant = self.service.tenant_state(tenant_id).await?;
        // The tenant as it is now, not as the event left it: replaying an old plan change
        // must not move the key back to an old plan.
        let Some(plan) = tenant
            .plan()
            .filter(|_| !tenant.usage_key_on_current_plan())
        else {
            return Ok(());
        };
        let api_key_id = self
            .keys
            .put_on_plan(tenant_id, plan)
            .await
            .map_err(|err| ReactionError::Outside("the gateway", err))?;
        let ctx = delivered.system_context();
        let record = TenantCommand::RecordUsageKey {
            actor: ctx.actor.clone(),
            api_key_id,
            plan,
        };
        done_if_repeated(self.service.administer_tenant(&ctx, record).await)
    }
}
