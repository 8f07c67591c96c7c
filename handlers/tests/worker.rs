//! The SQS worker: the Lambda handler reports exactly the failed records, and locally a
//! message whose handler always fails moves to the DLQ after `maxReceiveCount` receives
//! without blocking the other messages of its batch. The diagnosis handler routes by the
//! domain's policy (triage, diagnosis, one escalation on low confidence; never the strongest
//! tier for a cost-sensitive plan) and proposes with priced provenance, the retrieved
//! precedents and the request event as its cause.

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use casebook_adapters::ai::pricing::{ModelPrice, PriceTable};
use casebook_adapters::ai::prompt::DIAGNOSIS_V2;
use casebook_domain::actor::Role;
use casebook_domain::diagnosis::{Finding, Severity};
use casebook_domain::ids::JudgmentId;
use casebook_domain::judgment::{JudgmentCommand, JudgmentContent};
use casebook_domain::policy::{ModelTier, PlanTier};
use casebook_domain::ports::{DiagnosisPrompt, Embedder, Llm, LlmAnswer, LlmError, StopReason};
use casebook_domain::tenant::TenantCommand;
use casebook_domain::values::{Confidence, DiagnosisText, JudgmentBody, JudgmentTitle, TenantName};
use casebook_projections::judgment_index::JudgmentIndexSubscription;
use serde_json::{json, Value};

use aws_lambda_events::event::sqs::SqsEvent;
use casebook_adapters::aws::setup::{ensure_resources, ResourceNames};
use casebook_adapters::aws::shared_config;
use casebook_adapters::aws::sqs::Queue;
use casebook_adapters::postgres::DbRole;
use casebook_application::service::Service;
use casebook_domain::ids::{DiagnosisId, QueryId, TenantId};
use casebook_handlers::relay::DiagnosisMessage;
use casebook_handlers::worker::{handle_sqs_event, run_worker_until, Worker};
use casebook_tests::TestDb;
use sqlx::PgPool;
use support::scenario::{
    ask, ctx, diagnoser, priced_diagnoser, request, tenant_with_question, CountingLlm,
    FixedEmbedder,
};

fn message(tenant: TenantId, diagnosis: DiagnosisId) -> String {
    serde_json::to_string(&DiagnosisMessage {
        event_id: format!("Diagnosis/{diagnosis}/1"),
        tenant_id: tenant.to_string().parse().unwrap(),
        diagnosis_id: diagnosis.to_string().parse().unwrap(),
    })
    .unwrap()
}

async fn proposals(pool: &PgPool, diagnosis: DiagnosisId) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'DiagnosisProposed'",
    )
    .bind(diagnosis.to_string())
    .fetch_one(pool)
    .await
    .unwrap()
}

/// An SQS event as Lambda delivers it; `BODY_n` are replaced.
const FIXTURE: &str = r#"{
  "Records": [
    {
      "messageId": "good-1",
      "receiptHandle": "rh-1",
      "body": "BODY_GOOD",
      "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764000000000",
                     "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1764000000001"},
      "messageAttributes": {
        "type": {"stringValue": "DiagnosisRequested", "stringListValues": [], "binaryListValues": [], "dataType": "String"}
      },
      "md5OfBody": "x",
      "eventSource": "aws:sqs",
      "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:casebook-dev-diagnosis",
      "awsRegion": "us-east-1"
    },
    {
      "messageId": "missing-2",
      "receiptHandle": "rh-2",
      "body": "BODY_MISSING",
      "attributes": {"ApproximateReceiveCount": "1"},
      "messageAttributes": {},
      "md5OfBody": "x",
      "eventSource": "aws:sqs",
      "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:casebook-dev-diagnosis",
      "awsRegion": "us-east-1"
    },
    {
      "messageId": "garbage-3",
      "receiptHandle": "rh-3",
      "body": "not json",
      "attributes": {"ApproximateReceiveCount": "1"},
      "messageAttributes": {},
      "md5OfBody": "x",
      "eventSource": "aws:sqs",
      "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:casebook-dev-diagnosis",
      "awsRegion": "us-east-1"
    }
  ]
}"#;

