//! Blue/green rebuilds of the index (decision 0028): a green generation built from the log
//! beside the live one, verified, and swapped in by one transaction.
//!
//! 1. [`IndexRebuild::build`] creates the green generation (`judgment_index_green` and its
//!    model record, for the rebuild's embedder) and applies the log to it, for every tenant
//!    or one, through the read models' build loop (`rebuild::feed`): the log read and decoded
//!    a batch ahead, each batch embedded and committed with the checkpoint row
//!    `judgment_index#rebuild` (`…@<tenant>`). Searches keep reading the live partitions.
//!    A build stopped or killed half way resumes from its last batch. Once caught up, each
//!    green partition's HNSW graph is built in one pass over its rows.
//! 2. [`IndexRebuild::verify`] checks the green generation at its checkpoint, in one
//!    snapshot: its rows per tenant against the active judgments the log holds (counted in
//!    SQL from the events, not from either index), and its recall on a random sample of its
//!    judgments, each searched by its own text as the product searches ([`RecallCheck`]).
//! 3. [`IndexRebuild::swap`] catches the green generation up with the log, verifies it
//!    (refusing to swap a failing one), then in one transaction: locks the live
//!    subscription's row (waiting for its batch in flight, and holding off the next), applies
//!    the events the live index has and the green one lacks, and renames the green partitions
//!    into the live ones' places (`judgment_index_green_swap`), with the green model record.
//!    The live subscription carries on from the same point (or from the green checkpoint,
//!    when that is further), with the process's embedder.
//!
//! One green generation exists at a time, whatever its scope: a rebuild takes the advisory
//! lock [`IndexRebuild::LOCK`]. A one-tenant rebuild keeps the index's model; changing
//! models takes a rebuild of every tenant. Rebuilds run on the maintainer's pool (the tables'
//! owner, rows as `casebook_maintainer`), which needs three connections.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use casebook_domain::ids::{JudgmentId, TenantId};
use casebook_domain::ports::{EmbedError, Embedder};
use casebook_vault::Vault;
use sqlx::{Connection, Executor, PgConnection, PgPool, Row};
use uuid::Uuid;

use super::apply::{apply_decoded, embedded_text};
use super::partition::{recorded_model, Generation, IndexedModel};
use super::search::{fetch, hits, statement_on};
use super::subscription::into_apply_error;
use super::{IndexError, SUBSCRIPTION};
use crate::checkpoints::{self, State, TX_PARAM};
use crate::decoded::DecodedEvent;
use crate::error::ApplyError;
use crate::log::Checkpoint;
use crate::rebuild::feed::{count_between, end_session, Feed, Part, Writer};
use crate::rebuild::shadow::{as_maintainer, as_owner};
use crate::rebuild::{BuildOutcome, RebuildError, RebuildProgress, RebuildScope};

/// The prefix of the green generation's checkpoint rows.
const ROW: &str = "judgment_index#rebuild";

/// How [`IndexRebuild::verify`] measures the green generation's recall: each of `sample`
/// judgments (drawn at random in the rebuild's scope) is searched by its own text, embedded
/// with the green model, through the search's statement and settings; it is found when it —
/// or a judgment of the same title and body, which the search cannot tell from it — is among
/// the `k` hits. The verification passes at `min_recall` or more.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecallCheck {
    /// Judgments searched.
    pub sample: usize,
    /// Hits per search.
    pub k: u32,
    /// The least share found.
    pub min_recall: f64,
    /// The search's HNSW candidate list (the search role's `hnsw.ef_search`).
    pub ef_search: u32,
}

impl RecallCheck {
    /// 200 judgments, top 10, at least 0.95 found, walking the graphs as the search role
    /// does with `ef_search` candidates. A judgment's own text is the nearest query there
    /// is, so a healthy graph finds nearly all of them (ties of identical texts count as
    /// found); 0.95 leaves room for the graph's approximation, whose recall@10 is 0.985 or
    /// more on real vectors (BENCHMARKS.md), and catches a graph or model that is broken.
    pub fn new(ef_search: u32) -> Self {
        Self {
            sample: 200,
            k: 10,
            min_recall: 0.95,
            ef_search,
        }
    }
}

