//! The access log's writer: the API hands each request's [`AccessRecord`] to a bounded queue
//! and goes on answering; one task per process gathers what queues up for a few milliseconds
//! and appends it in one transaction (`casebook_projections::access_log::append`). So a read
//! waits for no write, and under load the batches grow instead of the transactions
//! multiplying.
//!
//! Nothing is lost on a graceful stop: [`AccessLog::drain`] returns once every record queued
//! before it is stored — `casebook serve` drains after its last request, the `api` Lambda
//! after each invocation (Lambda freezes the process once the answer is out). What cannot be
//! queued (the queue is full: the database is slower than the requests) or stored (the
//! database refused every attempt) is counted, in the `AccessRecordsDropped` metric and in
//! [`AccessLog::dropped`], and logged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use casebook_adapters::config::ConfigError;
use casebook_adapters::postgres::{begin_for_tenants, Access};
use casebook_projections::access_log::{self, AccessRecord};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use uuid::Uuid;

/// The access log's settings: `CASEBOOK_ACCESS_LOG` (`on`, the default, or `off`: no records
/// at all, for a benchmark's baseline) and `CASEBOOK_ACCESS_LOG_QUEUE` (records waiting to be
/// written, at most; default [`AccessLogSettings::DEFAULT_QUEUE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessLogSettings {
    /// Whether requests are recorded.
    pub enabled: bool,
    /// The queue's capacity.
    pub queue: usize,
}

impl Default for AccessLogSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            queue: Self::DEFAULT_QUEUE,
        }
    }
}

impl AccessLogSettings {
    /// A few seconds of a busy API's requests: enough to ride out a slow commit, little
    /// enough memory (a record is a few hundred bytes) to hold while the database is down.
    pub const DEFAULT_QUEUE: usize = 10_000;

    /// Reads the variables through `lookup` (an empty one counts as unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let enabled = match lookup("CASEBOOK_ACCESS_LOG").as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "CASEBOOK_ACCESS_LOG",
                    reason: format!("{other:?} is neither `on` nor `off`"),
                })
            }
        };
        let queue = match lookup("CASEBOOK_ACCESS_LOG_QUEUE") {
            None => Self::DEFAULT_QUEUE,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|queue| *queue >= 1)
                .ok_or_else(|| ConfigError::Invalid {
                    name: "CASEBOOK_ACCESS_LOG_QUEUE",
                    reason: format!("{text:?} is not a positive number of records"),
                })?,
        };
        Ok(Self { enabled, queue })
    }
}

/// The records one transaction writes, at most: bounds a batch's statement (13 arrays)
/// and how long a tenant's chain stays locked. A queue smaller than this is also the batch's
/// bound, so the writer never holds more records than the queue would.
const BATCH: usize = 1_000;

/// How long the writer waits for a batch to fill once its first record came: at a few
/// thousand requests a second, a transaction per tens of records instead of per few, whose
/// round trips cost the reads on the same cores about a fifth of their p99
/// (docs/benchmarks-history.md, "HTTP reads"). A drain writes at once.
const LINGER: Duration = Duration::from_millis(20);

/// Attempts to store a batch before its records are counted as dropped.
const ATTEMPTS: u32 = 3;

/// The name of the metric counting records never stored.
pub const DROPPED_METRIC: &str = "AccessRecordsDropped";

// Nearly every item is a record: boxing them would allocate once more per request.
#[allow(clippy::large_enum_variant)]
enum Item {
    Record(AccessRecord),
    /// Answered once every record queued before it is stored or counted as dropped.
    Drained(oneshot::Sender<()>),
}

