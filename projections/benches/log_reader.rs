//! The gap-safe log reader over 1,000,000 events next to a raw ordered `COPY` of the same
//! rows, on the same cluster in one run:
//! `cargo bench -p casebook-projections --bench log_reader` (with the local stack up).

use std::time::Instant;

use casebook_projections::log::{Checkpoint, LogReader, Scope};
use casebook_tests::{DbRole, TestDb};
use futures::TryStreamExt;
use sqlx::{Executor, PgPool};

const NOTE: &str = "a contract clause the consultant flagged for review: indemnity cap";

async fn seed_log(pool: &PgPool, events: i64) {
    pool.execute(
        format!(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             SELECT 'Seed', (g / 10)::text, g % 10 + 1, 'Recorded', '1',
                    jsonb_build_object('Recorded', jsonb_build_object('note', '{NOTE}', 'n', g)),
                    jsonb_build_object('tenant_id', '6f1c2f4e-8a8e-4f53-9d0e-4c1f3b0b8a11',
                                       'actor', 'seed', 'request_id', gen_random_uuid()::text)
               FROM generate_series(0, {} - 1) AS g",
            events
        )
        .as_str(),
    )
    .await
    .expect("seed the log");
}

async fn raw_copy_rate(pool: &PgPool, events: i64) -> (f64, usize) {
    let mut conn = pool.acquire().await.expect("connection");
    let start = Instant::now();
    let mut copy = conn
        .copy_out_raw(
            "COPY (SELECT transaction_id, global_position, tenant_id, aggregate_type, aggregate_id,
                          sequence, event_type, event_version, payload, metadata, recorded_at
                     FROM events ORDER BY transaction_id, global_position) TO STDOUT",
        )
        .await
        .expect("copy out");
    let mut bytes = 0;
    while let Some(chunk) = copy.try_next().await.expect("copy chunk") {
        bytes += chunk.len();
    }
    (events as f64 / start.elapsed().as_secs_f64(), bytes)
}

async fn reader_rate(pool: &PgPool) -> (f64, u64) {
    let reader = LogReader::new(pool.clone()).with_page_size(5_000);
    let start = Instant::now();
    let count = reader
        .catch_up(Checkpoint::START, Scope::All)
        .try_fold(0_u64, |n, _| async move { Ok(n + 1) })
        .await
        .expect("read the log");
    (count as f64 / start.elapsed().as_secs_f64(), count)
}

#[tokio::main]
async fn main() {
    let db = TestDb::new().await;
    let pool = db.pool(DbRole::Owner, 2).await;
    let events = 1_000_000;
    seed_log(&pool, events).await;
    pool.execute("VACUUM ANALYZE events").await.expect("vacuum");
    // Warm the cache equally for both readers.
    raw_copy_rate(&pool, events).await;
    let (copy_rate, bytes) = raw_copy_rate(&pool, events).await;
    let (rate, read) = reader_rate(&pool).await;
    assert_eq!(read, events as u64, "the reader returns every event");
    println!("\n## Log reader over {events} events\n");
    println!("| reader | events/s | ratio |");
    println!("|---|---|---|");
    println!("| raw `COPY (… ORDER BY transaction_id, global_position) TO STDOUT` ({} MB) | {copy_rate:.0} | 1.00 |", bytes / 1_000_000);
    println!(
        "| `LogReader::catch_up` (pages of 5,000, decoded events) | {rate:.0} | {:.2} |",
        rate / copy_rate
    );
}
