//! Tenant-scoped top-10 judgment search on 100,000 real MiniLM vectors over 20 uneven
//! tenants: latency (p50/p99) and recall@10 against exact search, through the product's own
//! write path ([`judgment_index::apply`]) and query ([`judgment_index::search`]: one prepared
//! statement naming the tenant's partition, on a connection of the search role).
//!
//! ```sh
//! eval "$(infra/local/stack.sh up)"
//! infra/local/models.sh
//! cargo bench -p casebook-adapters --bench embeddings        # embeds and caches the corpus
//! cargo bench -p casebook-projections --bench judgment_search
//! BENCH_EF_SEARCH="32 36 40" cargo bench -p casebook-projections --bench judgment_search
//! ```
//!
//! The corpus (lines of `/usr/share/doc`, embedded with the local all-MiniLM-L6-v2) comes
//! from `${CASEBOOK_CACHE:-/var/cache/casebook}/bench/minilm-corpus.{txt,f32}`: the first
//! 100,000 vectors are indexed, the rest are queries (texts the index does not hold).
//! Tenant sizes follow 1/rank (largest ≈ 27,800, smallest ≈ 1,390).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use casebook_adapters::postgres::HNSW_EF_SEARCH;
use casebook_domain::ids::{JudgmentId, TenantId, UserId};
use casebook_domain::judgment::{JudgmentContent, JudgmentEvent, JudgmentOrigin};
use casebook_domain::ports::{EmbedError, Embedder};
use casebook_domain::values::{JudgmentBody, JudgmentTitle};
use casebook_projections::judgment_index;
use casebook_projections::log::{Checkpoint, RecordedEvent};
use casebook_tests::bench::Latencies;
use casebook_tests::{DbRole, TestDb};
use cqrs_es::DomainEvent;
use serde_json::value::RawValue;
use sqlx::PgConnection;

const DIMENSION: usize = 384;
const INDEXED: usize = 100_000;
const TENANTS: usize = 20;
const K: usize = 10;
/// The corpus' model.
const MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// Hands back the corpus' cached vectors: a judgment's title is its corpus line number, so
/// the text the index embeds is `"<line number>\n<line>"`.
struct CachedEmbedder<'a> {
    vectors: &'a [Vec<f32>],
}

#[async_trait]
impl Embedder for CachedEmbedder<'_> {
    fn model_id(&self) -> &str {
        MODEL
    }

    fn dimension(&self) -> usize {
        DIMENSION
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts
            .iter()
            .map(|text| {
                let line: usize = text.split('\n').next().unwrap().parse().unwrap();
                self.vectors[line].clone()
            })
            .collect())
    }
}

