//! The [`ConsultantDecision`] aggregate: the one decision on a proposed diagnosis.
//!
//! Its id is [`DecisionId::for_diagnosis`], so a second decision on the same diagnosis lands
//! on the same stream: the aggregate refuses it, and the store's optimistic concurrency
//! refuses a concurrent one.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::actor::{Actor, Owned, Role};
use crate::diagnosis::DiagnosisSnapshot;
use crate::error::{AccessError, DomainError, ErrorKind};
use crate::ids::{DecisionId, DiagnosisId, TenantId, UserId};
use crate::personal::DataSubject;
use crate::policy::{check_auto_approval, AutoApproveRefusal};
use crate::values::{Confidence, DiagnosisText, Reason};

/// Consultants decide by hand.
const CONSULTANTS: &[Role] = &[Role::Consultant];
/// The platform auto-approves.
const SYSTEM: &[Role] = &[Role::System];

/// What was decided, without the details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A consultant approved the proposal as is.
    Approved,
    /// A consultant corrected the proposal.
    Amended,
    /// A consultant rejected the proposal.
    Rejected,
    /// The tenant's threshold approved the proposal without review.
    AutoApproved,
}

impl Outcome {
    /// Whether the decision becomes captured judgment. Only reviewed, accepted answers do:
    /// an auto-approved one would teach the model its own unreviewed output.
    pub fn captures_judgment(self) -> bool {
        matches!(self, Self::Approved | Self::Amended)
    }
}

/// What was decided, with what the decision needs to be audited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Verdict {
    /// Approved as proposed.
    Approved,
    /// Approved with corrections.
    Amended {
        /// The corrected diagnosis.
        text: DiagnosisText,
        /// Why, if the consultant said.
        reason: Option<Reason>,
    },
    /// Rejected.
    Rejected {
        /// Why.
        reason: Reason,
    },
    /// Approved without review by the tenant's auto-resolve threshold.
    AutoApproved {
        /// The threshold in force.
        threshold: Confidence,
        /// The proposal's confidence, at or above it.
        confidence: Confidence,
    },
}

impl Verdict {
    /// The outcome, without the details.
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::Approved => Outcome::Approved,
            Self::Amended { .. } => Outcome::Amended,
            Self::Rejected { .. } => Outcome::Rejected,
            Self::AutoApproved { .. } => Outcome::AutoApproved,
        }
    }
}

/// A command to the [`ConsultantDecision`] aggregate, whose id is
/// [`DecisionId::for_diagnosis`] of the snapshot's diagnosis.
///
/// Each carries the [`DiagnosisSnapshot`] the application read before dispatch.
#[derive(Debug, Clone, PartialEq)]
pub enum DecisionCommand {
    /// Accept the proposal as is.
    Approve {
        /// A consultant of the diagnosis' tenant.
        actor: Actor,
        /// The diagnosis.
        diagnosis: DiagnosisSnapshot,
    },
    /// Accept the proposal with corrections.
    Amend {
        /// A consultant of the diagnosis' tenant.
        actor: Actor,
        /// The diagnosis.
        diagnosis: DiagnosisSnapshot,
        /// The corrected text.
        amended_text: DiagnosisText,
        /// Why, optionally.
        reason: Option<Reason>,
    },
    /// Refuse the proposal.
    Reject {
        /// A consultant of the diagnosis' tenant.
        actor: Actor,
        /// The diagnosis.
        diagnosis: DiagnosisSnapshot,
        /// Why.
        reason: Reason,
    },
    /// Accept the proposal without review, if the tenant's policy allows it.
    AutoApprove {
        /// The system.
        actor: Actor,
        /// The diagnosis.
        diagnosis: DiagnosisSnapshot,
        /// The tenant's auto-resolve threshold, as read by the application.
        threshold: Option<Confidence>,
        /// Whether the tenant is active, as read by the application.
        tenant_active: bool,
    },
}

impl DecisionCommand {
    /// Who issues the command (for the events' metadata).
    pub fn actor(&self) -> &Actor {
        match self {
            Self::Approve { actor, .. }
            | Self::Amend { actor, .. }
            | Self::Reject { actor, .. }
            | Self::AutoApprove { actor, .. } => actor,
        }
    }
}

/// Something that happened to a [`ConsultantDecision`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum DecisionEvent {
    /// The diagnosis was decided.
    DecisionMade {
        /// The decision.
        decision_id: DecisionId,
        /// The diagnosis it decides.
        diagnosis_id: DiagnosisId,
        /// Their tenant.
        tenant_id: TenantId,
        /// What was decided.
        verdict: Verdict,
        /// The consultant, or the system for auto-approval.
        decided_by: UserId,
        /// The customer whose query was decided: whose key seals the verdict's texts
        /// (decision 0027). Decisions recorded before it was carried lack it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer: Option<UserId>,
    },
}

