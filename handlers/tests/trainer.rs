//! The practice's trainer against the AWS emulator: a decision exported by the weekly job
//! reaches the trainer through the relay and comes back as a GGUF model under its tenant's
//! `models/` prefix, with its metadata and metrics; a message that is no job and a job whose
//! command always fails end in the dead-letter queue after the queue's receive limit while
//! the trainer goes on to the next job; a job that trains past the queue's visibility timeout
//! is handed to no one else meanwhile; a job whose model an earlier delivery uploaded, or
//! whose export an erasure emptied or deleted, is deleted without training; and a trainer
//! told to stop kills its command and hands the job back at once.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use casebook_adapters::ai::AiConfig;
use casebook_adapters::aws::aws_sdk_s3::operation::head_object::HeadObjectOutput;
use casebook_adapters::aws::aws_sdk_sqs::types::QueueAttributeName;
use casebook_adapters::aws::s3::{self, TenantBucket};
use casebook_adapters::aws::setup::{
    ensure_resources, ResourceNames, Resources, MAX_RECEIVE_COUNT,
};
use casebook_adapters::aws::sqs::{Queue, Received};
use casebook_adapters::aws::{shared_config, SdkConfig};
use casebook_adapters::postgres::DbRole;
use casebook_application::service::ConsultantVerdict;
use casebook_domain::actor::Role;
use casebook_domain::ids::TenantId;
use casebook_handlers::jobs::{Job, JobReport, Jobs, JobsConfig};
use casebook_handlers::relay::{FinetuneJobMessage, Relay, RelayConfig, FINETUNE_EXPORTED};
use casebook_handlers::trainer::{Trainer, TrainerConfig, TrainerReport};
use casebook_tests::TestDb;
use sha2::{Digest, Sha256};
use support::scenario::{ask, ctx, onboard, propose};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The emulator's queues and buckets of one test, the queues' visibility timeout
/// `visibility_timeout` seconds.
async fn emulator(visibility_timeout: u32) -> (SdkConfig, Resources) {
    let aws = shared_config().await;
    let mut names =
        ResourceNames::with_prefix(&format!("trainer-{}", uuid::Uuid::new_v4().simple()));
    names.visibility_timeout = visibility_timeout;
    let resources = ensure_resources(&aws, &names)
        .await
        .expect("queues and buckets");
    (aws, resources)
}

/// A trainer's settings over `resources` running `script` with `sh -c`: failed jobs come
/// back at once, and a running job's message is kept for 2 s at a time.
fn config(
    resources: &Resources,
    work_dir: &Path,
    base_model: &Path,
    script: &str,
) -> TrainerConfig {
    TrainerConfig {
        queue_url: resources.local_jobs_queue_url.clone(),
        bucket: resources.artifacts_bucket.clone(),
        command: vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()],
        work_dir: work_dir.to_owned(),
        base_model: base_model.to_owned(),
        base_model_name: None,
        heartbeat: Duration::from_millis(500),
        visibility: Duration::from_secs(2),
        retry_delay: Duration::ZERO,
    }
}

/// The smallest valid GGUF file (version 3, no tensor, no metadata), for the tests that do
/// not need a real model.
fn tiny_gguf(dir: &Path) -> PathBuf {
    let path = dir.join("tiny-base.gguf");
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A running trainer and what stops it.
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<TrainerReport>,
}

impl Running {
    fn start(trainer: Trainer) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            trainer
                .run_until(None, async {
                    let _ = stopped.await;
                })
                .await
        });
        Self { stop, task }
    }

    async fn stop(self) -> TrainerReport {
        let _ = self.stop.send(());
        self.task.await.expect("the trainer ran")
    }
}

/// `lines` as `tenant`'s export number `sequence` in the artifacts bucket, and its job as the
/// relay sends it.
async fn export(
    aws: &SdkConfig,
    resources: &Resources,
    tenant: TenantId,
    sequence: i64,
    lines: &[&str],
) -> FinetuneJobMessage {
    let key =
        TenantBucket::tenant_key(tenant, &format!("finetune/export-{sequence}.jsonl")).unwrap();
    let body = lines
        .iter()
        .map(|line| format!("{line}\n"))
        .collect::<String>();
    TenantBucket::new(aws, &resources.artifacts_bucket)
        .put(tenant, &key, body.into_bytes(), "application/x-ndjson")
        .await
        .expect("export written");
    FinetuneJobMessage {
        schema_version: FinetuneJobMessage::SCHEMA_VERSION,
        event_id: format!("Tenant/{tenant}/{sequence}"),
        tenant_id: *tenant.as_uuid(),
        bucket: resources.artifacts_bucket.clone(),
        key,
        examples: u32::try_from(lines.len()).unwrap(),
    }
}

