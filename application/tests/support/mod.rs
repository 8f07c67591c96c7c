//! A diagnosis scenario in memory: a tenant on a plan, its customer's question (with
//! attachments), and scripted stand-ins for the embedder, the model tiers and the uploads
//! bucket. Given a question, when the request is diagnosed, then the diagnosis' events and
//! the calls made tell what happened.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use casebook_application::budget::Budgets;
use casebook_application::diagnosis::{
    Diagnoser, DiagnoserPorts, DiagnosisError, DiagnosisRequest, SystemPrompt,
};
use casebook_application::in_memory::{
    FixedClock, FixedPrecedents, FlatPrices, InMemoryEvents, InMemoryLedger, InMemoryStores,
};
use casebook_application::jobs::TenantDirectory;
use casebook_application::ports::{BoxError, FoundPrecedent, PrecedentSearch};
use casebook_application::reactions::{Delivered, Reaction};
use casebook_application::service::{RequestContext, Service};
use casebook_domain::actor::{Actor, Role};
use casebook_domain::any_event::AnyEvent;
use casebook_domain::diagnosis::{DiagnosisEvent, Finding, Provenance, Severity};
use casebook_domain::ids::{DiagnosisId, JudgmentId, QueryId, SessionId, TenantId, UserId};
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::policy::{ModelTier, PlanTier};
use casebook_domain::ports::{
    AttachmentError, AttachmentInfo, AttachmentStore, DiagnosisPrompt, EmbedError, Embedder, Llm,
    LlmAnswer, LlmError, Precedent, StopReason,
};
use casebook_domain::tenant::{Tenant, TenantCommand};
use casebook_domain::values::{
    Confidence, DiagnosisText, JudgmentBody, JudgmentTitle, QueryText, Subject, TenantName,
    UploadKey,
};
use chrono::{TimeZone, Utc};
use cqrs_es::{Aggregate, DomainEvent};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// `user` of `tenant` acting as `role`.
pub fn ctx(tenant: TenantId, role: Role, user: &str) -> RequestContext {
    let actor = Actor {
        user_id: UserId::parse(user).unwrap(),
        tenant_id: tenant,
        role,
    };
    let metadata = EventMetadata::new(&actor, format!("req-{user}"), Source::Api);
    RequestContext { actor, metadata }
}

/// Every event of stream `id` as the log delivers it.
pub fn delivered<A>(
    store: &InMemoryEvents<A>,
    id: &str,
    wrap: fn(A::Event) -> AnyEvent,
) -> Vec<Delivered>
where
    A: Aggregate,
{
    store
        .events(id)
        .into_iter()
        .zip(store.metadata(id))
        .enumerate()
        .map(|(n, (event, metadata))| Delivered {
            aggregate_type: A::TYPE.to_owned(),
            event_type: event.event_type(),
            aggregate_id: id.to_owned(),
            sequence: n as i64 + 1,
            global_position: 0,
            recorded_at: chrono::Utc::now(),
            event: wrap(event),
            metadata: EventMetadata::from_json(serde_json::to_value(metadata).unwrap()).unwrap(),
        })
        .collect()
}

/// Delivers every event to `reaction` twice.
pub async fn deliver_twice(reaction: &dyn Reaction, events: &[Delivered]) {
    for _ in 0..2 {
        for event in events {
            if reaction.wants(&event.aggregate_type, &event.event_type) {
                reaction.react(event).await.expect("reaction");
            }
        }
    }
}

/// Every event of the scenario's tenant as the log delivers it.
pub fn tenant_events(scenario: &Scenario) -> Vec<Delivered> {
    delivered::<Tenant>(
        &scenario.stores.tenants,
        &scenario.tenant.to_string(),
        AnyEvent::Tenant,
    )
}

/// A fixed list of tenants.
pub struct Tenants(pub Vec<TenantId>);

