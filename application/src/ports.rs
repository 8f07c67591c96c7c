//! What the use cases need from outside, as small traits this crate owns. The adapters
//! implement them for Postgres and AWS; [`in_memory`](crate::in_memory) implements every one
//! for tests. The AI ports ([`Embedder`](casebook_domain::ports::Embedder),
//! [`Llm`](casebook_domain::ports::Llm), [`AttachmentStore`](casebook_domain::ports::AttachmentStore))
//! are the domain's own.

use std::collections::{BTreeSet, HashMap};
use std::error::Error as StdError;

use async_trait::async_trait;
use casebook_domain::actor::Actor;
use casebook_domain::budget::BudgetMonth;
use casebook_domain::ids::{DiagnosisId, TenantId, UserId};
use casebook_domain::policy::PlanTier;
use casebook_domain::ports::Precedent;
use casebook_domain::tenant::Member;
use casebook_domain::values::{Email, UploadKey};
use chrono::{DateTime, Utc};
use cqrs_es::{Aggregate, EventEnvelope};

/// A dependency's underlying error, kept as the cause.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// An event the store accepted, and where it landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The aggregate's type (`Aggregate::TYPE`).
    pub aggregate_type: &'static str,
    /// The aggregate's id.
    pub aggregate_id: String,
    /// Position within the aggregate's stream (its version after this event).
    pub sequence: usize,
    /// Position in the global log.
    pub global_position: i64,
    /// The event's type.
    pub event_type: String,
}

/// The outcome of a failed command, in the terms the service maps to responses.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: StdError> {
    /// The aggregate refused the command (a domain error).
    #[error(transparent)]
    Rejected(E),
    /// Another command appended to the stream first; reloading and retrying may succeed.
    #[error("optimistic concurrency conflict")]
    Conflict,
    /// The stream's id belongs to another tenant's stream (answered as an unknown id is).
    #[error("no such stream in this tenant")]
    NotFound,
    /// The event could not be stored as given.
    #[error("invalid event: {0}")]
    Invalid(String),
    /// Transient infrastructure failure; the command may be retried.
    #[error("event store unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else (details only in logs).
    #[error("unexpected event store failure")]
    Unexpected(#[source] BoxError),
}

