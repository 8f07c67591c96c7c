//! Event store throughput and latency next to raw Postgres on the same cluster, in one run.
//!
//! `cargo bench -p casebook-adapters --bench event_store` (with the local stack up) prints a
//! Markdown report: (a) raw single-row INSERT commits, (b) the raw SQL equivalent of a
//! command, (c) Casebook commands through cqrs-es, (c′) the same commands as creations
//! (`EventStore::execute_new`, no read of the new stream), and vanilla cqrs-es +
//! postgres-es, each at 1, 4 and 16 connections, rates and p50/p99 latencies, each cell
//! `BENCH_ROUNDS` times (default 3) interleaved; (d) append cost on a 10-event vs a
//! 10,000-event stream. `BENCH_SECONDS` (default 5) sets each cell's duration.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use casebook_adapters::event_store::EventStore;
use casebook_tests::bench::{millis, session_scoped, Cells, Run, Spread};
use casebook_tests::{DbRole, TestDb};
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, CqrsFramework, DomainEvent};
use postgres_es::PostgresEventRepository;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Ledger {
    entries: u64,
}

#[derive(Clone)]
struct Record {
    note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum LedgerEvent {
    Recorded { note: String },
}

impl DomainEvent for LedgerEvent {
    fn event_type(&self) -> String {
        "Recorded".into()
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

// About nobody in particular: nothing to seal.
impl casebook_domain::personal::DataSubject for Ledger {
    fn data_subject(&self) -> Option<casebook_domain::ids::UserId> {
        None
    }
}

impl Aggregate for Ledger {
    const TYPE: &'static str = "Ledger";
    type Command = Record;
    type Event = LedgerEvent;
    type Error = Never;
    type Services = ();

    async fn handle(
        &mut self,
        command: Record,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), Never> {
        sink.write(LedgerEvent::Recorded { note: command.note }, self)
            .await;
        Ok(())
    }

    fn apply(&mut self, _: LedgerEvent) {
        self.entries += 1;
    }
}

const NOTE: &str = "a contract clause the consultant flagged for review: indemnity cap";

/// The tenant of every stream here.
const TENANT: Uuid = Uuid::from_u128(0x6f1c2f4e_8a8e_4f53_9d0e_4c1f3b0b8a11);

fn metadata() -> HashMap<String, String> {
    HashMap::from([
        ("tenant_id".into(), TENANT.to_string()),
        ("actor".into(), "bench".into()),
        ("request_id".into(), Uuid::new_v4().to_string()),
    ])
}

/// Runs `op` on `through` from `tasks` concurrent tasks for `duration`.
async fn run<T, Fut>(tasks: usize, duration: Duration, through: &T, op: fn(T) -> Fut) -> Run
where
    T: Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let through = through.clone();
            tokio::spawn(async move {
                let mut took = Vec::new();
                while start.elapsed() < duration {
                    let began = Instant::now();
                    op(through.clone()).await;
                    took.push(began.elapsed());
                }
                took
            })
        })
        .collect();
    let mut took = Vec::new();
    for handle in handles {
        took.extend(handle.await.expect("bench task"));
    }
    Run::new(took, start.elapsed())
}

async fn raw_insert(pool: PgPool) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('Raw', $1, 1, 'Recorded', '1', $2, $3)",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(serde_json::json!({ "Recorded": { "note": NOTE } }))
    .bind(serde_json::to_value(metadata()).unwrap())
    .execute(&pool)
    .await
    .expect("raw insert");
}

async fn raw_command(pool: PgPool) {
    let id = Uuid::new_v4().to_string();
    let mut tx = pool.begin().await.expect("begin");
    let existing: Vec<(i64, serde_json::Value)> = sqlx::query_as(
        "SELECT sequence, payload FROM events
          WHERE aggregate_type = 'RawCommand' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&id)
    .fetch_all(&mut *tx)
    .await
    .expect("read stream");
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('RawCommand', $1, $2, 'Recorded', '1', $3, $4)",
    )
    .bind(&id)
    .bind(existing.len() as i64 + 1)
    .bind(serde_json::json!({ "Recorded": { "note": NOTE } }))
    .bind(serde_json::to_value(metadata()).unwrap())
    .execute(&mut *tx)
    .await
    .expect("append");
    tx.commit().await.expect("commit");
}