/// One tenant's rows, as [`IndexRebuild::verify`] counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantCount {
    /// The tenant.
    pub tenant: TenantId,
    /// Its active judgments by the log, at the green checkpoint.
    pub expected: u64,
    /// Its rows in the green generation.
    pub green: u64,
    /// Its rows in the live index now (for information: it may be ahead, behind or broken).
    pub live: u64,
}

impl TenantCount {
    /// Whether the green generation holds the tenant's active judgments.
    pub fn matches(&self) -> bool {
        self.expected == self.green
    }
}

/// The recall [`IndexRebuild::verify`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recall {
    /// Judgments searched.
    pub sampled: usize,
    /// Of them, found among the hits.
    pub found: usize,
    /// The check it was measured by.
    pub check: RecallCheck,
}

impl Recall {
    /// The share found (1 with nothing to sample).
    pub fn recall(&self) -> f64 {
        if self.sampled == 0 {
            1.0
        } else {
            self.found as f64 / self.sampled as f64
        }
    }

    /// Whether it reaches the check's minimum.
    pub fn passes(&self) -> bool {
        self.recall() >= self.check.min_recall
    }
}

/// What [`IndexRebuild::verify`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexVerdict {
    /// The green generation's model.
    pub model: IndexedModel,
    /// The point of the log it was verified at.
    pub checkpoint: Checkpoint,
    /// Rows per tenant (every tenant with expected, green or live rows in scope).
    pub tenants: Vec<TenantCount>,
    /// Its recall.
    pub recall: Recall,
}

impl IndexVerdict {
    /// Every tenant's rows as the log says, and the recall at its minimum.
    pub fn passes(&self) -> bool {
        self.tenants.iter().all(TenantCount::matches) && self.recall.passes()
    }
}

impl fmt::Display for IndexVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let differing: Vec<String> = self
            .tenants
            .iter()
            .filter(|t| !t.matches())
            .map(|t| {
                format!(
                    "tenant {} has {} rows, the log {} active judgments",
                    t.tenant, t.green, t.expected
                )
            })
            .collect();
        write!(
            f,
            "{} tenants, {} differing{}{}; recall {:.3} ({} of {} found in the top {}, at least {} wanted)",
            self.tenants.len(),
            differing.len(),
            if differing.is_empty() { "" } else { ": " },
            differing.join("; "),
            self.recall.recall(),
            self.recall.found,
            self.recall.sampled,
            self.recall.check.k,
            self.recall.check.min_recall,
        )
    }
}

/// The green generation in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InPlace {
    /// Whose rows it holds.
    pub scope: RebuildScope,
    /// Its model.
    pub model: IndexedModel,
    /// The last event it applied.
    pub checkpoint: Checkpoint,
}

/// The green generation as [`index_status`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreenStatus {
    /// Scope, model and checkpoint.
    pub in_place: InPlace,
    /// Events of its scope after its checkpoint.
    pub lag_events: u64,
    /// Its tenant partitions.
    pub partitions: u64,
    /// Of them, those whose graph is built.
    pub graphs: u64,
    /// Its rows.
    pub rows: u64,
}

/// Both generations of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexStatus {
    /// The live index's model (none before its first judgment).
    pub live_model: Option<IndexedModel>,
    /// Its tenant partitions.
    pub live_partitions: u64,
    /// Its rows.
    pub live_rows: u64,
    /// The green generation, if one is in place.
    pub green: Option<GreenStatus>,
}

/// A blue/green rebuild of the index; see the module documentation.
#[derive(Clone)]
pub struct IndexRebuild {
    pool: PgPool,
    vault: Option<Arc<Vault>>,
    embedder: Arc<dyn Embedder>,
    scope: RebuildScope,
    batch_size: usize,
    recall: RecallCheck,
    graph_workers: u32,
}

impl fmt::Debug for IndexRebuild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexRebuild")
            .field("model", &self.embedder.model_id())
            .field("scope", &self.scope)
            .field("batch_size", &self.batch_size)
            .field("recall", &self.recall)
            .field("graph_workers", &self.graph_workers)
            .finish_non_exhaustive()
    }
}

