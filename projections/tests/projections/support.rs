//! Shared by the projection tests: a database with the three roles' pools, and a driver that
//! issues a random but plausible mix of commands through the real event store.

use std::collections::HashMap;
use std::time::Duration;

use casebook_adapters::event_store::EventStore;
use casebook_adapters::postgres::MIGRATOR;
use casebook_application::ports::CommandError;
use casebook_domain::actor::{Actor, Role};
use casebook_domain::budget::{BudgetMonth, BudgetThreshold, BudgetUse};
use casebook_domain::decision::{ConsultantDecision, DecisionCommand, Outcome};
use casebook_domain::diagnosis::{
    AttachmentOutcome, AttachmentRead, Deferral, Diagnosis, DiagnosisCommand, DiagnosisStatus,
    EmbeddingModel, Finding, PrecedentSource, Provenance, RetrievedJudgment, Severity, SkipReason,
};
use casebook_domain::finetune::{FinetuneExport, LogPosition};
use casebook_domain::ids::{
    DecisionId, DiagnosisId, JudgmentId, QueryId, SessionId, TenantId, UserId,
};
use casebook_domain::judgment::{DecisionSnapshot, Judgment, JudgmentCommand, JudgmentContent};
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::own_model::{ModelArtifact, ModelEvaluation, ModelFormat, ModelId, METRIC};
use casebook_domain::policy::{ModelPolicy, ModelTier, PlanTier};
use casebook_domain::ports::StopReason;
use casebook_domain::session::{SessionCommand, TenantSession};
use casebook_domain::tenant::{Invitee, Tenant, TenantCommand};
use casebook_domain::upcast::upcasters;
use casebook_domain::values::{Confidence, Email, UploadKey};
use casebook_projections::audit::{self, ChainHash, Encoding};
use casebook_projections::decoded::DecodedEvent;
use casebook_projections::log::{Checkpoint, LogReader, Scope};
use casebook_projections::projection::ProjectionId;
use casebook_projections::rebuild::{Rebuild, RebuildScope, TableVerdict};
use casebook_projections::runner::{DrainOutcome, DrainReport, Runner, RunnerConfig};
use casebook_tests::{DbRole, TestDb};
use chrono::NaiveDate;
use cqrs_es::{Aggregate, EventStore as _};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sqlx::{Executor, PgConnection, PgPool};

/// The snapshot column today's event store writes, on a schema from before it: added
/// before the old schema takes commands, dropped before the upgrade adds it for real.
const SNAPSHOTS_OF_TODAY: &str = "ALTER TABLE snapshots ADD COLUMN IF NOT EXISTS tenant_id uuid";
const SNAPSHOTS_AS_THEY_WERE: &str = "DO $$ BEGIN
         IF NOT EXISTS (SELECT 1 FROM _sqlx_migrations WHERE version = 20261207000001) THEN
             ALTER TABLE snapshots DROP COLUMN IF EXISTS tenant_id;
         END IF;
     END $$";

/// A test database and a pool per role.
pub struct Stack {
    pub db: TestDb,
    pub app: PgPool,
    pub projector: PgPool,
    pub owner: PgPool,
    /// The owner's pool of rebuilds (rows as `casebook_maintainer`).
    pub maintainer: PgPool,
}

impl Stack {
    pub async fn new() -> Self {
        Self::on(TestDb::new().await).await
    }

    /// A database as a deployment stood before migration `version` (see
    /// [`TestDb::migrated_before`]), taking today's commands: their snapshots carry their
    /// tenant, a column older schemas lack, which it gets until [`Stack::upgrade`].
    pub async fn migrated_before(version: i64) -> Self {
        let stack = Self::on(TestDb::migrated_before(version).await).await;
        stack
            .db
            .superuser()
            .await
            .execute(SNAPSHOTS_OF_TODAY)
            .await
            .expect("snapshots with their tenant");
        stack
    }

    async fn on(db: TestDb) -> Self {
        let app = db.pool(DbRole::App, 4).await;
        let projector = db.pool(DbRole::Projector, 16).await;
        let owner = db.pool(DbRole::Owner, 10).await;
        let maintainer = db.pool(DbRole::Maintainer, 10).await;
        Self {
            db,
            app,
            projector,
            owner,
            maintainer,
        }
    }

    /// Quick pacing for tests.
    pub fn config(batch_size: usize) -> RunnerConfig {
        RunnerConfig {
            batch_size,
            poll_interval: Duration::from_millis(50),
            settle_interval: Duration::from_millis(5),
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(200),
            standby_interval: Duration::from_millis(100),
            lag_interval: Duration::from_secs(1),
        }
    }

