//! What sealing personal data costs (decision 0027): the same commands and loads through the
//! event store with and without a vault, in one run, one connection (as a Lambda serves one
//! request at a time).
//!
//! `cargo bench -p casebook-adapters --bench sealing` (with the local stack up) prints a
//! Markdown report: a customer's `SubmitQuery` on one of 200 open sessions (load, decide,
//! append: the query's text sealed, the subject's key read by the load's statement), the
//! load of such a session's state (its snapshot and tail, sealed fields read as redactions),
//! and the load of its whole stream (its subject line and every query opened), each p50 / p99
//! over `BENCH_ROUNDS` (default 3) interleaved rounds of `BENCH_SECONDS` (default 5).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use casebook_adapters::event_store::EventStore;
use casebook_application::ports::EventRepository;
use casebook_domain::actor::{Actor, Role};
use casebook_domain::ids::{QueryId, SessionId, TenantId, UserId};
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::session::{SessionCommand, TenantSession};
use casebook_domain::values::{QueryText, Subject};
use casebook_tests::bench::{millis, Cells, Run, Spread};
use casebook_tests::{DbRole, TestDb};
use casebook_vault::root::LocalRootKey;
use casebook_vault::Vault;
use uuid::Uuid;

const SESSIONS: usize = 200;
const QUERY: &str = "May my landlord keep the deposit if the flat was left clean and the \
                     inventory signed? The lease says nothing about cleaning fees.";

/// One store's side of the comparison: its sessions, each opened by its own customer.
struct Side {
    store: EventStore<TenantSession>,
    tenant: TenantId,
    sessions: Vec<(SessionId, Actor)>,
}

impl Side {
    async fn new(store: EventStore<TenantSession>) -> Self {
        let tenant = TenantId::from_uuid(Uuid::new_v4());
        let mut sessions = Vec::with_capacity(SESSIONS);
        for n in 0..SESSIONS {
            let customer = Actor {
                user_id: UserId::parse(format!("customer-{n}")).unwrap(),
                tenant_id: tenant,
                role: Role::Customer,
            };
            let session = SessionId::new();
            store
                .execute_new(
                    &session.to_string(),
                    SessionCommand::Open {
                        actor: customer.clone(),
                        session_id: session,
                        subject: Subject::parse("The deposit on 4 Elm Row").unwrap(),
                        attachments: vec![],
                        uploads_issued_to_actor: BTreeSet::new(),
                        tenant_active: true,
                    },
                    &(),
                    EventMetadata::new(&customer, "bench", Source::Api).to_map(),
                )
                .await
                .expect("a session");
            sessions.push((session, customer));
        }
        Self {
            store,
            tenant,
            sessions,
        }
    }

    async fn submit(&self, n: usize) {
        let (session, customer) = &self.sessions[n % SESSIONS];
        self.store
            .execute(
                &session.to_string(),
                SessionCommand::SubmitQuery {
                    actor: customer.clone(),
                    query_id: QueryId::new(),
                    text: QueryText::parse(QUERY).unwrap(),
                    tenant_active: true,
                },
                &(),
                EventMetadata::new(customer, "bench", Source::Api).to_map(),
            )
            .await
            .expect("a query");
    }

    async fn load_state(&self, n: usize) {
        let (session, _) = &self.sessions[n % SESSIONS];
        EventRepository::load(&self.store, self.tenant, &session.to_string())
            .await
            .expect("the state");
    }

    async fn load_stream(&self, n: usize) {
        let (session, _) = &self.sessions[n % SESSIONS];
        EventRepository::load_events(&self.store, self.tenant, &session.to_string())
            .await
            .expect("the stream");
    }
}

/// Runs `operation` back to back for `cell`.
async fn run<F: std::future::Future<Output = ()>>(
    cell: Duration,
    operation: impl Fn(usize) -> F,
) -> Run {
    let mut took = Vec::new();
    let start = Instant::now();
    while start.elapsed() < cell {
        let began = Instant::now();
        operation(took.len()).await;
        took.push(began.elapsed());
    }
    Run::new(took, start.elapsed())
}

const CELLS: [&str; 6] = [
    "command, clear",
    "command, sealed",
    "state, clear",
    "state, sealed",
    "stream, clear",
    "stream, sealed",
];

#[tokio::main]
async fn main() {
    let Cells { seconds, rounds } = Cells::from_env();
    let cell = Duration::from_secs(seconds);
    let db = TestDb::new().await;
    let pool = db.pool(DbRole::App, 1).await;
    let vault = Arc::new(Vault::new(Arc::new(LocalRootKey::generate().unwrap())));
    let clear = Side::new(EventStore::new(pool.clone(), vec![])).await;
    let sealed = Side::new(EventStore::new(pool.clone(), vec![]).with_vault(vault)).await;

    let mut runs: Vec<Vec<Run>> = CELLS.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        runs[0].push(run(cell, |n| clear.submit(n)).await);
        runs[1].push(run(cell, |n| sealed.submit(n)).await);
        runs[2].push(run(cell, |n| clear.load_state(n)).await);
        runs[3].push(run(cell, |n| sealed.load_state(n)).await);
        runs[4].push(run(cell, |n| clear.load_stream(n)).await);
        runs[5].push(run(cell, |n| sealed.load_stream(n)).await);
    }

    let p50 = |cell: usize| Spread::of(runs[cell].iter().map(|r| millis(r.latencies.p50())));
    let p99 = |cell: usize| Spread::of(runs[cell].iter().map(|r| millis(r.latencies.p99())));
    let over =
        |of: usize, to: usize| {
            Spread::of(runs[of].iter().zip(&runs[to]).map(|(of, to)| {
                of.latencies.p50().as_secs_f64() / to.latencies.p50().as_secs_f64()
            }))
        };
    println!(
        "## Sealing: median (range) of {rounds} interleaved rounds, each cell {seconds} s, 1 connection\n"
    );
    println!("| operation | clear p50 / p99 ms | sealed p50 / p99 ms | sealed / clear p50 |");
    println!("|---|---|---|---|");
    for (name, (of, to)) in [
        ("command (SubmitQuery)", (1, 0)),
        ("state load", (3, 2)),
        ("whole-stream load", (5, 4)),
    ] {
        println!(
            "| {name} | {:.3} / {:.3} | {:.3} / {:.3} | {:.2} |",
            p50(to),
            p99(to),
            p50(of),
            p99(of),
            over(of, to)
        );
    }
}