#[async_trait]
impl TenantDirectory for Tenants {
    async fn tenants(&self) -> Result<Vec<TenantId>, BoxError> {
        Ok(self.0.clone())
    }
}

/// The embedder: the same vector for every text, unless told to fail or to return the wrong
/// number of vectors next.
#[derive(Default)]
pub struct ScriptedEmbedder {
    next: Mutex<VecDeque<Result<usize, EmbedError>>>,
    pub texts: Mutex<Vec<String>>,
}

impl ScriptedEmbedder {
    pub fn fail_next(&self, err: EmbedError) {
        self.next.lock().unwrap().push_back(Err(err));
    }

    pub fn answer_next_with_vectors(&self, count: usize) {
        self.next.lock().unwrap().push_back(Ok(count));
    }
}

#[async_trait]
impl Embedder for ScriptedEmbedder {
    fn model_id(&self) -> &str {
        "test-embedder"
    }
    fn dimension(&self) -> usize {
        4
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.texts.lock().unwrap().extend(texts.iter().cloned());
        let count = match self.next.lock().unwrap().pop_front() {
            Some(Err(err)) => return Err(err),
            Some(Ok(count)) => count,
            None => texts.len(),
        };
        Ok(vec![vec![0.5; 4]; count])
    }
}

/// One scripted model answer: the tier expected to be asked, its confidence, the severity
/// of its one finding (if any) and the model id that answers.
pub type Answer = (ModelTier, f64, Option<Severity>, &'static str);

/// The model tiers: answers (or failures) in order, every prompt kept.
#[derive(Default)]
pub struct ScriptedLlm {
    script: Mutex<VecDeque<Result<Answer, LlmError>>>,
    pub prompts: Mutex<Vec<DiagnosisPrompt>>,
    /// The text of every answer, instead of one naming the model.
    pub text: Mutex<Option<String>>,
}

impl ScriptedLlm {
    pub fn answers(answers: Vec<Answer>) -> Self {
        Self {
            script: Mutex::new(answers.into_iter().map(Ok).collect()),
            ..Self::default()
        }
    }

    pub fn then_fail(&self, err: LlmError) {
        self.script.lock().unwrap().push_back(Err(err));
    }

    pub fn then_answer(&self, answer: Answer) {
        self.script.lock().unwrap().push_back(Ok(answer));
    }

    pub fn asked(&self) -> Vec<ModelTier> {
        self.prompts
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.tier)
            .collect()
    }
}

#[async_trait]
impl Llm for ScriptedLlm {
    async fn diagnose(&self, prompt: &DiagnosisPrompt) -> Result<LlmAnswer, LlmError> {
        self.prompts.lock().unwrap().push(prompt.clone());
        let (tier, confidence, severity, model) = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .expect("the model was asked more often than scripted")?;
        assert_eq!(prompt.tier, tier, "asked the wrong tier");
        Ok(LlmAnswer {
            text: DiagnosisText::parse(
                self.text
                    .lock()
                    .unwrap()
                    .clone()
                    .unwrap_or_else(|| format!("{model} says the cap holds.")),
            )
            .unwrap(),
            findings: severity
                .map(|severity| {
                    vec![Finding {
                        summary: "Cap".into(),
                        detail: None,
                        severity,
                    }]
                })
                .unwrap_or_default(),
            confidence: Confidence::new(confidence).unwrap(),
            input_tokens: 1_000,
            output_tokens: 100,
            model_id: model.to_owned(),
            stop_reason: StopReason::EndTurn,
        })
    }
}

/// A stored object: its content type and body.
type Object = (Option<String>, Vec<u8>);

/// The uploads bucket: objects by key, keys it refuses as another tenant's, and outages.
#[derive(Default)]
pub struct Bucket {
    objects: Mutex<HashMap<String, Object>>,
    foreign: Mutex<HashSet<String>>,
    down: Mutex<bool>,
}

