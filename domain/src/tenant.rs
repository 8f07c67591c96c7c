//! The [`Tenant`] aggregate: a customer organisation, its plan and its AI settings.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::actor::{Actor, Owned, Role};
use crate::error::{ensure, AccessError, DomainError, ErrorKind};
use crate::finetune::{FinetuneExport, LastExport, LogPosition};
use crate::ids::{TenantId, UserId};
use crate::policy::{ModelPolicy, PlanTier};
use crate::values::{Confidence, Reason, TenantName};

/// A tenant's admins onboard it and choose its AI settings.
const ADMINS: &[Role] = &[Role::Admin];
/// Plans and suspensions are the platform's: what a tenant pays for and whether it may work
/// are not its own admin's to change.
const OPERATORS: &[Role] = &[Role::Operator];
/// The scheduled jobs record exports.
const SYSTEM: &[Role] = &[Role::System];

/// A command to the [`Tenant`] aggregate, whose id is the [`TenantId`].
#[derive(Debug, Clone, PartialEq)]
pub enum TenantCommand {
    /// Create the tenant. Its id is the actor's tenant id.
    Onboard {
        /// An admin of the new tenant.
        actor: Actor,
        /// Display name.
        name: TenantName,
        /// Initial plan.
        plan: PlanTier,
    },
    /// Move to another plan.
    ChangePlan {
        /// The operator.
        actor: Actor,
        /// The new plan.
        plan: PlanTier,
    },
    /// Set the confidence at or above which proposals are approved without review.
    SetAutoResolveThreshold {
        /// An admin.
        actor: Actor,
        /// `None` disables auto-resolve.
        threshold: Option<Confidence>,
    },
    /// Choose which models may see the tenant's data.
    SetModelPolicy {
        /// An admin.
        actor: Actor,
        /// The new policy.
        policy: ModelPolicy,
    },
    /// Stop the tenant: its other aggregates refuse commands until it is reactivated.
    Suspend {
        /// The operator.
        actor: Actor,
        /// Why.
        reason: Reason,
    },
    /// Lift a suspension.
    Reactivate {
        /// The operator.
        actor: Actor,
    },
    /// Record the API key that meters the tenant on its plan's usage plan at the gateway.
    RecordUsageKey {
        /// The system (the usage-key reaction).
        actor: Actor,
        /// The gateway's id of the tenant's own API key (never its value).
        api_key_id: String,
        /// The plan whose usage plan the key was put on: the tenant's current one.
        plan: PlanTier,
    },
    /// Record a fine-tune export written to S3; it must start where the last one ended.
    RecordFinetuneExport {
        /// The system (the scheduled export).
        actor: Actor,
        /// The file and the range of the log it covers.
        export: FinetuneExport,
    },
}

impl TenantCommand {
    /// Who issues the command (for the events' metadata).
    pub fn actor(&self) -> &Actor {
        match self {
            Self::Onboard { actor, .. }
            | Self::ChangePlan { actor, .. }
            | Self::SetAutoResolveThreshold { actor, .. }
            | Self::SetModelPolicy { actor, .. }
            | Self::Suspend { actor, .. }
            | Self::Reactivate { actor }
            | Self::RecordUsageKey { actor, .. }
            | Self::RecordFinetuneExport { actor, .. } => actor,
        }
    }
}

/// Something that happened to a [`Tenant`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum TenantEvent {
    /// The tenant was created.
    TenantOnboarded {
        /// The tenant.
        tenant_id: TenantId,
        /// Display name.
        name: TenantName,
        /// Initial plan.
        plan: PlanTier,
        /// The admin who onboarded it.
        onboarded_by: UserId,
    },
    /// The plan changed.
    PlanChanged {
        /// The new plan.
        plan: PlanTier,
    },
    /// The auto-resolve threshold was set or cleared.
    AutoResolveThresholdSet {
        /// `None`: auto-resolve disabled.
        threshold: Option<Confidence>,
    },
    /// The model policy was set.
    ModelPolicySet {
        /// The new policy.
        policy: ModelPolicy,
    },
    /// The tenant was suspended.
    TenantSuspended {
        /// Why.
        reason: Reason,
    },
    /// The suspension was lifted.
    TenantReactivated,
    /// The tenant's own API key was put on its plan's usage plan: the gateway throttles and
    /// counts the tenant's quota on it, apart from every other tenant of the plan.
    UsageKeyAssigned {
        /// The gateway's id of the key (its value stays with the gateway).
        api_key_id: String,
        /// The plan whose usage plan holds it.
        plan: PlanTier,
    },
    /// Approved and amended decisions were exported as fine-tune examples.
    FinetuneExported {
        /// The file and the range of the log it covers.
        export: FinetuneExport,
    },
}

