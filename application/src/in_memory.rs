//! Every port of the application in memory, for tests that run in milliseconds: event
//! streams that keep each tenant's apart as row-level security does, the request path's
//! records, a judgment index of fixed answers, a mailbox that keeps invitations, and buckets.
//!
//! They behave as the real adapters do where a use case can tell: a stream of another tenant
//! reads as no stream and can't be created again; a command the aggregate refuses appends
//! nothing; once a subject's key is destroyed, their streams read with every personal field
//! its redaction, as the sealing store's do. A store can be told to fail its next appends, to
//! drive the retry branches.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::error::Error as StdError;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use casebook_domain::actor::Actor;
use casebook_domain::budget::BudgetMonth;
use casebook_domain::decision::{ConsultantDecision, DecisionEvent};
use casebook_domain::diagnosis::{Diagnosis, DiagnosisStatus};
use casebook_domain::finetune::LogPosition;
use casebook_domain::ids::{DiagnosisId, TenantId, UserId};
use casebook_domain::judgment::Judgment;
use casebook_domain::personal::{personal_fields, DataSubject};
use casebook_domain::session::TenantSession;
use casebook_domain::tenant::Tenant;
use casebook_domain::values::{Email, UploadKey};
use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent, EventEnvelope};

use crate::business::{BusinessEvent, BusinessLog};
use crate::jobs::{DecisionLog, LoggedDecision, TenantObjects};
use crate::ports::{
    BoxError, Clock, CommandError, Committed, DeferredDiagnoses, EventRepository, FoundPrecedent,
    Mailbox, PrecedentSearch, Pricing, RecordError, RequestRecords, SignUpAttemptRecord,
    TokenLedger, UploadGrants,
};
use crate::service::{Service, Stores};

/// A failure a store or port is told to answer with next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The dependency is unavailable (retryable).
    Unavailable,
    /// Another command appended first (retryable).
    Conflict,
}

fn outage(what: &str) -> BoxError {
    format!("{what} is down (injected)").into()
}

/// The global log's positions, shared by every stream of one [`InMemoryEvents`] family.
#[derive(Debug, Default)]
pub struct Positions(AtomicI64);

impl Positions {
    fn next(&self) -> i64 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// The data keys destroyed, by tenant and subject or of a whole tenant: what the records
/// destroy and the streams read their subjects' fields as redactions for.
#[derive(Debug, Default)]
pub struct DestroyedKeys {
    subjects: Mutex<BTreeSet<(TenantId, UserId)>>,
    tenants: Mutex<BTreeSet<TenantId>>,
}

impl DestroyedKeys {
    fn contains(&self, tenant: TenantId, subject: &UserId) -> bool {
        self.tenants
            .lock()
            .expect("erased tenants")
            .contains(&tenant)
            || self
                .subjects
                .lock()
                .expect("destroyed keys")
                .contains(&(tenant, subject.clone()))
    }
}

struct Stream<A: Aggregate> {
    tenant: TenantId,
    events: Vec<EventEnvelope<A>>,
    /// Each event's position in the global log.
    positions: Vec<i64>,
}

/// One aggregate type's streams in memory.
pub struct InMemoryEvents<A: Aggregate> {
    positions: Arc<Positions>,
    destroyed: Arc<DestroyedKeys>,
    streams: Mutex<HashMap<String, Stream<A>>>,
    /// What the next appends do: `None` lands, `Some` fails; empty, all land.
    appends: Mutex<VecDeque<Option<Failure>>>,
}

impl<A: Aggregate> InMemoryEvents<A> {
    /// The next append (after those already scripted) fails with `failure`.
    pub fn fail_next_append(&self, failure: Failure) {
        self.appends
            .lock()
            .expect("appends")
            .push_back(Some(failure));
    }

    /// The next append (after those already scripted) lands: with
    /// [`fail_next_append`](Self::fail_next_append), fails a later step of a use case.
    pub fn let_next_append_land(&self) {
        self.appends.lock().expect("appends").push_back(None);
    }

