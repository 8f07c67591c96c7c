//! Two reads the web app needs: the practice's captured judgments (consultants), and the audit
//! chain verified on demand (auditors), each only the caller's tenant's.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use casebook_projections::judgment_index::JudgmentIndexSubscription;
use serde_json::{json, Value};
use support::scenario::FixedEmbedder;
use support::spawn_app;
use uuid::Uuid;

#[tokio::test]
async fn a_practices_active_judgments_are_listed_newest_first_to_its_consultants_only() {
    let app = spawn_app().await;
    app.onboard_both("professional").await;
    let mut ids = Vec::new();
    for title in ["Indemnity caps", "Exclusivity clauses"] {
        let id = Uuid::new_v4();
        let (status, body) = app
            .post(
                &app.acme.consultant,
                "/v1/judgments",
                json!({
                    "judgment_id": id,
                    "title": title,
                    "body": format!("How the practice reads {title}."),
                    "tags": ["contracts"],
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.push(id);
    }
    let (status, body) = app
        .post(
            &app.acme.consultant,
            &format!("/v1/judgments/{}/retire", ids[0]),
            json!({ "reason": "superseded" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    // The index catches up (bounded: events become readable once older transactions end).
    let mut listed = Value::Null;
    for _ in 0..200 {
        casebook_handlers::compose::runner(app.projector_pool().await)
            .with_subscription(JudgmentIndexSubscription::new(Arc::new(FixedEmbedder)))
            .drain(Duration::from_secs(5))
            .await
            .unwrap();
        let (status, body) = app.get(&app.acme.consultant, "/v1/judgments").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let titles: Vec<&str> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["title"].as_str().unwrap())
            .collect();
        if titles == ["Exclusivity clauses"] {
            listed = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        listed["items"][0]["judgment_id"],
        ids[1].to_string(),
        "{listed}"
    );
    assert_eq!(listed["items"][0]["tags"], json!(["contracts"]));

    let (status, theirs) = app.get(&app.globex.consultant, "/v1/judgments").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(theirs["items"], json!([]));
    let (status, _) = app.get(&app.acme.customer, "/v1/judgments").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_auditor_verifies_the_chain_and_sees_where_it_was_broken() {
    let app = spawn_app().await;
    app.onboard_both("starter").await;
    let (status, body) = app
        .post(
            &app.acme.customer,
            "/v1/sessions",
            json!({ "session_id": Uuid::new_v4(), "subject": "Lease renewal" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let mut verified = Value::Null;
    for _ in 0..200 {
        app.project().await;
        let (status, body) = app.get(&app.acme.auditor, "/v1/audit/verification").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["rows"].as_u64() >= Some(2) {
            verified = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(verified["verified"], true, "{verified}");
    assert_eq!(verified["content_checked"], verified["rows"]);
    assert_eq!(verified["broken"], Value::Null);

    let mut su = app.superuser().await;
    sqlx::query("UPDATE audit_log SET actor_id = 'someone-else' WHERE tenant_id = $1 AND seq = 2")
        .bind(app.acme.tenant.as_uuid())
        .execute(&mut su)
        .await
        .unwrap();
    let (_, broken) = app.get(&app.acme.auditor, "/v1/audit/verification").await;
    assert_eq!(broken["verified"], false, "{broken}");
    assert_eq!(broken["broken"]["seq"], 2, "{broken}");
    // The other tenant's chain is its own, and still whole.
    let (_, theirs) = app.get(&app.globex.auditor, "/v1/audit/verification").await;
    assert_eq!(theirs["verified"], true, "{theirs}");
    let (status, _) = app
        .get(&app.acme.consultant, "/v1/audit/verification")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
