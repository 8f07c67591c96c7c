//! The relay against the AWS emulator and Postgres: a requested diagnosis becomes exactly
//! one SQS message, an EventBridge rule receives matched events, a relay that dies between
//! publishing and checkpointing delivers twice while the consumer's effect happens once, and
//! a recorded fine-tune export becomes one job on `local-jobs`.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use casebook_adapters::aws::setup::{ensure_resources, queue_arn, ResourceNames, Resources};
use casebook_adapters::aws::sqs::{Queue, Received};
use casebook_adapters::aws::{shared_config, SdkConfig};
use casebook_adapters::postgres::DbRole;
use casebook_application::service::{RequestContext, Service};
use casebook_domain::actor::Actor;
use casebook_domain::finetune::{FinetuneExport, LogPosition};
use casebook_domain::ids::TenantId;
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::tenant::TenantCommand;
use casebook_handlers::relay::{
    DiagnosisMessage, FinetuneJobMessage, Relay, RelayConfig, FINETUNE_EXPORTED,
};
use casebook_handlers::worker::Worker;
use casebook_projections::error::ApplyError;
use casebook_projections::runner::DrainOutcome;
use casebook_tests::TestDb;
use sqlx::PgPool;
use support::scenario::{diagnoser, onboard, tenant_with_question, CountingLlm, FixedEmbedder};

struct Env {
    db: TestDb,
    app: PgPool,
    projector: PgPool,
    aws: SdkConfig,
    resources: Resources,
    config: RelayConfig,
}

async fn env() -> Env {
    let db = TestDb::new().await;
    let app = db.pool(DbRole::App, 8).await;
    let projector = db.pool(DbRole::Projector, 6).await;
    let aws = shared_config().await;
    let prefix = format!("relay-{}", uuid::Uuid::new_v4().simple());
    let resources = ensure_resources(&aws, &ResourceNames::with_prefix(&prefix))
        .await
        .expect("bus and queues");
    let config = RelayConfig {
        bus_name: resources.bus_name.clone(),
        source: "casebook".to_owned(),
        diagnosis_queue_url: resources.diagnosis_queue_url.clone(),
    };
    Env {
        db,
        app,
        projector,
        aws,
        resources,
        config,
    }
}

/// Runs the relay until it has applied every event in the log. (Drains repeat: the gap-safe
/// reader waits for transactions still open anywhere in the cluster, e.g. other tests'.)
async fn drain(env: &Env, make: impl Fn() -> Relay) {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&env.projector)
        .await
        .unwrap();
    let mut applied = 0;
    for _ in 0..600 {
        let reports = casebook_handlers::compose::runner(env.projector.clone())
            .with_subscription(make())
            .drain(Duration::from_secs(10))
            .await
            .expect("runner");
        assert!(
            !matches!(reports[0].outcome, DrainOutcome::Failed { .. }),
            "{reports:?}"
        );
        applied += reports[0].applied;
        if applied >= total as u64 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the relay never caught up ({applied} of {total})");
}

/// Receives until `n` messages arrived, then checks that no more come (a short long-poll).
async fn receive_exactly(queue: &Queue, n: usize) -> Vec<Received> {
    let mut got = Vec::new();
    for _ in 0..60 {
        if got.len() >= n {
            break;
        }
        got.extend(queue.receive(10, 1).await.expect("receive"));
    }
    assert_eq!(got.len(), n, "{got:?}");
    let more = queue.receive(10, 1).await.expect("receive");
    assert!(more.is_empty(), "unexpected extra messages: {more:?}");
    got
}