fn load_corpus() -> (Vec<String>, Vec<Vec<f32>>) {
    let dir = PathBuf::from(
        std::env::var("CASEBOOK_CACHE").unwrap_or_else(|_| "/var/cache/casebook".into()),
    )
    .join("bench");
    let missing = format!(
        "no embedded corpus in {}: run `cargo bench -p casebook-adapters --bench embeddings` first",
        dir.display()
    );
    let texts: Vec<String> = std::fs::read_to_string(dir.join("minilm-corpus.txt"))
        .expect(&missing)
        .lines()
        .map(str::to_owned)
        .collect();
    let raw = std::fs::read(dir.join("minilm-corpus.f32")).expect(&missing);
    let vectors: Vec<Vec<f32>> = raw
        .chunks_exact(DIMENSION * 4)
        .map(|row| {
            row.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect();
    assert_eq!(
        texts.len(),
        vectors.len(),
        "corpus texts and vectors disagree"
    );
    assert!(
        vectors.len() > INDEXED,
        "the corpus needs more than {INDEXED} vectors (BENCH_CORPUS_TEXTS)"
    );
    (texts, vectors)
}

/// Tenant of each indexed vector: sizes ∝ 1/rank, members spread over the corpus.
fn tenant_sizes() -> Vec<usize> {
    let weights: Vec<f64> = (1..=TENANTS).map(|rank| 1.0 / rank as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut sizes: Vec<usize> = weights
        .iter()
        .map(|w| (w / total * INDEXED as f64).floor() as usize)
        .collect();
    sizes[0] += INDEXED - sizes.iter().sum::<usize>();
    sizes
}

/// A `JudgmentCaptured` event as the store records it, for corpus line `line`.
fn captured(line: usize, tenant: TenantId, text: &str) -> (JudgmentId, RecordedEvent) {
    let judgment = JudgmentId::new();
    let body: String = text.chars().take(JudgmentBody::MAX_CHARS).collect();
    let event = JudgmentEvent::JudgmentCaptured {
        judgment_id: judgment,
        tenant_id: tenant,
        origin: JudgmentOrigin::Authored,
        content: JudgmentContent {
            title: JudgmentTitle::parse(line.to_string()).unwrap(),
            body: JudgmentBody::parse(body).unwrap(),
            tags: Vec::new(),
        },
        captured_by: UserId::parse("bench").unwrap(),
    };
    let position = i64::try_from(line).unwrap() + 1;
    let recorded = RecordedEvent {
        checkpoint: Checkpoint {
            transaction_id: position,
            global_position: position,
        },
        tenant_id: *tenant.as_uuid(),
        aggregate_type: "Judgment".to_owned(),
        aggregate_id: judgment.to_string(),
        sequence: 1,
        event_type: event.event_type(),
        event_version: event.event_version(),
        payload: RawValue::from_string(serde_json::to_string(&event).unwrap()).unwrap(),
        opened: None,
        redacted: false,
        metadata: RawValue::from_string(format!(r#"{{"tenant_id":"{tenant}"}}"#)).unwrap(),
        recorded_at: chrono::Utc::now(),
    };
    (judgment, recorded)
}

fn exact_top_k(members: &[usize], vectors: &[Vec<f32>], query: &[f32]) -> Vec<usize> {
    let mut scored: Vec<(f32, usize)> = members
        .iter()
        .map(|&i| (vectors[i].iter().zip(query).map(|(a, b)| a * b).sum(), i))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.iter().take(K).map(|&(_, i)| i).collect()
}

/// Mean recall@10 of `queries` against exact search over the tenant's vectors.
async fn recall(
    conn: &mut PgConnection,
    tenant: TenantId,
    members: &[usize],
    vectors: &[Vec<f32>],
    queries: &[Vec<f32>],
    judgment_of: &HashMap<JudgmentId, usize>,
) -> f64 {
    let mut recall_sum = 0.0;
    for query in queries {
        let hits = judgment_index::search(conn, tenant, MODEL, query, K as u32)
            .await
            .unwrap();
        let exact = exact_top_k(members, vectors, query);
        let found = hits
            .iter()
            .filter(|hit| exact.contains(&judgment_of[&hit.judgment_id]))
            .count();
        recall_sum += found as f64 / exact.len().min(K) as f64;
    }
    recall_sum / queries.len() as f64
}

/// Latencies (p50, p99, mean) of `rounds` passes over `queries` (the recall pass before
/// them warmed the cache and the connection's statement for the tenant).
async fn latency(
    conn: &mut PgConnection,
    tenant: TenantId,
    queries: &[Vec<f32>],
    rounds: usize,
) -> (Duration, Duration, Duration) {
    let mut latencies = Vec::with_capacity(queries.len() * rounds);
    for _ in 0..rounds {
        for query in queries {
            let started = Instant::now();
            let hits = judgment_index::search(conn, tenant, MODEL, query, K as u32)
                .await
                .unwrap();
            latencies.push(started.elapsed());
            assert_eq!(hits.len(), K);
        }
    }
    let mean = latencies.iter().sum::<Duration>() / u32::try_from(latencies.len()).unwrap();
    let latencies = Latencies::new(latencies);
    (latencies.p50(), latencies.p99(), mean)
}

#[tokio::main]
async fn main() {
    let (texts, vectors) = load_corpus();
    let query_vectors: Vec<Vec<f32>> = vectors[INDEXED..].to_vec();
    println!(
        "corpus: {} indexed vectors, {} held-out queries",
        INDEXED,
        query_vectors.len()
    );

    let db = TestDb::new().await;
    let projector = db.pool(DbRole::Projector, 1).await;
    let tenants: Vec<TenantId> = (0..TENANTS).map(|_| TenantId::new()).collect();
    let sizes = tenant_sizes();
    // Each tenant's lines spread over the corpus: line i goes to the owner at a
    // pseudo-random slot (7,919 is prime to 100,000, so this is a permutation).
    let owner: Vec<usize> = sizes
        .iter()
        .enumerate()
        .flat_map(|(tenant, &size)| std::iter::repeat_n(tenant, size))
        .collect();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); TENANTS];
    let embedder = CachedEmbedder { vectors: &vectors };
    let mut judgment_of = HashMap::with_capacity(INDEXED);
    let started = Instant::now();
    let lines: Vec<usize> = (0..INDEXED).collect();
    for (batch, chunk) in lines.chunks(2_000).enumerate() {
        let events: Vec<RecordedEvent> = chunk
            .iter()
            .map(|&line| {
                let tenant = owner[(line * 7_919) % INDEXED];
                members[tenant].push(line);
                let (judgment, event) = captured(line, tenants[tenant], &texts[line]);
                judgment_of.insert(judgment, line);
                event
            })
            .collect();
        let mut tx = projector.begin().await.unwrap();
        judgment_index::apply(&mut tx, &events, &embedder)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        if batch % 10 == 9 {
            println!(
                "  loaded {} rows in {:.1?}",
                (batch + 1) * 2_000,
                started.elapsed()
            );
        }
    }
    let load = started.elapsed();
    println!(
        "load through judgment_index::apply (HNSW maintained per insert): {INDEXED} rows in {load:.1?} = {:.0} rows/s",
        INDEXED as f64 / load.as_secs_f64()
    );
    // As autovacuum would (it needs the tables' owner).
    sqlx::query("VACUUM ANALYZE judgment_index")
        .execute(&mut db.superuser().await)
        .await
        .unwrap();

    let searcher = db.pool(DbRole::Search, 1).await;
    let mut conn = searcher.acquire().await.unwrap();
    let by_size = {
        let mut order: Vec<usize> = (0..TENANTS).collect();
        order.sort_by_key(|&t| std::cmp::Reverse(members[t].len()));
        order
    };
    let queries_per_tenant = env_usize("BENCH_QUERIES", 1_000).min(query_vectors.len());
    let rounds = env_usize("BENCH_ROUNDS", 3);

    // Other candidate list sizes are compared on the same loaded index (the graph is
    // built per insert, so a fresh load moves recall by a few thousandths).
    let ef_searches: Vec<u32> = std::env::var("BENCH_EF_SEARCH").map_or_else(
        |_| vec![HNSW_EF_SEARCH],
        |list| {
            list.split_whitespace()
                .map(|ef| ef.parse().expect("BENCH_EF_SEARCH lists numbers"))
                .collect()
        },
    );
    for ef_search in ef_searches {
        sqlx::query(&format!("SET hnsw.ef_search = {ef_search}"))
            .execute(&mut *conn)
            .await
            .unwrap();
        let role = if ef_search == HNSW_EF_SEARCH {
            " (the search role's)"
        } else {
            ""
        };
        println!(
            "\nef_search {ef_search}{role}, load average before: {}",
            load_average()
        );
        println!("\n| tenant | rows | recall@10 | p50 | p99 | mean |\n|---|---|---|---|---|---|");
        for (label, tenant) in [("largest", by_size[0]), ("smallest", by_size[TENANTS - 1])] {
            let queries = &query_vectors[..queries_per_tenant];
            let recall = recall(
                &mut conn,
                tenants[tenant],
                &members[tenant],
                &vectors,
                queries,
                &judgment_of,
            )
            .await;
            let (p50, p99, mean) = latency(&mut conn, tenants[tenant], queries, rounds).await;
            println!(
                "| {label} | {} | {recall:.3} | {:.3} ms | {:.3} ms | {:.3} ms |",
                members[tenant].len(),
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3,
                mean.as_secs_f64() * 1e3,
            );
        }

        let mut worst = (1.0_f64, 0);
        for &tenant in &by_size {
            let recall = recall(
                &mut conn,
                tenants[tenant],
                &members[tenant],
                &vectors,
                &query_vectors[..100.min(query_vectors.len())],
                &judgment_of,
            )
            .await;
            if recall < worst.0 {
                worst = (recall, members[tenant].len());
            }
        }
        println!(
            "\nlowest recall@10 over all {TENANTS} tenants (100 queries each): {:.3} (tenant of {} rows); load average after: {}",
            worst.0, worst.1, load_average()
        );
    }
}

/// The 1-minute load average, as `/proc/loadavg` has it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|raw| {
            raw.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
        .unwrap_or(default)
}
