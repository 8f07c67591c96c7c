//! Group commit: the appends of concurrent commands share one statement and one commit.
//!
//! On a busy server most of an append's cost is per statement and per WAL flush, not per row:
//! pgbench on this machine kind did 13.9 k single-row commits/s at 16 connections, and 30.7 k
//! rows/s as four-row commits at 8. So every append goes through a queue, and a writer appends
//! whatever has queued (up to `MAX_BATCH` = 32 streams) in one statement, with at most
//! `MAX_IN_FLIGHT` = 2 statements running at once. Nothing waits for a batch to fill: an idle
//! store writes each append at once, alone, and batches form only while earlier statements run
//! — under load, which is when sharing a commit pays.
//!
//! A batch commits or fails as a whole, and one member's conflict (or unacceptable event) must
//! not fail the others, so a batch that fails for a member's fault is written again member by
//! member, each getting its own answer. Any other failure (the database unreachable, say) is
//! every member's answer. Every member still appends at the sequences its own command was
//! handled against; the events' primary key remains the optimistic-concurrency check. Each
//! batch appends its streams in one order (by type and id), so two batches in flight that
//! contend for the same streams wait on each other in that order instead of deadlocking.
//!
//! Once queued, an append is written even if its caller stops waiting (a dropped request):
//! the outcome of a cancelled command was never promised either way, and the others in its
//! batch must not depend on it.
//!
//! A batch's statement runs as the request path's role in a transaction scoped to the tenants
//! of its members (row-level security checks every row it appends, and its `RETURNING`, against
//! them): one more round trip to begin and one to commit, where the statement alone committed
//! itself before.
//!
//! A command that finds the store idle — nothing queued, no batch being written — goes
//! without the queue (`Alone`): it reads its stream and appends in one transaction of its
//! own, on its own task, with one connection: begin, read, append, commit, the round trips of
//! a raw read-and-append. Through the queue the same command costs a read-only transaction
//! (its commit is a round trip), a hand-off to the writer and back (two task wake-ups), a
//! second transaction's begin, and a second connection checkout (sqlx pings each connection
//! it takes back, and at one connection the next checkout waits for that). A few commands may
//! be alone at once, a creation only when nothing else is (`Reading`); the others queue as
//! before, so under load batches form as they did. In Lambda, where an instance serves one
//! request at a time, every command goes alone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::StoreError;
use crate::postgres::{begin_for_tenants, Access};

/// Streams appended by one statement at most. Bounds the statement's size and the number of
/// commands that share a failure's retry.
const MAX_BATCH: usize = 32;
/// Append statements running at once. Measured through the API at 16 connections
/// (docs/benchmarks-history.md, "Group commit"): 1–2 in flight 5,900–8,100 commands/s, 3–4 5,000–6,800,
/// 8 4,400, 16 3,800. Of the best two, 2 keeps appends moving while one statement waits (on a
/// lock, say).
const MAX_IN_FLIGHT: usize = 2;
/// Appends waiting for a writer before senders wait too.
const QUEUE_CAPACITY: usize = 1024;
/// Commands reading and appending alone at once ([`Alone`]); others queue. Measured with the
/// `event_store` bench (docs/benchmarks-history.md, "The command path at low concurrency"):
/// commands at four connections did 0.91 of the raw command's rate with up to four alone and
/// 0.78 with one; at sixteen, sixteen alone did 0.91 and four 1.06 (the rest in batches).
const MAX_ALONE: usize = 4;

/// Inserts any number of streams' events; answers their global positions, which are assigned
/// in insertion order, so in the order of the arrays (sorted, they are the events' in turn).
macro_rules! insert_events {
    () => {
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
    SELECT e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version, e.payload, e.metadata
      FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[])
           WITH ORDINALITY
           AS e(aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, n)
     ORDER BY e.n
    RETURNING global_position"
    };
}

/// Appends events when no snapshot is due (19 appends in 20): the snapshots' part of
/// [`APPEND_STREAMS`] costs its executor even with nothing to write, 20–25 µs of a lone
/// command's ~0.5 ms.
const APPEND_EVENTS: &str = insert_events!();

