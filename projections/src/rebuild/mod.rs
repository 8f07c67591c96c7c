//! Rebuilding projections from history, beside the live tables, then swapping them in.
//!
//! A [`Rebuild`] covers one or more projections, for every tenant or for one:
//! 1. [`Rebuild::build`] creates shadow tables (empty copies of the live ones, see [`Naming`];
//!    only their primary keys at first) and applies the log to them from position zero while
//!    the live tables keep serving. The log is read and decoded once, a batch ahead of the
//!    writers, and each projection applies the batches on a connection of its own,
//!    concurrently, committing each batch's rows together with the projection's own
//!    checkpoint row, `<name>#rebuild` (or `<name>#rebuild@<tenant>`, status `rebuilding`).
//!    A build stopped or killed half way resumes from there; progress is reported as
//!    batches complete. Once caught up, the shadows' other indexes are built in one pass
//!    each (cheaper than maintaining them row by row).
//! 2. [`Rebuild::verify`] compares the shadow and live tables by [`digest`] and names the
//!    first differing key.
//! 3. [`Rebuild::swap`] swaps in one transaction: it locks the live subscriptions' rows
//!    (waiting for a live runner's batch in flight), drops the live tables, renames the
//!    shadows (and their indexes) into their place, and moves each live checkpoint to the
//!    rebuild's, so the live runner carries on from there (a `failed` subscription is
//!    `running` again). A one-tenant rebuild instead catches its shadow up to the live
//!    checkpoint inside that transaction and replaces just that tenant's rows.
//!
//! Rebuilds run on a pool of the tables' owner (the migrator) whose connections read and write
//! rows as `casebook_maintainer` (`DbRole::Maintainer` in `casebook-adapters`): creating,
//! dropping and renaming tables takes ownership, which only the DDL takes back (see
//! `shadow`). Its pool needs a connection per projection plus two.
//!
//! The build loop (`feed`) is shared with the judgment index's blue/green rebuild
//! ([`IndexRebuild`](crate::judgment_index::IndexRebuild)), whose errors are these too.

pub mod digest;
pub(crate) mod feed;
pub(crate) mod shadow;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use casebook_domain::ids::TenantId;
use casebook_vault::Vault;
use sqlx::{Connection, Executor, PgConnection, PgPool};

use crate::checkpoints::{self, State, TX_PARAM};
use crate::decoded::DecodedEvent;
use crate::error::ApplyError;
use crate::judgment_index::IndexError;
use crate::log::{Checkpoint, ReadError};
use crate::projection::{Naming, Projection, ProjectionId, TableSpec};
use digest::{canonical_settings, first_difference, table_digest, TableDigest};
use feed::{count_between, end_session, Feed, Part, Writer};

/// Whose rows a rebuild covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebuildScope {
    /// Every tenant: the tables are replaced.
    All,
    /// One tenant: its rows are replaced.
    Tenant(TenantId),
}