impl Bucket {
    pub fn put(&self, key: &UploadKey, content_type: Option<&str>, body: &[u8]) {
        self.objects.lock().unwrap().insert(
            key.as_str().to_owned(),
            (content_type.map(str::to_owned), body.to_vec()),
        );
    }

    pub fn refuse_as_foreign(&self, key: &UploadKey) {
        self.foreign.lock().unwrap().insert(key.as_str().to_owned());
    }

    pub fn set_down(&self, down: bool) {
        *self.down.lock().unwrap() = down;
    }

    fn object(&self, key: &UploadKey) -> Result<Object, AttachmentError> {
        if *self.down.lock().unwrap() {
            return Err(AttachmentError::Unavailable("the bucket is down".into()));
        }
        if self.foreign.lock().unwrap().contains(key.as_str()) {
            return Err(AttachmentError::OutsideTenant { key: key.clone() });
        }
        self.objects
            .lock()
            .unwrap()
            .get(key.as_str())
            .cloned()
            .ok_or_else(|| AttachmentError::Missing { key: key.clone() })
    }
}

#[async_trait]
impl AttachmentStore for Bucket {
    async fn describe(
        &self,
        _tenant: TenantId,
        key: &UploadKey,
    ) -> Result<AttachmentInfo, AttachmentError> {
        let (content_type, body) = self.object(key)?;
        Ok(AttachmentInfo {
            content_type,
            size: body.len() as u64,
        })
    }

    async fn read_prefix(
        &self,
        _tenant: TenantId,
        key: &UploadKey,
        max_bytes: u64,
    ) -> Result<Vec<u8>, AttachmentError> {
        let (_, body) = self.object(key)?;
        Ok(body.into_iter().take(max_bytes as usize).collect())
    }
}

/// The prompt every proposal is asked with.
pub fn system_prompt() -> SystemPrompt {
    SystemPrompt {
        id: "diagnosis-test".into(),
        text: "You review contracts.".into(),
        sha256_hex: "abc123".into(),
    }
}

/// One captured judgment the index finds for every query.
pub fn precedent() -> FoundPrecedent {
    FoundPrecedent {
        precedent: Precedent {
            judgment_id: JudgmentId::new(),
            title: JudgmentTitle::parse("Indemnity caps").unwrap(),
            body: JudgmentBody::parse("Cap at twelve months of fees.").unwrap(),
            score: 0.92,
        },
        source_position: 41,
    }
}

/// A tenant, its customer's question, and the ports the diagnosis runs on.
pub struct Scenario {
    pub stores: InMemoryStores,
    pub service: Service,
    pub index: Arc<FixedPrecedents>,
    pub embedder: Arc<ScriptedEmbedder>,
    pub llm: Arc<ScriptedLlm>,
    pub bucket: Option<Arc<Bucket>>,
    /// The precedent the index finds for every query.
    pub found: FoundPrecedent,
    pub tenant: TenantId,
    pub customer: RequestContext,
    /// The tokens the tenant spent per month, as the usage read model would count them.
    pub ledger: Arc<InMemoryLedger>,
    /// The time the budgets are read at.
    pub clock: Arc<FixedClock>,
}

impl Scenario {
    /// A professional tenant whose model tiers answer `answers`; no uploads bucket.
    pub async fn given(answers: Vec<Answer>) -> Self {
        Self::on_plan(PlanTier::Professional, answers).await
    }

    /// A tenant on `plan` whose model tiers answer `answers`; no uploads bucket.
    pub async fn on_plan(plan: PlanTier, answers: Vec<Answer>) -> Self {
        let stores = InMemoryStores::default();
        let service = stores.service();
        let tenant = TenantId::new();
        let admin = ctx(tenant, Role::Admin, "admin");
        service
            .onboard_tenant(
                &admin,
                TenantCommand::Onboard {
                    actor: admin.actor.clone(),
                    name: TenantName::parse("Acme").unwrap(),
                    plan,
                },
            )
            .await
            .expect("onboarded");
        let found = precedent();
        Self {
            stores,
            service,
            index: Arc::new(FixedPrecedents::new(vec![found.clone()])),
            found,
            embedder: Arc::default(),
            llm: Arc::new(ScriptedLlm::answers(answers)),
            bucket: None,
            tenant,
            customer: ctx(tenant, Role::Customer, "customer"),
            ledger: Arc::default(),
            clock: Arc::new(FixedClock::at(
                Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap(),
            )),
        }
    }

