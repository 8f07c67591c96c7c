//! Erasing a customer end to end (issue 32, decision 0027): an admin erases one customer of a
//! practice; afterwards nothing of theirs is left in the database in the clear — searched in a
//! full `pg_dump` — while another customer's data is intact, and the reads show the erased
//! values as `[erased]`. Nothing the process logged along the way, at any level, holds any
//! of the customers' strings.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use casebook_application::reactions::Reactions;
use casebook_domain::actor::Role;
use casebook_domain::ids::DiagnosisId;
use casebook_handlers::reactions::ReactionSubscription;
use casebook_projections::judgment_index::JudgmentIndexSubscription;
use casebook_projections::projection::ProjectionId;
use casebook_projections::tlog::{Integrator, LogKey};
use casebook_replay::Verdict;
use clap::Parser;
use serde_json::{json, Value};
use support::scenario::FixedEmbedder;
use support::{spawn_app, Lines, TestApp, User};
use uuid::Uuid;

/// What the erased customer wrote, and what was derived from it: none of it may survive.
const ERASED_STRINGS: &[&str] = &[
    "Ann Smith",
    "4 Elm Row",
    "return the deposit within 14 days",
];
/// The other customer's, which must.
const KEPT_STRINGS: &[&str] = &["Bob Jones", "Harbour Lane"];

/// A customer's matter: a session, a query, a proposal and a consultant's amendment, which the
/// practice captures as judgment.
async fn matter(app: &TestApp, customer: &User, subject: &str, query: &str, amended: &str) -> Uuid {
    let session = app.open_session(customer, subject).await;
    let diagnosis = app.ask(customer, session, query).await;
    app.propose(app.acme.tenant, DiagnosisId::from_uuid(diagnosis), 0.6)
        .await;
    let (status, body) = app
        .post(
            &app.acme.consultant,
            &format!("/v1/diagnoses/{diagnosis}/decision"),
            json!({ "verdict": "amend", "amended_text": amended, "reason": "From the lease" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    session
}

/// `admin` erases `subject`.
async fn erase(app: &TestApp, admin: &User, subject: &str) -> (StatusCode, Value) {
    app.post(admin, &format!("/v1/subjects/{subject}/erasure"), json!({}))
        .await
}

/// Runs every projection, the reactions (which capture judgment) and the judgment index.
async fn drain(app: &TestApp) {
    casebook_handlers::compose::runner(app.projector_pool().await)
        .with_projections(ProjectionId::ALL)
        .with_subscription(ReactionSubscription::new(Reactions::new(
            app.state.service.clone(),
        )))
        .with_subscription(JudgmentIndexSubscription::new(Arc::new(FixedEmbedder)))
        .drain(Duration::from_secs(5))
        .await
        .expect("subscriptions applied");
}

/// Drains until the practice's judgment list satisfies `ready` (bounded: events become
/// readable once every older transaction has ended, and a capture is a reaction's command).
async fn judgments_when(app: &TestApp, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut last = Vec::new();
    for _ in 0..200 {
        drain(app).await;
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
    let app = spawn_app().await;
    app.onboard_both("professional").await;
    let kept_customer = app
        .another_user(app.acme.tenant, "kept-customer", Role::Customer)
        .await;
    let erased_session = matter(
        &app,
        &app.acme.customer,
        "Ann Smith's lease at 4 Elm Row",
        "May my landlord Ann Smith keep the deposit for 4 Elm Row?",
        "Ann Smith must return the deposit within 14 days.",
    )
    .await;
    let kept_session = matter(
        &app,
        &kept_customer,
        "Bob Jones's lease at 2 Harbour Lane",
        "May Bob Jones raise the rent at 2 Harbour Lane?",
        "Bob Jones may raise it once a year.",
    )
    .await;
    judgments_when(&app, |items| items.len() == 2).await;
    let before = pg_dump(&app);
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

    let (status, body) = erase(&app, &app.acme.admin, &subject).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["ids"]["subject"], subject);
    let judgments = judgments_when(&app, |items| items.len() == 1).await;
    assert!(judgments[0]["body"].as_str().unwrap().contains("Bob Jones"));

    let after = pg_dump(&app);
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

    let (status, body) = erase(&app, &app.acme.admin, &subject).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "subject_already_erased");

    receipt_verifies_offline(&app, &subject).await;

    let logged = logs.text();
    assert!(logged.contains(&subject), "the logs were not captured");
    for text in ERASED_STRINGS.iter().chain(KEPT_STRINGS) {
        assert!(!logged.contains(text), "{text:?} was logged");
    }
}

/// The erasure's receipt, once a checkpoint covers it, checked by `casebook-replay erasure
/// verify` with the published key; altered, or checked with another key, it fails.
async fn receipt_verifies_offline(app: &TestApp, subject: &str) {
    let path = format!("/v1/subjects/{subject}/erasure/receipt");
    let (status, body) = app.get(&app.acme.auditor, &path).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "receipt_pending");

    let (private, verifier) = LogKey::generate("casebook.test");
    let pool = app.projector_pool().await;
    Integrator::new(Arc::new(LogKey::from_private(&private).unwrap()))
        .integrate_all(&pool)
        .await
        .expect("integrated");
    let (status, receipt) = app.get(&app.acme.admin, &path).await;
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
