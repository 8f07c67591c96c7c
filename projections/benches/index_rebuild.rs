//! The judgment index's blue/green rebuild of 100,000 judgments, and the search latency
//! during it against the same searches with no rebuild running, in one run:
//! `cargo bench -p casebook-projections --bench index_rebuild` (with the local stack up;
//! `BENCH_JUDGMENTS` overrides the count, `BENCH_BASELINE_SEARCHES` the baseline's length,
//! `BENCH_GRAPH_WORKERS` the parallel workers building each graph: none by default, as
//! `IndexRebuild` does).
//!
//! The log holds 20 tenants (sizes ∝ 1/rank, as the judgment_search benchmark's) and one
//! `JudgmentCaptured` per judgment, its text a dozen words of a 2,000-word vocabulary and a
//! number of its own. Vectors come from the tests' bag-of-words embedder
//! (`tests/judgment_index/words.rs`) at 384 dimensions, MiniLM's: deterministic and nearly
//! free, so the figures are the index's own work — reading and decoding the log, writing the
//! rows, building the graphs, verifying, swapping — without a model's. A real model adds its
//! embedding time per judgment (the local MiniLM embeds 171–632 texts/s, BENCHMARKS.md).
//!
//! 1. The first rebuild fills the empty index (build, verify, swap), timed, no searches.
//! 2. The baseline: one connection of the search role searches back to back (top 10, a
//!    random tenant and a query text the index does not hold) with no rebuild running.
//! 3. The same searches while the index is rebuilt again (same model) and swapped in; each
//!    search's latency is filed under the rebuild's phase it ran in, and any search that
//!    comes back with fewer than 10 judgments stops the benchmark.

#[allow(dead_code)]
#[path = "../tests/judgment_index/words.rs"]
mod words;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use casebook_adapters::postgres::HNSW_EF_SEARCH;
use casebook_domain::actor::{Actor, Role};
use casebook_domain::ids::{JudgmentId, TenantId, UserId};
use casebook_domain::judgment::{JudgmentContent, JudgmentEvent, JudgmentOrigin};
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::policy::PlanTier;
use casebook_domain::tenant::TenantEvent;
use casebook_projections::judgment_index::{self, IndexRebuild, RecallCheck};
use casebook_projections::rebuild::RebuildScope;
use casebook_tests::bench::{millis, Latencies};
use casebook_tests::{DbRole, TestDb};
use cqrs_es::DomainEvent;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::{Executor, PgConnection, PgPool};
use words::{words_vector_of, WordsEmbedder};

const TENANTS: usize = 20;
const K: u32 = 10;
const EMBEDDER: WordsEmbedder = WordsEmbedder {
    model_id: "bench/words-384",
    dimension: 384,
};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// The words texts are made of.
fn vocabulary() -> Vec<String> {
    const SYLLABLES: [&str; 20] = [
        "ba", "ke", "lo", "mi", "nu", "pa", "re", "si", "to", "vu", "da", "fe", "gi", "ho", "ju",
        "ka", "le", "mo", "ni", "po",
    ];
    let mut words = Vec::with_capacity(2_000);
    for a in SYLLABLES {
        for b in SYLLABLES {
            for c in ["n", "r", "s", "t", "l"] {
                words.push(format!("{a}{b}{c}"));
            }
        }
    }
    words
}

/// A dozen words; `case` makes it a judgment of its own.
fn text(rng: &mut StdRng, vocabulary: &[String], case: Option<usize>) -> String {
    let mut words: Vec<&str> = (0..12)
        .map(|_| vocabulary[rng.gen_range(0..vocabulary.len())].as_str())
        .collect();
    let number = case.map(|n| format!("case {n}"));
    if let Some(number) = &number {
        words.push(number);
    }
    words.join(" ")
}

