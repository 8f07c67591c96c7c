//! Postgres connection pools and migrations.
//!
//! The deployment connects as a login user that is a member of several roles but inherits
//! none of their rights. The request path assumes `casebook_app` for each transaction
//! ([`begin_for_tenants`]: `SET LOCAL ROLE`, with the tenants row-level security shows), so it
//! really runs with INSERT+SELECT on the log and its tenants' rows, and a statement outside
//! such a transaction can read nothing; RDS Proxy can hand the connection to another client
//! between transactions, which a session-level `SET ROLE` would forbid. The other pools
//! assume their role for the session: the projector's connections LISTEN and hold advisory
//! locks, the judgment search's keep a prepared plan per tenant and planner settings (both
//! pin a proxied connection anyway), and the auditor's serve a command-line tool. Tests
//! connect as such a login too.
//!
//! Deployed, the Lambdas reach the database through RDS Proxy with IAM authentication:
//! [`connect_database`] then signs the password ([`crate::rds_iam`]) and keeps it fresh.

use std::time::{Duration, SystemTime};

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::aws::shared_config;
use crate::config::DatabaseConfig;
use crate::rds_iam::{IamAuthError, RdsTokenSigner, TOKEN_REFRESH};

/// The schema: event store, snapshots, subscriptions, roles, read models.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// The database role a pool runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbRole {
    /// The connecting user itself (migrations, tests that act as a superuser).
    Owner,
    /// Appends events and reads; cannot rewrite history. Its connections have no role of
    /// their own: every statement runs in a transaction of [`begin_for_tenants`].
    App,
    /// Reads the log, writes projections and checkpoints. Its commits are asynchronous
    /// (`synchronous_commit = off`): everything it writes is derived from the log and
    /// committed together with its checkpoint, so a crash can only lose its last few
    /// batches whole, which it then applies again; in exchange it never waits for a WAL
    /// flush, nor makes the request path's commits wait behind its own.
    Projector,
    /// Reads only.
    Auditor,
    /// Maintenance by the owner of the tables (the migrator), for rebuilds: it reads and
    /// writes rows as `casebook_maintainer` (row-level security is forced on the owner, whom
    /// no policy names) and takes the owner's rights back for DDL alone (`RESET ROLE`, in
    /// `casebook_projections::rebuild`).
    Maintainer,
    /// Searches the judgment index, and may read nothing else. A search names the tenant's
    /// partition in a statement each connection prepares once, so its plan is kept; the
    /// settings a search needs are therefore this pool's sessions' own, and a pool of this
    /// role runs nothing but searches:
    /// - `enable_sort = off`: the planner would scan a small partition exactly (every exact
    ///   plan sorts by distance), which is twice as slow as walking its graph;
    /// - `hnsw.iterative_scan = off`: the walk stops after ef_search candidates, which an
    ///   iterative scan would cost 6–20 % more even when they suffice; a search that comes
    ///   back short of k (dead row versions took candidates, or k > ef_search) walks again
    ///   with the scan on (`casebook_projections::judgment_index::search`);
    /// - `hnsw.ef_search` = [`HNSW_EF_SEARCH`];
    /// - `jit = off`: a top-10 lookup never gains from compiling itself;
    /// - `plan_cache_mode = force_generic_plan`: left to choose, Postgres plans every call
    ///   anew, because a generic plan's unknown `LIMIT` looks dearer than a custom plan's
    ///   10 — the very planning a kept statement is for saving. Over one partition, with
    ///   sorting off, both plans are the same walk of its HNSW index.
    Search,
}

/// HNSW candidate list size of a judgment search: on the partitions' half-precision graphs
/// (m 16, ef_construction 400), recall@10 0.987 or better in every one of 20 uneven tenants
/// of 100,000 real MiniLM vectors; 32 costs 8 % less and leaves a mid-sized tenant at 0.976
/// (BENCHMARKS.md; the passes in docs/benchmarks-history.md).
pub const HNSW_EF_SEARCH: u32 = 40;

/// Prepared statements a search connection keeps: one per tenant it searches (each names
/// the tenant's partition), so a deployment's tenants all keep their plans instead of
/// re-planning on every search once sqlx's default of 100 is exceeded.
const SEARCH_STATEMENTS_PER_CONNECTION: usize = 1_000;

impl DbRole {
    /// What each new connection runs to become this role.
    fn session_setup(self) -> Option<String> {
        match self {
            DbRole::Owner | DbRole::App => None,
            DbRole::Projector => {
                Some("SET ROLE casebook_projector; SET synchronous_commit = off".to_owned())
            }
            DbRole::Auditor => Some("SET ROLE casebook_auditor".to_owned()),
            DbRole::Maintainer => Some("SET ROLE casebook_maintainer".to_owned()),
            DbRole::Search => Some(format!(
                "SET ROLE casebook_search; SET enable_sort = off; \
                 SET hnsw.iterative_scan = off; SET hnsw.ef_search = {HNSW_EF_SEARCH}; \
                 SET jit = off; SET plan_cache_mode = force_generic_plan"
            )),
        }
    }
}