type Casebook = CqrsFramework<Ledger, EventStore<Ledger>>;

/// Casebook's store: each read and append a transaction assuming the request path's role and
/// the tenant (`SET LOCAL`).
fn casebook(pool: &PgPool) -> Casebook {
    CqrsFramework::new(
        EventStore::new(pool.clone(), vec![]).for_tenant(TENANT),
        vec![],
        (),
    )
}

type Vanilla = CqrsFramework<Ledger, PersistedEventStore<PostgresEventRepository, Ledger>>;

fn record() -> Record {
    Record { note: NOTE.into() }
}

async fn append_cost<ES: cqrs_es::EventStore<Ledger>>(
    cqrs: &CqrsFramework<Ledger, ES>,
    id: &str,
    appends: usize,
) -> Duration {
    let start = Instant::now();
    for _ in 0..appends {
        cqrs.execute_with_metadata(id, record(), metadata())
            .await
            .expect("append");
    }
    start.elapsed() / appends as u32
}

async fn seed_stream(pool: &PgPool, id: &str, events: i64) {
    let cqrs = casebook(pool);
    // Through the store, so the stream has the snapshots a real one would have.
    for _ in 0..events {
        cqrs.execute_with_metadata(id, record(), metadata())
            .await
            .expect("seed");
    }
}

/// The cells of one connection count, in the order each round runs them.
const CELLS: [&str; 5] = [
    "(a) raw INSERT commit",
    "(b) raw command (read + append)",
    "(c) Casebook command",
    "(c′) Casebook creation",
    "vanilla cqrs-es + postgres-es",
];
const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const C_NEW: usize = 3;
const VANILLA: usize = 4;

/// Each cell at `connections`, `rounds` times, interleaved (a, b, c, c′, vanilla, a, …) so
/// that a noisy stretch of the machine lands on every cell alike; the runs of each cell.
async fn cells(db: &TestDb, connections: usize, rounds: usize, cell: Duration) -> Vec<Vec<Run>> {
    let pool = db.pool(DbRole::App, connections as u32).await;
    let raw = session_scoped(db.login_options(), TENANT, connections as u32).await;
    let casebook = Arc::new(casebook(&pool));
    let store = EventStore::<Ledger>::new(pool.clone(), vec![]);
    let vanilla: Arc<Vanilla> = Arc::new(CqrsFramework::new(
        PersistedEventStore::new_event_store(PostgresEventRepository::new(raw.clone())),
        vec![],
        (),
    ));
    let mut runs: Vec<Vec<Run>> = CELLS.iter().map(|_| Vec::new()).collect();
    // Every connection of both pools opened before the first measured cell.
    run(connections, Duration::from_millis(500), &raw, raw_insert).await;
    run(connections, Duration::from_millis(500), &store, creation).await;
    for _ in 0..rounds {
        runs[A].push(run(connections, cell, &raw, raw_insert).await);
        runs[B].push(run(connections, cell, &raw, raw_command).await);
        runs[C].push(run(connections, cell, &casebook, command).await);
        runs[C_NEW].push(run(connections, cell, &store, creation).await);
        runs[VANILLA].push(run(connections, cell, &vanilla, command).await);
    }
    pool.close().await;
    raw.close().await;
    runs
}

/// A command creating a new aggregate through `cqrs` (Casebook's store or vanilla's).
async fn command<ES: cqrs_es::EventStore<Ledger>>(cqrs: Arc<CqrsFramework<Ledger, ES>>) {
    cqrs.execute_with_metadata(&Uuid::new_v4().to_string(), record(), metadata())
        .await
        .expect("command");
}

/// The same command as a creation: no read of the new stream.
async fn creation(store: EventStore<Ledger>) {
    store
        .execute_new(&Uuid::new_v4().to_string(), record(), &(), metadata())
        .await
        .expect("creation");
}

/// The spread of `figure` over the rounds of `runs`.
fn spread(runs: &[Run], figure: impl Fn(&Run) -> f64) -> Spread {
    Spread::of(runs.iter().map(figure))
}