    /// The metadata of every event of stream `id`, in order.
    pub fn metadata(&self, id: &str) -> Vec<HashMap<String, String>> {
        self.streams
            .lock()
            .expect("streams")
            .get(id)
            .map(|stream| stream.events.iter().map(|e| e.metadata.clone()).collect())
            .unwrap_or_default()
    }

    /// Every event of stream `id`, in order, whatever its tenant (what a test asserts on).
    pub fn events(&self, id: &str) -> Vec<A::Event> {
        self.streams
            .lock()
            .expect("streams")
            .get(id)
            .map(|stream| stream.events.iter().map(|e| e.payload.clone()).collect())
            .unwrap_or_default()
    }

    fn tenant_of(metadata: &HashMap<String, String>) -> Result<TenantId, CommandError<A::Error>>
    where
        A::Error: StdError,
    {
        metadata
            .get("tenant_id")
            .and_then(|tenant| tenant.parse().ok())
            .ok_or_else(|| CommandError::Invalid("event metadata without a valid tenant_id".into()))
    }
}

impl<A: Aggregate + DataSubject> InMemoryEvents<A> {
    /// Empty streams numbering their events from `positions`, read as redactions once their
    /// subject's key is among `destroyed`.
    pub fn new(positions: Arc<Positions>, destroyed: Arc<DestroyedKeys>) -> Self {
        Self {
            positions,
            destroyed,
            streams: Mutex::default(),
            appends: Mutex::default(),
        }
    }

    fn visible(&self, tenant: TenantId, id: &str) -> Vec<EventEnvelope<A>> {
        match self.streams.lock().expect("streams").get(id) {
            Some(stream) if stream.tenant == tenant => self.readable(stream),
            _ => Vec::new(),
        }
    }

