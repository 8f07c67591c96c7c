//! The application service: turns a caller's intent into domain commands.
//!
//! It reads the preconditions that live in other aggregates (is the tenant active, is the
//! diagnosis proposed) from the event store itself — strongly consistent, unlike read
//! models — puts them in the command, attaches the metadata every event carries, and maps
//! every failure to a [`ServiceError`] a client can act on. The aggregates decide; this only
//! prepares and dispatches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use casebook_domain::actor::{Actor, Role};
use casebook_domain::decision::{ConsultantDecision, DecisionCommand};
use casebook_domain::diagnosis::{Diagnosis, DiagnosisCommand, DiagnosisEvent, DiagnosisSnapshot};
use casebook_domain::error::{DomainError, ErrorKind};
use casebook_domain::ids::{
    DecisionId, DiagnosisId, JudgmentId, QueryId, SessionId, TenantId, UserId,
};
use casebook_domain::judgment::{DecisionSnapshot, Judgment, JudgmentCommand, JudgmentContent};
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::policy::{should_auto_approve, PlanTier};
use casebook_domain::session::{SessionCommand, TenantSession};
use casebook_domain::tenant::{Invitee, Tenant, TenantCommand};
use casebook_domain::values::{
    DiagnosisText, Email, QueryText, Reason, Subject, TenantName, UploadKey,
};
use cqrs_es::Aggregate;

use crate::ports::{
    CommandError, Committed, EventRepository, RecordError, RequestRecords, SignUpAttemptRecord,
};

/// Why a request could not be carried out, in terms a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No such resource in the caller's tenant (also: it belongs to another tenant).
    #[error("not found")]
    NotFound,
    /// The caller's role may not do this.
    #[error("forbidden")]
    Forbidden,
    /// The input is invalid.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The resource's state does not allow this (e.g. the session is closed).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Another command changed the resource first; retrying may succeed.
    #[error("concurrent modification")]
    Concurrency,
    /// A rule with a code of its own refused the request (e.g. `last_admin`, `email_taken`).
    #[error("{message}")]
    Refused {
        /// The stable code clients switch on.
        code: &'static str,
        /// How to report it.
        kind: ErrorKind,
        /// What the client may read.
        message: String,
    },
    /// A dependency is unavailable; retrying later may succeed.
    #[error("service unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A bug or an unexpected failure: details are logged, never shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl<E: DomainError + Send + Sync + 'static> From<CommandError<E>> for ServiceError {
    fn from(err: CommandError<E>) -> Self {
        match err {
            CommandError::Rejected(err) if err.code().is_some() => ServiceError::Refused {
                code: err.code().unwrap_or_default(),
                kind: err.kind(),
                message: err.to_string(),
            },
            CommandError::Rejected(err) => match err.kind() {
                ErrorKind::NotFound => ServiceError::NotFound,
                ErrorKind::Forbidden => ServiceError::Forbidden,
                ErrorKind::Invalid => ServiceError::Invalid(err.to_string()),
                ErrorKind::Conflict => ServiceError::Conflict(err.to_string()),
            },
            CommandError::Conflict => ServiceError::Concurrency,
            CommandError::NotFound => ServiceError::NotFound,
            CommandError::Invalid(reason) => ServiceError::Invalid(reason),
            CommandError::Unavailable(err) => ServiceError::Unavailable(err),
            CommandError::Unexpected(err) => ServiceError::Internal(err),
        }
    }
}

/// Who asks, and as part of what.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The authenticated caller (or the system, for reactions and the worker).
    pub actor: Actor,
    /// The metadata the resulting events carry.
    pub metadata: EventMetadata,
}

/// A command the store accepted: the events it appended and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Every event appended, in order.
    pub events: Vec<Committed>,
}

impl Accepted {
    fn extend(mut self, more: Accepted) -> Self {
        self.events.extend(more.events);
        self
    }
}

/// Casebook's use cases over the event store.
///
/// Cheap to clone (one reference count): the HTTP layer clones its state several times per
/// request.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

/// The event stores of every aggregate the service commands.
#[derive(Clone)]
pub struct Stores {
    /// Tenants.
    pub tenants: Arc<dyn EventRepository<Tenant>>,
    /// Customers' sessions.
    pub sessions: Arc<dyn EventRepository<TenantSession>>,
    /// Diagnoses.
    pub diagnoses: Arc<dyn EventRepository<Diagnosis>>,
    /// Consultants' decisions.
    pub decisions: Arc<dyn EventRepository<ConsultantDecision>>,
    /// Captured judgment.
    pub judgments: Arc<dyn EventRepository<Judgment>>,
}