/// Why a rebuild step failed. Nothing live changes unless [`Rebuild::swap`] succeeds.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// Another process is rebuilding the same projection (and scope).
    #[error("{0} is being rebuilt by another process")]
    Busy(String),
    /// The database failed.
    #[error("rebuild database error")]
    Database(#[from] sqlx::Error),
    /// Reading the log failed.
    #[error("reading the log failed")]
    Read(#[from] ReadError),
    /// An event doesn't decode.
    #[error("cannot decode event {event}")]
    Decode {
        /// The event.
        event: String,
        /// Why.
        #[source]
        source: ApplyError,
    },
    /// A rebuild could not apply a batch.
    #[error("the rebuild of {subscription} failed")]
    Apply {
        /// The live subscription (projection or index) being rebuilt.
        subscription: String,
        /// Why.
        #[source]
        source: ApplyError,
    },
    /// Swap or verify before anything was built.
    #[error("{0} has no rebuild to use")]
    NotBuilt(String),
    /// A one-tenant swap found the live subscription behind the rebuild: let it catch up
    /// first.
    #[error("live {subscription} ({live:?}) is behind its rebuild ({rebuilt:?})")]
    LiveBehind {
        /// The live subscription.
        subscription: String,
        /// The live checkpoint.
        live: Checkpoint,
        /// The rebuild's checkpoint.
        rebuilt: Checkpoint,
    },
    /// Verify found the live tables and the rebuild at different points of the log.
    #[error("{subscription}: live ({live:?}) and rebuild ({rebuilt:?}) are at different points of the log")]
    CheckpointsDiffer {
        /// The live subscription.
        subscription: String,
        /// The live checkpoint.
        live: Checkpoint,
        /// The rebuild's checkpoint.
        rebuilt: Checkpoint,
    },
    /// The judgment index's model, partitions or search failed the rebuild.
    #[error("judgment index")]
    Index(#[from] IndexError),
    /// The judgment index's green generation failed its verification, so it was not
    /// swapped in.
    #[error("the rebuilt judgment index failed its verification: {0}")]
    Unverified(String),
    /// A `--resume` found the judgment index's green generation built for another scope or
    /// model: discard it first.
    #[error(
        "the judgment index's rebuild in place ({existing}) is not this one: discard it first"
    )]
    OtherRebuild {
        /// The rebuild in place: its checkpoint row and model.
        existing: String,
    },
}

/// Reported after every committed batch of a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildProgress {
    /// Events applied by this build so far.
    pub applied: u64,
    /// Events the log held after the starting point when this build started.
    pub total: u64,
    /// The last event applied.
    pub checkpoint: Checkpoint,
    /// Since this build started.
    pub elapsed: Duration,
}

/// How a build ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildOutcome {
    /// Where this build started (the earliest of the projections' rebuild checkpoints; the
    /// log's start for a fresh rebuild).
    pub resumed_from: Checkpoint,
    /// The last event applied (the earliest over the projections).
    pub checkpoint: Checkpoint,
    /// Events applied by this build.
    pub applied: u64,
    /// Caught up with the log (`false`: stopped first).
    pub caught_up: bool,
}

/// One table's comparison by [`Rebuild::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableVerdict {
    /// The table.
    pub table: TableSpec,
    /// The live table's digest (the scope's rows).
    pub live: TableDigest,
    /// The rebuilt table's digest.
    pub rebuilt: TableDigest,
    /// The first key (as JSON) whose rows differ, if any.
    pub first_difference: Option<String>,
}

impl TableVerdict {
    /// Whether the live and rebuilt rows are the same.
    pub fn matches(&self) -> bool {
        self.live == self.rebuilt && self.first_difference.is_none()
    }
}

/// A rebuild of some projections; see the module documentation.
#[derive(Debug, Clone)]
pub struct Rebuild {
    pool: PgPool,
    vault: Option<Arc<Vault>>,
    projections: Vec<ProjectionId>,
    scope: RebuildScope,
    batch_size: usize,
}

/// A projection writing to its shadow tables, as a part of a build.
struct ShadowWriter(Box<dyn Projection>);

#[async_trait]
impl Writer for ShadowWriter {
    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[DecodedEvent],
    ) -> Result<(), ApplyError> {
        self.0.apply(conn, events).await
    }
}

impl Rebuild {
    /// A rebuild of `projections` (e.g. [`ProjectionId::ALL`]) for `scope`, through `pool`,
    /// whose role must own the read-model tables.
    pub fn new(
        pool: PgPool,
        projections: impl IntoIterator<Item = ProjectionId>,
        scope: RebuildScope,
    ) -> Self {
        let mut projections: Vec<_> = projections.into_iter().collect();
        projections.sort_unstable();
        projections.dedup();
        Self {
            pool,
            vault: None,
            projections,
            scope,
            batch_size: 25_000,
        }
    }