    /// The stream's events as a reader sees them: in the clear, or with every personal field
    /// its redaction once the stream's subject is erased.
    fn readable(&self, stream: &Stream<A>) -> Vec<EventEnvelope<A>> {
        let mut state = A::default();
        for envelope in &stream.events {
            state.apply(envelope.payload.clone());
        }
        let erased = state
            .data_subject()
            .is_some_and(|subject| self.destroyed.contains(stream.tenant, &subject));
        if !erased {
            return stream.events.clone();
        }
        stream.events.iter().cloned().map(redacted).collect()
    }
}

/// `envelope` with each personal field of its event its redaction, as the sealing store opens
/// it once the key is gone.
fn redacted<A: Aggregate>(envelope: EventEnvelope<A>) -> EventEnvelope<A> {
    let fields = personal_fields(A::TYPE, &envelope.payload.event_type());
    let mut payload = serde_json::to_value(&envelope.payload).expect("an event serializes");
    for field in fields {
        if let Some(value) = payload.pointer_mut(field.pointer).filter(|v| !v.is_null()) {
            *value = serde_json::from_str(field.redacted).expect("a redaction is JSON");
        }
    }
    EventEnvelope {
        payload: serde_json::from_value(payload).expect("a redacted event decodes"),
        ..envelope
    }
}

#[async_trait]
impl<A> EventRepository<A> for InMemoryEvents<A>
where
    A: Aggregate<Services = ()> + DataSubject + 'static,
    A::Command: Send + 'static,
    A::Event: DomainEvent,
    A::Error: StdError + Send,
{
    async fn load(&self, tenant: TenantId, id: &str) -> Result<A, CommandError<A::Error>> {
        let mut state = A::default();
        for envelope in self.visible(tenant, id) {
            state.apply(envelope.payload);
        }
        Ok(state)
    }

    async fn load_events(
        &self,
        tenant: TenantId,
        id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, CommandError<A::Error>> {
        Ok(self.visible(tenant, id))
    }

    async fn execute(
        &self,
        id: &str,
        command: A::Command,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<Committed>, CommandError<A::Error>> {
        let tenant = Self::tenant_of(&metadata)?;
        let loaded = self.visible(tenant, id);
        let mut state = A::default();
        for envelope in &loaded {
            state.apply(envelope.payload.clone());
        }
        let sink = EventSink::default();
        state
            .handle(command, &(), &sink)
            .await
            .map_err(CommandError::Rejected)?;
        let events = sink.collect().await;
        if let Some(Some(failure)) = self.appends.lock().expect("appends").pop_front() {
            return Err(match failure {
                Failure::Unavailable => CommandError::Unavailable(outage("the event store")),
                Failure::Conflict => CommandError::Conflict,
            });
        }
        let mut streams = self.streams.lock().expect("streams");
        let stream = streams.entry(id.to_owned()).or_insert_with(|| Stream {
            tenant,
            events: Vec::new(),
            positions: Vec::new(),
        });
        if stream.tenant != tenant {
            return Err(CommandError::NotFound);
        }
        if stream.events.len() != loaded.len() {
            return Err(CommandError::Conflict);
        }
        let mut committed = Vec::with_capacity(events.len());
        for event in events {
            let sequence = stream.events.len() + 1;
            let global_position = self.positions.next();
            stream.positions.push(global_position);
            committed.push(Committed {
                aggregate_type: A::TYPE,
                aggregate_id: id.to_owned(),
                sequence,
                global_position,
                event_type: event.event_type(),
            });
            stream.events.push(EventEnvelope {
                aggregate_id: id.to_owned(),
                sequence,
                payload: event,
                metadata: metadata.clone(),
            });
        }
        Ok(committed)
    }

    async fn execute_new(
        &self,
        id: &str,
        command: A::Command,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<Committed>, CommandError<A::Error>> {
        self.execute(id, command, metadata).await
    }
}

/// The streams of every aggregate the service commands, numbered from one log.
pub struct InMemoryStores {
    /// Tenants.
    pub tenants: Arc<InMemoryEvents<Tenant>>,
    /// Sessions.
    pub sessions: Arc<InMemoryEvents<TenantSession>>,
    /// Diagnoses.
    pub diagnoses: Arc<InMemoryEvents<Diagnosis>>,
    /// Decisions.
    pub decisions: Arc<InMemoryEvents<ConsultantDecision>>,
    /// Judgments.
    pub judgments: Arc<InMemoryEvents<Judgment>>,
    /// The request path's records.
    pub records: Arc<InMemoryRecords>,
}

impl Default for InMemoryStores {
    fn default() -> Self {
        let positions = Arc::new(Positions::default());
        let records = Arc::new(InMemoryRecords::default());
        let destroyed = records.destroyed_keys.clone();
        Self {
            tenants: Arc::new(InMemoryEvents::new(positions.clone(), destroyed.clone())),
            sessions: Arc::new(InMemoryEvents::new(positions.clone(), destroyed.clone())),
            diagnoses: Arc::new(InMemoryEvents::new(positions.clone(), destroyed.clone())),
            decisions: Arc::new(InMemoryEvents::new(positions.clone(), destroyed.clone())),
            judgments: Arc::new(InMemoryEvents::new(positions, destroyed)),
            records,
        }
    }
}

impl InMemoryStores {
    /// A service over these stores and records.
    pub fn service(&self) -> Service {
        let stores = Stores {
            tenants: self.tenants.clone(),
            sessions: self.sessions.clone(),
            diagnoses: self.diagnoses.clone(),
            decisions: self.decisions.clone(),
            judgments: self.judgments.clone(),
        };
        Service::new(stores, self.records.clone())
    }
}

/// The request path's records in memory.
#[derive(Default)]
pub struct InMemoryRecords {
    grants: Mutex<BTreeSet<(TenantId, String, String)>>,
    claims: Mutex<HashMap<Email, TenantId>>,
    attempts: Mutex<Vec<SignUpAttemptRecord>>,
    destroyed_keys: Arc<DestroyedKeys>,
}

impl InMemoryRecords {
    /// Whether `subject`'s data key in `tenant` was destroyed.
    pub fn subject_key_destroyed(&self, tenant: TenantId, subject: &UserId) -> bool {
        self.destroyed_keys.contains(tenant, subject)
    }

    /// The key of every upload granted in `tenant`, whoever to.
    pub fn granted_keys(&self, tenant: TenantId) -> Vec<String> {
        let grants = self.grants.lock().expect("grants");
        grants
            .iter()
            .filter(|(owner, _, _)| *owner == tenant)
            .map(|(_, key, _)| key.clone())
            .collect()
    }

    /// Every sign-up attempt kept, in order.
    pub fn sign_up_attempts(&self) -> Vec<SignUpAttemptRecord> {
        self.attempts.lock().expect("attempts").clone()
    }
}

#[async_trait]
impl RequestRecords for InMemoryRecords {
    async fn grant_upload(&self, actor: &Actor, key: &UploadKey) -> Result<(), RecordError> {
        if self
            .destroyed_keys
            .contains(actor.tenant_id, &actor.user_id)
        {
            return Err(RecordError::Erased);
        }
        self.grants.lock().expect("grants").insert((
            actor.tenant_id,
            key.as_str().to_owned(),
            actor.user_id.as_str().to_owned(),
        ));
        Ok(())
    }

    async fn uploads_issued_to(
        &self,
        actor: &Actor,
        keys: &[UploadKey],
    ) -> Result<BTreeSet<UploadKey>, RecordError> {
        let grants = self.grants.lock().expect("grants");
        Ok(keys
            .iter()
            .filter(|key| {
                grants.contains(&(
                    actor.tenant_id,
                    key.as_str().to_owned(),
                    actor.user_id.as_str().to_owned(),
                ))
            })
            .cloned()
            .collect())
    }

    async fn claim_email(&self, tenant: TenantId, email: &Email) -> Result<bool, RecordError> {
        let mut claims = self.claims.lock().expect("claims");
        Ok(*claims.entry(email.clone()).or_insert(tenant) == tenant)
    }

    async fn record_sign_up_attempt(
        &self,
        attempt: &SignUpAttemptRecord,
    ) -> Result<(), RecordError> {
        self.attempts
            .lock()
            .expect("attempts")
            .push(attempt.clone());
        Ok(())
    }

    async fn destroy_subject_key(
        &self,
        tenant: TenantId,
        subject: &UserId,
    ) -> Result<bool, RecordError> {
        Ok(self
            .destroyed_keys
            .subjects
            .lock()
            .expect("destroyed keys")
            .insert((tenant, subject.clone())))
    }

    async fn destroy_tenant_keys(&self, tenant: TenantId) -> Result<bool, RecordError> {
        Ok(self
            .destroyed_keys
            .tenants
            .lock()
            .expect("erased tenants")
            .insert(tenant))
    }
}

#[async_trait]
impl UploadGrants for InMemoryRecords {
    async fn granted_to(
        &self,
        tenant: TenantId,
        subject: Option<&UserId>,
    ) -> Result<Vec<UploadKey>, RecordError> {
        let grants = self.grants.lock().expect("grants");
        grants
            .iter()
            .filter(|(owner, _, issued_to)| {
                *owner == tenant && subject.is_none_or(|subject| issued_to == subject.as_str())
            })
            .map(|(_, key, _)| {
                UploadKey::parse(key.clone()).map_err(|err| RecordError::Unexpected(err.into()))
            })
            .collect()
    }

    async fn revoke(&self, tenant: TenantId, keys: &[UploadKey]) -> Result<(), RecordError> {
        let mut grants = self.grants.lock().expect("grants");
        grants.retain(|(owner, key, _)| {
            *owner != tenant || !keys.iter().any(|revoked| revoked.as_str() == key)
        });
        Ok(())
    }
}

/// A judgment index answering every search with the same precedents, best first.
#[derive(Default)]
pub struct FixedPrecedents {
    found: Vec<FoundPrecedent>,
    failures: Mutex<VecDeque<Failure>>,
    asked_for: Mutex<Vec<u32>>,
}

impl FixedPrecedents {
    /// An index that always finds `found`.
    pub fn new(found: Vec<FoundPrecedent>) -> Self {
        Self {
            found,
            ..Self::default()
        }
    }

    /// The next search fails with `failure`.
    pub fn fail_next(&self, failure: Failure) {
        self.failures.lock().expect("failures").push_back(failure);
    }

    /// How many precedents each search asked for, in order.
    pub fn asked_for(&self) -> Vec<u32> {
        self.asked_for.lock().expect("searches").clone()
    }
}

#[async_trait]
impl PrecedentSearch for FixedPrecedents {
    async fn nearest(
        &self,
        _tenant: TenantId,
        _vector: &[f32],
        k: u32,
    ) -> Result<Vec<FoundPrecedent>, BoxError> {
        self.asked_for.lock().expect("searches").push(k);
        if self
            .failures
            .lock()
            .expect("failures")
            .pop_front()
            .is_some()
        {
            return Err(outage("the judgment index"));
        }
        Ok(self.found.iter().take(k as usize).cloned().collect())
    }
}

/// Prices of models by id, in millionths of a dollar per token in and out.
#[derive(Debug, Default, Clone)]
pub struct FlatPrices(pub HashMap<String, (u64, u64)>);

impl Pricing for FlatPrices {
    fn cost_usd_micros(&self, model_id: &str, input: u32, output: u32) -> Option<u64> {
        let (per_input, per_output) = self.0.get(model_id)?;
        Some(u64::from(input) * per_input + u64::from(output) * per_output)
    }
}

/// A business-events log that keeps every event it is told.
#[derive(Default)]
pub struct KeptBusinessLog(Mutex<Vec<BusinessEvent>>);

impl KeptBusinessLog {
    /// Every event told so far, in order.
    pub fn events(&self) -> Vec<BusinessEvent> {
        self.0.lock().expect("business log").clone()
    }
}

impl BusinessLog for KeptBusinessLog {
    fn record(&self, event: &BusinessEvent) {
        self.0.lock().expect("business log").push(event.clone());
    }
}

/// A mailbox that keeps every invitation (the demo hands out their temporary passwords;
/// tests sign in with them).
#[derive(Default)]
pub struct KeptMailbox(Mutex<Vec<(Email, String)>>);

impl KeptMailbox {
    /// The latest temporary password sent to `email`.
    pub fn temporary_password(&self, email: &Email) -> Option<String> {
        let kept = self.0.lock().expect("mailbox");
        kept.iter()
            .rev()
            .find(|(to, _)| to == email)
            .map(|(_, password)| password.clone())
    }

    /// How many invitations went to `email`.
    pub fn invitations_to(&self, email: &Email) -> usize {
        let kept = self.0.lock().expect("mailbox");
        kept.iter().filter(|(to, _)| to == email).count()
    }
}

impl Mailbox for KeptMailbox {
    fn invitation(&self, _tenant: TenantId, email: &Email, temporary_password: &str) {
        let mut kept = self.0.lock().expect("mailbox");
        kept.push((email.clone(), temporary_password.to_owned()));
    }
}

/// The tokens each tenant spent per month, as the tests say; none until told.
#[derive(Default)]
pub struct InMemoryLedger(Mutex<HashMap<(TenantId, BudgetMonth), u64>>);

impl InMemoryLedger {
    /// `tenant` spent `tokens` more in `month`.
    pub fn spend(&self, tenant: TenantId, month: BudgetMonth, tokens: u64) {
        *self
            .0
            .lock()
            .expect("ledger")
            .entry((tenant, month))
            .or_default() += tokens;
    }
}

#[async_trait]
impl TokenLedger for InMemoryLedger {
    async fn tokens_used(&self, tenant: TenantId, month: BudgetMonth) -> Result<u64, BoxError> {
        Ok(self
            .0
            .lock()
            .expect("ledger")
            .get(&(tenant, month))
            .copied()
            .unwrap_or(0))
    }
}

/// The diagnoses read model without its lag: each of the tenant's streams as it stands, by
/// id (streams in memory keep no log order).
#[async_trait]
impl DeferredDiagnoses for InMemoryEvents<Diagnosis> {
    async fn deferred_for_budget(&self, tenant: TenantId) -> Result<Vec<DiagnosisId>, BoxError> {
        let streams = self.streams.lock().expect("streams");
        let mut deferred = Vec::new();
        for (id, stream) in streams.iter().filter(|(_, s)| s.tenant == tenant) {
            let mut diagnosis = Diagnosis::default();
            for envelope in &stream.events {
                diagnosis.apply(envelope.payload.clone());
            }
            if diagnosis.status() == Some(DiagnosisStatus::DeferredBudget) {
                deferred.push(id.parse::<DiagnosisId>()?);
            }
        }
        deferred.sort_unstable_by_key(|id| *id.as_uuid());
        Ok(deferred)
    }
}

/// The decisions log without its lag: every decision of the tenant's streams, as they read
/// now, in the order they were appended (one position stands for both of a [`LogPosition`]'s).
#[async_trait]
impl DecisionLog for InMemoryEvents<ConsultantDecision> {
    async fn decisions_after(
        &self,
        tenant: TenantId,
        after: Option<LogPosition>,
    ) -> Result<Vec<LoggedDecision>, BoxError> {
        let streams = self.streams.lock().expect("streams");
        let mut decisions = Vec::new();
        for stream in streams.values().filter(|s| s.tenant == tenant) {
            for (envelope, position) in self.readable(stream).into_iter().zip(&stream.positions) {
                let DecisionEvent::DecisionMade {
                    diagnosis_id,
                    verdict,
                    ..
                } = envelope.payload;
                let position = LogPosition {
                    transaction_id: *position,
                    global_position: *position,
                };
                if after.is_none_or(|after| position > after) {
                    decisions.push(LoggedDecision {
                        diagnosis_id,
                        verdict,
                        position,
                    });
                }
            }
        }
        decisions.sort_unstable_by_key(|decision| decision.position);
        Ok(decisions)
    }
}

/// A bucket whose keys start with their tenant's id, in memory: bodies by key, and an outage
/// on demand.
pub struct InMemoryBucket {
    name: String,
    bodies: Mutex<BTreeMap<String, Vec<u8>>>,
    down: Mutex<bool>,
}

impl InMemoryBucket {
    /// An empty bucket called `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            bodies: Mutex::default(),
            down: Mutex::default(),
        }
    }

    /// From now on every call fails (`true`) or lands (`false`).
    pub fn set_down(&self, down: bool) {
        *self.down.lock().expect("down") = down;
    }

    /// Every key it holds, in order.
    pub fn keys(&self) -> Vec<String> {
        self.bodies
            .lock()
            .expect("bodies")
            .keys()
            .cloned()
            .collect()
    }

    /// The body at `key`, if any.
    pub fn body(&self, key: &str) -> Option<Vec<u8>> {
        self.bodies.lock().expect("bodies").get(key).cloned()
    }

    fn available(&self, tenant: TenantId, key: &str) -> Result<(), BoxError> {
        if !key.starts_with(&format!("{tenant}/")) {
            return Err(format!("{key:?} is outside the tenant's prefix").into());
        }
        if *self.down.lock().expect("down") {
            return Err(outage("the bucket"));
        }
        Ok(())
    }
}

#[async_trait]
impl TenantObjects for InMemoryBucket {
    fn bucket(&self) -> &str {
        &self.name
    }

    fn key(&self, tenant: TenantId, relative: &str) -> Result<String, BoxError> {
        Ok(format!("{tenant}/{relative}"))
    }

    async fn put(
        &self,
        tenant: TenantId,
        key: &str,
        body: Vec<u8>,
        _content_type: &str,
    ) -> Result<(), BoxError> {
        self.available(tenant, key)?;
        self.bodies
            .lock()
            .expect("bodies")
            .insert(key.to_owned(), body);
        Ok(())
    }

    async fn delete(&self, tenant: TenantId, key: &str) -> Result<(), BoxError> {
        self.available(tenant, key)?;
        self.bodies.lock().expect("bodies").remove(key);
        Ok(())
    }
}

/// A clock that shows the time it is set to.
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    /// A clock showing `now`.
    pub fn at(now: DateTime<Utc>) -> Self {
        Self(Mutex::new(now))
    }

    /// From now on it shows `now`.
    pub fn set(&self, now: DateTime<Utc>) {
        *self.0.lock().expect("clock") = now;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock")
    }
}
