//! The event store against the real Postgres: appends, concurrency, snapshots, append-only.

use std::collections::HashMap;
use std::sync::Arc;

use casebook_adapters::event_store::{command_error, EventStore, SNAPSHOT_EVERY};
use casebook_adapters::postgres::{begin_for_tenants, Access, DbRole};
use casebook_application::ports::{CommandError, Committed};
use casebook_tests::TestDb;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, AggregateError, CqrsFramework, DomainEvent, EventStore as _};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// The smallest aggregate that exercises the store: it counts, and remembers nothing else.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Counter {
    value: u64,
    /// Events applied since this value was created or deserialized: after a load, exactly
    /// the events read on top of the snapshot.
    #[serde(skip)]
    applied_since_load: usize,
}

#[derive(Clone)]
enum CounterCommand {
    Add {
        times: usize,
        marker: Uuid,
    },
    /// Refused while the counter is at zero: a command whose answer depends on loaded state.
    TakeOne,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum CounterEvent {
    Added { marker: Uuid },
    Taken,
}

impl DomainEvent for CounterEvent {
    fn event_type(&self) -> String {
        match self {
            CounterEvent::Added { .. } => "Added".into(),
            CounterEvent::Taken => "Taken".into(),
        }
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("nothing to add")]
    NothingToAdd,
    #[error("nothing to take")]
    NothingToTake,
}

// About nobody in particular: nothing to seal.
impl casebook_domain::personal::DataSubject for Counter {
    fn data_subject(&self) -> Option<casebook_domain::ids::UserId> {
        None
    }
}

impl Aggregate for Counter {
    const TYPE: &'static str = "Counter";
    type Command = CounterCommand;
    type Event = CounterEvent;
    type Error = Refused;
    type Services = ();

    async fn handle(
        &mut self,
        command: CounterCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), Refused> {
        match command {
            CounterCommand::Add { times: 0, .. } => Err(Refused::NothingToAdd),
            CounterCommand::Add { times, marker } => {
                for _ in 0..times {
                    sink.write(CounterEvent::Added { marker }, self).await;
                }
                Ok(())
            }
            CounterCommand::TakeOne if self.value == 0 => Err(Refused::NothingToTake),
            CounterCommand::TakeOne => {
                sink.write(CounterEvent::Taken, self).await;
                Ok(())
            }
        }
    }