    /// Opens the events' sealed fields with `vault`; without it, a sealed event does not
    /// decode and stops the rebuild.
    pub fn with_vault(self, vault: Option<Arc<Vault>>) -> Self {
        Self { vault, ..self }
    }

    fn feed(&self) -> Feed {
        Feed::new(
            self.pool.clone(),
            self.vault.clone(),
            self.batch_size,
            self.tenant(),
        )
    }

    /// Events per transaction (and per page read); 25,000 by default. Larger batches fold more
    /// of a row's events together (fewer row writes) but hold more decoded events in memory:
    /// up to about five batches at once.
    pub fn with_batch_size(self, batch_size: usize) -> Self {
        Self {
            batch_size: batch_size.max(1),
            ..self
        }
    }

    /// Whose rows it covers.
    pub fn scope(&self) -> RebuildScope {
        self.scope
    }

    /// The shadow tables' names.
    pub fn naming(&self) -> Naming {
        match self.scope {
            RebuildScope::All => Naming::Shadow,
            RebuildScope::Tenant(tenant) => Naming::TenantShadow(*tenant.as_uuid()),
        }
    }

    /// The checkpoint row of projection `id`'s rebuild.
    pub fn row_name(&self, id: ProjectionId) -> String {
        match self.scope {
            RebuildScope::All => format!("{id}#rebuild"),
            RebuildScope::Tenant(tenant) => format!("{id}#rebuild@{tenant}"),
        }
    }

    fn tenant(&self) -> Option<uuid::Uuid> {
        match self.scope {
            RebuildScope::All => None,
            RebuildScope::Tenant(tenant) => Some(*tenant.as_uuid()),
        }
    }

    /// A connection of its own holding every rebuild row's advisory lock.
    async fn session(&self) -> Result<PgConnection, RebuildError> {
        let rows: Vec<String> = self
            .projections
            .iter()
            .map(|id| self.row_name(*id))
            .collect();
        self.feed().session(&rows).await
    }

    /// Resumes each projection's rebuild where its checkpoint row says, or starts it afresh
    /// (new empty shadow tables, checkpoint at the start) when the row or a table is missing.
    async fn prepare(&self, conn: &mut PgConnection) -> Result<Vec<Part>, RebuildError> {
        let naming = self.naming();
        let mut parts = Vec::with_capacity(self.projections.len());
        for &id in &self.projections {
            let row = self.row_name(id);
            // Locked, not just read: a killed build's last batch may still be committing
            // (its task was cancelled after sending COMMIT), and its checkpoint is then the
            // one to resume from; the lock waits for it.
            let mut complete = checkpoints::lock(conn, &row).await?.map(|(cp, _)| cp);
            for table in id.tables() {
                if !shadow::exists(conn, &naming.table(table.name)).await? {
                    complete = None;
                }
            }
            let checkpoint = match complete {
                Some(checkpoint) => checkpoint,
                None => {
                    let mut tx = conn.begin().await?;
                    for table in id.tables() {
                        let shadow_name = naming.table(table.name);
                        shadow::drop_if_exists(&mut tx, &shadow_name).await?;
                        shadow::create(&mut tx, table.name, &shadow_name).await?;
                    }
                    sqlx::query("DELETE FROM subscriptions WHERE name = $1")
                        .bind(&row)
                        .execute(&mut *tx)
                        .await?;
                    checkpoints::ensure(&mut tx, &row, State::Rebuilding).await?;
                    tx.commit().await?;
                    Checkpoint::START
                }
            };
            parts.push(Part {
                live: id.name().to_owned(),
                row,
                writer: Arc::new(ShadowWriter(id.build(&naming))),
                checkpoint,
            });
        }
        Ok(parts)
    }

