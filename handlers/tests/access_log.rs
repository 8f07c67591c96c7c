//! The access audit: every `/v1` request — read, command or refusal — leaves exactly one
//! record in its tenant's hash-chained access log (the platform's when no tenant is known),
//! written behind the answer through a bounded queue that a stop drains and an overload
//! overflows, counted.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use casebook_adapters::postgres::{begin_for_tenants, Access};
use casebook_domain::ids::TenantId;
use casebook_handlers::access_log::{AccessLog, DROPPED_METRIC};
use casebook_handlers::http::router;
use casebook_handlers::server::Application;
use casebook_handlers::settings::Process;
use casebook_projections::access_log::{self, AccessRecord, PLATFORM};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgPool};
use support::{json_body, spawn_app, TestApp, User};
use tower::ServiceExt;
use uuid::Uuid;

/// `GET path` as `user` (anonymous with `None`, or with a raw `Authorization` header), through
/// `app`'s router: the status, the server's request id and the body.
async fn get(app: &TestApp, user: Option<&User>, path: &str) -> (StatusCode, String, Value) {
    get_with(app, user.map(|u| format!("Bearer {}", u.token)), path).await
}

async fn get_with(
    app: &TestApp,
    authorization: Option<String>,
    path: &str,
) -> (StatusCode, String, Value) {
    let mut request = Request::get(path);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let response = app.send(request.body(Body::empty()).unwrap()).await;
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (response.status(), request_id, json_body(response).await)
}

/// The one record of `request_id` among `records`.
fn the_record<'a>(records: &'a [AccessRecord], request_id: &str) -> &'a AccessRecord {
    let found: Vec<_> = records
        .iter()
        .filter(|r| r.request_id == request_id)
        .collect();
    assert_eq!(found.len(), 1, "records of {request_id}: {found:?}");
    found[0]
}

/// `tenant`'s records, read straight from the database (not through a writer's drain).
async fn stored(pool: &PgPool, tenant: TenantId) -> Vec<AccessRecord> {
    let mut tx = begin_for_tenants(pool, Access::ReadOnly, &[*tenant.as_uuid()])
        .await
        .unwrap();
    access_log::records(&mut tx, tenant, 0, 10_000)
        .await
        .unwrap()
}