/// Tenants' sizes ∝ 1/rank.
fn sizes(judgments: usize) -> Vec<usize> {
    let weights: Vec<f64> = (1..=TENANTS).map(|rank| 1.0 / rank as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut sizes: Vec<usize> = weights
        .iter()
        .map(|w| (w / total * judgments as f64).floor() as usize)
        .collect();
    sizes[0] += judgments - sizes.iter().sum::<usize>();
    sizes
}

/// One event as the store holds it.
struct Row {
    aggregate_type: &'static str,
    aggregate_id: String,
    event_type: String,
    event_version: String,
    payload: String,
    metadata: String,
}

fn row(
    tenant: TenantId,
    role: Role,
    aggregate_type: &'static str,
    id: String,
    event: &impl DomainEvent,
) -> Row {
    let actor = Actor {
        user_id: UserId::parse(format!("{role:?}-1").to_lowercase()).unwrap(),
        tenant_id: tenant,
        role,
    };
    let metadata = EventMetadata::new(&actor, "bench", Source::Api);
    Row {
        aggregate_type,
        aggregate_id: id,
        event_type: event.event_type(),
        event_version: event.event_version(),
        payload: serde_json::to_string(event).unwrap(),
        metadata: serde_json::to_string(&metadata.to_map()).unwrap(),
    }
}

/// The tenants' onboarding, then their judgments interleaved in the log.
fn history(tenants: &[TenantId], sizes: &[usize], rng: &mut StdRng) -> Vec<Row> {
    let vocabulary = vocabulary();
    let mut rows: Vec<Row> = tenants
        .iter()
        .map(|&tenant| {
            let event = TenantEvent::TenantOnboarded {
                tenant_id: tenant,
                name: "Bench practice".to_owned().try_into().unwrap(),
                plan: PlanTier::Professional,
                onboarded_by: UserId::parse("admin-1").unwrap(),
            };
            row(tenant, Role::Admin, "Tenant", tenant.to_string(), &event)
        })
        .collect();
    let mut owners: Vec<usize> = sizes
        .iter()
        .enumerate()
        .flat_map(|(tenant, &size)| std::iter::repeat_n(tenant, size))
        .collect();
    let n = owners.len();
    // A permutation (7,919 is prime to the counts used), so tenants interleave in the log.
    owners = (0..n).map(|i| owners[(i * 7_919) % n]).collect();
    for (case, owner) in owners.into_iter().enumerate() {
        let tenant = tenants[owner];
        let judgment = JudgmentId::new();
        let words = text(rng, &vocabulary, Some(case));
        let event = JudgmentEvent::JudgmentCaptured {
            judgment_id: judgment,
            tenant_id: tenant,
            origin: JudgmentOrigin::Authored,
            content: JudgmentContent {
                title: format!("Judgment {case}").try_into().unwrap(),
                body: words.try_into().unwrap(),
                tags: Vec::new(),
            },
            captured_by: UserId::parse("consultant-1").unwrap(),
        };
        rows.push(row(
            tenant,
            Role::Consultant,
            "Judgment",
            judgment.to_string(),
            &event,
        ));
    }
    rows
}

/// Writes `rows` to the log as its owner (row-level security keeps the roles' writes to
/// their tenants).
async fn seed(owner: &mut PgConnection, rows: &[Row]) {
    for chunk in rows.chunks(20_000) {
        let column = |f: fn(&Row) -> &str| chunk.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                                 payload, metadata)
             SELECT t, i, 1, e, v, p::jsonb, m::jsonb
               FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                    AS u(t, i, e, v, p, m)",
        )
        .bind(column(|r| r.aggregate_type))
        .bind(column(|r| &r.aggregate_id))
        .bind(column(|r| &r.event_type))
        .bind(column(|r| &r.event_version))
        .bind(column(|r| &r.payload))
        .bind(column(|r| &r.metadata))
        .execute(&mut *owner)
        .await
        .expect("seed the log");
    }
}

/// The rebuild's phases, as the search load files its latencies.
const IDLE: usize = 0;
const ROWS: usize = 1;
const GRAPHS: usize = 2;
const VERIFY: usize = 3;
const SWAP: usize = 4;
const PHASES: [&str; 5] = [
    "no rebuild",
    "building rows",
    "building graphs",
    "verifying",
    "catching up, verifying, swapping",
];

