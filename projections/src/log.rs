//! The gap-safe reader of the global event log.
//!
//! Identity values are handed out at insert, but transactions commit in another order, so a
//! reader that remembers only "the last position I saw" can step over an event whose
//! transaction was still open. This reader orders by `(transaction_id, global_position)` and
//! only reads events of transactions older than the oldest one still running
//! (`pg_snapshot_xmin`): everything below that horizon is final, and nothing new can appear
//! below it.
//!
//! Given a [`Vault`] ([`LogReader::with_vault`]), the reader opens each page's sealed personal
//! fields with the keys of the subjects it names (decision 0027), fetched once per tenant and
//! page; the stored payload stays as it is for whatever hashes it (the audit chain).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use casebook_vault::payload::{self, EventContext};
use casebook_vault::{Vault, VaultError};

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use sqlx::postgres::{PgListener, PgRow};
use sqlx::{PgPool, Row};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

/// The `NOTIFY` channel the events table's insert trigger signals.
pub const EVENTS_CHANNEL: &str = "casebook_events";

/// A position in the global log: the last event a reader has consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Checkpoint {
    /// The appending transaction's id (`xid8`).
    pub transaction_id: i64,
    /// The event's identity value, unique across the log.
    pub global_position: i64,
}

impl Checkpoint {
    /// Before the first event.
    pub const START: Checkpoint = Checkpoint {
        transaction_id: 0,
        global_position: 0,
    };
}

/// One stored event with everything the store added to it.
///
/// Payload and metadata stay raw JSON text until a consumer asks for them in its own types:
/// parsing into a generic `Value` first would cost a second parse and most of the reader's
/// time.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    /// Where the event sits in the log.
    pub checkpoint: Checkpoint,
    /// The tenant the event belongs to.
    pub tenant_id: Uuid,
    /// e.g. `Diagnosis`.
    pub aggregate_type: String,
    /// The aggregate instance (a UUID string for Casebook's aggregates).
    pub aggregate_id: String,
    /// 1-based position within the aggregate's stream.
    pub sequence: i64,
    /// The event's variant name.
    pub event_type: String,
    /// The payload's schema version (upcast before deserializing older ones).
    pub event_version: String,
    /// The event body, as stored (personal fields sealed).
    pub payload: Box<RawValue>,
    /// The event body with its sealed fields opened (or redacted, their subject erased), when
    /// it has any and the reader was given the vault; see [`Self::payload`].
    pub opened: Option<serde_json::Value>,
    /// Whether a sealed field opened as its redaction: its subject is erased.
    pub redacted: bool,
    /// Actor, request, correlation and causation ids, source, tenant, as stored.
    pub metadata: Box<RawValue>,
    /// When the store accepted it.
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// The global position (unique, but not the reading order).
    pub fn global_position(&self) -> i64 {
        self.checkpoint.global_position
    }

    /// The payload deserialized into the consumer's type, its sealed fields opened.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match &self.opened {
            Some(opened) => T::deserialize(opened),
            None => serde_json::from_str(self.payload.get()),
        }
    }

    fn event_context(&self) -> EventContext<'_> {
        EventContext {
            tenant: self.tenant_id,
            aggregate_type: &self.aggregate_type,
            event_type: &self.event_type,
        }
    }

    /// The metadata deserialized into the consumer's type.
    pub fn metadata<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.metadata.get())
    }
}

/// Which part of the log to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every tenant's events.
    All,
    /// One tenant's events only.
    Tenant(Uuid),
}