struct Inner {
    stores: Stores,
    /// What isn't an event: upload grants, address claims, sign-up attempts.
    records: Arc<dyn RequestRecords>,
    active_tenants: ActiveTenants,
}

impl From<RecordError> for ServiceError {
    fn from(err: RecordError) -> Self {
        match err {
            RecordError::Erased => ServiceError::Refused {
                code: "subject_erased",
                kind: ErrorKind::Conflict,
                message: "you were erased from this practice: nothing more of yours is recorded"
                    .to_owned(),
            },
            RecordError::Unavailable(err) => ServiceError::Unavailable(err),
            RecordError::Unexpected(err) => ServiceError::Internal(err),
        }
    }
}

/// Tenants recently read as active, for the precondition of every customer command.
///
/// Loading the tenant was one of a command's three round trips. Only "active" is
/// remembered, and only for [`ActiveTenants::TTL`]; a tenant administered through this
/// service is forgotten at once. So a suspension reaches this process at once and other
/// processes within the TTL — the same kind of window the read-then-append race already
/// leaves, only longer — while an onboarding or reactivation is seen at once everywhere.
#[derive(Default)]
struct ActiveTenants(Mutex<HashMap<TenantId, Instant>>);

impl ActiveTenants {
    const TTL: Duration = Duration::from_secs(1);

    fn is_known_active(&self, tenant_id: TenantId) -> bool {
        let read_at = self
            .0
            .lock()
            .expect("tenant cache poisoned")
            .get(&tenant_id)
            .copied();
        read_at.is_some_and(|read_at| read_at.elapsed() < Self::TTL)
    }

    fn remember_active(&self, tenant_id: TenantId) {
        let mut known = self.0.lock().expect("tenant cache poisoned");
        known.insert(tenant_id, Instant::now());
    }

    fn forget(&self, tenant_id: TenantId) {
        self.0
            .lock()
            .expect("tenant cache poisoned")
            .remove(&tenant_id);
    }
}

impl Service {
    /// A service commanding `stores`, keeping what isn't an event in `records`.
    pub fn new(stores: Stores, records: Arc<dyn RequestRecords>) -> Self {
        Self {
            inner: Arc::new(Inner {
                stores,
                records,
                active_tenants: ActiveTenants::default(),
            }),
        }
    }

    /// The stores this service commands, for use cases that read streams themselves.
    pub fn stores(&self) -> &Stores {
        &self.inner.stores
    }

    /// Onboards the caller's tenant (an admin of that tenant).
    pub async fn onboard_tenant(
        &self,
        ctx: &RequestContext,
        command: TenantCommand,
    ) -> Result<Accepted, ServiceError> {
        self.administer_tenant(ctx, command).await
    }

    /// Any tenant administration command, dispatched to the caller's tenant.
    pub async fn administer_tenant(
        &self,
        ctx: &RequestContext,
        command: TenantCommand,
    ) -> Result<Accepted, ServiceError> {
        let tenant_id = ctx.actor.tenant_id;
        let result = dispatch(
            &self.inner.stores.tenants,
            Stream::Existing,
            &tenant_id.to_string(),
            command,
            ctx,
        )
        .await;
        self.inner.active_tenants.forget(tenant_id);
        result
    }

    /// Erases a data subject (a customer) of the caller's tenant, for an admin (decision 0027).
    /// Their key is destroyed first, so that nothing of theirs is sealed or opened from then
    /// on, whatever is in flight; then `SubjectErased` is recorded, from which the projections
    /// purge what they derived and [`ErasurePurge`](crate::erasure::ErasurePurge) their uploads
    /// and exports in S3 (retried there until done, which a request could not be: its repeat
    /// is refused). A repeat is refused as `subject_already_erased`, having destroyed nothing
    /// more.
    pub async fn erase_subject(
        &self,
        ctx: &RequestContext,
        subject: UserId,
    ) -> Result<Accepted, ServiceError> {
        // The aggregate checks the role again, but only after the key is gone.
        ctx.actor
            .require(&[Role::Admin])
            .map_err(|_| ServiceError::Forbidden)?;
        self.inner
            .records
            .destroy_subject_key(ctx.actor.tenant_id, &subject)
            .await?;
        let command = TenantCommand::EraseSubject {
            actor: ctx.actor.clone(),
            subject,
        };
        self.administer_tenant(ctx, command).await
    }

