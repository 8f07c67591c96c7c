//! The event store: a cqrs-es [`EventStore`](cqrs_es::EventStore) over Casebook's `events`
//! table, with snapshots every [`SNAPSHOT_EVERY`] events.
//!
//! Every read and append runs in a transaction of the request path's role scoped to the
//! stream's tenant ([`begin_for_tenants`]): row-level security hides every other tenant's
//! events and snapshots. A store serves one tenant at a time ([`EventStore::for_tenant`]);
//! [`EventStore::execute`] takes the tenant from the command's metadata. A stream of another
//! tenant looks like no stream at all, except that its id is taken: a command creating a
//! stream under an id another tenant's stream holds is answered [`CommandError::NotFound`].
//!
//! The write path, snapshots and reads are Casebook's own, not postgres-es's:
//! - postgres-es commits a snapshot update *before* checking that it matched, so a command
//!   whose events were committed could be reported as a conflict; it also records the last
//!   event's sequence for a snapshot folded only up to an earlier boundary. Here the events
//!   and the snapshot are one statement, the snapshot is the command's resulting state at its
//!   last event, and a snapshot only ever moves forward: a snapshot write never fails a
//!   command.
//! - postgres-es reports every database error but 23505 as "unexpected"; a missing or
//!   malformed tenant (23502, 22P02) is a validation error and a dropped connection is
//!   retryable, and callers need to tell them apart ([`StoreError`], [`CommandError`]).
//! - its incremental read formats the sequence into the SQL text, preparing a new statement
//!   per call.
//! - it commits each command alone; here concurrent commands' appends share a statement and
//!   a commit ([`Appender`]), and a command that finds the store idle reads and appends in one
//!   transaction (a raw read-and-append's round trips).
//!
//! With a [`Vault`] ([`EventStore::with_vault`]), the personal fields of each event are sealed
//! under the stream's data subject's key as they are appended, and opened as they are loaded,
//! the keys read by the load's own statement (decision 0027). Snapshots hold no personal
//! data: the aggregates' states keep ids and statuses only.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::marker::PhantomData;
use std::sync::{Arc, LazyLock};

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventUpcaster, PersistenceError, SerializedEvent};
use cqrs_es::{Aggregate, AggregateContext, AggregateError, DomainEvent, EventEnvelope};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use async_trait::async_trait;
use casebook_application::ports::{CommandError, Committed, EventRepository};
use casebook_domain::ids::TenantId;
use casebook_domain::personal::DataSubject;
use casebook_vault::cipher::Key;
use casebook_vault::payload::{self, EventContext};
use casebook_vault::{subject_keys_query, SubjectKeys, Vault, VaultError, WrappedSubjectKey};

use crate::postgres::{begin_for_tenants, Access};

pub mod group_commit;

pub use group_commit::Appender;
use group_commit::{Alone, NewEvent, Reading, StreamAppend};

const NO_TENANT: &str = "event metadata without a valid tenant_id";

/// The tenant a command's metadata names (what the `events` table derives its `tenant_id` from).
fn tenant_of(metadata: &HashMap<String, String>) -> Option<Uuid> {
    Uuid::parse_str(metadata.get("tenant_id")?).ok()
}

/// Events between two snapshots: bounds the cost of loading any aggregate.
pub const SNAPSHOT_EVERY: usize = 20;

const EVENTS_AFTER: &str = "
SELECT false AS is_snapshot, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata
  FROM events
 WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3
 ORDER BY sequence";

/// The aggregate's snapshot (a row flagged `is_snapshot`, its `sequence` the last one folded
/// in) and the events after it, in no particular order (the caller sorts a handful of rows
/// cheaper than Postgres's sort node): loading costs one statement however long the stream.
///
/// The tail's lower bound is an uncorrelated scalar subquery on `snapshots`, which Postgres
/// runs once as an init plan and hands to the index scan as a bare parameter. Under
/// row-level security anything more around it is a condition Postgres may not trust before
/// the policy, so it filters after it and reads the stream's every event (9–16 ms at 10,000
/// events, against 0.1 ms): the subquery read from a CTE (a correlated subplan), or its
/// result wrapped in `COALESCE` (hence `max`, which answers one row even without a
/// snapshot). The test below holds the plan to it.
const LOAD_AGGREGATE: &str = "
SELECT true AS is_snapshot, $1 AS aggregate_type, $2 AS aggregate_id, last_sequence AS sequence,
       NULL AS event_type, NULL AS event_version, payload, NULL::jsonb AS metadata
  FROM snapshots
 WHERE aggregate_type = $1 AND aggregate_id = $2
UNION ALL
SELECT false, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata
  FROM events
 WHERE aggregate_type = $1 AND aggregate_id = $2
   AND sequence > (SELECT COALESCE(max(last_sequence), 0)
                     FROM snapshots WHERE aggregate_type = $1 AND aggregate_id = $2)";