/// A failure while reading the log. A stream yields it and then ends: it never ends
/// silently on an error.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The database failed the query or the connection.
    #[error("reading the event log failed")]
    Database(#[from] sqlx::Error),
    /// A stored payload or metadata column is not JSON (cannot happen for `jsonb`).
    #[error("stored event is not valid JSON")]
    Json(#[from] serde_json::Error),
    /// A sealed field does not open, or its keys could not be read.
    #[error("a sealed field does not open")]
    Sealed(#[from] VaultError),
}

/// One page of the log in reading order; `$filter` narrows it (the tenant variant gets its
/// own statement so its prepared plan can use the tenant index).
macro_rules! page_sql {
    ($filter:literal) => {
        concat!(
            "SELECT transaction_id::text::bigint AS transaction_number, global_position, tenant_id,
                    aggregate_type, aggregate_id, sequence, event_type, event_version,
                    payload::text AS payload, metadata::text AS metadata, recorded_at
               FROM events
              WHERE (transaction_id, global_position) > ($1::bigint::text::xid8, $2)
                AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) ",
            $filter,
            " ORDER BY transaction_id, global_position
              LIMIT $3"
        )
    };
}

const PAGE_ALL: &str = page_sql!("");
const PAGE_TENANT: &str = page_sql!("AND tenant_id = $4");

/// Reads the log in gap-safe order.
#[derive(Clone)]
pub struct LogReader {
    pool: PgPool,
    vault: Option<Arc<Vault>>,
    page_size: u32,
    poll_interval: Duration,
    settle_interval: Duration,
}

impl LogReader {
    /// A reader over `pool` with pages of 2,000 events, polling every 500 ms when no
    /// notification arrives, and letting events gather for 25 ms at the head.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            vault: None,
            page_size: 2_000,
            poll_interval: Duration::from_millis(500),
            settle_interval: Duration::from_millis(25),
        }
    }

    /// Events per round trip.
    pub fn with_page_size(self, page_size: u32) -> Self {
        Self { page_size, ..self }
    }

    /// The longest a tailing stream sleeps without a notification before looking again.
    pub fn with_poll_interval(self, poll_interval: Duration) -> Self {
        Self {
            poll_interval,
            ..self
        }
    }

    /// How long a tailing stream waits after a short page before reading again.
    ///
    /// At the head of a busy log every read finds a handful of new events, so without a pause
    /// each follower reads (and its consumer commits) hundreds of times a second, competing
    /// with the writers for the same cores and WAL flushes; pausing bounds that to one read per
    /// interval, at the cost of that much extra lag. Zero reads again at once.
    pub fn with_settle_interval(self, settle_interval: Duration) -> Self {
        Self {
            settle_interval,
            ..self
        }
    }

    /// This reader, opening sealed fields with `vault`.
    pub fn with_vault(self, vault: Option<Arc<Vault>>) -> Self {
        Self { vault, ..self }
    }

    /// At most `limit` events after `after`, in reading order, all of them final.
    pub async fn read_page(
        &self,
        after: Checkpoint,
        scope: Scope,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let mut page = read_page(&self.pool, after, scope, limit).await?;
        if let Some(vault) = &self.vault {
            open_page(&self.pool, vault, &mut page).await?;
        }
        Ok(page)
    }

    /// Every final event after `from`, ending when the reader has caught up with the head.
    ///
    /// A background task fetches the next page while the consumer works through the current
    /// one; it waits for the consumer before fetching further, so at most three pages (one
    /// being consumed, one queued, one in flight) are ever held, whatever the log's size.
    pub fn catch_up(
        &self,
        from: Checkpoint,
        scope: Scope,
    ) -> impl Stream<Item = Result<RecordedEvent, ReadError>> + Send + 'static {
        self.stream(from, scope, Follow::No)
    }

    /// Every event after `from`, forever: when caught up it waits for a `NOTIFY` from the
    /// events table (or the poll interval, whichever comes first) and reads on.
    pub fn follow(
        &self,
        from: Checkpoint,
        scope: Scope,
    ) -> impl Stream<Item = Result<RecordedEvent, ReadError>> + Send + 'static {
        self.stream(from, scope, Follow::Yes)
    }

    fn stream(
        &self,
        from: Checkpoint,
        scope: Scope,
        follow: Follow,
    ) -> impl Stream<Item = Result<RecordedEvent, ReadError>> + Send + 'static {
        let (pages, receiver) = mpsc::channel(1);
        tokio::spawn(self.clone().produce(from, scope, follow, pages));
        ReceiverStream::new(receiver).flat_map(|page| {
            let events: Vec<Result<RecordedEvent, ReadError>> = match page {
                Ok(events) => events.into_iter().map(Ok).collect(),
                Err(err) => vec![Err(err)],
            };
            futures::stream::iter(events)
        })
    }

    /// Feeds `pages` until caught up (or forever when following), the consumer goes away, or
    /// an error — which is sent, and ends the stream.
    async fn produce(self, mut after: Checkpoint, scope: Scope, follow: Follow, pages: PageSender) {
        let mut listener = None;
        loop {
            let page = match self
                .next_page(&mut after, scope, follow, &mut listener, &pages)
                .await
            {
                Ok(Some(page)) => Ok(page),
                Ok(None) => return,
                Err(err) => Err(err),
            };
            let at_head = matches!(&page, Ok(events) if events.len() < self.page_size as usize);
            let failed = page.is_err();
            if pages.send(page).await.is_err() || failed {
                return;
            }
            if follow == Follow::Yes && at_head && !self.settle_interval.is_zero() {
                tokio::select! {
                    () = pages.closed() => return,
                    () = tokio::time::sleep(self.settle_interval) => {}
                }
            }
        }
    }

    /// The next non-empty page after `after` (advancing it), or `None` when caught up and
    /// not following, or when the consumer of `pages` has gone away while waiting.
    async fn next_page(
        &self,
        after: &mut Checkpoint,
        scope: Scope,
        follow: Follow,
        listener: &mut Option<PgListener>,
        pages: &PageSender,
    ) -> Result<Option<Vec<RecordedEvent>>, ReadError> {
        loop {
            if follow == Follow::Yes && listener.is_none() {
                // Listen before reading, so a commit between the read and the wait still
                // wakes us.
                let mut new_listener = PgListener::connect_with(&self.pool).await?;
                new_listener.listen(EVENTS_CHANNEL).await?;
                *listener = Some(new_listener);
            }
            let page = self.read_page(*after, scope, self.page_size).await?;
            if let Some(last) = page.last() {
                *after = last.checkpoint;
                return Ok(Some(page));
            }
            let Some(listener) = listener.as_mut() else {
                return Ok(None);
            };
            // The timeout is the polling fallback: notifications are lost while the listener
            // reconnects, and the commit of an older transaction can release events whose
            // notification came (and was answered with an empty page) earlier.
            // A tailing reader whose consumer has dropped the stream would otherwise keep
            // polling (and holding its listener connection) forever.
            tokio::select! {
                () = pages.closed() => return Ok(None),
                waited = tokio::time::timeout(self.poll_interval, listener.recv()) => {
                    if let Ok(notification) = waited {
                        notification?;
                    }
                }
            }
        }
    }
}