    /// The tenants' budgets as this scenario's diagnoser reads them.
    pub fn budgets(&self) -> Budgets {
        Budgets::new(
            self.service.clone(),
            self.ledger.clone(),
            self.clock.clone(),
        )
    }

    /// Sessions' attachments are read from a bucket.
    pub fn with_bucket(mut self) -> Self {
        self.bucket = Some(Arc::default());
        self
    }

    pub fn bucket(&self) -> &Bucket {
        self.bucket.as_deref().expect("a bucket")
    }

    /// A key issued to the customer for `name`.
    pub fn upload(&self, name: &str) -> UploadKey {
        UploadKey::new_upload(self.tenant, name).unwrap()
    }

    /// The customer opens a session with `attachments` and asks `question`.
    pub async fn asked(&self, question: &str, attachments: Vec<UploadKey>) -> DiagnosisId {
        self.asked_by(&self.customer, question, attachments).await
    }

    /// `customer` opens a session with `attachments` (issued to them) and asks `question`.
    pub async fn asked_by(
        &self,
        customer: &RequestContext,
        question: &str,
        attachments: Vec<UploadKey>,
    ) -> DiagnosisId {
        for key in &attachments {
            self.service
                .grant_upload(&customer.actor, key)
                .await
                .unwrap();
        }
        let session = SessionId::new();
        self.service
            .open_session(
                customer,
                session,
                Subject::parse("Contract").unwrap(),
                attachments,
            )
            .await
            .expect("opened");
        let query = QueryId::new();
        self.service
            .submit_query(
                customer,
                session,
                query,
                QueryText::parse(question).unwrap(),
            )
            .await
            .expect("submitted");
        DiagnosisId::for_query(query)
    }

    pub fn diagnoser(&self, prices: FlatPrices) -> Diagnoser {
        self.diagnoser_over(self.index.clone(), self.llm.clone(), prices)
    }

    /// A diagnoser of this scenario's tenant asking `search` and `llm` instead.
    pub fn diagnoser_over(
        &self,
        search: Arc<dyn PrecedentSearch>,
        llm: Arc<dyn Llm>,
        prices: FlatPrices,
    ) -> Diagnoser {
        let diagnoser = Diagnoser::new(DiagnoserPorts {
            service: self.service.clone(),
            search,
            embedder: self.embedder.clone(),
            llm,
            pricing: Arc::new(prices),
            prompt: system_prompt(),
            budgets: self.budgets(),
        });
        match &self.bucket {
            Some(bucket) => diagnoser.with_attachments(bucket.clone()),
            None => diagnoser,
        }
    }

    /// The relay's request for `diagnosis`.
    pub fn request(&self, diagnosis: DiagnosisId) -> DiagnosisRequest {
        DiagnosisRequest {
            event_id: format!("Diagnosis/{diagnosis}/1"),
            tenant_id: self.tenant,
            diagnosis_id: diagnosis,
        }
    }

    /// Handles the request for `diagnosis` once, prices free.
    pub async fn diagnose(&self, diagnosis: DiagnosisId) -> Result<(), DiagnosisError> {
        self.diagnoser(FlatPrices::default())
            .diagnose(&self.request(diagnosis))
            .await
    }

    /// The diagnosis' event types, in order.
    pub fn event_types(&self, diagnosis: DiagnosisId) -> Vec<String> {
        self.stores
            .diagnoses
            .events(&diagnosis.to_string())
            .iter()
            .map(|event| event.event_type())
            .collect()
    }