/// `stream` (one of the statements above, `$1`–`$n`) and, bound at `$tenant_param`, the stored
/// keys of the data subjects its events' sealed fields name — in one round trip, so a vault
/// costs a load no extra statement (decision 0027). Key rows have a `subject_id` and nothing
/// else; stream rows have no `subject_id`. The stream is read once, materialized, so the
/// plan that reads only its tail stays what the test below holds it to.
fn with_subject_keys(stream: &str, tenant_param: usize) -> String {
    // One event's sealed fields are all its stream's subject's, so the first names them all;
    // and a function of one value, unlike a set-returning one, keeps the planner's estimate
    // of the rows to join at the tail's length.
    let subjects = "IN (SELECT jsonb_path_query_first(payload, 'lax $.**.sealed.subject') #>> '{}'
                         FROM stream WHERE NOT is_snapshot)";
    format!(
        "WITH stream AS MATERIALIZED ({stream})
         SELECT stream.*, NULL::text AS subject_id, NULL::bytea AS wrapped,
                NULL::int AS tenant_key_version, NULL::bytea AS tenant_wrapped
           FROM stream
         UNION ALL
         SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, subject_keys.*
           FROM ({}) AS subject_keys",
        subject_keys_query(tenant_param, subjects)
    )
}

static LOAD_AGGREGATE_SEALED: LazyLock<String> =
    LazyLock::new(|| with_subject_keys(LOAD_AGGREGATE, 3));
static EVENTS_AFTER_SEALED: LazyLock<String> = LazyLock::new(|| with_subject_keys(EVENTS_AFTER, 4));

/// What a read of one stream asks for.
#[derive(Debug, Clone, Copy)]
enum StreamRead {
    /// Its snapshot and the events after it.
    Load,
    /// Its events after a sequence.
    After(usize),
}

/// How a read gives back sealed fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unseal {
    /// Opened with their subjects' keys, read with the stream: for whoever reads what the
    /// events say.
    Open,
    /// As their redactions, without a key: enough to fold an aggregate, whose state holds
    /// nothing personal (the domain's tests hold it to that).
    Redact,
}

/// A stream's rows as stored, and the keys of the subjects they name when asked for.
struct StreamRows {
    rows: Vec<PgRow>,
    keys: Option<SubjectKeys>,
}

/// A failure of the event store, classified for the caller. Cheap to clone: a statement shared
/// by several commands fails for all of them at once.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Another command appended to the same stream first; reload and retry.
    #[error("optimistic concurrency conflict")]
    Conflict,
    /// The event itself is unacceptable (e.g. metadata without a valid tenant id).
    #[error("event rejected by the store: {0}")]
    InvalidEvent(String),
    /// The database could not be reached or shed the request; retrying may succeed.
    #[error("event store unavailable")]
    Unavailable(#[source] Arc<sqlx::Error>),
    /// Anything else.
    #[error("event store failure")]
    Unexpected(#[source] Arc<dyn StdError + Send + Sync>),
}

impl StoreError {
    fn unexpected(message: String) -> Self {
        StoreError::Unexpected(Arc::from(Box::<dyn StdError + Send + Sync>::from(message)))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err {
            match db.code().as_deref() {
                // unique_violation, or cardinality_violation: two commands appending to one
                // stream in one statement (a group commit), where both can't be right.
                Some("23505" | "21000") => return StoreError::Conflict,
                // not_null_violation (missing tenant), invalid_text_representation (bad uuid),
                // check_violation: the event, not the database, is at fault.
                Some("23502" | "22P02" | "23514") => {
                    return StoreError::InvalidEvent(db.message().to_owned())
                }
                Some(code) if is_transient_sqlstate(code) => {
                    return StoreError::Unavailable(Arc::new(err))
                }
                _ => {}
            }
        }
        match err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(Arc::new(err)),
            other => StoreError::Unexpected(Arc::new(other)),
        }
    }
}

impl From<VaultError> for StoreError {
    fn from(err: VaultError) -> Self {
        match err {
            VaultError::Erased(subject) => StoreError::InvalidEvent(format!(
                "the data subject {subject} is erased: nothing more of theirs is recorded"
            )),
            VaultError::TenantErased(tenant) => StoreError::InvalidEvent(format!(
                "the tenant {tenant} is erased: nothing more of it is recorded"
            )),
            // A subject key made under a tenant key a rotation just retired: a retry makes it
            // under the new one.
            VaultError::Database(err)
                if err
                    .as_database_error()
                    .is_some_and(|db| db.code().as_deref() == Some("23503")) =>
            {
                StoreError::Conflict
            }
            VaultError::Database(err) => err.into(),
            other => StoreError::Unexpected(Arc::new(other)),
        }
    }
}

