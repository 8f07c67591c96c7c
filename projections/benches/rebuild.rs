//! Rebuilding every read model and the audit table from 1,000,000 events, next to a raw
//! ordered read of the same events, on the same cluster in one run:
//! `cargo bench -p casebook-projections --bench rebuild` (with the local stack up;
//! `BENCH_EVENTS` overrides the count).
//!
//! The log is seeded with realistic domain events, serialized by the domain's own types:
//! 40 tenants of uneven size; sessions with one to four queries; each query's diagnosis
//! requested, given context, sometimes failed and retried, proposed with provenance, decided
//! (approved, amended, rejected or auto-approved), resolved, and captured as judgment when
//! approved or amended. About 2,000 lifecycles are in flight at any time, so a row's events
//! are spread over many batches, as in production; `recorded_at` spans 90 days.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use casebook_domain::actor::{Actor, Role};
use casebook_domain::any_event::AnyEvent;
use casebook_domain::decision::{DecisionEvent, Outcome, Verdict};
use casebook_domain::diagnosis::{
    DiagnosisEvent, EmbeddingModel, Finding, PrecedentSource, Provenance, RetrievedJudgment,
    Severity,
};
use casebook_domain::ids::{
    DecisionId, DiagnosisId, JudgmentId, QueryId, SessionId, TenantId, UserId,
};
use casebook_domain::judgment::{JudgmentContent, JudgmentEvent, JudgmentOrigin};
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::policy::{ModelTier, PlanTier};
use casebook_domain::ports::StopReason;
use casebook_domain::session::SessionEvent;
use casebook_domain::tenant::TenantEvent;
use casebook_domain::values::Confidence;
use casebook_projections::log::{Checkpoint, LogReader, Scope};
use casebook_projections::projection::ProjectionId;
use casebook_projections::rebuild::{Rebuild, RebuildScope};
use casebook_tests::{DbRole, TestDb};
use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use futures::{StreamExt, TryStreamExt};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sqlx::{Executor, PgPool};

fn parse<T: TryFrom<String>>(text: impl Into<String>) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(text.into()).expect("valid value")
}

/// One event as the store would hold it.
struct Row {
    aggregate_type: &'static str,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: String,
    metadata: String,
    recorded_at: DateTime<Utc>,
}

/// Where one query's diagnosis is.
#[derive(Clone, Copy)]
enum Step {
    Submit,
    Request,
    Context,
    Propose,
    Decide,
    Resolve,
    Capture,
    Done,
}

/// A session in flight: its queries, one diagnosis at a time.
struct Flow {
    tenant: usize,
    session: SessionId,
    queries_left: u32,
    query: QueryId,
    diagnosis: DiagnosisId,
    step: Step,
    attempt: u32,
    failed_once: bool,
    confidence: f64,
    outcome: Outcome,
}

struct Generator {
    rng: StdRng,
    tenants: Vec<TenantId>,
    judgments: Vec<Vec<JudgmentId>>,
    sequences: HashMap<String, i64>,
    rows: Vec<Row>,
    start: DateTime<Utc>,
    total: usize,
    requests: u64,
}

const MODELS: [(&str, ModelTier); 3] = [
    ("anthropic.claude-haiku", ModelTier::Triage),
    ("anthropic.claude-sonnet", ModelTier::Standard),
    ("meta.llama3-70b", ModelTier::OpenWeights),
];

