//! Consultants browse and search their practice's captured judgment: filtered lists, one
//! judgment with its history, and a search by meaning through the embedded model and the
//! tenant's index — each only the caller's practice's.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use casebook_adapters::ai::{AiConfig, AiProviders};
use casebook_application::judgments::JudgmentSearch;
use casebook_application::reactions::Reactions;
use casebook_domain::ids::DiagnosisId;
use casebook_domain::ports::Embedder;
use casebook_handlers::http::router;
use casebook_handlers::reactions::ReactionSubscription;
use casebook_projections::judgment_index::{IndexSearch, JudgmentIndexSubscription};
use casebook_projections::projection::ProjectionId;
use serde_json::{json, Value};
use support::scenario::{search_pool, FixedEmbedder};
use support::{spawn_app, TestApp, User};
use uuid::Uuid;

/// `consultant` writes a judgment; its id.
async fn author(app: &TestApp, consultant: &User, title: &str, body: &str) -> Uuid {
    let id = Uuid::new_v4();
    let (status, response) = app
        .post(
            consultant,
            "/v1/judgments",
            json!({ "judgment_id": id, "title": title, "body": body, "tags": ["contracts"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{response}");
    id
}

/// Runs the projections, the reactions (which capture judgment from decisions) and the
/// judgment index embedding with `embedder`.
async fn drain(app: &TestApp, embedder: Arc<dyn Embedder>) {
    casebook_handlers::compose::runner(app.projector_pool().await)
        .with_projections(ProjectionId::ALL)
        .with_subscription(ReactionSubscription::new(Reactions::new(
            app.state.service.clone(),
        )))
        .with_subscription(JudgmentIndexSubscription::new(embedder))
        .drain(Duration::from_secs(5))
        .await
        .expect("subscriptions applied");
}

/// Drains and reads `path` as `user` until `ready` holds for its items (bounded: events
/// become readable once every older transaction has ended, and a capture is a reaction's
/// command, so it takes a second pass).
async fn items_when(
    app: &TestApp,
    embedder: &Arc<dyn Embedder>,
    user: &User,
    path: &str,
    ready: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut last = Vec::new();
    for _ in 0..200 {
        drain(app, embedder.clone()).await;
        let (status, body) = app.get(user, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        last = body["items"].as_array().cloned().unwrap_or_default();
        if ready(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never got there: {last:?}");
}

fn titles(items: &[Value]) -> Vec<&str> {
    let mut titles: Vec<&str> = items.iter().map(|j| j["title"].as_str().unwrap()).collect();
    titles.sort_unstable();
    titles
}

#[tokio::test]
async fn consultants_list_their_practices_judgments_by_status_origin_source_and_date() {
    let app = spawn_app().await;
    app.onboard_both("professional").await;
    let embedder: Arc<dyn Embedder> = Arc::new(FixedEmbedder);
    let consultant = &app.acme.consultant;
    let caps = author(
        &app,
        consultant,
        "Indemnity caps",
        "Cap at twelve months' fees.",
    )
    .await;
    let exclusivity = author(&app, consultant, "Exclusivity", "Refuse exclusivity.").await;
    author(&app, consultant, "Non-compete terms", "Six months at most.").await;
    let (status, body) = app
        .post(
            consultant,
            &format!("/v1/judgments/{exclusivity}/revise"),
            json!({ "title": "Exclusivity clauses", "body": "Refuse exclusivity over a year.", "tags": ["contracts", "exclusivity"] }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = app
        .post(
            consultant,
            &format!("/v1/judgments/{caps}/retire"),
            json!({ "reason": "superseded by the 2026 policy" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // A decision's approval is captured as judgment.
    let session = app.open_session(&app.acme.customer, "Supply deal").await;
    let diagnosis = app
        .ask(&app.acme.customer, session, "Is the cap enforceable?")
        .await;
    app.propose(app.acme.tenant, DiagnosisId::from_uuid(diagnosis), 0.6)
        .await;
    let (status, body) = app
        .post(
            consultant,
            &format!("/v1/diagnoses/{diagnosis}/decision"),
            json!({ "verdict": "approve" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let all = items_when(&app, &embedder, consultant, "/v1/judgments", |items| {
        items.len() == 4
    })
    .await;
    let status_of = |title: &str| {
        all.iter()
            .find(|j| j["title"] == title)
            .map(|j| j["status"].clone())
    };
    assert_eq!(status_of("Indemnity caps"), Some(json!("retired")));
    assert_eq!(status_of("Exclusivity clauses"), Some(json!("revised")));
    assert_eq!(status_of("Non-compete terms"), Some(json!("active")));
    let captured = all
        .iter()
        .find(|j| j["origin"] == "decision")
        .expect("the approval captured")
        .clone();
    assert_eq!(captured["decision_id"], diagnosis.to_string());
    assert_eq!(captured["status"], "active");
    // Newest change first.
    let positions: Vec<&str> = all
        .iter()
        .map(|j| j["updated_at"].as_str().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] >= w[1]), "{positions:?}");

    let list = |query: &'static str| {
        let app = &app;
        async move {
            let (status, body) = app.get(consultant, &format!("/v1/judgments?{query}")).await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            body["items"].as_array().cloned().unwrap()
        }
    };
    assert_eq!(titles(&list("status=retired").await), ["Indemnity caps"]);
    assert_eq!(
        titles(&list("status=revised").await),
        ["Exclusivity clauses"]
    );
    assert_eq!(list("status=active,revised").await.len(), 3);
    assert_eq!(
        titles(&list("origin=authored&status=active").await),
        ["Non-compete terms"]
    );
    let from_decision = list("origin=decision").await;
    assert_eq!(from_decision.len(), 1);
    assert_eq!(from_decision[0]["judgment_id"], captured["judgment_id"]);
    let by_decision = app
        .get(
            consultant,
            &format!("/v1/judgments?decision_id={diagnosis}"),
        )
        .await
        .1;
    assert_eq!(
        by_decision["items"][0]["judgment_id"],
        captured["judgment_id"]
    );
    assert_eq!(list("from=2999-01-01T00:00:00Z").await.len(), 0);
    assert_eq!(list("to=2000-01-01T00:00:00Z").await.len(), 0);
    assert_eq!(list("from=2000-01-01T00:00:00Z&limit=2").await.len(), 2);
    for (query, field) in [
        ("status=archived", "status"),
        ("origin=imported", "origin"),
        ("decision_id=nope", "decision_id"),
        ("from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
    ] {
        let (status, body) = app.get(consultant, &format!("/v1/judgments?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["code"], "validation_failed");
        assert_eq!(body["field"], field, "{body}");
    }

    // One judgment with its history, oldest first.
    let (status, revised) = app
        .get(consultant, &format!("/v1/judgments/{exclusivity}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{revised}");
    assert_eq!(revised["title"], "Exclusivity clauses");
    assert_eq!(revised["revisions"], 1);
    let history = revised["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{revised}");
    assert_eq!(history[0]["kind"], "captured");
    assert_eq!(history[0]["title"], "Exclusivity");
    assert_eq!(history[1]["kind"], "revised");
    assert_eq!(history[1]["tags"], json!(["contracts", "exclusivity"]));
    let (_, retired) = app.get(consultant, &format!("/v1/judgments/{caps}")).await;
    assert_eq!(retired["retired_reason"], "superseded by the 2026 policy");
    assert_eq!(retired["history"][1]["kind"], "retired");
    assert_eq!(retired["history"][1]["title"], Value::Null);

    // Another practice sees none of it; a customer may not look.
    let (status, theirs) = app.get(&app.globex.consultant, "/v1/judgments").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(theirs["items"], json!([]));
    let (status, body) = app
        .get(
            &app.globex.consultant,
            &format!("/v1/judgments/{exclusivity}"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = app.get(&app.acme.customer, "/v1/judgments").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .get(&app.acme.customer, &format!("/v1/judgments/{exclusivity}"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_search_finds_the_practices_judgments_by_meaning_and_never_another_practices() {
    let mut app = spawn_app().await;
    app.onboard_both("professional").await;
    let (status, body) = app.get(&app.acme.consultant, "/v1/judgments?q=caps").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "search_unavailable");

    let ai = AiConfig::from_env().expect("AI configuration");
    let embedder = AiProviders::local(&ai).embedder;
    let search = JudgmentSearch::new(
        embedder.clone(),
        Arc::new(IndexSearch::new(
            search_pool(&app.pool).await,
            embedder.model_id(),
        )),
    );
    app.router = router(app.state.clone().with_judgment_search(search));

    let liability = author(
        &app,
        &app.acme.consultant,
        "Limitation of liability",
        "Cap the supplier's total liability for damages at twelve months of fees.",
    )
    .await;
    author(
        &app,
        &app.acme.consultant,
        "Office lease renewals",
        "A landlord's notice to renew the lease must be served six months ahead.",
    )
    .await;
    author(
        &app,
        &app.acme.consultant,
        "Brand positioning",
        "Position the product on reliability rather than on price.",
    )
    .await;
    let theirs = author(
        &app,
        &app.globex.consultant,
        "Liability caps in licences",
        "Software licences cap liability for damages at the fees paid.",
    )
    .await;

    let question = "/v1/judgments?q=How%20much%20of%20the%20damages%20can%20a%20supplier%20cap%3F";
    let found = items_when(&app, &embedder, &app.acme.consultant, question, |items| {
        items.len() == 3
    })
    .await;
    assert_eq!(found[0]["judgment_id"], liability.to_string(), "{found:?}");
    let scores: Vec<f64> = found.iter().map(|j| j["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert!(found.iter().all(|j| j["judgment_id"] != theirs.to_string()));

    let (status, body) = app
        .get(&app.acme.consultant, &format!("{question}&limit=1"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert_eq!(body["next_cursor"], Value::Null);

    // The other practice's search holds only its own judgment.
    let (status, body) = app.get(&app.globex.consultant, question).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["judgment_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [theirs.to_string()]);

    // A retired judgment is no longer found.
    let (status, body) = app
        .post(
            &app.acme.consultant,
            &format!("/v1/judgments/{liability}/retire"),
            json!({ "reason": "moved to the playbook" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let found = items_when(&app, &embedder, &app.acme.consultant, question, |items| {
        items.len() == 2
    })
    .await;
    assert!(found
        .iter()
        .all(|j| j["judgment_id"] != liability.to_string()));

    for (query, field) in [
        ("q=%20%20", "q"),
        ("q=caps&limit=0", "limit"),
        ("q=caps&limit=51", "limit"),
        ("q=caps&after=abc", "after"),
    ] {
        let (status, body) = app
            .get(&app.acme.consultant, &format!("/v1/judgments?{query}"))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["field"], field, "{query}: {body}");
    }
    let (status, _) = app.get(&app.acme.customer, question).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