/// Connection exceptions, serialization failures, deadlocks, shutdowns, resource exhaustion.
fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "40001" | "40P01" | "57P01" | "57P02" | "57P03")
}

impl From<StoreError> for PersistenceError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict => PersistenceError::OptimisticLockError,
            // cqrs-es has no variant for these, so the typed error rides inside and
            // [`command_error`] recovers it by downcasting.
            other => PersistenceError::UnknownError(Box::new(other)),
        }
    }
}

/// A cqrs-es error as the command outcome the application's port reports, recovering the
/// [`StoreError`] carried inside.
pub fn command_error<E: StdError>(err: AggregateError<E>) -> CommandError<E> {
    {
        match err {
            AggregateError::UserError(err) => CommandError::Rejected(err),
            AggregateError::AggregateConflict => CommandError::Conflict,
            AggregateError::DatabaseConnectionError(err) => CommandError::Unavailable(err),
            AggregateError::DeserializationError(err) => CommandError::Unexpected(err),
            AggregateError::UnexpectedError(err) => match err.downcast::<StoreError>() {
                Ok(store) => match *store {
                    StoreError::Conflict => CommandError::Conflict,
                    StoreError::InvalidEvent(reason) => CommandError::Invalid(reason),
                    StoreError::Unavailable(err) => CommandError::Unavailable(Box::new(err)),
                    StoreError::Unexpected(err) => CommandError::Unexpected(Box::new(err)),
                },
                Err(other) => CommandError::Unexpected(other),
            },
        }
    }
}

/// A loaded aggregate, as the store needs it back at commit.
pub struct StoreContext<A: Aggregate> {
    aggregate_id: String,
    aggregate: A,
    current_sequence: usize,
    snapshot_sequence: usize,
    /// The transaction the aggregate was read in, when its command goes alone: the command's
    /// events are appended in it.
    alone: Option<Alone>,
    /// The keys of the subjects the stream names, read with it for a command: the stream's
    /// subject's seals the command's events without another statement.
    keys: Option<SubjectKeys>,
}

impl<A: Aggregate> StoreContext<A> {
    fn empty(aggregate_id: &str) -> Self {
        Self {
            aggregate_id: aggregate_id.to_owned(),
            aggregate: A::default(),
            current_sequence: 0,
            snapshot_sequence: 0,
            alone: None,
            keys: None,
        }
    }

    /// The aggregate's id.
    pub fn aggregate_id(&self) -> &str {
        &self.aggregate_id
    }

    /// The loaded state.
    pub fn state(&self) -> &A {
        &self.aggregate
    }

    /// The loaded state, by value.
    pub fn into_state(self) -> A {
        self.aggregate
    }

    /// The sequence of the last event folded into the state (0 for a new aggregate).
    pub fn current_sequence(&self) -> usize {
        self.current_sequence
    }

    /// How many events were read on top of the snapshot to load this aggregate.
    pub fn events_replayed(&self) -> usize {
        self.current_sequence - self.snapshot_sequence
    }
}

impl<A: Aggregate> AggregateContext<A> for StoreContext<A> {
    fn aggregate(&mut self) -> &mut A {
        &mut self.aggregate
    }
}

/// Casebook's cqrs-es event store over the `events` and `snapshots` tables.
///
/// cqrs-es's own `PersistedEventStore` cannot be used with snapshots: in cqrs-es 0.5 the
/// command handler already applies its events to the context's aggregate (through the
/// `EventSink`), and the store applies them a second time before snapshotting, so snapshots
/// of any state that counts events are wrong. Here the context's aggregate — which already
/// holds the command's events — *is* the snapshot.
pub struct EventStore<A> {
    appender: Appender,
    upcasters: Arc<[Box<dyn EventUpcaster>]>,
    /// The tenant whose streams the cqrs-es loads read; `None` until [`Self::for_tenant`].
    tenant: Option<Uuid>,
    /// Seals and opens the events' personal fields; `None` stores them in the clear.
    vault: Option<Arc<Vault>>,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A> Clone for EventStore<A> {
    fn clone(&self) -> Self {
        Self {
            appender: self.appender.clone(),
            upcasters: self.upcasters.clone(),
            tenant: self.tenant,
            vault: self.vault.clone(),
            _aggregate: PhantomData,
        }
    }
}

impl<A: Aggregate> EventStore<A> {
    /// A store appending through `pool`, upcasting old events with `upcasters` on load.
    pub fn new(pool: PgPool, upcasters: Vec<Box<dyn EventUpcaster>>) -> Self {
        Self::with_appender(Appender::new(pool), upcasters)
    }

