//! The AI path end to end: a customer's query, posted through the real router with real
//! Cognito tokens, is relayed (EventBridge + SQS on the AWS emulator) to the diagnosis
//! worker, which retrieves the tenant's precedents from the judgment index (real local
//! MiniLM embeddings) and the text of the session's attachment (uploaded to the emulator's S3),
//! asks the model (a deterministic stand-in: generation is slow) and proposes; the proposal
//! waits in the consultant's review queue with its full provenance, and approving it makes it
//! a precedent of the next similar query.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::http::StatusCode;
use casebook_adapters::ai::prompt::{user_message, DIAGNOSIS_V2};
use casebook_adapters::ai::{AiConfig, AiProviders};
use casebook_adapters::aws::s3::TenantBucket;
use casebook_adapters::aws::setup::{ensure_resources, ResourceNames};
use casebook_adapters::aws::shared_config;
use casebook_adapters::aws::sqs::Queue;
use casebook_adapters::postgres::{self, DbRole};
use casebook_domain::ids::TenantId;
use casebook_domain::ports::{DiagnosisPrompt, Embedder, Llm, LlmAnswer, LlmError, StopReason};
use casebook_domain::values::{Confidence, DiagnosisText};
use casebook_handlers::compose::projector;
use casebook_handlers::http::router;
use casebook_handlers::http::uploads::Uploads;
use casebook_handlers::relay::{Relay, RelayConfig};
use casebook_handlers::worker::run_worker_until;
use casebook_projections::judgment_index::{self, JudgmentIndexSubscription};
use serde_json::{json, Value};
use sqlx::PgPool;
use support::{spawn_app, TestApp, User};
use uuid::Uuid;

/// Answers every prompt with the same advice, and remembers each prompt's precedents.
#[derive(Default)]
struct AdvisingLlm {
    prompts: Mutex<Vec<DiagnosisPrompt>>,
}

#[async_trait]
impl Llm for AdvisingLlm {
    async fn diagnose(&self, prompt: &DiagnosisPrompt) -> Result<LlmAnswer, LlmError> {
        self.prompts.lock().unwrap().push(prompt.clone());
        Ok(LlmAnswer {
            text: DiagnosisText::parse(
                "The indemnity cap holds: it is mutual and above the contract value.",
            )
            .unwrap(),
            findings: vec![],
            confidence: Confidence::new(0.7).unwrap(),
            input_tokens: 120,
            output_tokens: 40,
            model_id: "advising-model".to_owned(),
            stop_reason: StopReason::EndTurn,
        })
    }
}

async fn write_judgment(app: &TestApp, consultant: &User, title: &str, body: &str) -> Uuid {
    let judgment = Uuid::new_v4();
    let (status, response) = app
        .post(
            consultant,
            "/v1/judgments",
            json!({ "judgment_id": judgment, "title": title, "body": body }),
        )
        .await;
    assert!(status.is_success(), "{status}: {response}");
    judgment
}