#[tokio::test]
async fn the_lambda_handler_reports_exactly_the_failed_records() {
    let db = TestDb::new().await;
    let app = db.pool(DbRole::App, 4).await;
    let log = db.pool(DbRole::Projector, 1).await;
    let service = casebook_handlers::compose::service(app.clone());
    let (tenant, diagnosis) = tenant_with_question(&service, "worker").await;
    let missing = DiagnosisId::for_query(QueryId::new());
    let json = |s: String| serde_json::to_string(&s).unwrap();
    let fixture = FIXTURE
        .replace("\"BODY_GOOD\"", &json(message(tenant, diagnosis)))
        .replace("\"BODY_MISSING\"", &json(message(tenant, missing)));
    let event: SqsEvent = serde_json::from_str(&fixture).expect("fixture parses");

    let llm = Arc::new(CountingLlm::default());
    let worker = Worker::new(diagnoser(&app, Arc::new(FixedEmbedder), llm.clone()).await);
    let response = handle_sqs_event(&worker, event.clone()).await;
    let body = serde_json::to_value(&response).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"batchItemFailures": [
            {"itemIdentifier": "missing-2"},
            {"itemIdentifier": "garbage-3"},
        ]})
    );
    assert_eq!(proposals(&log, diagnosis).await, 1);

    // Redelivered: the good record is already done; the model is not asked again.
    let again = serde_json::to_value(handle_sqs_event(&worker, event).await).unwrap();
    assert_eq!(again, body);
    assert_eq!(llm.calls.load(Ordering::SeqCst), 1);
    assert_eq!(proposals(&log, diagnosis).await, 1);
}

#[tokio::test]
async fn a_message_that_always_fails_moves_to_the_dlq_without_blocking_its_batch() {
    let db = TestDb::new().await;
    let app = db.pool(DbRole::App, 4).await;
    let log = db.pool(DbRole::Projector, 1).await;
    let service = casebook_handlers::compose::service(app.clone());
    let (tenant, diagnosis) = tenant_with_question(&service, "worker").await;
    let aws = shared_config().await;
    let mut names =
        ResourceNames::with_prefix(&format!("worker-{}", uuid::Uuid::new_v4().simple()));
    names.visibility_timeout = 1;
    let resources = ensure_resources(&aws, &names).await.expect("queues");
    let queue = Queue::new(&aws, &resources.diagnosis_queue_url);
    let dlq = Queue::new(&aws, &resources.diagnosis_dlq_url);
    let poison = message(tenant, DiagnosisId::for_query(QueryId::new()));
    queue
        .send(&poison, &[("type", "DiagnosisRequested")])
        .await
        .unwrap();
    queue
        .send(
            &message(tenant, diagnosis),
            &[("type", "DiagnosisRequested")],
        )
        .await
        .unwrap();

    let llm = Arc::new(CountingLlm::default());
    let worker = Worker::new(diagnoser(&app, Arc::new(FixedEmbedder), llm.clone()).await);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(run_worker_until(worker, queue.clone(), async {
        let _ = stopped.await;
    }));

    // Hang guard only: the poison message shows up in the DLQ after three receives.
    let mut dead = Vec::new();
    for _ in 0..120 {
        dead = dlq.receive(10, 1).await.unwrap();
        if !dead.is_empty() {
            break;
        }
    }
    let _ = stop.send(());
    running.await.unwrap();
    assert_eq!(dead.len(), 1, "the poison message reached the DLQ");
    assert_eq!(dead[0].body, poison);
    assert_eq!(
        proposals(&log, diagnosis).await,
        1,
        "the good message was handled"
    );
    assert_eq!(llm.calls.load(Ordering::SeqCst), 1);
    let left = queue.receive(10, 2).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    drop(db);
    tokio::time::sleep(Duration::ZERO).await;
}