impl DomainEvent for TenantEvent {
    fn event_type(&self) -> String {
        match self {
            Self::TenantOnboarded { .. } => "TenantOnboarded",
            Self::PlanChanged { .. } => "PlanChanged",
            Self::AutoResolveThresholdSet { .. } => "AutoResolveThresholdSet",
            Self::ModelPolicySet { .. } => "ModelPolicySet",
            Self::TenantSuspended { .. } => "TenantSuspended",
            Self::TenantReactivated => "TenantReactivated",
            Self::UsageKeyAssigned { .. } => "UsageKeyAssigned",
            Self::FinetuneExported { .. } => "FinetuneExported",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// Why a [`TenantCommand`] was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TenantError {
    /// Not found, or the actor's role may not run the command.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// `Onboard` on a tenant that exists.
    #[error("the tenant is already onboarded")]
    AlreadyOnboarded,
    /// `Suspend` on a suspended tenant.
    #[error("the tenant is already suspended")]
    AlreadySuspended,
    /// `Reactivate` on an active tenant.
    #[error("the tenant is not suspended")]
    NotSuspended,
    /// An export that does not start where the last recorded one ended (another run
    /// recorded one since this one read the tenant).
    #[error("the export starts after {after:?} but the last export ended at {last:?}")]
    ExportOutOfDate {
        /// Where the refused export starts.
        after: Option<LogPosition>,
        /// Where the last recorded export ended.
        last: Option<LogPosition>,
    },
    /// A second export on the same day would overwrite the first one's file.
    #[error("the tenant was already exported on {0}")]
    AlreadyExportedOn(chrono::NaiveDate),
    /// An export with no examples, or ending where it starts.
    #[error("an export must hold at least one decision after its start")]
    EmptyExport,
    /// A usage key for a plan the tenant is no longer on (the plan changed meanwhile; the
    /// reaction to that change assigns the key again).
    #[error("the usage key was assigned for {assigned:?}, but the tenant is on {current:?}")]
    UsageKeyPlanOutdated {
        /// The plan of the refused assignment.
        assigned: PlanTier,
        /// The tenant's plan.
        current: PlanTier,
    },
    /// The same key on the same plan is already recorded.
    #[error("the usage key is already assigned on this plan")]
    UsageKeyAlreadyAssigned,
}

impl DomainError for TenantError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Access(e) => e.kind(),
            Self::AlreadyOnboarded
            | Self::AlreadySuspended
            | Self::NotSuspended
            | Self::ExportOutOfDate { .. }
            | Self::AlreadyExportedOn(_)
            | Self::UsageKeyPlanOutdated { .. }
            | Self::UsageKeyAlreadyAssigned => ErrorKind::Conflict,
            Self::EmptyExport => ErrorKind::Invalid,
        }
    }
}

/// A customer organisation: plan, auto-resolve threshold, model policy, suspension.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    state: Option<TenantState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TenantState {
    tenant_id: TenantId,
    plan: PlanTier,
    auto_resolve_threshold: Option<Confidence>,
    model_policy: ModelPolicy,
    suspended: bool,
    /// Snapshots taken before exports existed lack it.
    #[serde(default)]
    last_finetune_export: Option<LastExport>,
    /// The gateway API key metering the tenant, and the plan it was last assigned on.
    /// Snapshots taken before usage keys existed lack it.
    #[serde(default)]
    usage_key: Option<(String, PlanTier)>,
}

impl Owned for TenantState {
    fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
}

impl Tenant {
    /// Onboarded and not suspended: the precondition the application passes as `tenant_active`.
    pub fn is_active(&self) -> bool {
        self.state.as_ref().is_some_and(|s| !s.suspended)
    }

    /// The id of the gateway API key that meters the tenant, once one was assigned.
    pub fn usage_key_id(&self) -> Option<&str> {
        self.state
            .as_ref()
            .and_then(|s| s.usage_key.as_ref())
            .map(|(id, _)| id.as_str())
    }

    /// Whether the tenant's usage key sits on its current plan's usage plan.
    pub fn usage_key_on_current_plan(&self) -> bool {
        self.state.as_ref().is_some_and(|s| {
            s.usage_key
                .as_ref()
                .is_some_and(|(_, plan)| *plan == s.plan)
        })
    }

    /// The plan, once onboarded.
    pub fn plan(&self) -> Option<PlanTier> {
        self.state.as_ref().map(|s| s.plan)
    }

    /// The model policy, once onboarded.
    pub fn model_policy(&self) -> Option<ModelPolicy> {
        self.state.as_ref().map(|s| s.model_policy)
    }

    /// The auto-resolve threshold; `None` when disabled (or not onboarded).
    pub fn auto_resolve_threshold(&self) -> Option<Confidence> {
        self.state.as_ref().and_then(|s| s.auto_resolve_threshold)
    }

