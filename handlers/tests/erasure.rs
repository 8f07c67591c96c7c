//! Erasing a customer end to end (issue 32, decision 0027): an admin erases one customer of a
//! practice; afterwards nothing of theirs is left in the database in the clear — searched in a
//! full `pg_dump` — nor in any object under the practice's prefix in any bucket of the
//! emulator (their upload is deleted, the fine-tune export rewritten without them), while
//! another customer's data is intact, and the reads show the erased values as `[erased]`.
//! Nothing the process logged along the way, at any level, holds any of the customers'
//! strings.

mod support;

use std::future::Future;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use casebook_adapters::aws::s3::TenantBucket;
use casebook_adapters::aws::setup::{ensure_resources, ResourceNames, Resources};
use casebook_adapters::aws::{shared_config, SdkConfig};
use casebook_application::reactions::Reactions;
use casebook_domain::actor::Role;
use casebook_domain::ids::{DiagnosisId, TenantId};
use casebook_domain::personal::ERASED;
use casebook_handlers::compose::{erasure_purge, export_files};
use casebook_handlers::http::problem::ApiError;
use casebook_handlers::http::router;
use casebook_handlers::http::uploads::Uploads;
use casebook_handlers::jobs::{Job, JobReport, Jobs, JobsConfig};
use casebook_handlers::operator::{Operator, OperatorAction};
use casebook_handlers::reactions::ReactionSubscription;
use casebook_projections::judgment_index::JudgmentIndexSubscription;
use casebook_projections::projection::ProjectionId;
use casebook_projections::status::status_of;
use casebook_projections::tlog::{Integrator, LogKey};
use casebook_replay::Verdict;
use clap::Parser;
use serde_json::{json, Value};
use support::scenario::FixedEmbedder;
use support::{spawn_app, Lines, TenantUsers, TestApp, User};
use uuid::Uuid;

/// What the erased customer wrote, and what was derived from it: none of it may survive.
const ERASED_STRINGS: &[&str] = &[
    "Ann Smith",
    "4 Elm Row",
    "return the deposit within 14 days",
];
/// The other customer's, which must.
const KEPT_STRINGS: &[&str] = &["Bob Jones", "Harbour Lane"];
/// Each customer's matter: its subject line, query and the consultant's amendment.
const ANN_MATTER: [&str; 3] = [
    "Ann Smith's lease at 4 Elm Row",
    "May my landlord Ann Smith keep the deposit for 4 Elm Row?",
    "Ann Smith must return the deposit within 14 days.",
];
const BOB_MATTER: [&str; 3] = [
    "Bob Jones's lease at 2 Harbour Lane",
    "May Bob Jones raise the rent at 2 Harbour Lane?",
    "Bob Jones may raise it once a year.",
];