impl Generator {
    fn push(&mut self, tenant: usize, actor: Role, source: Source, id: String, event: AnyEvent) {
        let (aggregate_type, event_type, event_version, payload) = match &event {
            AnyEvent::Tenant(e) => (
                "Tenant",
                e.event_type(),
                e.event_version(),
                serde_json::to_string(e),
            ),
            AnyEvent::Session(e) => (
                "TenantSession",
                e.event_type(),
                e.event_version(),
                serde_json::to_string(e),
            ),
            AnyEvent::Diagnosis(e) => (
                "Diagnosis",
                e.event_type(),
                e.event_version(),
                serde_json::to_string(e),
            ),
            AnyEvent::Decision(e) => (
                "ConsultantDecision",
                e.event_type(),
                e.event_version(),
                serde_json::to_string(e),
            ),
            AnyEvent::Judgment(e) => (
                "Judgment",
                e.event_type(),
                e.event_version(),
                serde_json::to_string(e),
            ),
        };
        let tenant_id = self.tenants[tenant];
        let user = match actor {
            Role::System => UserId::system(),
            role => parse(format!("{role:?}-{}", self.rng.gen_range(1..=5)).to_lowercase()),
        };
        self.requests += 1;
        let metadata = EventMetadata::new(
            &Actor {
                user_id: user,
                tenant_id,
                role: actor,
            },
            format!("req-{}", self.requests),
            source,
        );
        let sequence = self
            .sequences
            .entry(format!("{aggregate_type}/{id}"))
            .or_insert(0);
        *sequence += 1;
        let offset =
            Duration::from_secs(90 * 86_400).mul_f64(self.rows.len() as f64 / self.total as f64);
        self.rows.push(Row {
            aggregate_type,
            aggregate_id: id,
            sequence: *sequence,
            event_type,
            event_version,
            payload: payload.expect("event serializes"),
            metadata: serde_json::to_string(&metadata.to_map()).expect("metadata serializes"),
            recorded_at: self.start + offset,
        });
    }

    fn onboard(&mut self, count: usize) {
        for i in 0..count {
            self.tenants.push(TenantId::new());
            self.judgments.push(Vec::new());
            let tenant_id = self.tenants[i];
            self.push(
                i,
                Role::Admin,
                Source::Api,
                tenant_id.to_string(),
                AnyEvent::Tenant(TenantEvent::TenantOnboarded {
                    tenant_id,
                    name: parse(format!("Practice {i}")),
                    plan: PlanTier::Professional,
                    onboarded_by: parse("admin-1"),
                }),
            );
            if i % 2 == 0 {
                self.push(
                    i,
                    Role::Admin,
                    Source::Api,
                    tenant_id.to_string(),
                    AnyEvent::Tenant(TenantEvent::AutoResolveThresholdSet {
                        threshold: Some(Confidence::new(0.9).expect("valid")),
                    }),
                );
            }
        }
    }

    fn open(&mut self) -> Flow {
        // Uneven tenants: the first ones are much busier.
        let tenant = ((self.rng.gen::<f64>().powi(2)) * self.tenants.len() as f64) as usize;
        let session = SessionId::new();
        let tenant_id = self.tenants[tenant];
        let attachments = (0..self.rng.gen_range(0..3))
            .map(|i| parse(format!("{tenant_id}/upload-{i}.pdf")))
            .collect();
        self.push(
            tenant,
            Role::Customer,
            Source::Api,
            session.to_string(),
            AnyEvent::Session(SessionEvent::SessionOpened {
                session_id: session,
                tenant_id,
                subject: parse("Commercial lease, renewal terms"),
                attachments,
                opened_by: parse("customer-1"),
            }),
        );
        Flow {
            tenant,
            session,
            queries_left: self.rng.gen_range(1..=4),
            query: QueryId::new(),
            diagnosis: DiagnosisId::new(),
            step: Step::Submit,
            attempt: 1,
            failed_once: false,
            confidence: 0.0,
            outcome: Outcome::Approved,
        }
    }

