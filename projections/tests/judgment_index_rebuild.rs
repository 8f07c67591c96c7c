//! The judgment index's blue/green rebuild against a real Postgres with pgvector: a green
//! generation built from the log beside the live index, verified, swapped in; resumed after a
//! kill; one tenant's alone; refused when it fails its verification; and searches that never
//! come back empty while it happens.
//!
//! The history is written through the real event store; vectors come from the tests'
//! bag-of-words embedder (`judgment_index/words.rs`).

// Shared with judgment_index.rs, which uses all of it.
#[allow(dead_code)]
#[path = "judgment_index/words.rs"]
mod words;

use std::future::pending;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use casebook_adapters::event_store::EventStore;
use casebook_adapters::postgres::HNSW_EF_SEARCH;
use casebook_application::ports::CommandError;
use casebook_domain::actor::{Actor, Role};
use casebook_domain::decision::Outcome;
use casebook_domain::ids::{DecisionId, DiagnosisId, JudgmentId, TenantId, UserId};
use casebook_domain::judgment::{DecisionSnapshot, Judgment, JudgmentCommand, JudgmentContent};
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::personal::DataSubject;
use casebook_domain::policy::PlanTier;
use casebook_domain::ports::{EmbedError, Embedder};
use casebook_domain::tenant::{Tenant, TenantCommand};
use casebook_domain::upcast::upcasters;
use casebook_projections::judgment_index::{
    self, index_status, IndexError, IndexRebuild, JudgmentIndexSubscription, RecallCheck,
};
use casebook_projections::rebuild::{RebuildError, RebuildScope};
use casebook_projections::runner::{Runner, RunnerConfig};
use casebook_projections::status::status_of;
use casebook_tests::{DbRole, TestDb};
use cqrs_es::Aggregate;
use sqlx::PgPool;
use words::{words_vector_of, WordsEmbedder, WORDS};

/// Another model, of another dimension.
const WORDS_V2: WordsEmbedder = WordsEmbedder {
    model_id: "test/words-v2",
    dimension: 32,
};

/// A practice's history written through the event store, and the pools that read it.
struct Practice {
    /// Kept for its lifetime: the database goes with it.
    _db: TestDb,
    app: PgPool,
    projector: PgPool,
    maintainer: PgPool,
    searcher: PgPool,
    requests: AtomicUsize,
}

impl Practice {
    async fn new() -> Self {
        let db = TestDb::new().await;
        Self {
            app: db.pool(DbRole::App, 4).await,
            projector: db.pool(DbRole::Projector, 4).await,
            maintainer: db.pool(DbRole::Maintainer, 4).await,
            searcher: db.pool(DbRole::Search, 1).await,
            _db: db,
            requests: AtomicUsize::new(0),
        }
    }

    async fn execute<A>(&self, id: impl ToString, command: A::Command, actor: &Actor)
    where
        A: Aggregate<Services = ()> + DataSubject + Send + Sync,
        A::Error: Send + std::fmt::Debug,
    {
        let request = self.requests.fetch_add(1, Ordering::Relaxed);
        let metadata = EventMetadata::new(actor, format!("req-{request}"), Source::Api);
        match EventStore::<A>::new(self.app.clone(), upcasters())
            .execute(&id.to_string(), command, &(), metadata.to_map())
            .await
        {
            Ok(_) => {}
            Err(CommandError::Rejected(err)) => panic!("refused: {err:?}"),
            Err(other) => panic!("command failed: {other:?}"),
        }
    }

    fn actor(tenant: TenantId, role: Role, user: &str) -> Actor {
        Actor {
            user_id: UserId::parse(user).unwrap(),
            tenant_id: tenant,
            role,
        }
    }

    async fn onboard(&self) -> TenantId {
        let tenant = TenantId::new();
        let admin = Self::actor(tenant, Role::Admin, "admin-1");
        let command = TenantCommand::Onboard {
            actor: admin.clone(),
            name: "Practice".to_owned().try_into().unwrap(),
            plan: PlanTier::Professional,
        };
        self.execute::<Tenant>(tenant, command, &admin).await;
        tenant
    }

