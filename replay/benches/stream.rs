//! `casebook-replay stream` over one tenant's 1,000,000 events (next to another tenant's
//! 50,000), run as the built binary, next to a raw ordered `COPY` of the same rows on the
//! same cluster in one run; the child's peak RSS is read from `/proc/<pid>/status` (VmHWM)
//! while it runs:
//! `cargo bench -p casebook-replay --bench stream` (with the local stack up).

use std::process::Stdio;
use std::time::{Duration, Instant};

use casebook_tests::{DbRole, TestDb};
use futures::TryStreamExt;
use sqlx::{Executor, PgPool};
use tokio::io::AsyncReadExt;

const TENANT: &str = "6f1c2f4e-8a8e-4f53-9d0e-4c1f3b0b8a11";
const OTHER: &str = "0b8a1c2f-8a8e-4f53-9d0e-4c1f3b0b8a22";
const EVENTS: i64 = 1_000_000;
const NOTE: &str = "a contract clause the consultant flagged for review: indemnity cap";

/// Every 21st event is the other tenant's, so the streamed tenant has exactly `EVENTS`.
async fn seed(pool: &PgPool) {
    pool.execute(
        format!(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             SELECT 'Seed', (g / 10)::text, g % 10 + 1, 'Recorded', '1',
                    jsonb_build_object('Recorded', jsonb_build_object('note', '{NOTE}', 'n', g)),
                    jsonb_build_object('tenant_id', CASE WHEN g % 21 = 20 THEN '{OTHER}' ELSE '{TENANT}' END,
                                       'actor_id', 'seed', 'actor_role', 'consultant',
                                       'request_id', gen_random_uuid()::text,
                                       'correlation_id', 'c', 'causation_id', 'c', 'source', 'api')
               FROM generate_series(0, {} - 1) AS g",
            EVENTS / 20 * 21
        )
        .as_str(),
    )
    .await
    .expect("seed the log");
    pool.execute("VACUUM ANALYZE events").await.expect("vacuum");
}

async fn raw_copy(pool: &PgPool) -> (Duration, usize) {
    let mut conn = pool.acquire().await.expect("connection");
    let start = Instant::now();
    let mut copy = conn
        .copy_out_raw(&format!(
            "COPY (SELECT transaction_id, global_position, tenant_id, aggregate_type, aggregate_id,
                          sequence, event_type, event_version, payload, metadata, recorded_at
                     FROM events WHERE tenant_id = '{TENANT}'
                    ORDER BY transaction_id, global_position) TO STDOUT"
        ))
        .await
        .expect("copy out");
    let mut bytes = 0;
    while let Some(chunk) = copy.try_next().await.expect("copy chunk") {
        bytes += chunk.len();
    }
    (start.elapsed(), bytes)
}

/// The peak resident set of `pid` so far, in kB.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Streamed {
    elapsed: Duration,
    lines: u64,
    bytes: u64,
    peak_kb: u64,
}

async fn stream(db: &TestDb, format: &str) -> Streamed {
    let start = Instant::now();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_casebook-replay"))
        .args(["stream", "--tenant", TENANT, "--quiet", "--format", format])
        .env("DATABASE_URL", db.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start casebook-replay");
    let pid = child.id().expect("running");
    let mut out = child.stdout.take().expect("stdout");
    let mut buffer = vec![0_u8; 1 << 16];
    let (mut lines, mut bytes, mut peak_kb) = (0_u64, 0_u64, 0_u64);
    let mut sampled = Instant::now();
    loop {
        let read = out.read(&mut buffer).await.expect("read the stream");
        if read == 0 {
            break;
        }
        bytes += read as u64;
        lines += buffer[..read].iter().filter(|b| **b == b'\n').count() as u64;
        if sampled.elapsed() > Duration::from_millis(20) {
            peak_kb = peak_kb.max(vm_hwm(pid).unwrap_or(0));
            sampled = Instant::now();
        }
    }
    peak_kb = peak_kb.max(vm_hwm(pid).unwrap_or(0));
    let status = child.wait().await.expect("wait");
    assert!(status.success(), "stream failed: {status}");
    Streamed {
        elapsed: start.elapsed(),
        lines,
        bytes,
        peak_kb,
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let db = TestDb::new().await;
    let pool = db.pool(DbRole::Owner, 2).await;
    seed(&pool).await;
    // Warm the cache equally for both.
    raw_copy(&pool).await;
    let (copy, copy_bytes) = raw_copy(&pool).await;
    let copy_rate = EVENTS as f64 / copy.as_secs_f64();
    let load_before = load_average();
    let jsonl = stream(&db, "jsonl").await;
    let table = stream(&db, "table").await;
    let load_after = load_average();
    for run in [&jsonl, &table] {
        assert_eq!(
            run.lines, EVENTS as u64,
            "every event of the tenant, no other"
        );
    }
    println!(
        "\n## `casebook-replay stream` over one tenant's {EVENTS} events (of {})\n",
        EVENTS / 20 * 21
    );
    println!("load average (1, 5, 15 min) before: {load_before}; after: {load_after}\n");
    println!("| reader | events/s | ratio to COPY | output | peak RSS |");
    println!("|---|---|---|---|---|");
    println!(
        "| raw `COPY (… WHERE tenant_id = … ORDER BY transaction_id, global_position) TO STDOUT` | {copy_rate:.0} | 1.00 | {} MB | — |",
        copy_bytes / 1_000_000
    );
    for (name, run) in [
        ("`stream --format jsonl`", &jsonl),
        ("`stream --format table`", &table),
    ] {
        let rate = EVENTS as f64 / run.elapsed.as_secs_f64();
        println!(
            "| {name} (whole process: start, connect, read, write) | {rate:.0} | {:.2} | {} MB | {:.1} MB |",
            rate / copy_rate,
            run.bytes / 1_000_000,
            run.peak_kb as f64 / 1024.0
        );
    }
}
