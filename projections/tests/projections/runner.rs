//! The runner: following, standing by, lag, poison events.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use casebook_projections::checkpoints::{self, State};
use casebook_projections::error::ApplyError;
use casebook_projections::log::RecordedEvent;
use casebook_projections::projection::ProjectionId;
use casebook_projections::runner::{DrainOutcome, Runner};
use casebook_projections::status::{status, status_of};
use casebook_projections::subscription::Subscription;
use sqlx::{Executor, PgConnection};
use tokio::sync::oneshot;

use crate::oracle::{assert_read_models_match, fold_log};
use crate::support::{assert_all_match, projection_names, wait_caught_up, Driver, Stack};

#[tokio::test]
async fn a_following_runner_applies_new_events_as_they_arrive_until_shutdown() {
    let stack = Stack::new().await;
    let (stop, stopped) = oneshot::channel::<()>();
    let runner = tokio::spawn(
        Runner::new(stack.projector.clone())
            .with_projections(ProjectionId::ALL)
            .with_config(Stack::config(50))
            .run_until(async {
                let _ = stopped.await;
            }),
    );
    let mut driver = Driver::new(stack.app.clone(), 11);
    driver.onboard(3).await;
    for _ in 0..5 {
        driver.run(40).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_caught_up(&stack, &projection_names()).await;
    stop.send(()).unwrap();
    runner.await.unwrap().unwrap();
    assert_read_models_match(&stack.app, &fold_log(&stack.owner).await).await;
}

#[tokio::test]
async fn a_second_runner_stands_by_while_the_first_holds_the_subscription() {
    let stack = Stack::new().await;
    let (stop, stopped) = oneshot::channel::<()>();
    let first = tokio::spawn(
        Runner::new(stack.projector.clone())
            .with_projections([ProjectionId::Sessions])
            .with_config(Stack::config(50))
            .run_until(async {
                let _ = stopped.await;
            }),
    );
    wait_caught_up(&stack, &["sessions"]).await;
    let reports = Runner::new(stack.projector.clone())
        .with_projections([ProjectionId::Sessions])
        .drain(Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(reports[0].outcome, DrainOutcome::Busy);
    stop.send(()).unwrap();
    first.await.unwrap().unwrap();
    let reports = Runner::new(stack.projector.clone())
        .with_projections([ProjectionId::Sessions])
        .drain(Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(reports[0].outcome, DrainOutcome::CaughtUp);
}

#[tokio::test]
async fn status_reports_each_subscriptions_lag_in_events_and_seconds() {
    let stack = Stack::new().await;
    stack.drain_all(100).await;
    let mut driver = Driver::new(stack.app.clone(), 3);
    driver.onboard(3).await;
    driver.run(30).await;
    let mut conn = stack.owner.acquire().await.unwrap();
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let before = status(&mut conn).await.unwrap();
    assert_eq!(before.len(), ProjectionId::ALL.len());
    for s in &before {
        assert_eq!(s.state, State::Running);
        assert_eq!(s.lag_events, events, "{s:?}");
        assert!(s.lag_seconds > 0.0, "{s:?}");
    }
    let reports = stack.drain_all(100).await;
    for id in ProjectionId::ALL {
        let applied: u64 = reports
            .iter()
            .filter(|r| r.name == id.name())
            .map(|r| r.applied)
            .sum();
        assert_eq!(applied, events as u64, "{id}");
    }
    for s in status(&mut conn).await.unwrap() {
        assert_eq!((s.lag_events, s.lag_seconds), (0, 0.0), "{s:?}");
    }
}

/// Counts what it is given, without decoding: it passes events a projection chokes on.
struct Counter(Arc<AtomicUsize>);

#[async_trait]
impl Subscription for Counter {
    fn name(&self) -> &str {
        "counter"
    }

    async fn apply(
        &mut self,
        _conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ApplyError> {
        self.0.fetch_add(events.len(), Ordering::SeqCst);
        Ok(())
    }
}

/// Appends an event whose payload doesn't decode, as the superuser; returns its position.
async fn append_poison(stack: &Stack) -> i64 {
    let mut su = stack.db.superuser().await;
    sqlx::query_scalar(
        r#"INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
           VALUES ('Diagnosis', gen_random_uuid()::text, 1, 'DiagnosisProposed', '2',
                   '{"type": "DiagnosisProposed", "text": ""}',
                   jsonb_build_object('tenant_id', gen_random_uuid()::text, 'actor_id', 'x',
                       'actor_role', 'system', 'request_id', 'r', 'correlation_id', 'r',
                       'causation_id', 'r', 'source', 'worker'))
           RETURNING global_position"#,
    )
    .fetch_one(&mut su)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_poison_event_stops_its_subscription_right_before_it_and_is_never_skipped() {
    let stack = Stack::new().await;
    let mut driver = Driver::new(stack.app.clone(), 21);
    driver.onboard(3).await;
    driver.run(40).await;
    let poison = append_poison(&stack).await;
    driver.run(40).await;
    let events: usize = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events")
        .fetch_one(&stack.owner)
        .await
        .unwrap() as usize;

    let counted = Arc::new(AtomicUsize::new(0));
    let drain = || {
        Runner::new(stack.projector.clone())
            .with_projections([ProjectionId::Sessions])
            .with_subscription(Counter(counted.clone()))
            .with_config(Stack::config(16))
            .drain(Duration::from_secs(60))
    };
    // Drain until the counter has seen everything (other tests' open transactions can hold
    // a drain back: the gap-safe horizon is cluster-wide).
    let mut reports = drain().await.unwrap();
    while !stack.lagging(&["counter"]).await.is_empty() {
        reports = drain().await.unwrap();
    }
    let sessions = reports.iter().find(|r| r.name == "sessions").unwrap();
    let error = match &sessions.outcome {
        DrainOutcome::Failed { error } => error.clone(),
        DrainOutcome::Inactive(State::Failed) => {
            status_of(&mut stack.owner.acquire().await.unwrap(), "sessions")
                .await
                .unwrap()
                .unwrap()
                .last_error
                .unwrap()
        }
        other => panic!("expected a failure: {other:?}"),
    };
    assert!(error.contains(&format!("at {poison}")), "{error}");
    assert!(error.contains("cannot decode"), "{error}");
    assert_eq!(
        counted.load(Ordering::SeqCst),
        events,
        "other subscriptions go on"
    );

    let mut conn = stack.owner.acquire().await.unwrap();
    let failed = status_of(&mut conn, "sessions").await.unwrap().unwrap();
    assert_eq!(failed.state, State::Failed);
    assert_eq!(failed.last_error.as_deref(), Some(error.as_str()));
    // Everything before the poison event is applied, nothing after it.
    let before: i64 = sqlx::query_scalar(
        "SELECT global_position FROM events
          WHERE (transaction_id, global_position) <
                (SELECT transaction_id, global_position FROM events WHERE global_position = $1)
          ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
    )
    .bind(poison)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(failed.checkpoint.global_position, before);

    // Never skipped: a later run leaves it failed where it was.
    let reports = drain().await.unwrap();
    assert!(reports
        .iter()
        .any(|r| r.name == "sessions" && r.outcome == DrainOutcome::Inactive(State::Failed)));

    // The fix (here: erasing the bad event), then a resume: it carries on from there.
    conn.execute("BEGIN; SET LOCAL casebook.erasure = 'on'")
        .await
        .unwrap();
    sqlx::query("DELETE FROM events WHERE global_position = $1")
        .bind(poison)
        .execute(&mut *conn)
        .await
        .unwrap();
    conn.execute("COMMIT").await.unwrap();
    assert!(checkpoints::resume(&stack.projector, "sessions")
        .await
        .unwrap());
    loop {
        let reports = drain().await.unwrap();
        assert!(
            reports.iter().all(|r| r.outcome == DrainOutcome::CaughtUp),
            "{reports:?}"
        );
        if stack.lagging(&["sessions"]).await.is_empty() {
            break;
        }
    }
    assert_all_match(
        &stack
            .verify_against_rebuild(&[ProjectionId::Sessions])
            .await,
    );
}
