//! The evaluation gate's held-out decisions, read from the real read models: only the
//! practice's approved and amended decisions that fine-tune exports leave out.

mod support;

use axum::http::StatusCode;
use casebook_application::own_models::HeldOutDecisions;
use casebook_domain::ids::{DecisionId, DiagnosisId};
use casebook_domain::own_model::is_held_out;
use casebook_handlers::own_models::ScopedHeldOut;
use serde_json::json;
use support::{spawn_app, TenantUsers, TestApp};
use uuid::Uuid;

/// A query id whose decision is (or is not) held out.
fn query_id(held_out: bool) -> Uuid {
    loop {
        let id = Uuid::new_v4();
        if is_held_out(DecisionId::from_uuid(id)) == held_out {
            return id;
        }
    }
}

/// `practice`'s customer asks `text` under `query`; the proposal is decided with `verdict`.
async fn decided(
    app: &TestApp,
    practice: &TenantUsers,
    query: Uuid,
    text: &str,
    verdict: serde_json::Value,
) {
    let session = app.open_session(&practice.customer, "Supply deal").await;
    let (status, body) = app
        .post(
            &practice.customer,
            &format!("/v1/sessions/{session}/queries"),
            json!({ "query_id": query, "text": text }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    app.propose(practice.tenant, DiagnosisId::from_uuid(query), 0.6)
        .await;
    let (status, body) = app
        .post(
            &practice.consultant,
            &format!("/v1/diagnoses/{query}/decision"),
            verdict,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn the_held_out_decisions_are_the_practices_approved_ones_that_exports_leave_out() {
    let app = spawn_app().await;
    app.onboard_both("professional").await;
    let approved = query_id(true);
    let amended = query_id(true);
    decided(
        &app,
        &app.acme,
        approved,
        "Is the cap enforceable?",
        json!({ "verdict": "approve" }),
    )
    .await;
    decided(
        &app,
        &app.acme,
        amended,
        "May we sublet?",
        json!({ "verdict": "amend", "amended_text": "Only with the landlord's consent." }),
    )
    .await;
    decided(
        &app,
        &app.acme,
        query_id(true),
        "Can we terminate early?",
        json!({ "verdict": "reject", "reason": "Needs the full contract" }),
    )
    .await;
    decided(
        &app,
        &app.acme,
        query_id(false),
        "Trained on this one?",
        json!({ "verdict": "approve" }),
    )
    .await;
    decided(
        &app,
        &app.globex,
        query_id(true),
        "Another practice's question?",
        json!({ "verdict": "approve" }),
    )
    .await;

    let held_out = ScopedHeldOut::new(app.pool.clone());
    let mut examples = Vec::new();
    for _ in 0..200 {
        app.project().await;
        examples = held_out.held_out(app.acme.tenant, 10).await.unwrap();
        if examples.len() >= 2 {
            break;
        }
    }
    let mut queries: Vec<&str> = examples.iter().map(|e| e.query.as_str()).collect();
    queries.sort_unstable();
    assert_eq!(queries, ["Is the cap enforceable?", "May we sublet?"]);
    let sublet = examples
        .iter()
        .find(|e| e.query.as_str() == "May we sublet?")
        .unwrap();
    assert_eq!(sublet.approved_text, "Only with the landlord's consent.");
    assert!(sublet.approved_findings.is_empty());
    let cap = examples
        .iter()
        .find(|e| e.query.as_str() == "Is the cap enforceable?")
        .unwrap();
    assert_eq!(cap.approved_text, "The cap is enforceable.");
    assert_eq!(
        held_out.held_out(app.acme.tenant, 1).await.unwrap().len(),
        1
    );
}