type PageSender = mpsc::Sender<Result<Vec<RecordedEvent>, ReadError>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Follow {
    Yes,
    No,
}

fn recorded_event(row: &PgRow) -> Result<RecordedEvent, ReadError> {
    Ok(RecordedEvent {
        checkpoint: Checkpoint {
            transaction_id: row.try_get("transaction_number")?,
            global_position: row.try_get("global_position")?,
        },
        tenant_id: row.try_get("tenant_id")?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: RawValue::from_string(row.try_get("payload")?)?,
        opened: None,
        redacted: false,
        metadata: RawValue::from_string(row.try_get("metadata")?)?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

/// Opens the sealed fields of `page`'s events: the keys of the subjects they name read once
/// per tenant, in a transaction scoped to it (the auditor's role sees its tenants' keys only).
pub async fn open_page(
    pool: &PgPool,
    vault: &Vault,
    page: &mut [RecordedEvent],
) -> Result<(), ReadError> {
    let mut sealed: BTreeMap<Uuid, SealedEvents> = BTreeMap::new();
    for (index, event) in page.iter().enumerate() {
        if !event.event_context().is_personal() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(event.payload.get())?;
        let subjects = payload::subjects(&value, event.event_context());
        if subjects.is_empty() {
            continue;
        }
        let tenant = sealed.entry(event.tenant_id).or_default();
        tenant
            .subjects
            .extend(subjects.into_iter().map(str::to_owned));
        tenant.events.push((index, value));
    }
    for (tenant, SealedEvents { subjects, events }) in sealed {
        let subjects: Vec<&str> = subjects.iter().map(String::as_str).collect();
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?;
        let keys = vault.keys_for(&mut tx, tenant, &subjects).await?;
        tx.commit().await?;
        for (index, mut value) in events {
            let event = &mut page[index];
            event.redacted = payload::open(&mut value, event.event_context(), &keys)?;
            event.opened = Some(value);
        }
    }
    Ok(())
}

/// One tenant's sealed events of a page (their indexes, parsed) and the subjects they name.
#[derive(Default)]
struct SealedEvents {
    subjects: BTreeSet<String>,
    events: Vec<(usize, serde_json::Value)>,
}

/// [`LogReader::read_page`] through `executor`: a transaction the caller scoped (the request
/// path reads its tenant's events under row-level security), or a pool.
pub async fn read_page<'c, E>(
    executor: E,
    after: Checkpoint,
    scope: Scope,
    limit: u32,
) -> Result<Vec<RecordedEvent>, ReadError>
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
{
    let sql = match scope {
        Scope::All => PAGE_ALL,
        Scope::Tenant(_) => PAGE_TENANT,
    };
    let query = sqlx::query(sql)
        .bind(after.transaction_id)
        .bind(after.global_position)
        .bind(i64::from(limit));
    let query = match scope {
        Scope::All => query,
        Scope::Tenant(tenant) => query.bind(tenant),
    };
    let rows = query.fetch_all(executor).await?;
    rows.iter().map(recorded_event).collect()
}