#[tokio::test]
async fn a_requested_diagnosis_becomes_exactly_one_message_on_the_diagnosis_queue() {
    let env = env().await;
    let service = casebook_handlers::compose::service(env.app.clone());
    let (tenant, diagnosis) = tenant_with_question(&service, "relay").await;
    let relay = || Relay::new(&env.aws, &env.config, env.app.clone());
    drain(&env, relay).await;
    // A second drain finds nothing new: still one message.
    let reports = casebook_handlers::compose::runner(env.projector.clone())
        .with_subscription(relay())
        .drain(Duration::from_secs(10))
        .await
        .expect("runner");
    assert_eq!(reports[0].applied, 0);

    let queue = Queue::new(&env.aws, &env.resources.diagnosis_queue_url);
    let messages = receive_exactly(&queue, 1).await;
    let body: DiagnosisMessage = serde_json::from_str(&messages[0].body).unwrap();
    assert_eq!(body.tenant_id.to_string(), tenant.to_string());
    assert_eq!(body.diagnosis_id.to_string(), diagnosis.to_string());
    assert_eq!(body.event_id, format!("Diagnosis/{diagnosis}/1"));
    assert_eq!(messages[0].attributes.get("event_id"), Some(&body.event_id));
    assert_eq!(
        messages[0].attributes.get("tenant_id"),
        Some(&tenant.to_string())
    );
    assert_eq!(
        messages[0].attributes.get("type").map(String::as_str),
        Some("DiagnosisRequested")
    );
    drop(env.db);
}

