//! The [`Judgment`] aggregate: captured judgment, the precedents later diagnoses retrieve.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::actor::{Actor, Owned, Role};
use crate::decision::Outcome;
use crate::error::{ensure, AccessError, DomainError, ErrorKind};
use crate::ids::{DecisionId, DiagnosisId, JudgmentId, TenantId, UserId};
use crate::personal::DataSubject;
use crate::values::{JudgmentBody, JudgmentTitle, Reason, Tag};

/// Consultants author, revise and retire judgment.
const CONSULTANTS: &[Role] = &[Role::Consultant];
/// The platform captures judgment from decisions.
const SYSTEM: &[Role] = &[Role::System];

/// What a judgment says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JudgmentContent {
    /// Title.
    pub title: JudgmentTitle,
    /// Body.
    pub body: JudgmentBody,
    /// Labels.
    pub tags: Vec<Tag>,
}

/// The facts about a decision a capture needs, read by the application (from the
/// `DecisionMade` event) before dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionSnapshot {
    /// The decision.
    pub decision_id: DecisionId,
    /// The diagnosis it decided.
    pub diagnosis_id: DiagnosisId,
    /// Their tenant.
    pub tenant_id: TenantId,
    /// What was decided.
    pub outcome: Outcome,
    /// The customer whose query was decided, once known.
    pub customer: Option<UserId>,
}

/// Where a judgment came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JudgmentOrigin {
    /// Captured from an approved or amended decision.
    Decision {
        /// The decision.
        decision_id: DecisionId,
        /// The diagnosis it decided.
        diagnosis_id: DiagnosisId,
        /// The customer whose query it decided: whose key seals the content (decision
        /// 0027). Judgments captured before it was carried lack it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer: Option<UserId>,
    },
    /// Written directly by a consultant.
    Authored,
}

/// A command to the [`Judgment`] aggregate, whose id is the [`JudgmentId`].
#[derive(Debug, Clone, PartialEq)]
pub enum JudgmentCommand {
    /// Capture judgment from a decision, into the stream [`JudgmentId::for_decision`].
    CaptureFromDecision {
        /// The system.
        actor: Actor,
        /// The decision; must be approved or amended.
        decision: DecisionSnapshot,
        /// What to capture.
        content: JudgmentContent,
    },
    /// Write a judgment directly.
    Author {
        /// A consultant; the judgment belongs to their tenant.
        actor: Actor,
        /// The new judgment's id, chosen by the caller.
        judgment_id: JudgmentId,
        /// What it says.
        content: JudgmentContent,
    },
    /// Replace a judgment's content.
    Revise {
        /// A consultant of the judgment's tenant.
        actor: Actor,
        /// The new content.
        content: JudgmentContent,
    },
    /// Withdraw a judgment from retrieval for good.
    Retire {
        /// A consultant of the judgment's tenant.
        actor: Actor,
        /// Why.
        reason: Reason,
    },
}

impl JudgmentCommand {
    /// Who issues the command (for the events' metadata).
    pub fn actor(&self) -> &Actor {
        match self {
            Self::CaptureFromDecision { actor, .. }
            | Self::Author { actor, .. }
            | Self::Revise { actor, .. }
            | Self::Retire { actor, .. } => actor,
        }
    }
}

/// Something that happened to a [`Judgment`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum JudgmentEvent {
    /// A judgment was captured from a decision or authored.
    JudgmentCaptured {
        /// The judgment.
        judgment_id: JudgmentId,
        /// Its tenant.
        tenant_id: TenantId,
        /// Where it came from.
        origin: JudgmentOrigin,
        /// What it says.
        content: JudgmentContent,
        /// The system or the authoring consultant.
        captured_by: UserId,
    },
    /// The content was replaced.
    JudgmentRevised {
        /// The new content.
        content: JudgmentContent,
        /// The consultant.
        revised_by: UserId,
    },
    /// The judgment was withdrawn.
    JudgmentRetired {
        /// Why.
        reason: Reason,
        /// The consultant.
        retired_by: UserId,
    },
}