/// The timings of one rebuild.
struct Timings {
    rows: Duration,
    graphs: Duration,
    verify: Duration,
    swap: Duration,
}

impl Timings {
    fn total(&self) -> Duration {
        self.rows + self.graphs + self.verify + self.swap
    }
}

/// Builds, verifies and swaps in (with `graph_workers` parallel workers building each
/// graph), moving `phase` along and timing each step.
async fn rebuild(pool: &PgPool, phase: &AtomicUsize, graph_workers: u32) -> Timings {
    let rebuild = IndexRebuild::new(
        pool.clone(),
        Arc::new(EMBEDDER),
        RebuildScope::All,
        RecallCheck::new(HNSW_EF_SEARCH),
    )
    .with_graph_workers(graph_workers);
    rebuild.discard().await.expect("discard");
    phase.store(ROWS, Ordering::SeqCst);
    let started = Instant::now();
    let mut rows_done = None;
    let mut reported = 0;
    let built = rebuild
        .build(std::future::pending(), |p| {
            if p.applied * 10 / p.total.max(1) > reported {
                reported = p.applied * 10 / p.total.max(1);
                eprintln!("  {} of {} events in {:.1?}", p.applied, p.total, p.elapsed);
            }
            if p.applied == p.total {
                rows_done = Some(p.elapsed);
                phase.store(GRAPHS, Ordering::SeqCst);
            }
        })
        .await
        .expect("build");
    assert!(built.caught_up);
    let build = started.elapsed();
    let rows = rows_done.expect("the build reached the head of the log");

    phase.store(VERIFY, Ordering::SeqCst);
    let started = Instant::now();
    let verdict = rebuild.verify().await.expect("verify");
    assert!(verdict.passes(), "{verdict}");
    let verify = started.elapsed();

    phase.store(SWAP, Ordering::SeqCst);
    let started = Instant::now();
    let swapped = rebuild.swap(|_| {}).await.expect("swap");
    let swap = started.elapsed();
    phase.store(IDLE, Ordering::SeqCst);
    eprintln!("  {swapped}");
    Timings {
        rows,
        graphs: build - rows,
        verify,
        swap,
    }
}

/// Searches back to back on one connection of the search role until `stop`, filing each
/// latency under the phase it started in; panics on a search short of `K` judgments.
async fn search_load(
    searcher: PgPool,
    tenants: Vec<TenantId>,
    queries: Vec<Vec<f32>>,
    phase: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    limit: Option<usize>,
) -> Vec<Vec<Duration>> {
    let mut conn = searcher.acquire().await.unwrap();
    let mut latencies = vec![Vec::new(); PHASES.len()];
    let mut rng = StdRng::seed_from_u64(7);
    let mut searches = 0;
    while !stop.load(Ordering::SeqCst) && limit.is_none_or(|limit| searches < limit) {
        let tenant = tenants[rng.gen_range(0..tenants.len())];
        let query = &queries[rng.gen_range(0..queries.len())];
        let during = phase.load(Ordering::SeqCst);
        let started = Instant::now();
        let hits = judgment_index::search(&mut conn, tenant, EMBEDDER.model_id, query, K)
            .await
            .expect("search");
        latencies[during].push(started.elapsed());
        assert_eq!(hits.len(), K as usize, "a search came back short");
        searches += 1;
    }
    latencies
}

fn line(name: &str, samples: &[Duration], baseline: Option<&Latencies>) {
    if samples.is_empty() {
        println!("| {name} | 0 | — | — | — |");
        return;
    }
    let latencies = Latencies::new(samples.to_vec());
    let ratio = baseline.map_or_else(
        || "—".to_owned(),
        |b| {
            format!(
                "{:.2} / {:.2}",
                millis(latencies.p50()) / millis(b.p50()),
                millis(latencies.p99()) / millis(b.p99())
            )
        },
    );
    println!(
        "| {name} | {} | {:.3} ms | {:.3} ms | {ratio} | {:.1} ms |",
        samples.len(),
        millis(latencies.p50()),
        millis(latencies.p99()),
        millis(*samples.iter().max().unwrap()),
    );
}

