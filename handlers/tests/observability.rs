//! What operators see: the metrics a run emits against what `infra/template.yaml`'s dashboard
//! and alarms name, and one request id followed through the logs from a customer's query to
//! the consultant's decision.
//!
//! Both run the same story through the product's own parts — the API router, the relay
//! against the emulator's queues, the worker's Lambda handler, the subscriptions, the lag
//! check — with the EMF recorder and the JSON logs writing into buffers.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use axum::http::StatusCode;
use casebook_adapters::aws::setup::{ensure_resources, ResourceNames};
use casebook_adapters::aws::shared_config;
use casebook_adapters::aws::sqs::Queue;
use casebook_application::business::BusinessEvents;
use casebook_application::jobs::LagCheck;
use casebook_domain::actor::Role;
use casebook_domain::ids::TenantId;
use casebook_domain::policy::PlanTier;
use casebook_domain::tenant::TenantCommand;
use casebook_domain::values::Confidence;
use casebook_handlers::access_log::AccessLog;
use casebook_handlers::compose;
use casebook_handlers::http::router;
use casebook_handlers::metrics::{self, EmfBusinessLog, Flush};
use casebook_handlers::reactions::ReactionSubscription;
use casebook_handlers::relay::{Relay, RelayConfig};
use casebook_handlers::telemetry;
use casebook_handlers::worker::{handle_sqs_event, Worker};
use casebook_projections::jobs::SubscriptionBoard;
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgPool};
use support::scenario::{
    ask, ctx, diagnoser, onboard, propose, request, CountingLlm, FixedEmbedder, Spendthrift,
};
use support::{json_body, spawn_app, Lines, TestApp, User};
use tower::ServiceExt;
use uuid::Uuid;

/// What the story leaves for the assertions.
struct Story {
    /// The EMF lines: the recorder's flush and the business events.
    metrics: Lines,
    /// The JSON log lines and the business events.
    logs: Lines,
    /// The request id of the customer's query.
    query_request: String,
    /// The request id of the consultant's decision.
    decision_request: String,
}

/// `POST path` as `user`; the status, body and the server's request id.
async fn post(app: &TestApp, user: &User, path: &str, body: Value) -> (StatusCode, Value, String) {
    let response = app
        .send(TestApp::post_request(
            Some(user),
            path,
            body.to_string(),
            None,
        ))
        .await;
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (response.status(), json_body(response).await, request_id)
}