/// The spread over the rounds of one cell's rate against another's in the same round.
fn ratio(runs: &[Vec<Run>], of: usize, to: usize) -> Spread {
    Spread::of(
        runs[of]
            .iter()
            .zip(&runs[to])
            .map(|(of, to)| of.per_second / to.per_second),
    )
}

#[tokio::main]
async fn main() {
    let Cells { seconds, rounds } = Cells::from_env();
    let cell = Duration::from_secs(seconds);
    let db = TestDb::new().await;

    let mut by_connections = Vec::new();
    for connections in [1_usize, 4, 16] {
        by_connections.push((connections, cells(&db, connections, rounds, cell).await));
    }

    println!(
        "## Event store: median (range) of {rounds} interleaved rounds, each cell {seconds} s, \
         a new aggregate per command\n"
    );
    println!("| connections | (a) raw INSERT commits/s | (b) raw command (read + append) /s | (c) Casebook commands/s | (c′) Casebook creations/s | vanilla cqrs-es + postgres-es /s | (c)/(b) | (c′)/(a) | (c)/vanilla |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (connections, runs) in &by_connections {
        let rate = |cell: usize| spread(&runs[cell], |run| run.per_second);
        println!(
            "| {connections} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} |",
            rate(A),
            rate(B),
            rate(C),
            rate(C_NEW),
            rate(VANILLA),
            ratio(runs, C, B),
            ratio(runs, C_NEW, A),
            ratio(runs, C, VANILLA),
        );
    }
    println!("\n## Latency per operation, ms: p50 / p99, median (range) of the rounds\n");
    println!("| connections | {} |", CELLS.join(" | "));
    println!("|---|---|---|---|---|---|");
    for (connections, runs) in &by_connections {
        let latencies: Vec<String> = runs
            .iter()
            .map(|cell| {
                format!(
                    "{:.3} / {:.3}",
                    spread(cell, |run| millis(run.latencies.p50())),
                    spread(cell, |run| millis(run.latencies.p99()))
                )
            })
            .collect();
        println!("| {connections} | {} |", latencies.join(" | "));
    }
    let (_, lone) = &by_connections[0];
    let p50_over = |of: usize, to: usize| {
        Spread::of(
            lone[of]
                .iter()
                .zip(&lone[to])
                .map(|(of, to)| millis(of.latencies.p50()) - millis(to.latencies.p50())),
        )
    };
    println!(
        "\nAt 1 connection, p50 over the raw SQL's in the same round, ms: command (c) − (b) {:.3}; \
         creation (c′) − (a) {:.3}",
        p50_over(C, B),
        p50_over(C_NEW, A)
    );

    let pool = db.pool(DbRole::App, 4).await;
    let raw = session_scoped(db.login_options(), TENANT, 4).await;
    let (short, long) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    seed_stream(&pool, &short, 10).await;
    seed_stream(&pool, &long, 10_000).await;
    let cqrs = casebook(&pool);
    let short_cost = append_cost(&cqrs, &short, 500).await;
    let long_cost = append_cost(&cqrs, &long, 500).await;
    // The same streams through vanilla cqrs-es + postgres-es, which replays the whole stream.
    let vanilla: Vanilla = CqrsFramework::new(
        PersistedEventStore::new_event_store(PostgresEventRepository::new(raw.clone())),
        vec![],
        (),
    );
    let vanilla_short = append_cost(&vanilla, &short, 100).await;
    let vanilla_long = append_cost(&vanilla, &long, 100).await;
    println!(
        "\n## (d) Append cost by stream length (1 connection; Casebook 500 appends, vanilla 100)\n"
    );
    println!("| stream | Casebook mean append | ratio | vanilla mean append | ratio |");
    println!("|---|---|---|---|---|");
    println!("| ~10 events | {short_cost:.2?} | 1.00 | {vanilla_short:.2?} | 1.00 |");
    println!(
        "| ~10,000 events | {long_cost:.2?} | {:.2} | {vanilla_long:.2?} | {:.2} |",
        long_cost.as_secs_f64() / short_cost.as_secs_f64(),
        vanilla_long.as_secs_f64() / vanilla_short.as_secs_f64()
    );
}
