//! The audit chain verified on demand (auditors), only the caller's tenant's.

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};
use support::spawn_app;
use uuid::Uuid;

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