/// Runs the subscriptions (projections, reactions, business events) until `done` holds for
/// the business lines, or panics (a hang guard, not a timing).
async fn project_until(
    projector: &PgPool,
    app: &TestApp,
    business: &Lines,
    done: impl Fn(&[Value]) -> bool,
) {
    for _ in 0..300 {
        compose::projector(
            projector.clone(),
            app.state.service.clone(),
            Arc::new(FixedEmbedder),
            None,
        )
        .with_subscription(ReactionSubscription::new(BusinessEvents::new(
            Arc::new(EmfBusinessLog::new(
                "test",
                Arc::new(Mutex::new(business.clone())),
            )),
            app.state.service.stores().diagnoses.clone(),
        )))
        .drain(Duration::from_secs(5))
        .await
        .expect("subscriptions");
        if done(&business.json()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the subscriptions never told what was expected: {:#?}",
        business.json()
    );
}

fn told(lines: &[Value], kind: &str) -> usize {
    lines.iter().filter(|line| line["event"] == kind).count()
}

/// The story: a sign-up; a customer's query relayed to the diagnosis queue, worked by the
/// worker's Lambda handler (a second receive) and decided by a consultant; a proposal
/// approved without review; refused and rate-limited requests; a relay that cannot publish;
/// the lag check.
async fn tell_the_story() -> Story {
    let story_metrics = Lines::default();
    let logs = Lines::default();
    let collector = metrics::install("test", Flush::OnDemand).expect("one recorder per test");
    let log_writer = logs.clone();
    telemetry::init_writing_to(move || log_writer.clone());

    let app = spawn_app().await;
    app.onboard_both("professional").await;
    let projector = app.projector_pool().await;
    let business = Lines::default();

    // A practice signs up.
    let (status, body) = app
        .post_public(
            "/v1/signup",
            json!({
                "practice_name": "Northwind",
                "admin_email": "founder@northwind.test",
                "admin_name": "Founder",
                "plan": "starter",
            }),
            Some(&Uuid::new_v4().to_string()),
            std::net::SocketAddr::from(([192, 0, 2, 1], 40_000)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // The customer asks.
    let customer = &app.acme.customer;
    let session = Uuid::new_v4();
    let (status, body, _) = post(
        &app,
        customer,
        "/v1/sessions",
        json!({ "session_id": session, "subject": "Supplier contract" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body, query_request) = post(
        &app,
        customer,
        &format!("/v1/sessions/{session}/queries"),
        json!({ "query_id": Uuid::new_v4(), "text": "Is the indemnity cap enforceable?" }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let diagnosis: Uuid = body["ids"]["diagnosis_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // A refused command: the session is not the caller's to close.
    let (status, _, _) = post(
        &app,
        &app.globex.customer,
        &format!("/v1/sessions/{session}/close"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A relay that cannot reach its bus fails before the real one publishes.
    let aws = shared_config().await;
    let prefix = format!("obs-{}", Uuid::new_v4().simple());
    let resources = ensure_resources(&aws, &ResourceNames::with_prefix(&prefix))
        .await
        .expect("bus and queues");
    let config = RelayConfig {
        bus_name: resources.bus_name.clone(),
        source: "casebook".to_owned(),
        diagnosis_queue_url: resources.diagnosis_queue_url.clone(),
    };
    let unreachable = RelayConfig {
        bus_name: format!("{prefix}-missing"),
        ..config.clone()
    };
    casebook_handlers::compose::runner(projector.clone())
        .with_subscription(Relay::new(&aws, &unreachable, app.pool.clone()))
        .drain(Duration::from_secs(2))
        .await
        .expect("runner");
    let queue = Queue::new(&aws, &resources.diagnosis_queue_url);
    let mut received = Vec::new();
    for _ in 0..100 {
        casebook_handlers::compose::runner(projector.clone())
            .with_subscription(Relay::new(&aws, &config, app.pool.clone()))
            .drain(Duration::from_secs(5))
            .await
            .expect("runner");
        received = queue.receive(10, 1).await.expect("receive");
        if !received.is_empty() {
            break;
        }
    }
    // The failing relay sent the message before its bus refused, once per retry: the same
    // event every time, which the worker handles once.
    let message = received.first().expect("a diagnosis request on the queue");
    assert!(
        received
            .iter()
            .all(|other| other.attributes["event_id"] == message.attributes["event_id"]),
        "{received:?}"
    );

    // The worker's Lambda handler works it, on its second receive.
    let worker = Worker::new(
        diagnoser(
            &app.pool,
            Arc::new(FixedEmbedder),
            Arc::new(CountingLlm::default()),
        )
        .await,
    );
    let attributes: BTreeMap<_, _> = message
        .attributes
        .iter()
        .map(|(name, value)| {
            (
                name.clone(),
                json!({ "stringValue": value, "dataType": "String" }),
            )
        })
        .collect();
    let event: SqsEvent = serde_json::from_value(json!({ "Records": [{
        "messageId": message.message_id,
        "body": message.body,
        "attributes": { "ApproximateReceiveCount": "2" },
        "messageAttributes": attributes,
    }]}))
    .expect("an SQS event");
    let response = handle_sqs_event(&worker, event).await;
    assert!(response.batch_item_failures.is_empty(), "handled");

    // The consultant decides.
    project_until(&projector, &app, &business, |lines| {
        told(lines, "diagnosis_proposed") == 1
    })
    .await;
    let (status, body, decision_request) = post(
        &app,
        &app.acme.consultant,
        &format!("/v1/diagnoses/{diagnosis}/decision"),
        json!({ "verdict": "reject", "reason": "Cites the wrong statute" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Another practice approves without review at its threshold.
    let auto = auto_resolving_tenant(&app).await;
    project_until(&projector, &app, &business, |lines| {
        told(lines, "consultant_decided") == 1 && told(lines, "auto_approved") == 1
    })
    .await;
    assert_ne!(auto, app.acme.tenant);

    // A practice spends its month's token budget; its next query waits.
    let spender = onboard(&app.state.service, "spender").await;
    let spender_customer = ctx(spender, Role::Customer, "spender-customer");
    let (_, spent) = ask(
        &app.state.service,
        &spender_customer,
        "Is the cap enforceable?",
    )
    .await;
    let spendthrift = diagnoser(
        &app.pool,
        Arc::new(FixedEmbedder),
        Arc::new(Spendthrift(PlanTier::Professional)),
    )
    .await;
    spendthrift
        .diagnose(&request(spender, spent))
        .await
        .expect("proposed");
    project_until(&projector, &app, &business, |lines| {
        told(lines, "token_budget_threshold_crossed") == 2
    })
    .await;
    let (_, waiting) = ask(&app.state.service, &spender_customer, "And the carve-outs?").await;
    spendthrift
        .diagnose(&request(spender, waiting))
        .await
        .expect("deferred");
    project_until(&projector, &app, &business, |lines| {
        told(lines, "diagnosis_deferred") == 1
    })
    .await;

    // Requests past the tenant's rate limit are refused.
    rate_limited(&app).await;

    // Access records past a full queue are dropped and counted.
    overloaded_access_log(&app).await;

    // The lag check reads every subscription, the relay's among them.
    LagCheck::new(
        Arc::new(SubscriptionBoard::new(projector.clone())),
        Duration::from_secs(60),
    )
    .run()
    .await
    .expect("lag check");

    // Business events are log lines and metrics at once: both buffers get them.
    let (mut metrics_sink, mut logs_sink) = (story_metrics.clone(), logs.clone());
    collector.flush(&mut metrics_sink).expect("flushed");
    for line in business.json() {
        writeln!(metrics_sink, "{line}").unwrap();
        writeln!(logs_sink, "{line}").unwrap();
    }
    Story {
        metrics: story_metrics,
        logs,
        query_request,
        decision_request,
    }
}

/// A tenant approving without review at 0.5, whose customer's query was proposed at 0.6.
async fn auto_resolving_tenant(app: &TestApp) -> TenantId {
    let service = &app.state.service;
    let tenant = onboard(service, "autoapprove").await;
    let admin = ctx(tenant, Role::Admin, "autoapprove-admin");
    service
        .administer_tenant(
            &admin,
            TenantCommand::SetAutoResolveThreshold {
                actor: admin.actor.clone(),
                threshold: Some(Confidence::new(0.5).unwrap()),
            },
        )
        .await
        .expect("threshold set");
    let customer = ctx(tenant, Role::Customer, "autoapprove-customer");
    let (_, diagnosis) = ask(service, &customer, "Is the indemnity cap enforceable?").await;
    propose(&app.pool, tenant, diagnosis).await;
    tenant
}

/// Closes a session that doesn't exist until the tenant's burst is spent.
async fn rate_limited(app: &TestApp) {
    for _ in 0..500 {
        let response = app
            .post_response(&app.globex.customer, "/v1/sessions/not-a-uuid/close")
            .await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            return;
        }
    }
    panic!("the tenant's burst never ran out");
}

/// Reads through an access log whose queue holds one record while its table is locked.
async fn overloaded_access_log(app: &TestApp) {
    let log = AccessLog::start(app.pool.clone(), 1);
    let overloaded = router(app.state.clone().with_access_log(log.clone()));
    let mut superuser = app.superuser().await;
    let mut lock = superuser.begin().await.unwrap();
    lock.execute("LOCK TABLE access_log IN EXCLUSIVE MODE")
        .await
        .unwrap();
    for _ in 0..5 {
        let request = axum::http::Request::get("/v1/sessions")
            .header(
                "authorization",
                format!("Bearer {}", app.acme.customer.token),
            )
            .body(axum::body::Body::empty())
            .unwrap();
        let response = overloaded.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert!(log.dropped() > 0, "the queue overflowed");
    lock.commit().await.unwrap();
    log.drain().await;
}

/// `(metric, dimensions)` of every EMF document in `lines`.
fn emitted(lines: &[Value]) -> BTreeSet<(String, BTreeSet<String>)> {
    let mut metrics = BTreeSet::new();
    for line in lines {
        for directive in line["_aws"]["CloudWatchMetrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(directive["Namespace"], metrics::NAMESPACE);
            for dimensions in directive["Dimensions"].as_array().into_iter().flatten() {
                let dimensions: BTreeSet<String> = dimensions
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|name| name.as_str().unwrap().to_owned())
                    .collect();
                for metric in directive["Metrics"].as_array().into_iter().flatten() {
                    let name = metric["Name"].as_str().unwrap().to_owned();
                    assert!(
                        !line[&name].is_null(),
                        "{name} has a value in its document: {line}"
                    );
                    metrics.insert((name, dimensions.clone()));
                }
            }
        }
    }
    metrics
}

/// `(metric, dimensions)` of every metric of `namespace` the template's dashboard widgets
/// and alarms name: metric rows, `SEARCH('{Namespace,Dim,…} MetricName="…"')` expressions
/// (which match exactly those dimensions) and alarms' metrics.
fn named_by_the_template() -> BTreeSet<(String, BTreeSet<String>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml");
    let template: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).expect("the template")).expect("YAML");
    let mut named = BTreeSet::new();
    let resources = template["Resources"].as_mapping().expect("resources");
    for resource in resources.values() {
        let properties = &resource["Properties"];
        match resource["Type"].as_str() {
            Some("AWS::CloudWatch::Dashboard") => {
                let serde_yaml::Value::Tagged(sub) = &properties["DashboardBody"] else {
                    panic!("the dashboard body is a !Sub");
                };
                let body = sub.value[0].as_str().expect("the body's text");
                let body: Value = serde_json::from_str(&without_placeholders(body)).expect("JSON");
                for widget in body["widgets"].as_array().unwrap() {
                    for row in widget["properties"]["metrics"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        named.extend(named_by_row(row));
                    }
                }
            }
            Some("AWS::CloudWatch::Alarm") => {
                let metrics = properties["Metrics"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .map(|query| &query["MetricStat"]["Metric"]);
                for metric in std::iter::once(properties).chain(metrics) {
                    if metric["Namespace"].as_str() == Some(metrics::NAMESPACE) {
                        let dimensions = metric["Dimensions"]
                            .as_sequence()
                            .into_iter()
                            .flatten()
                            .map(|dimension| dimension["Name"].as_str().unwrap().to_owned())
                            .collect();
                        let name = metric["MetricName"].as_str().unwrap().to_owned();
                        named.insert((name, dimensions));
                    }
                }
            }
            _ => {}
        }
    }
    assert!(!named.is_empty(), "the template shows Casebook metrics");
    named
}

/// `text` with every `${…}` of a `!Sub` replaced by a plain word.
fn without_placeholders(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        out.push('x');
        rest = &rest[start + rest[start..].find('}').expect("closed placeholder") + 1..];
    }
    out.push_str(rest);
    out
}

/// The Casebook metrics a dashboard row names: `["Casebook", metric, dim, value, …]` or a
/// `SEARCH` expression.
fn named_by_row(row: &Value) -> Vec<(String, BTreeSet<String>)> {
    let row = row.as_array().expect("a metrics row is an array");
    if row[0] == metrics::NAMESPACE {
        let dimensions = row[2..]
            .iter()
            .step_by(2)
            .map(|name| name.as_str().unwrap().to_owned())
            .collect();
        return vec![(row[1].as_str().unwrap().to_owned(), dimensions)];
    }
    let Some(expression) = row[0]["expression"].as_str() else {
        return vec![];
    };
    let schema = &expression[expression.find('{').unwrap() + 1..expression.find('}').unwrap()];
    let mut names = schema.split(',');
    if names.next() != Some(metrics::NAMESPACE) {
        return vec![];
    }
    let dimensions = names.map(str::to_owned).collect();
    let metric = expression
        .split("MetricName=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a SEARCH names its metric");
    vec![(metric.to_owned(), dimensions)]
}

#[tokio::test]
async fn the_dashboard_and_alarms_name_exactly_what_a_run_emits() {
    let story = tell_the_story().await;
    let emitted = emitted(&story.metrics.json());
    let named = named_by_the_template();

    let missing: Vec<_> = named
        .iter()
        .filter(|metric| !emitted.contains(metric))
        .collect();
    assert!(
        missing.is_empty(),
        "the template names metrics nothing emitted: {missing:#?}\nemitted: {emitted:#?}"
    );
    let unseen: Vec<_> = emitted
        .iter()
        .filter(|metric| !named.contains(metric))
        .collect();
    assert!(
        unseen.is_empty(),
        "emitted metrics no widget or alarm shows: {unseen:#?}"
    );
    for (metric, dimensions) in &emitted {
        assert!(
            !dimensions.iter().any(|name| name.contains("Tenant")),
            "{metric}: a tenant is never a dimension"
        );
    }
}

#[tokio::test]
async fn one_request_id_finds_a_diagnosis_from_the_customers_query_to_the_consultants_decision() {
    let story = tell_the_story().await;
    let lines = story.logs.json();
    let mentions = |line: &Value| line.to_string().contains(&story.query_request);
    let found: Vec<&Value> = lines.iter().filter(|line| mentions(line)).collect();

    let api = found
        .iter()
        .any(|line| line["message"] == "finished processing request");
    let worker = found
        .iter()
        .any(|line| line["message"] == "message handled");
    let business: BTreeSet<&str> = found
        .iter()
        .filter_map(|line| line["event"].as_str())
        .collect();
    assert!(api, "the API's line of the query: {found:#?}");
    assert!(worker, "the worker's line of the message: {found:#?}");
    assert_eq!(
        business,
        BTreeSet::from([
            "query_submitted",
            "diagnosis_proposed",
            "consultant_decided"
        ]),
        "{found:#?}"
    );
    let decided = found
        .iter()
        .find(|line| line["event"] == "consultant_decided")
        .unwrap();
    assert_eq!(decided["request_id"], story.decision_request.as_str());
    assert_eq!(decided["correlation_id"], story.query_request.as_str());
}

/// `casebook serve --api-only` over `app`'s database, its stdout and stderr captured.
fn serve(app: &TestApp) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_casebook"))
        .args(["serve", "--api-only"])
        .env("CASEBOOK_ENV", "local")
        .env("DATABASE_URL", app.database_url())
        .env("CASEBOOK_LISTEN", "127.0.0.1:0")
        .env("CASEBOOK_JWT_ISSUER", &app.pool_info.issuer)
        .env("CASEBOOK_JWT_AUDIENCE", &app.pool_info.client_id)
        .env("CASEBOOK_JWKS_URL", &app.pool_info.jwks_url)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("casebook serve starts")
}

/// The address `casebook serve` says it listens on, read from its log lines, which are read
/// to the end meanwhile (a closed pipe would fail its writes).
fn listening_address(stderr: impl std::io::Read + Send + 'static) -> std::net::SocketAddr {
    use std::io::BufRead;
    let (found, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = serde_json::from_str::<Value>(&line.expect("a log line")) else {
                continue;
            };
            if line["message"] == "casebook serving" {
                let addr = line["addr"].as_str().expect("the address");
                let addr = addr.trim_start_matches("Some(").trim_end_matches(')');
                let _ = found.send(addr.parse().expect("a socket address"));
            }
        }
    });
    address
        .recv()
        .expect("casebook serve stopped before listening")
}

#[tokio::test]
async fn casebook_serve_writes_its_metrics_on_stdout_and_the_last_ones_as_it_stops() {
    let app = spawn_app().await;
    let mut server = serve(&app);
    let stderr = server.stderr.take().unwrap();
    let address = tokio::task::spawn_blocking(move || listening_address(stderr))
        .await
        .unwrap();

    let response = reqwest::Client::new()
        .get(format!("http://{address}/v1/sessions"))
        .bearer_auth(&app.acme.customer.token)
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::OK);
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let output = tokio::task::spawn_blocking(move || server.wait_with_output())
        .await
        .unwrap()
        .expect("casebook serve stops");
    assert!(output.status.success(), "{output:?}");

    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let latency = lines
        .iter()
        .find(|line| !line["ApiLatency"].is_null())
        .unwrap_or_else(|| panic!("an ApiLatency line on stdout: {stdout}"));
    assert_eq!(latency["Operation"], "list_sessions");
    assert_eq!(latency["Stage"], "local");
    assert_eq!(
        latency["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "Casebook"
    );
}