    fn apply(&mut self, event: CounterEvent) {
        match event {
            CounterEvent::Added { .. } => self.value += 1,
            CounterEvent::Taken => self.value -= 1,
        }
        self.applied_since_load += 1;
    }
}

type Cqrs = CqrsFramework<Counter, EventStore<Counter>>;

/// The tenant every stream of these tests belongs to, unless a test says otherwise.
const TENANT: Uuid = Uuid::nil();

/// A store reading [`TENANT`]'s streams.
fn store(pool: &PgPool) -> EventStore<Counter> {
    EventStore::new(pool.clone(), vec![]).for_tenant(TENANT)
}

fn cqrs(pool: &PgPool) -> Arc<Cqrs> {
    Arc::new(CqrsFramework::new(store(pool), vec![], ()))
}

/// A pool reading every tenant's events, as the tests' oracle.
async fn log(db: &TestDb) -> PgPool {
    db.pool(DbRole::Projector, 1).await
}

fn tenant_metadata(tenant: Uuid) -> HashMap<String, String> {
    HashMap::from([
        ("tenant_id".to_string(), tenant.to_string()),
        ("request_id".to_string(), Uuid::new_v4().to_string()),
    ])
}

async fn add(
    cqrs: &Cqrs,
    id: &str,
    times: usize,
    marker: Uuid,
) -> Result<(), CommandError<Refused>> {
    cqrs.execute_with_metadata(
        id,
        CounterCommand::Add { times, marker },
        tenant_metadata(TENANT),
    )
    .await
    .map_err(command_error)
}

#[tokio::test]
async fn an_appended_event_is_stored_with_position_transaction_tenant_and_time() {
    let db = TestDb::new().await;
    let log = log(&db).await;
    let pool = db.pool(DbRole::App, 4).await;
    let cqrs = cqrs(&pool);
    let tenant = Uuid::new_v4();
    let id = Uuid::new_v4().to_string();

    cqrs.execute_with_metadata(
        &id,
        CounterCommand::Add {
            times: 2,
            marker: Uuid::nil(),
        },
        tenant_metadata(tenant),
    )
    .await
    .expect("command accepted");

    let rows = sqlx::query(
        "SELECT sequence, global_position, transaction_id::text AS tx, tenant_id, recorded_at
           FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&id)
    .fetch_all(&log)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    let first_position: i64 = rows[0].get("global_position");
    let second_position: i64 = rows[1].get("global_position");
    assert!(first_position >= 1 && second_position > first_position);
    assert_eq!(
        rows[0].get::<String, _>("tx"),
        rows[1].get::<String, _>("tx"),
        "one command, one transaction"
    );
    assert_eq!(rows[1].get::<Uuid, _>("tenant_id"), tenant);
    let recorded: chrono::DateTime<chrono::Utc> = rows[0].get("recorded_at");
    assert!((chrono::Utc::now() - recorded).num_seconds().abs() < 60);

    let store = store(&pool).for_tenant(tenant);
    let loaded = store.load_aggregate(&id).await.unwrap();
    assert_eq!(loaded.state().value, 2);
    assert_eq!(loaded.current_sequence(), 2);
}

#[tokio::test]
async fn concurrent_commands_on_one_aggregate_keep_the_stream_contiguous_and_losers_conflict() {
    let db = TestDb::new().await;
    let log = log(&db).await;
    let pool = db.pool(DbRole::App, 20).await;
    let cqrs = cqrs(&pool);
    let id = Uuid::new_v4().to_string();

    let attempts: Vec<_> = (0..50)
        .map(|_| {
            let cqrs = cqrs.clone();
            let id = id.clone();
            let marker = Uuid::new_v4();
            tokio::spawn(async move { (marker, add(&cqrs, &id, 1, marker).await) })
        })
        .collect();
    let mut accepted = Vec::new();
    let mut conflicts = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            (marker, Ok(())) => accepted.push(marker),
            (_, Err(CommandError::Conflict)) => conflicts += 1,
            (_, Err(other)) => panic!("expected success or a typed conflict, got {other:?}"),
        }
    }
    assert_eq!(accepted.len() + conflicts, 50);
    assert!(!accepted.is_empty());

    let stored: Vec<(i64, serde_json::Value)> = sqlx::query_as(
        "SELECT sequence, payload FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&id)
    .fetch_all(&log)
    .await
    .unwrap();
    let sequences: Vec<i64> = stored.iter().map(|(s, _)| *s).collect();
    assert_eq!(sequences, (1..=accepted.len() as i64).collect::<Vec<_>>());
    let mut stored_markers: Vec<Uuid> = stored
        .iter()
        .map(|(_, payload)| serde_json::from_value::<CounterEvent>(payload.clone()).unwrap())
        .filter_map(|event| match event {
            CounterEvent::Added { marker } => Some(marker),
            CounterEvent::Taken => None,
        })
        .collect();
    stored_markers.sort();
    accepted.sort();
    assert_eq!(
        stored_markers, accepted,
        "exactly the accepted commands' events"
    );
}

#[tokio::test]
async fn a_long_stream_loads_from_its_snapshot_plus_the_events_after_it() {
    let db = TestDb::new().await;
    let pool = db.pool(DbRole::App, 4).await;
    let cqrs = cqrs(&pool);
    let id = Uuid::new_v4().to_string();
    // 10,000 events in large commands, each leaving a snapshot at its last event...
    for _ in 0..10 {
        add(&cqrs, &id, 1_000, Uuid::new_v4()).await.unwrap();
    }
    // ...then a tail of single-event commands too short to earn a snapshot of its own.
    for _ in 0..7 {
        add(&cqrs, &id, 1, Uuid::new_v4()).await.unwrap();
    }

    let store = store(&pool);
    let loaded = store.load_aggregate(&id).await.unwrap();
    assert_eq!(loaded.current_sequence(), 10_007);
    assert_eq!(loaded.state().value, 10_007);
    assert_eq!(
        loaded.state().applied_since_load,
        7,
        "only the events after the snapshot at 10,000 are read and applied"
    );
    assert_eq!(loaded.events_replayed(), 7);
    assert!(loaded.events_replayed() < SNAPSHOT_EVERY);
}