    /// Appends the flow's next event; `false` once the session is closed.
    fn advance(&mut self, flow: &mut Flow) -> bool {
        let t = flow.tenant;
        let diagnosis = flow.diagnosis.to_string();
        match flow.step {
            Step::Submit => {
                flow.query = QueryId::new();
                flow.diagnosis = DiagnosisId::new();
                flow.attempt = 1;
                flow.failed_once = false;
                self.push(
                    t,
                    Role::Customer,
                    Source::Api,
                    flow.session.to_string(),
                    AnyEvent::Session(SessionEvent::QuerySubmitted {
                        query_id: flow.query,
                        text: parse("Is the break clause in section 7 enforceable after the rent review, given the landlord's notice was served late?"),
                        submitted_by: parse("customer-1"),
                    }),
                );
                flow.step = Step::Request;
            }
            Step::Request => {
                let tenant_id = self.tenants[t];
                self.push(
                    t,
                    Role::Customer,
                    Source::Api,
                    diagnosis,
                    AnyEvent::Diagnosis(DiagnosisEvent::DiagnosisRequested {
                        diagnosis_id: flow.diagnosis,
                        tenant_id,
                        session_id: flow.session,
                        query_id: flow.query,
                        query: parse("Is the break clause in section 7 enforceable after the rent review, given the landlord's notice was served late?"),
                        requested_by: parse("customer-1"),
                    }),
                );
                flow.step = Step::Context;
            }
            Step::Context => {
                let judgments = self.judgments[t]
                    .choose_multiple(&mut self.rng, 3)
                    .map(|j| RetrievedJudgment {
                        judgment_id: *j,
                        score: 0.8,
                    })
                    .collect();
                self.push(
                    t,
                    Role::System,
                    Source::Worker,
                    diagnosis,
                    AnyEvent::Diagnosis(DiagnosisEvent::ContextRetrieved {
                        attempt: flow.attempt,
                        judgments,
                    }),
                );
                flow.step = Step::Propose;
            }
            Step::Propose if !flow.failed_once && self.rng.gen_ratio(1, 20) => {
                flow.failed_once = true;
                self.push(
                    t,
                    Role::System,
                    Source::Worker,
                    diagnosis,
                    AnyEvent::Diagnosis(DiagnosisEvent::DiagnosisFailed {
                        attempt: flow.attempt,
                        reason: parse("model timed out"),
                        retryable: true,
                    }),
                );
                flow.attempt += 1;
                flow.step = Step::Context;
            }
            Step::Propose => {
                let (model, tier) = *MODELS.choose(&mut self.rng).expect("models");
                flow.confidence = [0.55, 0.8, 0.92, 0.97][self.rng.gen_range(0..4)];
                let retrieved: Vec<JudgmentId> = self.judgments[t]
                    .choose_multiple(&mut self.rng, 3)
                    .copied()
                    .collect();
                let precedents = retrieved
                    .iter()
                    .map(|&judgment_id| PrecedentSource {
                        judgment_id,
                        score: 0.8,
                        source_position: self.rng.gen_range(1..1_000_000),
                    })
                    .collect();
                let provenance = Provenance {
                    model_id: model.to_owned(),
                    model_tier: tier,
                    prompt_template_id: "diagnose/v3".to_owned(),
                    prompt_template_hash: "sha256:3f2a9c".to_owned(),
                    retrieved_judgment_ids: retrieved,
                    input_tokens: self.rng.gen_range(500..6_000),
                    output_tokens: self.rng.gen_range(100..1_200),
                    cost_usd_micros: self.rng.gen_range(200..40_000),
                    stop_reason: Some(StopReason::EndTurn),
                    embedding: Some(EmbeddingModel {
                        model_id: "amazon.titan-embed-text-v2:0".to_owned(),
                        dimension: 1024,
                    }),
                    precedents: Some(precedents),
                    attachments: Some(vec![]),
                };
                self.push(
                    t,
                    Role::System,
                    Source::Worker,
                    diagnosis,
                    AnyEvent::Diagnosis(DiagnosisEvent::DiagnosisProposed {
                        text: parse("The break clause is enforceable: late notice is cured by the 14-day grace period in 7.3."),
                        findings: vec![
                            Finding {
                                summary: "Notice served 3 days late".to_owned(),
                                detail: Some("Section 7.2 requires six months' notice".to_owned()),
                                severity: Severity::Medium,
                            },
                            Finding {
                                summary: "Grace period applies".to_owned(),
                                detail: None,
                                severity: Severity::Info,
                            },
                        ],
                        confidence: Confidence::new(flow.confidence).expect("valid"),
                        provenance,
                    }),
                );
                flow.step = Step::Decide;
            }
            Step::Decide => {
                let auto = t % 2 == 0 && flow.confidence >= 0.9;
                let verdict = if auto {
                    Verdict::AutoApproved {
                        threshold: Confidence::new(0.9).expect("valid"),
                        confidence: Confidence::new(flow.confidence).expect("valid"),
                    }
                } else {
                    match self.rng.gen_range(0..10) {
                        0..=5 => Verdict::Approved,
                        6..=7 => Verdict::Amended {
                            text: parse("Enforceable, but only once the grace period has run."),
                            reason: Some(parse("missed the grace period's start date")),
                        },
                        _ => Verdict::Rejected {
                            reason: parse("wrong jurisdiction: Scottish lease"),
                        },
                    }
                };
                flow.outcome = verdict.outcome();
                let (role, source) = if auto {
                    (Role::System, Source::Reaction)
                } else {
                    (Role::Consultant, Source::Api)
                };
                let tenant_id = self.tenants[t];
                self.push(
                    t,
                    role,
                    source,
                    diagnosis,
                    AnyEvent::Decision(DecisionEvent::DecisionMade {
                        decision_id: DecisionId::for_diagnosis(flow.diagnosis),
                        diagnosis_id: flow.diagnosis,
                        tenant_id,
                        verdict,
                        decided_by: if auto {
                            UserId::system()
                        } else {
                            parse("consultant-2")
                        },
                        customer: None,
                    }),
                );
                flow.step = Step::Resolve;
            }
            Step::Resolve => {
                self.push(
                    t,
                    Role::System,
                    Source::Reaction,
                    diagnosis,
                    AnyEvent::Diagnosis(DiagnosisEvent::DiagnosisResolved {
                        decision_id: DecisionId::for_diagnosis(flow.diagnosis),
                        outcome: flow.outcome,
                    }),
                );
                flow.step = if flow.outcome.captures_judgment() {
                    Step::Capture
                } else {
                    Step::Done
                };
            }
            Step::Capture => {
                let decision_id = DecisionId::for_diagnosis(flow.diagnosis);
                let judgment = JudgmentId::for_decision(decision_id);
                let tenant_id = self.tenants[t];
                self.push(
                    t,
                    Role::System,
                    Source::Reaction,
                    judgment.to_string(),
                    AnyEvent::Judgment(JudgmentEvent::JudgmentCaptured {
                        judgment_id: judgment,
                        tenant_id,
                        origin: JudgmentOrigin::Decision {
                            decision_id,
                            diagnosis_id: flow.diagnosis,
                            customer: None,
                        },
                        content: JudgmentContent {
                            title: parse("Late notice and grace periods"),
                            body: parse("A grace period in the clause itself cures late notice."),
                            tags: vec![parse("lease"), parse("notice")],
                        },
                        captured_by: UserId::system(),
                    }),
                );
                let judgments = &mut self.judgments[t];
                if judgments.len() < 200 {
                    judgments.push(judgment);
                }
                flow.step = Step::Done;
            }
            Step::Done if flow.queries_left > 1 => {
                flow.queries_left -= 1;
                flow.step = Step::Submit;
                return self.advance(flow);
            }
            Step::Done => {
                self.push(
                    t,
                    Role::Customer,
                    Source::Api,
                    flow.session.to_string(),
                    AnyEvent::Session(SessionEvent::SessionClosed {
                        closed_by: parse("customer-1"),
                    }),
                );
                return false;
            }
        }
        true
    }
}

