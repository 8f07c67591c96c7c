//! The SQS worker: the Lambda handler reports exactly the failed records, and locally a
//! message whose handler always fails moves to the DLQ after `maxReceiveCount` receives
//! without blocking the other messages of its batch.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use casebook_adapters::aws::setup::{ensure_resources, ResourceNames};
use casebook_adapters::aws::shared_config;
use casebook_adapters::aws::sqs::Queue;
use casebook_adapters::postgres::DbRole;
use casebook_domain::ids::{DiagnosisId, QueryId, TenantId};
use casebook_handlers::relay::DiagnosisMessage;
use casebook_handlers::service::Service;
use casebook_handlers::worker::{handle_sqs_event, run_worker_until, Worker};
use casebook_tests::TestDb;
use sqlx::PgPool;
use support::scenario::{tenant_with_question, CountingLlm, FixedEmbedder};

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
    let service = Service::new(app.clone());
    let (tenant, diagnosis) = tenant_with_question(&service, "worker").await;
    let missing = DiagnosisId::for_query(QueryId::new());
    let json = |s: String| serde_json::to_string(&s).unwrap();
    let fixture = FIXTURE
        .replace("\"BODY_GOOD\"", &json(message(tenant, diagnosis)))
        .replace("\"BODY_MISSING\"", &json(message(tenant, missing)));
    let event: SqsEvent = serde_json::from_str(&fixture).expect("fixture parses");

    let llm = Arc::new(CountingLlm::default());
    let worker = Worker::new(app.clone(), Arc::new(FixedEmbedder), llm.clone());
    let response = handle_sqs_event(&worker, event.clone()).await;
    let body = serde_json::to_value(&response).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"batchItemFailures": [
            {"itemIdentifier": "missing-2"},
            {"itemIdentifier": "garbage-3"},
        ]})
    );
    assert_eq!(proposals(&app, diagnosis).await, 1);

    // Redelivered: the good record is already done; the model is not asked again.
    let again = serde_json::to_value(handle_sqs_event(&worker, event).await).unwrap();
    assert_eq!(again, body);
    assert_eq!(llm.calls.load(Ordering::SeqCst), 1);
    assert_eq!(proposals(&app, diagnosis).await, 1);
}

#[tokio::test]
async fn a_message_that_always_fails_moves_to_the_dlq_without_blocking_its_batch() {
    let db = TestDb::new().await;
    let app = db.pool(DbRole::App, 4).await;
    let service = Service::new(app.clone());
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
    let worker = Worker::new(app.clone(), Arc::new(FixedEmbedder), llm.clone());
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
        proposals(&app, diagnosis).await,
        1,
        "the good message was handled"
    );
    assert_eq!(llm.calls.load(Ordering::SeqCst), 1);
    let left = queue.receive(10, 2).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    drop(db);
    tokio::time::sleep(Duration::ZERO).await;
}

#[tokio::test]
async fn consume_once_applies_an_effect_once_per_event_id_and_rolls_back_with_it() {
    use casebook_handlers::worker::consume_once;
    let db = TestDb::new().await;
    let mut admin = db.superuser().await;
    sqlx::query("CREATE TABLE test_effects (n int NOT NULL)")
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("GRANT SELECT, INSERT ON test_effects TO casebook_app")
        .execute(&mut admin)
        .await
        .unwrap();
    let app = db.pool(DbRole::App, 2).await;
    let tenant = uuid::Uuid::new_v4();
    // A failing effect records nothing, so the redelivery applies it.
    assert!(consume_once(&app, "test", "A/1/1", tenant, failing_effect)
        .await
        .is_err());
    assert!(consume_once(&app, "test", "A/1/1", tenant, insert_effect)
        .await
        .unwrap());
    assert!(!consume_once(&app, "test", "A/1/1", tenant, insert_effect)
        .await
        .unwrap());
    // Another consumer of the same event has its own row.
    assert!(consume_once(&app, "other", "A/1/1", tenant, insert_effect)
        .await
        .unwrap());
    let effects: i64 = sqlx::query_scalar("SELECT count(*) FROM test_effects")
        .fetch_one(&app)
        .await
        .unwrap();
    assert_eq!(effects, 2);
}

type EffectFuture<'t> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<(), casebook_handlers::worker::WorkerError>>
            + Send
            + 't,
    >,
>;

fn insert_effect<'t>(tx: &'t mut sqlx::Transaction<'static, sqlx::Postgres>) -> EffectFuture<'t> {
    Box::pin(async move {
        sqlx::query("INSERT INTO test_effects (n) VALUES (1)")
            .execute(&mut **tx)
            .await
            .map_err(|e| {
                casebook_handlers::worker::WorkerError::Failed("insert".into(), Box::new(e))
            })?;
        Ok(())
    })
}

fn failing_effect<'t>(tx: &'t mut sqlx::Transaction<'static, sqlx::Postgres>) -> EffectFuture<'t> {
    Box::pin(async move {
        insert_effect(tx).await?;
        Err(casebook_handlers::worker::WorkerError::Malformed(
            "boom".into(),
        ))
    })
}