/// A customer's matter in `practice`: a session, a query, a proposal and a consultant's
/// amendment, which the practice captures as judgment.
async fn matter(
    app: &TestApp,
    practice: &TenantUsers,
    customer: &User,
    [subject, query, amended]: [&str; 3],
) -> Uuid {
    let session = app.open_session(customer, subject).await;
    let diagnosis = app.ask(customer, session, query).await;
    app.propose(practice.tenant, DiagnosisId::from_uuid(diagnosis), 0.6)
        .await;
    let (status, body) = app
        .post(
            &practice.consultant,
            &format!("/v1/diagnoses/{diagnosis}/decision"),
            json!({ "verdict": "amend", "amended_text": amended, "reason": "From the lease" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    session
}

/// Acme's customer (Ann) uploads her lease: her name in the file's name and body.
async fn upload_anns_lease(app: &TestApp) {
    app.upload(
        &app.acme.customer,
        "Ann Smith lease.txt",
        "text/plain",
        b"Ann Smith's tenancy at 4 Elm Row",
    )
    .await;
}

/// `admin` erases `subject`.
async fn erase(app: &TestApp, admin: &User, subject: &str) -> (StatusCode, Value) {
    app.post(admin, &format!("/v1/subjects/{subject}/erasure"), json!({}))
        .await
}

/// The app, its uploads going to buckets of its own in the emulator.
struct Practice {
    app: TestApp,
    aws: SdkConfig,
    buckets: Resources,
}

impl Practice {
    async fn spawn() -> Self {
        let mut app = spawn_app().await;
        let aws = shared_config().await;
        let prefix = format!("erasure-{}", Uuid::new_v4().simple());
        let buckets = ensure_resources(&aws, &ResourceNames::with_prefix(&prefix))
            .await
            .expect("buckets");
        let uploads = Uploads::new(
            TenantBucket::new(&aws, &buckets.uploads_bucket),
            Duration::from_secs(300),
        );
        app.router = router(app.state.clone().with_uploads(uploads));
        Self { app, aws, buckets }
    }

    /// The weekly fine-tune export, as the scheduler runs it; the keys it wrote.
    async fn exported(&self) -> Vec<String> {
        let jobs = Jobs::new(
            self.app.pool.clone(),
            self.app.projector_pool().await,
            &self.aws,
            &JobsConfig {
                artifacts_bucket: Some(self.buckets.artifacts_bucket.clone()),
                audit_archive_bucket: Some(self.buckets.audit_archive_bucket.clone()),
                lag_alert: Duration::from_secs(60),
            },
        );
        let JobReport::FinetuneExport { exports } = jobs
            .run(Job::FinetuneExport, chrono::Utc::now())
            .await
            .expect("exported")
        else {
            panic!("another report");
        };
        exports.into_iter().map(|export| export.key).collect()
    }

    /// Runs every projection, the reactions (which capture judgment), the judgment index and
    /// the erasure purge.
    async fn drain(&self) {
        let app = &self.app;
        let log = app.projector_pool().await;
        let purge = erasure_purge(
            app.pool.clone(),
            TenantBucket::new(&self.aws, &self.buckets.uploads_bucket),
            export_files(
                app.pool.clone(),
                log.clone(),
                TenantBucket::new(&self.aws, &self.buckets.artifacts_bucket),
            ),
        );
        casebook_handlers::compose::runner(log)
            .with_projections(ProjectionId::ALL)
            .with_subscription(ReactionSubscription::new(Reactions::new(
                app.state.service.clone(),
            )))
            .with_subscription(JudgmentIndexSubscription::new(Arc::new(FixedEmbedder)))
            .with_subscription(ReactionSubscription::new(purge))
            .drain(Duration::from_secs(5))
            .await
            .expect("subscriptions applied");
    }

    /// Drains until the erasure purge has applied every committed event (bounded, as
    /// [`judgments_when`]: another subscription may read an event before the purge does).
    async fn purged(&self) {
        let pool = self.app.projector_pool().await;
        for _ in 0..200 {
            self.drain().await;
            let mut conn = pool.acquire().await.expect("a connection");
            let purge = status_of(&mut conn, "erasure_purge")
                .await
                .expect("the purge's status");
            if purge.is_some_and(|purge| purge.lag_events == 0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the erasure purge never caught up");
    }

    /// Every object under `tenant`'s prefix in every bucket of the emulator (the practice's
    /// own and any other), as `(bucket/key, body)`.
    async fn objects_of(&self, tenant: TenantId) -> Vec<(String, String)> {
        let s3 = casebook_adapters::aws::s3::client(&self.aws);
        let buckets = s3.list_buckets().send().await.expect("buckets listed");
        let mut objects = Vec::new();
        for bucket in buckets.buckets().iter().filter_map(|b| b.name()) {
            let pages = s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(format!("{tenant}/"))
                .into_paginator()
                .send()
                .try_collect()
                .await
                .expect("objects listed");
            for key in pages
                .iter()
                .flat_map(|page| page.contents())
                .filter_map(|object| object.key())
            {
                let object = s3
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .expect("object read");
                let body = object.body.collect().await.expect("body read");
                objects.push((
                    format!("{bucket}/{key}"),
                    String::from_utf8_lossy(&body.into_bytes()).into_owned(),
                ));
            }
        }
        objects
    }
}

/// Drains until the practice's judgment list satisfies `ready` (bounded: events become
/// readable once every older transaction has ended, and a capture is a reaction's command).
async fn judgments_when(practice: &Practice, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let app = &practice.app;
    let mut last = Vec::new();
    for _ in 0..200 {
        practice.drain().await;
        let (status, body) = app.get(&app.acme.consultant, "/v1/judgments").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        last = body["items"].as_array().cloned().unwrap_or_default();
        if ready(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the judgments never got there: {last:?}");
}

fn pg_dump(app: &TestApp) -> String {
    let output = Command::new("pg_dump")
        .arg("--dbname")
        .arg(app.database_url())
        .output()
        .expect("pg_dump runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("a UTF-8 dump")
}

#[tokio::test]
async fn an_erased_customers_data_is_nowhere_in_the_database_and_the_others_is_intact() {
    // Every level, the statements the database driver logs included.
    std::env::set_var("RUST_LOG", "debug");
    let logs = Lines::default();
    let writer = logs.clone();
    casebook_handlers::telemetry::init_writing_to(move || writer.clone());
    let practice = Practice::spawn().await;
    let app = &practice.app;
    app.onboard_both("professional").await;
    let kept_customer = app
        .another_user(app.acme.tenant, "kept-customer", Role::Customer)
        .await;
    let kept_upload = app
        .upload(
            &kept_customer,
            "Bob Jones lease.txt",
            "text/plain",
            b"Bob Jones's tenancy at 2 Harbour Lane",
        )
        .await;
    upload_anns_lease(app).await;
    let erased_session = matter(app, &app.acme, &app.acme.customer, ANN_MATTER).await;
    let kept_session = matter(app, &app.acme, &kept_customer, BOB_MATTER).await;
    judgments_when(&practice, |items| items.len() == 2).await;
    let exports = practice.exported().await;
    let export = format!(
        "{}/{}",
        practice.buckets.artifacts_bucket,
        exports
            .iter()
            .find(|key| key.starts_with(&app.acme.tenant.to_string()))
            .expect("Acme's export")
    );
    let in_s3 = practice.objects_of(app.acme.tenant).await;
    for text in ERASED_STRINGS.iter().chain(KEPT_STRINGS) {
        assert!(
            in_s3
                .iter()
                .any(|(key, body)| key.contains(text) || body.contains(text)),
            "{text:?} was never in S3"
        );
    }
    let before = pg_dump(app);
    for text in ERASED_STRINGS.iter().chain(KEPT_STRINGS) {
        assert!(
            before.contains(text),
            "{text:?} was never in the read models"
        );
    }
    let session = app
        .read_when(
            &app.acme.customer,
            &format!("/v1/sessions/{erased_session}"),
            |_| true,
        )
        .await;
    let subject = session["opened_by"]
        .as_str()
        .expect("the customer's id")
        .to_owned();

    let (status, body) = erase(app, &app.acme.admin, &subject).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["ids"]["subject"], subject);
    // The practice keeps a record that the judgment existed, its content redacted.
    let judgments = judgments_when(&practice, |items| {
        items.iter().any(|judgment| judgment["body"] == ERASED)
    })
    .await;
    let bodies: Vec<&str> = judgments
        .iter()
        .map(|judgment| judgment["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies.len(), 2, "{judgments:?}");
    assert!(
        bodies.iter().any(|body| body.contains("Bob Jones")),
        "{bodies:?}"
    );
    practice.purged().await;

    let in_s3 = practice.objects_of(app.acme.tenant).await;
    for (key, body) in &in_s3 {
        for text in ERASED_STRINGS {
            assert!(
                !key.contains(text) && !body.contains(text),
                "{text:?} survived the erasure in {key}"
            );
        }
    }
    let kept = |key: &str| {
        in_s3
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, body)| body.as_str())
    };
    assert_eq!(
        kept(&format!(
            "{}/{kept_upload}",
            practice.buckets.uploads_bucket
        )),
        Some("Bob Jones's tenancy at 2 Harbour Lane"),
        "the other customer's upload"
    );
    let export_lines: Vec<Value> = kept(&export)
        .expect("the export")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(export_lines.len(), 1, "{export_lines:?}");
    assert_eq!(
        export_lines[0]["messages"][1]["content"],
        "Bob Jones may raise it once a year."
    );

    let after = pg_dump(app);
    for text in ERASED_STRINGS {
        assert!(!after.contains(text), "{text:?} survived the erasure");
    }
    for text in KEPT_STRINGS {
        assert!(
            after.contains(text),
            "{text:?} of the other customer was lost"
        );
    }

    let erased = app
        .read_when(
            &app.acme.consultant,
            &format!("/v1/sessions/{erased_session}"),
            |_| true,
        )
        .await;
    assert_eq!(erased["subject"], "[erased]", "{erased}");
    let kept = app
        .read_when(
            &app.acme.consultant,
            &format!("/v1/sessions/{kept_session}"),
            |_| true,
        )
        .await;
    assert_eq!(kept["subject"], "Bob Jones's lease at 2 Harbour Lane");

    let (status, body) = erase(app, &app.acme.admin, &subject).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "subject_already_erased");
    // Nothing more of theirs is recorded: not even an upload's file name.
    let (status, body) = app
        .post(
            &app.acme.customer,
            "/v1/uploads",
            json!({ "file_name": "Ann Smith again.txt", "content_type": "text/plain", "size_bytes": 10 }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "subject_erased");

    let path = format!("/v1/subjects/{subject}/erasure/receipt");
    receipt_verifies_offline(app, || app.get(&app.acme.auditor, &path)).await;

    let logged = logs.text();
    assert!(logged.contains(&subject), "the logs were not captured");
    for text in ERASED_STRINGS.iter().chain(KEPT_STRINGS) {
        assert!(!logged.contains(text), "{text:?} was logged");
    }
}

/// The erasure's receipt as `fetch` answers it, once a checkpoint covers it, checked by
/// `casebook-replay erasure verify` with the published key; altered, or checked with another
/// key, it fails.
async fn receipt_verifies_offline<F: Future<Output = (StatusCode, Value)>>(
    app: &TestApp,
    fetch: impl Fn() -> F,
) {
    let (status, body) = fetch().await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "receipt_pending");

    let (private, verifier) = LogKey::generate("casebook.test");
    let pool = app.projector_pool().await;
    Integrator::new(Arc::new(LogKey::from_private(&private).unwrap()))
        .integrate_all(&pool)
        .await
        .expect("integrated");
    let (status, receipt) = fetch().await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    for text in ERASED_STRINGS {
        assert!(
            !receipt.to_string().contains(text),
            "{text:?} in the receipt"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        file.to_str().unwrap().to_owned()
    };
    let key = write("log.pub", verifier);
    let (_, other_key) = LogKey::generate("casebook.test");
    let other_key = write("other.pub", other_key);
    let mut forged = receipt.clone();
    forged["row"]["actor_id"] = json!("someone-else");
    let receipt_file = write("receipt.json", receipt.to_string());
    let forged_file = write("forged.json", forged.to_string());
    let verify = |receipt: &str, key: &str| {
        let cli = casebook_replay::cli::Cli::parse_from([
            "casebook-replay",
            "--json",
            "erasure",
            "verify",
            "--receipt",
            receipt,
            "--key",
            key,
        ]);
        async move { cli.run().await.expect("runs") }
    };
    assert_eq!(verify(&receipt_file, &key).await, Verdict::Passed);
    assert_eq!(verify(&forged_file, &key).await, Verdict::Failed);
    assert_eq!(verify(&receipt_file, &other_key).await, Verdict::Failed);
}

#[tokio::test]
async fn only_an_admin_erases_and_only_in_their_own_practice() {
    let app = spawn_app().await;
    app.onboard_both("professional").await;
    let subject = "a-customer-id";
    for user in [&app.acme.consultant, &app.acme.customer, &app.acme.auditor] {
        let (status, body) = erase(&app, user, subject).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    // Globex's admin erases in Globex: Acme's keys are out of its reach.
    let (status, body) = erase(&app, &app.globex.admin, subject).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = erase(&app, &app.acme.admin, subject).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// A practice leaving the product (issue 32): the operator erases the whole tenant. Afterwards
/// none of its customers' strings is in the database in the clear nor in any object under its
/// prefix, it takes no command, its receipt verifies offline, and the other practice is intact.
#[tokio::test]
async fn an_erased_tenant_keeps_nothing_of_its_customers_and_the_other_practice_is_intact() {
    let practice = Practice::spawn().await;
    let app = &practice.app;
    app.onboard_both("professional").await;
    let second_customer = app
        .another_user(app.acme.tenant, "second-customer", Role::Customer)
        .await;
    upload_anns_lease(app).await;
    matter(app, &app.acme, &app.acme.customer, ANN_MATTER).await;
    matter(app, &app.acme, &second_customer, BOB_MATTER).await;
    let other_practice = [
        "Cleo Park's lease at 9 Mill Street",
        "May Cleo Park sublet 9 Mill Street?",
        "Cleo Park may sublet with consent.",
    ];
    matter(app, &app.globex, &app.globex.customer, other_practice).await;
    judgments_when(&practice, |items| items.len() == 2).await;
    assert_eq!(
        practice.exported().await.len(),
        2,
        "both practices exported"
    );
    let erased: Vec<&str> = ERASED_STRINGS.iter().chain(KEPT_STRINGS).copied().collect();
    let kept = ["Cleo Park", "9 Mill Street"];
    let before = pg_dump(app);
    for text in erased.iter().chain(&kept) {
        assert!(before.contains(text), "{text:?} was never in the database");
    }

    let operator = Operator::new("ops", app.acme.tenant, "run-erase").expect("an operator");
    operator
        .apply(&app.state.service, OperatorAction::Erase)
        .await
        .expect("the tenant is erased");
    practice.purged().await;

    let after = pg_dump(app);
    for text in &erased {
        assert!(!after.contains(text), "{text:?} survived the erasure");
    }
    for text in &kept {
        assert!(
            after.contains(text),
            "{text:?} of the other practice was lost"
        );
    }
    for (key, body) in practice.objects_of(app.acme.tenant).await {
        for text in &erased {
            assert!(
                !key.contains(text) && !body.contains(text),
                "{text:?} survived the erasure in {key}"
            );
        }
    }
    let other_objects = practice.objects_of(app.globex.tenant).await;
    assert!(
        other_objects
            .iter()
            .any(|(_, body)| body.contains("Cleo Park")),
        "the other practice's export was lost"
    );

    // Nothing is taken from the erased tenant any more, a second erasure included.
    let (status, body) = app
        .post(
            &app.acme.customer,
            "/v1/sessions",
            json!({ "session_id": Uuid::new_v4(), "subject": "Anything at all" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let again = operator
        .apply(&app.state.service, OperatorAction::Erase)
        .await;
    assert!(again.is_err(), "{again:?}");

    let pool = app.pool.clone();
    let tenant = app.acme.tenant;
    receipt_verifies_offline(app, || {
        let pool = pool.clone();
        async move {
            match casebook_handlers::http::erasure::receipt(&pool, tenant, None).await {
                Ok(receipt) => (StatusCode::OK, serde_json::to_value(receipt).unwrap()),
                Err(ApiError::Refused { status, code, .. }) => (status, json!({ "code": code })),
                Err(other) => panic!("{other:?}"),
            }
        }
    })
    .await;
}