#[tokio::test]
async fn a_snapshot_write_racing_other_commands_never_fails_a_committed_command() {
    let db = TestDb::new().await;
    let log = log(&db).await;
    let pool = db.pool(DbRole::App, 16).await;
    let cqrs = cqrs(&pool);
    let id = Uuid::new_v4().to_string();

    // Many rounds of concurrent commands, each round crossing snapshot boundaries, some
    // with several events so a command's snapshot folds only part of its own events.
    for round in 0..20 {
        let attempts: Vec<_> = (0..8)
            .map(|i| {
                let cqrs = cqrs.clone();
                let id = id.clone();
                let marker = Uuid::new_v4();
                let times = 1 + (round + i) % 3;
                tokio::spawn(async move { (marker, times, add(&cqrs, &id, times, marker).await) })
            })
            .collect();
        for attempt in attempts {
            let (marker, times, result) = attempt.await.unwrap();
            let stored: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM events WHERE aggregate_id = $1 AND payload->'Added'->>'marker' = $2",
            )
            .bind(&id)
            .bind(marker.to_string())
            .fetch_one(&log)
            .await
            .unwrap();
            match result {
                Ok(()) => assert_eq!(stored, times as i64, "accepted means stored"),
                Err(CommandError::Conflict) => assert_eq!(stored, 0, "conflict means not stored"),
                Err(other) => panic!("unexpected error {other:?}"),
            }
        }
    }

    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
        .bind(&id)
        .fetch_one(&log)
        .await
        .unwrap();
    let store = store(&pool);
    let loaded = store.load_aggregate(&id).await.unwrap();
    assert_eq!(
        loaded.state().value as i64,
        total,
        "snapshot + tail folds every event"
    );
}