    /// Erases the whole tenant, for the operator (decision 0027): every data key of its
    /// subjects is destroyed first, then `TenantErased` recorded, after which the tenant takes
    /// no command; the projections and the purge remove what was derived from its data. A
    /// repeat is refused as `tenant_erased`, having destroyed nothing more.
    pub async fn erase_tenant(&self, ctx: &RequestContext) -> Result<Accepted, ServiceError> {
        // The aggregate checks the role again, but only after the keys are gone.
        ctx.actor
            .require(&[Role::Operator])
            .map_err(|_| ServiceError::Forbidden)?;
        let tenant = ctx.actor.tenant_id;
        self.inner.records.destroy_tenant_keys(tenant).await?;
        let command = TenantCommand::EraseTenant {
            actor: ctx.actor.clone(),
        };
        self.administer_tenant(ctx, command).await
    }

    /// Creates a tenant from the public sign-up, its first admin invited, unless the key's
    /// tenant already exists: then it is the same sign-up again ([`SignedUp::Replayed`]) if
    /// it has the same admin, and `idempotency_key_reused` otherwise. `email_taken` when the
    /// admin's address already belongs to a user of any tenant.
    pub async fn sign_up(
        &self,
        tenant_id: TenantId,
        request_id: &str,
        sign_up: SignUp,
    ) -> Result<SignedUp, ServiceError> {
        if let Some(replayed) = self.replayed_sign_up(tenant_id, &sign_up).await? {
            return replayed;
        }
        self.claim_email(tenant_id, &sign_up.admin.email).await?;
        let actor = Actor::system(tenant_id);
        let ctx = RequestContext {
            metadata: EventMetadata::new(&actor, request_id, Source::Api),
            actor: actor.clone(),
        };
        let command = TenantCommand::SignUp {
            actor,
            name: sign_up.name.clone(),
            plan: sign_up.plan,
            admin: sign_up.admin.clone(),
        };
        match self.administer_tenant(&ctx, command).await {
            Ok(accepted) => Ok(SignedUp::Created(accepted)),
            // The same sign-up, retried while the first was landing.
            Err(ServiceError::Conflict(_)) => self
                .replayed_sign_up(tenant_id, &sign_up)
                .await?
                .unwrap_or(Err(ServiceError::Concurrency)),
            Err(err) => Err(err),
        }
    }

    /// `None` if the key's tenant doesn't exist yet; else the answer to a repeat.
    async fn replayed_sign_up(
        &self,
        tenant_id: TenantId,
        sign_up: &SignUp,
    ) -> Result<Option<Result<SignedUp, ServiceError>>, ServiceError> {
        let tenant = self.tenant_state(tenant_id).await?;
        if tenant.plan().is_none() {
            return Ok(None);
        }
        let same_admin = tenant
            .member(&sign_up.admin.email)
            .is_some_and(|member| member.role == Role::Admin);
        Ok(Some(if same_admin {
            Ok(SignedUp::Replayed)
        } else {
            Err(ServiceError::Refused {
                code: "idempotency_key_reused",
                kind: ErrorKind::Invalid,
                message: "this Idempotency-Key signed up another practice".to_owned(),
            })
        }))
    }

    /// Gives `invitee` `role` in the caller's tenant (an admin), once their address is the
    /// tenant's: `email_taken` if it belongs to a user of another tenant.
    pub async fn invite_user(
        &self,
        ctx: &RequestContext,
        invitee: Invitee,
        role: Role,
    ) -> Result<Accepted, ServiceError> {
        ctx.actor
            .require(&[Role::Admin])
            .map_err(|_| ServiceError::Forbidden)?;
        self.claim_email(ctx.actor.tenant_id, &invitee.email)
            .await?;
        let command = TenantCommand::InviteUser {
            actor: ctx.actor.clone(),
            invitee,
            role,
        };
        self.administer_tenant(ctx, command).await
    }

    /// Takes `email` for `tenant_id` (see `casebook_claim_email` in the migrations): one
    /// address, one practice, as Cognito has one account per address.
    async fn claim_email(&self, tenant_id: TenantId, email: &Email) -> Result<(), ServiceError> {
        if self.inner.records.claim_email(tenant_id, email).await? {
            Ok(())
        } else {
            Err(ServiceError::Refused {
                code: "email_taken",
                kind: ErrorKind::Conflict,
                message: "this address already belongs to a user".to_owned(),
            })
        }
    }