#[tokio::test]
async fn an_eventbridge_rule_delivers_matched_events_to_its_target_queue() {
    let env = env().await;
    let events = aws_sdk_eventbridge_client(&env.aws);
    let target = casebook_adapters::aws::setup::ensure_queue(
        &env.aws,
        &format!("{}-target", env.resources.bus_name),
        &[],
    )
    .await
    .unwrap();
    let target_arn = queue_arn(&env.aws, &target).await.unwrap();
    let pattern = serde_json::json!({
        "source": ["casebook"],
        "detail-type": ["DiagnosisRequested"],
    });
    events
        .put_rule()
        .name("requested")
        .event_bus_name(&env.resources.bus_name)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .expect("rule");
    events
        .put_targets()
        .rule("requested")
        .event_bus_name(&env.resources.bus_name)
        .targets(
            casebook_adapters::aws::aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(target_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("target");

    let service = casebook_handlers::compose::service(env.app.clone());
    let (tenant, diagnosis) = tenant_with_question(&service, "relay").await;
    drain(&env, || Relay::new(&env.aws, &env.config, env.app.clone())).await;

    // Only the DiagnosisRequested event matches (not TenantOnboarded, SessionOpened, ...).
    let queue = Queue::new(&env.aws, &target);
    let messages = receive_exactly(&queue, 1).await;
    let envelope: serde_json::Value = serde_json::from_str(&messages[0].body).unwrap();
    assert_eq!(envelope["source"], "casebook");
    assert_eq!(envelope["detail-type"], "DiagnosisRequested");
    let detail = &envelope["detail"];
    assert_eq!(detail["event_id"], format!("Diagnosis/{diagnosis}/1"));
    assert_eq!(detail["tenant_id"], tenant.to_string());
    assert_eq!(detail["aggregate_id"], diagnosis.to_string());
    assert_eq!(detail["payload"]["type"], "DiagnosisRequested");
}

fn aws_sdk_eventbridge_client(
    aws: &SdkConfig,
) -> casebook_adapters::aws::aws_sdk_eventbridge::Client {
    casebook_adapters::aws::aws_sdk_eventbridge::Client::new(aws)
}

#[tokio::test]
async fn a_relay_killed_after_publishing_delivers_twice_and_the_consumer_acts_once() {
    let env = env().await;
    let service = casebook_handlers::compose::service(env.app.clone());
    let (_tenant, diagnosis) = tenant_with_question(&service, "relay").await;
    let crashed = Arc::new(AtomicBool::new(false));
    let hook_crashed = crashed.clone();
    let hook: casebook_handlers::relay::AfterPublish = Arc::new(move |events| {
        let requested = events.iter().any(|e| e.event_type == "DiagnosisRequested");
        if !requested || hook_crashed.swap(true, Ordering::SeqCst) {
            Ok(())
        } else {
            Err(ApplyError::Transient("killed before the checkpoint".into()))
        }
    });
    let relay =
        || Relay::new(&env.aws, &env.config, env.app.clone()).with_after_publish(hook.clone());
    drain(&env, relay).await;
    assert!(crashed.load(Ordering::SeqCst));

    let queue = Queue::new(&env.aws, &env.resources.diagnosis_queue_url);
    let messages = receive_exactly(&queue, 2).await;
    assert_eq!(messages[0].body, messages[1].body, "same stable event id");

    let llm = Arc::new(CountingLlm::default());
    let worker = Worker::new(diagnoser(&env.app, Arc::new(FixedEmbedder), llm.clone()).await);
    for message in &messages {
        worker
            .handle(&message.body, &message.attributes)
            .await
            .expect("handled");
    }
    assert_eq!(llm.calls.load(Ordering::SeqCst), 1);
    let proposals: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'DiagnosisProposed'",
    )
    .bind(diagnosis.to_string())
    .fetch_one(&env.projector)
    .await
    .unwrap();
    assert_eq!(proposals, 1);
}

/// Records a fine-tune export of 7 examples on `tenant`, as the weekly job does; returns
/// its key and the event's sequence.
async fn record_export(service: &Service, tenant: TenantId, bucket: &str) -> (String, usize) {
    let key = format!("{tenant}/finetune/2026-11-23.jsonl");
    let actor = Actor::system(tenant);
    let system = RequestContext {
        metadata: EventMetadata::new(&actor, "schedule-run", Source::Scheduler),
        actor: actor.clone(),
    };
    let accepted = service
        .administer_tenant(
            &system,
            TenantCommand::RecordFinetuneExport {
                actor,
                export: FinetuneExport {
                    bucket: bucket.to_owned(),
                    key: key.clone(),
                    exported_on: chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
                    examples: 7,
                    after: None,
                    up_to: LogPosition {
                        transaction_id: 1,
                        global_position: 1,
                    },
                },
            },
        )
        .await
        .expect("recorded");
    (key, accepted.events[0].sequence)
}

#[tokio::test]
async fn a_recorded_fine_tune_export_becomes_one_job_on_local_jobs_with_its_s3_key() {
    let env = env().await;
    let service = casebook_handlers::compose::service(env.app.clone());
    let tenant = onboard(&service, "exporting").await;
    let (key, sequence) = record_export(&service, tenant, &env.resources.artifacts_bucket).await;

    let relay = || {
        Relay::new(&env.aws, &env.config, env.app.clone())
            .with_local_jobs_queue(&env.aws, &env.resources.local_jobs_queue_url)
    };
    drain(&env, relay).await;
    let queue = Queue::new(&env.aws, &env.resources.local_jobs_queue_url);
    let messages = receive_exactly(&queue, 1).await;
    let job: FinetuneJobMessage = serde_json::from_str(&messages[0].body).unwrap();
    assert_eq!(
        job,
        FinetuneJobMessage {
            schema_version: FinetuneJobMessage::SCHEMA_VERSION,
            event_id: format!("Tenant/{tenant}/{sequence}"),
            tenant_id: *tenant.as_uuid(),
            bucket: env.resources.artifacts_bucket.clone(),
            key,
            examples: 7,
        }
    );
    assert_eq!(
        messages[0].attributes.get("type").map(String::as_str),
        Some(FINETUNE_EXPORTED)
    );
    assert_eq!(messages[0].attributes.get("event_id"), Some(&job.event_id));
    // Nothing of it reached the diagnosis queue.
    let diagnosis = Queue::new(&env.aws, &env.resources.diagnosis_queue_url);
    assert!(diagnosis.receive(10, 1).await.unwrap().is_empty());
}

#[tokio::test]
async fn without_a_local_jobs_queue_an_export_stops_the_relay_instead_of_being_dropped() {
    let env = env().await;
    let service = casebook_handlers::compose::service(env.app.clone());
    let tenant = onboard(&service, "unwired").await;
    record_export(&service, tenant, "artifacts").await;
    let mut outcome = None;
    for _ in 0..100 {
        let reports = casebook_handlers::compose::runner(env.projector.clone())
            .with_subscription(Relay::new(&env.aws, &env.config, env.app.clone()))
            .drain(Duration::from_secs(10))
            .await
            .expect("runner");
        if let DrainOutcome::Failed { error } = &reports[0].outcome {
            outcome = Some(error.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let error = outcome.expect("the relay stopped");
    assert!(error.contains("LOCAL_JOBS_QUEUE_URL"), "{error}");
}