    /// The failures recorded, as (retryable, reason).
    pub fn failures(&self, diagnosis: DiagnosisId) -> Vec<(bool, String)> {
        self.stores
            .diagnoses
            .events(&diagnosis.to_string())
            .into_iter()
            .filter_map(|event| match event {
                DiagnosisEvent::DiagnosisFailed {
                    retryable, reason, ..
                } => Some((retryable, reason.to_string())),
                _ => None,
            })
            .collect()
    }

    /// The proposal's provenance, if proposed.
    pub fn provenance(&self, diagnosis: DiagnosisId) -> Option<Provenance> {
        self.stores
            .diagnoses
            .events(&diagnosis.to_string())
            .into_iter()
            .find_map(|event| match event {
                DiagnosisEvent::DiagnosisProposed { provenance, .. } => Some(provenance),
                _ => None,
            })
    }
}

/// Another delivery of the same request, run once from inside a port call of this one: what
/// two workers handling one message concurrently look like, made deterministic.
pub struct Rival {
    pending: tokio::sync::Mutex<Option<(Diagnoser, DiagnosisRequest)>>,
}

impl Rival {
    pub fn new(diagnoser: Diagnoser, request: DiagnosisRequest) -> Self {
        Self {
            pending: tokio::sync::Mutex::new(Some((diagnoser, request))),
        }
    }

    /// Runs the rival delivery to its end, the first time only.
    pub async fn run_once(&self) {
        if let Some((diagnoser, request)) = self.pending.lock().await.take() {
            diagnoser
                .diagnose(&request)
                .await
                .expect("the rival's delivery");
        }
    }
}

/// A model that lets a [`Rival`] finish first, then answers as scripted.
pub struct RacingLlm {
    pub rival: Rival,
    pub inner: ScriptedLlm,
}

#[async_trait]
impl Llm for RacingLlm {
    async fn diagnose(&self, prompt: &DiagnosisPrompt) -> Result<LlmAnswer, LlmError> {
        self.rival.run_once().await;
        self.inner.diagnose(prompt).await
    }
}

/// An index that lets a [`Rival`] finish first, then answers as `inner`.
pub struct RacingIndex {
    pub rival: Rival,
    pub inner: FixedPrecedents,
}

#[async_trait]
impl PrecedentSearch for RacingIndex {
    async fn nearest(
        &self,
        tenant: TenantId,
        vector: &[f32],
        k: u32,
    ) -> Result<Vec<FoundPrecedent>, BoxError> {
        self.rival.run_once().await;
        self.inner.nearest(tenant, vector, k).await
    }
}

/// A counter's name and labels.
type CounterKey = (String, Vec<(String, String)>);

/// What the use cases counted through the `metrics` facade, kept by metrics-util's
/// debugging recorder. Installed for the current thread ([`Counted::install`]), which a
/// `#[tokio::test]` runs the whole test on.
#[derive(Default)]
pub struct Counted {
    recorder: DebuggingRecorder,
    /// The counts so far: a snapshot takes the recorder's counts and resets them.
    totals: Mutex<HashMap<CounterKey, u64>>,
}

impl Counted {
    /// Counts what this thread records until the guard is dropped.
    pub fn install(&self) -> metrics::LocalRecorderGuard<'_> {
        metrics::set_default_local_recorder(&self.recorder)
    }

    /// The count of `name` with `labels`, 0 if never counted.
    pub fn of(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let mut totals = self.totals.lock().unwrap();
        for (key, _, _, value) in self.recorder.snapshotter().snapshot().into_vec() {
            if let DebugValue::Counter(count) = value {
                let key = key.key();
                let labels = key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                *totals.entry((key.name().to_owned(), labels)).or_default() += count;
            }
        }
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        totals.get(&(name.to_owned(), labels)).copied().unwrap_or(0)
    }
}