/// The green generation writing a build's batches.
struct GreenWriter {
    embedder: Arc<dyn Embedder>,
}

#[async_trait]
impl Writer for GreenWriter {
    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[DecodedEvent],
    ) -> Result<(), ApplyError> {
        apply_decoded(conn, events, self.embedder.as_ref(), Generation::Green)
            .await
            .map(drop)
            .map_err(into_apply_error)
    }
}

impl IndexRebuild {
    /// The advisory lock every rebuild of the index holds: one green generation at a time.
    pub const LOCK: &'static str = ROW;

    /// A rebuild for `scope` embedding with `embedder`, through `pool` (the maintainer's),
    /// verified by `recall`.
    pub fn new(
        pool: PgPool,
        embedder: Arc<dyn Embedder>,
        scope: RebuildScope,
        recall: RecallCheck,
    ) -> Self {
        Self {
            pool,
            vault: None,
            embedder,
            scope,
            batch_size: 2_000,
            recall,
            graph_workers: 0,
        }
    }

    /// Opens the events' sealed fields with `vault`; without it, a sealed event does not
    /// decode and stops the rebuild.
    pub fn with_vault(self, vault: Option<Arc<Vault>>) -> Self {
        Self { vault, ..self }
    }

    /// Events per transaction (and per page read); 2,000 by default: every judgment among
    /// them is embedded before the batch is written, so a batch is also the unit of progress
    /// and of the work a kill loses.
    pub fn with_batch_size(self, batch_size: usize) -> Self {
        Self {
            batch_size: batch_size.max(1),
            ..self
        }
    }

    /// Parallel workers building each partition's graph besides the session's own backend
    /// (`max_parallel_maintenance_workers`); none by default, which leaves the database's
    /// other cores to the live searches: on two cores, two workers built 100,000
    /// judgments' graphs under a search load 18 % sooner but tripled the searches' p99, which
    /// stayed at its baseline without them (BENCHMARKS.md). Raise it on a database with cores
    /// to spare.
    pub fn with_graph_workers(self, workers: u32) -> Self {
        Self {
            graph_workers: workers,
            ..self
        }
    }

    /// Whose rows it covers.
    pub fn scope(&self) -> RebuildScope {
        self.scope
    }

    /// Its checkpoint row: `judgment_index#rebuild`, or `…@<tenant>` for one tenant.
    pub fn row_name(&self) -> String {
        row_of(self.scope)
    }

    fn tenant(&self) -> Option<Uuid> {
        match self.scope {
            RebuildScope::All => None,
            RebuildScope::Tenant(tenant) => Some(*tenant.as_uuid()),
        }
    }

    fn feed(&self) -> Feed {
        Feed::new(
            self.pool.clone(),
            self.vault.clone(),
            self.batch_size,
            self.tenant(),
        )
    }

    fn model(&self) -> IndexedModel {
        IndexedModel::of(self.embedder.as_ref())
    }

    fn writer(&self) -> GreenWriter {
        GreenWriter {
            embedder: self.embedder.clone(),
        }
    }

    fn part(&self, checkpoint: Checkpoint) -> Part {
        Part {
            live: SUBSCRIPTION.to_owned(),
            row: self.row_name(),
            writer: Arc::new(self.writer()),
            checkpoint,
        }
    }

    async fn session(&self) -> Result<PgConnection, RebuildError> {
        self.feed().session(&[Self::LOCK.to_owned()]).await
    }

    /// The green generation in place, if any (read through `pool`, the maintainer's).
    pub async fn in_place(pool: &PgPool) -> Result<Option<InPlace>, RebuildError> {
        let mut conn = pool.acquire().await?;
        in_place(&mut conn, false).await
    }

    /// This rebuild's green generation: `None` when there is none, an error when the one in
    /// place is another scope's or model's.
    async fn own(&self, conn: &mut PgConnection) -> Result<Option<Checkpoint>, RebuildError> {
        match in_place(conn, true).await? {
            None => Ok(None),
            Some(found) if found.scope == self.scope && found.model == self.model() => {
                Ok(Some(found.checkpoint))
            }
            Some(found) => Err(RebuildError::OtherRebuild {
                existing: format!(
                    "{} with {} ({} dimensions)",
                    row_of(found.scope),
                    found.model.model,
                    found.model.dimension
                ),
            }),
        }
    }

