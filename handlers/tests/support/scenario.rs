//! Domain-level fixtures shared by the service, relay and worker tests: request contexts, a
//! tenant with one question asked, and deterministic stand-ins for the AI ports.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use casebook_adapters::ai::pricing::PriceTable;
use casebook_adapters::ai::AiProviders;
use casebook_adapters::postgres::{self, DbRole};
use casebook_application::diagnosis::{Diagnoser, DiagnosisRequest};
use casebook_application::service::{RequestContext, Service};
use casebook_domain::actor::{Actor, Role};
use casebook_domain::ids::{DiagnosisId, QueryId, SessionId, TenantId, UserId};
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::policy::PlanTier;
use casebook_domain::ports::{
    DiagnosisPrompt, EmbedError, Embedder, Llm, LlmAnswer, LlmError, StopReason,
};
use casebook_domain::tenant::TenantCommand;
use casebook_domain::values::{
    Confidence, DiagnosisText, QueryText, Subject, TenantName, UploadKey,
};
use casebook_handlers::compose;
use sqlx::PgPool;

/// `user` of `tenant` acting as `role` through the API.
pub fn ctx(tenant: TenantId, role: Role, user: &str) -> RequestContext {
    let actor = Actor {
        user_id: UserId::parse(user).unwrap(),
        tenant_id: tenant,
        role,
    };
    let metadata = EventMetadata::new(&actor, format!("req-{user}"), Source::Api);
    RequestContext { actor, metadata }
}

/// Onboards a new tenant (its admin is `<name>-admin`).
pub async fn onboard(service: &Service, name: &str) -> TenantId {
    let tenant = TenantId::new();
    let admin = ctx(tenant, Role::Admin, &format!("{name}-admin"));
    service
        .onboard_tenant(
            &admin,
            TenantCommand::Onboard {
                actor: admin.actor.clone(),
                name: TenantName::parse(name).unwrap(),
                plan: PlanTier::Professional,
            },
        )
        .await
        .expect("onboarded");
    tenant
}

/// `customer` opens a session in `tenant` and asks `question`: the diagnosis is requested.
pub async fn ask(
    service: &Service,
    customer: &RequestContext,
    question: &str,
) -> (SessionId, DiagnosisId) {
    let session = open_session(service, customer, vec![]).await;
    (session, submit(service, customer, session, question).await)
}

/// `customer` opens a new session with `attachments`, each issued to them as
/// `POST /v1/uploads` would.
pub async fn open_session(
    service: &Service,
    customer: &RequestContext,
    attachments: Vec<UploadKey>,
) -> SessionId {
    for key in &attachments {
        service
            .grant_upload(&customer.actor, key)
            .await
            .expect("upload granted");
    }
    let session = SessionId::new();
    service
        .open_session(
            customer,
            session,
            Subject::parse("Contract").unwrap(),
            attachments,
        )
        .await
        .expect("session opened");
    session
}

/// `customer` asks `question` in `session`: the diagnosis is requested.
pub async fn submit(
    service: &Service,
    customer: &RequestContext,
    session: SessionId,
    question: &str,
) -> DiagnosisId {
    let query = QueryId::new();
    service
        .submit_query(
            customer,
            session,
            query,
            QueryText::parse(question).unwrap(),
        )
        .await
        .expect("query submitted");
    DiagnosisId::for_query(query)
}

/// A new tenant with one question asked by its customer.
pub async fn tenant_with_question(service: &Service, name: &str) -> (TenantId, DiagnosisId) {
    let tenant = onboard(service, name).await;
    let customer = ctx(tenant, Role::Customer, &format!("{name}-customer"));
    let (_, diagnosis) = ask(service, &customer, "Is the indemnity cap enforceable?").await;
    (tenant, diagnosis)
}

/// The same vector for every text.
pub struct FixedEmbedder;

#[async_trait]
impl Embedder for FixedEmbedder {
    fn model_id(&self) -> &str {
        "test-embedder"
    }
    fn dimension(&self) -> usize {
        4
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|_| vec![0.5; 4]).collect())
    }
}

/// A model with one fixed answer that counts how often it is asked.
#[derive(Default)]
pub struct CountingLlm {
    pub calls: AtomicUsize,
}

#[async_trait]
impl Llm for CountingLlm {
    async fn diagnose(&self, _prompt: &DiagnosisPrompt) -> Result<LlmAnswer, LlmError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(LlmAnswer {
            text: DiagnosisText::parse("The cap is enforceable.").unwrap(),
            findings: vec![],
            confidence: Confidence::new(0.6).unwrap(),
            input_tokens: 10,
            output_tokens: 5,
            model_id: "test-model".to_owned(),
            stop_reason: StopReason::EndTurn,
        })
    }
}

/// A model each of whose answers spends a whole month's token budget of its plan.
pub struct Spendthrift(pub PlanTier);

#[async_trait]
impl Llm for Spendthrift {
    async fn diagnose(&self, prompt: &DiagnosisPrompt) -> Result<LlmAnswer, LlmError> {
        let mut answer = CountingLlm::default().diagnose(prompt).await?;
        answer.input_tokens = u32::try_from(self.0.monthly_token_budget()).unwrap();
        Ok(answer)
    }
}

/// A pool of the judgment-search role over `app`'s database, as the worker searches.
pub async fn search_pool(app: &PgPool) -> PgPool {
    postgres::connect((*app.connect_options()).clone(), DbRole::Search, 1)
        .await
        .expect("search pool")
}

/// The diagnosis use case over `app`'s database, searching on a pool of the search role of
/// its own, as deployed; answers cost nothing.
pub async fn diagnoser(app: &PgPool, embedder: Arc<dyn Embedder>, llm: Arc<dyn Llm>) -> Diagnoser {
    priced_diagnoser(app, embedder, llm, PriceTable::default()).await
}

/// [`diagnoser`], pricing answers by `prices`.
pub async fn priced_diagnoser(
    app: &PgPool,
    embedder: Arc<dyn Embedder>,
    llm: Arc<dyn Llm>,
    prices: PriceTable,
) -> Diagnoser {
    let providers = AiProviders {
        embedder,
        llm,
        prices,
    };
    compose::diagnoser(app.clone(), search_pool(app).await, &providers)
}

/// The request the relay's message for `diagnosis` of `tenant` carries.
pub fn request(tenant: TenantId, diagnosis: DiagnosisId) -> DiagnosisRequest {
    DiagnosisRequest {
        event_id: format!("Diagnosis/{diagnosis}/1"),
        tenant_id: tenant,
        diagnosis_id: diagnosis,
    }
}

/// Works `diagnosis` of `tenant` as the diagnosis worker would, with [`FixedEmbedder`] and a
/// fresh [`CountingLlm`] (so it is proposed at confidence 0.6).
pub async fn propose(app: &PgPool, tenant: TenantId, diagnosis: DiagnosisId) {
    diagnoser(
        app,
        Arc::new(FixedEmbedder),
        Arc::new(CountingLlm::default()),
    )
    .await
    .diagnose(&request(tenant, diagnosis))
    .await
    .expect("proposed");
}