#[tokio::test]
async fn history_cannot_be_rewritten_by_the_application_role_or_anyone_else() {
    let db = TestDb::new().await;
    let log = log(&db).await;
    let app = db.pool(DbRole::App, 2).await;
    let id = Uuid::new_v4().to_string();
    add(&cqrs(&app), &id, 1, Uuid::new_v4()).await.unwrap();

    for statement in [
        "UPDATE events SET payload = '{}'",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let mut tx = begin_for_tenants(&app, Access::ReadWrite, &[TENANT])
            .await
            .unwrap();
        let err = sqlx::query(statement).execute(&mut *tx).await.unwrap_err();
        assert_eq!(
            err.as_database_error().and_then(|e| e.code()).as_deref(),
            Some("42501"),
            "{statement} as casebook_app"
        );
        let mut superuser = db.superuser().await;
        let err = sqlx::query(statement)
            .execute(&mut superuser)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("append-only"),
            "{statement} as superuser is stopped by the trigger: {err}"
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&log)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn an_event_without_a_valid_tenant_is_rejected_as_invalid() {
    let db = TestDb::new().await;
    let log = log(&db).await;
    let pool = db.pool(DbRole::App, 2).await;
    let cqrs = cqrs(&pool);

    for metadata in [
        HashMap::new(),
        HashMap::from([("tenant_id".to_string(), "not-a-uuid".to_string())]),
    ] {
        let err = cqrs
            .execute_with_metadata(
                &Uuid::new_v4().to_string(),
                CounterCommand::Add {
                    times: 1,
                    marker: Uuid::nil(),
                },
                metadata,
            )
            .await
            .map_err(command_error)
            .unwrap_err();
        assert!(matches!(err, CommandError::Invalid(_)), "got {err:?}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&log)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn a_domain_rejection_is_reported_as_such() {
    let db = TestDb::new().await;
    let pool = db.pool(DbRole::App, 2).await;
    let err = add(&cqrs(&pool), "any", 0, Uuid::nil()).await.unwrap_err();
    assert!(matches!(err, CommandError::Rejected(Refused::NothingToAdd)));
    let _: AggregateError<Refused> = AggregateError::UserError(Refused::NothingToAdd);
}

/// `command` as the creation of stream `id`, for the nil tenant.
async fn create(
    store: &EventStore<Counter>,
    id: &str,
    command: CounterCommand,
) -> Result<Vec<Committed>, CommandError<Refused>> {
    store
        .execute_new(id, command, &(), tenant_metadata(TENANT))
        .await
}

/// The (sequence, global position) pairs `committed` reports, next to the stored ones.
async fn committed_against_stored(
    pool: &PgPool,
    id: &str,
    committed: &[Committed],
) -> (Vec<(i64, i64)>, Vec<(i64, i64)>) {
    let stored: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT sequence, global_position FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap();
    let reported = committed
        .iter()
        .map(|event| (event.sequence as i64, event.global_position))
        .collect();
    (reported, stored)
}

#[tokio::test]
async fn a_creating_command_on_a_new_stream_lands_at_its_start() {
    let db = TestDb::new().await;
    let log = log(&db).await;
    let pool = db.pool(DbRole::App, 2).await;
    let store = store(&pool);
    let id = Uuid::new_v4().to_string();

    let committed = create(
        &store,
        &id,
        CounterCommand::Add {
            times: 2,
            marker: Uuid::nil(),
        },
    )
    .await
    .expect("created");

    let (reported, stored) = committed_against_stored(&log, &id, &committed).await;
    assert_eq!(reported, stored);
    assert_eq!(
        stored
            .iter()
            .map(|(sequence, _)| *sequence)
            .collect::<Vec<_>>(),
        [1, 2]
    );
}

#[tokio::test]
async fn a_creating_command_on_a_stream_that_exists_is_handled_on_its_loaded_state() {
    let db = TestDb::new().await;
    let log = log(&db).await;
    let pool = db.pool(DbRole::App, 2).await;
    let store = store(&pool);
    let id = Uuid::new_v4().to_string();
    add(&cqrs(&pool), &id, 3, Uuid::nil()).await.unwrap();

    let committed = create(
        &store,
        &id,
        CounterCommand::Add {
            times: 1,
            marker: Uuid::nil(),
        },
    )
    .await
    .expect("appended after the existing events");

    let (reported, stored) = committed_against_stored(&log, &id, &committed).await;
    assert_eq!(reported, stored[3..]);
    assert_eq!(reported[0].0, 4);
    assert_eq!(store.load_aggregate(&id).await.unwrap().state().value, 4);
}

#[tokio::test]
async fn a_creating_command_the_empty_aggregate_refuses_is_decided_by_the_stream_that_exists() {
    let db = TestDb::new().await;
    let pool = db.pool(DbRole::App, 2).await;
    let store = store(&pool);
    let existing = Uuid::new_v4().to_string();
    add(&cqrs(&pool), &existing, 2, Uuid::nil()).await.unwrap();

    let taken = create(&store, &existing, CounterCommand::TakeOne)
        .await
        .expect("the loaded counter has one to give");
    assert_eq!(taken[0].sequence, 3);

    let refused = create(&store, &Uuid::new_v4().to_string(), CounterCommand::TakeOne)
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        CommandError::Rejected(Refused::NothingToTake)
    ));
}

/// Distinct transactions among the events of `ids`.
async fn commits_holding(pool: &PgPool, ids: &[String]) -> i64 {
    sqlx::query_scalar(
        "SELECT count(DISTINCT transaction_id::text) FROM events WHERE aggregate_id = ANY($1)",
    )
    .bind(ids)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn commands_appending_at_the_same_time_share_commits_and_each_gets_its_own_answer() {
    let db = TestDb::new().await;
    let log = log(&db).await;
    let pool = db.pool(DbRole::App, 8).await;
    let store = store(&pool);
    let add_two = || CounterCommand::Add {
        times: 2,
        marker: Uuid::nil(),
    };

    // The first finds the store idle and goes alone; the others queue behind it before the
    // store's writer first runs (the test's runtime has one thread), so they make one batch.
    let ids: Vec<String> = (0..20).map(|_| Uuid::new_v4().to_string()).collect();
    let created =
        futures::future::join_all(ids.iter().map(|id| create(&store, id, add_two()))).await;
    for (id, committed) in ids.iter().zip(created) {
        let (reported, stored) = committed_against_stored(&log, id, &committed.unwrap()).await;
        assert_eq!(reported, stored);
        assert_eq!(stored.len(), 2);
    }
    assert_eq!(commits_holding(&log, &ids[..1]).await, 1);
    assert_eq!(
        commits_holding(&log, &ids[1..]).await,
        1,
        "19 creations queued behind the first, one commit"
    );
    assert_eq!(commits_holding(&log, &ids).await, 2);

    // A batch with a stale command and an unacceptable event in it: those two fail alone.
    // Both are read while another command's append is queued, so neither goes alone.
    let [taken, untenanted, ahead, queued] = [(); 4].map(|()| Uuid::new_v4().to_string());
    let (first, second, stale, no_tenant) = tokio::join!(
        create(&store, &ahead, add_two()),
        create(&store, &queued, add_two()),
        store.load_aggregate(&taken),
        store.load_aggregate(&untenanted),
    );
    first.unwrap();
    second.unwrap();
    let (stale, no_tenant) = (stale.unwrap(), no_tenant.unwrap());
    add(&cqrs(&pool), &taken, 1, Uuid::nil()).await.unwrap();
    let added = || {
        vec![CounterEvent::Added {
            marker: Uuid::nil(),
        }]
    };
    // The first creation goes alone; the rest, and the stale command after them, queue.
    let more_ids: Vec<String> = (0..20).map(|_| Uuid::new_v4().to_string()).collect();
    let (created, conflict, invalid) = tokio::join!(
        futures::future::join_all(more_ids.iter().map(|id| create(&store, id, add_two()))),
        store.commit(added(), stale, tenant_metadata(TENANT)),
        store.commit(added(), no_tenant, HashMap::new()),
    );
    assert!(
        matches!(conflict, Err(AggregateError::AggregateConflict)),
        "{conflict:?}"
    );
    let invalid = invalid.map_err(command_error::<Refused>).unwrap_err();
    assert!(matches!(invalid, CommandError::Invalid(_)), "{invalid:?}");
    for (id, committed) in more_ids.iter().zip(created) {
        let (reported, stored) = committed_against_stored(&log, id, &committed.unwrap()).await;
        assert_eq!(reported, stored);
    }
    assert_eq!(
        commits_holding(&log, &more_ids).await,
        20,
        "the shared statement failed, so each creation was appended alone"
    );
    let untenanted_events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
            .bind(&untenanted)
            .fetch_one(&log)
            .await
            .unwrap();
    assert_eq!(untenanted_events, 0);
    assert_eq!(store.load_aggregate(&taken).await.unwrap().state().value, 1);
}

/// Transactions of this test's database open between statements, as its own login sees them.
async fn open_transactions(owner: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND state = 'idle in transaction'",
    )
    .fetch_one(owner)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_command_alone_reads_and_appends_in_one_transaction_and_one_arriving_meanwhile_queues() {
    let db = TestDb::new().await;
    let log = log(&db).await;
    let owner = db.pool(DbRole::Owner, 1).await;
    // Two connections: the command alone holds one from its read to its commit.
    let pool = db.pool(DbRole::App, 2).await;
    let store = store(&pool);
    let cqrs = CqrsFramework::new(store.clone(), vec![], ());
    let (first, second) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    add(&cqrs, &first, 1, Uuid::nil()).await.unwrap();

    // Read alone, in a transaction still open until its append: a command arriving meanwhile
    // finds the store busy and goes through the queue, taking the next sequence first, so the
    // append of the command decided on the older state conflicts.
    let loaded = store.load_aggregate(&first).await.unwrap();
    assert_eq!(loaded.state().value, 1);
    assert_eq!(
        open_transactions(&owner).await,
        1,
        "the read's, kept for the append"
    );
    add(&cqrs, &first, 1, Uuid::nil()).await.unwrap();
    add(&cqrs, &second, 1, Uuid::nil()).await.unwrap();
    assert_eq!(open_transactions(&owner).await, 1, "the others' ended");
    let stale = store
        .commit(
            vec![CounterEvent::Added {
                marker: Uuid::nil(),
            }],
            loaded,
            tenant_metadata(TENANT),
        )
        .await;
    assert!(
        matches!(stale, Err(AggregateError::AggregateConflict)),
        "{stale:?}"
    );
    assert_eq!(open_transactions(&owner).await, 0);

    // Idle again: the next command goes alone, and its events and snapshot land.
    add(&cqrs, &first, SNAPSHOT_EVERY, Uuid::nil())
        .await
        .unwrap();
    let reloaded = store.load_aggregate(&first).await.unwrap();
    assert_eq!(reloaded.state().value, 2 + SNAPSHOT_EVERY as u64);
    assert_eq!(
        reloaded.events_replayed(),
        0,
        "loaded from the snapshot alone"
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
        .bind(&first)
        .fetch_one(&log)
        .await
        .unwrap();
    assert_eq!(stored, (2 + SNAPSHOT_EVERY) as i64);
}