impl DomainEvent for DecisionEvent {
    fn event_type(&self) -> String {
        match self {
            Self::DecisionMade { .. } => "DecisionMade",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// Why a [`DecisionCommand`] was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecisionError {
    /// Not found (including another tenant's diagnosis), or the actor's role may not decide.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The diagnosis has no proposal awaiting a decision.
    #[error("the diagnosis has no proposal to decide on")]
    NotProposed,
    /// The diagnosis was already decided.
    #[error("the diagnosis was already decided")]
    AlreadyDecided,
    /// The tenant's policy doesn't allow approval without review.
    #[error(transparent)]
    AutoApproveRefused(#[from] AutoApproveRefusal),
}

impl DomainError for DecisionError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Access(e) => e.kind(),
            Self::NotProposed | Self::AlreadyDecided | Self::AutoApproveRefused(_) => {
                ErrorKind::Conflict
            }
        }
    }
}

/// The decision on one diagnosis; exists once decided.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsultantDecision {
    state: Option<DecisionState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DecisionState {
    tenant_id: TenantId,
    outcome: Outcome,
    #[serde(default)]
    customer: Option<UserId>,
}

impl Owned for DecisionState {
    fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
}

/// What a command asks for, before the checks that need the proposal's confidence.
enum Request {
    /// A consultant's verdict.
    Manual(Verdict),
    /// Approval by the tenant's threshold.
    Auto {
        threshold: Option<Confidence>,
        tenant_active: bool,
    },
}

impl ConsultantDecision {
    /// The outcome, once decided.
    pub fn outcome(&self) -> Option<Outcome> {
        self.state.as_ref().map(|s| s.outcome)
    }

    fn decide(&self, command: DecisionCommand) -> Result<DecisionEvent, DecisionError> {
        let (actor, diagnosis, request) = match command {
            DecisionCommand::Approve { actor, diagnosis } => {
                (actor, diagnosis, Request::Manual(Verdict::Approved))
            }
            DecisionCommand::Amend {
                actor,
                diagnosis,
                amended_text,
                reason,
            } => (
                actor,
                diagnosis,
                Request::Manual(Verdict::Amended {
                    text: amended_text,
                    reason,
                }),
            ),
            DecisionCommand::Reject {
                actor,
                diagnosis,
                reason,
            } => (
                actor,
                diagnosis,
                Request::Manual(Verdict::Rejected { reason }),
            ),
            DecisionCommand::AutoApprove {
                actor,
                diagnosis,
                threshold,
                tenant_active,
            } => (
                actor,
                diagnosis,
                Request::Auto {
                    threshold,
                    tenant_active,
                },
            ),
        };
        let roles = match request {
            Request::Manual(_) => CONSULTANTS,
            Request::Auto { .. } => SYSTEM,
        };
        actor.authorize_creation(roles, self.state.as_ref(), DecisionError::AlreadyDecided)?;
        actor.require_tenant(diagnosis.tenant_id)?;
        let confidence = diagnosis
            .proposed_confidence
            .ok_or(DecisionError::NotProposed)?;
        let verdict = match request {
            Request::Manual(verdict) => verdict,
            Request::Auto {
                threshold,
                tenant_active,
            } => Verdict::AutoApproved {
                threshold: check_auto_approval(threshold, confidence, tenant_active)?,
                confidence,
            },
        };
        Ok(DecisionEvent::DecisionMade {
            decision_id: DecisionId::for_diagnosis(diagnosis.diagnosis_id),
            diagnosis_id: diagnosis.diagnosis_id,
            tenant_id: diagnosis.tenant_id,
            verdict,
            decided_by: actor.user_id,
            customer: diagnosis.customer,
        })
    }
}

impl DataSubject for ConsultantDecision {
    fn data_subject(&self) -> Option<UserId> {
        self.state.as_ref().and_then(|s| s.customer.clone())
    }
}

impl Aggregate for ConsultantDecision {
    const TYPE: &'static str = "ConsultantDecision";
    type Command = DecisionCommand;
    type Event = DecisionEvent;
    type Error = DecisionError;
    type Services = ();

    async fn handle(
        &mut self,
        command: DecisionCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DecisionError> {
        let event = self.decide(command)?;
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: DecisionEvent) {
        match event {
            DecisionEvent::DecisionMade {
                tenant_id,
                verdict,
                customer,
                ..
            } => {
                self.state = Some(DecisionState {
                    tenant_id,
                    outcome: verdict.outcome(),
                    customer,
                });
            }
        }
    }
}
