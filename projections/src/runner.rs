//! The subscription runner: reads the log from each subscription's checkpoint, applies
//! batches, and commits rows and checkpoint in one transaction.
//!
//! Two entry points over the same per-subscription loop:
//! - [`Runner::run_until`] follows the log (woken by `NOTIFY`, polling as the fallback) until
//!   a shutdown future resolves: `casebook serve` runs every subscription in-process this way;
//! - [`Runner::drain`] applies what is there until caught up or until a time budget is spent,
//!   then returns: a Lambda invocation.
//!
//! Per subscription:
//! - **One runner at a time.** A session-level advisory lock on a connection of its own
//!   (detached from the pool, so a dying runner releases it with its connection); a second
//!   runner stands by and retries. Each batch transaction also locks the subscription's row
//!   and checks the checkpoint is the one the batch follows, so a checkpoint moved by a
//!   rebuild's swap restarts the reader instead of applying twice.
//! - **Errors.** A transient error (database unreachable, deadlock, …) rolls the batch back,
//!   is recorded in `subscriptions.last_error`, and is retried with exponential backoff. A
//!   permanent one replays the batch one event per transaction to find the poison event,
//!   commits everything before it, and stops the subscription there with status `failed`
//!   and the event and error in `last_error`. It is never skipped: [`resume`] after a fix,
//!   or a rebuild's swap, restarts it.
//! - **Lag.** Reported every [`RunnerConfig::lag_interval`] and after a drain, as a log line
//!   and the `ProjectionLagSeconds` metric (see [`report_lag`]);
//!   [`status`](crate::status::status) returns it on demand.
//!
//! [`resume`]: crate::checkpoints::resume
//! [`report_lag`]: crate::status::report_lag

use std::collections::{HashMap, HashSet};
use std::future::{pending, Future};
use std::sync::Arc;
use std::time::Duration;

use casebook_vault::Vault;
use futures::StreamExt;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::checkpoints::{self, State};
use crate::decoded::describe;
use crate::error::{report, ApplyError};
use crate::log::{Checkpoint, LogReader, RecordedEvent, Scope};
use crate::projection::ProjectionId;
use crate::status::{self, status_of};
use crate::subscription::Subscription;

/// How the runner paces itself.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The most events applied in one transaction (and read per page).
    pub batch_size: usize,
    /// The longest a caught-up runner waits for a `NOTIFY` before looking again.
    pub poll_interval: Duration,
    /// How long a runner at the head of the log lets new events gather before reading them
    /// (see [`LogReader::with_settle_interval`]).
    pub settle_interval: Duration,
    /// The first wait after a transient error; doubled on each further one.
    pub initial_backoff: Duration,
    /// The longest wait after transient errors.
    pub max_backoff: Duration,
    /// How often a runner that another process holds the lock for, or whose subscription is
    /// failed or stopped, looks again.
    pub standby_interval: Duration,
    /// How often each following runner logs its lag.
    pub lag_interval: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            batch_size: 1_000,
            poll_interval: Duration::from_millis(500),
            settle_interval: Duration::from_millis(25),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            standby_interval: Duration::from_secs(5),
            lag_interval: Duration::from_secs(60),
        }
    }
}

/// Why the runner itself failed (a subscription's failures are in `subscriptions`).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Two subscriptions share a name, so they would share a checkpoint.
    #[error("two subscriptions are named {0:?}")]
    DuplicateName(String),
    /// A subscription's task panicked.
    #[error("subscription {name:?} panicked")]
    Panicked {
        /// The subscription.
        name: String,
    },
}

/// How a subscription's drain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainOutcome {
    /// Everything final in the log is applied.
    CaughtUp,
    /// The time budget ran out first.
    BudgetSpent,
    /// Another runner holds the subscription.
    Busy,
    /// The subscription is stopped or failed (it was, before this drain).
    Inactive(State),
    /// This drain hit a poison event and stopped the subscription.
    Failed {
        /// What was recorded in `last_error`.
        error: String,
    },
    /// A transient error persisted until the budget ran out.
    Error {
        /// The last error.
        error: String,
    },
}

/// One subscription's part of a [`Runner::drain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainReport {
    /// The subscription.
    pub name: String,
    /// Events applied (committed) during the drain.
    pub applied: u64,
    /// How it ended.
    pub outcome: DrainOutcome,
}

/// Runs subscriptions; see the module documentation.
pub struct Runner {
    pool: PgPool,
    vault: Option<Arc<Vault>>,
    subscriptions: Vec<Box<dyn Subscription>>,
    config: RunnerConfig,
}