    /// A store appending through `appender` (shared with other stores, so that their
    /// commands' appends can share commits) and reading through its pool.
    pub fn with_appender(appender: Appender, upcasters: Vec<Box<dyn EventUpcaster>>) -> Self {
        Self {
            appender,
            upcasters: upcasters.into(),
            tenant: None,
            vault: None,
            _aggregate: PhantomData,
        }
    }

    /// This store, sealing its events' personal fields with `vault`.
    pub fn with_vault(self, vault: Arc<Vault>) -> Self {
        Self {
            vault: Some(vault),
            ..self
        }
    }

    /// This store, reading `tenant`'s streams (and only theirs).
    pub fn for_tenant(&self, tenant: Uuid) -> Self {
        Self {
            tenant: Some(tenant),
            ..self.clone()
        }
    }

    fn scope(&self) -> Result<Uuid, StoreError> {
        self.tenant.ok_or_else(|| {
            StoreError::unexpected(format!("{} stream read outside a tenant's scope", A::TYPE))
        })
    }

    /// The appender this store's commands go through, for other stores to share.
    pub fn appender(&self) -> &Appender {
        &self.appender
    }

    /// Reads the stream in the command's transaction when it goes alone, else in a read-only
    /// transaction scoped to the store's tenant; with a vault and `with_keys`, the keys of the
    /// subjects its sealed fields name come in the same statement.
    async fn read_stream(
        &self,
        alone: Option<&mut Alone>,
        read: StreamRead,
        aggregate_id: &str,
        with_keys: bool,
    ) -> Result<StreamRows, StoreError> {
        let tenant = self.scope()?;
        let vault = self.vault.as_ref().filter(|_| with_keys);
        let statement = match (read, vault) {
            (StreamRead::Load, None) => LOAD_AGGREGATE,
            (StreamRead::Load, Some(_)) => LOAD_AGGREGATE_SEALED.as_str(),
            (StreamRead::After(_), None) => EVENTS_AFTER,
            (StreamRead::After(_), Some(_)) => EVENTS_AFTER_SEALED.as_str(),
        };
        let query = sqlx::query(statement).bind(A::TYPE).bind(aggregate_id);
        let query = match read {
            StreamRead::After(after) => query.bind(after as i64),
            StreamRead::Load => query,
        };
        let query = match vault {
            Some(_) => query.bind(tenant),
            None => query,
        };
        let rows = match alone {
            Some(alone) => query.fetch_all(alone.connection()).await?,
            None => {
                let mut tx =
                    begin_for_tenants(self.appender.pool(), Access::ReadOnly, &[tenant]).await?;
                let rows = query.fetch_all(&mut *tx).await?;
                tx.commit().await?;
                rows
            }
        };
        let Some(vault) = vault else {
            return Ok(StreamRows { rows, keys: None });
        };
        let mut wrapped = Vec::new();
        let mut stream = Vec::with_capacity(rows.len());
        for row in rows {
            if row.try_get::<Option<&str>, _>("subject_id")?.is_some() {
                wrapped.push(WrappedSubjectKey::from_row(&row)?);
            } else {
                stream.push(row);
            }
        }
        Ok(StreamRows {
            rows: stream,
            keys: Some(vault.open_keys(tenant, wrapped).await?),
        })
    }

    async fn events_after(
        &self,
        alone: Option<&mut Alone>,
        aggregate_id: &str,
        after_sequence: usize,
        unseal: Unseal,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let stream = self
            .read_stream(
                alone,
                StreamRead::After(after_sequence),
                aggregate_id,
                unseal == Unseal::Open,
            )
            .await
            .map_err(aggregate_error)?;
        let mut events = stream
            .rows
            .iter()
            .map(serialized_event)
            .collect::<Result<Vec<_>, _>>()
            .map_err(aggregate_error)?;
        self.unseal(events.iter_mut(), stream.keys.as_ref())
            .map_err(aggregate_error)?;
        events
            .into_iter()
            .map(|event| self.envelope(event))
            .collect()
    }

    /// Readies the sealed fields of `events` for decoding: opened with their subjects' `keys`
    /// (read with them; an erased subject's fields open as redactions), or without keys read
    /// as redactions.
    fn unseal<'e>(
        &self,
        events: impl Iterator<Item = &'e mut SerializedEvent>,
        keys: Option<&SubjectKeys>,
    ) -> Result<(), StoreError> {
        if self.vault.is_none() {
            return Ok(());
        }
        let tenant = self.scope()?;
        for event in events {
            let context = Self::event_context(tenant, &event.event_type);
            match keys {
                Some(keys) => payload::open(&mut event.payload, context, keys)?,
                None => payload::redact(&mut event.payload, context)?,
            };
        }
        Ok(())
    }