    async fn author(&self, tenant: TenantId, title: &str, body: &str) -> JudgmentId {
        let judgment = JudgmentId::new();
        let consultant = Self::actor(tenant, Role::Consultant, "consultant-1");
        let command = JudgmentCommand::Author {
            actor: consultant.clone(),
            judgment_id: judgment,
            content: content(title, body),
        };
        self.execute::<Judgment>(judgment, command, &consultant)
            .await;
        judgment
    }

    async fn revise(&self, tenant: TenantId, judgment: JudgmentId, title: &str, body: &str) {
        let consultant = Self::actor(tenant, Role::Consultant, "consultant-1");
        let command = JudgmentCommand::Revise {
            actor: consultant.clone(),
            content: content(title, body),
        };
        self.execute::<Judgment>(judgment, command, &consultant)
            .await;
    }

    async fn retire(&self, tenant: TenantId, judgment: JudgmentId) {
        let consultant = Self::actor(tenant, Role::Consultant, "consultant-1");
        let command = JudgmentCommand::Retire {
            actor: consultant.clone(),
            reason: "superseded".to_owned().try_into().unwrap(),
        };
        self.execute::<Judgment>(judgment, command, &consultant)
            .await;
    }

    /// A judgment captured from an approved decision on `customer`'s query.
    async fn capture(&self, tenant: TenantId, customer: &str, title: &str) -> JudgmentId {
        let decision_id = DecisionId::new();
        let judgment = JudgmentId::for_decision(decision_id);
        let system = Actor::system(tenant);
        let command = JudgmentCommand::CaptureFromDecision {
            actor: system.clone(),
            decision: DecisionSnapshot {
                decision_id,
                diagnosis_id: DiagnosisId::new(),
                tenant_id: tenant,
                outcome: Outcome::Approved,
                customer: Some(UserId::parse(customer).unwrap()),
            },
            content: content(title, "captured from a decision"),
        };
        self.execute::<Judgment>(judgment, command, &system).await;
        judgment
    }

    async fn erase(&self, tenant: TenantId, customer: &str) {
        let admin = Self::actor(tenant, Role::Admin, "admin-1");
        let command = TenantCommand::EraseSubject {
            actor: admin.clone(),
            subject: UserId::parse(customer).unwrap(),
        };
        self.execute::<Tenant>(tenant, command, &admin).await;
    }

    /// Runs the live subscription with `embedder` until it has applied the whole log (the
    /// reader stops below other tests' open transactions, so this may take a few drains).
    async fn index_live(&self, embedder: WordsEmbedder) {
        for _ in 0..600 {
            self.drain_live(embedder, Duration::from_secs(10)).await;
            if self.live_lag().await == Some(0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the live index never caught up");
    }

    async fn drain_live(&self, embedder: WordsEmbedder, budget: Duration) {
        Runner::new(self.projector.clone())
            .with_subscription(JudgmentIndexSubscription::new(Arc::new(embedder)))
            .with_config(quick())
            .drain(budget)
            .await
            .expect("no subscription panics");
    }

    async fn live_lag(&self) -> Option<i64> {
        let mut conn = self.projector.acquire().await.unwrap();
        status_of(&mut conn, judgment_index::SUBSCRIPTION)
            .await
            .unwrap()
            .map(|status| status.lag_events)
    }

    async fn live_error(&self) -> (String, Option<String>) {
        sqlx::query_as("SELECT status, last_error FROM subscriptions WHERE name = $1")
            .bind(judgment_index::SUBSCRIPTION)
            .fetch_one(&self.projector)
            .await
            .unwrap()
    }

    fn rebuild(&self, embedder: impl Embedder + 'static, scope: RebuildScope) -> IndexRebuild {
        IndexRebuild::new(
            self.maintainer.clone(),
            Arc::new(embedder),
            scope,
            RecallCheck::new(HNSW_EF_SEARCH),
        )
    }

    /// `tenant`'s judgments nearest to `text`, searched as the product does with `embedder`.
    async fn search(
        &self,
        tenant: TenantId,
        embedder: WordsEmbedder,
        text: &str,
    ) -> Result<Vec<JudgmentId>, IndexError> {
        let mut conn = self.searcher.acquire().await.unwrap();
        let query = words_vector_of(text, embedder.dimension);
        Ok(
            judgment_index::search(&mut conn, tenant, embedder.model_id, &query, 10)
                .await?
                .into_iter()
                .map(|hit| hit.judgment_id)
                .collect(),
        )
    }

    /// The live index's rows of `tenant`: judgment, source position, when indexed (as text),
    /// and the partition holding them.
    async fn live_rows(&self, tenant: TenantId) -> Vec<(uuid::Uuid, i64, String, String)> {
        sqlx::query_as(
            "SELECT judgment_id, source_position, indexed_at::text,
                    (tableoid::regclass::oid)::text
               FROM judgment_index WHERE tenant_id = $1 ORDER BY judgment_id",
        )
        .bind(tenant.as_uuid())
        .fetch_all(&self.maintainer)
        .await
        .unwrap()
    }

    async fn partition_oid(&self, tenant: TenantId) -> Option<String> {
        sqlx::query_scalar("SELECT to_regclass($1)::oid::text")
            .bind(format!("judgment_index_{}", tenant.as_uuid().simple()))
            .fetch_one(&self.maintainer)
            .await
            .unwrap()
    }

    async fn rebuild_rows(&self) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT name FROM subscriptions WHERE starts_with(name, 'judgment_index#rebuild')",
        )
        .fetch_all(&self.maintainer)
        .await
        .unwrap()
    }
}

