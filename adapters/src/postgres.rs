//! Postgres connection pools and migrations.
//!
//! The deployment connects as a login user that is a member of several roles; every pool
//! assumes exactly one of them with `SET ROLE`, so the application's request path really runs
//! with INSERT+SELECT on the log and nothing more, and tests exercise the same privileges.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};

/// The schema: event store, snapshots, subscriptions, roles, read models.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// The database role a pool runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbRole {
    /// The connecting user itself (migrations, tests that act as a superuser).
    Owner,
    /// Appends events and reads; cannot rewrite history.
    App,
    /// Reads the log, writes projections and checkpoints.
    Projector,
    /// Reads only.
    Auditor,
}

impl DbRole {
    fn role_name(self) -> Option<&'static str> {
        match self {
            DbRole::Owner => None,
            DbRole::App => Some("casebook_app"),
            DbRole::Projector => Some("casebook_projector"),
            DbRole::Auditor => Some("casebook_auditor"),
        }
    }
}

/// Opens a pool of at most `max_connections` connections, each running as `role`.
pub async fn connect(
    options: PgConnectOptions,
    role: DbRole,
    max_connections: u32,
) -> Result<PgPool, sqlx::Error> {
    let pool_options = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        // sqlx pings every connection before handing it out: a round trip per statement.
        // A dead connection instead fails its statement, which callers see as retryable.
        .test_before_acquire(false);
    let pool_options = match role.role_name() {
        None => pool_options,
        Some(name) => pool_options.after_connect(move |conn, _meta| {
            Box::pin(async move {
                conn.execute(format!("SET ROLE {name}").as_str()).await?;
                Ok(())
            })
        }),
    };
    pool_options.connect_with(options).await
}

/// Applies every pending migration (idempotent).
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}
