//! The gap-safe log reader against the real Postgres.

use std::collections::HashSet;
use std::time::Duration;

use casebook_projections::log::{Checkpoint, LogReader, RecordedEvent, Scope};
use casebook_tests::{DbRole, TestDb};
use futures::{StreamExt, TryStreamExt};
use rand::Rng;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

const INSERT: &str = "
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
VALUES ('Probe', $1, $2, 'Probed', '1', '{}', jsonb_build_object('tenant_id', $3::text))";

async fn insert(conn: &mut PgConnection, stream: &str, sequence: i64, tenant: Uuid) {
    sqlx::query(INSERT)
        .bind(stream)
        .bind(sequence)
        .bind(tenant.to_string())
        .execute(conn)
        .await
        .expect("insert probe event");
}

/// Everything readable from the start, once at least `expected` events are: an event becomes
/// readable when every older transaction in the cluster has ended, other tests' included
/// (a hang guard, not a speed assertion).
async fn read_at_least(reader: &LogReader, scope: Scope, expected: usize) -> Vec<RecordedEvent> {
    for _ in 0..600 {
        let events: Vec<RecordedEvent> = reader
            .catch_up(Checkpoint::START, scope)
            .try_collect()
            .await
            .unwrap();
        if events.len() >= expected {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {expected} events became readable");
}

fn keys(events: &[RecordedEvent]) -> Vec<(String, i64)> {
    events
        .iter()
        .map(|e| (e.aggregate_id.clone(), e.sequence))
        .collect()
}

#[tokio::test]
async fn an_event_of_a_transaction_still_open_holds_back_later_commits_until_it_commits() {
    let db = TestDb::new().await;
    let pool = db.pool(DbRole::Projector, 4).await;
    let reader = LogReader::new(pool.clone());
    let tenant = Uuid::new_v4();

    let mut a = db.superuser().await;
    let mut b = db.superuser().await;
    a.execute("BEGIN").await.unwrap();
    insert(&mut a, "a", 1, tenant).await;
    b.execute("BEGIN").await.unwrap();
    insert(&mut b, "b", 1, tenant).await;
    b.execute("COMMIT").await.unwrap();

    let seen_while_a_open: Vec<_> = reader
        .catch_up(Checkpoint::START, Scope::All)
        .try_collect()
        .await
        .unwrap();
    assert!(
        seen_while_a_open.is_empty(),
        "B committed, but reading it now would step over A's lower position: {:?}",
        keys(&seen_while_a_open)
    );

    a.execute("COMMIT").await.unwrap();
    let seen = read_at_least(&reader, Scope::All, 2).await;
    assert_eq!(keys(&seen), vec![("a".into(), 1), ("b".into(), 1)]);
    assert!(seen[0].global_position() < seen[1].global_position());

    let after_last = seen.last().unwrap().checkpoint;
    let again: Vec<_> = reader
        .catch_up(after_last, Scope::All)
        .try_collect()
        .await
        .unwrap();
    assert!(again.is_empty(), "each event is read exactly once");
}

#[tokio::test]
async fn a_tenant_scoped_read_returns_only_that_tenants_events() {
    let db = TestDb::new().await;
    let pool = db.pool(DbRole::Projector, 2).await;
    let (mine, theirs) = (Uuid::new_v4(), Uuid::new_v4());
    let mut conn = db.superuser().await;
    for sequence in 1..=5 {
        insert(&mut conn, "mine", sequence, mine).await;
        insert(&mut conn, "theirs", sequence, theirs).await;
    }
    let reader = LogReader::new(pool).with_page_size(2);
    let events = read_at_least(&reader, Scope::Tenant(mine), 5).await;
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|e| e.tenant_id == mine));
    assert!(events.windows(2).all(|w| w[0].checkpoint < w[1].checkpoint));
}

#[tokio::test]
async fn a_database_failure_surfaces_as_an_error_not_a_silent_end() {
    let db = TestDb::new().await;
    let pool = db.pool(DbRole::Projector, 2).await;
    let reader = LogReader::new(pool.clone());
    pool.close().await;
    let mut stream = Box::pin(reader.catch_up(Checkpoint::START, Scope::All));
    assert!(matches!(stream.next().await, Some(Err(_))));
    assert!(
        stream.next().await.is_none(),
        "the stream ends after reporting"
    );
}

/// What a writer task committed.
struct Committed(Vec<(String, i64)>);

async fn write_with_random_delays(pool: PgPool, writer: usize, target: usize) -> Committed {
    let mut conn = pool.acquire().await.unwrap();
    let mut committed = Vec::new();
    let mut sequence = 0_i64;
    let stream = format!("writer-{writer}");
    let tenant = Uuid::new_v4();
    while committed.len() < target {
        let (batch, pause_us, roll_back) = {
            let mut rng = rand::thread_rng();
            (
                rng.gen_range(1..=4_i64),
                rng.gen_range(0..1_500_u64),
                rng.gen_bool(0.05),
            )
        };
        let mut tx = conn.begin().await.unwrap();
        for offset in 1..=batch {
            insert(&mut tx, &stream, sequence + offset, tenant).await;
        }
        // Holding the transaction open lets other writers' later positions commit first.
        tokio::time::sleep(Duration::from_micros(pause_us)).await;
        if roll_back {
            tx.rollback().await.unwrap();
            continue;
        }
        tx.commit().await.unwrap();
        for offset in 1..=batch {
            committed.push((stream.clone(), sequence + offset));
        }
        sequence += batch;
    }
    Committed(committed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_consuming_during_concurrent_appends_sees_every_committed_event_once_in_order() {
    let db = TestDb::new().await;
    let writers_pool = db.pool(DbRole::Owner, 10).await;
    let reader_pool = db.pool(DbRole::Projector, 3).await;

    let reader = LogReader::new(reader_pool).with_poll_interval(Duration::from_millis(50));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(None::<usize>);
    let consumer = tokio::spawn(async move {
        let mut stream = Box::pin(reader.follow(Checkpoint::START, Scope::All));
        let mut seen: Vec<RecordedEvent> = Vec::new();
        loop {
            if let Some(expected) = *stop_rx.borrow() {
                if seen.len() >= expected {
                    return seen;
                }
            }
            tokio::select! {
                next = stream.next() => seen.push(next.expect("a following stream never ends").unwrap()),
                _ = stop_rx.changed() => {}
            }
        }
    });

    let writers: Vec<_> = (0..8)
        .map(|writer| {
            tokio::spawn(write_with_random_delays(
                writers_pool.clone(),
                writer,
                2_500,
            ))
        })
        .collect();
    let mut committed = HashSet::new();
    for writer in writers {
        for key in writer.await.unwrap().0 {
            assert!(committed.insert(key));
        }
    }
    assert!(committed.len() >= 20_000);
    stop_tx.send(Some(committed.len())).unwrap();

    // A generous guard against a hang, not a speed assertion.
    let seen = tokio::time::timeout(Duration::from_secs(300), consumer)
        .await
        .expect("the reader catches up")
        .unwrap();
    assert_eq!(
        seen.len(),
        committed.len(),
        "no event skipped, none read twice"
    );
    let seen_keys: HashSet<(String, i64)> = keys(&seen).into_iter().collect();
    assert_eq!(seen_keys, committed);
    assert!(
        seen.windows(2).all(|w| w[0].checkpoint < w[1].checkpoint),
        "read in (transaction_id, global_position) order"
    );
}