    /// Builds the shadow tables up to the head of the log (a one-tenant build: up to the
    /// live projections' checkpoint), or until `stop` resolves. Resumable: a build stopped
    /// or killed half way continues from each projection's last committed batch.
    ///
    /// The log is read and decoded once; each projection applies the batches on a
    /// connection of its own, concurrently, so the pool needs a connection per projection
    /// plus two.
    pub async fn build(
        &self,
        stop: impl Future<Output = ()>,
        progress: impl FnMut(&RebuildProgress),
    ) -> Result<BuildOutcome, RebuildError> {
        let mut session = self.session().await?;
        let result = self.build_in(&mut session, stop, progress).await;
        end_session(session).await;
        result
    }

    async fn build_in(
        &self,
        session: &mut PgConnection,
        stop: impl Future<Output = ()>,
        progress: impl FnMut(&RebuildProgress),
    ) -> Result<BuildOutcome, RebuildError> {
        let parts = self.prepare(session).await?;
        let outcome = self.feed().build(session, parts, stop, progress).await?;
        if outcome.caught_up {
            self.add_deferred_indexes(session).await?;
        }
        Ok(outcome)
    }

    /// Compares the rebuilt and live tables, all in one snapshot. Both must be at the same
    /// point of the log (no event of the scope between their checkpoints): build after the
    /// live runner has caught up with a quiet log, or stop the live runner.
    pub async fn verify(&self) -> Result<Vec<TableVerdict>, RebuildError> {
        let mut conn = self.session().await?;
        let result = async {
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await?;
            let verdicts = self.verify_in(&mut conn).await?;
            conn.execute("COMMIT").await?;
            Ok(verdicts)
        }
        .await;
        end_session(conn).await;
        result
    }

    async fn verify_in(&self, conn: &mut PgConnection) -> Result<Vec<TableVerdict>, RebuildError> {
        canonical_settings(conn).await?;
        let naming = self.naming();
        let tenant = self.tenant();
        let mut verdicts = Vec::new();
        for &id in &self.projections {
            let live = checkpoints::get(conn, id.name())
                .await?
                .map_or(Checkpoint::START, |(cp, _)| cp);
            let rebuilt = checkpoints::get(conn, &self.row_name(id))
                .await?
                .ok_or_else(|| RebuildError::NotBuilt(id.name().to_owned()))?
                .0;
            let (low, high) = (live.min(rebuilt), live.max(rebuilt));
            if count_between(conn, low, Some(high), tenant).await? > 0 {
                return Err(RebuildError::CheckpointsDiffer {
                    subscription: id.name().to_owned(),
                    live,
                    rebuilt,
                });
            }
            for table in id.tables() {
                let shadow_name = naming.table(table.name);
                let live_digest = table_digest(conn, table.name, table.key, tenant).await?;
                let rebuilt_digest = table_digest(conn, &shadow_name, table.key, tenant).await?;
                let first_difference = if live_digest == rebuilt_digest {
                    None
                } else {
                    first_difference(conn, table.name, &shadow_name, table.key, tenant).await?
                };
                verdicts.push(TableVerdict {
                    table: *table,
                    live: live_digest,
                    rebuilt: rebuilt_digest,
                    first_difference,
                });
            }
        }
        Ok(verdicts)
    }

    /// Swaps the rebuilt tables in, in one transaction (see the module documentation).
    pub async fn swap(&self) -> Result<(), RebuildError> {
        let mut session = self.session().await?;
        let result = self.swap_in(&mut session).await;
        end_session(session).await;
        result
    }

    /// Builds the shadow tables' remaining indexes (see [`shadow::create`]), outside any
    /// transaction the live tables wait on.
    async fn add_deferred_indexes(&self, conn: &mut PgConnection) -> Result<(), RebuildError> {
        let naming = self.naming();
        for id in &self.projections {
            for table in id.tables() {
                let shadow_name = naming.table(table.name);
                if shadow::exists(conn, &shadow_name).await? {
                    shadow::add_deferred_indexes(conn, table.name, &shadow_name).await?;
                }
            }
        }
        Ok(())
    }

