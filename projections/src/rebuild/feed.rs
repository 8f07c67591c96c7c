//! The build loop every rebuild shares — the read models' shadow tables
//! ([`Rebuild`](super::Rebuild)) and the judgment index's green generation
//! ([`IndexRebuild`](crate::judgment_index::IndexRebuild)): the log read and decoded once, a
//! batch ahead of the writers; each [`Part`] applying the batches on a connection of its own,
//! concurrently, committing each batch with the part's checkpoint row; progress reported as
//! batches complete; a build stopped or killed half way resumed from each part's checkpoint.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use casebook_vault::Vault;
use futures::StreamExt;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use uuid::Uuid;

use super::{BuildOutcome, RebuildError, RebuildProgress};
use crate::checkpoints::{self, TX_PARAM};
use crate::decoded::{describe, DecodedEvent};
use crate::error::ApplyError;
use crate::log::{Checkpoint, LogReader, Scope};

/// What a part of a rebuild applies decoded batches with, inside the caller's transaction.
#[async_trait]
pub(crate) trait Writer: Send + Sync {
    /// Applies `events` (in reading order) through `conn`.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[DecodedEvent],
    ) -> Result<(), ApplyError>;
}

/// One writer of a build, with where it stands.
pub(crate) struct Part {
    /// The live subscription it rebuilds: its checkpoint bounds a one-tenant build, and its
    /// name is the one errors give.
    pub(crate) live: String,
    /// The rebuild's checkpoint row.
    pub(crate) row: String,
    /// What it applies batches with.
    pub(crate) writer: Arc<dyn Writer>,
    /// The last event it applied.
    pub(crate) checkpoint: Checkpoint,
}

/// Where a build reads the log from, and how.
#[derive(Debug, Clone)]
pub(crate) struct Feed {
    pool: PgPool,
    vault: Option<Arc<Vault>>,
    batch_size: usize,
    tenant: Option<Uuid>,
}

impl Feed {
    /// The log through `pool` (sealed fields opened with `vault`), `tenant`'s events or
    /// every tenant's, `batch_size` events per transaction (and per page read).
    pub(crate) fn new(
        pool: PgPool,
        vault: Option<Arc<Vault>>,
        batch_size: usize,
        tenant: Option<Uuid>,
    ) -> Self {
        Self {
            pool,
            vault,
            batch_size: batch_size.max(1),
            tenant,
        }
    }

    fn reader(&self) -> LogReader {
        LogReader::new(self.pool.clone()).with_vault(self.vault.clone())
    }

    fn scope(&self) -> Scope {
        match self.tenant {
            None => Scope::All,
            Some(tenant) => Scope::Tenant(tenant),
        }
    }

    fn page_size(&self) -> u32 {
        u32::try_from(self.batch_size).unwrap_or(u32::MAX)
    }

    /// A connection of its own holding the advisory lock of each of `names` (the rebuild's
    /// checkpoint rows): [`RebuildError::Busy`] when another process holds one.
    pub(crate) async fn session(&self, names: &[String]) -> Result<PgConnection, RebuildError> {
        let mut conn = self.pool.acquire().await?.detach();
        for name in names {
            if !checkpoints::try_lock(&mut conn, name).await? {
                end_session(conn).await;
                return Err(RebuildError::Busy(name.clone()));
            }
        }
        Ok(conn)
    }