/// Appends any number of streams' events, with their snapshots, in one statement.
const APPEND_STREAMS: &str = concat!(
    "WITH appended AS (",
    insert_events!(),
    "), snapshot AS (
    INSERT INTO snapshots (tenant_id, aggregate_type, aggregate_id, last_sequence, current_snapshot, payload)
    SELECT s.tenant_id, s.aggregate_type, s.aggregate_id, s.last_sequence, 1, s.payload
      FROM UNNEST($8::uuid[], $9::text[], $10::text[], $11::bigint[], $12::jsonb[])
           AS s(tenant_id, aggregate_type, aggregate_id, last_sequence, payload)
    ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
       SET last_sequence = EXCLUDED.last_sequence,
           current_snapshot = snapshots.current_snapshot + 1,
           payload = EXCLUDED.payload,
           updated_at = now()
     WHERE snapshots.last_sequence < EXCLUDED.last_sequence
)
SELECT global_position FROM appended"
);

/// One event of a [`StreamAppend`], serialized.
pub(super) struct NewEvent {
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
}

/// One command's events for one stream, and the stream's snapshot when one is due.
pub(super) struct StreamAppend {
    /// The tenant of the stream (every event's metadata names it).
    pub tenant: Uuid,
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    pub events: Vec<NewEvent>,
    /// The last sequence folded in, and the state.
    pub snapshot: Option<(i64, Value)>,
}

struct Pending {
    append: StreamAppend,
    /// The events' global positions, in sequence order.
    reply: oneshot::Sender<Result<Vec<i64>, StoreError>>,
}

/// The queue in front of the event store's appends (see [`crate::event_store::group_commit`]).
/// Clones share the queue, so the stores of every aggregate type can batch together.
#[derive(Clone)]
pub struct Appender {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    /// The writer's queue. The writer is started by an append, on that append's runtime, and
    /// again by the next append if that runtime has shut down since.
    queue: Mutex<Option<mpsc::Sender<Pending>>>,
    /// Batches taken from the queue and not yet written.
    batches_in_flight: Arc<AtomicUsize>,
    /// Permits of the commands going alone.
    alone: Arc<Semaphore>,
}

impl Appender {
    /// Appends through `pool`, whose connections it shares with the stores' reads.
    pub fn new(pool: PgPool) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                queue: Mutex::new(None),
                batches_in_flight: Arc::new(AtomicUsize::new(0)),
                alone: Arc::new(Semaphore::new(MAX_ALONE)),
            }),
        }
    }

    pub(super) fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Appends one stream's events, possibly in a statement shared with other commands';
    /// answers with the events' global positions.
    pub(super) async fn append(&self, append: StreamAppend) -> Result<Vec<i64>, StoreError> {
        if let Some(alone) = self.alone(Reading::No, append.tenant).await? {
            return alone.append(append).await;
        }
        let (reply, answer) = oneshot::channel();
        self.queue()
            .send(Pending { append, reply })
            .await
            .map_err(|_| writer_gone())?;
        answer.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    /// A transaction of `tenant`'s for one command to read and append in, if the store is
    /// idle enough for `reading`; `None` when the command's append is to join a batch.
    pub(super) async fn alone(
        &self,
        reading: Reading,
        tenant: Uuid,
    ) -> Result<Option<Alone>, StoreError> {
        let others_alone = MAX_ALONE - self.inner.alone.available_permits();
        let idle = self.inner.batches_in_flight.load(Ordering::Acquire) == 0
            && self.queue_is_empty()
            && (reading == Reading::Yes || others_alone == 0);
        let Some(permit) = idle
            .then(|| self.inner.alone.clone().try_acquire_owned().ok())
            .flatten()
        else {
            return Ok(None);
        };
        let transaction = begin_for_tenants(&self.inner.pool, Access::ReadWrite, &[tenant]).await?;
        Ok(Some(Alone {
            transaction,
            tenant,
            _permit: permit,
        }))
    }

    fn queue_is_empty(&self) -> bool {
        let queue = self.inner.queue.lock().expect("appender queue poisoned");
        queue
            .as_ref()
            .is_none_or(|sender| sender.capacity() == sender.max_capacity())
    }

    fn queue(&self) -> mpsc::Sender<Pending> {
        let mut queue = self.inner.queue.lock().expect("appender queue poisoned");
        match &*queue {
            Some(sender) if !sender.is_closed() => sender.clone(),
            _ => queue
                .insert(start_writer(
                    self.inner.pool.clone(),
                    self.inner.batches_in_flight.clone(),
                ))
                .clone(),
        }
    }
}

