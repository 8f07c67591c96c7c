//! Every subscription's status and lag: how many events, and how many seconds, it is behind
//! the head of the log.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::checkpoints::State;
use crate::log::Checkpoint;

/// A subscription's row in `subscriptions`, with its lag.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionStatus {
    /// The subscription (or a rebuild's `<name>#rebuild…` row).
    pub name: String,
    /// Running, stopped, failed or rebuilding.
    pub state: State,
    /// The error that failed it, or the last transient error while retrying.
    pub last_error: Option<String>,
    /// The last event applied.
    pub checkpoint: Checkpoint,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
    /// Committed events after the checkpoint.
    pub lag_events: i64,
    /// The age of the oldest committed event after the checkpoint (0 when caught up).
    pub lag_seconds: f64,
}

const STATUS: &str = "
SELECT s.name, s.status, s.last_error, s.checkpoint_tx::text::bigint AS tx,
       s.checkpoint_position, s.updated_at, l.lag_events,
       COALESCE(EXTRACT(EPOCH FROM now() - l.oldest)::float8, 0) AS lag_seconds
  FROM subscriptions s
 CROSS JOIN LATERAL (
       SELECT count(*) AS lag_events, min(e.recorded_at) AS oldest
         FROM events e
        WHERE (e.transaction_id, e.global_position) > (s.checkpoint_tx, s.checkpoint_position)
       ) l";

fn from_row(row: &PgRow) -> Result<SubscriptionStatus, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(SubscriptionStatus {
        name: row.try_get("name")?,
        state: status.parse().map_err(|err| sqlx::Error::ColumnDecode {
            index: "status".into(),
            source: Box::new(err),
        })?,
        last_error: row.try_get("last_error")?,
        checkpoint: Checkpoint {
            transaction_id: row.try_get("tx")?,
            global_position: row.try_get("checkpoint_position")?,
        },
        updated_at: row.try_get("updated_at")?,
        lag_events: row.try_get("lag_events")?,
        lag_seconds: row.try_get("lag_seconds")?,
    })
}

/// Every subscription's status and lag, by name. Counting the lag reads the log's index
/// from each checkpoint on, so it costs in proportion to the lag.
pub async fn status(conn: &mut PgConnection) -> Result<Vec<SubscriptionStatus>, sqlx::Error> {
    sqlx::query(&format!("{STATUS} ORDER BY s.name"))
        .fetch_all(conn)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// The status and lag of subscription `name`, if it has a row.
pub async fn status_of(
    conn: &mut PgConnection,
    name: &str,
) -> Result<Option<SubscriptionStatus>, sqlx::Error> {
    sqlx::query(&format!("{STATUS} WHERE s.name = $1"))
        .bind(name)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Reports the lag: a log line with the subscription, its status and both lags, and the
/// `ProjectionLagSeconds` metric twice — by `Subscription` for the dashboard, and without it
/// for the alarm, whose Maximum is then the worst subscription's. A histogram, not a gauge:
/// a process that stops reporting leaves the metric missing rather than repeating its last
/// value, and the alarm treats missing as breaching.
pub fn report_lag(status: &SubscriptionStatus) {
    tracing::info!(
        subscription = %status.name,
        status = %status.state,
        lag_events = status.lag_events,
        lag_seconds = status.lag_seconds,
        "projection lag"
    );
    metrics::histogram!("ProjectionLagSeconds", "Subscription" => status.name.clone())
        .record(status.lag_seconds);
    metrics::histogram!("ProjectionLagSeconds").record(status.lag_seconds);
}