    /// Builds the green generation up to the head of the log (one tenant's: up to the live
    /// subscription's checkpoint), or until `stop` resolves, then its graphs. Resumes this
    /// rebuild's green generation where its checkpoint says, or creates one; another in place
    /// is [`RebuildError::OtherRebuild`] ([`IndexRebuild::discard`] it first).
    pub async fn build(
        &self,
        stop: impl Future<Output = ()>,
        progress: impl FnMut(&RebuildProgress),
    ) -> Result<BuildOutcome, RebuildError> {
        let mut session = self.session().await?;
        let result = async {
            let from = match self.own(&mut session).await? {
                Some(checkpoint) => checkpoint,
                None => self.create(&mut session).await?,
            };
            self.build_from(&mut session, from, stop, progress).await
        }
        .await;
        end_session(session).await;
        result
    }

    async fn build_from(
        &self,
        session: &mut PgConnection,
        from: Checkpoint,
        stop: impl Future<Output = ()>,
        progress: impl FnMut(&RebuildProgress),
    ) -> Result<BuildOutcome, RebuildError> {
        let outcome = self
            .feed()
            .build(session, vec![self.part(from)], stop, progress)
            .await?;
        if outcome.caught_up {
            build_graphs(session, self.graph_workers).await?;
        }
        Ok(outcome)
    }

    /// Creates an empty green generation for this rebuild's model, its checkpoint at the
    /// start of the log. A one-tenant rebuild must keep the live index's model.
    async fn create(&self, conn: &mut PgConnection) -> Result<Checkpoint, RebuildError> {
        let model = self.model();
        if let RebuildScope::Tenant(_) = self.scope {
            if let Some(live) = recorded_model(conn, Generation::Live).await? {
                if live != model {
                    return Err(IndexError::ModelChanged {
                        indexed_model: live.model,
                        indexed_dimension: live.dimension,
                        embedder_model: model.model,
                        embedder_dimension: model.dimension,
                    }
                    .into());
                }
            }
        }
        let mut tx = conn.begin().await?;
        sqlx::query("SELECT judgment_index_green_create($1, $2)")
            .bind(&model.model)
            .bind(i32::try_from(model.dimension).unwrap_or(i32::MAX))
            .execute(&mut *tx)
            .await?;
        forget_rows(&mut tx).await?;
        checkpoints::ensure(&mut tx, &self.row_name(), State::Rebuilding).await?;
        tx.commit().await?;
        tracing::info!(scope = ?self.scope, model = %model.model, dimension = model.dimension, "green judgment index created");
        Ok(Checkpoint::START)
    }

    /// Verifies the green generation at its checkpoint (see the module documentation).
    pub async fn verify(&self) -> Result<IndexVerdict, RebuildError> {
        let mut session = self.session().await?;
        let result = self.verify_in(&mut session).await;
        end_session(session).await;
        result
    }

    async fn verify_in(&self, conn: &mut PgConnection) -> Result<IndexVerdict, RebuildError> {
        let checkpoint = self
            .own(conn)
            .await?
            .ok_or_else(|| RebuildError::NotBuilt(SUBSCRIPTION.to_owned()))?;
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let verdict = self.verify_at(conn, checkpoint).await;
        let end = if verdict.is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        conn.execute(end).await?;
        let verdict = verdict?;
        tracing::info!(passes = verdict.passes(), %verdict, "green judgment index verified");
        Ok(verdict)
    }