fn content(title: &str, body: &str) -> JudgmentContent {
    JudgmentContent {
        title: title.to_owned().try_into().unwrap(),
        body: body.to_owned().try_into().unwrap(),
        tags: vec![],
    }
}

fn quick() -> RunnerConfig {
    RunnerConfig {
        batch_size: 500,
        poll_interval: Duration::from_millis(50),
        settle_interval: Duration::from_millis(5),
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(200),
        standby_interval: Duration::from_millis(100),
        lag_interval: Duration::from_secs(1),
    }
}

/// `n` judgments of `tenant` with distinct texts on a few topics.
async fn author_many(practice: &Practice, tenant: TenantId, n: usize) -> Vec<JudgmentId> {
    const TOPICS: [&str; 6] = [
        "boiler", "pressure", "roof", "invoice", "gutter", "radiator",
    ];
    let mut judgments = Vec::with_capacity(n);
    for i in 0..n {
        let text = format!(
            "{} {} case {i}",
            TOPICS[i % TOPICS.len()],
            TOPICS[(i / TOPICS.len()) % TOPICS.len()]
        );
        judgments.push(practice.author(tenant, &text, &text).await);
    }
    judgments
}

#[tokio::test]
async fn a_rebuild_for_another_model_is_built_beside_the_live_index_verified_and_swapped_in() {
    let practice = Practice::new().await;
    let (a, b) = (practice.onboard().await, practice.onboard().await);
    let boiler = practice
        .author(a, "Boiler pressure", "Boiler pressure drops overnight")
        .await;
    let roof = practice.author(a, "Roof leak", "Roof leaks in rain").await;
    let gutter = practice.author(a, "Gutter", "Gutter blocked").await;
    practice
        .revise(
            a,
            gutter,
            "Gutter blocked",
            "Gutter blocked by leaves: clear it",
        )
        .await;
    // Captured from a customer who is then erased: gone from both generations.
    practice.capture(a, "customer-7", "Lease break").await;
    practice.erase(a, "customer-7").await;
    let kept = practice.author(b, "Invoice", "Invoice overdue").await;
    let retired = practice.author(b, "Radiator", "Radiator cold").await;
    practice.retire(b, retired).await;
    practice.index_live(WORDS).await;

    let rebuild = practice.rebuild(WORDS_V2, RebuildScope::All);
    let built = rebuild.build(pending(), |_| {}).await.expect("build");
    assert!(built.caught_up, "{built:?}");

    // Searches answer from the live index, with its model, while the green one stands by.
    let found = practice
        .search(a, WORDS, "boiler pressure drops")
        .await
        .unwrap();
    assert_eq!(found.first(), Some(&boiler), "{found:?}");
    let status = index_status(&mut practice.maintainer.acquire().await.unwrap())
        .await
        .unwrap();
    assert_eq!(status.live_model.unwrap().model, WORDS.model_id);
    assert_eq!(status.live_rows, 4);
    let green = status.green.expect("a green generation");
    assert_eq!(green.in_place.scope, RebuildScope::All);
    assert_eq!(green.in_place.model.model, WORDS_V2.model_id);
    assert_eq!((green.rows, green.partitions, green.graphs), (4, 2, 2));

    let verdict = rebuild.verify().await.expect("verify");
    assert!(verdict.passes(), "{verdict}");
    let counts: Vec<(TenantId, u64, u64, u64)> = verdict
        .tenants
        .iter()
        .map(|t| (t.tenant, t.expected, t.green, t.live))
        .collect();
    let mut wanted = vec![(a, 3, 3, 3), (b, 1, 1, 1)];
    wanted.sort_by_key(|(tenant, ..)| *tenant.as_uuid());
    assert_eq!(counts, wanted);
    assert_eq!((verdict.recall.sampled, verdict.recall.found), (4, 4));

    let swapped = rebuild.swap(|_| {}).await.expect("swap");
    assert!(swapped.passes(), "{swapped}");

    // The new model answers, and the search role reads the swapped-in partitions; a query
    // of the old model is refused, not ranked among the new vectors.
    let found = practice
        .search(a, WORDS_V2, "roof leaks in rain")
        .await
        .unwrap();
    assert_eq!(found.first(), Some(&roof), "{found:?}");
    assert_eq!(found.len(), 3);
    assert_eq!(
        practice.search(b, WORDS_V2, "invoice").await.unwrap(),
        [kept]
    );
    let refused = practice
        .search(a, WORDS, "roof leaks in rain")
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, IndexError::QueryModel { indexed_model, .. } if indexed_model == WORDS_V2.model_id),
        "{refused:?}"
    );
    let status = index_status(&mut practice.maintainer.acquire().await.unwrap())
        .await
        .unwrap();
    assert_eq!(status.live_model.unwrap().model, WORDS_V2.model_id);
    assert_eq!((status.live_rows, status.live_partitions), (4, 2));
    assert!(status.green.is_none());
    assert!(practice.rebuild_rows().await.is_empty());

    // A process still on the old model waits without indexing; the new model's carries on.
    let later = practice.author(a, "Boiler noise", "Boiler bangs").await;
    let waiting = async {
        // Until the reader reaches the new judgment (other tests' transactions may hide it).
        loop {
            practice.drain_live(WORDS, Duration::from_millis(200)).await;
            if let (state, Some(error)) = practice.live_error().await {
                break (state, error);
            }
        }
    };
    let (state, error) = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the old model's process meets the new judgment");
    assert_eq!(state, "running");
    assert!(error.contains("rebuild"), "{error}");
    assert_eq!(practice.live_rows(a).await.len(), 3);
    practice.index_live(WORDS_V2).await;
    let rows: Vec<uuid::Uuid> = practice
        .live_rows(a)
        .await
        .into_iter()
        .map(|row| row.0)
        .collect();
    assert!(
        rows.contains(later.as_uuid()) && rows.len() == 4,
        "{rows:?}"
    );
}