/// Whether a command going alone reads its stream in its transaction before appending.
///
/// Alone, a command that reads saves a transaction (two round trips), a connection checkout
/// and the hand-off to the writer, so it goes alone while nothing is queued or being written,
/// up to [`MAX_ALONE`] at once. A creation's append costs the same round trips alone or
/// batched and saves only the hand-off, while a batch would share its commit, so it goes
/// alone only when nothing at all is under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reading {
    Yes,
    No,
}

/// One command's transaction when the store was idle (see the module's documentation): the
/// command reads its stream in it and appends in it, without the writer. Dropped uncommitted
/// (the command appended nothing), it rolls back.
pub(super) struct Alone {
    transaction: Transaction<'static, Postgres>,
    tenant: Uuid,
    _permit: OwnedSemaphorePermit,
}

impl Alone {
    /// The tenant whose rows the transaction sees and may append.
    pub(super) fn tenant(&self) -> Uuid {
        self.tenant
    }

    /// The transaction's connection, for the command's reads.
    pub(super) fn connection(&mut self) -> &mut PgConnection {
        &mut self.transaction
    }

    /// Appends one stream's events (of [`Self::tenant`]) and commits.
    pub(super) async fn append(mut self, append: StreamAppend) -> Result<Vec<i64>, StoreError> {
        let mut positions = append_streams_in(&mut self.transaction, &[&append]).await?;
        self.transaction.commit().await?;
        Ok(positions.swap_remove(0))
    }
}

/// One batch counted in `batches_in_flight` until dropped — also when its task is, with the
/// runtime it ran on, so a store that outlives a runtime does not count it forever.
struct BatchInFlight(Arc<AtomicUsize>);

impl BatchInFlight {
    fn count(batches_in_flight: &Arc<AtomicUsize>) -> Self {
        batches_in_flight.fetch_add(1, Ordering::AcqRel);
        Self(batches_in_flight.clone())
    }
}

impl Drop for BatchInFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The writer stopped (its runtime shut down) with the append queued or in flight: it may or
/// may not have been committed.
fn writer_gone() -> StoreError {
    StoreError::unexpected("the event store's writer stopped before answering".to_owned())
}

fn start_writer(pool: PgPool, batches_in_flight: Arc<AtomicUsize>) -> mpsc::Sender<Pending> {
    let (queue, mut pending) = mpsc::channel(QUEUE_CAPACITY);
    tokio::spawn(async move {
        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        loop {
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                return;
            };
            let mut batch = Vec::with_capacity(MAX_BATCH);
            if pending.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return; // every appender is gone
            }
            let counted = BatchInFlight::count(&batches_in_flight);
            let pool = pool.clone();
            tokio::spawn(async move {
                write(&pool, batch).await;
                drop((counted, permit));
            });
        }
    });
    queue
}

/// Appends the batch in one statement; if that fails for a member's fault, member by member.
async fn write(pool: &PgPool, mut batch: Vec<Pending>) {
    if batch.len() > 1 {
        batch.sort_unstable_by(|a, b| {
            (a.append.aggregate_type, &a.append.aggregate_id)
                .cmp(&(b.append.aggregate_type, &b.append.aggregate_id))
        });
        let appends: Vec<&StreamAppend> = batch.iter().map(|pending| &pending.append).collect();
        match append_streams(pool, &appends).await {
            Ok(positions) => {
                for (pending, positions) in batch.into_iter().zip(positions) {
                    // A caller that stopped waiting has nothing left to be told.
                    let _ = pending.reply.send(Ok(positions));
                }
                return;
            }
            Err(StoreError::Conflict | StoreError::InvalidEvent(_)) => {}
            Err(err) => {
                for pending in batch {
                    let _ = pending.reply.send(Err(err.clone()));
                }
                return;
            }
        }
    }
    // One statement at a time: this batch holds one of the writer's in-flight permits.
    for pending in batch {
        let answer = append_streams(pool, &[&pending.append])
            .await
            .map(|mut positions| positions.swap_remove(0));
        let _ = pending.reply.send(answer);
    }
}

