//! A session's attachments in the diagnosis worker, against the AWS emulator's S3: the text
//! ones (`text/*`, `application/json`, at most 64 KiB each, cut on a character boundary) are
//! embedded with the query and reach the model's prompt; binary, empty and missing ones are
//! left out; every one is accounted for in the proposal's provenance. Another tenant's upload
//! is refused unread, even when a stored session names it.

mod support;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use casebook_adapters::ai::prompt::{user_message, DIAGNOSIS_V2};
use casebook_adapters::aws::s3::TenantBucket;
use casebook_adapters::aws::setup::ensure_bucket;
use casebook_adapters::aws::shared_config;
use casebook_adapters::postgres::DbRole;
use casebook_application::service::{RequestContext, Service};
use casebook_domain::actor::Role;
use casebook_domain::diagnosis::ATTACHMENT_TEXT_LIMIT;
use casebook_domain::ids::{DiagnosisId, SessionId, TenantId};
use casebook_domain::ports::{
    AttachmentError, AttachmentStore, DiagnosisPrompt, EmbedError, Embedder, Llm, LlmAnswer,
    LlmError, StopReason,
};
use casebook_domain::values::{Confidence, DiagnosisText, Subject, UploadKey};
use casebook_tests::TestDb;
use serde_json::{json, Value};
use sqlx::PgPool;
use support::scenario::{ctx, diagnoser, onboard, open_session, request, submit, FixedEmbedder};
use uuid::Uuid;

const QUESTION: &str = "Is the indemnity cap in our supplier contract enforceable?";
const CONTRACT: &str = "Clause 14.2 — each party's liability under the indemnity is capped at \
                        €2 m, the contract value.";
const READINGS: &str = r#"{"contract_value_eur": 2000000, "cap_eur": 2000000}"#;

/// Remembers every prompt; answers with a sure, fixed diagnosis (one call, whatever the tier).
#[derive(Default)]
struct RecordingLlm {
    prompts: Mutex<Vec<DiagnosisPrompt>>,
}

impl RecordingLlm {
    fn prompts(&self) -> Vec<DiagnosisPrompt> {
        self.prompts.lock().unwrap().clone()
    }
}

#[async_trait]
impl Llm for RecordingLlm {
    async fn diagnose(&self, prompt: &DiagnosisPrompt) -> Result<LlmAnswer, LlmError> {
        self.prompts.lock().unwrap().push(prompt.clone());
        Ok(LlmAnswer {
            text: DiagnosisText::parse("The cap is enforceable: it is mutual.").unwrap(),
            findings: vec![],
            confidence: Confidence::new(0.95).unwrap(),
            input_tokens: 100,
            output_tokens: 20,
            model_id: "recording-model".to_owned(),
            stop_reason: StopReason::MaxTokens,
        })
    }
}

/// [`FixedEmbedder`] that remembers what it was asked to embed.
struct RecordingEmbedder {
    inner: FixedEmbedder,
    texts: Mutex<Vec<String>>,
}

