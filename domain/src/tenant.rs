//! The [`Tenant`] aggregate: a customer organisation, its plan and its AI settings.

use std::collections::{BTreeMap, BTreeSet};

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::actor::{Actor, Owned, Role};
use crate::budget::{BudgetMonth, BudgetThreshold, BudgetUse};
use crate::error::{ensure, AccessError, DomainError, ErrorKind};
use crate::finetune::{FinetuneExport, LastExport, LogPosition};
use crate::ids::{TenantId, UserId};
use crate::own_model::{
    ModelArtifact, ModelEvaluation, ModelId, ModelStatus, PromotedModel, METRIC,
};
use crate::personal::DataSubject;
use crate::policy::{ModelPolicy, ModelTier, PlanTier};
use crate::values::{Confidence, Email, PersonName, Reason, TenantName};

/// A tenant's admins onboard it and choose its AI settings.
const ADMINS: &[Role] = &[Role::Admin];
/// Plans and suspensions are the platform's: what a tenant pays for and whether it may work
/// are not its own admin's to change.
const OPERATORS: &[Role] = &[Role::Operator];
/// The platform: the scheduled jobs record exports, the public sign-up creates tenants, the
/// people subscription records what it did in the identity provider.
const SYSTEM: &[Role] = &[Role::System];

/// Someone asked to join a tenant: who they are and what they may do there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitee {
    /// Their sign-in name.
    pub email: Email,
    /// How the practice addresses them.
    pub name: PersonName,
}

/// One person of a tenant, as the tenant knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// How the practice addresses them.
    pub name: PersonName,
    /// What they may do.
    pub role: Role,
    /// Disabled users are refused everywhere until enabled again.
    pub enabled: bool,
    /// Their identity-provider subject (the `sub` of their tokens), once their account exists.
    pub user_id: Option<UserId>,
}

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
    /// Create the tenant from the public sign-up, with its first admin. Its id is the actor's
    /// tenant id.
    SignUp {
        /// The platform, acting for the new tenant (nobody is signed in yet).
        actor: Actor,
        /// Display name.
        name: TenantName,
        /// Initial plan.
        plan: PlanTier,
        /// The practice's first admin.
        admin: Invitee,
    },
    /// Give someone a role in the tenant; their account is created in the identity provider
    /// afterwards, and they are sent an invitation.
    InviteUser {
        /// An admin.
        actor: Actor,
        /// Who.
        invitee: Invitee,
        /// One of the roles a tenant's user may hold (not system, not operator).
        role: Role,
    },
    /// Give a member another role.
    ChangeUserRole {
        /// An admin.
        actor: Actor,
        /// The member.
        email: Email,
        /// The new role.
        role: Role,
    },
    /// Refuse a member everywhere, existing tokens included.
    DisableUser {
        /// An admin.
        actor: Actor,
        /// The member.
        email: Email,
    },
    /// Let a disabled member back in.
    EnableUser {
        /// An admin.
        actor: Actor,
        /// The member.
        email: Email,
    },
    /// Record the identity provider's subject of a member whose account now exists.
    RecordUserProvisioned {
        /// The system (the people subscription).
        actor: Actor,
        /// The member.
        email: Email,
        /// Their subject.
        user_id: UserId,
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
    /// Record that the tenant's token use crossed a threshold of its monthly budget (once
    /// per month and threshold).
    RecordBudgetThreshold {
        /// The system (the diagnosis worker).
        actor: Actor,
        /// The threshold.
        threshold: BudgetThreshold,
        /// The month's budget and the use that reached it.
        budget: BudgetUse,
    },
    /// Record a fine-tune export written to S3; it must start where the last one ended.
    RecordFinetuneExport {
        /// The system (the scheduled export).
        actor: Actor,
        /// The file and the range of the log it covers.
        export: FinetuneExport,
    },
    /// Forget a data subject (a customer): their data key is destroyed and everything derived
    /// from their data purged (decision 0027).
    EraseSubject {
        /// An admin.
        actor: Actor,
        /// The customer.
        subject: UserId,
    },
    /// Forget the whole tenant, a practice leaving the product: every data key of its
    /// subjects is destroyed, what was derived from them purged, and the tenant refuses every
    /// command from then on (decision 0027).
    EraseTenant {
        /// The operator.
        actor: Actor,
    },
    /// Register a practice's own model uploaded under its models prefix, as a candidate.
    RegisterModel {
        /// The system (the reaction to the upload's notification).
        actor: Actor,
        /// The weights.
        artifact: ModelArtifact,
    },
    /// Record a candidate's evaluation: the gate promotes it to serve the evaluated tier
    /// (retiring the model serving it before) or rejects it.
    RecordModelEvaluation {
        /// The system (the evaluation gate).
        actor: Actor,
        /// The candidate.
        model_id: ModelId,
        /// What the gate measured.
        evaluation: ModelEvaluation,
    },
    /// Withdraw a model: a promoted one stops serving, and its tier goes back to the
    /// platform's model.
    RetireModel {
        /// An admin.
        actor: Actor,
        /// The model.
        model_id: ModelId,
        /// Why.
        reason: Reason,
    },
}

