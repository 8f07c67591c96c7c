//! The five Lambda functions started as Lambda starts them, against a local Runtime API:
//! process start → first `next` request (init), the first invocation, warm invocations (p50,
//! p99), peak and resident memory; beside the same figures for a bare `lambda_runtime`
//! function (this harness itself, re-executed) measured in the same run.
//!
//! Run by `handlers/benches/lambda_functions.sh`, which builds the functions for this machine in
//! the `deploy` profile with their own features (infra/functions.sh) and gives their directory:
//!
//! ```text
//! cargo bench -p casebook-handlers --bench lambda_functions -- <bootstrap dir> [warm invocations]
//! ```
//!
//! Each function runs deployed-style (`CASEBOOK_ENV=aws`) over a database of its own and the
//! local stack: the AWS emulator for S3, SQS, EventBridge and Cognito's tokens, this harness
//! for the Lambda service (the api's nudge to the projector) and the Runtime API. The worker's
//! Bedrock endpoint is a closed loopback port: its invocations take the path of a message
//! whose diagnosis isn't in the store (loaded, reported failed), which is the worker's own
//! work without a model's answer time.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use casebook_adapters::aws::apigateway::UsagePlans;
use casebook_adapters::aws::setup::{ensure_resources, ResourceNames};
use casebook_adapters::aws::shared_config;
use casebook_tests::bench::Latencies;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

/// Run as the bare baseline function when set.
const BARE_FUNCTION: &str = "CASEBOOK_BENCH_BARE_FUNCTION";

/// One invocation waiting for the function to take it, and where its answer goes.
struct Pending {
    id: String,
    event: Value,
    answer: oneshot::Sender<Result<Value, Value>>,
}

/// The Runtime API's side of one function's life.
struct Runtime {
    /// Invocations, taken one at a time by `next`.
    queue: Mutex<mpsc::Receiver<Pending>>,
    /// Answers outstanding, by request id.
    waiting: Mutex<HashMap<String, oneshot::Sender<Result<Value, Value>>>>,
    /// Told when the function first asks for an invocation (its init is over).
    ready: Mutex<Option<oneshot::Sender<Instant>>>,
}

async fn next(State(runtime): State<Arc<Runtime>>) -> Response {
    if let Some(ready) = runtime.ready.lock().await.take() {
        let _ = ready.send(Instant::now());
    }
    let Some(pending) = runtime.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    runtime
        .waiting
        .lock()
        .await
        .insert(pending.id.clone(), pending.answer);
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(60);
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
    };
    set("lambda-runtime-aws-request-id", pending.id);
    set(
        "lambda-runtime-deadline-ms",
        deadline.as_millis().to_string(),
    );
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:bench".to_owned(),
    );
    set(
        "lambda-runtime-trace-id",
        format!("Root=1-{}", Uuid::new_v4().simple()),
    );
    (headers, axum::Json(pending.event)).into_response()
}