/// [`WORDS`], whose calls past the first `open` never return: a build that stalls at a
/// known batch, to be killed there.
struct StallingEmbedder {
    calls: Arc<AtomicUsize>,
    open: usize,
}

#[async_trait]
impl Embedder for StallingEmbedder {
    fn model_id(&self) -> &str {
        WORDS.model_id
    }

    fn dimension(&self) -> usize {
        WORDS.dimension
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) >= self.open {
            pending::<()>().await;
        }
        WORDS.embed(texts).await
    }
}

#[tokio::test]
async fn a_build_killed_half_way_resumes_where_it_stopped() {
    let practice = Practice::new().await;
    let tenant = practice.onboard().await;
    author_many(&practice, tenant, 60).await;
    practice.index_live(WORDS).await;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&practice.maintainer)
        .await
        .unwrap();

    // Killed while embedding its fourth batch: three are committed.
    let calls = Arc::new(AtomicUsize::new(0));
    let stalling = practice
        .rebuild(
            StallingEmbedder {
                calls: calls.clone(),
                open: 3,
            },
            RebuildScope::All,
        )
        .with_batch_size(10);
    let build = tokio::spawn(async move { stalling.build(pending(), |_| {}).await });
    while calls.load(Ordering::SeqCst) < 4 {
        assert!(!build.is_finished(), "the build ended: {:?}", build.await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    build.abort();
    assert!(build.await.unwrap_err().is_cancelled());
    let applied: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events e JOIN subscriptions s ON s.name = 'judgment_index#rebuild'
          WHERE (e.transaction_id, e.global_position) <= (s.checkpoint_tx, s.checkpoint_position)",
    )
    .fetch_one(&practice.maintainer)
    .await
    .unwrap();
    assert_eq!(applied, 30);

    // The killed session's lock goes when the server notices its connection closed.
    let rebuild = practice
        .rebuild(WORDS, RebuildScope::All)
        .with_batch_size(10);
    let resumed = loop {
        match rebuild.build(pending(), |_| {}).await {
            Err(RebuildError::Busy(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
            other => break other.expect("resume"),
        }
    };
    assert!(resumed.caught_up);
    assert!(resumed.resumed_from.global_position > 0, "{resumed:?}");
    assert_eq!(i64::try_from(resumed.applied).unwrap(), total - 30);
    let verdict = rebuild.verify().await.expect("verify");
    assert!(verdict.passes(), "{verdict}");
    assert_eq!(verdict.tenants[0].green, 60);
}

#[tokio::test]
async fn a_one_tenant_rebuild_replaces_its_partition_and_leaves_the_others_untouched() {
    let practice = Practice::new().await;
    let (a, b) = (practice.onboard().await, practice.onboard().await);
    author_many(&practice, a, 12).await;
    author_many(&practice, b, 7).await;
    practice.index_live(WORDS).await;
    let before_a = practice.live_rows(a).await;
    let before_b = practice.live_rows(b).await;
    let oid_a = practice.partition_oid(a).await.unwrap();

    // One tenant's rebuild keeps the index's model.
    let refused = practice
        .rebuild(WORDS_V2, RebuildScope::Tenant(a))
        .build(pending(), |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            RebuildError::Index(IndexError::ModelChanged { .. })
        ),
        "{refused:?}"
    );
    assert!(practice.rebuild_rows().await.is_empty());

    let rebuild = practice.rebuild(WORDS, RebuildScope::Tenant(a));
    let verdict = rebuild
        .run(pending(), |_| {})
        .await
        .expect("rebuild")
        .expect("caught up");
    assert!(verdict.passes(), "{verdict}");
    assert_eq!(verdict.tenants.len(), 1);
    assert_eq!(verdict.tenants[0].tenant, a);

    // Tenant A's partition is a new table holding the same judgments; tenant B's is the
    // same table with the same rows, down to when each was indexed.
    let after_a = practice.live_rows(a).await;
    assert_ne!(practice.partition_oid(a).await.unwrap(), oid_a);
    let judgments = |rows: &[(uuid::Uuid, i64, String, String)]| {
        rows.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>()
    };
    assert_eq!(judgments(&after_a), judgments(&before_a));
    assert_eq!(practice.live_rows(b).await, before_b);
    assert_eq!(practice.search(a, WORDS, "boiler").await.unwrap().len(), 10);
    assert!(practice.rebuild_rows().await.is_empty());
}

#[tokio::test]
async fn a_green_index_failing_its_verification_is_not_swapped_in() {
    let practice = Practice::new().await;
    let tenant = practice.onboard().await;
    author_many(&practice, tenant, 30).await;
    practice.index_live(WORDS).await;
    let live_before = practice.live_rows(tenant).await;
    let rebuild = practice.rebuild(WORDS, RebuildScope::All);

    // A row short of what the log holds.
    rebuild.build(pending(), |_| {}).await.expect("build");
    sqlx::query(
        "DELETE FROM judgment_index_green
          WHERE judgment_id = (SELECT judgment_id FROM judgment_index_green
                                ORDER BY judgment_id LIMIT 1)",
    )
    .execute(&practice.maintainer)
    .await
    .unwrap();
    let verdict = rebuild.verify().await.expect("verify");
    assert!(!verdict.passes());
    assert_eq!(
        (verdict.tenants[0].expected, verdict.tenants[0].green),
        (30, 29)
    );
    let refused = rebuild.swap(|_| {}).await.unwrap_err();
    assert!(
        matches!(&refused, RebuildError::Unverified(why) if why.contains("29 rows")),
        "{refused:?}"
    );
    assert_eq!(practice.live_rows(tenant).await, live_before);

    // Every row present, but every vector the same: the graph can't tell them apart.
    rebuild.discard().await.expect("discard");
    rebuild.build(pending(), |_| {}).await.expect("build");
    sqlx::query(
        "UPDATE judgment_index_green
            SET embedding = (SELECT embedding FROM judgment_index_green ORDER BY judgment_id LIMIT 1)",
    )
    .execute(&practice.maintainer)
    .await
    .unwrap();
    let verdict = rebuild.verify().await.expect("verify");
    assert!(verdict.tenants.iter().all(|t| t.matches()));
    assert!(!verdict.recall.passes(), "{verdict}");
    assert!(rebuild.swap(|_| {}).await.is_err());
    assert_eq!(practice.live_rows(tenant).await, live_before);
    rebuild.discard().await.expect("discard");
    assert!(practice.rebuild_rows().await.is_empty());
}

#[tokio::test]
async fn searches_never_come_back_empty_while_the_index_is_rebuilt_and_swapped_in() {
    let practice = Arc::new(Practice::new().await);
    let (searched, written) = (practice.onboard().await, practice.onboard().await);
    author_many(&practice, searched, 40).await;
    practice.index_live(WORDS).await;

    // The live subscription follows the log throughout, and a consultant of the other
    // tenant keeps writing: the swap must take over the live index's latest rows.
    let (stop_live, live_stopped) = tokio::sync::oneshot::channel::<()>();
    let live = tokio::spawn(
        Runner::new(practice.projector.clone())
            .with_subscription(JudgmentIndexSubscription::new(Arc::new(WORDS)))
            .with_config(quick())
            .run_until(async {
                let _ = live_stopped.await;
            }),
    );
    let writing = Arc::new(AtomicBool::new(true));
    let writer = tokio::spawn({
        let (practice, writing) = (practice.clone(), writing.clone());
        async move {
            let mut authored = 0;
            while writing.load(Ordering::SeqCst) {
                let text = format!("invoice reminder {authored}");
                practice.author(written, &text, &text).await;
                authored += 1;
                // A consultant's pace, not a flood the build would have to chase.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            authored
        }
    });

    // Searches of the tenant that has judgments, on one connection of the search role,
    // until the swap is done and once more after it.
    let swapped = Arc::new(AtomicBool::new(false));
    let searches = tokio::spawn({
        let (practice, swapped) = (practice.clone(), swapped.clone());
        async move {
            let mut count = 0;
            loop {
                let done = swapped.load(Ordering::SeqCst);
                let found = practice
                    .search(searched, WORDS, "boiler pressure case")
                    .await
                    .expect("search");
                assert_eq!(found.len(), 10, "search {count} came back short: {found:?}");
                count += 1;
                if done {
                    return count;
                }
            }
        }
    });

    let verdict = practice
        .rebuild(WORDS, RebuildScope::All)
        .with_batch_size(5)
        .run(pending(), |_| {})
        .await
        .expect("rebuild")
        .expect("caught up");
    assert!(verdict.passes(), "{verdict}");
    swapped.store(true, Ordering::SeqCst);
    let count = searches.await.expect("no search came back empty");
    assert!(count > 1);

    writing.store(false, Ordering::SeqCst);
    let authored = writer.await.unwrap();
    stop_live.send(()).unwrap();
    live.await.unwrap().unwrap();
    practice.index_live(WORDS).await;
    assert_eq!(practice.live_rows(written).await.len(), authored);
    assert_eq!(practice.live_rows(searched).await.len(), 40);
}
