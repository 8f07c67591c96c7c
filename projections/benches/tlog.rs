//! The verifiable log at 1,000,000 audit rows of one tenant: how fast the integrator adds rows
//! to the tree and signs (against inserting the same rows, the raw rate the log is fed at),
//! and what a proof costs an auditor (latency through the product's own reads, as the API's
//! role, and size).
//!
//! ```sh
//! eval "$(infra/local/stack.sh up)"
//! cargo bench -p casebook-projections --bench tlog
//! BENCH_ROWS=100000 cargo bench -p casebook-projections --bench tlog
//! ```
//!
//! The rows are synthetic but shaped like the product's (every column filled as a
//! `DiagnosisProposed` row fills it: ids, provenance, tokens, digest), written straight into
//! `audit_log` in batches of [`BATCH`]: their chain hashes are not computed, which the
//! integrator never reads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use casebook_domain::ids::TenantId;
use casebook_projections::tlog::{
    self, Integrator, LogKey, LogName, ProofRequest, INTEGRATION_BATCH,
};
use casebook_tests::bench::{millis, Latencies};
use casebook_tests::{DbRole, TestDb};
use rand::{Rng, SeedableRng};
use sqlx::{Executor, PgConnection, PgPool};
use uuid::Uuid;

/// Rows per insert statement, and per integration transaction.
const BATCH: i64 = INTEGRATION_BATCH;
/// Proofs asked for, of each kind.
const PROOFS: usize = 1_000;

/// Inserts audit rows `from..from + count` (by `seq`) for `tenant`.
async fn insert_rows(conn: &mut PgConnection, tenant: Uuid, from: i64, count: i64) {
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, seq, global_position, recorded_at, actor_id, actor_role,
                source, action, aggregate_type, aggregate_id, event_sequence, session_id, query_id,
                diagnosis_id, outcome, confidence, model_id, model_tier, prompt_template_id,
                prompt_template_hash, retrieved_judgment_ids, input_tokens, output_tokens,
                cost_usd_micros, request_id, correlation_id, causation_id, event_digest, encoding,
                prev_hash, hash)
         SELECT $1, n, n, now(), 'casebook:system', 'system', 'worker', 'DiagnosisProposed',
                'Diagnosis', md5(n::text), 2, gen_random_uuid(), gen_random_uuid(),
                gen_random_uuid(), NULL, 0.82, 'anthropic.claude-3-haiku', 'standard',
                'diagnose-v3', md5('template'), '[]'::jsonb, 1200 + n % 300, 400 + n % 100,
                900 + n % 50, 'req-' || n, 'req-' || n, 'Diagnosis/' || md5(n::text) || '/1',
                sha256(n::text::bytea), 2, sha256(''::bytea), sha256(n::text::bytea)
           FROM generate_series($2::bigint, $2 + $3 - 1) AS n",
    )
    .bind(tenant)
    .bind(from)
    .bind(count)
    .execute(conn)
    .await
    .expect("insert audit rows");
}