    /// Drains every projection with `batch_size` until none lags: a drain catches up with
    /// what is *final*, and the horizon is cluster-wide, so other tests' open transactions
    /// can hold a drain back. Returns the reports of every drain.
    pub async fn drain_all(&self, batch_size: usize) -> Vec<DrainReport> {
        let mut all = Vec::new();
        poll_until("every projection caught up", async || {
            let reports = Runner::new(self.projector.clone())
                .with_projections(ProjectionId::ALL)
                .with_config(Self::config(batch_size))
                .drain(Duration::from_secs(120))
                .await
                .expect("no subscription panics");
            for report in &reports {
                assert_eq!(report.outcome, DrainOutcome::CaughtUp, "{report:?}");
            }
            all.extend(reports);
            self.lagging(&projection_names()).await.is_empty()
        })
        .await;
        all
    }

    /// Waits until every event in the log is visible to the gap-safe reader: below the
    /// oldest transaction still running anywhere in the cluster (other tests' included). A
    /// drain ends at the first empty page, so a test that needs it to reach a given batch
    /// must not start while its own tail is still hidden behind someone else's transaction.
    pub async fn wait_until_log_visible(&self) {
        poll_until("no event hidden behind an older transaction", async || {
            let hidden: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM events
                  WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot())",
            )
            .fetch_one(&self.owner)
            .await
            .expect("count hidden events");
            hidden == 0
        })
        .await;
    }

    /// The subscriptions among `names` that lag (or have no row yet).
    pub async fn lagging(&self, names: &[&str]) -> Vec<String> {
        let mut conn = self.owner.acquire().await.expect("connection");
        let statuses = casebook_projections::status::status(&mut conn)
            .await
            .expect("status");
        names
            .iter()
            .filter(|name| {
                !statuses
                    .iter()
                    .any(|s| s.name == **name && s.lag_events == 0)
            })
            .map(|name| name.to_string())
            .collect()
    }

    /// Builds `rebuild` (resuming) until its checkpoint rows don't lag.
    pub async fn build_to_head(&self, rebuild: &Rebuild, projections: &[ProjectionId]) {
        let names: Vec<String> = projections.iter().map(|id| rebuild.row_name(*id)).collect();
        poll_until("the rebuild at the head of the log", async || {
            let built = rebuild
                .build(std::future::pending(), |_| {})
                .await
                .expect("rebuild");
            assert!(built.caught_up);
            let tenant = match rebuild.scope() {
                RebuildScope::All => None,
                RebuildScope::Tenant(tenant) => Some(*tenant.as_uuid()),
            };
            let behind: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM subscriptions s JOIN events e
                    ON (e.transaction_id, e.global_position) > (s.checkpoint_tx, s.checkpoint_position)
                 WHERE s.name = ANY($1) AND ($2::uuid IS NULL OR e.tenant_id = $2)",
            )
            .bind(&names)
            .bind(tenant)
            .fetch_one(&self.owner)
            .await
            .expect("rebuild lag");
            behind == 0
        })
        .await;
    }

    /// Builds every projection afresh into shadow tables and compares them with the live
    /// ones; returns the verdicts (and discards the shadows).
    pub async fn verify_against_rebuild(&self, projections: &[ProjectionId]) -> Vec<TableVerdict> {
        let rebuild = Rebuild::new(
            self.maintainer.clone(),
            projections.iter().copied(),
            RebuildScope::All,
        )
        .with_batch_size(97);
        rebuild
            .discard()
            .await
            .expect("discard any earlier rebuild");
        self.build_to_head(&rebuild, projections).await;
        let verdicts = rebuild.verify().await.expect("verify");
        rebuild.discard().await.expect("discard");
        verdicts
    }

    /// Applies the migrations not applied yet, as a deployment's upgrade does.
    pub async fn upgrade(&self) {
        let mut su = self.db.superuser().await;
        su.execute(SNAPSHOTS_AS_THEY_WERE)
            .await
            .expect("snapshots as the old schema had them");
        MIGRATOR.run(&mut su).await.expect("upgrade");
    }

    /// Chains every event of the log into `audit_log` as the audit projection did before
    /// encoding 2 (the row of each event, hashed in encoding 1, on a schema without the
    /// encoding and digest columns), and sets the projection's checkpoint after them: a
    /// deployment's history from before the upgrade. Returns how many rows it wrote.
    pub async fn chain_in_encoding_1(&self) -> usize {
        self.wait_until_log_visible().await;
        let mut events = LogReader::new(self.owner.clone()).catch_up(Checkpoint::START, Scope::All);
        let mut su = self.db.superuser().await;
        let mut heads: HashMap<TenantId, (i64, ChainHash)> = HashMap::new();
        let mut last = None;
        let mut written = 0;
        while let Some(event) = events.next().await {
            let event = DecodedEvent::decode(&event.expect("read the log")).expect("decode");
            let mut row = audit::row_of(&event).expect("the event's row");
            row.encoding = Encoding::V1;
            row.event_digest = None;
            let head = heads.entry(row.tenant_id).or_insert((0, ChainHash::ZERO));
            row.seq = head.0 + 1;
            row.prev_hash = head.1;
            row.hash = row.compute_hash();
            *head = (row.seq, row.hash);
            let mut json = serde_json::to_value(&row).expect("row as JSON");
            // `bytea` reads hexadecimal after `\x`; the export form has the bare digits.
            for hash in ["prev_hash", "hash"] {
                json[hash] = format!("\\x{}", json[hash].as_str().expect("hex")).into();
            }
            sqlx::query(
                "INSERT INTO audit_log SELECT * FROM jsonb_populate_record(NULL::audit_log, $1)",
            )
            .bind(json)
            .execute(&mut su)
            .await
            .expect("insert a version-1 row");
            last = Some(event.checkpoint);
            written += 1;
        }
        let last = last.expect("a log to chain");
        sqlx::query(
            "INSERT INTO subscriptions (name, checkpoint_tx, checkpoint_position)
             VALUES ('audit', $1::bigint::text::xid8, $2)",
        )
        .bind(last.transaction_id)
        .bind(last.global_position)
        .execute(&mut su)
        .await
        .expect("the audit projection's checkpoint");
        written
    }
}