    async fn swap_in(&self, conn: &mut PgConnection) -> Result<(), RebuildError> {
        let naming = self.naming();
        // Normally done when the build caught up; a no-op then.
        self.add_deferred_indexes(conn).await?;
        let mut tx = conn.begin().await?;
        for &id in &self.projections {
            checkpoints::ensure(&mut tx, id.name(), State::Running).await?;
        }
        for &id in &self.projections {
            let live = checkpoints::lock(&mut tx, id.name())
                .await?
                .map_or(Checkpoint::START, |(cp, _)| cp);
            let row = self.row_name(id);
            let rebuilt = checkpoints::lock(&mut tx, &row)
                .await?
                .ok_or_else(|| RebuildError::NotBuilt(id.name().to_owned()))?
                .0;
            for table in id.tables() {
                if !shadow::exists(&mut tx, &naming.table(table.name)).await? {
                    return Err(RebuildError::NotBuilt(id.name().to_owned()));
                }
            }
            match self.scope {
                RebuildScope::All => {
                    for table in id.tables() {
                        shadow::swap_in(&mut tx, table.name, &naming.table(table.name)).await?;
                    }
                    sqlx::query(&format!(
                        "UPDATE subscriptions
                            SET checkpoint_tx = $2{TX_PARAM}, checkpoint_position = $3,
                                status = 'running', last_error = NULL, updated_at = now()
                          WHERE name = $1"
                    ))
                    .bind(id.name())
                    .bind(rebuilt.transaction_id)
                    .bind(rebuilt.global_position)
                    .execute(&mut *tx)
                    .await?;
                }
                RebuildScope::Tenant(tenant) => {
                    if rebuilt > live {
                        return Err(RebuildError::LiveBehind {
                            subscription: id.name().to_owned(),
                            live,
                            rebuilt,
                        });
                    }
                    let writer = ShadowWriter(id.build(&self.naming()));
                    self.feed()
                        .catch_up(&mut tx, id.name(), &writer, rebuilt, live)
                        .await?;
                    for table in id.tables() {
                        shadow::merge_tenant(
                            &mut tx,
                            table.name,
                            &naming.table(table.name),
                            *tenant.as_uuid(),
                        )
                        .await?;
                    }
                }
            }
            sqlx::query("DELETE FROM subscriptions WHERE name = $1")
                .bind(&row)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if self.scope == RebuildScope::All {
            for id in &self.projections {
                for table in id.tables() {
                    shadow::as_owner(conn).await?;
                    conn.execute(format!(r#"ANALYZE "{}""#, table.name).as_str())
                        .await?;
                    shadow::as_maintainer(conn).await?;
                }
            }
        }
        tracing::info!(projections = ?self.projections, scope = ?self.scope, "rebuild swapped in");
        Ok(())
    }

    /// Builds, and swaps in if the build caught up (`Ok(true)`); `Ok(false)` when `stop`
    /// resolved first (run again to resume).
    pub async fn run(
        &self,
        stop: impl Future<Output = ()>,
        progress: impl FnMut(&RebuildProgress),
    ) -> Result<bool, RebuildError> {
        let mut session = self.session().await?;
        let result = async {
            if !self.build_in(&mut session, stop, progress).await?.caught_up {
                return Ok(false);
            }
            self.swap_in(&mut session).await?;
            Ok(true)
        }
        .await;
        end_session(session).await;
        result
    }

    /// Drops the shadow tables and checkpoint rows of this rebuild.
    pub async fn discard(&self) -> Result<(), RebuildError> {
        let mut session = self.session().await?;
        let result = self.discard_in(&mut session).await;
        end_session(session).await;
        result
    }

    async fn discard_in(&self, conn: &mut PgConnection) -> Result<(), RebuildError> {
        let naming = self.naming();
        let mut tx = conn.begin().await?;
        for &id in &self.projections {
            for table in id.tables() {
                shadow::drop_if_exists(&mut tx, &naming.table(table.name)).await?;
            }
            sqlx::query("DELETE FROM subscriptions WHERE name = $1")
                .bind(self.row_name(id))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