#[tokio::main]
async fn main() {
    let judgments = env_usize("BENCH_JUDGMENTS", 100_000);
    let baseline_searches = env_usize("BENCH_BASELINE_SEARCHES", 20_000);
    let graph_workers = u32::try_from(env_usize("BENCH_GRAPH_WORKERS", 0)).unwrap();
    let db = TestDb::new().await;
    let maintainer = db.pool(DbRole::Maintainer, 4).await;
    let mut rng = StdRng::seed_from_u64(2026);
    let tenants: Vec<TenantId> = (0..TENANTS).map(|_| TenantId::new()).collect();
    let started = Instant::now();
    let mut owner = db.superuser().await;
    seed(&mut owner, &history(&tenants, &sizes(judgments), &mut rng)).await;
    owner
        .execute("VACUUM ANALYZE events")
        .await
        .expect("vacuum");
    drop(owner);
    eprintln!(
        "seeded {TENANTS} tenants and {judgments} judgments in {:.1?}",
        started.elapsed()
    );

    let phase = Arc::new(AtomicUsize::new(IDLE));
    eprintln!("first rebuild (empty index, no searches):");
    let first = rebuild(&maintainer, &phase, graph_workers).await;

    let vocabulary = vocabulary();
    let queries: Vec<Vec<f32>> = (0..1_000)
        .map(|_| words_vector_of(&text(&mut rng, &vocabulary, None), EMBEDDER.dimension))
        .collect();
    let searcher = db.pool(DbRole::Search, 1).await;
    // Every tenant's statement prepared and its partition read once before measuring.
    search_load(
        searcher.clone(),
        tenants.clone(),
        queries.clone(),
        phase.clone(),
        Arc::new(AtomicBool::new(false)),
        Some(2_000),
    )
    .await;
    eprintln!("baseline: {baseline_searches} searches, no rebuild running");
    let baseline = search_load(
        searcher.clone(),
        tenants.clone(),
        queries.clone(),
        phase.clone(),
        Arc::new(AtomicBool::new(false)),
        Some(baseline_searches),
    )
    .await;

    eprintln!("second rebuild, searched throughout:");
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(search_load(
        searcher,
        tenants,
        queries,
        phase.clone(),
        stop.clone(),
        None,
    ));
    let second = rebuild(&maintainer, &phase, graph_workers).await;
    stop.store(true, Ordering::SeqCst);
    let during = load.await.expect("no search came back short");

    println!("\n### Blue/green rebuild of {judgments} judgments over {TENANTS} tenants\n");
    println!("Parallel workers building each graph: {graph_workers}.\n");
    println!("| rebuild | rows (log → green) | graphs | verify | swap | total | judgments/s |");
    println!("|---|---|---|---|---|---|---|");
    for (name, t) in [
        ("first (empty index, no searches)", &first),
        ("second (searched throughout)", &second),
    ] {
        println!(
            "| {name} | {:.1} s | {:.1} s | {:.2} s | {:.2} s | {:.1} s | {:.0} |",
            t.rows.as_secs_f64(),
            t.graphs.as_secs_f64(),
            t.verify.as_secs_f64(),
            t.swap.as_secs_f64(),
            t.total().as_secs_f64(),
            judgments as f64 / t.total().as_secs_f64()
        );
    }
    let baseline_latencies = Latencies::new(baseline[IDLE].clone());
    println!("\n| searches (top {K}, one connection) | count | p50 | p99 | ratio p50 / p99 to the baseline | max |");
    println!("|---|---|---|---|---|---|");
    line("baseline: no rebuild running", &baseline[IDLE], None);
    let all: Vec<Duration> = during[ROWS..].iter().flatten().copied().collect();
    line("during the whole rebuild", &all, Some(&baseline_latencies));
    for (phase, name) in PHASES.iter().enumerate().skip(ROWS) {
        line(
            &format!("during: {name}"),
            &during[phase],
            Some(&baseline_latencies),
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nEvery search returned {K} judgments. Load average at the end (1, 5, 15 min): {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(", ")
    );
}