    /// Records how an attempt at the public sign-up ended (`signup_attempts`).
    pub async fn record_sign_up_attempt(
        &self,
        attempt: &SignUpAttempt<'_>,
    ) -> Result<(), ServiceError> {
        let record = SignUpAttemptRecord {
            source: attempt.source.to_owned(),
            email_sha256: attempt.email.map(|email| hex_sha256(email.as_str())),
            outcome: attempt.outcome.to_owned(),
            tenant_id: attempt.tenant_id,
            request_id: attempt.request_id.to_owned(),
        };
        Ok(self.inner.records.record_sign_up_attempt(&record).await?)
    }

    /// Records that the upload at `key` was issued to `actor`, the one customer who may attach
    /// it.
    pub async fn grant_upload(&self, actor: &Actor, key: &UploadKey) -> Result<(), ServiceError> {
        Ok(self.inner.records.grant_upload(actor, key).await?)
    }

    /// Opens a session for a customer.
    pub async fn open_session(
        &self,
        ctx: &RequestContext,
        session_id: SessionId,
        subject: Subject,
        attachments: Vec<UploadKey>,
    ) -> Result<Accepted, ServiceError> {
        let tenant_active = self.tenant_active(ctx.actor.tenant_id).await?;
        let uploads_issued_to_actor = self
            .inner
            .records
            .uploads_issued_to(&ctx.actor, &attachments)
            .await?;
        let command = SessionCommand::Open {
            actor: ctx.actor.clone(),
            session_id,
            subject,
            attachments,
            uploads_issued_to_actor,
            tenant_active,
        };
        dispatch(
            &self.inner.stores.sessions,
            Stream::New,
            &session_id.to_string(),
            command,
            ctx,
        )
        .await
    }

    /// Submits a query in an open session and requests its diagnosis (same id as the
    /// query: one diagnosis per query). Retrying after a partial failure completes it.
    pub async fn submit_query(
        &self,
        ctx: &RequestContext,
        session_id: SessionId,
        query_id: QueryId,
        text: QueryText,
    ) -> Result<Accepted, ServiceError> {
        let tenant_active = self.tenant_active(ctx.actor.tenant_id).await?;
        let submit = SessionCommand::SubmitQuery {
            actor: ctx.actor.clone(),
            query_id,
            text: text.clone(),
            tenant_active,
        };
        let submitted = match dispatch(
            &self.inner.stores.sessions,
            Stream::Existing,
            &session_id.to_string(),
            submit,
            ctx,
        )
        .await
        {
            Ok(accepted) => accepted,
            // A retry of a request whose diagnosis request did not make it.
            Err(ServiceError::Conflict(_))
                if self
                    .query_pending(ctx.actor.tenant_id, &session_id, query_id)
                    .await? =>
            {
                Accepted { events: Vec::new() }
            }
            Err(err) => return Err(err),
        };
        let diagnosis_id = DiagnosisId::for_query(query_id);
        let request = DiagnosisCommand::Request {
            actor: ctx.actor.clone(),
            diagnosis_id,
            session_id,
            query_id,
            query: text,
            tenant_active,
        };
        let requested = dispatch(
            &self.inner.stores.diagnoses,
            Stream::New,
            &diagnosis_id.to_string(),
            request,
            ctx,
        )
        .await?;
        Ok(submitted.extend(requested))
    }

    /// Closes a session.
    pub async fn close_session(
        &self,
        ctx: &RequestContext,
        session_id: SessionId,
    ) -> Result<Accepted, ServiceError> {
        let command = SessionCommand::Close {
            actor: ctx.actor.clone(),
        };
        dispatch(
            &self.inner.stores.sessions,
            Stream::Existing,
            &session_id.to_string(),
            command,
            ctx,
        )
        .await
    }

    /// Runs a diagnosis-pipeline command (context, proposal, failure, resolution).
    pub async fn advance_diagnosis(
        &self,
        ctx: &RequestContext,
        diagnosis_id: DiagnosisId,
        command: DiagnosisCommand,
    ) -> Result<Accepted, ServiceError> {
        dispatch(
            &self.inner.stores.diagnoses,
            Stream::Existing,
            &diagnosis_id.to_string(),
            command,
            ctx,
        )
        .await
    }

