//! Every binary refuses to start without a setting it needs, naming it, before it reaches
//! anything: each runs with an empty environment plus just what gets it past the earlier
//! checks. The database named here listens nowhere, so a binary that connected first would
//! fail on the connection instead of naming the variable.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Somewhere nothing listens (port 9, discard): never reached.
const DATABASE_URL: &str = "postgres://casebook:hunter2@127.0.0.1:9/casebook";

const TOKENS: [(&str, &str); 2] = [
    (
        "CASEBOOK_JWT_ISSUER",
        "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_example",
    ),
    ("CASEBOOK_JWT_AUDIENCE", "example-client"),
];

/// What `binary` (with `args`) wrote to stderr when it exited, run with only `vars` set. The
/// wait is a hang guard, not a measure: a binary refusing its settings exits at once.
fn refusal(binary: &str, args: &[&str], vars: &[(&str, &str)]) -> String {
    let mut child = Command::new(binary)
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {binary}: {err}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("{binary} {args:?} did not exit: it should refuse its settings at once");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut stderr)
        .expect("stderr");
    assert!(!status.success(), "{binary} {args:?} started: {stderr}");
    assert!(
        !stderr.contains("hunter2"),
        "the database password was printed: {stderr}"
    );
    stderr
}

fn assert_names(stderr: &str, variable: &str) {
    assert!(
        stderr.contains(variable),
        "stderr should name {variable}: {stderr}"
    );
}

const FUNCTIONS: [(&str, &str); 5] = [
    ("api", env!("CARGO_BIN_EXE_api")),
    ("authorizer", env!("CARGO_BIN_EXE_authorizer")),
    ("projector", env!("CARGO_BIN_EXE_projector")),
    ("worker", env!("CARGO_BIN_EXE_worker")),
    ("scheduler", env!("CARGO_BIN_EXE_scheduler")),
];
const CASEBOOK: &str = env!("CARGO_BIN_EXE_casebook");

#[test]
fn every_function_without_casebook_env_names_it() {
    for (name, binary) in FUNCTIONS {
        let stderr = refusal(binary, &[], &[("DATABASE_URL", DATABASE_URL)]);
        assert_names(&stderr, "CASEBOOK_ENV");
        assert!(stderr.contains(name), "{stderr}");
    }
}

#[test]
fn an_unknown_casebook_env_is_refused_by_every_binary() {
    let vars = [("CASEBOOK_ENV", "staging"), ("DATABASE_URL", DATABASE_URL)];
    for (_, binary) in FUNCTIONS {
        let stderr = refusal(binary, &[], &vars);
        assert_names(&stderr, "CASEBOOK_ENV=\"staging\"");
    }
    assert_names(&refusal(CASEBOOK, &["serve"], &vars), "CASEBOOK_ENV");
}

#[test]
fn the_api_deployed_without_its_projector_function_names_it() {
    let mut vars = vec![
        ("CASEBOOK_ENV", "aws"),
        ("DATABASE_URL", DATABASE_URL),
        ("UPLOADS_BUCKET", "uploads"),
    ];
    vars.extend(TOKENS);
    assert_names(
        &refusal(env!("CARGO_BIN_EXE_api"), &[], &vars),
        "PROJECTOR_FUNCTION_NAME",
    );
}

#[test]
fn the_api_without_token_settings_names_them() {
    let vars = [
        ("CASEBOOK_ENV", "aws"),
        ("DATABASE_URL", DATABASE_URL),
        ("UPLOADS_BUCKET", "uploads"),
        ("PROJECTOR_FUNCTION_NAME", "projector"),
    ];
    let stderr = refusal(env!("CARGO_BIN_EXE_api"), &[], &vars);
    assert_names(&stderr, "CASEBOOK_JWT_ISSUER");
    assert_names(&stderr, "CASEBOOK_JWT_AUDIENCE");
}

#[test]
fn the_authorizer_without_its_usage_plans_names_them() {
    let mut vars = vec![
        ("CASEBOOK_ENV", "aws"),
        ("DATABASE_URL", DATABASE_URL),
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9"),
    ];
    vars.extend(TOKENS);
    assert_names(
        &refusal(env!("CARGO_BIN_EXE_authorizer"), &[], &vars),
        "CASEBOOK_USAGE_PLAN_PREFIX",
    );
}