#[tokio::main]
async fn main() {
    let rows: i64 = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|rows| rows.parse().ok())
        .unwrap_or(1_000_000);
    let db = TestDb::new().await;
    let projector = db.pool(DbRole::Projector, 2).await;
    let app = db.pool(DbRole::App, 2).await;
    let mut su = db.superuser().await;
    su.execute("SET session_replication_role = replica")
        .await
        .unwrap();
    let tenant = TenantId::from_uuid(Uuid::new_v4());

    // (raw) The rows themselves, inserted a batch per statement.
    let started = Instant::now();
    let mut from = 1;
    while from <= rows {
        let count = BATCH.min(rows - from + 1);
        insert_rows(&mut su, *tenant.as_uuid(), from, count).await;
        from += count;
    }
    let raw = started.elapsed();
    su.execute("ANALYZE audit_log").await.unwrap();

    // (i) The integrator over all of them, a batch per transaction, each signed.
    let (private, verifier) = LogKey::generate("casebook.bench");
    let integrator = Integrator::new(Arc::new(LogKey::from_private(&private).unwrap()));
    let started = Instant::now();
    let mut signed = 0;
    while integrator
        .integrate(&projector, LogName::Audit, tenant)
        .await
        .expect("integrate")
        .is_some()
    {
        signed += 1;
    }
    let integration = started.elapsed();
    let (tiles, tile_bytes): (i64, i64) = sqlx::query_as(
        "SELECT count(*), sum(length(hashes))::bigint FROM tlog_tiles WHERE tenant_id = $1",
    )
    .bind(tenant.as_uuid())
    .fetch_one(&mut su)
    .await
    .unwrap();

    // (p) Proofs as the API reads them: the tenant's role, its scope, one transaction each.
    let size = rows as u64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let inclusion = proofs(&app, tenant, PROOFS, |conn| {
        let seq = rng.gen_range(1..=rows);
        Box::pin(async move {
            let request = ProofRequest {
                seqs: vec![seq],
                ..ProofRequest::default()
            };
            let bundle = tlog::prove(conn, LogName::Audit, tenant, &request)
                .await
                .unwrap();
            bundle.unwrap().inclusions[0].proof.len()
        })
    })
    .await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let consistency = proofs(&app, tenant, PROOFS, |conn| {
        let old = rng.gen_range(1..size);
        Box::pin(async move {
            let request = ProofRequest {
                from: Some(old),
                ..ProofRequest::default()
            };
            let bundle = tlog::prove(conn, LogName::Audit, tenant, &request)
                .await
                .unwrap();
            bundle.unwrap().consistency.unwrap().proof.len()
        })
    })
    .await;

    // What an auditor downloads for one row, and that it verifies.
    let mut conn = app.acquire().await.unwrap();
    let scope = format!("BEGIN; SET LOCAL ROLE casebook_app; SET LOCAL app.tenant_id = '{tenant}'");
    conn.execute(scope.as_str()).await.unwrap();
    let one_row = ProofRequest {
        seqs: vec![rows / 3],
        ..ProofRequest::default()
    };
    let bundle = tlog::prove(&mut conn, LogName::Audit, tenant, &one_row)
        .await
        .unwrap()
        .expect("a checkpoint");
    conn.execute("ROLLBACK").await.unwrap();
    let origin = tlog::checkpoint::origin("casebook.bench", LogName::Audit, tenant);
    let checkpoint = tlog::checkpoint::open(&bundle.checkpoint, &verifier, &origin).unwrap();
    assert_eq!(checkpoint.size, size);

    let per_second = |took: Duration| rows as f64 / took.as_secs_f64();
    println!("## Verifiable log: {rows} audit rows of one tenant\n");
    println!("| what | time | rows/s | ratio to the raw insert |");
    println!("|---|---|---|---|");
    println!(
        "| (raw) insert the rows, {BATCH} per statement | {:.1} s | {:.0} | 1.00 |",
        raw.as_secs_f64(),
        per_second(raw)
    );
    println!(
        "| (i) integrate them, {BATCH} per transaction, {signed} checkpoints signed | {:.1} s | {:.0} | {:.2} |",
        integration.as_secs_f64(),
        per_second(integration),
        raw.as_secs_f64() / integration.as_secs_f64()
    );
    println!(
        "\nTiles: {tiles} rows, {:.1} MB of hashes ({:.1} bytes a leaf).\n",
        tile_bytes as f64 / 1e6,
        tile_bytes as f64 / rows as f64
    );
    println!("| proof at size {size} | p50 ms | p99 ms | hashes | bytes (32 a hash) |");
    println!("|---|---|---|---|---|");
    for (name, (latencies, hashes)) in [
        ("inclusion of a random row", inclusion),
        ("consistency from a random size", consistency),
    ] {
        println!(
            "| {name} | {:.3} | {:.3} | {:.1} (mean) | {:.0} (mean) |",
            millis(latencies.p50()),
            millis(latencies.p99()),
            hashes,
            hashes * 32.0
        );
    }
    println!(
        "\nOne row's bundle as the API returns it (checkpoint note and proof, JSON): {} bytes.",
        serde_json::to_string(&bundle).unwrap().len()
    );
}

/// Runs `count` proofs, each in a read transaction of the tenant's as the API's role;
/// returns their latencies and the mean number of hashes in a proof.
async fn proofs<F>(app: &PgPool, tenant: TenantId, count: usize, mut prove: F) -> (Latencies, f64)
where
    F: for<'c> FnMut(
        &'c mut PgConnection,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = usize> + 'c>>,
{
    let scope = format!(
        "BEGIN READ ONLY; SET LOCAL ROLE casebook_app; SET LOCAL app.tenant_id = '{tenant}'"
    );
    let mut conn = app.acquire().await.unwrap();
    let mut took = Vec::with_capacity(count);
    let mut hashes = 0;
    for _ in 0..count {
        let started = Instant::now();
        conn.execute(scope.as_str()).await.unwrap();
        hashes += prove(&mut conn).await;
        conn.execute("COMMIT").await.unwrap();
        took.push(started.elapsed());
    }
    (Latencies::new(took), hashes as f64 / count as f64)
}