async fn answer(runtime: &Runtime, id: &str, outcome: Result<Value, Value>) -> StatusCode {
    match runtime.waiting.lock().await.remove(id) {
        Some(waiting) => {
            let _ = waiting.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn respond(
    State(runtime): State<Arc<Runtime>>,
    UrlPath(id): UrlPath<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    answer(&runtime, &id, Ok(value)).await
}

async fn fail(
    State(runtime): State<Arc<Runtime>>,
    UrlPath(id): UrlPath<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    answer(&runtime, &id, Err(value)).await
}

/// The Lambda service's `Invoke` (the api nudges the projector after each commit): accepted,
/// as an asynchronous invocation is.
async fn invoke_accepted() -> StatusCode {
    StatusCode::ACCEPTED
}

/// A started Runtime API and the way to invoke through it.
struct LocalLambda {
    address: std::net::SocketAddr,
    invocations: mpsc::Sender<Pending>,
    ready: oneshot::Receiver<Instant>,
}

impl LocalLambda {
    async fn start() -> Self {
        let (invocations, queue) = mpsc::channel(1);
        let (ready, ready_rx) = oneshot::channel();
        let runtime = Arc::new(Runtime {
            queue: Mutex::new(queue),
            waiting: Mutex::new(HashMap::new()),
            ready: Mutex::new(Some(ready)),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route(
                "/2015-03-31/functions/{name}/invocations",
                post(invoke_accepted),
            )
            .with_state(runtime);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            address,
            invocations,
            ready: ready_rx,
        }
    }

    /// Invokes with `event`; the time from handing it over to the answer.
    async fn invoke(&self, event: Value) -> (Duration, Result<Value, Value>) {
        let (answer, outcome) = oneshot::channel();
        let started = Instant::now();
        self.invocations
            .send(Pending {
                id: Uuid::new_v4().to_string(),
                event,
                answer,
            })
            .await
            .expect("the runtime API is up");
        let outcome = tokio::time::timeout(Duration::from_secs(60), outcome)
            .await
            .expect("an answer within a minute")
            .expect("the runtime API is up");
        (started.elapsed(), outcome)
    }
}

/// What one function measured.
struct Figures {
    function: String,
    init: Duration,
    first: Duration,
    p50: Duration,
    p99: Duration,
    peak_rss_kib: u64,
    rss_kib: u64,
    /// `None` for the bare function, which is this harness with its debug info.
    bootstrap_bytes: Option<u64>,
}

/// `VmHWM` and `VmRSS` of `pid`, in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the function runs");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Starts `bootstrap` as Lambda does, with `env`, and drives `warm` invocations of `event`.
async fn measure(
    function: &str,
    bootstrap: &Path,
    env: &[(String, String)],
    warm: usize,
    event: impl Fn() -> Value,
) -> Figures {
    let mut lambda = LocalLambda::start().await;
    let log = std::env::temp_dir().join(format!("casebook-bench-{function}.log"));
    let started = Instant::now();
    let mut child = tokio::process::Command::new(bootstrap)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", lambda.address.to_string())
        .env(
            "AWS_ENDPOINT_URL_LAMBDA",
            format!("http://{}", lambda.address),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function}"),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(
            std::fs::File::options().append(true).open(&log).unwrap(),
        ))
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("{}: {err}", bootstrap.display()));
    let pid = child.id().expect("started");
    let ready = tokio::select! {
        ready = &mut lambda.ready => ready.expect("the function asked for an invocation"),
        exit = child.wait() => panic!("{function} exited during init ({exit:?}); see {}", log.display()),
    };
    let init = ready - started;
    let (first, outcome) = lambda.invoke(event()).await;
    check(function, &outcome, &log);
    let mut latencies = Vec::with_capacity(warm);
    for _ in 0..warm {
        let (took, outcome) = lambda.invoke(event()).await;
        check(function, &outcome, &log);
        latencies.push(took);
    }
    let latencies = Latencies::new(latencies);
    let (peak_rss_kib, rss_kib) = memory(pid);
    child.kill().await.expect("stopped");
    Figures {
        function: function.to_owned(),
        init,
        first,
        p50: latencies.p50(),
        p99: latencies.p99(),
        peak_rss_kib,
        rss_kib,
        bootstrap_bytes: (bootstrap != std::env::current_exe().unwrap())
            .then(|| std::fs::metadata(bootstrap).unwrap().len()),
    }
}

/// Stops the run when an invocation failed in a way its function should not have.
fn check(function: &str, outcome: &Result<Value, Value>, log: &Path) {
    let failed = match (function, outcome) {
        (_, Err(error)) => Some(error.to_string()),
        ("api", Ok(response)) if response["statusCode"] != 201 => Some(response.to_string()),
        // The worker reports its message failed: the diagnosis isn't in the store.
        ("worker", Ok(response))
            if response["batchItemFailures"].as_array().map(Vec::len) != Some(1) =>
        {
            Some(response.to_string())
        }
        _ => None,
    };
    if let Some(failed) = failed {
        panic!("{function}: {failed}; see {}", log.display());
    }
}

fn bare_function() {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        lambda_runtime::run(lambda_runtime::service_fn(
            |event: lambda_runtime::LambdaEvent<Value>| async move {
                Ok::<_, lambda_runtime::Error>(event.payload)
            },
        ))
        .await
        .expect("the bare function runs");
    });
}

fn millis(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1000.0)
}

fn main() {
    if std::env::var_os(BARE_FUNCTION).is_some() {
        return bare_function();
    }
    // `cargo bench` passes `--bench`; the first other argument is the bootstraps' directory.
    let mut args = std::env::args().skip(1).filter(|arg| arg != "--bench");
    let dir = PathBuf::from(
        args.next()
            .expect("usage: lambda_functions <bootstrap dir> [warm]"),
    );
    let warm = args
        .next()
        .map_or(200, |n| n.parse().expect("a number of warm invocations"));
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(run(&dir, warm));
}