/// A handle on the process's access-log writer; clones share it.
#[derive(Clone)]
pub struct AccessLog {
    queue: mpsc::Sender<Item>,
    dropped: Arc<AtomicU64>,
    drain_each_request: bool,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("capacity", &self.queue.max_capacity())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl AccessLog {
    /// Starts the writer on the current runtime, writing through `pool` (the request path's:
    /// each batch a transaction as `casebook_app` scoped to its tenants) from a queue of
    /// `queue` records. It stops once every handle is dropped and the queue is written.
    pub fn start(pool: PgPool, queue: usize) -> Self {
        let queue = queue.max(1);
        let (sender, receiver) = mpsc::channel(queue);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(write(pool, receiver, BATCH.min(queue), dropped.clone()));
        Self {
            queue: sender,
            dropped,
            drain_each_request: false,
        }
    }

    /// The same writer, drained before each answer leaves (the router does it): for a process
    /// frozen between requests (Lambda), where a queued record would wait for the next one.
    pub fn draining_each_request(self) -> Self {
        Self {
            drain_each_request: true,
            ..self
        }
    }

    /// Whether the router drains it after each request.
    pub fn drains_each_request(&self) -> bool {
        self.drain_each_request
    }

    /// Queues `record` without waiting; a full queue drops it, counted.
    pub fn record(&self, record: AccessRecord) {
        if let Err(err) = self.queue.try_send(Item::Record(record)) {
            let why = match err {
                mpsc::error::TrySendError::Full(_) => "the queue is full",
                mpsc::error::TrySendError::Closed(_) => "the writer stopped",
            };
            tracing::warn!(why, "access record dropped");
            count_dropped(&self.dropped, 1);
        }
    }

    /// Returns once every record queued before the call is stored (or counted as dropped).
    pub async fn drain(&self) {
        let (done, drained) = oneshot::channel();
        // Waits for room: a drain is never dropped.
        if self.queue.send(Item::Drained(done)).await.is_ok() {
            // An error means the writer stopped, and with it anything left to wait for.
            let _ = drained.await;
        }
    }

    /// How many records this process dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn count_dropped(dropped: &AtomicU64, n: usize) {
    let n = u64::try_from(n).unwrap_or(u64::MAX);
    dropped.fetch_add(n, Ordering::Relaxed);
    metrics::counter!(DROPPED_METRIC).increment(n);
}

/// The writer: what queues up within [`LINGER`] of a batch's first record, up to `batch`
/// records, is one transaction; a drain writes what came before it at once.
async fn write(
    pool: PgPool,
    mut queue: mpsc::Receiver<Item>,
    batch: usize,
    dropped: Arc<AtomicU64>,
) {
    let mut items = Vec::with_capacity(batch);
    let mut records = Vec::with_capacity(batch);
    let mut deadline = Instant::now();
    loop {
        let received = if records.is_empty() {
            let received = queue.recv_many(&mut items, batch).await;
            deadline = Instant::now() + LINGER;
            received
        } else {
            let room = batch - records.len();
            match tokio::time::timeout_at(deadline, queue.recv_many(&mut items, room)).await {
                Ok(received) => received,
                Err(_) => {
                    store(&pool, &mut records, &dropped).await;
                    continue;
                }
            }
        };
        if received == 0 {
            // Every handle is gone: what is left is the last batch.
            store(&pool, &mut records, &dropped).await;
            return;
        }
        for item in items.drain(..) {
            match item {
                Item::Record(record) => records.push(record),
                Item::Drained(done) => {
                    store(&pool, &mut records, &dropped).await;
                    let _ = done.send(());
                }
            }
        }
        if records.len() >= batch {
            store(&pool, &mut records, &dropped).await;
        }
    }
}

/// Appends `records` (emptying it), retrying a failed transaction before giving them up.
async fn store(pool: &PgPool, records: &mut Vec<AccessRecord>, dropped: &AtomicU64) {
    if records.is_empty() {
        return;
    }
    let mut tenants: Vec<Uuid> = records.iter().map(|r| *r.tenant_id.as_uuid()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    for attempt in 1..=ATTEMPTS {
        match append(pool, &tenants, records).await {
            Ok(()) => {
                records.clear();
                return;
            }
            Err(err) if attempt < ATTEMPTS => {
                tracing::warn!(error = %err, attempt, "cannot store access records; retrying");
                tokio::time::sleep(Duration::from_millis(100) * 4u32.pow(attempt - 1)).await;
            }
            Err(err) => tracing::error!(
                error = %err,
                records = records.len(),
                "cannot store access records; dropping them"
            ),
        }
    }
    count_dropped(dropped, records.len());
    records.clear();
}

async fn append(
    pool: &PgPool,
    tenants: &[Uuid],
    records: &mut [AccessRecord],
) -> Result<(), sqlx::Error> {
    // Unflushed, like the other records kept beside the log (decision 0014): a crash loses
    // what was queued anyway, and this adds well under a second to that.
    let mut tx = begin_for_tenants(pool, Access::ReadWriteUnflushed, tenants).await?;
    access_log::append(&mut tx, records).await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<AccessLogSettings, ConfigError> {
        AccessLogSettings::from_lookup(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn the_access_log_is_on_unless_switched_off_and_its_queue_holds_at_least_one_record() {
        assert_eq!(settings(&[]).unwrap(), AccessLogSettings::default());
        let off = settings(&[("CASEBOOK_ACCESS_LOG", "off")]).unwrap();
        assert!(!off.enabled);
        let tiny = settings(&[("CASEBOOK_ACCESS_LOG_QUEUE", "1")]).unwrap();
        assert_eq!(tiny.queue, 1);
        for bad in [
            ("CASEBOOK_ACCESS_LOG", "yes"),
            ("CASEBOOK_ACCESS_LOG_QUEUE", "0"),
            ("CASEBOOK_ACCESS_LOG_QUEUE", "many"),
        ] {
            assert!(settings(&[bad]).is_err(), "{bad:?}");
        }
    }
}