/// Appends in one transaction scoped to the appends' tenants; for each append, its events'
/// global positions in sequence order.
async fn append_streams(
    pool: &PgPool,
    appends: &[&StreamAppend],
) -> Result<Vec<Vec<i64>>, StoreError> {
    let mut tenants: Vec<Uuid> = appends.iter().map(|append| append.tenant).collect();
    tenants.sort_unstable();
    tenants.dedup();
    let mut transaction = begin_for_tenants(pool, Access::ReadWrite, &tenants).await?;
    let positions = append_streams_in(&mut transaction, appends).await?;
    transaction.commit().await?;
    Ok(positions)
}

/// Runs [`APPEND_STREAMS`], or [`APPEND_EVENTS`] when no snapshot is due, on `connection`, in
/// a transaction scoped to the appends' tenants.
async fn append_streams_in(
    connection: &mut PgConnection,
    appends: &[&StreamAppend],
) -> Result<Vec<Vec<i64>>, StoreError> {
    let rows = appends.iter().map(|append| append.events.len()).sum();
    let mut types = Vec::with_capacity(rows);
    let mut ids = Vec::with_capacity(rows);
    let mut sequences = Vec::with_capacity(rows);
    let mut event_types = Vec::with_capacity(rows);
    let mut versions = Vec::with_capacity(rows);
    let mut payloads = Vec::with_capacity(rows);
    let mut metadata = Vec::with_capacity(rows);
    let mut snapshot_tenants = Vec::new();
    let mut snapshot_types = Vec::new();
    let mut snapshot_ids = Vec::new();
    let mut snapshot_sequences = Vec::new();
    let mut snapshot_payloads = Vec::new();
    for append in appends {
        for event in &append.events {
            types.push(append.aggregate_type);
            ids.push(append.aggregate_id.as_str());
            sequences.push(event.sequence);
            event_types.push(event.event_type.as_str());
            versions.push(event.event_version.as_str());
            payloads.push(&event.payload);
            metadata.push(&event.metadata);
        }
        if let Some((sequence, state)) = &append.snapshot {
            snapshot_tenants.push(append.tenant);
            snapshot_types.push(append.aggregate_type);
            snapshot_ids.push(append.aggregate_id.as_str());
            snapshot_sequences.push(*sequence);
            snapshot_payloads.push(state);
        }
    }
    let snapshot_due = !snapshot_ids.is_empty();
    let statement = if snapshot_due {
        APPEND_STREAMS
    } else {
        APPEND_EVENTS
    };
    let query = sqlx::query_scalar(statement)
        .bind(types)
        .bind(ids)
        .bind(sequences)
        .bind(event_types)
        .bind(versions)
        .bind(payloads)
        .bind(metadata);
    let query = if snapshot_due {
        query
            .bind(snapshot_tenants)
            .bind(snapshot_types)
            .bind(snapshot_ids)
            .bind(snapshot_sequences)
            .bind(snapshot_payloads)
    } else {
        query
    };
    let mut positions: Vec<i64> = query.fetch_all(&mut *connection).await?;
    positions.sort_unstable();
    if positions.len() != rows {
        return Err(StoreError::unexpected(format!(
            "{} of {rows} events reported appended",
            positions.len()
        )));
    }
    // The positions follow the arrays: each append's events in turn, in sequence order.
    let mut positions = positions.into_iter();
    Ok(appends
        .iter()
        .map(|append| positions.by_ref().take(append.events.len()).collect())
        .collect())
}