    async fn verify_at(
        &self,
        conn: &mut PgConnection,
        checkpoint: Checkpoint,
    ) -> Result<IndexVerdict, RebuildError> {
        let tenant = self.tenant();
        let mut counts: BTreeMap<Uuid, TenantCount> = BTreeMap::new();
        for (tenant, rows) in active_judgments(conn, checkpoint, tenant).await? {
            counts
                .entry(tenant)
                .or_insert_with(|| zero(tenant))
                .expected = rows;
        }
        for (tenant, rows) in rows_per_tenant(conn, Generation::Green, tenant).await? {
            counts.entry(tenant).or_insert_with(|| zero(tenant)).green = rows;
        }
        for (tenant, rows) in rows_per_tenant(conn, Generation::Live, tenant).await? {
            counts.entry(tenant).or_insert_with(|| zero(tenant)).live = rows;
        }
        let recall = self.measure_recall(conn).await?;
        Ok(IndexVerdict {
            model: self.model(),
            checkpoint,
            tenants: counts.into_values().collect(),
            recall,
        })
    }

    /// Searches the green generation for a sample of its own judgments (inside the caller's
    /// transaction, under the search role's settings).
    async fn measure_recall(&self, conn: &mut PgConnection) -> Result<Recall, RebuildError> {
        let check = self.recall;
        conn.execute(
            format!(
                "SET LOCAL enable_sort = off; SET LOCAL hnsw.iterative_scan = off;
                 SET LOCAL hnsw.ef_search = {}; SET LOCAL jit = off",
                check.ef_search
            )
            .as_str(),
        )
        .await?;
        let sample = sqlx::query(
            "SELECT tenant_id, judgment_id, title, body FROM judgment_index_green
              WHERE $1::uuid IS NULL OR tenant_id = $1
              ORDER BY random() LIMIT $2",
        )
        .bind(self.tenant())
        .bind(i64::try_from(check.sample).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await?;
        let mut judgments = Vec::with_capacity(sample.len());
        for row in &sample {
            let title: String = row.try_get("title")?;
            let body: String = row.try_get("body")?;
            judgments.push((
                TenantId::from_uuid(row.try_get("tenant_id")?),
                JudgmentId::from_uuid(row.try_get("judgment_id")?),
                title,
                body,
            ));
        }
        let texts: Vec<String> = judgments
            .iter()
            .map(|(_, _, title, body)| embedded_text(title, body))
            .collect();
        let vectors = if texts.is_empty() {
            Vec::new()
        } else {
            self.embedder
                .embed(&texts)
                .await
                .map_err(IndexError::from)?
        };
        if vectors.len() != texts.len() {
            return Err(IndexError::from(EmbedError::Permanent(
                format!("{} vectors for {} texts", vectors.len(), texts.len()).into(),
            ))
            .into());
        }
        let mut found = 0;
        for ((tenant, judgment, title, body), vector) in judgments.iter().zip(&vectors) {
            let statement = statement_on(Generation::Green, *tenant, vector.len());
            let rows = fetch(conn, &statement, *tenant, vector, check.k)
                .await?
                .unwrap_or_default();
            let hits = hits(&rows, self.embedder.model_id())?;
            if hits.iter().any(|hit| {
                hit.judgment_id == *judgment
                    || (hit.title.as_str() == title && hit.body.as_str() == body)
            }) {
                found += 1;
            }
        }
        Ok(Recall {
            sampled: judgments.len(),
            found,
            check,
        })
    }

    /// Catches the green generation up with the log, verifies it, and swaps it in (see the
    /// module documentation); [`RebuildError::Unverified`] leaves everything as it was.
    /// Returns the verdict it swapped on. `progress` reports the catch-up.
    pub async fn swap(
        &self,
        progress: impl FnMut(&RebuildProgress),
    ) -> Result<IndexVerdict, RebuildError> {
        let mut session = self.session().await?;
        let result = async {
            let from = self
                .own(&mut session)
                .await?
                .ok_or_else(|| RebuildError::NotBuilt(SUBSCRIPTION.to_owned()))?;
            self.build_from(&mut session, from, std::future::pending(), progress)
                .await?;
            self.swap_in(&mut session).await
        }
        .await;
        end_session(session).await;
        result
    }

    /// Builds (resuming), verifies and swaps in; `Ok(None)` when `stop` resolved before the
    /// build caught up (run again to resume).
    pub async fn run(
        &self,
        stop: impl Future<Output = ()>,
        progress: impl FnMut(&RebuildProgress),
    ) -> Result<Option<IndexVerdict>, RebuildError> {
        let mut session = self.session().await?;
        let result = async {
            let from = match self.own(&mut session).await? {
                Some(checkpoint) => checkpoint,
                None => self.create(&mut session).await?,
            };
            if !self
                .build_from(&mut session, from, stop, progress)
                .await?
                .caught_up
            {
                return Ok(None);
            }
            self.swap_in(&mut session).await.map(Some)
        }
        .await;
        end_session(session).await;
        result
    }

    /// Verifies, then swaps in one transaction. The session holds the rebuild's lock, and the
    /// green generation is built up to the head of the log (or the live checkpoint).
    async fn swap_in(&self, conn: &mut PgConnection) -> Result<IndexVerdict, RebuildError> {
        let verdict = self.verify_in(conn).await?;
        if !verdict.passes() {
            return Err(RebuildError::Unverified(verdict.to_string()));
        }
        let row = self.row_name();
        let mut tx = conn.begin().await?;
        checkpoints::ensure(&mut tx, SUBSCRIPTION, State::Running).await?;
        let live = checkpoints::lock(&mut tx, SUBSCRIPTION)
            .await?
            .map_or(Checkpoint::START, |(cp, _)| cp);
        let green = checkpoints::lock(&mut tx, &row)
            .await?
            .ok_or_else(|| RebuildError::NotBuilt(SUBSCRIPTION.to_owned()))?
            .0;
        if green < live {
            // What the live index applied since the green build's last batch, applied here
            // while the live subscription waits: the swapped-in index is as current as the
            // one it replaces.
            self.feed()
                .catch_up(&mut tx, SUBSCRIPTION, &self.writer(), green, live)
                .await?;
        }
        let tenant = self.tenant();
        match self.scope {
            RebuildScope::Tenant(_) if green > live => {
                return Err(RebuildError::LiveBehind {
                    subscription: SUBSCRIPTION.to_owned(),
                    live,
                    rebuilt: green,
                });
            }
            RebuildScope::Tenant(_) => {}
            // The live subscription carries on after whichever is further; a `failed` or
            // waiting one starts afresh on the new index.
            RebuildScope::All => {
                sqlx::query(&format!(
                    "UPDATE subscriptions
                        SET checkpoint_tx = $2{TX_PARAM}, checkpoint_position = $3,
                            status = 'running', last_error = NULL, updated_at = now()
                      WHERE name = $1"
                ))
                .bind(SUBSCRIPTION)
                .bind(live.max(green).transaction_id)
                .bind(live.max(green).global_position)
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query("SELECT judgment_index_green_swap($1)")
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM subscriptions WHERE name = $1")
            .bind(&row)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(scope = ?self.scope, model = %verdict.model.model, "green judgment index swapped in");
        Ok(verdict)
    }

    /// Drops the green generation in place (whatever its scope and model) and its checkpoint
    /// row.
    pub async fn discard(&self) -> Result<(), RebuildError> {
        Self::discard_in_place(&self.pool).await
    }

    /// [`IndexRebuild::discard`] through `pool` (the maintainer's), without a rebuild at
    /// hand.
    pub async fn discard_in_place(pool: &PgPool) -> Result<(), RebuildError> {
        let mut session = Feed::new(pool.clone(), None, 1, None)
            .session(&[Self::LOCK.to_owned()])
            .await?;
        let result = async {
            let mut tx = session.begin().await?;
            sqlx::query("SELECT judgment_index_green_drop()")
                .execute(&mut *tx)
                .await?;
            forget_rows(&mut tx).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        end_session(session).await;
        result
    }
}

fn zero(tenant: Uuid) -> TenantCount {
    TenantCount {
        tenant: TenantId::from_uuid(tenant),
        expected: 0,
        green: 0,
        live: 0,
    }
}

/// The checkpoint row of a rebuild of `scope`.
fn row_of(scope: RebuildScope) -> String {
    match scope {
        RebuildScope::All => ROW.to_owned(),
        RebuildScope::Tenant(tenant) => format!("{ROW}@{tenant}"),
    }
}

/// Deletes every green checkpoint row.
async fn forget_rows(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM subscriptions WHERE starts_with(name, $1)")
        .bind(ROW)
        .execute(conn)
        .await
        .map(drop)
}

/// The green generation in place: its checkpoint row (locked when `lock`, inside the
/// caller's transaction or the statement's own: a killed build's last batch may still be
/// committing, and its checkpoint is then the one to go on from) and its model. A row without
/// its tables, or tables without a row, are no generation to resume.
async fn in_place(conn: &mut PgConnection, lock: bool) -> Result<Option<InPlace>, RebuildError> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM subscriptions WHERE starts_with(name, $1) ORDER BY name",
    )
    .bind(ROW)
    .fetch_all(&mut *conn)
    .await?;
    let [row] = rows.as_slice() else {
        return Ok(None);
    };
    let scope = match row.strip_prefix(ROW) {
        Some("") => RebuildScope::All,
        Some(tenant) => match tenant.strip_prefix('@').map(Uuid::parse_str) {
            Some(Ok(tenant)) => RebuildScope::Tenant(TenantId::from_uuid(tenant)),
            _ => return Ok(None),
        },
        None => return Ok(None),
    };
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('judgment_index_green_model') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await?;
    if !exists {
        return Ok(None);
    }
    let Some(model) = recorded_model(conn, Generation::Green).await? else {
        return Ok(None);
    };
    let read = if lock {
        checkpoints::lock(conn, row).await?
    } else {
        checkpoints::get(conn, row).await?
    };
    Ok(read.map(|(checkpoint, _)| InPlace {
        scope,
        model,
        checkpoint,
    }))
}

/// Builds the graph of each green partition that lacks one, each in a transaction of its
/// own (a killed build keeps those done), with `workers` parallel workers, then gathers the
/// planner's statistics. The graph is built in memory when it fits `maintenance_work_mem`,
/// raised for this session (see decision 0028).
async fn build_graphs(conn: &mut PgConnection, workers: u32) -> Result<usize, RebuildError> {
    let tenants: Vec<Uuid> = sqlx::query_scalar(
        "SELECT substr(c.relname, length('judgment_index_green_') + 1)::uuid
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'judgment_index_green'::regclass
            AND to_regclass(c.relname::text || '_hnsw') IS NULL
          ORDER BY c.relname",
    )
    .fetch_all(&mut *conn)
    .await?;
    conn.execute(
        format!(
            "SET maintenance_work_mem = '512MB'; SET max_parallel_maintenance_workers = {workers}"
        )
        .as_str(),
    )
    .await?;
    for tenant in &tenants {
        sqlx::query("SELECT judgment_index_green_build_graph($1)")
            .bind(tenant)
            .execute(&mut *conn)
            .await?;
    }
    conn.execute("RESET maintenance_work_mem; RESET max_parallel_maintenance_workers")
        .await?;
    if !tenants.is_empty() {
        as_owner(conn).await?;
        conn.execute("ANALYZE judgment_index_green").await?;
        as_maintainer(conn).await?;
    }
    Ok(tenants.len())
}

/// Active judgments per tenant (of `tenant` alone when given) as the log holds them at
/// `checkpoint`, counted from the events themselves: a judgment whose latest event is not its
/// retirement, unless it was captured from a customer who is erased (their key destroyed: its
/// content reads as a redaction, whenever the log says so) or its tenant is erased (every
/// customer's key at once; authored judgments go with the erasure's event).
async fn active_judgments(
    conn: &mut PgConnection,
    checkpoint: Checkpoint,
    tenant: Option<Uuid>,
) -> Result<Vec<(Uuid, u64)>, sqlx::Error> {
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(&format!(
        "WITH latest AS (
             SELECT DISTINCT ON (e.aggregate_id) e.tenant_id, e.aggregate_id, e.event_type
               FROM events e
              WHERE e.aggregate_type = 'Judgment'
                AND e.event_type IN ('JudgmentCaptured', 'JudgmentRevised', 'JudgmentRetired')
                AND (e.transaction_id, e.global_position) <= ($1{TX_PARAM}, $2)
                AND ($3::uuid IS NULL OR e.tenant_id = $3)
              ORDER BY e.aggregate_id, e.sequence DESC),
         captured AS (
             SELECT e.aggregate_id, e.payload -> 'origin' ->> 'customer' AS customer
               FROM events e
              WHERE e.aggregate_type = 'Judgment' AND e.event_type = 'JudgmentCaptured'
                AND ($3::uuid IS NULL OR e.tenant_id = $3)),
         erased_tenants AS (
             SELECT e.tenant_id,
                    bool_or((e.transaction_id, e.global_position) <= ($1{TX_PARAM}, $2)) AS by_then
               FROM events e
              WHERE e.aggregate_type = 'Tenant' AND e.event_type = 'TenantErased'
              GROUP BY e.tenant_id)
         SELECT l.tenant_id, count(*)
           FROM latest l
           JOIN captured c USING (aggregate_id)
           LEFT JOIN erased_tenants t USING (tenant_id)
          WHERE l.event_type <> 'JudgmentRetired'
            AND NOT coalesce(t.by_then OR c.customer IS NOT NULL, false)
            AND NOT EXISTS (
                SELECT 1 FROM events s
                 WHERE s.aggregate_type = 'Tenant' AND s.event_type = 'SubjectErased'
                   AND s.tenant_id = l.tenant_id AND s.payload ->> 'subject' = c.customer)
          GROUP BY l.tenant_id"
    ))
    .bind(checkpoint.transaction_id)
    .bind(checkpoint.global_position)
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(tenant, rows)| (tenant, u64::try_from(rows).unwrap_or(0)))
        .collect())
}