/// The customer opens a session with `attachments` and asks `question`; returns the
/// diagnosis id.
async fn ask(app: &TestApp, customer: &User, question: &str, attachments: &[&str]) -> Uuid {
    let session = Uuid::new_v4();
    let (status, body) = app
        .post(
            customer,
            "/v1/sessions",
            json!({
                "session_id": session,
                "subject": "Supplier contract",
                "attachments": attachments,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let query = Uuid::new_v4();
    let (status, body) = app
        .post(
            customer,
            &format!("/v1/sessions/{session}/queries"),
            json!({ "query_id": query, "text": question }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["ids"]["diagnosis_id"]
        .as_str()
        .expect("diagnosis id")
        .parse()
        .unwrap()
}

/// Polls the review queue until `diagnosis` is in it (a hang guard: the relay, the queue and
/// the worker are asynchronous).
async fn queued(app: &TestApp, consultant: &User, diagnosis: Uuid) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        let (status, body) = app.get(consultant, "/v1/review-queue?limit=100").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if let Some(entry) = body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|entry| entry["diagnosis_id"] == json!(diagnosis))
        {
            return entry.clone();
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("diagnosis {diagnosis} never reached the review queue; last: {last}");
}

/// The diagnosis as its customer or consultant reads it.
async fn diagnosis_view(app: &TestApp, user: &User, diagnosis: Uuid) -> Value {
    let (status, body) = app.get(user, &format!("/v1/diagnoses/{diagnosis}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn retrieved_ids(view: &Value) -> Vec<Uuid> {
    serde_json::from_value(view["proposal"]["provenance"]["retrieved_judgment_ids"].clone())
        .unwrap_or_else(|err| panic!("retrieved ids in {view}: {err}"))
}

/// The judgment-index row of `tenant` nearest to `text`, as the worker would retrieve it.
async fn nearest(
    searcher: &PgPool,
    embedder: &dyn Embedder,
    tenant: TenantId,
    text: &str,
) -> Vec<judgment_index::JudgmentHit> {
    let vector = embedder.embed(&[text.to_owned()]).await.unwrap().remove(0);
    let mut conn = searcher.acquire().await.unwrap();
    judgment_index::search(&mut conn, tenant, embedder.model_id(), &vector, 10)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_query_becomes_a_grounded_proposal_and_its_approval_grounds_the_next_one() {
    let mut app = spawn_app().await;
    app.onboard_both("professional").await;
    let ai = AiConfig::from_env().expect("AI configuration");
    let embedder = AiProviders::local(&ai).embedder;
    let llm = Arc::new(AdvisingLlm::default());

    // The whole asynchronous side, as `casebook serve` wires it: every projection and
    // reaction, the judgment index, the relay to its own bus and queue, the worker.
    let aws = shared_config().await;
    let names = ResourceNames::with_prefix(&format!("ai-path-{}", Uuid::new_v4().simple()));
    let resources = ensure_resources(&aws, &names)
        .await
        .expect("bus and queues");
    let relay = Relay::new(
        &aws,
        &RelayConfig {
            bus_name: resources.bus_name.clone(),
            source: "casebook".to_owned(),
            diagnosis_queue_url: resources.diagnosis_queue_url.clone(),
        },
        app.pool.clone(),
    );
    let projector_pool =
        postgres::connect((*app.pool.connect_options()).clone(), DbRole::Projector, 24)
            .await
            .expect("projector pool");
    let runner = projector(
        projector_pool,
        app.state.service.clone(),
        embedder.clone(),
        Some(relay),
    );
    let searcher = support::scenario::search_pool(&app.pool).await;
    let uploads = TenantBucket::new(&aws, resources.uploads_bucket.clone());
    app.router = router(
        app.state
            .clone()
            .with_uploads(Uploads::new(uploads.clone(), Duration::from_secs(300))),
    );
    let worker = casebook_handlers::worker::Worker::new(
        support::scenario::diagnoser(&app.pool, embedder.clone(), llm.clone())
            .await
            .with_attachments(Arc::new(uploads.clone())),
    );
    let queue = Queue::new(&aws, &resources.diagnosis_queue_url);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let projecting = tokio::spawn(runner.run_until(until_stopped(stopped.clone())));
    let working = tokio::spawn(run_worker_until(worker, queue, until_stopped(stopped)));

    // Both practices know about indemnity caps; each query may only see its own practice's.
    let acme_precedent = write_judgment(
        &app,
        &app.acme.consultant,
        "Indemnity caps in supplier contracts",
        "A mutual indemnity cap at or above the contract value is enforceable.",
    )
    .await;
    let globex_precedent = write_judgment(
        &app,
        &app.globex.consultant,
        "Indemnity caps in supplier contracts",
        "Globex's view: indemnity caps below the contract value are void.",
    )
    .await;
    write_judgment(
        &app,
        &app.acme.consultant,
        "Office parking",
        "Staff parking permits are renewed every January.",
    )
    .await;

    let first_question = "Is the indemnity cap in our supplier contract enforceable?";
    // The index follows the log asynchronously: the practice's precedents first.
    for _ in 0..600 {
        let hits = nearest(
            &searcher,
            embedder.as_ref(),
            app.acme.tenant,
            first_question,
        )
        .await;
        if hits.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The customer attaches the contract's clause, uploaded through its presigned URL.
    let clause = "Clause 14.2: each party's liability under the indemnity is capped at the \
                  contract value, mutually.";
    let clause_key = app
        .upload(
            &app.acme.customer,
            "clause.txt",
            "text/plain",
            clause.as_bytes(),
        )
        .await;
    let first = ask(&app, &app.acme.customer, first_question, &[&clause_key]).await;
    let entry = queued(&app, &app.acme.consultant, first).await;
    let view = diagnosis_view(&app, &app.acme.consultant, first).await;
    assert_eq!(view["status"], "proposed", "{view}");
    let provenance = &view["proposal"]["provenance"];
    assert_eq!(
        entry["proposal"]["provenance"], *provenance,
        "the review queue shows the same provenance"
    );
    assert_eq!(provenance["model_id"], "advising-model", "{view}");
    assert_eq!(
        provenance["prompt_template_id"],
        DIAGNOSIS_V2.id(),
        "{view}"
    );
    assert_eq!(
        provenance["prompt_template_hash"],
        DIAGNOSIS_V2.sha256_hex(),
        "{view}"
    );
    assert_eq!(provenance["stop_reason"], "end_turn", "{view}");
    assert_eq!(
        provenance["embedding"],
        json!({"model_id": embedder.model_id(), "dimension": 384}),
        "{view}"
    );
    assert_eq!(
        provenance["attachments"],
        json!([{"key": clause_key, "content_type": "text/plain",
                "outcome": {"status": "included", "bytes": clause.len(), "truncated": false}}]),
        "{view}"
    );
    // Each precedent names the log position its indexed text came from.
    let indexed = nearest(
        &searcher,
        embedder.as_ref(),
        app.acme.tenant,
        first_question,
    )
    .await;
    for precedent in provenance["precedents"].as_array().expect("precedents") {
        let hit = indexed
            .iter()
            .find(|hit| json!(hit.judgment_id) == precedent["judgment_id"])
            .unwrap_or_else(|| panic!("{precedent} is one of the tenant's judgments"));
        assert_eq!(precedent["source_position"], hit.source_position, "{view}");
    }
    assert_eq!(provenance["input_tokens"], 120, "{view}");
    assert_eq!(provenance["output_tokens"], 40, "{view}");
    let first_retrieved = retrieved_ids(&view);
    assert_eq!(
        first_retrieved.first(),
        Some(&acme_precedent),
        "the closest precedent comes first: {view}"
    );
    assert!(!first_retrieved.contains(&globex_precedent), "{view}");
    assert!(entry.to_string().contains(&first.to_string()), "{entry}");
    {
        let prompts = llm.prompts.lock().unwrap();
        let prompt = prompts.last().expect("the model was asked");
        assert!(
            user_message(prompt).contains(&format!("[A1] clause.txt\n{clause}")),
            "the uploaded text reached the model"
        );
        let precedents = &prompt.precedents;
        assert_eq!(precedents[0].judgment_id.as_uuid(), &acme_precedent);
        assert!(precedents[0].score > precedents.last().unwrap().score || precedents.len() == 1);
    }

    // The consultant approves: the decision is captured as judgment and indexed.
    let (status, body) = app
        .post(
            &app.acme.consultant,
            &format!("/v1/diagnoses/{first}/decision"),
            json!({ "verdict": "approve" }),
        )
        .await;
    assert!(status.is_success(), "{status}: {body}");
    let second_question = "Can our supplier enforce the indemnity cap in the contract?";
    let mut captured = None;
    for _ in 0..600 {
        let hits = nearest(
            &searcher,
            embedder.as_ref(),
            app.acme.tenant,
            second_question,
        )
        .await;
        captured = hits
            .into_iter()
            .find(|hit| hit.body.as_str().contains(first_question))
            .map(|hit| *hit.judgment_id.as_uuid());
        if captured.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let captured = captured.expect("the approved diagnosis became an indexed judgment");
    assert!(
        nearest(
            &searcher,
            embedder.as_ref(),
            app.globex.tenant,
            second_question
        )
        .await
        .iter()
        .all(|hit| hit.judgment_id.as_uuid() != &captured),
        "another tenant never retrieves it"
    );

    let second = ask(&app, &app.acme.customer, second_question, &[]).await;
    queued(&app, &app.acme.consultant, second).await;
    let view = diagnosis_view(&app, &app.acme.consultant, second).await;
    let second_retrieved = retrieved_ids(&view);
    assert!(
        second_retrieved[..2].contains(&captured),
        "the approved answer is among the best precedents of the next similar query: {view}"
    );
    assert!(!second_retrieved.contains(&globex_precedent), "{view}");

    let _ = stop.send(true);
    projecting
        .await
        .unwrap()
        .expect("the runner stopped cleanly");
    working.await.unwrap();
}

/// Every text the same vector of `dimension` ones, under `model`.
struct ConstantEmbedder {
    model: &'static str,
    dimension: usize,
}

#[async_trait]
impl Embedder for ConstantEmbedder {
    fn model_id(&self) -> &str {
        self.model
    }
    fn dimension(&self) -> usize {
        self.dimension
    }
    async fn embed(
        &self,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, casebook_domain::ports::EmbedError> {
        let value = 1.0 / (self.dimension as f32).sqrt();
        Ok(texts.iter().map(|_| vec![value; self.dimension]).collect())
    }
}

/// Drains the judgment index subscription embedding with `embedder` until `done` holds for
/// the index's `(embedding_model, embedding_dim)` rows and the subscription's status and last
/// error (a hang guard: events become readable once older transactions end).
async fn index_until(
    projector: &sqlx::PgPool,
    embedder: Arc<dyn Embedder>,
    done: impl Fn(&[(String, i32)], &str, Option<&str>) -> bool,
) {
    let mut last = (Vec::new(), String::new(), None);
    for _ in 0..200 {
        casebook_handlers::compose::runner(projector.clone())
            .with_subscription(JudgmentIndexSubscription::new(embedder.clone()))
            .drain(Duration::from_secs(5))
            .await
            .unwrap();
        let rows: Vec<(String, i32)> =
            sqlx::query_as("SELECT embedding_model, embedding_dim FROM judgment_index")
                .fetch_all(projector)
                .await
                .unwrap();
        let (status, error): (String, Option<String>) =
            sqlx::query_as("SELECT status, last_error FROM subscriptions WHERE name = $1")
                .bind(judgment_index::SUBSCRIPTION)
                .fetch_optional(projector)
                .await
                .unwrap()
                .unwrap_or_default();
        if done(&rows, &status, error.as_deref()) {
            return;
        }
        last = (rows, status, error);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the judgment index never got there; last: {last:?}");
}

#[tokio::test]
async fn a_model_change_waits_until_a_rebuild_for_the_new_model_is_swapped_in() {
    use casebook_adapters::postgres::HNSW_EF_SEARCH;
    use casebook_domain::actor::Role;
    use casebook_domain::ids::JudgmentId;
    use casebook_domain::judgment::{JudgmentCommand, JudgmentContent};
    use casebook_domain::values::{JudgmentBody, JudgmentTitle};
    use casebook_projections::judgment_index::{IndexRebuild, RecallCheck};
    use casebook_projections::rebuild::RebuildScope;
    use support::scenario::{ctx, onboard as onboard_tenant};

    let db = casebook_tests::TestDb::new().await;
    let service = casebook_handlers::compose::service(db.pool(DbRole::App, 4).await);
    let projector = db.pool(DbRole::Projector, 4).await;
    let tenant = onboard_tenant(&service, "rebuild").await;
    let consultant = ctx(tenant, Role::Consultant, "rebuild-consultant");
    let author = |title: &'static str| {
        let judgment = JudgmentId::new();
        let command = JudgmentCommand::Author {
            actor: consultant.actor.clone(),
            judgment_id: judgment,
            content: JudgmentContent {
                title: JudgmentTitle::parse(title).unwrap(),
                body: JudgmentBody::parse("What the practice decided.").unwrap(),
                tags: vec![],
            },
        };
        let service = service.clone();
        let consultant = consultant.clone();
        async move { service.edit_judgment(&consultant, judgment, command).await }
    };
    let old: Arc<dyn Embedder> = Arc::new(ConstantEmbedder {
        model: "old-model",
        dimension: 4,
    });
    let new: Arc<dyn Embedder> = Arc::new(ConstantEmbedder {
        model: "new-model",
        dimension: 8,
    });
    let old_rows = || vec![("old-model".to_owned(), 4)];

    author("First").await.expect("authored");
    index_until(&projector, old.clone(), |rows, _, _| rows == old_rows()).await;

    // A process of another model on the same index: the subscription waits, retrying,
    // rather than mix vectors; nothing is skipped.
    author("Second").await.expect("authored");
    index_until(&projector, new.clone(), |rows, status, error| {
        status == "running" && rows == old_rows() && error.is_some_and(|e| e.contains("rebuild"))
    })
    .await;

    // The data teams' blue/green rebuild for the new model, swapped in once verified: the
    // waiting subscription carries on from there.
    let rebuild = IndexRebuild::new(
        db.pool(DbRole::Maintainer, 3).await,
        new.clone(),
        RebuildScope::All,
        RecallCheck::new(HNSW_EF_SEARCH),
    );
    let verdict = rebuild
        .run(std::future::pending(), |_| {})
        .await
        .expect("rebuilt")
        .expect("caught up");
    assert!(verdict.passes(), "{verdict}");
    index_until(&projector, new, |rows, status, error| {
        status == "running"
            && error.is_none()
            && rows.len() == 2
            && rows.iter().all(|r| r == &("new-model".to_owned(), 8))
    })
    .await;
}