    /// Applies the log after the earliest part's checkpoint to every part, up to the head of
    /// the log (a one-tenant build: up to the earliest live checkpoint of the parts), or until
    /// `stop` resolves. `session` is the connection [`Feed::session`] returned; the pool
    /// needs a connection per part plus two.
    pub(crate) async fn build(
        &self,
        session: &mut PgConnection,
        parts: Vec<Part>,
        stop: impl Future<Output = ()>,
        mut progress: impl FnMut(&RebuildProgress),
    ) -> Result<BuildOutcome, RebuildError> {
        let from = parts
            .iter()
            .map(|p| p.checkpoint)
            .min()
            .unwrap_or(Checkpoint::START);
        let live: Vec<String> = parts.iter().map(|p| p.live.clone()).collect();
        let total = count_between(session, from, None, self.tenant).await?;
        let started = Instant::now();
        tracing::info!(parts = ?live, tenant = ?self.tenant, from = ?from, total, "rebuild started");

        let (acks_sender, mut acks) = mpsc::unbounded_channel();
        let mut feeds = Vec::with_capacity(parts.len());
        let mut workers = JoinSet::new();
        for (index, part) in parts.into_iter().enumerate() {
            let (feed, batches) = mpsc::channel(2);
            feeds.push(feed);
            workers.spawn(apply_part(
                index,
                part,
                self.pool.clone(),
                batches,
                acks_sender.clone(),
            ));
        }
        drop(acks_sender);

        let mut batches = self.decoded_batches(from);
        let mut outcome = BuildOutcome {
            resumed_from: from,
            checkpoint: from,
            applied: 0,
            caught_up: false,
        };
        // Batches handed out (their size and last checkpoint), and how many each part has
        // committed: a batch counts as applied once every part has committed it.
        let mut dispatched: Vec<(u64, Checkpoint)> = Vec::new();
        let mut committed = vec![0_usize; feeds.len()];
        let mut reported = 0;
        let mut feeding = true;
        tokio::pin!(stop);
        let result = loop {
            tokio::select! {
                biased;
                ack = acks.recv() => match ack {
                    Some((_, Err(err))) => break Err(err),
                    Some((index, Ok(()))) => {
                        committed[index] += 1;
                        let done = committed.iter().copied().min().unwrap_or(0);
                        while reported < done {
                            let (size, checkpoint) = dispatched[reported];
                            reported += 1;
                            outcome.applied += size;
                            outcome.checkpoint = checkpoint;
                            progress(&RebuildProgress {
                                applied: outcome.applied,
                                total,
                                checkpoint,
                                elapsed: started.elapsed(),
                            });
                        }
                    }
                    // Every part has finished its feed.
                    None => break Ok(()),
                },
                () = &mut stop, if feeding => {
                    feeding = false;
                    feeds.clear();
                }
                batch = batches.recv(), if feeding => {
                    let Some(batch) = batch else {
                        outcome.caught_up = true;
                        feeding = false;
                        feeds.clear();
                        continue;
                    };
                    let mut batch = match batch {
                        Ok(batch) => batch,
                        Err(err) => break Err(err),
                    };
                    if self.tenant.is_some() {
                        let floor = match live_floor(session, &live).await {
                            Ok(floor) => floor,
                            Err(err) => break Err(err),
                        };
                        let keep = batch.partition_point(|e| e.checkpoint <= floor);
                        if keep < batch.len() {
                            batch.truncate(keep);
                            outcome.caught_up = true;
                            feeding = false;
                        }
                    }
                    if let Some(last) = batch.last() {
                        dispatched.push((batch.len() as u64, last.checkpoint));
                        let batch = Arc::new(batch);
                        for feed in &feeds {
                            // A part that stopped has reported why on `acks`.
                            let _ = feed.send(batch.clone()).await;
                        }
                    }
                    if !feeding {
                        feeds.clear();
                    }
                }
            }
        };
        if result.is_err() {
            workers.abort_all();
        }
        while let Some(joined) = workers.join_next().await {
            if let Err(err) = joined {
                if err.is_panic() {
                    std::panic::resume_unwind(err.into_panic());
                }
            }
        }
        result?;
        tracing::info!(applied = outcome.applied, caught_up = outcome.caught_up, elapsed = ?started.elapsed(), "rebuild build ended");
        Ok(outcome)
    }

    /// Reads and decodes the log after `from` in the feed's scope on a task of its own, a
    /// batch ahead of the writers.
    fn decoded_batches(
        &self,
        from: Checkpoint,
    ) -> mpsc::Receiver<Result<Vec<DecodedEvent>, RebuildError>> {
        let reader = self.reader().with_page_size(self.page_size());
        let mut pages = reader
            .catch_up(from, self.scope())
            .ready_chunks(self.batch_size);
        let (sender, receiver) = mpsc::channel(2);
        tokio::spawn(async move {
            while let Some(page) = pages.next().await {
                let batch = page
                    .into_iter()
                    .map(|event| decode(&event?))
                    .collect::<Result<Vec<_>, _>>();
                let failed = batch.is_err();
                if sender.send(batch).await.is_err() || failed {
                    return;
                }
            }
        });
        receiver
    }