    /// A consultant's verdict on a proposed diagnosis (exactly one per diagnosis).
    pub async fn decide(
        &self,
        ctx: &RequestContext,
        diagnosis_id: DiagnosisId,
        verdict: ConsultantVerdict,
    ) -> Result<Accepted, ServiceError> {
        let diagnosis = self
            .diagnosis_snapshot(ctx.actor.tenant_id, diagnosis_id)
            .await?;
        let actor = ctx.actor.clone();
        let command = match verdict {
            ConsultantVerdict::Approve => DecisionCommand::Approve { actor, diagnosis },
            ConsultantVerdict::Amend {
                amended_text,
                reason,
            } => DecisionCommand::Amend {
                actor,
                diagnosis,
                amended_text,
                reason,
            },
            ConsultantVerdict::Reject { reason } => DecisionCommand::Reject {
                actor,
                diagnosis,
                reason,
            },
        };
        let decision_id = DecisionId::for_diagnosis(diagnosis_id);
        dispatch(
            &self.inner.stores.decisions,
            Stream::New,
            &decision_id.to_string(),
            command,
            ctx,
        )
        .await
    }

    /// Approves a proposal without review when the tenant's threshold allows it (the system
    /// acting on a `DiagnosisProposed` event); `None` when the policy says no.
    pub async fn auto_approve_if_allowed(
        &self,
        ctx: &RequestContext,
        diagnosis_id: DiagnosisId,
    ) -> Result<Option<Accepted>, ServiceError> {
        let diagnosis = self
            .diagnosis_snapshot(ctx.actor.tenant_id, diagnosis_id)
            .await?;
        let tenant = self.tenant_state(ctx.actor.tenant_id).await?;
        let Some(confidence) = diagnosis.proposed_confidence else {
            return Ok(None);
        };
        if !should_auto_approve(
            tenant.auto_resolve_threshold(),
            confidence,
            tenant.is_active(),
        ) {
            return Ok(None);
        }
        let command = DecisionCommand::AutoApprove {
            actor: ctx.actor.clone(),
            diagnosis,
            threshold: tenant.auto_resolve_threshold(),
            tenant_active: tenant.is_active(),
        };
        let decision_id = DecisionId::for_diagnosis(diagnosis_id);
        dispatch(
            &self.inner.stores.decisions,
            Stream::New,
            &decision_id.to_string(),
            command,
            ctx,
        )
        .await
        .map(Some)
    }

    /// The diagnosis' query and its latest proposal's text, from its stream.
    pub async fn diagnosis_texts(
        &self,
        tenant_id: TenantId,
        diagnosis_id: DiagnosisId,
    ) -> Result<(String, String), ServiceError> {
        let events = self
            .inner
            .stores
            .diagnoses
            .load_events(tenant_id, &diagnosis_id.to_string())
            .await?;
        let mut query = None;
        let mut proposal = None;
        for envelope in events {
            match envelope.payload {
                DiagnosisEvent::DiagnosisRequested { query: text, .. } => {
                    query = Some(text.as_str().to_owned());
                }
                DiagnosisEvent::DiagnosisProposed { text, .. } => {
                    proposal = Some(text.as_str().to_owned());
                }
                _ => {}
            }
        }
        query.zip(proposal).ok_or(ServiceError::NotFound)
    }

    /// Captures an approved or amended decision as judgment (the system acting on a
    /// `DecisionMade` event).
    pub async fn capture_judgment(
        &self,
        ctx: &RequestContext,
        decision: DecisionSnapshot,
        content: JudgmentContent,
    ) -> Result<Accepted, ServiceError> {
        let judgment_id = JudgmentId::for_decision(decision.decision_id);
        let command = JudgmentCommand::CaptureFromDecision {
            actor: ctx.actor.clone(),
            decision,
            content,
        };
        dispatch(
            &self.inner.stores.judgments,
            Stream::New,
            &judgment_id.to_string(),
            command,
            ctx,
        )
        .await
    }

    /// A consultant's own judgment: author, revise or retire.
    pub async fn edit_judgment(
        &self,
        ctx: &RequestContext,
        judgment_id: JudgmentId,
        command: JudgmentCommand,
    ) -> Result<Accepted, ServiceError> {
        dispatch(
            &self.inner.stores.judgments,
            Stream::Existing,
            &judgment_id.to_string(),
            command,
            ctx,
        )
        .await
    }

    /// The tenant's plan, once onboarded.
    pub async fn tenant_plan(&self, tenant_id: TenantId) -> Result<Option<PlanTier>, ServiceError> {
        Ok(self.tenant_state(tenant_id).await?.plan())
    }