/// Whether a request-path transaction may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `BEGIN READ ONLY`.
    ReadOnly,
    /// `BEGIN`.
    ReadWrite,
    /// `BEGIN` with `synchronous_commit` off: the commit does not wait for its WAL flush, so
    /// a crash may lose it — for records a client's retry recreates.
    ReadWriteUnflushed,
}

/// Begins a request-path transaction: as `casebook_app`, with row-level security showing
/// (and accepting) the rows of `tenants` only. One round trip.
pub async fn begin_for_tenants(
    pool: &PgPool,
    access: Access,
    tenants: &[Uuid],
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let begin = match access {
        Access::ReadOnly => "BEGIN READ ONLY",
        Access::ReadWrite => "BEGIN",
        Access::ReadWriteUnflushed => "BEGIN; SET LOCAL synchronous_commit = off",
    };
    // Uuids are hex and dashes: nothing to quote.
    let scope = tenants
        .iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(",");
    pool.begin_with(format!(
        "{begin}; SET LOCAL ROLE casebook_app; SET LOCAL app.tenant_id = '{scope}'"
    ))
    .await
}

/// Opens a pool of at most `max_connections` connections, each running as `role`.
pub async fn connect(
    options: PgConnectOptions,
    role: DbRole,
    max_connections: u32,
) -> Result<PgPool, sqlx::Error> {
    let options = match role {
        DbRole::Search => options.statement_cache_capacity(SEARCH_STATEMENTS_PER_CONNECTION),
        _ => options,
    };
    let pool_options = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        // sqlx pings every connection before handing it out: a round trip per statement.
        // A dead connection instead fails its statement, which callers see as retryable.
        .test_before_acquire(false);
    let pool_options = match role.session_setup() {
        None => pool_options,
        Some(setup) => pool_options.after_connect(move |conn, _meta| {
            let setup = setup.clone();
            Box::pin(async move {
                conn.execute(setup.as_str()).await?;
                Ok(())
            })
        }),
    };
    pool_options.connect_with(options).await
}

/// Why a pool could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The database refused or could not be reached.
    #[error("cannot connect to the database")]
    Database(#[from] sqlx::Error),
    /// No IAM auth token could be signed.
    #[error("cannot authenticate to the database with IAM")]
    IamAuth(#[from] IamAuthError),
}

/// Opens a pool to the database `config` names, as [`connect`] does; with IAM
/// authentication configured (`DATABASE_IAM_AUTH`), the password is a token signed with the
/// process' AWS credentials, re-signed in the background before it expires.
pub async fn connect_database(
    config: &DatabaseConfig,
    role: DbRole,
    max_connections: u32,
) -> Result<PgPool, ConnectError> {
    let options = config.connect_options();
    if !config.iam_auth {
        return Ok(connect(options, role, max_connections).await?);
    }
    let signer = RdsTokenSigner::new(
        &shared_config().await,
        options.get_host(),
        options.get_port(),
        options.get_username(),
    )?;
    let token = signer.token().await?;
    let pool = connect(options.clone().password(&token), role, max_connections).await?;
    tokio::spawn(keep_token_fresh(pool.clone(), options, signer));
    Ok(pool)
}

/// Re-signs the pool's password once it is [`TOKEN_REFRESH`] old, until the pool closes.
/// Age is wall-clock time: a Lambda environment frozen between invocations wakes up with its
/// timers due and its token possibly expired, and refreshes on the next check.
async fn keep_token_fresh(pool: PgPool, options: PgConnectOptions, signer: RdsTokenSigner) {
    const CHECK_EVERY: Duration = Duration::from_secs(30);
    let mut signed_at = SystemTime::now();
    loop {
        tokio::select! {
            () = pool.close_event() => return,
            () = tokio::time::sleep(CHECK_EVERY) => {}
        }
        let age = signed_at.elapsed().unwrap_or(Duration::ZERO);
        if age < TOKEN_REFRESH {
            continue;
        }
        match signer.token().await {
            Ok(token) => {
                pool.set_connect_options(options.clone().password(&token));
                signed_at = SystemTime::now();
            }
            Err(err) => tracing::error!(
                error = %err,
                "cannot re-sign the database auth token; new connections fail once it expires"
            ),
        }
    }
}

/// Whether the database behind `pool` answers (a health check's question).
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(pool)
        .await
        .map(drop)
}

/// Applies every pending migration (idempotent).
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}