    /// Applies the scope's events in `(from, to]` with `writer` (rebuilding `live`) through
    /// `conn`, inside the caller's transaction: a swap catching its rebuild up with the live
    /// subscription it holds still.
    pub(crate) async fn catch_up(
        &self,
        conn: &mut PgConnection,
        live: &str,
        writer: &dyn Writer,
        from: Checkpoint,
        to: Checkpoint,
    ) -> Result<(), RebuildError> {
        let reader = self.reader();
        let mut after = from;
        while after < to {
            let page = reader
                .read_page(after, self.scope(), self.page_size())
                .await?;
            let keep: Vec<_> = page.iter().take_while(|e| e.checkpoint <= to).collect();
            let Some(last) = keep.last() else { break };
            after = last.checkpoint;
            let events = keep
                .iter()
                .map(|event| decode(event))
                .collect::<Result<Vec<_>, _>>()?;
            writer
                .apply(conn, &events)
                .await
                .map_err(|source| RebuildError::Apply {
                    subscription: live.to_owned(),
                    source,
                })?;
        }
        Ok(())
    }
}

fn decode(event: &crate::log::RecordedEvent) -> Result<DecodedEvent, RebuildError> {
    DecodedEvent::decode(event).map_err(|source| RebuildError::Decode {
        event: describe(event),
        source,
    })
}

/// Releases a session's advisory locks at once (closing alone leaves them to the server's
/// own pace, and the caller may lock again right away), then closes it.
pub(crate) async fn end_session(mut conn: PgConnection) {
    if let Err(err) = checkpoints::unlock_all(&mut conn).await {
        tracing::debug!(error = %err, "cannot release the rebuild's locks; closing");
    }
    let _ = conn.close().await;
}

/// The earliest checkpoint of the live subscriptions `names` (the log's start for one
/// without a row).
async fn live_floor(conn: &mut PgConnection, names: &[String]) -> Result<Checkpoint, RebuildError> {
    let mut floor: Option<Checkpoint> = None;
    for name in names {
        let live = checkpoints::get(conn, name)
            .await?
            .map_or(Checkpoint::START, |(cp, _)| cp);
        floor = Some(floor.map_or(live, |f| f.min(live)));
    }
    Ok(floor.unwrap_or(Checkpoint::START))
}

/// Applies the batches of `feed` to one part, each in a transaction that also moves the
/// part's checkpoint row (only the events after that checkpoint: a resumed build re-reads
/// from the earliest part). Reports each batch, or the error that stops it, on `acks`.
async fn apply_part(
    index: usize,
    mut part: Part,
    pool: PgPool,
    mut feed: mpsc::Receiver<Arc<Vec<DecodedEvent>>>,
    acks: mpsc::UnboundedSender<(usize, Result<(), RebuildError>)>,
) {
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(err) => {
            let _ = acks.send((index, Err(err.into())));
            return;
        }
    };
    while let Some(batch) = feed.recv().await {
        let start = batch.partition_point(|e| e.checkpoint <= part.checkpoint);
        let result = match batch[start..].last() {
            None => Ok(()),
            Some(last) => {
                let last = last.checkpoint;
                let applied = apply_in_transaction(&mut conn, &part, &batch[start..], last).await;
                if applied.is_ok() {
                    part.checkpoint = last;
                }
                applied
            }
        };
        let failed = result.is_err();
        if acks.send((index, result)).is_err() || failed {
            return;
        }
    }
}

async fn apply_in_transaction(
    conn: &mut PgConnection,
    part: &Part,
    events: &[DecodedEvent],
    last: Checkpoint,
) -> Result<(), RebuildError> {
    let mut tx = conn.begin().await?;
    part.writer
        .apply(&mut tx, events)
        .await
        .map_err(|source| RebuildError::Apply {
            subscription: part.live.clone(),
            source,
        })?;
    checkpoints::advance(&mut tx, &part.row, last).await?;
    tx.commit().await?;
    Ok(())
}

/// Events after `from` (up to and including `to`, when given), of `tenant` when given.
pub(crate) async fn count_between(
    conn: &mut PgConnection,
    from: Checkpoint,
    to: Option<Checkpoint>,
    tenant: Option<Uuid>,
) -> Result<u64, RebuildError> {
    let to = to.unwrap_or(Checkpoint {
        transaction_id: i64::MAX,
        global_position: i64::MAX,
    });
    let count: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM events
          WHERE (transaction_id, global_position) > ($1{TX_PARAM}, $2)
            AND (transaction_id, global_position) <= ($3{TX_PARAM}, $4)
            AND ($5::uuid IS NULL OR tenant_id = $5)"
    ))
    .bind(from.transaction_id)
    .bind(from.global_position)
    .bind(to.transaction_id)
    .bind(to.global_position)
    .bind(tenant)
    .fetch_one(conn)
    .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}
