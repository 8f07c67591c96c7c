//! # casebook-domain
//!
//! Casebook's business rules and nothing else: aggregates on [`cqrs_es`], their commands,
//! events and errors, value types, pure policies, and the ports the AI path needs. No I/O:
//! anything external is read by the application and passed in the command.
//!
//! | module | holds |
//! |---|---|
//! | [`ids`] | typed ids ([`ids::TenantId`], [`ids::DiagnosisId`], …, [`ids::UserId`]) |
//! | [`values`] | value types ([`values::Confidence`], [`values::Reason`], [`values::QueryText`], …): validated when parsed, read back from storage as stored |
//! | [`actor`] | [`actor::Actor`] and [`actor::Role`]: who issues a command |
//! | [`error`] | [`error::AccessError`] (shared by every aggregate) and [`error::ErrorKind`] for clients |
//! | [`tenant`], [`session`], [`diagnosis`], [`decision`], [`judgment`] | one aggregate each |
//! | [`budget`] | each plan's monthly token budget ([`budget::BudgetUse`]), its reported thresholds, the month it is spent in |
//! | [`finetune`] | [`finetune::FinetuneExport`]: the weekly export's file and log range |
//! | [`own_model`] | a practice's own model: its artifact, the evaluation gate, the held-out decisions |
//! | [`policy`] | model routing ([`policy::route_model`]) and auto-resolve ([`policy::should_auto_approve`]) |
//! | [`ports`] | [`ports::Embedder`], [`ports::Llm`] and [`ports::AttachmentStore`], implemented by the adapters |
//! | [`upcast`], [`any_event`] | older event versions, and decoding any stored event |
//! | [`metadata`] | [`metadata::EventMetadata`]: actor, request, correlation and causation ids on every event |
//!
//! ## How every command is checked
//! Every command carries an [`actor::Actor`], and every aggregate checks, in this order:
//! 1. the actor's **role** ([`error::AccessError::Forbidden`], decided from the actor alone);
//! 2. that the aggregate **exists in the actor's tenant** ([`error::AccessError::NotFound`]:
//!    another tenant's aggregate is indistinguishable from a missing one);
//! 3. the **preconditions owned by other aggregates**, which the application read and put in
//!    the command (`tenant_active`, [`diagnosis::DiagnosisSnapshot`], [`judgment::DecisionSnapshot`]);
//! 4. its **own state**: an illegal transition is an error, never a silent no-op.
//!
//! An accepted command emits exactly one past-tense event. Each aggregate's cqrs-es
//! `aggregate_id` is its id's `Display` form (hyphenated lowercase UUID). Creations carry
//! the new id, chosen by the caller, so a retried creation is refused as a repeat.
//!
//! ## Lifecycles
//! Commands by role: **A** admin, **C** customer, **K** consultant, **O** operator, **S** system.
//!
//! ### [`tenant::Tenant`] (`"Tenant"`, id [`ids::TenantId`])
//! | from | command | event | to |
//! |---|---|---|---|
//! | — | `Onboard` (A; a user an operator created) | `TenantOnboarded` | active |
//! | — | `SignUp` (S; the public sign-up, with the first admin) | `TenantSignedUp` | active, the admin a member |
//! | active, suspended | `InviteUser` (A; a tenant role, not a member yet) | `UserInvited` | the invitee a member |
//! | active, suspended | `ChangeUserRole` (A; another role, an enabled admin kept) | `UserRoleChanged` | unchanged |
//! | active, suspended | `DisableUser`, `EnableUser` (A; an enabled admin kept) | `UserDisabled`, `UserEnabled` | unchanged |
//! | active, suspended | `RecordUserProvisioned` (S; once per member) | `UserProvisioned` | unchanged |
//! | active, suspended | `ChangePlan` (O) | `PlanChanged` | unchanged |
//! | active, suspended | `SetAutoResolveThreshold`, `SetModelPolicy` (A) | `AutoResolveThresholdSet`, `ModelPolicySet` | unchanged |
//! | active | `Suspend` (O) | `TenantSuspended` | suspended |
//! | active, suspended | `RecordUsageKey` (S; the current plan, not already recorded) | `UsageKeyAssigned` | unchanged |
//! | active, suspended | `RecordBudgetThreshold` (S; once per month and threshold, never for a month before the last recorded) | `TokenBudgetThresholdCrossed` | unchanged |
//! | active, suspended | `RecordFinetuneExport` (S) | `FinetuneExported` | unchanged (the next export starts after this one) |
//! | suspended | `Reactivate` (O) | `TenantReactivated` | active |
//! | active, suspended | `RegisterModel` (S; an artifact under `<tenant>/models/`, once) | `ModelRegistered` | the model a candidate |
//! | active, suspended | `RecordModelEvaluation` (S; a candidate) | `ModelPromoted` (the gate passed; the tier's model before retired) or `ModelRejected` | the model serves its tier, or is unused |
//! | active, suspended | `RetireModel` (A; a model not retired) | `ModelRetired` | its tier back to the platform's model |
//!
//! A suspended tenant's other aggregates refuse work: sessions, diagnosis requests and
//! auto-approval check the `tenant_active` flag they are given; the application gates the rest.
//!
//! ### [`session::TenantSession`] (`"TenantSession"`, id [`ids::SessionId`])
//! | from | command | event | to |
//! |---|---|---|---|
//! | — | `Open` (C) | `SessionOpened` | open |
//! | open | `SubmitQuery` (C) | `QuerySubmitted` | open |
//! | open | `Close` (C) | `SessionClosed` | closed (accepts nothing) |
//!
//! ### [`diagnosis::Diagnosis`] (`"Diagnosis"`, id [`ids::DiagnosisId`])
//! | from | command | event | to |
//! |---|---|---|---|
//! | — | `Request` (C) | `DiagnosisRequested` | requested (attempt 1) |
//! | requested, failed (retryable) | `RecordContext` (S) | `ContextRetrieved` | context retrieved (next attempt after a failure) |
//! | context retrieved | `Propose` (S) | `DiagnosisProposed` (v3) | proposed |
//! | requested, context retrieved, failed (retryable) | `Defer` (S; the monthly token budget spent) | `DiagnosisDeferred` | deferred (budget) |
//! | deferred | `Resume` (S) | `DiagnosisResumed` | the status it was deferred in |
//! | requested, context retrieved | `Fail` (S) | `DiagnosisFailed` | failed: retryable, or final (terminal) once [`policy::MAX_DIAGNOSIS_ATTEMPTS`] are spent |
//! | proposed | `Resolve` (S) | `DiagnosisResolved` | resolved (terminal) |
//!
//! ### [`decision::ConsultantDecision`] (`"ConsultantDecision"`, id [`ids::DecisionId::for_diagnosis`])
//! | from | command | event | to |
//! |---|---|---|---|
//! | — (diagnosis proposed) | `Approve`, `Amend`, `Reject` (K) | `DecisionMade` | decided (terminal) |
//! | — (diagnosis proposed, confidence ≥ threshold) | `AutoApprove` (S) | `DecisionMade` | decided (terminal) |
//!
//! The id is the diagnosis' own UUID, so a second decision hits the same stream: exactly one
//! decision per diagnosis, without a cross-aggregate lock.
//!
//! ### [`judgment::Judgment`] (`"Judgment"`, id [`ids::JudgmentId`])
//! | from | command | event | to |
//! |---|---|---|---|
//! | — (decision approved or amended) | `CaptureFromDecision` (S) | `JudgmentCaptured` | active (id [`ids::JudgmentId::for_decision`]) |
//! | — | `Author` (K) | `JudgmentCaptured` | active |
//! | active | `Revise` (K) | `JudgmentRevised` | active |
//! | active | `Retire` (K) | `JudgmentRetired` | retired (terminal) |
//!
//! ## Reactions
//! Process managers (subscriptions outside this crate) chain the aggregates: a requested
//! diagnosis goes to the worker; a proposal at or above the threshold is auto-approved; a
//! decision resolves its diagnosis; an approved or amended decision is captured as judgment.
//! Each is safe to repeat, because the target aggregate refuses the repeat.

#![warn(missing_docs)]

pub mod actor;
pub mod any_event;
pub mod budget;
pub mod decision;
pub mod diagnosis;
pub mod error;
pub mod finetune;
pub mod ids;
pub mod judgment;
pub mod metadata;
pub mod own_model;
pub mod personal;
pub mod policy;
pub mod ports;
pub mod session;
pub mod tenant;
pub mod upcast;
pub mod values;