#[test]
fn the_projector_half_configured_names_what_it_lacks() {
    let full = [
        ("CASEBOOK_ENV", "aws"),
        ("DATABASE_URL", DATABASE_URL),
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9"),
        ("EVENT_BUS_NAME", "bus"),
        ("DIAGNOSIS_QUEUE_URL", "https://sqs.example/diagnosis"),
        ("LOCAL_JOBS_QUEUE_URL", "https://sqs.example/local-jobs"),
        ("CASEBOOK_USAGE_PLAN_PREFIX", "casebook-test-"),
        ("CASEBOOK_USER_POOL_ID", "us-east-1_example"),
        ("CASEBOOK_USER_POOL_CLIENT_ID", "example-client"),
    ];
    // The relay, the usage keys and the people: each left out in turn.
    for left_out in [
        "EVENT_BUS_NAME",
        "LOCAL_JOBS_QUEUE_URL",
        "CASEBOOK_USER_POOL_CLIENT_ID",
        "AWS_LAMBDA_RUNTIME_API",
    ] {
        let vars: Vec<_> = full
            .iter()
            .copied()
            .filter(|(name, _)| *name != left_out)
            .collect();
        assert_names(
            &refusal(env!("CARGO_BIN_EXE_projector"), &[], &vars),
            left_out,
        );
    }
}

#[test]
fn the_worker_without_its_uploads_bucket_names_it() {
    let vars = [
        ("CASEBOOK_ENV", "aws"),
        ("DATABASE_URL", DATABASE_URL),
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9"),
    ];
    assert_names(
        &refusal(env!("CARGO_BIN_EXE_worker"), &[], &vars),
        "UPLOADS_BUCKET",
    );
}

#[test]
fn the_worker_outside_lambda_without_its_queue_names_it() {
    let vars = [
        ("CASEBOOK_ENV", "aws"),
        ("DATABASE_URL", DATABASE_URL),
        ("UPLOADS_BUCKET", "uploads"),
    ];
    assert_names(
        &refusal(env!("CARGO_BIN_EXE_worker"), &[], &vars),
        "DIAGNOSIS_QUEUE_URL",
    );
}

#[test]
fn the_scheduler_without_a_bucket_names_it() {
    let vars = [
        ("CASEBOOK_ENV", "aws"),
        ("DATABASE_URL", DATABASE_URL),
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9"),
        ("ARTIFACTS_BUCKET", "artifacts"),
    ];
    assert_names(
        &refusal(env!("CARGO_BIN_EXE_scheduler"), &[], &vars),
        "AUDIT_ARCHIVE_BUCKET",
    );
}

#[test]
fn every_binary_without_a_database_names_it() {
    for (_, binary) in FUNCTIONS {
        assert_names(
            &refusal(binary, &[], &[("CASEBOOK_ENV", "aws")]),
            "DATABASE_URL",
        );
    }
    for args in [
        &["serve"][..],
        &["demo"],
        &[
            "operator",
            "--as",
            "ops",
            "--tenant",
            "00000000-0000-0000-0000-000000000001",
            "reactivate",
        ],
    ] {
        assert_names(&refusal(CASEBOOK, args, &[]), "DATABASE_URL");
    }
}

#[test]
fn casebook_serve_is_local_unless_told_and_then_needs_the_emulator() {
    let mut vars = vec![("DATABASE_URL", DATABASE_URL)];
    vars.extend(TOKENS);
    for args in [&["serve"][..], &["serve", "--api-only"]] {
        let stderr = refusal(CASEBOOK, args, &vars);
        assert_names(&stderr, "CASEBOOK_ENV=local");
        assert_names(&stderr, "AWS_ENDPOINT_URL");
    }
    assert_names(
        &refusal(CASEBOOK, &["demo"], &[("DATABASE_URL", DATABASE_URL)]),
        "AWS_ENDPOINT_URL",
    );
}

#[test]
fn casebook_serve_deployed_names_every_resource_it_lacks() {
    let mut vars = vec![
        ("CASEBOOK_ENV", "aws"),
        ("DATABASE_URL", DATABASE_URL),
        ("UPLOADS_BUCKET", "uploads"),
    ];
    vars.extend(TOKENS);
    let stderr = refusal(CASEBOOK, &["serve"], &vars);
    for variable in [
        "EVENT_BUS_NAME",
        "DIAGNOSIS_QUEUE_URL",
        "LOCAL_JOBS_QUEUE_URL",
        "ARTIFACTS_BUCKET",
        "AUDIT_ARCHIVE_BUCKET",
        "CASEBOOK_USAGE_PLAN_PREFIX",
        "CASEBOOK_USER_POOL_ID",
        "CASEBOOK_USER_POOL_CLIENT_ID",
    ] {
        assert_names(&stderr, variable);
    }
    // API-only, the uploads bucket is all it needs deployed: without it, it is named.
    let vars: Vec<_> = vars
        .into_iter()
        .filter(|(name, _)| *name != "UPLOADS_BUCKET")
        .collect();
    assert_names(
        &refusal(CASEBOOK, &["serve", "--api-only"], &vars),
        "UPLOADS_BUCKET",
    );
}

#[test]
fn the_demo_refuses_to_run_deployed() {
    let stderr = refusal(
        CASEBOOK,
        &["demo"],
        &[("CASEBOOK_ENV", "aws"), ("DATABASE_URL", DATABASE_URL)],
    );
    assert_names(&stderr, "CASEBOOK_ENV=local");
}