impl Runner {
    /// A runner with no subscriptions yet, over `pool` (the projector role). Each
    /// subscription holds a lock connection outside the pool, and, while following, a
    /// listener connection from it, so size the pool at two or more per subscription.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            vault: None,
            subscriptions: Vec::new(),
            config: RunnerConfig::default(),
        }
    }

    /// Opens the events' sealed fields with `vault` before any subscription sees them.
    pub fn with_vault(self, vault: Option<Arc<Vault>>) -> Self {
        Self { vault, ..self }
    }

    /// Adds the live projections `ids` (e.g. [`ProjectionId::ALL`]).
    pub fn with_projections(mut self, ids: impl IntoIterator<Item = ProjectionId>) -> Self {
        for id in ids {
            self.subscriptions.push(Box::new(id.subscription()));
        }
        self
    }

    /// Adds any subscription (the relay, a process manager, a test's wrapper).
    pub fn with_subscription(mut self, subscription: impl Subscription + 'static) -> Self {
        self.subscriptions.push(Box::new(subscription));
        self
    }

    /// Replaces the pacing.
    pub fn with_config(self, config: RunnerConfig) -> Self {
        Self { config, ..self }
    }

    /// Follows the log with every subscription until `shutdown` resolves, then lets each
    /// finish its batch in flight and returns.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), RunError> {
        let (stop, stopped) = watch::channel(false);
        let (mut tasks, names) = self.spawn(None, stopped)?;
        let mut result = Ok(());
        tokio::pin!(shutdown);
        if tasks.is_empty() {
            shutdown.await;
            return result;
        }
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                joined = tasks.join_next() => match joined {
                    Some(Err(err)) => {
                        result = Err(panicked(&names, &err));
                        break;
                    }
                    Some(Ok(_)) => {}
                    None => break,
                },
            }
        }
        // A receiver still waiting means the send cannot fail; none left means nothing to stop.
        let _ = stop.send(true);
        while let Some(joined) = tasks.join_next().await {
            if let Err(err) = joined {
                result = Err(panicked(&names, &err));
            }
        }
        result
    }

    /// Applies what the log holds with every subscription (concurrently) until each is
    /// caught up or `budget` is spent, then logs each one's lag and returns. A batch in flight
    /// when the budget runs out is finished, so leave a batch's time of slack.
    pub async fn drain(self, budget: Duration) -> Result<Vec<DrainReport>, RunError> {
        let deadline = Instant::now() + budget;
        let pool = self.pool.clone();
        let (_stop, stopped) = watch::channel(false);
        let (mut tasks, names) = self.spawn(Some(deadline), stopped)?;
        let mut reports = Vec::with_capacity(names.len());
        while let Some(joined) = tasks.join_next().await {
            reports.push(joined.map_err(|err| panicked(&names, &err))?);
        }
        reports.sort_by(|a, b| a.name.cmp(&b.name));
        match pool.acquire().await {
            Ok(mut conn) => {
                for report in &reports {
                    report_lag(&mut conn, &report.name).await;
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot read projection lag"),
        }
        Ok(reports)
    }

    fn spawn(
        self,
        deadline: Option<Instant>,
        stopped: watch::Receiver<bool>,
    ) -> Result<(JoinSet<DrainReport>, HashMap<tokio::task::Id, String>), RunError> {
        let mut seen = HashSet::new();
        for subscription in &self.subscriptions {
            if !seen.insert(subscription.name().to_owned()) {
                return Err(RunError::DuplicateName(subscription.name().to_owned()));
            }
        }
        let reader = LogReader::new(self.pool.clone())
            .with_vault(self.vault.clone())
            .with_page_size(u32::try_from(self.config.batch_size).unwrap_or(u32::MAX))
            .with_poll_interval(self.config.poll_interval)
            .with_settle_interval(self.config.settle_interval);
        let mut tasks = JoinSet::new();
        let mut names = HashMap::new();
        for subscription in self.subscriptions {
            let name = subscription.name().to_owned();
            let worker = Worker {
                name: name.clone(),
                subscription,
                pool: self.pool.clone(),
                reader: reader.clone(),
                config: self.config.clone(),
                deadline,
                applied: 0,
            };
            let handle = tasks.spawn(worker.run(stopped.clone()));
            names.insert(handle.id(), name);
        }
        Ok((tasks, names))
    }
}

fn panicked(names: &HashMap<tokio::task::Id, String>, err: &tokio::task::JoinError) -> RunError {
    let name = names.get(&err.id()).cloned().unwrap_or_default();
    tracing::error!(subscription = %name, error = %err, "subscription task panicked");
    RunError::Panicked { name }
}

/// How one locked session of a worker ended.
enum SessionEnd {
    Shutdown,
    CaughtUp,
    Deadline,
    Busy,
    Inactive(State),
    Failed(String),
}

/// What became of a batch.
enum Batch {
    Applied(Checkpoint),
    /// The stored checkpoint or status is not what the batch assumed: re-read and restart.
    Moved,
}

/// One subscription's loop.
struct Worker {
    name: String,
    subscription: Box<dyn Subscription>,
    pool: PgPool,
    reader: LogReader,
    config: RunnerConfig,
    /// `None`: follow forever; `Some`: drain until then.
    deadline: Option<Instant>,
    applied: u64,
}

impl Worker {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> DrainReport {
        let mut backoff = self.config.initial_backoff;
        let mut last_inactive = None;
        let outcome = loop {
            let pause = match self.session(&mut shutdown, &mut backoff).await {
                Ok(SessionEnd::Shutdown) => break DrainOutcome::CaughtUp,
                Ok(SessionEnd::CaughtUp) => break DrainOutcome::CaughtUp,
                Ok(SessionEnd::Deadline) => break DrainOutcome::BudgetSpent,
                Ok(SessionEnd::Busy) if self.deadline.is_some() => break DrainOutcome::Busy,
                Ok(SessionEnd::Inactive(state)) if self.deadline.is_some() => {
                    break DrainOutcome::Inactive(state)
                }
                Ok(SessionEnd::Failed(error)) if self.deadline.is_some() => {
                    break DrainOutcome::Failed { error }
                }
                Ok(SessionEnd::Busy) => {
                    last_inactive = None;
                    tracing::debug!(subscription = %self.name, "another runner holds the subscription; standing by");
                    self.config.standby_interval
                }
                Ok(SessionEnd::Failed(_)) => {
                    last_inactive = Some(State::Failed);
                    self.config.standby_interval
                }
                Ok(SessionEnd::Inactive(state)) => {
                    if last_inactive != Some(state) {
                        tracing::warn!(subscription = %self.name, status = %state, "subscription is not running; waiting for it to be resumed");
                        last_inactive = Some(state);
                    }
                    self.config.standby_interval
                }
                Err(err) => {
                    last_inactive = None;
                    let error = report(&err);
                    tracing::warn!(subscription = %self.name, error = %error, transient = err.is_transient(), retry_in = ?backoff, "subscription failed; retrying");
                    if let Err(err) =
                        checkpoints::record_error(&self.pool, &self.name, &error).await
                    {
                        tracing::warn!(subscription = %self.name, error = %err, "cannot record the error");
                    }
                    if self.deadline.is_some_and(|d| Instant::now() + backoff >= d) {
                        break DrainOutcome::Error { error };
                    }
                    let pause = backoff;
                    backoff = (backoff * 2).min(self.config.max_backoff);
                    pause
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = stopped(&mut shutdown) => break DrainOutcome::CaughtUp,
            }
        };
        DrainReport {
            name: self.name,
            applied: self.applied,
            outcome,
        }
    }

    /// Takes the subscription's lock on a connection of its own and applies batches until
    /// something ends the session; the connection (and so the lock) goes with it.
    async fn session(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
        backoff: &mut Duration,
    ) -> Result<SessionEnd, ApplyError> {
        let mut conn = self.pool.acquire().await?.detach();
        let end = self.locked(&mut conn, shutdown, backoff).await;
        // Release the lock at once when the connection still works (a standby runner, or
        // this one's next session, may take it right away); closing releases it anyway.
        if end.is_ok() {
            if let Err(err) = checkpoints::unlock_all(&mut conn).await {
                tracing::debug!(subscription = %self.name, error = %err, "cannot release the lock; closing");
            }
        }
        if tokio::time::timeout(Duration::from_secs(1), conn.close())
            .await
            .is_err()
        {
            tracing::debug!(subscription = %self.name, "closing the lock connection timed out");
        }
        end
    }

    async fn locked(
        &mut self,
        conn: &mut PgConnection,
        shutdown: &mut watch::Receiver<bool>,
        backoff: &mut Duration,
    ) -> Result<SessionEnd, ApplyError> {
        if !checkpoints::try_lock(conn, &self.name).await? {
            return Ok(SessionEnd::Busy);
        }
        checkpoints::ensure(conn, &self.name, State::Running).await?;
        let expiry = until(self.deadline);
        tokio::pin!(expiry);
        let mut lag_timer = tokio::time::interval(self.config.lag_interval);
        lag_timer.tick().await;
        loop {
            let Some((mut checkpoint, state)) = checkpoints::get(conn, &self.name).await? else {
                return Err(ApplyError::permanent("the subscription's row disappeared"));
            };
            if state != State::Running {
                return Ok(SessionEnd::Inactive(state));
            }
            let events = match self.deadline {
                None => self.reader.follow(checkpoint, Scope::All).boxed(),
                Some(_) => self.reader.catch_up(checkpoint, Scope::All).boxed(),
            };
            let mut batches = events.ready_chunks(self.config.batch_size);
            loop {
                let chunk = tokio::select! {
                    biased;
                    () = stopped(shutdown) => return Ok(SessionEnd::Shutdown),
                    () = &mut expiry => return Ok(SessionEnd::Deadline),
                    _ = lag_timer.tick() => {
                        report_lag(conn, &self.name).await;
                        continue;
                    }
                    chunk = batches.next() => chunk,
                };
                let Some(chunk) = chunk else {
                    return Ok(SessionEnd::CaughtUp);
                };
                let events = chunk
                    .into_iter()
                    .collect::<Result<Vec<RecordedEvent>, _>>()
                    .map_err(|err| ApplyError::Transient(Box::new(err)))?;
                match self.apply(conn, checkpoint, &events).await {
                    Ok(Batch::Applied(to)) => {
                        tracing::debug!(subscription = %self.name, events = events.len(), position = to.global_position, "applied a batch");
                        checkpoint = to;
                        self.applied += events.len() as u64;
                        *backoff = self.config.initial_backoff;
                    }
                    Ok(Batch::Moved) => break,
                    Err(err) if err.is_transient() => return Err(err),
                    Err(_) => match self.isolate(conn, checkpoint, &events).await? {
                        Some(end) => return Ok(end),
                        None => break,
                    },
                }
            }
        }
    }

    /// Applies `events`, which follow `expected`, and moves the checkpoint past them, in one
    /// transaction.
    async fn apply(
        &mut self,
        conn: &mut PgConnection,
        expected: Checkpoint,
        events: &[RecordedEvent],
    ) -> Result<Batch, ApplyError> {
        let Some(last) = events.last() else {
            return Ok(Batch::Applied(expected));
        };
        let mut tx = conn.begin().await?;
        match checkpoints::lock(&mut tx, &self.name).await? {
            Some((stored, State::Running)) if stored == expected => {}
            _ => {
                tx.rollback().await?;
                return Ok(Batch::Moved);
            }
        }
        let applied = match self.subscription.apply(&mut tx, events).await {
            Ok(()) => checkpoints::advance(&mut tx, &self.name, last.checkpoint)
                .await
                .map_err(ApplyError::from),
            Err(err) => Err(err),
        };
        match applied {
            Ok(()) => {
                tx.commit().await?;
                Ok(Batch::Applied(last.checkpoint))
            }
            Err(err) => {
                if let Err(rollback) = tx.rollback().await {
                    tracing::warn!(subscription = %self.name, error = %rollback, "rollback failed");
                }
                Err(err)
            }
        }
    }

    /// After a permanent failure of a batch: applies its events one per transaction, and
    /// stops the subscription at the first that fails permanently. `None` when every event
    /// applied on its own (or the checkpoint moved meanwhile): carry on reading.
    async fn isolate(
        &mut self,
        conn: &mut PgConnection,
        mut checkpoint: Checkpoint,
        events: &[RecordedEvent],
    ) -> Result<Option<SessionEnd>, ApplyError> {
        for event in events {
            match self
                .apply(conn, checkpoint, std::slice::from_ref(event))
                .await
            {
                Ok(Batch::Applied(to)) => {
                    checkpoint = to;
                    self.applied += 1;
                }
                Ok(Batch::Moved) => return Ok(None),
                Err(err) if err.is_transient() => return Err(err),
                Err(err) => {
                    let error = format!("event {}: {}", describe(event), report(&err));
                    checkpoints::mark_failed(conn, &self.name, &error).await?;
                    tracing::error!(subscription = %self.name, position = event.global_position(), error = %error, "poison event: subscription stopped");
                    return Ok(Some(SessionEnd::Failed(error)));
                }
            }
        }
        Ok(None)
    }
}

/// Resolves at `deadline`, or never.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => pending().await,
    }
}

/// Resolves once `shutdown` says stop (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: nobody can ask to stop any more, so stop.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Reports subscription `name`'s lag (see [`status::report_lag`]).
async fn report_lag(conn: &mut PgConnection, name: &str) {
    match status_of(conn, name).await {
        Ok(Some(found)) => status::report_lag(&found),
        Ok(None) => {}
        Err(err) => {
            tracing::warn!(subscription = %name, error = %err, "cannot read projection lag")
        }
    }
}