async fn run(dir: &Path, warm: usize) {
    let app = support::spawn_app().await;
    app.onboard_both("enterprise").await;
    let emulator = std::env::var("AWS_ENDPOINT_URL").expect("the local stack (stack.sh env)");
    let aws = shared_config().await;
    let prefix = format!("casebook-bench-{}", Uuid::new_v4().simple());
    let names = ResourceNames::with_prefix(&prefix);
    let resources = ensure_resources(&aws, &names)
        .await
        .expect("the emulator's resources");
    let usage_plans = format!("{prefix}-");
    UsagePlans::new(&aws, &usage_plans)
        .ensure_plans()
        .await
        .expect("the emulator's usage plans");
    let inherited = [
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "PATH",
    ]
    .into_iter()
    .filter_map(|name| Some((name.to_owned(), std::env::var(name).ok()?)));
    let mut common: Vec<(String, String)> = inherited.collect();
    for (name, value) in [
        ("CASEBOOK_ENV", "aws".to_owned()),
        ("CASEBOOK_STAGE", "bench".to_owned()),
        ("AWS_ENDPOINT_URL", emulator),
        ("DATABASE_URL", app.database_url()),
        ("CASEBOOK_JWT_ISSUER", app.pool_info.issuer.clone()),
        ("CASEBOOK_JWT_AUDIENCE", app.pool_info.client_id.clone()),
        ("CASEBOOK_JWKS_URL", app.pool_info.jwks_url.clone()),
        ("CASEBOOK_AI_PROVIDER", "bedrock".to_owned()),
        // Nothing listens there: no model answers within the run.
        (
            "CASEBOOK_BEDROCK_ENDPOINT_URL",
            "http://127.0.0.1:9".to_owned(),
        ),
        ("CASEBOOK_BEDROCK_MAX_ATTEMPTS", "1".to_owned()),
        ("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
        ("UPLOADS_BUCKET", resources.uploads_bucket.clone()),
        ("ARTIFACTS_BUCKET", resources.artifacts_bucket.clone()),
        (
            "AUDIT_ARCHIVE_BUCKET",
            resources.audit_archive_bucket.clone(),
        ),
        ("EVENT_BUS_NAME", resources.bus_name.clone()),
        ("DIAGNOSIS_QUEUE_URL", resources.diagnosis_queue_url.clone()),
        (
            "LOCAL_JOBS_QUEUE_URL",
            resources.local_jobs_queue_url.clone(),
        ),
        (
            "PROJECTOR_FUNCTION_NAME",
            "casebook-bench-projector".to_owned(),
        ),
        ("CASEBOOK_USAGE_PLAN_PREFIX", usage_plans),
        ("CASEBOOK_USER_POOL_ID", app.pool_info.pool_id.clone()),
        (
            "CASEBOOK_USER_POOL_CLIENT_ID",
            app.pool_info.client_id.clone(),
        ),
    ] {
        common.push((name.to_owned(), value));
    }

    let tenant = app.acme.tenant.to_string();
    let customer = app.acme.customer.token.clone();
    let rest_event = include_str!("../tests/fixtures/apigw_rest_open_session.json");
    let api_event = || {
        let json = rest_event
            .replace("__TOKEN__", &customer)
            .replace("__SUB__", "from-the-authorizer")
            .replace("__TENANT__", &tenant)
            .replace("__SESSION__", &Uuid::new_v4().to_string());
        serde_json::from_str(&json).unwrap()
    };
    let authorizer_event = || {
        json!({
            "type": "TOKEN",
            "authorizationToken": format!("Bearer {customer}"),
            "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/POST/v1/sessions",
        })
    };
    let worker_event = || {
        let body = json!({
            "event_id": format!("Diagnosis/{}/1", Uuid::new_v4()),
            "tenant_id": tenant,
            "diagnosis_id": Uuid::new_v4(),
        });
        json!({ "Records": [{
            "messageId": Uuid::new_v4().to_string(),
            "body": body.to_string(),
            "attributes": { "ApproximateReceiveCount": "1" },
            "messageAttributes": { "type": { "stringValue": "DiagnosisRequested", "dataType": "String" } },
            "eventSource": "aws:sqs",
        }]})
    };

    let bare_env = vec![(BARE_FUNCTION.to_owned(), "1".to_owned())];
    let harness = std::env::current_exe().unwrap();
    let mut rows = vec![
        measure(
            "bare lambda_runtime",
            &harness,
            &bare_env,
            warm,
            || json!({"ping": 1}),
        )
        .await,
    ];
    rows.push(measure("api", &dir.join("api"), &common, warm, api_event).await);
    rows.push(
        measure(
            "authorizer",
            &dir.join("authorizer"),
            &common,
            warm,
            authorizer_event,
        )
        .await,
    );
    rows.push(measure("worker", &dir.join("worker"), &common, warm, worker_event).await);
    rows.push(
        measure(
            "scheduler",
            &dir.join("scheduler"),
            &common,
            warm,
            || json!({"job": "lag_check"}),
        )
        .await,
    );
    rows.push(
        measure("projector", &dir.join("projector"), &common, warm, || {
            json!({})
        })
        .await,
    );

    println!(
        "| function | init ms | first invocation ms | warm p50 ms | warm p99 ms | peak RSS MiB | RSS after warm MiB | bootstrap MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {} | {:.1} | {:.1} | {} |",
            row.function,
            millis(row.init),
            millis(row.first),
            millis(row.p50),
            millis(row.p99),
            row.peak_rss_kib as f64 / 1024.0,
            row.rss_kib as f64 / 1024.0,
            row.bootstrap_bytes.map_or("—".to_owned(), |bytes| format!(
                "{:.1}",
                bytes as f64 / (1024.0 * 1024.0)
            )),
        );
    }
    println!("\n{warm} warm invocations each, one at a time.");
}