/// Sends `job` with the relay's message attributes.
async fn send(queue: &Queue, job: &FinetuneJobMessage) {
    let tenant = job.tenant_id.to_string();
    queue
        .send(
            &serde_json::to_string(job).unwrap(),
            &[
                ("event_id", job.event_id.as_str()),
                ("tenant_id", tenant.as_str()),
                ("type", FINETUNE_EXPORTED),
            ],
        )
        .await
        .expect("job sent");
}

const EXAMPLE: &str = r#"{"messages":[{"role":"user","content":"Is the cap enforceable?"},{"role":"assistant","content":"Yes."}]}"#;

/// The object at `key`, if there is one.
async fn head(aws: &SdkConfig, bucket: &str, key: &str) -> Option<HeadObjectOutput> {
    s3::client(aws)
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .ok()
}

/// Waits for the object at `key` (a hang guard, not a speed assertion).
async fn uploaded(aws: &SdkConfig, bucket: &str, key: &str) -> HeadObjectOutput {
    for _ in 0..1200 {
        if let Some(object) = head(aws, bucket, key).await {
            return object;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{key} was never uploaded");
}

/// Waits until `queue` holds no message, visible or in flight: a job taken is deleted once
/// its model is uploaded (a hang guard).
async fn drained(queue: &Queue) {
    let count = [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ];
    for _ in 0..600 {
        let attributes = queue
            .client()
            .get_queue_attributes()
            .queue_url(queue.url())
            .set_attribute_names(Some(count.to_vec()))
            .send()
            .await
            .expect("queue attributes");
        if count.iter().all(|name| {
            attributes
                .attributes()
                .and_then(|a| a.get(name))
                .is_some_and(|n| n == "0")
        }) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never drained", queue.url());
}

/// Waits for `path` to exist (a hang guard).
async fn appears(path: &Path) {
    for _ in 0..600 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} never appeared", path.display());
}

/// Receives from `queue` until `n` messages came.
async fn receive(queue: &Queue, n: usize) -> Vec<Received> {
    let mut got = Vec::new();
    for _ in 0..120 {
        if got.len() >= n {
            break;
        }
        got.extend(queue.receive(10, 1).await.expect("receive"));
    }
    assert_eq!(got.len(), n, "{got:?}");
    got
}

fn metadata<'a>(object: &'a HeadObjectOutput, name: &str) -> &'a str {
    object
        .metadata()
        .and_then(|metadata| metadata.get(name))
        .map_or("", String::as_str)
}

