//! Rebuilds: beside live traffic, resumed after a kill, for one tenant.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use casebook_domain::ids::TenantId;
use casebook_projections::log::Checkpoint;
use casebook_projections::projection::ProjectionId;
use casebook_projections::rebuild::{Rebuild, RebuildError, RebuildScope};
use casebook_projections::runner::Runner;
use tokio::sync::{mpsc, oneshot};

use crate::oracle::{assert_read_models_match, fold_log};
use crate::support::{assert_all_match, projection_names, wait_caught_up, Driver, Stack};

#[tokio::test]
async fn a_rebuild_while_commands_keep_arriving_swaps_in_tables_equal_to_the_live_ones() {
    let stack = Stack::new().await;
    let mut driver = Driver::new(stack.app.clone(), 31);
    driver.onboard(3).await;
    driver.run(300).await;
    stack.drain_all(100).await;

    let (stop_runner, runner_stopped) = oneshot::channel::<()>();
    let runner = tokio::spawn(
        Runner::new(stack.projector.clone())
            .with_projections(ProjectionId::ALL)
            .with_config(Stack::config(50))
            .run_until(async {
                let _ = runner_stopped.await;
            }),
    );
    let arriving = Arc::new(AtomicBool::new(true));
    let accepted = Arc::new(AtomicUsize::new(driver.accepted));
    let before = driver.accepted;
    let commands = tokio::spawn({
        let (arriving, accepted) = (arriving.clone(), accepted.clone());
        async move {
            while arriving.load(Ordering::SeqCst) {
                driver.run(5).await;
                accepted.store(driver.accepted, Ordering::SeqCst);
            }
            driver
        }
    });
    // The rebuild starts once commands are arriving, so it can't outrun them.
    while accepted.load(Ordering::SeqCst) == before {
        tokio::task::yield_now().await;
    }
    let at_start = accepted.load(Ordering::SeqCst);

    let mut reports = 0;
    let rebuild = Rebuild::new(
        stack.maintainer.clone(),
        ProjectionId::ALL,
        RebuildScope::All,
    )
    .with_batch_size(40);
    let swapped = rebuild
        .run(std::future::pending(), |_| reports += 1)
        .await
        .unwrap();
    assert!(swapped);
    assert!(reports > 1);

    let at_end = accepted.load(Ordering::SeqCst);
    arriving.store(false, Ordering::SeqCst);
    let _driver = commands.await.unwrap();
    assert!(at_end > at_start, "commands arrived during the rebuild");
    wait_caught_up(&stack, &projection_names()).await;
    stop_runner.send(()).unwrap();
    runner.await.unwrap().unwrap();

    assert_all_match(&stack.verify_against_rebuild(&ProjectionId::ALL).await);
    assert_read_models_match(&stack.app, &fold_log(&stack.owner).await).await;

    // The swapped-in tables kept the migrations' index names, the policies and the grants;
    // nothing of the rebuild is left.
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE tablename = 'diagnoses' ORDER BY 1",
    )
    .fetch_all(&stack.owner)
    .await
    .unwrap();
    assert_eq!(
        indexes,
        [
            "diagnoses_by_requester",
            "diagnoses_by_session",
            "diagnoses_by_tenant",
            "diagnoses_deferred",
            "diagnoses_pkey",
            "diagnoses_review_queue"
        ]
    );
    let policies: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_policies WHERE tablename IN ('sessions', 'audit_log')",
    )
    .fetch_one(&stack.owner)
    .await
    .unwrap();
    // tenant_isolation, projector_writes and maintainer_rebuilds on each.
    assert_eq!(policies, 6);
    let leftovers: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pg_tables WHERE tablename LIKE '%\\_\\_rebuild%')
              + (SELECT count(*) FROM subscriptions WHERE name LIKE '%#rebuild%')",
    )
    .fetch_one(&stack.owner)
    .await
    .unwrap();
    assert_eq!(leftovers, 0);
}

/// Builds, retrying while a killed build's locks are still held.
async fn build_when_free(rebuild: &Rebuild) -> casebook_projections::rebuild::BuildOutcome {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match rebuild.build(std::future::pending(), |_| {}).await {
            Err(RebuildError::Busy(_)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other.unwrap(),
        }
    }
}