    fn event_context(tenant: Uuid, event_type: &str) -> EventContext<'_> {
        EventContext {
            tenant,
            aggregate_type: A::TYPE,
            event_type,
        }
    }

    /// Folds a stream's snapshot and events; `None` when the snapshot no longer deserializes
    /// (the aggregate changed shape), in which case the caller replays from the start.
    fn fold(
        &self,
        aggregate_id: &str,
        stored: Vec<Stored>,
    ) -> Result<Option<StoreContext<A>>, AggregateError<A::Error>> {
        let mut context = StoreContext::<A>::empty(aggregate_id);
        for item in stored {
            match item {
                Stored::Snapshot { sequence, state } => match serde_json::from_value(state) {
                    Ok(state) => {
                        context.aggregate = state;
                        context.current_sequence = sequence as usize;
                        context.snapshot_sequence = sequence as usize;
                    }
                    Err(err) => {
                        // A snapshot of an older shape is only a missed shortcut.
                        tracing::warn!(aggregate = A::TYPE, aggregate_id, error = %err,
                            "ignoring a snapshot that no longer deserializes");
                        return Ok(None);
                    }
                },
                Stored::Event(event) => {
                    let envelope = self.envelope(event)?;
                    context.current_sequence = envelope.sequence;
                    context.aggregate.apply(envelope.payload);
                }
            }
        }
        Ok(Some(context))
    }

    fn envelope(
        &self,
        event: SerializedEvent,
    ) -> Result<EventEnvelope<A>, AggregateError<A::Error>> {
        let event = self.upcasters.iter().fold(event, |event, upcaster| {
            if upcaster.can_upcast(&event.event_type, &event.event_version) {
                upcaster.upcast(event)
            } else {
                event
            }
        });
        EventEnvelope::try_from(event).map_err(|err| match err {
            PersistenceError::DeserializationError(err) => {
                AggregateError::DeserializationError(err)
            }
            other => AggregateError::UnexpectedError(Box::new(other)),
        })
    }

    /// Loads the aggregate, its events' sealed fields read as redactions: in `alone`'s
    /// transaction, which the context then carries to the command's append, or else in a
    /// read-only transaction of its own. For a command (`for_command`), the keys of the
    /// subjects the stream names come with it, to seal the command's events.
    async fn load_context(
        &self,
        aggregate_id: &str,
        mut alone: Option<Alone>,
        for_command: bool,
    ) -> Result<StoreContext<A>, AggregateError<A::Error>> {
        let StreamRows { mut rows, keys } = self
            .read_stream(alone.as_mut(), StreamRead::Load, aggregate_id, for_command)
            .await
            .map_err(aggregate_error)?;
        // A row without a sequence sorts first and fails here.
        rows.sort_by_cached_key(|row| row.try_get::<i64, _>("sequence").ok());
        let mut stored = rows
            .iter()
            .map(Stored::of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(aggregate_error)?;
        let events = stored.iter_mut().filter_map(|item| match item {
            Stored::Event(event) => Some(event),
            Stored::Snapshot { .. } => None,
        });
        self.unseal(events, None).map_err(aggregate_error)?;
        let mut context = match self.fold(aggregate_id, stored)? {
            Some(context) => context,
            None => {
                let mut context = StoreContext::<A>::empty(aggregate_id);
                let events = self
                    .events_after(alone.as_mut(), aggregate_id, 0, Unseal::Redact)
                    .await?;
                for envelope in events {
                    context.current_sequence = envelope.sequence;
                    context.aggregate.apply(envelope.payload);
                }
                context
            }
        };
        context.alone = alone;
        context.keys = keys;
        Ok(context)
    }

    /// Appends the events of `tenant`, their personal fields sealed with `sealing`'s key.
    async fn append(
        &self,
        tenant: Uuid,
        aggregate_id: &str,
        envelopes: &[EventEnvelope<A>],
        snapshot: Option<(usize, Value)>,
        alone: Option<Alone>,
        sealing: Option<(&str, &Key)>,
    ) -> Result<Vec<i64>, StoreError> {
        let events = envelopes
            .iter()
            .map(|envelope| {
                let event_type = envelope.payload.event_type();
                let mut payload = serde_json::to_value(&envelope.payload).map_err(serialization)?;
                if let Some((subject, key)) = sealing {
                    let context = Self::event_context(tenant, &event_type);
                    payload::seal(&mut payload, context, subject, key)?;
                }
                Ok(NewEvent {
                    sequence: envelope.sequence as i64,
                    event_type,
                    event_version: envelope.payload.event_version(),
                    payload,
                    metadata: serde_json::to_value(&envelope.metadata).map_err(serialization)?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        let append = StreamAppend {
            tenant,
            aggregate_type: A::TYPE,
            aggregate_id: aggregate_id.to_owned(),
            events,
            snapshot: snapshot.map(|(sequence, state)| (sequence as i64, state)),
        };
        if let Some(alone) = alone {
            if alone.tenant() == tenant {
                return alone.append(append).await;
            }
            // The events name another tenant than the stream was read as: they go where
            // their own tenant's scope checks them, and the read's transaction ends.
            drop(alone);
        }
        self.appender.append(append).await
    }
}

fn serialization(err: serde_json::Error) -> StoreError {
    StoreError::Unexpected(Arc::new(err))
}

/// Carries a [`StoreError`] through cqrs-es's error type; [`command_error`] recovers it.
fn aggregate_error<E: StdError>(err: StoreError) -> AggregateError<E> {
    match err {
        StoreError::Conflict => AggregateError::AggregateConflict,
        other => AggregateError::UnexpectedError(Box::new(other)),
    }
}

impl<A> cqrs_es::EventStore<A> for EventStore<A>
where
    A: Aggregate + DataSubject + Send + Sync,
    A::Error: Send,
{
    type AC = StoreContext<A>;

    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        self.events_after(None, aggregate_id, 0, Unseal::Open).await
    }

    /// Loads the aggregate for a command, which goes alone if the store is idle.
    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<StoreContext<A>, AggregateError<A::Error>> {
        let tenant = self.scope().map_err(aggregate_error)?;
        let alone = self
            .appender
            .alone(Reading::Yes, tenant)
            .await
            .map_err(aggregate_error)?;
        self.load_context(aggregate_id, alone, true).await
    }

    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: StoreContext<A>,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let (envelopes, _positions) = self
            .write(events, context, metadata)
            .await
            .map_err(aggregate_error)?;
        Ok(envelopes)
    }
}

impl<A> EventStore<A>
where
    A: Aggregate + DataSubject + Send + Sync,
    A::Error: Send,
{
    /// Loads the aggregate, lets it handle `command`, and appends the resulting events with
    /// `metadata` — what `CqrsFramework::execute_with_metadata` does, but reporting where the
    /// events landed, which API clients are given back (cqrs-es's framework returns `()`).
    /// The stream is read as the tenant the metadata names.
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        services: &A::Services,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<Committed>, CommandError<A::Error>> {
        let store = self.for_metadata(&metadata)?;
        let context = cqrs_es::EventStore::load_aggregate(&store, aggregate_id)
            .await
            .map_err(command_error)?;
        let loaded_empty = context.current_sequence == 0;
        match store
            .handle_and_write(context, command, services, metadata)
            .await
        {
            // Nothing was visible, yet sequence 1 is taken: by a stream created since, or by
            // another tenant's, which row-level security hides.
            Err(CommandError::Conflict) if loaded_empty => {
                match store
                    .read_stream(None, StreamRead::After(0), aggregate_id, false)
                    .await
                {
                    Ok(stream) if stream.rows.is_empty() => Err(CommandError::NotFound),
                    Ok(_) => Err(CommandError::Conflict),
                    Err(err) => Err(command_error(aggregate_error::<A::Error>(err))),
                }
            }
            outcome => outcome,
        }
    }

    /// [`execute`](Self::execute) for a command that creates its stream, in one round trip
    /// instead of two: the command is handled against the empty aggregate and appended at
    /// sequence 1, whose primary key is the existence check (events are never deleted, so a
    /// stream that exists has its first event). Only when that append conflicts, the empty
    /// aggregate refuses the command or nothing is appended is the stream loaded and the
    /// command handled again as `execute` would — so a repeated creation gets the answer it
    /// always got, at the cost of one failed insert.
    pub async fn execute_new(
        &self,
        aggregate_id: &str,
        command: A::Command,
        services: &A::Services,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<Committed>, CommandError<A::Error>>
    where
        A::Command: Clone,
    {
        let assumed_new = self
            .handle_and_write(
                StoreContext::empty(aggregate_id),
                command.clone(),
                services,
                metadata.clone(),
            )
            .await;
        match assumed_new {
            Ok(committed) if !committed.is_empty() => Ok(committed),
            Ok(_) | Err(CommandError::Conflict | CommandError::Rejected(_)) => {
                self.execute(aggregate_id, command, services, metadata)
                    .await
            }
            Err(err) => Err(err),
        }
    }

    /// This store scoped to the tenant `metadata` names.
    fn for_metadata(
        &self,
        metadata: &HashMap<String, String>,
    ) -> Result<Self, CommandError<A::Error>> {
        tenant_of(metadata)
            .map(|tenant| self.for_tenant(tenant))
            .ok_or_else(|| CommandError::Invalid(NO_TENANT.to_owned()))
    }

    async fn handle_and_write(
        &self,
        mut context: StoreContext<A>,
        command: A::Command,
        services: &A::Services,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<Committed>, CommandError<A::Error>> {
        let sink = EventSink::default();
        context
            .aggregate
            .handle(command, services, &sink)
            .await
            .map_err(CommandError::Rejected)?;
        let events = sink.collect().await;
        let (envelopes, positions) = self
            .write(events, context, metadata)
            .await
            .map_err(|err| command_error(aggregate_error::<A::Error>(err)))?;
        Ok(envelopes
            .iter()
            .zip(positions)
            .map(|(envelope, global_position)| Committed {
                aggregate_type: A::TYPE,
                aggregate_id: envelope.aggregate_id.clone(),
                sequence: envelope.sequence,
                global_position,
                event_type: envelope.payload.event_type(),
            })
            .collect())
    }

    /// Appends `events` after the context's sequence, with a snapshot of the context's state
    /// (which already holds them) when one is due: in the context's transaction if its command
    /// goes alone.
    async fn write(
        &self,
        events: Vec<A::Event>,
        mut context: StoreContext<A>,
        metadata: HashMap<String, String>,
    ) -> Result<(Vec<EventEnvelope<A>>, Vec<i64>), StoreError> {
        let envelopes: Vec<EventEnvelope<A>> = events
            .into_iter()
            .zip(context.current_sequence + 1..)
            .map(|(payload, sequence)| EventEnvelope {
                aggregate_id: context.aggregate_id.clone(),
                sequence,
                payload,
                metadata: metadata.clone(),
            })
            .collect();
        let Some(last) = envelopes.last() else {
            return Ok((envelopes, Vec::new()));
        };
        let tenant =
            tenant_of(&metadata).ok_or_else(|| StoreError::InvalidEvent(NO_TENANT.to_owned()))?;
        let sealing = self.sealing_key(&mut context, tenant, &envelopes).await?;
        let snapshot = if last.sequence - context.snapshot_sequence >= SNAPSHOT_EVERY {
            let state = serde_json::to_value(&context.aggregate).map_err(serialization)?;
            Some((last.sequence, state))
        } else {
            None
        };
        let positions = self
            .append(
                tenant,
                &context.aggregate_id,
                &envelopes,
                snapshot,
                context.alone.take(),
                sealing
                    .as_ref()
                    .map(|(subject, key)| (subject.as_str(), key)),
            )
            .await?;
        Ok((envelopes, positions))
    }

    /// The key sealing the events' personal fields, if they have any and their stream has a
    /// data subject: the subject's, read (or made) in the command's transaction if it goes
    /// alone.
    async fn sealing_key(
        &self,
        context: &mut StoreContext<A>,
        tenant: Uuid,
        envelopes: &[EventEnvelope<A>],
    ) -> Result<Option<(String, Key)>, StoreError> {
        let Some(vault) = &self.vault else {
            return Ok(None);
        };
        let personal = envelopes.iter().any(|envelope| {
            Self::event_context(tenant, &envelope.payload.event_type()).is_personal()
        });
        let Some(subject) = context.aggregate.data_subject().filter(|_| personal) else {
            return Ok(None);
        };
        if let Some(loaded) = context
            .keys
            .as_mut()
            .and_then(|keys| keys.take(subject.as_str()))
        {
            let key = loaded.ok_or_else(|| VaultError::Erased(subject.to_string()))?;
            return Ok(Some((subject.to_string(), key)));
        }
        let key = match context
            .alone
            .as_mut()
            .filter(|alone| alone.tenant() == tenant)
        {
            Some(alone) => {
                vault
                    .sealing_key(alone.connection(), tenant, subject.as_str())
                    .await?
            }
            None => {
                let mut tx =
                    begin_for_tenants(self.appender.pool(), Access::ReadWrite, &[tenant]).await?;
                let key = vault.sealing_key(&mut tx, tenant, subject.as_str()).await?;
                tx.commit().await?;
                key
            }
        };
        Ok(Some((subject.to_string(), key)))
    }
}

/// A row of a stream's load: its snapshot or one of its events, as stored.
enum Stored {
    Snapshot { sequence: i64, state: Value },
    Event(SerializedEvent),
}

impl Stored {
    fn of(row: &PgRow) -> Result<Self, StoreError> {
        Ok(if row.try_get("is_snapshot")? {
            Self::Snapshot {
                sequence: row.try_get("sequence")?,
                state: row.try_get("payload")?,
            }
        } else {
            Self::Event(serialized_event(row)?)
        })
    }
}

fn serialized_event(row: &PgRow) -> Result<SerializedEvent, StoreError> {
    let sequence: i64 = row.try_get("sequence")?;
    Ok(SerializedEvent::new(
        row.try_get("aggregate_id")?,
        sequence as usize,
        row.try_get("aggregate_type")?,
        row.try_get("event_type")?,
        row.try_get("event_version")?,
        row.try_get("payload")?,
        row.try_get("metadata")?,
    ))
}

/// The application's port over this store: every read in the tenant's scope.
#[async_trait]
impl<A> EventRepository<A> for EventStore<A>
where
    A: Aggregate<Services = ()> + DataSubject + Send + Sync + 'static,
    A::Command: Clone + Send + 'static,
    A::Error: Send,
{
    async fn load(&self, tenant: TenantId, id: &str) -> Result<A, CommandError<A::Error>> {
        let context = self
            .for_tenant(*tenant.as_uuid())
            .load_context(id, None, false)
            .await
            .map_err(command_error)?;
        Ok(context.into_state())
    }

    async fn load_events(
        &self,
        tenant: TenantId,
        id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, CommandError<A::Error>> {
        cqrs_es::EventStore::load_events(&self.for_tenant(*tenant.as_uuid()), id)
            .await
            .map_err(command_error)
    }

    async fn execute(
        &self,
        id: &str,
        command: A::Command,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<Committed>, CommandError<A::Error>> {
        EventStore::execute(self, id, command, &(), metadata).await
    }

    async fn execute_new(
        &self,
        id: &str,
        command: A::Command,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<Committed>, CommandError<A::Error>> {
        EventStore::execute_new(self, id, command, &(), metadata).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    /// Events the plan's scans of `events` touched: returned, or read and then filtered out.
    fn events_touched(plan: &Value) -> u64 {
        let own = if plan["Relation Name"] == "events" {
            [
                "Actual Rows",
                "Rows Removed by Filter",
                "Rows Removed by Index Recheck",
            ]
            .iter()
            .filter_map(|field| plan[field].as_u64())
            .sum()
        } else {
            0
        };
        let children = plan["Plans"].as_array().into_iter().flatten();
        own + children.map(events_touched).sum::<u64>()
    }

    #[tokio::test]
    async fn loading_a_long_stream_under_row_level_security_reads_only_the_tail_after_its_snapshot()
    {
        let db = casebook_tests::TestDb::new().await;
        let mut conn = db.superuser().await;
        let tenant = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             SELECT 'Plan', 'long', n, 'Happened', '1', '{}', jsonb_build_object('tenant_id', $1::text)
               FROM generate_series(1, 500) AS n",
        )
        .bind(tenant.to_string())
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload, tenant_id)
             VALUES ('Plan', 'long', 490, 24, '{}', $1)",
        )
        .bind(tenant)
        .execute(&mut conn)
        .await
        .unwrap();
        // In the clear, and as a sealing store loads: with its subjects' keys.
        let prepare = format!(
            "PREPARE load_aggregate(text, text) AS {LOAD_AGGREGATE};
             PREPARE load_aggregate_sealed(text, text, uuid) AS {}",
            *LOAD_AGGREGATE_SEALED
        );
        sqlx::raw_sql(&prepare).execute(&mut conn).await.unwrap();

        // Without statistics, then with them; each with the plan made for the values and the
        // generic one a prepared statement settles on.
        for analyzed in [false, true] {
            if analyzed {
                sqlx::raw_sql("ANALYZE events, snapshots")
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            for (plan_cache_mode, execute) in ["force_custom_plan", "force_generic_plan"]
                .into_iter()
                .flat_map(|mode| {
                    [
                        (mode, "load_aggregate('Plan', 'long')".to_owned()),
                        (
                            mode,
                            format!("load_aggregate_sealed('Plan', 'long', '{tenant}')"),
                        ),
                    ]
                })
            {
                let mut tx = conn.begin().await.unwrap();
                sqlx::raw_sql(&format!(
                    "SET LOCAL ROLE casebook_app; SET LOCAL app.tenant_id = '{tenant}';
                     SET LOCAL plan_cache_mode = {plan_cache_mode}"
                ))
                .execute(&mut *tx)
                .await
                .unwrap();
                let (explained,): (Value,) =
                    sqlx::query_as(&format!("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {execute}"))
                        .fetch_one(&mut *tx)
                        .await
                        .unwrap();
                tx.rollback().await.unwrap();
                assert_eq!(
                    events_touched(&explained[0]["Plan"]),
                    10,
                    "{execute}, {plan_cache_mode}, analyzed: {analyzed}: {explained:#}"
                );
            }
        }
    }

    #[test]
    fn connection_and_serialization_failures_are_transient_constraint_violations_are_not() {
        assert!(is_transient_sqlstate("08006"));
        assert!(is_transient_sqlstate("40001"));
        assert!(is_transient_sqlstate("53300"));
        assert!(!is_transient_sqlstate("23502"));
        assert!(!is_transient_sqlstate("22P02"));
    }
}