/// Asserts every verdict matches, naming the first that doesn't.
pub fn assert_all_match(verdicts: &[TableVerdict]) {
    assert!(!verdicts.is_empty());
    for verdict in verdicts {
        assert!(
            verdict.matches(),
            "{} differs: {verdict:?}",
            verdict.table.name
        );
    }
}

/// Begins a transaction as `role`, as the request path does, with `app.tenant_id` set.
pub async fn as_tenant(conn: &mut PgConnection, role: &str, tenant: Option<TenantId>) {
    conn.execute(format!("BEGIN; SET LOCAL ROLE {role}").as_str())
        .await
        .expect("begin");
    if let Some(tenant) = tenant {
        conn.execute(format!("SET LOCAL app.tenant_id = '{tenant}'").as_str())
            .await
            .expect("set tenant");
    }
}

fn parse<T: TryFrom<String>>(text: impl Into<String>) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(text.into()).expect("valid test value")
}

fn confidence(value: f64) -> Confidence {
    Confidence::new(value).expect("valid confidence")
}

/// What the driver knows about a tenant's aggregates.
#[derive(Default)]
struct Known {
    /// Each session with the customer who opened it (the only one who may use it).
    sessions: Vec<(SessionId, Actor)>,
    diagnoses: Vec<DiagnosisId>,
    judgments: Vec<JudgmentId>,
}

/// Issues random commands through the event store, as the application and its reactions
/// would, reading preconditions from the aggregates first.
pub struct Driver {
    pool: PgPool,
    rng: StdRng,
    pub tenants: Vec<TenantId>,
    known: HashMap<TenantId, Known>,
    requests: u64,
    pub accepted: usize,
}

const MODELS: [(&str, ModelTier); 3] = [
    ("anthropic.claude-haiku", ModelTier::Triage),
    ("anthropic.claude-sonnet", ModelTier::Standard),
    ("meta.llama3-70b", ModelTier::OpenWeights),
];

impl Driver {
    /// A driver over `pool` (the app role) with a seeded generator.
    pub fn new(pool: PgPool, seed: u64) -> Self {
        Self {
            pool,
            rng: StdRng::seed_from_u64(seed),
            tenants: Vec::new(),
            known: HashMap::new(),
            requests: 0,
            accepted: 0,
        }
    }

    fn store<A: Aggregate>(&self) -> EventStore<A> {
        EventStore::new(self.pool.clone(), upcasters())
    }

    async fn state<A>(&self, tenant: TenantId, id: impl ToString) -> A
    where
        A: Aggregate + casebook_domain::personal::DataSubject + Send + Sync + Clone,
        A::Error: Send,
    {
        self.store::<A>()
            .for_tenant(*tenant.as_uuid())
            .load_aggregate(&id.to_string())
            .await
            .expect("load aggregate")
            .state()
            .clone()
    }

    /// Runs `command` as `actor`; `true` when accepted, `false` when the aggregate refused.
    async fn execute<A>(
        &mut self,
        id: impl ToString,
        command: A::Command,
        actor: &Actor,
        source: Source,
    ) -> bool
    where
        A: Aggregate<Services = ()> + casebook_domain::personal::DataSubject + Send + Sync,
        A::Error: Send + std::fmt::Debug,
    {
        self.requests += 1;
        let metadata = EventMetadata::new(actor, format!("req-{}", self.requests), source);
        match self
            .store::<A>()
            .execute(&id.to_string(), command, &(), metadata.to_map())
            .await
        {
            Ok(_) => {
                self.accepted += 1;
                true
            }
            Err(CommandError::Rejected(_)) => false,
            Err(other) => panic!("command failed: {other:?}"),
        }
    }

    fn user(&mut self, role: Role, tenant: TenantId) -> Actor {
        let n = self.rng.gen_range(1..=3);
        Actor {
            user_id: parse::<UserId>(format!("{role:?}-{n}").to_lowercase()),
            tenant_id: tenant,
            role,
        }
    }