impl DomainEvent for JudgmentEvent {
    fn event_type(&self) -> String {
        match self {
            Self::JudgmentCaptured { .. } => "JudgmentCaptured",
            Self::JudgmentRevised { .. } => "JudgmentRevised",
            Self::JudgmentRetired { .. } => "JudgmentRetired",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// Why a [`JudgmentCommand`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JudgmentError {
    /// Not found (including another tenant's decision), or the actor's role may not run the command.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The judgment exists (for a capture: this decision was already captured).
    #[error("the judgment already exists")]
    AlreadyExists,
    /// The decision's outcome doesn't become judgment.
    #[error("a {outcome:?} decision is not captured as judgment")]
    NotCapturable {
        /// The decision's outcome.
        outcome: Outcome,
    },
    /// The judgment is retired.
    #[error("the judgment is retired")]
    Retired,
}

impl DomainError for JudgmentError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Access(e) => e.kind(),
            Self::NotCapturable { .. } => ErrorKind::Invalid,
            Self::AlreadyExists | Self::Retired => ErrorKind::Conflict,
        }
    }
}

/// A captured judgment: active until retired.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgment {
    state: Option<JudgmentState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct JudgmentState {
    tenant_id: TenantId,
    retired: bool,
    #[serde(default)]
    customer: Option<UserId>,
}

impl Owned for JudgmentState {
    fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
}

impl Judgment {
    fn decide(&self, command: JudgmentCommand) -> Result<JudgmentEvent, JudgmentError> {
        let state = self.state.as_ref();
        let event = match command {
            JudgmentCommand::CaptureFromDecision {
                actor,
                decision,
                content,
            } => {
                actor.authorize_creation(SYSTEM, state, JudgmentError::AlreadyExists)?;
                actor.require_tenant(decision.tenant_id)?;
                ensure(
                    decision.outcome.captures_judgment(),
                    JudgmentError::NotCapturable {
                        outcome: decision.outcome,
                    },
                )?;
                JudgmentEvent::JudgmentCaptured {
                    judgment_id: JudgmentId::for_decision(decision.decision_id),
                    tenant_id: decision.tenant_id,
                    origin: JudgmentOrigin::Decision {
                        decision_id: decision.decision_id,
                        diagnosis_id: decision.diagnosis_id,
                        customer: decision.customer,
                    },
                    content,
                    captured_by: actor.user_id,
                }
            }
            JudgmentCommand::Author {
                actor,
                judgment_id,
                content,
            } => {
                actor.authorize_creation(CONSULTANTS, state, JudgmentError::AlreadyExists)?;
                JudgmentEvent::JudgmentCaptured {
                    judgment_id,
                    tenant_id: actor.tenant_id,
                    origin: JudgmentOrigin::Authored,
                    content,
                    captured_by: actor.user_id,
                }
            }
            JudgmentCommand::Revise { actor, content } => {
                let state = actor.authorize(CONSULTANTS, state)?;
                ensure(!state.retired, JudgmentError::Retired)?;
                JudgmentEvent::JudgmentRevised {
                    content,
                    revised_by: actor.user_id,
                }
            }
            JudgmentCommand::Retire { actor, reason } => {
                let state = actor.authorize(CONSULTANTS, state)?;
                ensure(!state.retired, JudgmentError::Retired)?;
                JudgmentEvent::JudgmentRetired {
                    reason,
                    retired_by: actor.user_id,
                }
            }
        };
        Ok(event)
    }
}

impl JudgmentOrigin {
    /// The customer whose matter the judgment was captured from, if known.
    pub fn customer(&self) -> Option<&UserId> {
        match self {
            Self::Decision { customer, .. } => customer.as_ref(),
            Self::Authored => None,
        }
    }
}

impl DataSubject for Judgment {
    fn data_subject(&self) -> Option<UserId> {
        self.state.as_ref().and_then(|s| s.customer.clone())
    }
}

impl Aggregate for Judgment {
    const TYPE: &'static str = "Judgment";
    type Command = JudgmentCommand;
    type Event = JudgmentEvent;
    type Error = JudgmentError;
    type Services = ();

    async fn handle(
        &mut self,
        command: JudgmentCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), JudgmentError> {
        let event = self.decide(command)?;
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: JudgmentEvent) {
        match (event, self.state.as_mut()) {
            (
                JudgmentEvent::JudgmentCaptured {
                    tenant_id, origin, ..
                },
                _,
            ) => {
                self.state = Some(JudgmentState {
                    tenant_id,
                    retired: false,
                    customer: origin.customer().cloned(),
                });
            }
            (JudgmentEvent::JudgmentRetired { .. }, Some(state)) => state.retired = true,
            // Revisions change no state the rules need; nothing but a capture comes first.
            (JudgmentEvent::JudgmentRevised { .. }, _) | (_, None) => {}
        }
    }
}