/// Opens a session as acme's customer, and waits until it reads back; its id.
async fn open_session(app: &TestApp) -> Uuid {
    let session = Uuid::new_v4();
    let (status, body) = app
        .put(
            &app.acme.customer,
            &format!("/v1/sessions/{session}"),
            json!({ "subject": "Supplier contract" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.read_when(
        &app.acme.customer,
        &format!("/v1/sessions/{session}"),
        |_| true,
    )
    .await;
    session
}

#[tokio::test]
async fn a_read_writes_exactly_one_access_record_naming_what_it_returned() {
    let app = spawn_app().await;
    app.onboard_both("professional").await;
    let session = open_session(&app).await;
    let before = app.access_records(app.acme.tenant).await.len();

    let (status, list_id, body) = get(&app, Some(&app.acme.consultant), "/v1/sessions").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, one_id, _) = get(
        &app,
        Some(&app.acme.consultant),
        &format!("/v1/sessions/{session}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let records = app.access_records(app.acme.tenant).await;
    assert_eq!(records.len(), before + 2, "one record per read");
    let list = the_record(&records, &list_id);
    assert_eq!(
        (list.method.as_str(), list.route.as_str(), list.status),
        ("GET", "/v1/sessions", 200)
    );
    assert_eq!(list.actor_role.as_deref(), Some("consultant"));
    assert!(list.actor_id.is_some());
    assert_eq!(list.resource_ids, vec![session.to_string()]);
    assert_eq!(list.result_count, Some(1));
    let one = the_record(&records, &one_id);
    assert_eq!(one.route, "/v1/sessions/{session_id}");
    assert_eq!(one.resource_ids, vec![session.to_string()]);
    assert_eq!(one.result_count, None);
    // The other tenant's log saw none of it.
    let theirs = app.access_records(app.globex.tenant).await;
    assert!(theirs.iter().all(|r| r.request_id != list_id));
}

#[tokio::test]
async fn each_refused_request_writes_one_access_record_in_the_chain_of_whoever_was_known() {
    // Not onboarded: the smallest tier's limits, which a handful of requests exceed.
    let app = spawn_app().await;
    let (status, anonymous, _) = get(&app, None, "/v1/sessions").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, forged, _) =
        get_with(&app, Some("Bearer not-a-token".into()), "/v1/sessions").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, forbidden, _) = get(&app, Some(&app.acme.customer), "/v1/decisions").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let missing = Uuid::new_v4();
    let (status, not_found, _) = get(
        &app,
        Some(&app.acme.consultant),
        &format!("/v1/sessions/{missing}"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let mut limited = None;
    let mut sent = vec![forbidden.clone()];
    for _ in 0..50 {
        let (status, id, _) = get(&app, Some(&app.acme.customer), "/v1/sessions").await;
        sent.push(id.clone());
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(id);
            break;
        }
    }
    let limited = limited.expect("the customer was rate limited");

    let platform = app.access_records(PLATFORM).await;
    for id in [&anonymous, &forged] {
        let record = the_record(&platform, id);
        assert_eq!((record.status, record.actor_id.as_deref()), (401, None));
        assert_eq!(record.route, "/v1/sessions");
    }
    let acme = app.access_records(app.acme.tenant).await;
    let record = the_record(&acme, &forbidden);
    assert_eq!(record.status, 403);
    assert!(record.actor_id.is_some());
    assert_eq!(
        record.actor_role, None,
        "the route admitted them in no role"
    );
    let record = the_record(&acme, &not_found);
    assert_eq!(record.status, 404);
    assert_eq!(record.resource_ids, vec![missing.to_string()]);
    assert_eq!(the_record(&acme, &limited).status, 429);
    // Exactly one record for each of the customer's requests, the refused ones included.
    for id in &sent {
        the_record(&acme, id);
    }
    assert_eq!(acme.len(), sent.len() + 1, "{acme:#?}");
}

#[tokio::test]
async fn auditors_page_and_filter_the_access_log_and_verify_its_chain() {
    let app = spawn_app().await;
    app.onboard_both("professional").await;
    let session = open_session(&app).await;
    for _ in 0..3 {
        get(
            &app,
            Some(&app.acme.consultant),
            &format!("/v1/sessions/{session}"),
        )
        .await;
    }
    let consultant = app
        .access_records(app.acme.tenant)
        .await
        .into_iter()
        .find(|r| r.actor_role.as_deref() == Some("consultant"))
        .and_then(|r| r.actor_id)
        .expect("the consultant's reads");

    // The consultant's three reads of the session, two to a page.
    let filter = format!("actor={consultant}&route=/v1/sessions/%7Bsession_id%7D&status=200");
    let (status, _, page) = get(
        &app,
        Some(&app.acme.auditor),
        &format!("/v1/access-log?{filter}&limit=2"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["route"], "/v1/sessions/{session_id}");
    assert_eq!(page["items"][0]["hash"].as_str().unwrap().len(), 64);
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let (_, _, next) = get(
        &app,
        Some(&app.acme.auditor),
        &format!("/v1/access-log?{filter}&limit=2&after={cursor}"),
    )
    .await;
    assert_eq!(next["items"].as_array().unwrap().len(), 1, "{next}");
    assert_eq!(next["next_cursor"], Value::Null);

    for (query, field) in [
        ("status=42", "status"),
        ("status=teapot", "query"),
        ("from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z", "from"),
        ("from=yesterday", "query"),
        ("after=not-a-cursor", "after"),
    ] {
        let (status, _, problem) = get(
            &app,
            Some(&app.acme.auditor),
            &format!("/v1/access-log?{query}"),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {problem}"
        );
        assert_eq!(problem["code"], "validation_failed", "{query}");
        assert_eq!(problem["field"], field, "{query}: {problem}");
    }
    let (status, _, _) = get(&app, Some(&app.acme.consultant), "/v1/access-log").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    app.access_records(app.acme.tenant).await;
    let (status, _, verified) =
        get(&app, Some(&app.acme.auditor), "/v1/access-log/verification").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verified["verified"], true, "{verified}");
    assert!(verified["rows"].as_u64().unwrap() >= 10, "{verified}");
}

/// Acme's access chain as its auditor's verification reports it.
async fn verification(app: &TestApp) -> Value {
    app.access_records(app.acme.tenant).await;
    let (_, _, body) = get(app, Some(&app.acme.auditor), "/v1/access-log/verification").await;
    body
}

#[tokio::test]
async fn the_access_log_is_append_only_and_a_changed_or_deleted_record_breaks_its_chain() {
    let app = spawn_app().await;
    app.onboard_both("professional").await;
    for _ in 0..4 {
        get(&app, Some(&app.acme.consultant), "/v1/sessions").await;
    }
    assert_eq!(verification(&app).await["verified"], true);
    let tenant = *app.acme.tenant.as_uuid();

    // The API's own role may not rewrite a record.
    let mut tx = begin_for_tenants(&app.pool, Access::ReadWrite, &[tenant])
        .await
        .unwrap();
    let refused = tx
        .execute(sqlx::query(
            "UPDATE access_log SET status = 200 WHERE seq = 1",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        refused
            .as_database_error()
            .and_then(|e| e.code())
            .as_deref(),
        Some("42501")
    );
    drop(tx);
    // Nor may the database's superuser, without first switching the trigger off.
    let mut su = app.superuser().await;
    let change = "UPDATE access_log SET route = '/v1/tenant' WHERE tenant_id = $1 AND seq = 2";
    let refused = sqlx::query(change)
        .bind(tenant)
        .execute(&mut su)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");

    su.execute("SET session_replication_role = replica")
        .await
        .unwrap();
    sqlx::query(change)
        .bind(tenant)
        .execute(&mut su)
        .await
        .unwrap();
    let broken = verification(&app).await;
    assert_eq!(broken["verified"], false, "{broken}");
    assert_eq!(broken["broken"]["seq"], 2, "{broken}");
    assert!(
        broken["broken"]["problem"]
            .as_str()
            .unwrap()
            .contains("altered"),
        "{broken}"
    );
    // The other tenant's chain is its own, and still whole.
    let (_, _, theirs) = get(
        &app,
        Some(&app.globex.auditor),
        "/v1/access-log/verification",
    )
    .await;
    assert_eq!(theirs["verified"], true, "{theirs}");

    sqlx::query("UPDATE access_log SET route = '/v1/sessions' WHERE tenant_id = $1 AND seq = 2")
        .bind(tenant)
        .execute(&mut su)
        .await
        .unwrap();
    assert_eq!(verification(&app).await["verified"], true);
    sqlx::query("DELETE FROM access_log WHERE tenant_id = $1 AND seq = 3")
        .bind(tenant)
        .execute(&mut su)
        .await
        .unwrap();
    let broken = verification(&app).await;
    assert_eq!(broken["verified"], false, "{broken}");
    assert_eq!(broken["broken"]["seq"], 4, "{broken}");
    assert_eq!(broken["rows"], 2, "{broken}");
}

#[tokio::test]
async fn a_lambda_answer_leaves_only_once_its_access_record_is_stored() {
    let app = spawn_app().await;
    let lambda = router(
        app.state
            .clone()
            .with_access_log(AccessLog::start(app.pool.clone(), 100).draining_each_request()),
    );
    let response = lambda
        .oneshot(Request::get("/v1/sessions").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let request_id = response.headers()["x-request-id"].to_str().unwrap();
    // No drain here: the answer itself waited for it.
    the_record(&stored(&app.pool, PLATFORM).await, request_id);
}

#[tokio::test]
async fn casebook_serve_stores_every_access_record_before_it_stops() {
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
    // The table locked: the records wait in the writer and its queue, answers don't.
    let mut su = app.superuser().await;
    let mut lock = su.begin().await.unwrap();
    lock.execute("LOCK TABLE access_log IN EXCLUSIVE MODE")
        .await
        .unwrap();

    let http = reqwest::Client::new();
    let mut sent = Vec::new();
    for _ in 0..20 {
        let answer = http
            .get(format!("{base}/v1/sessions"))
            .bearer_auth(&app.acme.consultant.token)
            .send()
            .await
            .expect("answered");
        assert_eq!(answer.status(), reqwest::StatusCode::OK);
        sent.push(
            answer.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    stop.send(()).unwrap();
    lock.commit().await.unwrap();
    serving.await.unwrap().expect("stopped cleanly");

    let records = stored(&app.pool, app.acme.tenant).await;
    for id in &sent {
        the_record(&records, id);
    }
}

#[tokio::test]
async fn under_overload_records_are_dropped_and_counted_while_answers_go_on() {
    let recorder = DebuggingRecorder::new();
    let counted = recorder.snapshotter();
    recorder.install().expect("the only recorder");
    let app = spawn_app().await;
    app.onboard_both("professional").await;
    let log = AccessLog::start(app.pool.clone(), 1);
    let overloaded = router(app.state.clone().with_access_log(log.clone()));
    let mut su = app.superuser().await;
    let mut lock = su.begin().await.unwrap();
    lock.execute("LOCK TABLE access_log IN EXCLUSIVE MODE")
        .await
        .unwrap();

    const REQUESTS: u64 = 20;
    let mut sent = Vec::new();
    for _ in 0..REQUESTS {
        let response = overloaded
            .clone()
            .oneshot(
                Request::get("/v1/sessions")
                    .header(
                        "authorization",
                        format!("Bearer {}", app.acme.consultant.token),
                    )
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        sent.push(
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    // One record in the writer's blocked batch, one in the queue: at most two kept.
    assert!(log.dropped() >= REQUESTS - 2, "dropped {}", log.dropped());
    lock.commit().await.unwrap();
    log.drain().await;

    let kept = stored(&app.pool, app.acme.tenant)
        .await
        .into_iter()
        .filter(|r| sent.contains(&r.request_id))
        .count() as u64;
    assert_eq!(
        kept + log.dropped(),
        REQUESTS,
        "every record kept or counted"
    );
    let dropped: u64 = counted
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == DROPPED_METRIC)
        .map(|(.., value)| match value {
            DebugValue::Counter(count) => count,
            other => panic!("{DROPPED_METRIC} is a counter: {other:?}"),
        })
        .sum();
    assert_eq!(dropped, log.dropped());
}
