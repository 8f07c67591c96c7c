//! The API end to end: real Postgres, real Cognito tokens from the AWS emulator, the real
//! router (driven in-process, as API Gateway's Lambda integration would).

mod support;

use axum::http::StatusCode;
use casebook_domain::actor::Role;
use casebook_domain::policy::PlanTier;
use casebook_handlers::operator::{Operator, OperatorAction};
use casebook_handlers::server::Application;
use casebook_handlers::settings::Process;
use serde_json::{json, Value};
use support::{spawn_app, TestApp, User};
use uuid::Uuid;

async fn open_session(app: &TestApp, customer: &User) -> Uuid {
    let session = Uuid::new_v4();
    let (status, body) = app
        .post(
            customer,
            "/v1/sessions",
            json!({ "session_id": session, "subject": "Supplier contract" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    session
}

#[tokio::test]
async fn a_customer_opens_a_session_and_submits_a_query() {
    let app = spawn_app().await;
    app.onboard_both("enterprise").await;
    let session = open_session(&app, &app.acme.customer).await;
    let query = Uuid::new_v4();
    let (status, body) = app
        .post(
            &app.acme.customer,
            &format!("/v1/sessions/{session}/queries"),
            json!({ "query_id": query, "text": "Is the indemnity clause acceptable?" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["ids"]["diagnosis_id"], json!(query));
    let events: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["QuerySubmitted", "DiagnosisRequested"]);
    assert!(body["events"][1]["global_position"].as_i64().unwrap() > 0);

    let (status, _) = app
        .post(
            &app.acme.customer,
            &format!("/v1/sessions/{session}/close"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, body) = app
        .post(
            &app.acme.customer,
            &format!("/v1/sessions/{session}/queries"),
            json!({ "query_id": Uuid::new_v4(), "text": "one more?" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "state_conflict");
}

#[tokio::test]
async fn tenant_settings_judgments_and_the_event_stream_work_for_their_roles() {
    let app = spawn_app().await;
    app.onboard_both("enterprise").await;
    let (status, body) = app
        .post(
            &app.acme.admin,
            "/v1/tenant/settings",
            json!({ "auto_resolve_threshold": 0.9 }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // The plan tier is the operator's, not the tenant admin's (see the operator test).
    let (status, body) = app
        .post(
            &app.acme.admin,
            "/v1/tenant/settings",
            json!({ "plan": "starter" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let judgment = Uuid::new_v4();
    let (status, body) = app
        .post(
            &app.acme.consultant,
            "/v1/judgments",
            json!({ "judgment_id": judgment, "title": "Indemnity caps", "body": "Cap at 12 months of fees.", "tags": ["contracts"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = app
        .post(
            &app.acme.consultant,
            &format!("/v1/judgments/{judgment}/revise"),
            json!({ "title": "Indemnity caps", "body": "Cap at 12 months of fees, 24 for data breaches." }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = app
        .post(
            &app.acme.consultant,
            &format!("/v1/judgments/{judgment}/retire"),
            json!({ "reason": "superseded" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // The log shows an event once every older transaction in the cluster has ended.
    app.wait_for_events(&app.acme.auditor, 5).await;
    let (status, headers, text) = app.get_raw(&app.acme.auditor, "/v1/events?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["event_type"], "TenantOnboarded");
    let cursor = headers["casebook-next-cursor"].to_str().unwrap().to_owned();
    let (_, _, rest) = app
        .get_raw(&app.acme.auditor, &format!("/v1/events?after={cursor}"))
        .await;
    let rest: Vec<Value> = rest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        rest.len(),
        3,
        "the remaining acme events, and none of globex's"
    );
    assert!(rest
        .iter()
        .all(|e| e["metadata"]["tenant_id"] == json!(app.acme.tenant)));
}

#[tokio::test]
async fn another_tenants_ids_are_not_found_and_leak_nothing() {
    let app = spawn_app().await;
    app.onboard_both("enterprise").await;
    let session = open_session(&app, &app.acme.customer).await;
    let judgment = Uuid::new_v4();
    app.post(
        &app.acme.consultant,
        "/v1/judgments",
        json!({ "judgment_id": judgment, "title": "t", "body": "b" }),
    )
    .await;
    let diagnosis = Uuid::new_v4();
    app.post(
        &app.acme.customer,
        &format!("/v1/sessions/{session}/queries"),
        json!({ "query_id": diagnosis, "text": "q" }),
    )
    .await;

    let attempts = [
        (
            &app.globex.customer,
            format!("/v1/sessions/{session}/queries"),
            json!({ "query_id": Uuid::new_v4(), "text": "peek" }),
        ),
        (
            &app.globex.customer,
            format!("/v1/sessions/{session}/close"),
            json!({}),
        ),
        (
            &app.globex.consultant,
            format!("/v1/diagnoses/{diagnosis}/decision"),
            json!({ "verdict": "approve" }),
        ),
        (
            &app.globex.consultant,
            format!("/v1/judgments/{judgment}/revise"),
            json!({ "title": "t", "body": "mine now" }),
        ),
        (
            &app.globex.consultant,
            format!("/v1/judgments/{judgment}/retire"),
            json!({ "reason": "gone" }),
        ),
    ];
    for (user, path, body) in attempts {
        let (status, response) = app.post(user, &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {response}");
        assert_eq!(response["code"], "not_found");
        let text = response.to_string();
        assert!(!text.contains(&session.to_string()) && !text.contains(&judgment.to_string()));
    }
    app.wait_for_events(&app.globex.auditor, 1).await;
    let (_, _, globex_events) = app.get_raw(&app.globex.auditor, "/v1/events").await;
    assert!(!globex_events.contains(&app.acme.tenant.to_string()));
}

#[tokio::test]
async fn roles_may_only_do_what_their_role_allows() {
    let app = spawn_app().await;
    app.onboard_both("enterprise").await;
    let forbidden = [
        (
            &app.acme.customer,
            "/v1/tenant/settings",
            json!({ "plan": "starter" }),
        ),
        (
            &app.acme.consultant,
            "/v1/sessions",
            json!({ "session_id": Uuid::new_v4(), "subject": "x" }),
        ),
        (
            &app.acme.auditor,
            "/v1/judgments",
            json!({ "judgment_id": Uuid::new_v4(), "title": "t", "body": "b" }),
        ),
        (
            &app.acme.customer,
            "/v1/judgments",
            json!({ "judgment_id": Uuid::new_v4(), "title": "t", "body": "b" }),
        ),
    ];
    for (user, path, body) in forbidden {
        let (status, response) = app.post(user, path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {response}");
        assert_eq!(response["code"], "forbidden");
    }
    let (status, _, _) = app.get_raw(&app.acme.customer, "/v1/events").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_input_is_a_problem_document_naming_the_field() {
    let app = spawn_app().await;
    app.onboard_both("enterprise").await;
    let cases = [
        (
            json!({ "session_id": "not-a-uuid", "subject": "x" }),
            "session_id",
        ),
        (
            json!({ "session_id": Uuid::new_v4(), "subject": "   " }),
            "subject",
        ),
        (
            json!({ "session_id": Uuid::new_v4(), "subject": "x", "surprise": 1 }),
            "body",
        ),
    ];
    for (body, field) in cases {
        let (status, response) = app.post(&app.acme.customer, "/v1/sessions", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{response}");
        assert_eq!(response["code"], "validation_failed");
        assert!(
            response["field"].as_str().unwrap().contains(field) || field == "body",
            "{response}"
        );
    }
    let (status, response) = app
        .post_text(&app.acme.customer, "/v1/sessions", "{not json")
        .await;
    assert!(status.is_client_error());
    assert_eq!(response["code"], "malformed_body");
    let (status, _) = app.post_anonymous("/v1/sessions", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_repeated_post_with_its_idempotency_key_has_one_effect() {
    let app = spawn_app().await;
    app.onboard_both("enterprise").await;
    let body = json!({ "session_id": Uuid::new_v4(), "subject": "Supplier contract" });
    let (first_status, first) = app
        .post_with_key(&app.acme.customer, "/v1/sessions", body.clone(), "key-1")
        .await;
    assert_eq!(first_status, StatusCode::CREATED);
    let (again_status, again) = app
        .post_with_key(&app.acme.customer, "/v1/sessions", body.clone(), "key-1")
        .await;
    assert_eq!(again_status, StatusCode::CREATED);
    assert_eq!(again, first, "the original response, replayed");
    let opened: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'SessionOpened'")
            .fetch_one(&app.projector_pool().await)
            .await
            .unwrap();
    assert_eq!(opened, 1);

    let (status, response) = app
        .post_with_key(
            &app.acme.customer,
            "/v1/sessions",
            json!({ "session_id": Uuid::new_v4(), "subject": "Other" }),
            "key-1",
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response["code"], "idempotency_key_reused");
}

#[tokio::test]
async fn an_idempotency_key_replays_only_to_the_user_who_sent_it_and_only_if_the_route_admits_them()
{
    let app = spawn_app().await;
    app.onboard_both("enterprise").await;
    let body = json!({ "session_id": Uuid::new_v4(), "subject": "Supplier contract" });
    let (status, first) = app
        .post_with_key(
            &app.acme.customer,
            "/v1/sessions",
            body.clone(),
            "shared-key",
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");

    // Another role of the same tenant: refused by the route, never handed the stored 201.
    for staff in [&app.acme.consultant, &app.acme.auditor, &app.acme.admin] {
        let response = app
            .send(TestApp::post_request(
                Some(staff),
                "/v1/sessions",
                body.to_string(),
                Some("shared-key"),
            ))
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(response.headers().get("idempotent-replayed").is_none());
    }

    // Another customer of the same tenant: a new request, judged afresh (the session is not
    // theirs to open twice), not the first customer's answer.
    let second = app
        .another_user(app.acme.tenant, "acme-second-customer", Role::Customer)
        .await;
    let response = app
        .send(TestApp::post_request(
            Some(&second),
            "/v1/sessions",
            body.to_string(),
            Some("shared-key"),
        ))
        .await;
    assert!(response.headers().get("idempotent-replayed").is_none());
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "not theirs to know of"
    );

    // The user who sent it still gets the original answer.
    let response = app
        .send(TestApp::post_request(
            Some(&app.acme.customer),
            "/v1/sessions",
            body.to_string(),
            Some("shared-key"),
        ))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["idempotent-replayed"], "true");
}

#[tokio::test]
async fn a_tenant_past_its_burst_is_told_when_to_retry() {
    let app = spawn_app().await;
    app.onboard_both("enterprise").await;
    Operator::new("ops", app.acme.tenant, "run-1")
        .unwrap()
        .apply(
            &app.state.service,
            OperatorAction::ChangePlan(PlanTier::CostSensitive),
        )
        .await
        .expect("plan changed");
    app.forget_cached_tiers();
    let mut limited = None;
    for _ in 0..50 {
        let response = app
            .post_response(&app.acme.customer, "/v1/sessions/not-a-uuid/close")
            .await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("the cost-sensitive burst is 10");
    assert!(
        response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    let (status, _) = app
        .post(
            &app.globex.customer,
            "/v1/sessions",
            json!({ "session_id": Uuid::new_v4(), "subject": "x" }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "another tenant is not throttled"
    );
}

#[tokio::test]
async fn every_route_is_in_the_openapi_document_and_responses_carry_a_request_id() {
    let app = spawn_app().await;
    let response = app.get_public("/v1/openapi.json").await;
    assert!(response.headers().contains_key("x-request-id"));
    let document: Value = support::json_body(response).await;
    let paths = document["paths"].as_object().unwrap();
    for (method, path) in [
        ("post", "/v1/tenant"),
        ("post", "/v1/tenant/settings"),
        ("post", "/v1/sessions"),
        ("post", "/v1/sessions/{session_id}/queries"),
        ("post", "/v1/sessions/{session_id}/close"),
        ("post", "/v1/diagnoses/{diagnosis_id}/decision"),
        ("post", "/v1/judgments"),
        ("post", "/v1/judgments/{judgment_id}/revise"),
        ("post", "/v1/judgments/{judgment_id}/retire"),
        ("get", "/v1/events"),
        ("get", "/v1/sessions"),
        ("get", "/v1/sessions/{session_id}"),
        ("get", "/v1/diagnoses"),
        ("get", "/v1/diagnoses/{diagnosis_id}"),
        ("get", "/v1/review-queue"),
        ("get", "/v1/decisions"),
        ("get", "/v1/decisions/{decision_id}"),
        ("get", "/v1/usage"),
        ("get", "/v1/audit"),
        ("get", "/v1/access-log"),
        ("get", "/v1/access-log/verification"),
        ("get", "/v1/tenant"),
        ("put", "/v1/sessions/{session_id}"),
        ("post", "/v1/uploads"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} documented"
        );
    }
    assert_eq!(document["openapi"].as_str().unwrap().get(..3), Some("3.1"));
}

#[tokio::test]
async fn an_api_only_server_takes_commands_whose_events_another_process_projects() {
    let app = spawn_app().await;
    app.onboard_both("professional").await;
    let server = Application::build(app.local_settings(Process::ServeApiOnly))
        .await
        .expect("built");
    let base = format!("http://{}", server.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));

    let session = Uuid::new_v4();
    let http = reqwest::Client::new();
    let answer = http
        .put(format!("{base}/v1/sessions/{session}"))
        .bearer_auth(&app.acme.customer.token)
        .header("content-type", "application/json")
        .body(json!({ "subject": "Supplier contract" }).to_string())
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status(), reqwest::StatusCode::CREATED);
    let checkpoints: i64 = sqlx::query_scalar("SELECT count(*) FROM subscriptions")
        .fetch_one(&app.projector_pool().await)
        .await
        .unwrap();
    assert_eq!(checkpoints, 0, "the API-only server runs no subscription");

    // Another process's subscriptions (here the test's runner) project what it committed.
    app.read_when(
        &app.acme.customer,
        &format!("/v1/sessions/{session}"),
        |_| true,
    )
    .await;
    let read = http
        .get(format!("{base}/v1/sessions/{session}"))
        .bearer_auth(&app.acme.customer.token)
        .send()
        .await
        .expect("answered");
    assert_eq!(read.status(), reqwest::StatusCode::OK);

    stop.send(()).unwrap();
    serving.await.unwrap().expect("stopped cleanly");
}

#[tokio::test]
async fn every_malformed_or_out_of_range_cursor_or_parameter_is_a_422_never_a_5xx() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let app = spawn_app().await;
    app.onboard_both("enterprise").await;
    let opaque = |text: &str| URL_SAFE_NO_PAD.encode(text);
    let mut cases: Vec<(&User, String)> = Vec::new();
    for cursor in [
        "-1:5",
        "5:-1",
        "-1:-1",
        "1:9223372036854775808",
        "x:1",
        "1",
        "",
    ] {
        cases.push((
            &app.acme.auditor,
            format!("/v1/events?after={}", opaque(cursor)),
        ));
    }
    for query in [
        "after=%%%",
        "after=!!",
        "limit=-1",
        "limit=abc",
        "limit=99999999999",
    ] {
        cases.push((&app.acme.auditor, format!("/v1/events?{query}")));
    }
    let list_cursors = [
        opaque("c1.-5"),
        opaque("c1.-9223372036854775808"),
        opaque("c1.x"),
        "not-base64!".to_owned(),
    ];
    for (user, list) in [
        (&app.acme.customer, "/v1/sessions"),
        (&app.acme.customer, "/v1/diagnoses"),
        (&app.acme.consultant, "/v1/review-queue"),
        (&app.acme.consultant, "/v1/decisions"),
        (&app.acme.auditor, "/v1/audit"),
        (&app.acme.auditor, "/v1/access-log"),
    ] {
        for cursor in &list_cursors {
            cases.push((user, format!("{list}?after={cursor}")));
        }
        for limit in ["0", "-3", "101", "x"] {
            cases.push((user, format!("{list}?limit={limit}")));
        }
    }
    for query in [
        "from=2026-13-01",
        "to=yesterday",
        "from=2026-05-03&to=2026-05-01",
        "from=1900-01-01",
    ] {
        cases.push((&app.acme.auditor, format!("/v1/usage?{query}")));
    }
    for query in [
        "from=not-a-time",
        "from=2026-05-03T00:00:00Z&to=2026-05-01T00:00:00Z",
    ] {
        cases.push((&app.acme.auditor, format!("/v1/audit?{query}")));
        cases.push((&app.acme.auditor, format!("/v1/access-log?{query}")));
    }
    for (user, path) in cases {
        let (status, headers, body) = app.get_raw(user, &path).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "GET {path}: {body}"
        );
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{path}"
        );
        let problem: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["code"], "validation_failed", "{path}: {body}");
    }
}

#[tokio::test]
async fn a_clients_request_id_is_kept_beside_the_servers_never_instead_of_it() {
    use axum::body::Body;
    use axum::http::Request;
    let app = spawn_app().await;
    app.onboard_both("enterprise").await;
    let mut opened = Vec::new();
    for client_id in ["my-trace-123", &"x".repeat(129), "two words"] {
        let session = Uuid::new_v4();
        let request = Request::post("/v1/sessions")
            .header(
                "authorization",
                format!("Bearer {}", app.acme.customer.token),
            )
            .header("content-type", "application/json")
            .header("x-request-id", client_id)
            .body(Body::from(
                json!({ "session_id": session, "subject": "Contract" }).to_string(),
            ))
            .unwrap();
        let response = app.send(request).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let server_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_ne!(server_id, client_id);
        assert!(Uuid::parse_str(&server_id).is_ok(), "{server_id}");
        opened.push((session, server_id));
    }
    let log = app.projector_pool().await;
    let metadata = |session: Uuid| {
        let pool = log.clone();
        async move {
            sqlx::query_scalar::<_, Value>(
                "SELECT metadata FROM events WHERE aggregate_id = $1 AND event_type = 'SessionOpened'",
            )
            .bind(session.to_string())
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let kept = metadata(opened[0].0).await;
    assert_eq!(kept["request_id"], opened[0].1.as_str());
    assert_eq!(kept["correlation_id"], opened[0].1.as_str());
    assert_eq!(kept["client_request_id"], "my-trace-123");
    for (session, server_id) in &opened[1..] {
        let dropped = metadata(*session).await;
        assert_eq!(dropped["request_id"], server_id.as_str());
        assert!(dropped.get("client_request_id").is_none(), "{dropped}");
    }
}

#[tokio::test]
async fn plans_and_suspensions_are_the_operators_not_the_tenant_admins() {
    let app = spawn_app().await;
    app.onboard_both("starter").await;
    for body in [
        json!({ "plan": "enterprise" }),
        json!({ "status": "active" }),
    ] {
        let (status, problem) = app
            .post(&app.acme.admin, "/v1/tenant/settings", body.clone())
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
    }
    for body in [
        json!({ "status": "active" }),
        json!({ "status": "suspended", "reason": "x" }),
    ] {
        let (status, problem) = app.post(&app.acme.admin, "/v1/tenant/status", body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    }
    let tenant = app
        .read_when(&app.acme.admin, "/v1/tenant", |t| t["plan"].is_string())
        .await;
    assert_eq!(tenant["plan"], "starter");

    // The operator suspends, moves the plan and reactivates; each is recorded as theirs.
    let operator = Operator::new("dana", app.acme.tenant, "ops-run-7").unwrap();
    let service = &app.state.service;
    for action in [
        OperatorAction::Suspend(casebook_domain::values::Reason::parse("unpaid").unwrap()),
        OperatorAction::ChangePlan(PlanTier::Enterprise),
        OperatorAction::Reactivate,
    ] {
        operator.apply(service, action).await.expect("applied");
    }
    let tenant = app
        .read_when(&app.acme.admin, "/v1/tenant", |t| {
            t["plan"] == "enterprise" && t["status"] == "active"
        })
        .await;
    assert!(tenant["suspended_reason"].is_null());
    let rows = app
        .read_when(&app.acme.auditor, "/v1/audit?role=operator", |page| {
            page["items"].as_array().is_some_and(|rows| rows.len() == 3)
        })
        .await;
    for row in rows["items"].as_array().unwrap() {
        assert_eq!(row["actor_id"], "operator:dana", "{row}");
        assert_eq!(row["source"], "operator", "{row}");
        assert_eq!(row["request_id"], "ops-run-7", "{row}");
    }
}