#[tokio::test]
async fn a_rebuild_killed_half_way_resumes_and_finishes_with_the_same_digest() {
    let stack = Stack::new().await;
    let mut driver = Driver::new(stack.app.clone(), 41);
    driver.onboard(3).await;
    driver.run(300).await;
    stack.drain_all(100).await;

    let rebuild = Rebuild::new(
        stack.maintainer.clone(),
        ProjectionId::ALL,
        RebuildScope::All,
    )
    .with_batch_size(40);
    let (progress, mut reported) = mpsc::unbounded_channel();
    let killed = tokio::spawn({
        let rebuild = rebuild.clone();
        async move {
            rebuild
                .build(std::future::pending(), |p| {
                    let _ = progress.send(*p);
                })
                .await
        }
    });
    let first = reported.recv().await.unwrap();
    let second = reported.recv().await.unwrap();
    killed.abort();
    assert!(killed.await.unwrap_err().is_cancelled());
    assert!(second.applied > first.applied && second.applied < second.total);

    let resumed = build_when_free(&rebuild).await;
    assert!(resumed.caught_up);
    assert!(resumed.resumed_from >= second.checkpoint, "{resumed:?}");
    assert!(resumed.resumed_from > Checkpoint::START);
    assert!(resumed.applied < second.total);
    stack.build_to_head(&rebuild, &ProjectionId::ALL).await;
    assert_all_match(&rebuild.verify().await.unwrap());
    rebuild.swap().await.unwrap();
    stack.drain_all(100).await;
    assert_all_match(&stack.verify_against_rebuild(&ProjectionId::ALL).await);
}

#[tokio::test]
async fn a_one_tenant_rebuild_replaces_that_tenants_rows_and_nothing_else() {
    let stack = Stack::new().await;
    let mut driver = Driver::new(stack.app.clone(), 51);
    driver.onboard(3).await;
    driver.run(300).await;
    stack.drain_all(100).await;
    let (a, b) = (driver.tenants[0], driver.tenants[1]);

    // Damage a row of A's and one of B's behind the projections' back.
    let mut su = stack.db.superuser().await;
    let tampered = |tenant: TenantId| {
        sqlx::query_scalar::<_, uuid::Uuid>(
            "UPDATE sessions SET subject = 'tampered'
              WHERE session_id = (SELECT session_id FROM sessions WHERE tenant_id = $1
                                   ORDER BY session_id LIMIT 1)
              RETURNING session_id",
        )
        .bind(*tenant.as_uuid())
    };
    let a_session = tampered(a).fetch_one(&mut su).await.unwrap();
    let b_session = tampered(b).fetch_one(&mut su).await.unwrap();

    let for_a = Rebuild::new(
        stack.maintainer.clone(),
        ProjectionId::ALL,
        RebuildScope::Tenant(a),
    );
    stack.build_to_head(&for_a, &ProjectionId::ALL).await;
    let verdicts = for_a.verify().await.unwrap();
    let sessions = verdicts
        .iter()
        .find(|v| v.table.name == "sessions")
        .unwrap();
    assert_eq!(
        sessions.first_difference,
        Some(format!("[\"{a_session}\"]"))
    );
    assert!(verdicts
        .iter()
        .filter(|v| v.table.name != "sessions")
        .all(|v| v.matches()));

    // More traffic, so the swap has a tail to catch up inside its transaction.
    let mut driver = driver;
    driver.run(60).await;
    stack.drain_all(100).await;
    for_a.swap().await.unwrap();

    let again = Rebuild::new(
        stack.maintainer.clone(),
        ProjectionId::ALL,
        RebuildScope::Tenant(a),
    );
    stack.build_to_head(&again, &ProjectionId::ALL).await;
    assert_all_match(&again.verify().await.unwrap());
    again.discard().await.unwrap();

    // B's damage is still there, and the whole-table comparison names it first.
    let verdicts = stack
        .verify_against_rebuild(&[ProjectionId::Sessions])
        .await;
    let sessions = verdicts
        .iter()
        .find(|v| v.table.name == "sessions")
        .unwrap();
    assert_eq!(
        sessions.first_difference,
        Some(format!("[\"{b_session}\"]"))
    );
}