/// One aggregate type's streams, each read in its tenant's scope only.
///
/// A command is handled against the stream's current state and its events appended with the
/// metadata (which names the tenant) in one step: the store's optimistic concurrency check
/// is what makes read-decide-append safe.
#[async_trait]
pub trait EventRepository<A>: Send + Sync
where
    A: Aggregate,
    A::Error: StdError,
{
    /// `tenant`'s stream `id` folded into its current state (the default state when the
    /// stream doesn't exist or is another tenant's).
    async fn load(&self, tenant: TenantId, id: &str) -> Result<A, CommandError<A::Error>>;

    /// Every event of `tenant`'s stream `id`, in order, with its metadata.
    async fn load_events(
        &self,
        tenant: TenantId,
        id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, CommandError<A::Error>>;

    /// Loads stream `id` of the tenant `metadata` names, lets it handle `command` and appends
    /// the resulting events with `metadata`.
    async fn execute(
        &self,
        id: &str,
        command: A::Command,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<Committed>, CommandError<A::Error>>;

    /// [`execute`](Self::execute) for a command that usually creates its stream; a store may
    /// save the read by assuming the stream is new and falling back when it isn't.
    async fn execute_new(
        &self,
        id: &str,
        command: A::Command,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<Committed>, CommandError<A::Error>>;
}

/// Why a record of the request path could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The actor is an erased data subject, or of an erased tenant (decision 0027): nothing
    /// more of theirs is recorded.
    #[error("the data subject is erased")]
    Erased,
    /// The database could not be reached or shed the request; retrying may succeed.
    #[error("records unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else.
    #[error("records failed")]
    Unexpected(#[source] BoxError),
}

/// One attempt at the public sign-up, as it is kept for abuse review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignUpAttemptRecord {
    /// The caller's address.
    pub source: String,
    /// The SHA-256 of the admin's address, if the request named a valid one: enough to
    /// count repeats of one address, never the address itself.
    pub email_sha256: Option<String>,
    /// How it ended: `created`, `replayed`, or the problem code.
    pub outcome: String,
    /// The tenant created or replayed.
    pub tenant_id: Option<TenantId>,
    /// The request.
    pub request_id: String,
}

/// What the request path records beside events: who may attach which upload, which
/// practice each address belongs to, and how sign-up attempts ended.
#[async_trait]
pub trait RequestRecords: Send + Sync {
    /// Records that the upload at `key` was issued to `actor`.
    /// [`RecordError::Erased`] for an erased actor: their file's name is personal, and nothing
    /// of theirs is recorded again.
    async fn grant_upload(&self, actor: &Actor, key: &UploadKey) -> Result<(), RecordError>;

    /// Those of `keys` issued to `actor`.
    async fn uploads_issued_to(
        &self,
        actor: &Actor,
        keys: &[UploadKey],
    ) -> Result<BTreeSet<UploadKey>, RecordError>;

    /// Takes `email` for `tenant`; `false` when another practice holds it (one address, one
    /// practice, as the identity provider has one account per address).
    async fn claim_email(&self, tenant: TenantId, email: &Email) -> Result<bool, RecordError>;

    /// Keeps one sign-up attempt.
    async fn record_sign_up_attempt(
        &self,
        attempt: &SignUpAttemptRecord,
    ) -> Result<(), RecordError>;

    /// Destroys `subject`'s data key in `tenant` (decision 0027): every value of theirs the
    /// log holds sealed reads as a redaction from then on, and nothing of theirs is sealed
    /// again. `false` when it already was.
    async fn destroy_subject_key(
        &self,
        tenant: TenantId,
        subject: &UserId,
    ) -> Result<bool, RecordError>;

    /// Destroys every data key of `tenant` (decision 0027), and keeps any from being made for
    /// it again. `false` when it already was.
    async fn destroy_tenant_keys(&self, tenant: TenantId) -> Result<bool, RecordError>;
}

/// Who was issued which upload, as an erasure's purge needs it: an upload's key ends in the
/// name of the customer's file, so the purge deletes the objects and then the grants.
#[async_trait]
pub trait UploadGrants: Send + Sync {
    /// The keys of every upload issued to `subject` in `tenant`, or to anyone without one.
    async fn granted_to(
        &self,
        tenant: TenantId,
        subject: Option<&UserId>,
    ) -> Result<Vec<UploadKey>, RecordError>;

    /// Forgets the grants of `keys` in `tenant` (a key without one is forgotten already).
    async fn revoke(&self, tenant: TenantId, keys: &[UploadKey]) -> Result<(), RecordError>;
}

/// A precedent the judgment index found, with the event its stored content came from.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundPrecedent {
    /// The judgment as the prompt shows it.
    pub precedent: Precedent,
    /// The global position of the event the index row was built from.
    pub source_position: i64,
}

/// The tenant's captured judgment, searched by similarity.
#[async_trait]
pub trait PrecedentSearch: Send + Sync {
    /// `tenant`'s `k` judgments nearest to `vector`, best first.
    async fn nearest(
        &self,
        tenant: TenantId,
        vector: &[f32],
        k: u32,
    ) -> Result<Vec<FoundPrecedent>, BoxError>;
}

/// What model calls cost.
pub trait Pricing: Send + Sync {
    /// The cost in millionths of a US dollar, `None` for a model without a price.
    fn cost_usd_micros(&self, model_id: &str, input_tokens: u32, output_tokens: u32)
        -> Option<u64>;
}

/// What went wrong making an account what its tenant says.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The address belongs to an account of another tenant (one made outside Casebook: the
    /// product claims each address for one tenant before inviting it).
    #[error("{email} already has an account in another tenant")]
    OtherTenant {
        /// The address.
        email: Email,
    },
    /// The identity provider failed; trying again later may succeed.
    #[error("the identity provider failed")]
    Unavailable(#[source] BoxError),
}

/// An account as [`IdentityProvider::converge`] left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The account's subject: the `sub` of its tokens.
    pub sub: String,
    /// The temporary password of an invitation sent now, where the provider hands it back
    /// (the emulator) instead of mailing it.
    pub temporary_password: Option<String>,
}

/// The identity provider, as the people reaction needs it.
#[async_trait]
pub trait IdentityProvider: Send + Sync {
    /// Makes the account of `email` in `tenant` what `member` says: created (and invited) if
    /// absent, in exactly their role's group, enabled or disabled. Safe to repeat.
    async fn converge(
        &self,
        tenant: TenantId,
        email: &Email,
        member: &Member,
    ) -> Result<Provisioned, IdentityError>;
}

/// Where an invitation the identity provider handed back goes, when it doesn't mail it
/// itself (the emulator sends no mail).
pub trait Mailbox: Send + Sync {
    /// `email` was invited to `tenant` with `temporary_password`.
    fn invitation(&self, tenant: TenantId, email: &Email, temporary_password: &str);
}

/// The gateway's API keys, as the usage-key reaction needs them.
#[async_trait]
pub trait UsageKeys: Send + Sync {
    /// Puts `tenant`'s own key (created on first use) on `plan`'s usage plan only; its id.
    async fn put_on_plan(&self, tenant: TenantId, plan: PlanTier) -> Result<String, BoxError>;

    /// The value of the key `key_id` (what the authorizer returns).
    async fn key_value(&self, key_id: &str) -> Result<String, BoxError>;
}

/// The model tokens a tenant's proposals spent, as the usage read model has counted them.
#[async_trait]
pub trait TokenLedger: Send + Sync {
    /// Tokens (in and out) `tenant`'s proposals spent in `month`.
    async fn tokens_used(&self, tenant: TenantId, month: BudgetMonth) -> Result<u64, BoxError>;
}

/// The diagnoses put aside while their tenant's budget was spent, as the diagnoses read
/// model lists them.
#[async_trait]
pub trait DeferredDiagnoses: Send + Sync {
    /// `tenant`'s diagnoses deferred for its budget, oldest first.
    async fn deferred_for_budget(&self, tenant: TenantId) -> Result<Vec<DiagnosisId>, BoxError>;
}

/// The time, for the use cases that depend on the calendar (a budget is a month's).
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