/// Answers by tier from a script (confidence, findings' severity, model id) and records the
/// tiers asked, in order.
struct ScriptedLlm {
    script: Vec<(ModelTier, f64, Option<Severity>, &'static str)>,
    asked: Mutex<Vec<ModelTier>>,
}

impl ScriptedLlm {
    fn new(script: Vec<(ModelTier, f64, Option<Severity>, &'static str)>) -> Self {
        Self {
            script,
            asked: Mutex::new(Vec::new()),
        }
    }

    fn asked(&self) -> Vec<ModelTier> {
        self.asked.lock().unwrap().clone()
    }
}

#[async_trait]
impl Llm for ScriptedLlm {
    async fn diagnose(&self, prompt: &DiagnosisPrompt) -> Result<LlmAnswer, LlmError> {
        self.asked.lock().unwrap().push(prompt.tier);
        let (_, confidence, severity, model) = self
            .script
            .iter()
            .find(|(tier, ..)| *tier == prompt.tier)
            .unwrap_or_else(|| panic!("no answer scripted for {:?}", prompt.tier));
        Ok(LlmAnswer {
            text: DiagnosisText::parse(format!("Answer of {model}")).unwrap(),
            findings: severity
                .iter()
                .map(|severity| Finding {
                    summary: "The cap is unusual".to_owned(),
                    detail: None,
                    severity: *severity,
                })
                .collect(),
            confidence: Confidence::new(*confidence).unwrap(),
            input_tokens: 1_000,
            output_tokens: 100,
            model_id: (*model).to_owned(),
            stop_reason: StopReason::EndTurn,
        })
    }
}

fn price(input: f64, output: f64) -> ModelPrice {
    ModelPrice { input, output }
}

/// A tenant on `plan` whose customer asked one question.
async fn tenant_on_plan(service: &Service, plan: PlanTier) -> (TenantId, DiagnosisId) {
    let tenant = TenantId::new();
    let admin = ctx(tenant, Role::Admin, "routing-admin");
    service
        .onboard_tenant(
            &admin,
            TenantCommand::Onboard {
                actor: admin.actor.clone(),
                name: TenantName::parse("Routing practice").unwrap(),
                plan,
            },
        )
        .await
        .expect("onboarded");
    let customer = ctx(tenant, Role::Customer, "routing-customer");
    let (_, diagnosis) = ask(service, &customer, "Is the indemnity cap enforceable?").await;
    (tenant, diagnosis)
}

/// The stored `DiagnosisProposed` event's payload and metadata.
async fn proposed(pool: &PgPool, diagnosis: DiagnosisId) -> (Value, Value) {
    sqlx::query_as(
        "SELECT payload::jsonb, metadata::jsonb FROM events
          WHERE aggregate_id = $1 AND event_type = 'DiagnosisProposed'",
    )
    .bind(diagnosis.to_string())
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_low_confidence_answer_escalates_one_tier_once_with_priced_provenance_and_its_cause() {
    let db = TestDb::new().await;
    let app = db.pool(DbRole::App, 4).await;
    let log = db.pool(DbRole::Projector, 1).await;
    let projector = db.pool(DbRole::Projector, 2).await;
    let service = casebook_handlers::compose::service(app.clone());
    let (tenant, diagnosis) = tenant_on_plan(&service, PlanTier::Professional).await;
    // A precedent in the tenant's judgment index, indexed by the live subscription.
    let consultant = ctx(tenant, Role::Consultant, "routing-consultant");
    let precedent = JudgmentId::new();
    service
        .edit_judgment(
            &consultant,
            precedent,
            JudgmentCommand::Author {
                actor: consultant.actor.clone(),
                judgment_id: precedent,
                content: JudgmentContent {
                    title: JudgmentTitle::parse("Indemnity caps").unwrap(),
                    body: JudgmentBody::parse("Mutual caps are enforceable.").unwrap(),
                    tags: vec![],
                },
            },
        )
        .await
        .expect("authored");
    let embedder: Arc<dyn Embedder> = Arc::new(FixedEmbedder);
    let mut indexed = 0_i64;
    for _ in 0..200 {
        casebook_handlers::compose::runner(projector.clone())
            .with_subscription(JudgmentIndexSubscription::new(embedder.clone()))
            .drain(Duration::from_secs(5))
            .await
            .unwrap();
        indexed = sqlx::query_scalar("SELECT count(*) FROM judgment_index")
            .fetch_one(&projector)
            .await
            .unwrap();
        if indexed == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(indexed, 1, "the precedent was indexed");

    // Triage is sure but finds a medium-severity issue: the standard tier is asked, is
    // unsure, and the strongest tier is asked once; its answer, unsure too, is proposed.
    let llm = Arc::new(ScriptedLlm::new(vec![
        (ModelTier::Triage, 0.9, Some(Severity::Medium), "haiku"),
        (ModelTier::Standard, 0.3, None, "sonnet"),
        (ModelTier::Strongest, 0.4, None, "opus"),
    ]));
    let prices = PriceTable::new([
        ("haiku".to_owned(), price(0.8, 4.0)),
        ("sonnet".to_owned(), price(3.0, 15.0)),
        ("opus".to_owned(), price(15.0, 75.0)),
    ]);
    let diagnoser = priced_diagnoser(&app, embedder, llm.clone(), prices).await;
    let message = request(tenant, diagnosis);
    diagnoser.diagnose(&message).await.expect("handled");
    assert_eq!(
        llm.asked(),
        [ModelTier::Triage, ModelTier::Standard, ModelTier::Strongest]
    );

    let (payload, metadata) = proposed(&log, diagnosis).await;
    let provenance = &payload["provenance"];
    assert_eq!(provenance["model_id"], "opus", "{payload}");
    assert_eq!(provenance["model_tier"], "strongest", "{payload}");
    assert_eq!(provenance["prompt_template_id"], DIAGNOSIS_V2.id());
    assert_eq!(
        provenance["prompt_template_hash"],
        DIAGNOSIS_V2.sha256_hex()
    );
    assert_eq!(provenance["retrieved_judgment_ids"], json!([precedent]));
    // v3: the stop reason, the embedding model and where each precedent's text came from.
    assert_eq!(provenance["stop_reason"], "end_turn", "{payload}");
    assert_eq!(
        provenance["embedding"],
        json!({"model_id": "test-embedder", "dimension": 4})
    );
    let captured_at: i64 = sqlx::query_scalar(
        "SELECT global_position FROM events
          WHERE aggregate_id = $1 AND event_type = 'JudgmentCaptured'",
    )
    .bind(precedent.to_string())
    .fetch_one(&log)
    .await
    .unwrap();
    let precedents = provenance["precedents"].as_array().expect("precedents");
    assert_eq!(precedents.len(), 1, "{payload}");
    assert_eq!(precedents[0]["judgment_id"], json!(precedent));
    assert_eq!(precedents[0]["source_position"], captured_at);
    assert!(precedents[0]["score"].as_f64().unwrap() > 0.99, "{payload}");
    assert_eq!(provenance["attachments"], json!([]), "the session has none");
    // Every call counts: 3 × 1,000 tokens in, 3 × 100 out, each at its own model's price.
    assert_eq!(provenance["input_tokens"], 3_000);
    assert_eq!(provenance["output_tokens"], 300);
    let cost = (1_000.0 * 0.8 + 100.0 * 4.0)
        + (1_000.0 * 3.0 + 100.0 * 15.0)
        + (1_000.0 * 15.0 + 100.0 * 75.0);
    assert_eq!(provenance["cost_usd_micros"], json!(cost as u64));
    // The request's event is the cause; the customer's request id carries on.
    assert_eq!(metadata["causation_id"], message.event_id.as_str());
    assert_eq!(metadata["correlation_id"], "req-routing-customer");
    assert_eq!(metadata["source"], "worker");

    // Redelivered: nothing more is asked or proposed.
    diagnoser.diagnose(&message).await.expect("handled again");
    assert_eq!(llm.asked().len(), 3);
    assert_eq!(proposals(&log, diagnosis).await, 1);
}
