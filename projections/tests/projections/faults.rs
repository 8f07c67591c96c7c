//! Exactly-once effect: faults between applying a batch and committing it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use casebook_projections::error::ApplyError;
use casebook_projections::log::RecordedEvent;
use casebook_projections::projection::{ProjectionId, ProjectionSubscription};
use casebook_projections::runner::{DrainOutcome, Runner};
use casebook_projections::status::status;
use casebook_projections::subscription::Subscription;
use sqlx::PgConnection;
use tokio::sync::mpsc;

use crate::support::{assert_all_match, projection_names, Driver, Stack};

/// What the wrapper does after its inner subscription applied a batch, before the commit.
#[derive(Clone, Copy)]
enum Fault {
    /// Return a transient error on every `n`th batch.
    FailEvery(usize),
    /// Report, then hang forever, on batch `n`.
    HangAt(usize),
}

/// A projection subscription with a fault injected between apply and commit.
struct Faulty {
    inner: ProjectionSubscription,
    fault: Fault,
    batches: usize,
    injected: Arc<AtomicUsize>,
    hung: mpsc::UnboundedSender<()>,
}

#[async_trait]
impl Subscription for Faulty {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn apply(
        &mut self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ApplyError> {
        self.inner.apply(conn, events).await?;
        self.batches += 1;
        match self.fault {
            Fault::FailEvery(n) if self.batches % n == 0 => {
                self.injected.fetch_add(1, Ordering::SeqCst);
                Err(ApplyError::Transient("injected fault after apply".into()))
            }
            Fault::HangAt(n) if self.batches == n => {
                self.injected.fetch_add(1, Ordering::SeqCst);
                let _ = self.hung.send(());
                std::future::pending().await
            }
            _ => Ok(()),
        }
    }
}

fn faulty_runner(
    stack: &Stack,
    fault: Fault,
    injected: &Arc<AtomicUsize>,
    hung: &mpsc::UnboundedSender<()>,
) -> Runner {
    ProjectionId::ALL.into_iter().fold(
        Runner::new(stack.projector.clone()).with_config(Stack::config(23)),
        |runner, id| {
            runner.with_subscription(Faulty {
                inner: id.subscription(),
                fault,
                batches: 0,
                injected: injected.clone(),
                hung: hung.clone(),
            })
        },
    )
}

#[tokio::test]
async fn an_error_between_apply_and_commit_rolls_the_batch_back_and_the_rerun_matches_a_clean_rebuild(
) {
    let stack = Stack::new().await;
    let mut driver = Driver::new(stack.app.clone(), 8);
    driver.onboard(3).await;
    driver.run(250).await;
    let injected = Arc::new(AtomicUsize::new(0));
    let (hung, _) = mpsc::unbounded_channel();
    loop {
        let reports = faulty_runner(&stack, Fault::FailEvery(3), &injected, &hung)
            .drain(Duration::from_secs(120))
            .await
            .unwrap();
        assert!(
            reports.iter().all(|r| r.outcome == DrainOutcome::CaughtUp),
            "{reports:?}"
        );
        if stack.lagging(&projection_names()).await.is_empty() {
            break;
        }
    }
    assert!(injected.load(Ordering::SeqCst) >= ProjectionId::ALL.len() * 3);
    let mut conn = stack.owner.acquire().await.unwrap();
    for s in status(&mut conn).await.unwrap() {
        assert_eq!(s.lag_events, 0);
        assert_eq!(s.last_error, None, "a success clears the transient error");
    }
    assert_all_match(&stack.verify_against_rebuild(&ProjectionId::ALL).await);
}

#[tokio::test]
async fn a_runner_killed_between_apply_and_commit_leaves_rows_and_checkpoint_consistent() {
    let stack = Stack::new().await;
    let mut driver = Driver::new(stack.app.clone(), 9);
    driver.onboard(3).await;
    driver.run(250).await;
    // The faulty runner must reach its third batch in every subscription before it drains.
    stack.wait_until_log_visible().await;
    let injected = Arc::new(AtomicUsize::new(0));
    let (hung, mut hangs) = mpsc::unbounded_channel();
    let killed = tokio::spawn(
        faulty_runner(&stack, Fault::HangAt(3), &injected, &hung).drain(Duration::from_secs(120)),
    );
    for _ in ProjectionId::ALL {
        hangs.recv().await.unwrap();
    }
    // Every subscription has applied its third batch and not committed it: kill them all.
    let checkpoints_before: Vec<_> = {
        let mut conn = stack.owner.acquire().await.unwrap();
        status(&mut conn).await.unwrap()
    };
    killed.abort();
    assert!(killed.await.unwrap_err().is_cancelled());
    for s in &checkpoints_before {
        assert!(s.lag_events > 0, "stopped half way: {s:?}");
    }

    // The killed runner's connections go away with it; its locks may take a moment to clear.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reports = Runner::new(stack.projector.clone())
            .with_projections(ProjectionId::ALL)
            .with_config(Stack::config(23))
            .drain(Duration::from_secs(120))
            .await
            .unwrap();
        if reports.iter().all(|r| r.outcome == DrainOutcome::CaughtUp)
            && stack.lagging(&projection_names()).await.is_empty()
        {
            break;
        }
        assert!(
            reports
                .iter()
                .all(|r| matches!(r.outcome, DrainOutcome::CaughtUp | DrainOutcome::Busy)),
            "{reports:?}"
        );
        assert!(std::time::Instant::now() < deadline, "locks never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_all_match(&stack.verify_against_rebuild(&ProjectionId::ALL).await);
}