    /// The tenant as its stream now stands (not onboarded: the default, empty tenant).
    pub async fn tenant_state(&self, tenant_id: TenantId) -> Result<Tenant, ServiceError> {
        load(
            &self.inner.stores.tenants,
            tenant_id,
            &tenant_id.to_string(),
        )
        .await
    }

    async fn tenant_active(&self, tenant_id: TenantId) -> Result<bool, ServiceError> {
        if self.inner.active_tenants.is_known_active(tenant_id) {
            return Ok(true);
        }
        let active = self.tenant_state(tenant_id).await?.is_active();
        if active {
            self.inner.active_tenants.remember_active(tenant_id);
        }
        Ok(active)
    }

    async fn diagnosis_snapshot(
        &self,
        tenant_id: TenantId,
        diagnosis_id: DiagnosisId,
    ) -> Result<DiagnosisSnapshot, ServiceError> {
        let diagnosis = load(
            &self.inner.stores.diagnoses,
            tenant_id,
            &diagnosis_id.to_string(),
        )
        .await?;
        diagnosis.snapshot().ok_or(ServiceError::NotFound)
    }

    /// Whether the session holds `query_id` but its diagnosis was never requested.
    async fn query_pending(
        &self,
        tenant_id: TenantId,
        session_id: &SessionId,
        query_id: QueryId,
    ) -> Result<bool, ServiceError> {
        let session = load(
            &self.inner.stores.sessions,
            tenant_id,
            &session_id.to_string(),
        )
        .await?;
        if !session.has_query(query_id) {
            return Ok(false);
        }
        let diagnosis_id = DiagnosisId::for_query(query_id);
        let diagnosis = load(
            &self.inner.stores.diagnoses,
            tenant_id,
            &diagnosis_id.to_string(),
        )
        .await?;
        Ok(diagnosis.status().is_none())
    }
}

/// What the public sign-up asks for.
#[derive(Debug, Clone)]
pub struct SignUp {
    /// The practice's name.
    pub name: TenantName,
    /// The plan it starts on.
    pub plan: PlanTier,
    /// Its first admin.
    pub admin: Invitee,
}

/// How a sign-up landed.
#[derive(Debug)]
pub enum SignedUp {
    /// The tenant was created now.
    Created(Accepted),
    /// The same sign-up had already created it.
    Replayed,
}

/// One attempt at the public sign-up, as `signup_attempts` records it.
#[derive(Debug)]
pub struct SignUpAttempt<'a> {
    /// The caller's address.
    pub source: &'a str,
    /// The admin's address, if the request named a valid one (kept hashed).
    pub email: Option<&'a Email>,
    /// How it ended: `created`, `replayed`, or the problem code.
    pub outcome: &'a str,
    /// The tenant created or replayed.
    pub tenant_id: Option<TenantId>,
    /// The request.
    pub request_id: &'a str,
}

fn hex_sha256(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// What a consultant decided.
#[derive(Debug, Clone)]
pub enum ConsultantVerdict {
    /// Approve the proposal as it stands.
    Approve,
    /// Correct it.
    Amend {
        /// The corrected text.
        amended_text: DiagnosisText,
        /// Why, optionally.
        reason: Option<Reason>,
    },
    /// Reject it.
    Reject {
        /// Why (required).
        reason: Reason,
    },
}

async fn load<A>(
    store: &Arc<dyn EventRepository<A>>,
    tenant: TenantId,
    aggregate_id: &str,
) -> Result<A, ServiceError>
where
    A: Aggregate,
    A::Error: DomainError + Send + Sync + 'static,
{
    Ok(store.load(tenant, aggregate_id).await?)
}

/// Whether a command starts its stream or continues it.
#[derive(Clone, Copy)]
enum Stream {
    /// An id the caller chose or derived: the stream is read only if it turns out to exist,
    /// so a creation costs one round trip.
    New,
    /// The stream is loaded first.
    Existing,
}

async fn dispatch<A>(
    store: &Arc<dyn EventRepository<A>>,
    stream: Stream,
    aggregate_id: &str,
    command: A::Command,
    ctx: &RequestContext,
) -> Result<Accepted, ServiceError>
where
    A: Aggregate,
    A::Error: DomainError + Send + Sync + 'static,
{
    let metadata = ctx.metadata.to_map();
    let events = match stream {
        Stream::New => store.execute_new(aggregate_id, command, metadata).await?,
        Stream::Existing => store.execute(aggregate_id, command, metadata).await?,
    };
    Ok(Accepted { events })
}