fn sha256_of(path: &Path) -> String {
    let digest = Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[tokio::test]
async fn an_exported_decision_comes_back_as_a_gguf_model_under_the_tenants_models_prefix() {
    let db = TestDb::new().await;
    let app = db.pool(DbRole::App, 8).await;
    let log = db.pool(DbRole::Projector, 8).await;
    let service = casebook_handlers::compose::service(app.clone());
    let (aws, resources) = emulator(720).await;

    // A decision of the practice, exported by the weekly job as in production.
    let tenant = onboard(&service, "trained").await;
    let customer = ctx(tenant, Role::Customer, "trained-customer");
    let consultant = ctx(tenant, Role::Consultant, "trained-consultant");
    let (_, diagnosis) = ask(&service, &customer, "trained: is the cap enforceable?").await;
    propose(&app, tenant, diagnosis).await;
    service
        .decide(&consultant, diagnosis, ConsultantVerdict::Approve)
        .await
        .expect("approved");
    let jobs = Jobs::new(
        app.clone(),
        log.clone(),
        &aws,
        &JobsConfig {
            artifacts_bucket: Some(resources.artifacts_bucket.clone()),
            audit_archive_bucket: None,
            lag_alert: Duration::from_secs(60),
        },
    );
    // Repeated until the log shows the decision (other tests' open transactions hold its
    // horizon back for a moment).
    let mut exported = None;
    for _ in 0..300 {
        let JobReport::FinetuneExport { exports } = jobs
            .run(Job::FinetuneExport, chrono::Utc::now())
            .await
            .expect("export")
        else {
            panic!("another report");
        };
        if let Some(export) = exports.into_iter().find(|e| e.tenant_id == tenant) {
            exported = Some(export);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exported = exported.expect("the decision was exported");
    let sequence: i64 = sqlx::query_scalar(
        "SELECT sequence FROM events WHERE aggregate_id = $1 AND event_type = 'FinetuneExported'",
    )
    .bind(tenant.to_string())
    .fetch_one(&log)
    .await
    .unwrap();

    // The relay, as the projector runs it, puts the job on local-jobs.
    let relay = Relay::new(
        &aws,
        &RelayConfig {
            bus_name: resources.bus_name.clone(),
            source: "casebook".to_owned(),
            diagnosis_queue_url: resources.diagnosis_queue_url.clone(),
        },
        app.clone(),
    )
    .with_local_jobs_queue(&aws, &resources.local_jobs_queue_url);
    let (stop_relay, relay_stopped) = oneshot::channel::<()>();
    let relaying = tokio::spawn(
        casebook_handlers::compose::runner(log.clone())
            .with_subscription(relay)
            .run_until(async {
                let _ = relay_stopped.await;
            }),
    );

    // The practice's command: the embedded SmolLM2 as the "fine-tuned" model, and metrics
    // that show it read the export (placeholders and variables both).
    let base_model = AiConfig::from_env().expect("AI configuration").gguf_path;
    let work = tempfile::tempdir().unwrap();
    let script = r#"cp {base_model} {output} &&
        printf '{"examples": %s, "lines_read": %s}' "$CASEBOOK_EXAMPLES" "$(wc -l < "$CASEBOOK_EXPORT")" > "$CASEBOOK_METRICS""#;
    let trainer =
        Trainer::new(&aws, config(&resources, work.path(), &base_model, script)).expect("trainer");
    let running = Running::start(trainer);

    let key = format!("{tenant}/models/finetune-{sequence}/model.gguf");
    let model = uploaded(&aws, &resources.artifacts_bucket, &key).await;
    let queue = Queue::new(&aws, &resources.local_jobs_queue_url);
    drained(&queue).await;
    let report = running.stop().await;
    let _ = stop_relay.send(());
    relaying.await.unwrap().expect("the relay ran");

    assert_eq!(
        report,
        TrainerReport {
            trained: 1,
            ..TrainerReport::default()
        }
    );
    assert_eq!(
        model.content_length(),
        Some(i64::try_from(std::fs::metadata(&base_model).unwrap().len()).unwrap())
    );
    assert_eq!(metadata(&model, "format"), "gguf");
    assert_eq!(metadata(&model, "base-model"), "SmolLM2-135M-Instruct.Q4_1");
    assert_eq!(
        metadata(&model, "event-id"),
        format!("Tenant/{tenant}/{sequence}")
    );
    assert_eq!(metadata(&model, "tenant-id"), tenant.to_string());
    assert_eq!(metadata(&model, "examples"), exported.examples.to_string());
    assert_eq!(metadata(&model, "sha256"), sha256_of(&base_model));
    assert_eq!(metadata(&model, "metrics"), "metrics.json");
    let metrics: serde_json::Value = serde_json::from_slice(
        &TenantBucket::new(&aws, &resources.artifacts_bucket)
            .get(
                tenant,
                &format!("{tenant}/models/finetune-{sequence}/metrics.json"),
            )
            .await
            .expect("metrics beside the model"),
    )
    .unwrap();
    assert_eq!(metrics, serde_json::json!({"examples": 1, "lines_read": 1}));

    // The job is done: off the queue, not dead-lettered, its folder gone.
    let dlq = Queue::new(&aws, &resources.local_jobs_dlq_url);
    assert!(dlq.receive(10, 1).await.unwrap().is_empty());
    assert!(!work
        .path()
        .join(tenant.to_string())
        .join(format!("finetune-{sequence}"))
        .exists());
    // The emulator keeps every object until it stops: not this test's 94 MiB.
    TenantBucket::new(&aws, &resources.artifacts_bucket)
        .delete(tenant, &key)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_message_that_is_no_job_and_a_job_that_always_fails_end_in_the_dlq_and_the_next_job_is_trained(
) {
    let (aws, resources) = emulator(30).await;
    let queue = Queue::new(&aws, &resources.local_jobs_queue_url);
    let dlq = Queue::new(&aws, &resources.local_jobs_dlq_url);
    let tenant = TenantId::new();
    let work = tempfile::tempdir().unwrap();
    let base_model = tiny_gguf(work.path());
    // The practice's command fails on one export, whatever the attempt.
    let script = r#"if grep -q unlearnable "$CASEBOOK_EXPORT"; then echo "loss diverged" >&2; exit 3; fi
        cp "$CASEBOOK_BASE_MODEL" "$CASEBOOK_OUTPUT""#;
    let trainer = Trainer::new(
        &aws,
        config(&resources, &work.path().join("jobs"), &base_model, script),
    )
    .expect("trainer");

    let poison = serde_json::json!({"event_id": format!("Tenant/{tenant}/1"), "examples": "seven"})
        .to_string();
    queue
        .send(&poison, &[("type", FINETUNE_EXPORTED)])
        .await
        .unwrap();
    let failing = export(&aws, &resources, tenant, 2, &[r#"{"unlearnable": true}"#]).await;
    send(&queue, &failing).await;
    let running = Running::start(trainer);

    // Both reach the dead-letter queue after the receive limit, the trainer still running.
    let dead = receive(&dlq, 2).await;
    let mut bodies: Vec<&str> = dead.iter().map(|m| m.body.as_str()).collect();
    bodies.sort_unstable();
    let failing_body = serde_json::to_string(&failing).unwrap();
    let mut expected = vec![poison.as_str(), failing_body.as_str()];
    expected.sort_unstable();
    assert_eq!(bodies, expected);

    let next = export(&aws, &resources, tenant, 3, &[EXAMPLE, EXAMPLE]).await;
    send(&queue, &next).await;
    let model = uploaded(
        &aws,
        &resources.artifacts_bucket,
        &format!("{tenant}/models/finetune-3/model.gguf"),
    )
    .await;
    drained(&queue).await;
    let report = running.stop().await;

    assert_eq!(
        report,
        TrainerReport {
            trained: 1,
            failed: MAX_RECEIVE_COUNT,
            malformed: MAX_RECEIVE_COUNT,
            ..TrainerReport::default()
        }
    );
    assert_eq!(metadata(&model, "examples"), "2");
    // No metrics file was written, so none is named.
    assert_eq!(metadata(&model, "metrics"), "");
    assert!(head(
        &aws,
        &resources.artifacts_bucket,
        &format!("{tenant}/models/finetune-2/model.gguf")
    )
    .await
    .is_none());
    // The failed job's log stays in its folder for the practice to read.
    let log = std::fs::read_to_string(
        work.path()
            .join("jobs")
            .join(tenant.to_string())
            .join("finetune-2")
            .join("train.log"),
    )
    .unwrap();
    assert!(log.contains("loss diverged"), "{log}");
}

#[tokio::test]
async fn a_job_that_trains_past_the_visibility_timeout_is_handed_to_no_one_else() {
    let (aws, resources) = emulator(2).await;
    let queue = Queue::new(&aws, &resources.local_jobs_queue_url);
    // The control: a message received and kept without a heartbeat comes back within a wait
    // of three visibility timeouts.
    queue.send("control", &[]).await.unwrap();
    let held = receive(&queue, 1).await;
    let back = queue.receive(10, 6).await.unwrap();
    assert_eq!(back.len(), 1, "the queue never handed the message back");
    assert_eq!(back[0].message_id, held[0].message_id);
    queue.delete(&back[0].receipt_handle).await.unwrap();

    let tenant = TenantId::new();
    let work = tempfile::tempdir().unwrap();
    let base_model = tiny_gguf(work.path());
    let runs = work.path().join("runs");
    let release = work.path().join("release");
    let script = format!(
        r#"echo run >> {runs}; while [ ! -e {release} ]; do sleep 0.1; done; cp {{base_model}} {{output}}"#,
        runs = runs.display(),
        release = release.display(),
    );
    let trainer = Trainer::new(
        &aws,
        config(&resources, &work.path().join("jobs"), &base_model, &script),
    )
    .expect("trainer");
    let job = export(&aws, &resources, tenant, 4, &[EXAMPLE]).await;
    send(&queue, &job).await;
    let running = Running::start(trainer);
    appears(&runs).await;

    // Another consumer waits as long as the control did, and gets nothing: the trainer holds
    // the message.
    let meanwhile = queue.receive(10, 6).await.unwrap();
    assert!(
        meanwhile.is_empty(),
        "handed out while training: {meanwhile:?}"
    );
    let attributes = queue
        .client()
        .get_queue_attributes()
        .queue_url(queue.url())
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    assert_eq!(
        attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
            .map(String::as_str),
        Some("1")
    );

    std::fs::write(&release, "").unwrap();
    uploaded(
        &aws,
        &resources.artifacts_bucket,
        &format!("{tenant}/models/finetune-4/model.gguf"),
    )
    .await;
    drained(&queue).await;
    let report = running.stop().await;
    assert_eq!(
        report,
        TrainerReport {
            trained: 1,
            ..TrainerReport::default()
        }
    );
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "run\n");
}

#[tokio::test]
async fn a_job_with_nothing_left_to_train_is_deleted_without_running_the_command() {
    let (aws, resources) = emulator(30).await;
    let queue = Queue::new(&aws, &resources.local_jobs_queue_url);
    let dlq = Queue::new(&aws, &resources.local_jobs_dlq_url);
    let tenant = TenantId::new();
    let work = tempfile::tempdir().unwrap();
    let base_model = tiny_gguf(work.path());
    let runs = work.path().join("runs");
    let script = format!(
        "echo run >> {runs}; cp {{base_model}} {{output}}",
        runs = runs.display()
    );
    let trainer = Trainer::new(
        &aws,
        config(&resources, &work.path().join("jobs"), &base_model, &script),
    )
    .expect("trainer");
    // Every example's customer erased: the file rewritten without a line.
    let emptied = export(&aws, &resources, tenant, 6, &[]).await;
    // The whole tenant erased: the file deleted.
    let deleted = export(&aws, &resources, tenant, 7, &[EXAMPLE]).await;
    TenantBucket::new(&aws, &resources.artifacts_bucket)
        .delete(tenant, &deleted.key)
        .await
        .unwrap();
    // Trained by an earlier delivery, which died before deleting its message.
    let trained = export(&aws, &resources, tenant, 8, &[EXAMPLE]).await;
    s3::client(&aws)
        .put_object()
        .bucket(&resources.artifacts_bucket)
        .key(format!("{tenant}/models/finetune-8/model.gguf"))
        .metadata("event-id", &trained.event_id)
        .body(std::fs::read(&base_model).unwrap().into())
        .send()
        .await
        .unwrap();
    // The count recorded stays what the file held first.
    send(
        &queue,
        &FinetuneJobMessage {
            examples: 3,
            ..emptied
        },
    )
    .await;
    send(&queue, &deleted).await;
    send(&queue, &trained).await;
    let running = Running::start(trainer);
    drained(&queue).await;
    let report = running.stop().await;

    assert_eq!(
        report,
        TrainerReport {
            skipped: 3,
            ..TrainerReport::default()
        }
    );
    assert!(!runs.exists(), "the command ran");
    for sequence in [6, 7] {
        let key = format!("{tenant}/models/finetune-{sequence}/model.gguf");
        assert!(head(&aws, &resources.artifacts_bucket, &key)
            .await
            .is_none());
    }
    assert!(dlq.receive(10, 1).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_trainer_told_to_stop_kills_its_command_and_hands_the_job_back_at_once() {
    // A visibility timeout far longer than the test: the job comes back only if handed back.
    let (aws, resources) = emulator(720).await;
    let queue = Queue::new(&aws, &resources.local_jobs_queue_url);
    let tenant = TenantId::new();
    let work = tempfile::tempdir().unwrap();
    let base_model = tiny_gguf(work.path());
    let pid = work.path().join("pid");
    // The command's own child stands for a training process it started.
    let script = format!(
        "sleep 600 & echo $! > {pid}.tmp; mv {pid}.tmp {pid}; wait",
        pid = pid.display()
    );
    let trainer = Trainer::new(
        &aws,
        config(&resources, &work.path().join("jobs"), &base_model, &script),
    )
    .expect("trainer");
    let job = export(&aws, &resources, tenant, 5, &[EXAMPLE]).await;
    send(&queue, &job).await;
    let running = Running::start(trainer);
    appears(&pid).await;
    let training = std::fs::read_to_string(&pid).unwrap().trim().to_owned();

    let report = running.stop().await;
    assert_eq!(
        report,
        TrainerReport {
            interrupted: 1,
            ..TrainerReport::default()
        }
    );
    // Killed (a zombie until something reaps it, or gone).
    let stat = Path::new("/proc").join(&training).join("stat");
    let mut state = String::new();
    for _ in 0..100 {
        state = std::fs::read_to_string(&stat).unwrap_or_default();
        if state.is_empty() || state.contains(") Z ") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        state.is_empty() || state.contains(") Z "),
        "the training process lives on: {state}"
    );
    let back = receive(&queue, 1).await;
    assert_eq!(back[0].body, serde_json::to_string(&job).unwrap());
    assert_eq!(back[0].receive_count, 2);
}