    /// Onboards `n` tenants (with an auto-resolve threshold for some).
    pub async fn onboard(&mut self, n: usize) {
        for i in 0..n {
            let tenant = TenantId::new();
            let admin = self.user(Role::Admin, tenant);
            let name = format!("Practice {i}");
            let onboarded = self
                .execute::<Tenant>(
                    tenant,
                    TenantCommand::Onboard {
                        actor: admin.clone(),
                        name: parse(name),
                        plan: PlanTier::Professional,
                    },
                    &admin,
                    Source::Api,
                )
                .await;
            assert!(onboarded);
            if i % 2 == 0 {
                self.execute::<Tenant>(
                    tenant,
                    TenantCommand::SetAutoResolveThreshold {
                        actor: admin.clone(),
                        threshold: Some(confidence(0.9)),
                    },
                    &admin,
                    Source::Api,
                )
                .await;
            }
            self.tenants.push(tenant);
            self.known.insert(tenant, Known::default());
        }
    }

    /// Issues `steps` random commands.
    pub async fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            self.step().await;
        }
    }

    /// One random command.
    pub async fn step(&mut self) {
        let tenant = *self
            .tenants
            .choose(&mut self.rng)
            .expect("onboarded tenants");
        match self.rng.gen_range(0..100) {
            0..=2 => self.tenant_admin(tenant).await,
            3..=12 => self.open_session(tenant).await,
            13..=14 => self.close_session(tenant).await,
            15..=34 => self.submit_query(tenant).await,
            35..=38 => self.judgment_work(tenant).await,
            _ => self.advance_diagnosis(tenant).await,
        }
    }

    async fn tenant_admin(&mut self, tenant: TenantId) {
        let admin = self.user(Role::Admin, tenant);
        // Not drawn from the workload's generator, so its random sequence stays what it was.
        let operator = Actor {
            user_id: parse::<UserId>("operator:ops".to_owned()),
            tenant_id: tenant,
            role: Role::Operator,
        };
        let state: Tenant = self.state(tenant, tenant).await;
        let (command, actor, source) = match self.rng.gen_range(0..5) {
            0 => (
                TenantCommand::ChangePlan {
                    actor: operator.clone(),
                    plan: *[
                        PlanTier::Starter,
                        PlanTier::Enterprise,
                        PlanTier::CostSensitive,
                    ]
                    .choose(&mut self.rng)
                    .expect("plans"),
                },
                &operator,
                Source::Operator,
            ),
            1 => (
                TenantCommand::SetAutoResolveThreshold {
                    actor: admin.clone(),
                    threshold: [None, Some(confidence(0.8)), Some(confidence(0.95))]
                        [self.rng.gen_range(0..3)],
                },
                &admin,
                Source::Api,
            ),
            2 => (
                TenantCommand::SetModelPolicy {
                    actor: admin.clone(),
                    policy: if self.rng.gen() {
                        ModelPolicy::OpenWeightsOnly
                    } else {
                        ModelPolicy::ByPlan
                    },
                },
                &admin,
                Source::Api,
            ),
            _ if state.is_active() => (
                TenantCommand::Suspend {
                    actor: operator.clone(),
                    reason: parse("billing overdue"),
                },
                &operator,
                Source::Operator,
            ),
            _ => (
                TenantCommand::Reactivate {
                    actor: operator.clone(),
                },
                &operator,
                Source::Operator,
            ),
        };
        self.execute::<Tenant>(tenant, command, actor, source).await;
    }

    /// Records `tenant`'s first fine-tune export, as the weekly job does.
    pub async fn record_finetune_export(&mut self, tenant: TenantId) {
        let system = Actor::system(tenant);
        let export = FinetuneExport {
            bucket: "artifacts".to_owned(),
            key: format!("{tenant}/finetune/2026-05-03.jsonl"),
            exported_on: NaiveDate::from_ymd_opt(2026, 5, 3).expect("a date"),
            examples: 3,
            after: None,
            up_to: LogPosition {
                transaction_id: 1,
                global_position: 1,
            },
        };
        let command = TenantCommand::RecordFinetuneExport {
            actor: system.clone(),
            export,
        };
        let recorded = self
            .execute::<Tenant>(tenant, command, &system, Source::Scheduler)
            .await;
        assert!(recorded, "the tenant's first export");
    }

    /// Signs a practice up (`TenantSignedUp`), as the public sign-up does; its id. It isn't
    /// among [`Driver::tenants`], so the random workload's sequence stays what it was.
    pub async fn sign_up(&mut self) -> TenantId {
        let tenant = TenantId::new();
        let platform = Actor::system(tenant);
        let command = TenantCommand::SignUp {
            actor: platform.clone(),
            name: parse("Signed-up practice".to_owned()),
            plan: PlanTier::Starter,
            admin: Invitee {
                email: parse("founder@practice.test".to_owned()),
                name: parse("Founder".to_owned()),
            },
        };
        let created = self
            .execute::<Tenant>(tenant, command, &platform, Source::Api)
            .await;
        assert!(created, "a new practice");
        tenant
    }

    /// One of every people event on `tenant`: a consultant invited, made auditor, disabled,
    /// enabled, and their account recorded.
    pub async fn people_work(&mut self, tenant: TenantId) {
        let admin = self.user(Role::Admin, tenant);
        let kim: Email = parse("kim@practice.test".to_owned());
        let commands = [
            TenantCommand::InviteUser {
                actor: admin.clone(),
                invitee: Invitee {
                    email: kim.clone(),
                    name: parse("Kim".to_owned()),
                },
                role: Role::Consultant,
            },
            TenantCommand::ChangeUserRole {
                actor: admin.clone(),
                email: kim.clone(),
                role: Role::Auditor,
            },
            TenantCommand::DisableUser {
                actor: admin.clone(),
                email: kim.clone(),
            },
            TenantCommand::EnableUser {
                actor: admin.clone(),
                email: kim.clone(),
            },
        ];
        for command in commands {
            let accepted = self
                .execute::<Tenant>(tenant, command, &admin, Source::Api)
                .await;
            assert!(accepted, "a people command");
        }
        let platform = Actor::system(tenant);
        let provisioned = TenantCommand::RecordUserProvisioned {
            actor: platform.clone(),
            email: kim,
            user_id: parse("0c2f6c1e-0000-4000-8000-00000000000a".to_owned()),
        };
        let accepted = self
            .execute::<Tenant>(tenant, provisioned, &platform, Source::Reaction)
            .await;
        assert!(accepted, "the account recorded");
    }

    /// The usage-key reaction's command: the tenant's gateway key on its current plan.
    pub async fn record_usage_key(&mut self, tenant: TenantId) {
        let system = Actor::system(tenant);
        let plan = self
            .state::<Tenant>(tenant, tenant)
            .await
            .plan()
            .expect("an onboarded tenant");
        let command = TenantCommand::RecordUsageKey {
            actor: system.clone(),
            api_key_id: format!("key-{tenant}"),
            plan,
        };
        let recorded = self
            .execute::<Tenant>(tenant, command, &system, Source::Reaction)
            .await;
        assert!(recorded, "the tenant's first usage key");
    }

    /// An admin of `tenant` erases one of its customers (`SubjectErased`; the stores here hold
    /// no vault, so there is no key to destroy).
    pub async fn erase_subject(&mut self, tenant: TenantId) {
        let admin = self.user(Role::Admin, tenant);
        let command = TenantCommand::EraseSubject {
            actor: admin.clone(),
            subject: parse("customer-erased"),
        };
        let erased = self
            .execute::<Tenant>(tenant, command, &admin, Source::Api)
            .await;
        assert!(erased, "the customer's first erasure");
    }

    /// The operator erases `tenant` for good (`TenantErased`): nothing of it follows.
    pub async fn erase_tenant(&mut self, tenant: TenantId) {
        let operator = self.user(Role::Operator, tenant);
        let command = TenantCommand::EraseTenant {
            actor: operator.clone(),
        };
        let erased = self
            .execute::<Tenant>(tenant, command, &operator, Source::Operator)
            .await;
        assert!(erased, "the tenant's erasure");
    }

    /// Two of `tenant`'s own models uploaded: the gate promotes one and rejects the other,
    /// then an admin retires the promoted one (`ModelRegistered` ×2, `ModelPromoted`,
    /// `ModelRejected`, `ModelRetired`).
    pub async fn model_lifecycle(&mut self, tenant: TenantId) {
        let system = Actor::system(tenant);
        let mut models = Vec::new();
        for job in ["job-1", "job-2"] {
            let artifact = ModelArtifact {
                bucket: "artifacts".into(),
                key: format!("{tenant}/models/{job}/model.gguf"),
                size_bytes: 1 << 20,
                etag: format!("etag-{job}"),
                format: ModelFormat::Gguf,
                base_model: Some("SmolLM2-135M-Instruct".into()),
                training_job: None,
                metrics: Default::default(),
            };
            models.push(ModelId::for_artifact(tenant, &artifact.key));
            let command = TenantCommand::RegisterModel {
                actor: system.clone(),
                artifact,
            };
            let registered = self
                .execute::<Tenant>(tenant, command, &system, Source::Worker)
                .await;
            assert!(registered, "the model's first registration");
        }
        for (model_id, candidate_score) in models.iter().zip([0.8, 0.4]) {
            let command = TenantCommand::RecordModelEvaluation {
                actor: system.clone(),
                model_id: *model_id,
                evaluation: ModelEvaluation {
                    metric: METRIC.into(),
                    tier: ModelTier::OpenWeights,
                    baseline_model: "platform".into(),
                    held_out: 5,
                    candidate_score,
                    baseline_score: 0.6,
                },
            };
            let evaluated = self
                .execute::<Tenant>(tenant, command, &system, Source::Worker)
                .await;
            assert!(evaluated, "the model's evaluation");
        }
        let admin = self.user(Role::Admin, tenant);
        let command = TenantCommand::RetireModel {
            actor: admin.clone(),
            model_id: models[0],
            reason: parse("drifted"),
        };
        let retired = self
            .execute::<Tenant>(tenant, command, &admin, Source::Api)
            .await;
        assert!(retired, "the promoted model retired");
    }

    /// The worker records that `tenant` reached 80 % of its month's token budget.
    pub async fn record_budget_threshold(&mut self, tenant: TenantId) {
        let system = Actor::system(tenant);
        let command = TenantCommand::RecordBudgetThreshold {
            actor: system.clone(),
            threshold: BudgetThreshold::Approaching,
            budget: BudgetUse {
                month: BudgetMonth::containing(NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()),
                tokens_used: 800_000,
                tokens_budget: 1_000_000,
            },
        };
        let recorded = self
            .execute::<Tenant>(tenant, command, &system, Source::Worker)
            .await;
        assert!(recorded, "the month's first 80 %");
    }

    async fn tenant_active(&self, tenant: TenantId) -> bool {
        self.state::<Tenant>(tenant, tenant).await.is_active()
    }

    async fn open_session(&mut self, tenant: TenantId) {
        let customer = self.user(Role::Customer, tenant);
        let session = SessionId::new();
        let attachments: Vec<UploadKey> = (0..self.rng.gen_range(0..3))
            .map(|i| {
                // Derived, not drawn: the workload's random sequence stays what it was.
                let upload =
                    uuid::Uuid::new_v5(session.as_uuid(), format!("upload-{i}").as_bytes());
                parse(format!("{tenant}/uploads/{upload}/upload-{i}.pdf"))
            })
            .collect();
        let tenant_active = self.tenant_active(tenant).await;
        let command = SessionCommand::Open {
            actor: customer.clone(),
            session_id: session,
            subject: parse(format!("Lease review {}", self.requests)),
            uploads_issued_to_actor: attachments.iter().cloned().collect(),
            attachments,
            tenant_active,
        };
        if self
            .execute::<TenantSession>(session, command, &customer, Source::Api)
            .await
        {
            self.known
                .entry(tenant)
                .or_default()
                .sessions
                .push((session, customer));
        }
    }

    fn pick<T: Clone>(&mut self, items: impl Fn(&Known) -> &Vec<T>, tenant: TenantId) -> Option<T> {
        let known = self.known.get(&tenant)?;
        items(known).choose(&mut self.rng).cloned()
    }

    async fn close_session(&mut self, tenant: TenantId) {
        let Some((session, customer)) = self.pick(|k| &k.sessions, tenant) else {
            return;
        };
        let command = SessionCommand::Close {
            actor: customer.clone(),
        };
        self.execute::<TenantSession>(session, command, &customer, Source::Api)
            .await;
    }

    async fn submit_query(&mut self, tenant: TenantId) {
        let Some((session, customer)) = self.pick(|k| &k.sessions, tenant) else {
            return self.open_session(tenant).await;
        };
        let query = QueryId::new();
        let text = format!("Is clause {} enforceable?", self.rng.gen_range(1..40));
        let tenant_active = self.tenant_active(tenant).await;
        let submitted = self
            .execute::<TenantSession>(
                session,
                SessionCommand::SubmitQuery {
                    actor: customer.clone(),
                    query_id: query,
                    text: parse(text.clone()),
                    tenant_active,
                },
                &customer,
                Source::Api,
            )
            .await;
        if !submitted {
            return;
        }
        let diagnosis = DiagnosisId::new();
        if self
            .execute::<Diagnosis>(
                diagnosis,
                DiagnosisCommand::Request {
                    actor: customer.clone(),
                    diagnosis_id: diagnosis,
                    session_id: session,
                    query_id: query,
                    query: parse(text),
                    tenant_active,
                },
                &customer,
                Source::Api,
            )
            .await
        {
            self.known
                .entry(tenant)
                .or_default()
                .diagnoses
                .push(diagnosis);
        }
    }

    fn provenance(&mut self, tenant: TenantId) -> Provenance {
        let (model, tier) = *MODELS.choose(&mut self.rng).expect("models");
        let judgments = self
            .known
            .get(&tenant)
            .map(|k| k.judgments.clone())
            .unwrap_or_default();
        let retrieved: Vec<JudgmentId> = judgments
            .choose_multiple(&mut self.rng, 2)
            .copied()
            .collect();
        let precedents = retrieved
            .iter()
            .map(|&judgment_id| PrecedentSource {
                judgment_id,
                score: self.rng.gen_range(0.3..0.99),
                source_position: self.rng.gen_range(1..1_000_000),
            })
            .collect();
        let attachment = |name: &str, content_type: &str, outcome| AttachmentRead {
            key: UploadKey::parse(format!("{tenant}/uploads/1/{name}")).expect("valid key"),
            content_type: Some(content_type.to_owned()),
            outcome,
        };
        let attachments = match self.rng.gen_range(0..3) {
            0 => vec![],
            1 => vec![attachment(
                "notes.txt",
                "text/plain",
                AttachmentOutcome::Included {
                    bytes: self.rng.gen_range(1..65_536),
                    truncated: false,
                },
            )],
            _ => vec![attachment(
                "scan.pdf",
                "application/pdf",
                AttachmentOutcome::Skipped {
                    reason: SkipReason::NotText,
                },
            )],
        };
        Provenance {
            model_id: model.to_owned(),
            model_tier: tier,
            prompt_template_id: "diagnose/v3".to_owned(),
            prompt_template_hash: "sha256:3f2a".to_owned(),
            retrieved_judgment_ids: retrieved,
            input_tokens: self.rng.gen_range(200..4_000),
            output_tokens: self.rng.gen_range(50..900),
            cost_usd_micros: self.rng.gen_range(100..20_000),
            stop_reason: Some(
                [StopReason::EndTurn, StopReason::MaxTokens][self.rng.gen_range(0..2)],
            ),
            embedding: Some(EmbeddingModel {
                model_id: "all-MiniLM-L6-v2".to_owned(),
                dimension: 384,
            }),
            precedents: Some(precedents),
            attachments: Some(attachments),
        }
    }

    async fn advance_diagnosis(&mut self, tenant: TenantId) {
        let Some(diagnosis) = self.pick(|k| &k.diagnoses, tenant) else {
            return self.submit_query(tenant).await;
        };
        let system = Actor::system(tenant);
        let state: Diagnosis = self.state(tenant, diagnosis).await;
        let Some(status) = state.status() else { return };
        match status {
            DiagnosisStatus::Requested | DiagnosisStatus::Failed { retryable: true } => {
                let command = if self.rng.gen_ratio(1, 6) {
                    DiagnosisCommand::Fail {
                        actor: system.clone(),
                        reason: parse("model timed out"),
                        retryable: self.rng.gen_ratio(4, 5),
                    }
                } else if self.rng.gen_ratio(1, 10) {
                    DiagnosisCommand::Defer {
                        actor: system.clone(),
                        deferral: Deferral::Budget {
                            budget: BudgetUse {
                                month: BudgetMonth::containing(
                                    NaiveDate::from_ymd_opt(2026, 12, 9).unwrap(),
                                ),
                                tokens_used: 1_000_000,
                                tokens_budget: 1_000_000,
                            },
                        },
                    }
                } else {
                    let judgments = self
                        .known
                        .get(&tenant)
                        .map(|k| k.judgments.clone())
                        .unwrap_or_default();
                    DiagnosisCommand::RecordContext {
                        actor: system.clone(),
                        judgments: judgments
                            .choose_multiple(&mut self.rng, 2)
                            .map(|j| RetrievedJudgment {
                                judgment_id: *j,
                                score: 0.75,
                            })
                            .collect(),
                    }
                };
                self.execute::<Diagnosis>(diagnosis, command, &system, Source::Worker)
                    .await;
            }
            DiagnosisStatus::ContextRetrieved => {
                let command = if self.rng.gen_ratio(1, 8) {
                    DiagnosisCommand::Fail {
                        actor: system.clone(),
                        reason: parse("malformed model output"),
                        retryable: true,
                    }
                } else {
                    let findings = (0..self.rng.gen_range(0..3))
                        .map(|i| Finding {
                            summary: format!("Finding {i}"),
                            detail: (i == 1).then(|| "See clause 4.2".to_owned()),
                            severity: [Severity::Info, Severity::Medium, Severity::High][i % 3],
                        })
                        .collect();
                    let provenance = self.provenance(tenant);
                    DiagnosisCommand::Propose {
                        actor: system.clone(),
                        text: parse("The clause is enforceable with caveats."),
                        findings,
                        confidence: confidence([0.55, 0.8, 0.92, 0.97][self.rng.gen_range(0..4)]),
                        provenance,
                    }
                };
                self.execute::<Diagnosis>(diagnosis, command, &system, Source::Worker)
                    .await;
            }
            DiagnosisStatus::Proposed => self.decide_or_resolve(tenant, diagnosis, &state).await,
            DiagnosisStatus::DeferredBudget => {
                let command = DiagnosisCommand::Resume {
                    actor: system.clone(),
                };
                self.execute::<Diagnosis>(diagnosis, command, &system, Source::Worker)
                    .await;
            }
            DiagnosisStatus::Resolved { outcome } if outcome.captures_judgment() => {
                self.capture(tenant, diagnosis, outcome).await;
            }
            DiagnosisStatus::Failed { retryable: false } | DiagnosisStatus::Resolved { .. } => {}
        }
    }

    async fn decide_or_resolve(
        &mut self,
        tenant: TenantId,
        diagnosis: DiagnosisId,
        state: &Diagnosis,
    ) {
        let decision_id = DecisionId::for_diagnosis(diagnosis);
        let decision: ConsultantDecision = self.state(tenant, decision_id).await;
        let system = Actor::system(tenant);
        if let Some(outcome) = decision.outcome() {
            self.execute::<Diagnosis>(
                diagnosis,
                DiagnosisCommand::Resolve {
                    actor: system.clone(),
                    decision_id,
                    outcome,
                },
                &system,
                Source::Reaction,
            )
            .await;
            return;
        }
        let snapshot = state.snapshot().expect("requested diagnosis");
        let tenant_state: Tenant = self.state(tenant, tenant).await;
        let (actor, source, command) = match self.rng.gen_range(0..4) {
            0 => (
                system.clone(),
                Source::Reaction,
                DecisionCommand::AutoApprove {
                    actor: system.clone(),
                    diagnosis: snapshot,
                    threshold: tenant_state.auto_resolve_threshold(),
                    tenant_active: tenant_state.is_active(),
                },
            ),
            1 => {
                let consultant = self.user(Role::Consultant, tenant);
                (
                    consultant.clone(),
                    Source::Api,
                    DecisionCommand::Approve {
                        actor: consultant,
                        diagnosis: snapshot,
                    },
                )
            }
            2 => {
                let consultant = self.user(Role::Consultant, tenant);
                (
                    consultant.clone(),
                    Source::Api,
                    DecisionCommand::Amend {
                        actor: consultant,
                        diagnosis: snapshot,
                        amended_text: parse("Enforceable only after notice."),
                        reason: self
                            .rng
                            .gen::<bool>()
                            .then(|| parse("missed the notice period")),
                    },
                )
            }
            _ => {
                let consultant = self.user(Role::Consultant, tenant);
                (
                    consultant.clone(),
                    Source::Api,
                    DecisionCommand::Reject {
                        actor: consultant,
                        diagnosis: snapshot,
                        reason: parse("wrong jurisdiction"),
                    },
                )
            }
        };
        self.execute::<ConsultantDecision>(decision_id, command, &actor, source)
            .await;
    }

    async fn capture(&mut self, tenant: TenantId, diagnosis: DiagnosisId, outcome: Outcome) {
        let decision_id = DecisionId::for_diagnosis(diagnosis);
        let judgment = JudgmentId::for_decision(decision_id);
        let system = Actor::system(tenant);
        let command = JudgmentCommand::CaptureFromDecision {
            actor: system.clone(),
            decision: DecisionSnapshot {
                decision_id,
                diagnosis_id: diagnosis,
                tenant_id: tenant,
                outcome,
                customer: None,
            },
            content: JudgmentContent {
                title: parse("Notice periods"),
                body: parse("Check the notice period first."),
                tags: vec![parse("lease")],
            },
        };
        if self
            .execute::<Judgment>(judgment, command, &system, Source::Reaction)
            .await
        {
            self.known
                .entry(tenant)
                .or_default()
                .judgments
                .push(judgment);
        }
    }

    async fn judgment_work(&mut self, tenant: TenantId) {
        let consultant = self.user(Role::Consultant, tenant);
        let existing = self.pick(|k| &k.judgments, tenant);
        let content = JudgmentContent {
            title: parse("House rule"),
            body: parse("Always ask for the signed copy."),
            tags: vec![],
        };
        match (existing, self.rng.gen_range(0..3)) {
            (Some(judgment), 0) => {
                self.execute::<Judgment>(
                    judgment,
                    JudgmentCommand::Revise {
                        actor: consultant.clone(),
                        content,
                    },
                    &consultant,
                    Source::Api,
                )
                .await;
            }
            (Some(judgment), 1) => {
                self.execute::<Judgment>(
                    judgment,
                    JudgmentCommand::Retire {
                        actor: consultant.clone(),
                        reason: parse("superseded"),
                    },
                    &consultant,
                    Source::Api,
                )
                .await;
            }
            _ => {
                let judgment = JudgmentId::new();
                if self
                    .execute::<Judgment>(
                        judgment,
                        JudgmentCommand::Author {
                            actor: consultant.clone(),
                            judgment_id: judgment,
                            content,
                        },
                        &consultant,
                        Source::Api,
                    )
                    .await
                {
                    self.known
                        .entry(tenant)
                        .or_default()
                        .judgments
                        .push(judgment);
                }
            }
        }
    }
}

/// Waits (polling, at most a minute) until each of `names` has a row and no lag.
pub async fn wait_caught_up(stack: &Stack, names: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let lagging = stack.lagging(names).await;
        if lagging.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not caught up: {lagging:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The live projections' subscription names.
pub fn projection_names() -> Vec<&'static str> {
    ProjectionId::ALL.iter().map(|id| id.name()).collect()
}

/// Runs `attempt` every 20 ms until it reports done; fails the test, naming `goal`, when that
/// takes more than a minute. The log's visibility horizon is cluster-wide, so any wait for the
/// log can be held back by another test's open transaction for a while.
async fn poll_until(goal: &str, mut attempt: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !attempt().await {
        assert!(
            std::time::Instant::now() < deadline,
            "never reached: {goal}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