impl TenantCommand {
    /// Who issues the command (for the events' metadata).
    pub fn actor(&self) -> &Actor {
        match self {
            Self::Onboard { actor, .. }
            | Self::SignUp { actor, .. }
            | Self::InviteUser { actor, .. }
            | Self::ChangeUserRole { actor, .. }
            | Self::DisableUser { actor, .. }
            | Self::EnableUser { actor, .. }
            | Self::RecordUserProvisioned { actor, .. }
            | Self::ChangePlan { actor, .. }
            | Self::SetAutoResolveThreshold { actor, .. }
            | Self::SetModelPolicy { actor, .. }
            | Self::Suspend { actor, .. }
            | Self::Reactivate { actor }
            | Self::RecordUsageKey { actor, .. }
            | Self::RecordBudgetThreshold { actor, .. }
            | Self::RecordFinetuneExport { actor, .. }
            | Self::EraseSubject { actor, .. }
            | Self::EraseTenant { actor }
            | Self::RegisterModel { actor, .. }
            | Self::RecordModelEvaluation { actor, .. }
            | Self::RetireModel { actor, .. } => actor,
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
    /// The tenant was created by the public sign-up, with its first admin (invited at once).
    TenantSignedUp {
        /// The tenant.
        tenant_id: TenantId,
        /// Display name.
        name: TenantName,
        /// Initial plan.
        plan: PlanTier,
        /// The first admin.
        admin: Invitee,
    },
    /// Someone was given a role in the tenant.
    UserInvited {
        /// Who.
        invitee: Invitee,
        /// Their role.
        role: Role,
    },
    /// A member's role changed.
    UserRoleChanged {
        /// The member.
        email: Email,
        /// The role they held.
        previous_role: Role,
        /// The role they hold now.
        role: Role,
    },
    /// A member was disabled.
    UserDisabled {
        /// The member.
        email: Email,
    },
    /// A disabled member was enabled again.
    UserEnabled {
        /// The member.
        email: Email,
    },
    /// A member's account exists in the identity provider, under this subject.
    UserProvisioned {
        /// The member.
        email: Email,
        /// The `sub` of their tokens.
        user_id: UserId,
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
    /// The tenant's token use crossed a threshold of its monthly budget.
    TokenBudgetThresholdCrossed {
        /// The threshold (`80` or `100`, percent).
        threshold: BudgetThreshold,
        /// The month's budget and the use that reached it.
        #[serde(flatten)]
        budget: BudgetUse,
    },
    /// Approved and amended decisions were exported as fine-tune examples.
    FinetuneExported {
        /// The file and the range of the log it covers.
        export: FinetuneExport,
    },
    /// A data subject was forgotten: their data key is destroyed, and what was derived from
    /// their data is purged. It carries nothing personal, so it is the erasure's receipt.
    SubjectErased {
        /// The customer.
        subject: UserId,
        /// The admin who asked.
        erased_by: UserId,
    },
    /// The tenant was forgotten: every data key of its subjects is destroyed, and what was
    /// derived from their data purged. Nothing follows it.
    TenantErased {
        /// The operator who did it.
        erased_by: UserId,
    },
    /// A practice's own model was uploaded and registered as a candidate.
    ModelRegistered {
        /// The model.
        model_id: ModelId,
        /// Its weights.
        artifact: ModelArtifact,
    },
    /// A candidate passed the evaluation gate and serves its tier from now on.
    ModelPromoted {
        /// The model.
        model_id: ModelId,
        /// What the gate measured (its tier is the one the model serves).
        evaluation: ModelEvaluation,
        /// The model that served the tier before, retired by this promotion.
        replaces: Option<ModelId>,
    },
    /// A candidate scored below the gate and is not used.
    ModelRejected {
        /// The model.
        model_id: ModelId,
        /// What the gate measured.
        evaluation: ModelEvaluation,
    },
    /// A model was withdrawn.
    ModelRetired {
        /// The model.
        model_id: ModelId,
        /// Why.
        reason: Reason,
        /// The admin.
        retired_by: UserId,
    },
}

impl DomainEvent for TenantEvent {
    fn event_type(&self) -> String {
        match self {
            Self::TenantOnboarded { .. } => "TenantOnboarded",
            Self::TenantSignedUp { .. } => "TenantSignedUp",
            Self::UserInvited { .. } => "UserInvited",
            Self::UserRoleChanged { .. } => "UserRoleChanged",
            Self::UserDisabled { .. } => "UserDisabled",
            Self::UserEnabled { .. } => "UserEnabled",
            Self::UserProvisioned { .. } => "UserProvisioned",
            Self::PlanChanged { .. } => "PlanChanged",
            Self::AutoResolveThresholdSet { .. } => "AutoResolveThresholdSet",
            Self::ModelPolicySet { .. } => "ModelPolicySet",
            Self::TenantSuspended { .. } => "TenantSuspended",
            Self::TenantReactivated => "TenantReactivated",
            Self::UsageKeyAssigned { .. } => "UsageKeyAssigned",
            Self::TokenBudgetThresholdCrossed { .. } => "TokenBudgetThresholdCrossed",
            Self::FinetuneExported { .. } => "FinetuneExported",
            Self::SubjectErased { .. } => "SubjectErased",
            Self::TenantErased { .. } => "TenantErased",
            Self::ModelRegistered { .. } => "ModelRegistered",
            Self::ModelPromoted { .. } => "ModelPromoted",
            Self::ModelRejected { .. } => "ModelRejected",
            Self::ModelRetired { .. } => "ModelRetired",
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
    /// A role no tenant's user holds (system, operator).
    #[error("{0:?} is not a role of a tenant's user")]
    NotATenantRole(Role),
    /// The invitee is already a member.
    #[error("{0} is already a member of the tenant")]
    AlreadyMember(Email),
    /// No member with this address.
    #[error("no member {0}")]
    NoSuchMember(Email),
    /// The member already holds the role.
    #[error("{0} already holds this role")]
    RoleUnchanged(Email),
    /// The member is already disabled.
    #[error("{0} is already disabled")]
    AlreadyDisabled(Email),
    /// The member is not disabled.
    #[error("{0} is not disabled")]
    NotDisabled(Email),
    /// The change would leave the tenant without an enabled admin.
    #[error("the tenant must keep at least one enabled admin")]
    LastAdmin,
    /// The member's account was already recorded.
    #[error("{0} is already provisioned")]
    AlreadyProvisioned(Email),
    /// The threshold was already recorded for the month, or a later month was recorded.
    #[error("the {}% budget threshold of {month} is already recorded", threshold.percent())]
    BudgetThresholdAlreadyRecorded {
        /// The month.
        month: BudgetMonth,
        /// The threshold.
        threshold: BudgetThreshold,
    },
    /// The subject was already erased.
    #[error("the subject {0} is already erased")]
    AlreadyErased(UserId),
    /// The tenant is erased: it takes no command any more.
    #[error("the tenant is erased")]
    TenantErased,
    /// The artifact lies outside the tenant's `<tenant>/models/` prefix.
    #[error("the artifact {0} is not under the tenant's models prefix")]
    ForeignArtifact(String),
    /// The model is registered already (the same upload notified again).
    #[error("the model {0} is already registered")]
    ModelAlreadyRegistered(ModelId),
    /// No model with this id.
    #[error("no model {0}")]
    NoSuchModel(ModelId),
    /// The model is not in a state the command applies to (evaluated twice, retired twice).
    #[error("the model {model_id} is {status:?}")]
    ModelNotCandidate {
        /// The model.
        model_id: ModelId,
        /// Where it stands.
        status: ModelStatus,
    },
    /// An evaluation by another metric than the gate's.
    #[error("the evaluation used {0}, not {METRIC}")]
    UnknownMetric(String),
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
            | Self::UsageKeyAlreadyAssigned
            | Self::AlreadyMember(_)
            | Self::RoleUnchanged(_)
            | Self::AlreadyDisabled(_)
            | Self::NotDisabled(_)
            | Self::LastAdmin
            | Self::AlreadyProvisioned(_)
            | Self::BudgetThresholdAlreadyRecorded { .. }
            | Self::AlreadyErased(_)
            | Self::TenantErased
            | Self::ModelAlreadyRegistered(_)
            | Self::ModelNotCandidate { .. } => ErrorKind::Conflict,
            Self::NoSuchMember(_) | Self::NoSuchModel(_) => ErrorKind::NotFound,
            Self::EmptyExport
            | Self::NotATenantRole(_)
            | Self::ForeignArtifact(_)
            | Self::UnknownMetric(_) => ErrorKind::Invalid,
        }
    }

    fn code(&self) -> Option<&'static str> {
        Some(match self {
            Self::AlreadyMember(_) => "user_exists",
            Self::NoSuchMember(_) => "user_not_found",
            Self::RoleUnchanged(_) => "role_unchanged",
            Self::AlreadyDisabled(_) => "user_already_disabled",
            Self::NotDisabled(_) => "user_not_disabled",
            Self::LastAdmin => "last_admin",
            Self::NotATenantRole(_) => "invalid_role",
            Self::AlreadyErased(_) => "subject_already_erased",
            Self::TenantErased => "tenant_erased",
            Self::ModelAlreadyRegistered(_) => "model_already_registered",
            Self::NoSuchModel(_) => "model_not_found",
            Self::ModelNotCandidate { .. } => "model_state_conflict",
            _ => return None,
        })
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
    /// Its people, by sign-in address. Snapshots taken before people were managed lack it.
    #[serde(default)]
    members: BTreeMap<Email, Member>,
    /// The data subjects erased. Snapshots taken before erasure existed lack it.
    #[serde(default)]
    erased: BTreeSet<UserId>,
    /// Whether the whole tenant is erased. Snapshots taken before tenant erasure lack it.
    #[serde(default)]
    tenant_erased: bool,
    /// The practice's own models. Snapshots taken before the registry existed lack it.
    #[serde(default)]
    models: BTreeMap<ModelId, RegisteredModel>,
    /// The latest month a budget threshold was crossed in, and the thresholds crossed in it.
    /// Snapshots taken before budgets existed lack it.
    #[serde(default)]
    budget_thresholds: Option<(BudgetMonth, BTreeSet<BudgetThreshold>)>,
}

/// A model in the tenant's registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RegisteredModel {
    artifact: ModelArtifact,
    status: ModelStatus,
    /// The tier it serves, while promoted.
    tier: Option<ModelTier>,
}

impl TenantState {
    fn model(&self, model_id: ModelId) -> Result<&RegisteredModel, TenantError> {
        self.models
            .get(&model_id)
            .ok_or(TenantError::NoSuchModel(model_id))
    }

    /// The promoted model serving `tier`, if any.
    fn serving(&self, tier: ModelTier) -> Option<(ModelId, &RegisteredModel)> {
        self.models
            .iter()
            .find(|(_, m)| m.status == ModelStatus::Promoted && m.tier == Some(tier))
            .map(|(id, m)| (*id, m))
    }

    fn member(&self, email: &Email) -> Result<&Member, TenantError> {
        self.members
            .get(email)
            .ok_or_else(|| TenantError::NoSuchMember(email.clone()))
    }

    /// Refuses a change that leaves no enabled admin: `email` would stop being one.
    fn keeps_an_admin_without(&self, email: &Email) -> Result<(), TenantError> {
        let others = self
            .members
            .iter()
            .any(|(other, m)| other != email && m.enabled && m.role == Role::Admin);
        let is_admin = self
            .members
            .get(email)
            .is_some_and(|m| m.enabled && m.role == Role::Admin);
        ensure(others || !is_admin, TenantError::LastAdmin)
    }
}

/// The roles a tenant's own users may hold.
fn is_tenant_role(role: Role) -> bool {
    matches!(
        role,
        Role::Customer | Role::Consultant | Role::Auditor | Role::Admin
    )
}

impl TenantState {
    fn new(tenant_id: TenantId, plan: PlanTier) -> Self {
        Self {
            tenant_id,
            plan,
            auto_resolve_threshold: None,
            model_policy: ModelPolicy::default(),
            suspended: false,
            last_finetune_export: None,
            usage_key: None,
            members: BTreeMap::new(),
            erased: BTreeSet::new(),
            tenant_erased: false,
            models: BTreeMap::new(),
            budget_thresholds: None,
        }
    }
}

impl Member {
    fn invited(name: PersonName, role: Role) -> Self {
        Self {
            name,
            role,
            enabled: true,
            user_id: None,
        }
    }
}

impl Owned for TenantState {
    fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
}

impl Tenant {
    /// Onboarded and not suspended: the precondition the application passes as `tenant_active`.
    pub fn is_active(&self) -> bool {
        self.state
            .as_ref()
            .is_some_and(|s| !s.suspended && !s.tenant_erased)
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

    /// The member signing in as `email`, if any.
    pub fn member(&self, email: &Email) -> Option<&Member> {
        self.state.as_ref().and_then(|s| s.members.get(email))
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

    /// Whether `threshold` of `month`'s budget was recorded (or a later month's was: an
    /// earlier month is over).
    pub fn budget_threshold_recorded(
        &self,
        month: BudgetMonth,
        threshold: BudgetThreshold,
    ) -> bool {
        self.state
            .as_ref()
            .and_then(|s| s.budget_thresholds.as_ref())
            .is_some_and(|(recorded, crossed)| {
                *recorded > month || (*recorded == month && crossed.contains(&threshold))
            })
    }

    /// Where the last recorded fine-tune export ended; `None` before the first.
    pub fn last_finetune_export(&self) -> Option<&LastExport> {
        self.state
            .as_ref()
            .and_then(|s| s.last_finetune_export.as_ref())
    }

    /// The practice's own model promoted to serve `tier`, if one is.
    pub fn promoted_model(&self, tier: ModelTier) -> Option<PromotedModel> {
        let (model_id, model) = self.state.as_ref()?.serving(tier)?;
        Some(PromotedModel {
            model_id,
            bucket: model.artifact.bucket.clone(),
            key: model.artifact.key.clone(),
            etag: model.artifact.etag.clone(),
            tier,
        })
    }

    /// Where the registered model `model_id` stands, if it is registered.
    pub fn model_status(&self, model_id: ModelId) -> Option<ModelStatus> {
        self.state.as_ref()?.models.get(&model_id).map(|m| m.status)
    }

    /// The registered model's weights, if it is registered.
    pub fn model_artifact(&self, model_id: ModelId) -> Option<&ModelArtifact> {
        self.state
            .as_ref()?
            .models
            .get(&model_id)
            .map(|m| &m.artifact)
    }

    /// How many data subjects were erased: it only grows, so a change tells that an erasure
    /// was recorded in between.
    pub fn erasures(&self) -> usize {
        self.state.as_ref().map_or(0, |s| s.erased.len())
    }

    fn decide(&self, command: TenantCommand) -> Result<TenantEvent, TenantError> {
        let state = self.state.as_ref();
        ensure(
            !state.is_some_and(|s| s.tenant_erased),
            TenantError::TenantErased,
        )?;
        let event = match command {
            TenantCommand::SignUp {
                actor,
                name,
                plan,
                admin,
            } => {
                actor.authorize_creation(SYSTEM, state, TenantError::AlreadyOnboarded)?;
                TenantEvent::TenantSignedUp {
                    tenant_id: actor.tenant_id,
                    name,
                    plan,
                    admin,
                }
            }
            TenantCommand::InviteUser {
                actor,
                invitee,
                role,
            } => {
                let state = actor.authorize(ADMINS, state)?;
                ensure(is_tenant_role(role), TenantError::NotATenantRole(role))?;
                ensure(
                    !state.members.contains_key(&invitee.email),
                    TenantError::AlreadyMember(invitee.email.clone()),
                )?;
                TenantEvent::UserInvited { invitee, role }
            }
            TenantCommand::ChangeUserRole { actor, email, role } => {
                let state = actor.authorize(ADMINS, state)?;
                ensure(is_tenant_role(role), TenantError::NotATenantRole(role))?;
                let member = state.member(&email)?;
                ensure(
                    member.role != role,
                    TenantError::RoleUnchanged(email.clone()),
                )?;
                if role != Role::Admin {
                    state.keeps_an_admin_without(&email)?;
                }
                TenantEvent::UserRoleChanged {
                    previous_role: member.role,
                    email,
                    role,
                }
            }
            TenantCommand::DisableUser { actor, email } => {
                let state = actor.authorize(ADMINS, state)?;
                ensure(
                    state.member(&email)?.enabled,
                    TenantError::AlreadyDisabled(email.clone()),
                )?;
                state.keeps_an_admin_without(&email)?;
                TenantEvent::UserDisabled { email }
            }
            TenantCommand::EnableUser { actor, email } => {
                let state = actor.authorize(ADMINS, state)?;
                ensure(
                    !state.member(&email)?.enabled,
                    TenantError::NotDisabled(email.clone()),
                )?;
                TenantEvent::UserEnabled { email }
            }
            TenantCommand::RecordUserProvisioned {
                actor,
                email,
                user_id,
            } => {
                let state = actor.authorize(SYSTEM, state)?;
                ensure(
                    state.member(&email)?.user_id.is_none(),
                    TenantError::AlreadyProvisioned(email.clone()),
                )?;
                TenantEvent::UserProvisioned { email, user_id }
            }
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
            TenantCommand::RecordBudgetThreshold {
                actor,
                threshold,
                budget,
            } => {
                actor.authorize(SYSTEM, state)?;
                ensure(
                    !self.budget_threshold_recorded(budget.month, threshold),
                    TenantError::BudgetThresholdAlreadyRecorded {
                        month: budget.month,
                        threshold,
                    },
                )?;
                TenantEvent::TokenBudgetThresholdCrossed { threshold, budget }
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
            TenantCommand::EraseSubject { actor, subject } => {
                let state = actor.authorize(ADMINS, state)?;
                ensure(
                    !state.erased.contains(&subject),
                    TenantError::AlreadyErased(subject.clone()),
                )?;
                TenantEvent::SubjectErased {
                    subject,
                    erased_by: actor.user_id,
                }
            }
            TenantCommand::EraseTenant { actor } => {
                actor.authorize(OPERATORS, state)?;
                TenantEvent::TenantErased {
                    erased_by: actor.user_id,
                }
            }
            TenantCommand::RegisterModel { actor, artifact } => {
                let state = actor.authorize(SYSTEM, state)?;
                ensure(
                    artifact.belongs_to(state.tenant_id),
                    TenantError::ForeignArtifact(artifact.key.clone()),
                )?;
                let model_id = ModelId::for_artifact(state.tenant_id, &artifact.key);
                ensure(
                    !state.models.contains_key(&model_id),
                    TenantError::ModelAlreadyRegistered(model_id),
                )?;
                TenantEvent::ModelRegistered { model_id, artifact }
            }
            TenantCommand::RecordModelEvaluation {
                actor,
                model_id,
                evaluation,
            } => {
                let state = actor.authorize(SYSTEM, state)?;
                let model = state.model(model_id)?;
                ensure(
                    model.status == ModelStatus::Candidate,
                    TenantError::ModelNotCandidate {
                        model_id,
                        status: model.status,
                    },
                )?;
                ensure(
                    evaluation.metric == METRIC,
                    TenantError::UnknownMetric(evaluation.metric.clone()),
                )?;
                if evaluation.passes() {
                    TenantEvent::ModelPromoted {
                        model_id,
                        replaces: state.serving(evaluation.tier).map(|(id, _)| id),
                        evaluation,
                    }
                } else {
                    TenantEvent::ModelRejected {
                        model_id,
                        evaluation,
                    }
                }
            }
            TenantCommand::RetireModel {
                actor,
                model_id,
                reason,
            } => {
                let state = actor.authorize(ADMINS, state)?;
                let model = state.model(model_id)?;
                ensure(
                    model.status != ModelStatus::Retired,
                    TenantError::ModelNotCandidate {
                        model_id,
                        status: model.status,
                    },
                )?;
                TenantEvent::ModelRetired {
                    model_id,
                    reason,
                    retired_by: actor.user_id,
                }
            }
        };
        Ok(event)
    }
}

impl DataSubject for Tenant {
    fn data_subject(&self) -> Option<UserId> {
        None
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
            ) => self.state = Some(TenantState::new(tenant_id, plan)),
            (
                TenantEvent::TenantSignedUp {
                    tenant_id,
                    plan,
                    admin,
                    ..
                },
                _,
            ) => {
                let mut state = TenantState::new(tenant_id, plan);
                state
                    .members
                    .insert(admin.email, Member::invited(admin.name, Role::Admin));
                self.state = Some(state);
            }
            (TenantEvent::UserInvited { invitee, role }, Some(state)) => {
                state
                    .members
                    .insert(invitee.email, Member::invited(invitee.name, role));
            }
            (TenantEvent::UserRoleChanged { email, role, .. }, Some(state)) => {
                if let Some(member) = state.members.get_mut(&email) {
                    member.role = role;
                }
            }
            (TenantEvent::UserDisabled { email }, Some(state)) => {
                if let Some(member) = state.members.get_mut(&email) {
                    member.enabled = false;
                }
            }
            (TenantEvent::UserEnabled { email }, Some(state)) => {
                if let Some(member) = state.members.get_mut(&email) {
                    member.enabled = true;
                }
            }
            (TenantEvent::UserProvisioned { email, user_id }, Some(state)) => {
                if let Some(member) = state.members.get_mut(&email) {
                    member.user_id = Some(user_id);
                }
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
            (TenantEvent::TokenBudgetThresholdCrossed { threshold, budget }, Some(state)) => {
                match &mut state.budget_thresholds {
                    Some((month, crossed)) if *month == budget.month => {
                        crossed.insert(threshold);
                    }
                    thresholds => {
                        *thresholds = Some((budget.month, BTreeSet::from([threshold])));
                    }
                }
            }
            (TenantEvent::FinetuneExported { export }, Some(state)) => {
                state.last_finetune_export = Some(LastExport {
                    up_to: export.up_to,
                    exported_on: export.exported_on,
                });
            }
            (TenantEvent::SubjectErased { subject, .. }, Some(state)) => {
                state.erased.insert(subject);
            }
            (TenantEvent::TenantErased { .. }, Some(state)) => state.tenant_erased = true,
            (TenantEvent::ModelRegistered { model_id, artifact }, Some(state)) => {
                state.models.insert(
                    model_id,
                    RegisteredModel {
                        artifact,
                        status: ModelStatus::Candidate,
                        tier: None,
                    },
                );
            }
            (
                TenantEvent::ModelPromoted {
                    model_id,
                    evaluation,
                    replaces,
                },
                Some(state),
            ) => {
                if let Some(before) = replaces.and_then(|id| state.models.get_mut(&id)) {
                    before.status = ModelStatus::Retired;
                    before.tier = None;
                }
                if let Some(model) = state.models.get_mut(&model_id) {
                    model.status = ModelStatus::Promoted;
                    model.tier = Some(evaluation.tier);
                }
            }
            (TenantEvent::ModelRejected { model_id, .. }, Some(state)) => {
                if let Some(model) = state.models.get_mut(&model_id) {
                    model.status = ModelStatus::Rejected;
                }
            }
            (TenantEvent::ModelRetired { model_id, .. }, Some(state)) => {
                if let Some(model) = state.models.get_mut(&model_id) {
                    model.status = ModelStatus::Retired;
                    model.tier = None;
                }
            }
            // `decide` emits nothing else before onboarding, so a sound stream never gets here.
            (_, None) => {}
        }
    }
}
