//! The `subscriptions` table: each subscription's checkpoint, status and last error, and the
//! advisory locks that keep one runner per subscription.

use std::fmt;
use std::str::FromStr;

use sqlx::{PgConnection, PgPool, Row};

use crate::log::Checkpoint;

/// A subscription's status, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Applying events (or waiting for them).
    Running,
    /// Paused by an operator ([`stop`]); [`resume`] restarts it.
    Stopped,
    /// Stopped at a poison event; `last_error` says which and why. [`resume`] (after a fix)
    /// or a rebuild's swap restarts it.
    Failed,
    /// A rebuild's own checkpoint row (`<name>#rebuild…`).
    Rebuilding,
}

impl State {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
            Self::Rebuilding => "rebuilding",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status the `subscriptions` table doesn't allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown subscription status {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for State {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "running" => Ok(Self::Running),
            "stopped" => Ok(Self::Stopped),
            "failed" => Ok(Self::Failed),
            "rebuilding" => Ok(Self::Rebuilding),
            other => Err(UnknownState(other.to_owned())),
        }
    }
}

/// Binds a checkpoint's transaction id (a `bigint`) as `xid8`.
pub(crate) const TX_PARAM: &str = "::bigint::text::xid8";

/// Creates the row of `name` at the start of the log, unless it exists.
pub(crate) async fn ensure(
    conn: &mut PgConnection,
    name: &str,
    state: State,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO subscriptions (name, status) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(state.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks the row of `name` for the rest of the transaction and reads it.
pub(crate) async fn lock(
    conn: &mut PgConnection,
    name: &str,
) -> Result<Option<(Checkpoint, State)>, sqlx::Error> {
    read(conn, name, " FOR UPDATE").await
}

/// Reads the row of `name`.
pub(crate) async fn get(
    conn: &mut PgConnection,
    name: &str,
) -> Result<Option<(Checkpoint, State)>, sqlx::Error> {
    read(conn, name, "").await
}

async fn read(
    conn: &mut PgConnection,
    name: &str,
    suffix: &str,
) -> Result<Option<(Checkpoint, State)>, sqlx::Error> {
    let sql = format!(
        "SELECT checkpoint_tx::text::bigint AS tx, checkpoint_position, status
           FROM subscriptions WHERE name = $1{suffix}"
    );
    let Some(row) = sqlx::query(&sql).bind(name).fetch_optional(conn).await? else {
        return Ok(None);
    };
    let status: String = row.try_get("status")?;
    let state = status.parse().map_err(|err| sqlx::Error::ColumnDecode {
        index: "status".into(),
        source: Box::new(err),
    })?;
    Ok(Some((
        Checkpoint {
            transaction_id: row.try_get("tx")?,
            global_position: row.try_get("checkpoint_position")?,
        },
        state,
    )))
}

/// Moves the checkpoint of `name` and clears its error.
pub(crate) async fn advance(
    conn: &mut PgConnection,
    name: &str,
    to: Checkpoint,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "UPDATE subscriptions
            SET checkpoint_tx = $2{TX_PARAM}, checkpoint_position = $3, last_error = NULL,
                updated_at = now()
          WHERE name = $1"
    );
    sqlx::query(&sql)
        .bind(name)
        .bind(to.transaction_id)
        .bind(to.global_position)
        .execute(conn)
        .await?;
    Ok(())
}

/// Stops `name` with status `failed` and `error`.
pub(crate) async fn mark_failed(
    conn: &mut PgConnection,
    name: &str,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE subscriptions SET status = 'failed', last_error = $2, updated_at = now()
          WHERE name = $1",
    )
    .bind(name)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a transient `error` of `name` (its status stays as it is).
pub(crate) async fn record_error(
    pool: &PgPool,
    name: &str,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE subscriptions SET last_error = $2, updated_at = now() WHERE name = $1")
        .bind(name)
        .bind(error)
        .execute(pool)
        .await?;
    Ok(())
}

/// Takes the session-level advisory lock of `name` on `conn` if nobody holds it. It is
/// released when the connection closes.
pub(crate) async fn try_lock(conn: &mut PgConnection, name: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT pg_try_advisory_lock(hashtextextended('casebook.subscription/' || $1, 0))",
    )
    .bind(name)
    .fetch_one(conn)
    .await
}

/// Releases every advisory lock `conn` holds.
pub(crate) async fn unlock_all(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_unlock_all()")
        .execute(conn)
        .await?;
    Ok(())
}

/// Sets a `failed` or `stopped` subscription back to `running` and clears its error: after a
/// fix, the runner retries from its checkpoint (the poison event first). Returns whether it
/// changed anything.
pub async fn resume(pool: &PgPool, name: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE subscriptions SET status = 'running', last_error = NULL, updated_at = now()
          WHERE name = $1 AND status IN ('failed', 'stopped')",
    )
    .bind(name)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Pauses a running subscription: its runner stops at its next batch. Returns whether it
/// changed anything.
pub async fn stop(pool: &PgPool, name: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE subscriptions SET status = 'stopped', updated_at = now()
          WHERE name = $1 AND status = 'running'",
    )
    .bind(name)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}