/// `total` events in the log's order, generated with a fixed seed.
fn generate(total: usize) -> Vec<Row> {
    let mut g = Generator {
        rng: StdRng::seed_from_u64(2026),
        tenants: Vec::new(),
        judgments: Vec::new(),
        sequences: HashMap::new(),
        rows: Vec::with_capacity(total + 8),
        start: Utc::now() - chrono::Duration::days(90),
        total,
        requests: 0,
    };
    g.onboard(40);
    let mut flows: Vec<Flow> = Vec::new();
    while g.rows.len() < total {
        if flows.len() < 2_000 && (flows.is_empty() || g.rng.gen_ratio(1, 10)) {
            let flow = g.open();
            flows.push(flow);
            continue;
        }
        let i = g.rng.gen_range(0..flows.len());
        let mut flow = flows.swap_remove(i);
        if g.advance(&mut flow) {
            flows.push(flow);
        }
    }
    g.rows.truncate(total);
    g.rows
}

async fn seed(pool: &PgPool, rows: Vec<Row>) {
    for chunk in rows.chunks(20_000) {
        // One vector per column of the bulk insert below, in its order.
        #[allow(clippy::type_complexity)]
        let mut columns: (
            Vec<&str>,
            Vec<&str>,
            Vec<i64>,
            Vec<&str>,
            Vec<&str>,
            Vec<&str>,
            Vec<&str>,
            Vec<DateTime<Utc>>,
        ) = Default::default();
        for row in chunk {
            columns.0.push(row.aggregate_type);
            columns.1.push(&row.aggregate_id);
            columns.2.push(row.sequence);
            columns.3.push(&row.event_type);
            columns.4.push(&row.event_version);
            columns.5.push(&row.payload);
            columns.6.push(&row.metadata);
            columns.7.push(row.recorded_at);
        }
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                                 payload, metadata, recorded_at)
             SELECT t, i, s, e, v, p::jsonb, m::jsonb, r
               FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],
                           $6::text[], $7::text[], $8::timestamptz[]) AS u(t, i, s, e, v, p, m, r)",
        )
        .bind(columns.0)
        .bind(columns.1)
        .bind(columns.2)
        .bind(columns.3)
        .bind(columns.4)
        .bind(columns.5)
        .bind(columns.6)
        .bind(columns.7)
        .execute(pool)
        .await
        .expect("seed the log");
    }
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat` (Linux; 100
/// ticks a second, the kernel's fixed USER_HZ).
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesized command: state is the 3rd field, utime the 14th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(14) + ticks(15)) / 100.0
}

/// The server processes serving this database (backends, autovacuum) and their CPU so far.
async fn server_cpu(pool: &PgPool) -> HashMap<i32, f64> {
    let pids: Vec<i32> =
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            .fetch_all(pool)
            .await
            .expect("backends");
    pids.into_iter()
        .map(|pid| (pid, cpu_seconds(&pid.to_string())))
        .collect()
}

/// Wall time and CPU time of one pass.
struct Measured {
    wall: Duration,
    client_cpu: f64,
    server_cpu: f64,
}

/// Runs `pass`, measuring wall time, this process' CPU and the database's server processes'
/// CPU (those alive at the end; a connection closed during the pass is not counted).
async fn measure<T>(pool: &PgPool, pass: impl std::future::Future<Output = T>) -> (T, Measured) {
    let server_before = server_cpu(pool).await;
    let client_before = cpu_seconds("self");
    let start = Instant::now();
    let value = pass.await;
    let wall = start.elapsed();
    let client_cpu = cpu_seconds("self") - client_before;
    let server_cpu = server_cpu(pool)
        .await
        .into_iter()
        .map(|(pid, cpu)| cpu - server_before.get(&pid).copied().unwrap_or(0.0))
        .sum();
    (
        value,
        Measured {
            wall,
            client_cpu,
            server_cpu,
        },
    )
}

async fn raw_copy(pool: &PgPool) -> usize {
    let mut conn = pool.acquire().await.expect("connection");
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
    bytes
}

/// The reader and the domain decoding alone, without writing anything.
async fn read_and_decode(pool: &PgPool) -> u64 {
    let mut events = LogReader::new(pool.clone())
        .with_page_size(10_000)
        .catch_up(Checkpoint::START, Scope::All);
    let mut count = 0;
    while let Some(event) = events.next().await {
        casebook_projections::decoded::DecodedEvent::decode(&event.expect("read")).expect("decode");
        count += 1;
    }
    count
}

async fn rebuild(pool: &PgPool, projections: &[ProjectionId], batch: usize) {
    eprintln!("rebuilding {projections:?}");
    let rebuild = Rebuild::new(pool.clone(), projections.iter().copied(), RebuildScope::All)
        .with_batch_size(batch);
    let mut last_report = Instant::now();
    let swapped = rebuild
        .run(std::future::pending(), |p| {
            if last_report.elapsed() > Duration::from_secs(5) {
                last_report = Instant::now();
                eprintln!(
                    "  {:>7} / {} events, {:.0}/s",
                    p.applied,
                    p.total,
                    p.applied as f64 / p.elapsed.as_secs_f64()
                );
            }
        })
        .await
        .expect("rebuild");
    assert!(swapped);
}

#[tokio::main]
async fn main() {
    let events: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let batch: usize = std::env::var("BENCH_BATCH")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(25_000);
    let db = TestDb::new().await;
    let pool = db.pool(DbRole::Maintainer, 10).await;
    let started = Instant::now();
    seed(&pool, generate(events)).await;
    pool.execute("VACUUM ANALYZE events").await.expect("vacuum");
    eprintln!("seeded {events} events in {:.1?}", started.elapsed());

    raw_copy(&pool).await;
    let (bytes, copy) = measure(&pool, raw_copy(&pool)).await;
    let (decoded, decode) = measure(&pool, read_and_decode(&pool)).await;
    assert_eq!(decoded, events as u64);
    let ((), all) = measure(&pool, rebuild(&pool, &ProjectionId::ALL, batch)).await;
    let audit_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(audit_rows, events as i64, "one audit row per event");
    let read_models = [
        ProjectionId::Tenants,
        ProjectionId::Sessions,
        ProjectionId::Diagnoses,
        ProjectionId::Decisions,
        ProjectionId::Usage,
    ];
    let ((), models_only) = measure(&pool, rebuild(&pool, &read_models, batch)).await;
    let ((), audit_only) = measure(&pool, rebuild(&pool, &[ProjectionId::Audit], batch)).await;

    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    let copy_rate = rate(copy.wall);
    println!("\n### Rebuild of {events} events (batches of {batch})\n");
    println!("| pass | wall time | events/s | vs raw read | CPU: client + server | events per CPU-second |");
    println!("|---|---|---|---|---|---|");
    let line = |name: &str, m: &Measured| {
        let cpu = m.client_cpu + m.server_cpu;
        println!(
            "| {name} | {:.1} s | {:.0} | {:.2} | {:.1} s + {:.1} s | {:.0} |",
            m.wall.as_secs_f64(),
            rate(m.wall),
            rate(m.wall) / copy_rate,
            m.client_cpu,
            m.server_cpu,
            events as f64 / cpu
        );
    };
    line(
        &format!(
            "raw `COPY (… ORDER BY transaction_id, global_position) TO STDOUT` ({} MB)",
            bytes / 1_000_000
        ),
        &copy,
    );
    line(
        "`LogReader::catch_up` + domain decoding, no writes",
        &decode,
    );
    line(
        "**rebuild: all read models + audit table** (build + swap)",
        &all,
    );
    line("rebuild: the five read models only", &models_only);
    line("rebuild: the audit table only", &audit_only);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nLoad average at the end (1, 5, 15 min): {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(", ")
    );
}