    /// Where the last recorded fine-tune export ended; `None` before the first.
    pub fn last_finetune_export(&self) -> Option<&LastExport> {
        self.state
            .as_ref()
            .and_then(|s| s.last_finetune_export.as_ref())
    }

    fn decide(&self, command: TenantCommand) -> Result<TenantEvent, TenantError> {
        let state = self.state.as_ref();
        let event = match command {
            TenantCommand::Onboard { actor, name, plan } => {
                actor.authorize_creation(ADMINS, state, TenantError::AlreadyOnboarded)?;
                TenantEvent::TenantOnboarded {
                    tenant_id: actor.tenant_id,
                    name,
                    plan,
                    onboarded_by: actor.user_id,
                }
            }
            TenantCommand::ChangePlan { actor, plan } => {
                actor.authorize(OPERATORS, state)?;
                TenantEvent::PlanChanged { plan }
            }
            TenantCommand::SetAutoResolveThreshold { actor, threshold } => {
                actor.authorize(ADMINS, state)?;
                TenantEvent::AutoResolveThresholdSet { threshold }
            }
            TenantCommand::SetModelPolicy { actor, policy } => {
                actor.authorize(ADMINS, state)?;
                TenantEvent::ModelPolicySet { policy }
            }
            TenantCommand::Suspend { actor, reason } => {
                let state = actor.authorize(OPERATORS, state)?;
                ensure(!state.suspended, TenantError::AlreadySuspended)?;
                TenantEvent::TenantSuspended { reason }
            }
            TenantCommand::Reactivate { actor } => {
                let state = actor.authorize(OPERATORS, state)?;
                ensure(state.suspended, TenantError::NotSuspended)?;
                TenantEvent::TenantReactivated
            }
            TenantCommand::RecordUsageKey {
                actor,
                api_key_id,
                plan,
            } => {
                let state = actor.authorize(SYSTEM, state)?;
                ensure(
                    plan == state.plan,
                    TenantError::UsageKeyPlanOutdated {
                        assigned: plan,
                        current: state.plan,
                    },
                )?;
                ensure(
                    state.usage_key.as_ref() != Some(&(api_key_id.clone(), plan)),
                    TenantError::UsageKeyAlreadyAssigned,
                )?;
                TenantEvent::UsageKeyAssigned { api_key_id, plan }
            }
            TenantCommand::RecordFinetuneExport { actor, export } => {
                let state = actor.authorize(SYSTEM, state)?;
                let last = state.last_finetune_export.as_ref();
                if let Some(last) = last {
                    ensure(
                        last.exported_on != export.exported_on,
                        TenantError::AlreadyExportedOn(last.exported_on),
                    )?;
                }
                let last_end = last.map(|l| l.up_to);
                ensure(
                    export.after == last_end,
                    TenantError::ExportOutOfDate {
                        after: export.after,
                        last: last_end,
                    },
                )?;
                ensure(
                    export.examples > 0 && export.after.is_none_or(|a| a < export.up_to),
                    TenantError::EmptyExport,
                )?;
                TenantEvent::FinetuneExported { export }
            }
        };
        Ok(event)
    }
}

impl Aggregate for Tenant {
    const TYPE: &'static str = "Tenant";
    type Command = TenantCommand;
    type Event = TenantEvent;
    type Error = TenantError;
    type Services = ();

    async fn handle(
        &mut self,
        command: TenantCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), TenantError> {
        let event = self.decide(command)?;
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: TenantEvent) {
        match (event, self.state.as_mut()) {
            (
                TenantEvent::TenantOnboarded {
                    tenant_id, plan, ..
                },
                _,
            ) => {
                self.state = Some(TenantState {
                    tenant_id,
                    plan,
                    auto_resolve_threshold: None,
                    model_policy: ModelPolicy::default(),
                    suspended: false,
                    last_finetune_export: None,
                    usage_key: None,
                });
            }
            (TenantEvent::PlanChanged { plan }, Some(state)) => state.plan = plan,
            (TenantEvent::AutoResolveThresholdSet { threshold }, Some(state)) => {
                state.auto_resolve_threshold = threshold;
            }
            (TenantEvent::ModelPolicySet { policy }, Some(state)) => state.model_policy = policy,
            (TenantEvent::TenantSuspended { .. }, Some(state)) => state.suspended = true,
            (TenantEvent::TenantReactivated, Some(state)) => state.suspended = false,
            (TenantEvent::UsageKeyAssigned { api_key_id, plan }, Some(state)) => {
                state.usage_key = Some((api_key_id, plan));
            }
            (TenantEvent::FinetuneExported { export }, Some(state)) => {
                state.last_finetune_export = Some(LastExport {
                    up_to: export.up_to,
                    exported_on: export.exported_on,
                });
            }
            // `decide` emits nothing else before onboarding, so a sound stream never gets here.
            (_, None) => {}
        }
    }
}