impl RecordingEmbedder {
    fn new() -> Self {
        Self {
            inner: FixedEmbedder,
            texts: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl Embedder for RecordingEmbedder {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }
    fn dimension(&self) -> usize {
        self.inner.dimension()
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.texts.lock().unwrap().extend_from_slice(texts);
        self.inner.embed(texts).await
    }
}

/// A bucket of its own in the emulator.
async fn bucket() -> TenantBucket {
    let aws = shared_config().await;
    let name = format!("casebook-attachments-{}", Uuid::new_v4().simple());
    ensure_bucket(&aws, &name).await.expect("bucket");
    TenantBucket::new(&aws, name)
}

/// A fresh upload key of `tenant` for a file called `name`.
fn key(tenant: TenantId, name: &str) -> UploadKey {
    UploadKey::parse(
        TenantBucket::tenant_key(tenant, &format!("uploads/{}/{name}", Uuid::new_v4())).unwrap(),
    )
    .unwrap()
}

async fn upload(bucket: &TenantBucket, tenant: TenantId, key: &UploadKey, body: &[u8], ty: &str) {
    bucket
        .put(tenant, key.as_str(), body.to_vec(), ty)
        .await
        .expect("uploaded");
}

/// `customer` asks [`QUESTION`] in a new session opened with `attachments`.
async fn ask(
    service: &Service,
    customer: &RequestContext,
    attachments: Vec<UploadKey>,
) -> DiagnosisId {
    let session = open_session(service, customer, attachments).await;
    submit(service, customer, session, QUESTION).await
}

/// The stored `DiagnosisProposed` provenance of `diagnosis`.
async fn provenance(pool: &PgPool, diagnosis: DiagnosisId) -> Value {
    let payload: Value = sqlx::query_scalar(
        "SELECT payload FROM events
          WHERE aggregate_id = $1 AND event_type = 'DiagnosisProposed'",
    )
    .bind(diagnosis.to_string())
    .fetch_one(pool)
    .await
    .expect("proposed");
    payload["provenance"].clone()
}

#[tokio::test]
async fn text_attachments_reach_the_embedder_and_the_model_and_every_attachment_is_accounted_for() {
    let db = TestDb::new().await;
    let app = db.pool(DbRole::App, 4).await;
    let log = db.pool(DbRole::Projector, 1).await;
    let service = casebook_handlers::compose::service(app.clone());
    let tenant = onboard(&service, "attachments").await;
    let bucket = bucket().await;

    let contract = key(tenant, "contract.txt");
    upload(
        &bucket,
        tenant,
        &contract,
        CONTRACT.as_bytes(),
        "text/plain; charset=utf-8",
    )
    .await;
    let readings = key(tenant, "readings.json");
    upload(
        &bucket,
        tenant,
        &readings,
        READINGS.as_bytes(),
        "application/json",
    )
    .await;
    let scan = key(tenant, "scan.pdf");
    upload(
        &bucket,
        tenant,
        &scan,
        b"%PDF-1.7 \x00\x01binary",
        "application/pdf",
    )
    .await;
    // Longer than the limit, with a three-byte '€' straddling it: the text stops before it.
    let limit = usize::try_from(ATTACHMENT_TEXT_LIMIT).unwrap();
    let minutes_text = format!("{}€ and the rest of the minutes", "m".repeat(limit - 1));
    let minutes = key(tenant, "minutes.txt");
    upload(
        &bucket,
        tenant,
        &minutes,
        minutes_text.as_bytes(),
        "text/plain",
    )
    .await;
    let empty = key(tenant, "empty.txt");
    upload(&bucket, tenant, &empty, b"", "text/plain").await;
    let never_uploaded = key(tenant, "never-uploaded.txt");

    let customer = ctx(tenant, Role::Customer, "attachments-customer");
    let attachments = vec![
        contract.clone(),
        readings.clone(),
        scan.clone(),
        minutes.clone(),
        empty.clone(),
        never_uploaded.clone(),
    ];
    let diagnosis = ask(&service, &customer, attachments).await;

    let embedder = Arc::new(RecordingEmbedder::new());
    let llm = Arc::new(RecordingLlm::default());
    let worker = diagnoser(&app, embedder.clone(), llm.clone())
        .await
        .with_attachments(Arc::new(bucket.clone()));
    worker
        .diagnose(&request(tenant, diagnosis))
        .await
        .expect("handled");

    // The model got the text attachments, in the session's order, under the new template.
    let prompts = llm.prompts();
    let prompt = prompts.last().expect("the model was asked");
    assert_eq!(prompt.system, DIAGNOSIS_V2.text());
    let sent: Vec<(&str, &str)> = prompt
        .attachments
        .iter()
        .map(|a| (a.key.as_str(), a.text.as_str()))
        .collect();
    let minutes_cut = "m".repeat(limit - 1);
    assert_eq!(
        sent,
        [
            (contract.as_str(), CONTRACT),
            (readings.as_str(), READINGS),
            (minutes.as_str(), minutes_cut.as_str()),
        ]
    );
    let user = user_message(prompt);
    assert!(
        user.contains(&format!("[A1] contract.txt\n{CONTRACT}\n")),
        "{user:.300}"
    );
    assert!(user.contains(&format!("[A2] readings.json\n{READINGS}\n")));
    assert!(!user.contains("PDF"), "the binary attachment stays out");
    assert!(user.ends_with(&format!("Query:\n{QUESTION}")));

    // Retrieval embedded the query first, then the attachments' text.
    let embedded = embedder.texts.lock().unwrap().clone();
    assert_eq!(embedded.len(), 1, "one embedding per attempt");
    assert!(
        embedded[0].starts_with(&format!("{QUESTION}\n\n{CONTRACT}\n\n{READINGS}\n\nmmm")),
        "{:.300}",
        embedded[0]
    );

    // The provenance accounts for every attachment, and carries the rest of v3.
    let provenance = provenance(&log, diagnosis).await;
    assert_eq!(
        provenance["attachments"],
        json!([
            {"key": contract, "content_type": "text/plain; charset=utf-8",
             "outcome": {"status": "included", "bytes": CONTRACT.len(), "truncated": false}},
            {"key": readings, "content_type": "application/json",
             "outcome": {"status": "included", "bytes": READINGS.len(), "truncated": false}},
            {"key": scan, "content_type": "application/pdf",
             "outcome": {"status": "skipped", "reason": "not_text"}},
            {"key": minutes, "content_type": "text/plain",
             "outcome": {"status": "included", "bytes": limit - 1, "truncated": true}},
            {"key": empty, "content_type": "text/plain",
             "outcome": {"status": "skipped", "reason": "empty"}},
            {"key": never_uploaded, "content_type": null,
             "outcome": {"status": "skipped", "reason": "missing"}},
        ]),
        "{provenance}"
    );
    assert_eq!(provenance["prompt_template_id"], DIAGNOSIS_V2.id());
    assert_eq!(
        provenance["prompt_template_hash"],
        DIAGNOSIS_V2.sha256_hex()
    );
    assert_eq!(provenance["stop_reason"], "max_tokens");
    assert_eq!(
        provenance["embedding"],
        json!({"model_id": "test-embedder", "dimension": 4})
    );
    assert_eq!(provenance["precedents"], json!([]), "the index is empty");
}

#[tokio::test]
async fn another_tenants_upload_is_refused_unread_even_when_a_stored_session_names_it() {
    let db = TestDb::new().await;
    let app = db.pool(DbRole::App, 4).await;
    let log = db.pool(DbRole::Projector, 1).await;
    let service = casebook_handlers::compose::service(app.clone());
    let acme = onboard(&service, "acme").await;
    let globex = onboard(&service, "globex").await;
    let bucket = bucket().await;
    let secret = key(acme, "settlement.txt");
    let secret_text = b"Acme settles for 1.2 m; do not disclose.";
    upload(&bucket, acme, &secret, secret_text, "text/plain").await;

    // The store itself: Acme reads its upload, Globex is refused before any S3 call.
    assert_eq!(
        bucket.read_prefix(acme, &secret, 1_024).await.unwrap(),
        secret_text
    );
    assert!(matches!(
        bucket.describe(globex, &secret).await,
        Err(AttachmentError::OutsideTenant { .. })
    ));
    assert!(matches!(
        bucket.read_prefix(globex, &secret, 1_024).await,
        Err(AttachmentError::OutsideTenant { .. })
    ));

    // A Globex session cannot be opened with it …
    let customer = ctx(globex, Role::Customer, "globex-customer");
    let refused = service
        .open_session(
            &customer,
            SessionId::new(),
            Subject::parse("Peek").unwrap(),
            vec![secret.clone()],
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");

    // … but if a stored session named it anyway (written around the aggregate, as tampering
    // would), the worker still refuses to read it and says so.
    let honest = SessionId::new();
    service
        .open_session(
            &customer,
            honest,
            Subject::parse("Supplier contract").unwrap(),
            vec![],
        )
        .await
        .expect("session opened");
    let tampered = SessionId::new();
    let mut superuser = db.superuser().await;
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                             payload, metadata)
         SELECT aggregate_type, $1, 1, event_type, event_version,
                payload || jsonb_build_object('session_id', $1::text, 'attachments', $2::jsonb),
                metadata
           FROM events WHERE aggregate_id = $3 AND event_type = 'SessionOpened'",
    )
    .bind(tampered.to_string())
    .bind(json!([secret]))
    .bind(honest.to_string())
    .execute(&mut superuser)
    .await
    .expect("tampered session stored");
    let diagnosis = submit(&service, &customer, tampered, QUESTION).await;

    let embedder = Arc::new(RecordingEmbedder::new());
    let llm = Arc::new(RecordingLlm::default());
    let worker = diagnoser(&app, embedder.clone(), llm.clone())
        .await
        .with_attachments(Arc::new(bucket.clone()));
    worker
        .diagnose(&request(globex, diagnosis))
        .await
        .expect("handled");

    let prompts = llm.prompts();
    assert!(!prompts.is_empty(), "the model was asked");
    for prompt in &prompts {
        assert!(prompt.attachments.is_empty(), "{:?}", prompt.attachments);
        assert!(!user_message(prompt).contains("settles"));
    }
    assert!(embedder
        .texts
        .lock()
        .unwrap()
        .iter()
        .all(|text| !text.contains("settles")));
    assert_eq!(
        provenance(&log, diagnosis).await["attachments"],
        json!([{"key": secret, "content_type": null,
                "outcome": {"status": "skipped", "reason": "outside_tenant"}}])
    );
}