/// Rows per tenant of `generation` (of `tenant` alone when given).
async fn rows_per_tenant(
    conn: &mut PgConnection,
    generation: Generation,
    tenant: Option<Uuid>,
) -> Result<Vec<(Uuid, u64)>, sqlx::Error> {
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(&format!(
        "SELECT tenant_id, count(*) FROM {}
          WHERE $1::uuid IS NULL OR tenant_id = $1
          GROUP BY tenant_id",
        generation.table()
    ))
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(tenant, rows)| (tenant, u64::try_from(rows).unwrap_or(0)))
        .collect())
}

/// Both generations' models, partitions and rows, and the green one's progress, through a
/// connection of the maintainer's pool.
pub async fn index_status(conn: &mut PgConnection) -> Result<IndexStatus, RebuildError> {
    let live_model = recorded_model(conn, Generation::Live).await?;
    let (live_partitions, live_rows) = size(conn, Generation::Live).await?;
    let green = match in_place(conn, false).await? {
        None => None,
        Some(in_place) => {
            let (partitions, rows) = size(conn, Generation::Green).await?;
            let graphs: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                  WHERE i.inhparent = 'judgment_index_green'::regclass
                    AND to_regclass(c.relname::text || '_hnsw') IS NOT NULL",
            )
            .fetch_one(&mut *conn)
            .await?;
            let tenant = match in_place.scope {
                RebuildScope::All => None,
                RebuildScope::Tenant(tenant) => Some(*tenant.as_uuid()),
            };
            let lag_events = count_between(conn, in_place.checkpoint, None, tenant).await?;
            Some(GreenStatus {
                in_place,
                lag_events,
                partitions,
                graphs: u64::try_from(graphs).unwrap_or(0),
                rows,
            })
        }
    };
    Ok(IndexStatus {
        live_model,
        live_partitions,
        live_rows,
        green,
    })
}

/// `generation`'s partitions and rows.
async fn size(conn: &mut PgConnection, generation: Generation) -> Result<(u64, u64), sqlx::Error> {
    let (partitions, rows): (i64, i64) = sqlx::query_as(&format!(
        "SELECT (SELECT count(*) FROM pg_inherits WHERE inhparent = '{table}'::regclass),
                (SELECT count(*) FROM {table})",
        table = generation.table()
    ))
    .fetch_one(conn)
    .await?;
    Ok((
        u64::try_from(partitions).unwrap_or(0),
        u64::try_from(rows).unwrap_or(0),
    ))
}
