//! The read routes end to end: real Postgres (read models written by the real projections),
//! real Cognito tokens from the AWS emulator, the real router.

mod support;

use axum::http::StatusCode;
use casebook_domain::actor::Role;
use casebook_domain::ids::DiagnosisId;
use serde_json::{json, Value};
use support::{spawn_app, TestApp};
use uuid::Uuid;

/// Acme: one session with two queries, both proposed; the first approved by the consultant.
struct AcmeCase {
    session: Uuid,
    decided: Uuid,
    waiting: Uuid,
}

async fn acme_case(app: &TestApp) -> AcmeCase {
    app.onboard_both("enterprise").await;
    let session = app
        .open_session(&app.acme.customer, "Supplier contract")
        .await;
    let decided = app
        .ask(
            &app.acme.customer,
            session,
            "Is the indemnity cap enforceable?",
        )
        .await;
    let waiting = app
        .ask(&app.acme.customer, session, "And the liability carve-outs?")
        .await;
    for diagnosis in [decided, waiting] {
        app.propose(app.acme.tenant, DiagnosisId::from_uuid(diagnosis), 0.6)
            .await;
    }
    let (status, body) = app
        .post(
            &app.acme.consultant,
            &format!("/v1/diagnoses/{decided}/decision"),
            json!({ "verdict": "approve" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    AcmeCase {
        session,
        decided,
        waiting,
    }
}

fn items(body: &Value) -> &Vec<Value> {
    body["items"].as_array().expect("a page has items")
}

/// Waits until the decision has reached every read model it touches.
async fn projected(app: &TestApp, case: &AcmeCase) {
    app.read_when(&app.acme.auditor, "/v1/audit?action=DecisionMade", |b| {
        items(b).len() == 1
    })
    .await;
    app.read_when(
        &app.acme.consultant,
        &format!("/v1/diagnoses/{}", case.decided),
        |b| b["decision"]["outcome"] == "approved",
    )
    .await;
}

#[tokio::test]
async fn every_read_model_answers_its_readers() {
    let app = spawn_app().await;
    let case = acme_case(&app).await;
    projected(&app, &case).await;

    let sessions = app
        .read_when(&app.acme.customer, "/v1/sessions", |b| {
            items(b).first().is_some_and(|s| s["query_count"] == 2)
        })
        .await;
    assert_eq!(items(&sessions).len(), 1);
    assert_eq!(sessions["items"][0]["session_id"], json!(case.session));
    assert_eq!(sessions["items"][0]["status"], "open");
    assert_eq!(sessions["next_cursor"], Value::Null);

    let (status, session) = app
        .get(
            &app.acme.customer,
            &format!("/v1/sessions/{}", case.session),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["subject"], "Supplier contract");
    let queries = session["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 2);
    assert_eq!(queries[0]["diagnosis_id"], json!(case.decided));
    assert_eq!(queries[1]["text"], "And the liability carve-outs?");

    let (status, diagnoses) = app.get(&app.acme.customer, "/v1/diagnoses").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        items(&diagnoses)
            .iter()
            .map(|d| d["diagnosis_id"].clone())
            .collect::<Vec<_>>(),
        [json!(case.waiting), json!(case.decided)],
        "newest first"
    );
    let (_, released) = app
        .get(
            &app.acme.customer,
            &format!("/v1/diagnoses/{}", case.decided),
        )
        .await;
    assert_eq!(released["query"], "Is the indemnity cap enforceable?");
    assert_eq!(released["status"], "answered");
    assert_eq!(released["answer"]["text"], "The cap is enforceable.");
    let (_, diagnosis) = app
        .get(
            &app.acme.consultant,
            &format!("/v1/diagnoses/{}", case.decided),
        )
        .await;
    assert_eq!(diagnosis["proposal"]["text"], "The cap is enforceable.");
    assert_eq!(diagnosis["proposal"]["confidence"], 0.6);
    assert_eq!(
        diagnosis["proposal"]["provenance"]["model_id"],
        "test-model"
    );
    assert_eq!(diagnosis["proposal"]["provenance"]["cost_usd_micros"], 42);
    assert_eq!(diagnosis["decision"]["outcome"], "approved");

    let (status, queue) = app.get(&app.acme.consultant, "/v1/review-queue").await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    assert_eq!(items(&queue).len(), 1, "only the undecided proposal waits");
    assert_eq!(queue["items"][0]["diagnosis_id"], json!(case.waiting));
    assert_eq!(queue["items"][0]["status"], "proposed");
    assert!(queue["items"][0]["age_seconds"].is_u64());

    let (_, decisions) = app.get(&app.acme.consultant, "/v1/decisions").await;
    assert_eq!(items(&decisions).len(), 1);
    assert_eq!(decisions["items"][0]["verdict"]["kind"], "Approved");
    assert_eq!(decisions["items"][0]["decided_by_role"], "consultant");
    let (status, decision) = app
        .get(
            &app.acme.auditor,
            &format!("/v1/decisions/{}", case.decided),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(decision["diagnosis_id"], json!(case.decided));
    let consultant = decision["decided_by"].as_str().unwrap().to_owned();
    let (_, by_consultant) = app
        .get(
            &app.acme.auditor,
            &format!("/v1/decisions?decided_by={consultant}"),
        )
        .await;
    assert_eq!(items(&by_consultant).len(), 1);
    let (_, by_nobody) = app
        .get(&app.acme.auditor, "/v1/decisions?decided_by=someone-else")
        .await;
    assert!(items(&by_nobody).is_empty());

    let (status, usage) = app.get(&app.acme.admin, "/v1/usage").await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(usage["total_proposals"], 2);
    assert_eq!(usage["total_cost_usd_micros"], 84);
    assert_eq!(usage["days"][0]["model_id"], "test-model");

    let (status, tenant) = app.get(&app.acme.admin, "/v1/tenant").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tenant["tenant_id"], json!(app.acme.tenant));
    assert_eq!(tenant["plan"], "enterprise");
    assert_eq!(tenant["status"], "active");
}

#[tokio::test]
async fn auditors_filter_the_audit_rows() {
    let app = spawn_app().await;
    let case = acme_case(&app).await;
    projected(&app, &case).await;
    let auditor = &app.acme.auditor;

    let (_, decided) = app.get(auditor, "/v1/audit?action=DecisionMade").await;
    let row = &decided["items"][0];
    assert_eq!(row["actor_role"], "consultant");
    assert_eq!(row["outcome"], "approved");
    assert_eq!(row["diagnosis_id"], json!(case.decided));
    assert_eq!(row["hash"].as_str().unwrap().len(), 64, "{row}");

    let (_, by_model) = app.get(auditor, "/v1/audit?model=test-model").await;
    assert!(items(&by_model)
        .iter()
        .all(|r| r["action"] == "DiagnosisProposed" && r["model_id"] == "test-model"));
    assert_eq!(items(&by_model).len(), 2);

    let actor = row["actor_id"].as_str().unwrap();
    let (_, by_actor) = app
        .get(
            auditor,
            &format!("/v1/audit?actor={actor}&outcome=approved"),
        )
        .await;
    assert_eq!(items(&by_actor).len(), 1);
    let (_, by_role) = app.get(auditor, "/v1/audit?role=customer").await;
    assert!(items(&by_role)
        .iter()
        .all(|r| r["actor_role"] == "customer"));
    assert!(items(&by_role).len() >= 3, "opened, asked twice: {by_role}");

    let (_, future) = app
        .get(auditor, "/v1/audit?from=2999-01-01T00:00:00Z")
        .await;
    assert!(items(&future).is_empty());
    let (_, past) = app.get(auditor, "/v1/audit?to=2000-01-01T00:00:00Z").await;
    assert!(items(&past).is_empty());
    let (_, everything) = app
        .get(auditor, "/v1/audit?from=2000-01-01T00:00:00Z&limit=100")
        .await;

    // Paging one row at a time walks the chain in order, without repeats or gaps.
    let mut seqs = Vec::new();
    let mut path = "/v1/audit?limit=1".to_owned();
    loop {
        let (status, page) = app.get(auditor, &path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seqs.extend(items(&page).iter().map(|r| r["seq"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/audit?limit=1&after={cursor}"),
            None => break,
        }
    }
    let all: Vec<i64> = (1..=items(&everything).len() as i64).collect();
    assert_eq!(seqs, all);

    for bad in [
        "/v1/audit?from=yesterday",
        "/v1/audit?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z",
        "/v1/audit?limit=0",
        "/v1/audit?limit=101",
        "/v1/audit?after=not-a-cursor",
    ] {
        let (status, problem) = app.get(auditor, bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {problem}");
        assert_eq!(problem["code"], "validation_failed", "{bad}");
    }
}

#[tokio::test]
async fn lists_page_with_opaque_cursors() {
    let app = spawn_app().await;
    app.onboard_both("enterprise").await;
    let mut opened = Vec::new();
    for subject in ["one", "two", "three"] {
        opened.push(app.open_session(&app.acme.customer, subject).await);
    }
    app.read_when(&app.acme.customer, "/v1/sessions", |b| items(b).len() == 3)
        .await;
    let (_, first) = app.get(&app.acme.customer, "/v1/sessions?limit=2").await;
    assert_eq!(items(&first).len(), 2);
    let cursor = first["next_cursor"].as_str().expect("a second page");
    assert!(
        cursor.parse::<i64>().is_err(),
        "opaque, not a bare position"
    );
    let (_, second) = app
        .get(
            &app.acme.customer,
            &format!("/v1/sessions?limit=2&after={cursor}"),
        )
        .await;
    assert_eq!(items(&second).len(), 1);
    assert_eq!(second["next_cursor"], Value::Null);
    let seen: Vec<Value> = items(&first)
        .iter()
        .chain(items(&second))
        .map(|s| s["session_id"].clone())
        .collect();
    let newest_first: Vec<Value> = opened.iter().rev().map(|id| json!(id)).collect();
    assert_eq!(seen, newest_first);

    let (status, problem) = app.get(&app.acme.customer, "/v1/sessions?limit=abc").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "validation_failed");
    let (status, problem) = app.get(&app.acme.customer, "/v1/sessions/not-a-uuid").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["field"], "session_id");
}

#[tokio::test]
async fn another_tenants_reads_are_not_found_and_lists_never_show_its_rows() {
    let app = spawn_app().await;
    let case = acme_case(&app).await;
    projected(&app, &case).await;
    let acme_ids = [
        app.acme.tenant.to_string(),
        case.session.to_string(),
        case.decided.to_string(),
        case.waiting.to_string(),
    ];
    let leaks = |body: &Value| {
        let text = body.to_string();
        acme_ids.iter().any(|id| text.contains(id.as_str()))
    };

    let by_id = [
        (
            &app.globex.customer,
            format!("/v1/sessions/{}", case.session),
        ),
        (
            &app.globex.auditor,
            format!("/v1/sessions/{}", case.session),
        ),
        (
            &app.globex.customer,
            format!("/v1/diagnoses/{}", case.decided),
        ),
        (
            &app.globex.consultant,
            format!("/v1/diagnoses/{}", case.waiting),
        ),
        (
            &app.globex.consultant,
            format!("/v1/decisions/{}", case.decided),
        ),
        (
            &app.globex.auditor,
            format!("/v1/decisions/{}", case.decided),
        ),
    ];
    for (user, path) in &by_id {
        let (status, body) = app.get(user, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["code"], "not_found");
        assert!(!leaks(&body), "{path}: {body}");
    }

    let lists = [
        (&app.globex.customer, "/v1/sessions"),
        (&app.globex.customer, "/v1/diagnoses"),
        (&app.globex.consultant, "/v1/review-queue"),
        (&app.globex.consultant, "/v1/decisions"),
        (&app.globex.auditor, "/v1/audit?limit=100"),
    ];
    for (user, path) in lists {
        let (status, body) = app.get(user, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(!leaks(&body), "{path}: {body}");
        let rows = items(&body);
        if path.starts_with("/v1/audit") {
            // Globex's own onboarding, and nothing of acme's.
            assert!(rows
                .iter()
                .all(|r| r["tenant_id"] == json!(app.globex.tenant)));
        } else {
            assert!(rows.is_empty(), "{path}: {body}");
        }
    }
    let (_, usage) = app.get(&app.globex.auditor, "/v1/usage").await;
    assert_eq!(usage["total_proposals"], 0, "{usage}");
    let (_, tenant) = app.get(&app.globex.admin, "/v1/tenant").await;
    assert_eq!(tenant["tenant_id"], json!(app.globex.tenant));
}

#[tokio::test]
async fn each_role_reads_only_what_its_role_allows() {
    let app = spawn_app().await;
    app.onboard_both("enterprise").await;
    let id = Uuid::new_v4();
    // (path, customer, consultant, auditor, admin): may the role read it?
    let matrix = [
        ("/v1/sessions".to_owned(), [true, true, true, false]),
        (format!("/v1/sessions/{id}"), [true, true, true, false]),
        ("/v1/diagnoses".to_owned(), [true, true, true, false]),
        (format!("/v1/diagnoses/{id}"), [true, true, true, false]),
        ("/v1/review-queue".to_owned(), [false, true, false, false]),
        ("/v1/decisions".to_owned(), [false, true, true, false]),
        (format!("/v1/decisions/{id}"), [false, true, true, false]),
        ("/v1/usage".to_owned(), [false, false, true, true]),
        ("/v1/audit".to_owned(), [false, false, true, false]),
        ("/v1/events".to_owned(), [false, false, true, false]),
        ("/v1/tenant".to_owned(), [false, false, true, true]),
    ];
    let acme = &app.acme;
    let roles = [
        ("customer", &acme.customer),
        ("consultant", &acme.consultant),
        ("auditor", &acme.auditor),
        ("admin", &acme.admin),
    ];
    for (path, allowed) in &matrix {
        for ((role, user), allowed) in roles.iter().zip(allowed) {
            let (status, body) = app.get(user, path).await;
            if *allowed {
                // A random id is simply absent; the tenant may not be projected yet.
                assert!(
                    status == StatusCode::OK || status == StatusCode::NOT_FOUND,
                    "{role} GET {path}: {status} {body}"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{role} GET {path}: {body}");
                assert_eq!(body["code"], "forbidden");
            }
        }
    }
}

#[tokio::test]
async fn a_session_opened_at_its_own_url_reads_back() {
    let app = spawn_app().await;
    app.onboard_both("enterprise").await;
    let session = Uuid::new_v4();
    let put = |user: &'static str| {
        let token = match user {
            "customer" => app.acme.customer.token.clone(),
            _ => app.acme.consultant.token.clone(),
        };
        axum::http::Request::put(format!("/v1/sessions/{session}"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(r#"{"subject":"At its URL"}"#))
            .unwrap()
    };
    let response = app.send(put("consultant")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = app.send(put("customer")).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = support::json_body(response).await;
    assert_eq!(body["ids"]["session_id"], json!(session));
    assert_eq!(body["events"][0]["event_type"], "SessionOpened");
    let response = app.send(put("customer")).await;
    assert_eq!(response.status(), StatusCode::CONFLICT, "opened once");
    let detail = app
        .read_when(
            &app.acme.customer,
            &format!("/v1/sessions/{session}"),
            |b| b["subject"] == "At its URL",
        )
        .await;
    assert_eq!(detail["status"], "open");
}

#[tokio::test]
async fn customers_read_only_their_own_sessions_and_diagnoses() {
    let app = spawn_app().await;
    let case = acme_case(&app).await;
    let colleague = app
        .another_user(app.acme.tenant, "acme-second-customer", Role::Customer)
        .await;
    let theirs = app.open_session(&colleague, "Lease renewal").await;
    let their_query = app.ask(&colleague, theirs, "Can we leave early?").await;
    app.read_when(&app.acme.consultant, "/v1/diagnoses", |b| {
        items(b).len() == 3
    })
    .await;

    let ids = |body: &Value, field: &str| -> Vec<String> {
        items(body)
            .iter()
            .map(|item| item[field].as_str().unwrap().to_owned())
            .collect()
    };
    for (reader, sessions, diagnoses) in [
        (
            &app.acme.customer,
            vec![case.session],
            vec![case.waiting, case.decided],
        ),
        (&colleague, vec![theirs], vec![their_query]),
        (
            &app.acme.consultant,
            vec![theirs, case.session],
            vec![their_query, case.waiting, case.decided],
        ),
    ] {
        let as_strings = |ids: Vec<Uuid>| ids.iter().map(Uuid::to_string).collect::<Vec<_>>();
        let (status, body) = app.get(reader, "/v1/sessions").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(ids(&body, "session_id"), as_strings(sessions));
        let (status, body) = app.get(reader, "/v1/diagnoses").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(ids(&body, "diagnosis_id"), as_strings(diagnoses));
    }

    // Another customer's matters are not found, exactly like another tenant's.
    for (reader, session, diagnosis) in [
        (&colleague, case.session, case.decided),
        (&app.acme.customer, theirs, their_query),
    ] {
        let (status, body) = app.get(reader, &format!("/v1/sessions/{session}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["code"], "not_found");
        let (status, body) = app.get(reader, &format!("/v1/diagnoses/{diagnosis}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    let (status, body) = app.get(&colleague, &format!("/v1/sessions/{theirs}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["queries"][0]["query_id"], their_query.to_string());

    // Nor can they ask in it, or close it.
    let (status, body) = app
        .post(
            &colleague,
            &format!("/v1/sessions/{}/queries", case.session),
            json!({ "query_id": Uuid::new_v4(), "text": "Anything?" }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = app
        .post(
            &colleague,
            &format!("/v1/sessions/{}/close", case.session),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

/// A new query in `session`, proposed, then decided with `verdict` by the consultant.
async fn proposed_and_decided(app: &TestApp, session: Uuid, verdict: Value) -> Uuid {
    let query = app
        .ask(&app.acme.customer, session, "What of the warranty?")
        .await;
    app.propose(app.acme.tenant, DiagnosisId::from_uuid(query), 0.6)
        .await;
    let (status, body) = app
        .post(
            &app.acme.consultant,
            &format!("/v1/diagnoses/{query}/decision"),
            verdict,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    query
}

#[tokio::test]
async fn a_customer_sees_only_what_a_consultant_released() {
    let app = spawn_app().await;
    let case = acme_case(&app).await;
    let amended = proposed_and_decided(
        &app,
        case.session,
        json!({ "verdict": "amend", "amended_text": "Cap it at twelve months.", "reason": "Internal note" }),
    )
    .await;
    let rejected = proposed_and_decided(
        &app,
        case.session,
        json!({ "verdict": "reject", "reason": "Needs the signed annex first." }),
    )
    .await;
    app.read_when(&app.acme.auditor, "/v1/audit?action=DecisionMade", |b| {
        items(b).len() == 3
    })
    .await;
    // Undecided: its status, nothing the model wrote, nothing of how it was made.
    let waiting = app
        .read_when(
            &app.acme.customer,
            &format!("/v1/diagnoses/{}", case.waiting),
            |_| true,
        )
        .await;
    assert_eq!(waiting["status"], "in_review", "{waiting}");
    assert!(waiting["answer"].is_null());
    let text = waiting.to_string();
    for internal in [
        "The cap is enforceable",
        "test-model",
        "provenance",
        "confidence",
        "cost",
    ] {
        assert!(
            !text.contains(internal),
            "{internal} reached the customer: {text}"
        );
    }

    let approved = app
        .read_when(
            &app.acme.customer,
            &format!("/v1/diagnoses/{}", case.decided),
            |b| b["status"] == "answered",
        )
        .await;
    assert_eq!(approved["answer"]["text"], "The cap is enforceable.");
    assert_eq!(approved["answer"]["amended"], false);
    assert!(!approved.to_string().contains("test-model"));

    let amended = app
        .read_when(
            &app.acme.customer,
            &format!("/v1/diagnoses/{amended}"),
            |b| b["status"] == "answered",
        )
        .await;
    assert_eq!(amended["answer"]["text"], "Cap it at twelve months.");
    assert_eq!(amended["answer"]["amended"], true);
    let text = amended.to_string();
    assert!(
        !text.contains("The cap is enforceable") && !text.contains("Internal note"),
        "{text}"
    );

    let rejected = app
        .read_when(
            &app.acme.customer,
            &format!("/v1/diagnoses/{rejected}"),
            |b| b["status"] == "declined",
        )
        .await;
    assert_eq!(rejected["declined_reason"], "Needs the signed annex first.");
    assert!(rejected["answer"].is_null());
    assert!(!rejected.to_string().contains("The cap is enforceable"));

    // The list shows the same, row by row.
    let (status, list) = app.get(&app.acme.customer, "/v1/diagnoses").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let text = list.to_string();
    assert!(
        !text.contains("test-model") && !text.contains("provenance"),
        "{text}"
    );
    assert_eq!(items(&list).len(), 4);

    // Staff keep the whole record.
    let (status, staff) = app
        .get(
            &app.acme.consultant,
            &format!("/v1/diagnoses/{}", case.waiting),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(staff["proposal"]["provenance"]["model_id"], "test-model");
    assert_eq!(staff["status"], "proposed");
}
