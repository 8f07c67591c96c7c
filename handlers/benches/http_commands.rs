//! Commands through the HTTP API the way a Lambda instance serves them: one request at a
//! time, each handed to the router with `tower::ServiceExt::oneshot` (as `lambda_http` does),
//! beside the raw append on the same database in the same run.
//!
//! `cargo bench -p casebook-handlers --bench http_commands` (with the local stack up: the
//! database and the emulator's Cognito, which signs the customer in) prints p50/p99 and the
//! rate of (a) a raw single-row INSERT commit as the tenant, (s) the same command as (h)
//! through the application service alone, and (h) `PUT /v1/sessions/{new id}` as the
//! tenant's customer through the whole router (token check, standing, rate limit, access
//! record, validation, the command, the answer). `BENCH_ROUNDS` (default 3) interleaved
//! rounds of `BENCH_SECONDS` (default 5) per cell; median (range) over the rounds.
//!
//! The state is the test harness's (`spawn_app`) with the members' standing remembered for
//! its default time, as deployed; the relay nudge a deployed API sends after each write (an
//! asynchronous Lambda invocation) is not part of it.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use casebook_domain::actor::Role;
use casebook_domain::ids::SessionId;
use casebook_domain::values::Subject;
use casebook_handlers::http::access::AccessList;
use casebook_handlers::http::router;
use casebook_tests::bench::{millis, session_scoped, Cells, Run, Spread};
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;

/// Runs `op` back to back, one at a time, for `duration`.
async fn one_at_a_time<Fut: std::future::Future<Output = ()>>(
    duration: Duration,
    mut op: impl FnMut() -> Fut,
) -> Run {
    let start = Instant::now();
    let mut took = Vec::new();
    while start.elapsed() < duration {
        let began = Instant::now();
        op().await;
        took.push(began.elapsed());
    }
    Run::new(took, start.elapsed())
}

async fn raw_append(pool: &PgPool, tenant: Uuid) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('Raw', $1, 1, 'Opened', '1', $2, $3)",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(serde_json::json!({ "Opened": { "subject": "Load test" } }))
    .bind(serde_json::json!({ "tenant_id": tenant, "request_id": Uuid::new_v4() }))
    .execute(pool)
    .await
    .expect("raw append");
}

// One thread, as the `api` function runs in Lambda.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Cells { seconds, rounds } = Cells::from_env();
    let cell = Duration::from_secs(seconds);

    // Rate limits out of the way: the tenant's plan is not what is measured.
    let app = support::spawn_app_with_rate_scale(1_000_000).await;
    app.onboard_both("enterprise").await;
    let app_router = router(app.state.clone().with_access_ttl(AccessList::DEFAULT_TTL));
    let tenant = *app.acme.tenant.as_uuid();
    let raw = session_scoped((*app.pool.connect_options()).clone(), tenant, 1).await;
    let bearer = format!("Bearer {}", app.acme.customer.token);
    let open_session = || {
        let request = Request::put(format!("/v1/sessions/{}", Uuid::new_v4()))
            .header("authorization", &bearer)
            .header("content-type", "application/json")
            .body(Body::from(r#"{"subject":"Load test"}"#))
            .unwrap();
        let answer = app_router.clone().oneshot(request);
        async move {
            let answer = answer.await.expect("infallible");
            assert_eq!(answer.status(), StatusCode::CREATED, "{answer:?}");
        }
    };

    let customer = support::scenario::ctx(app.acme.tenant, Role::Customer, "acme-customer");
    let service = &app.state.service;
    let open_through_service = || async {
        let subject = Subject::parse("Load test".to_owned()).unwrap();
        service
            .open_session(&customer, SessionId::new(), subject, vec![])
            .await
            .expect("opened");
    };

    // Warm-up: connections, prepared statements, the token keys, the member's standing.
    one_at_a_time(Duration::from_secs(1), || raw_append(&raw, tenant)).await;
    one_at_a_time(Duration::from_secs(1), open_through_service).await;
    one_at_a_time(Duration::from_secs(1), open_session).await;

    let (mut appends, mut services, mut commands) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        appends.push(one_at_a_time(cell, || raw_append(&raw, tenant)).await);
        services.push(one_at_a_time(cell, open_through_service).await);
        commands.push(one_at_a_time(cell, open_session).await);
    }

    let figures = |runs: &[Run]| {
        format!(
            "{:.3} | {:.3} | {}",
            Spread::of(runs.iter().map(|run| millis(run.latencies.p50()))),
            Spread::of(runs.iter().map(|run| millis(run.latencies.p99()))),
            Spread::of(runs.iter().map(|run| run.per_second)),
        )
    };
    let against_raw = |runs: &[Run], figure: fn(&Run) -> f64| {
        Spread::of(
            runs.iter()
                .zip(&appends)
                .map(|(run, append)| figure(run) / figure(append)),
        )
    };
    println!(
        "## HTTP commands one at a time: median (range) of {rounds} interleaved rounds, \
         each cell {seconds} s\n"
    );
    println!("| operation | p50 ms | p99 ms | per second |");
    println!("|---|---|---|---|");
    println!("| (a) raw INSERT commit | {} |", figures(&appends));
    println!(
        "| (s) the session opened through the application service | {} |",
        figures(&services)
    );
    println!(
        "| (h) `PUT /v1/sessions/{{id}}` through the router | {} |",
        figures(&commands)
    );
    println!();
    for (name, runs) in [("(s)", &services), ("(h)", &commands)] {
        println!(
            "{name}/(a): p50 {:.2}, p99 {:.2}, rate {:.2}",
            against_raw(runs, |run| millis(run.latencies.p50())),
            against_raw(runs, |run| millis(run.latencies.p99())),
            against_raw(runs, |run| run.per_second),
        );
    }
}
