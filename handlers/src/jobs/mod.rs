//! Scheduled jobs, run by the `scheduler` Lambda with input `{"job": "<name>"}`.
//!
//! - `lag_check`: logs every subscription's lag as a metric line (and `RelayLagSeconds` for
//!   the relay).
//!
//! The weekly fine-tune export and the nightly audit archive that the template schedules are
//! not built yet: their inputs are refused as unknown jobs, so those schedules fail visibly.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::relay::Relay;

/// The input of the `scheduler` function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRequest {
    /// Which job.
    pub job: Job,
}

/// The scheduled jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    /// Logs the subscriptions' lag.
    LagCheck,
}

/// What a job did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobReport {
    /// The job.
    pub job: Job,
    /// Subscriptions checked (lag check).
    pub subscriptions: usize,
    /// The largest lag seen, seconds (lag check).
    pub max_lag_seconds: f64,
}

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The database failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

/// Runs `job` over `pool`.
pub async fn run_job(pool: &PgPool, job: Job) -> Result<JobReport, JobError> {
    match job {
        Job::LagCheck => lag_check(pool).await,
    }
}

/// Logs every subscription's lag (`projection_lag` metric lines); the relay's lag is also
/// logged as `RelayLagSeconds`.
pub async fn lag_check(pool: &PgPool) -> Result<JobReport, JobError> {
    let mut conn = pool.acquire().await?;
    let statuses = casebook_projections::status::status(&mut conn).await?;
    let mut max_lag_seconds: f64 = 0.0;
    for status in &statuses {
        casebook_projections::status::log_lag(status);
        if status.name == Relay::NAME {
            tracing::info!(
                target: "casebook::metrics",
                metric = "RelayLagSeconds",
                lag_seconds = status.lag_seconds,
                lag_events = status.lag_events,
                "relay lag"
            );
        }
        max_lag_seconds = max_lag_seconds.max(status.lag_seconds);
    }
    Ok(JobReport {
        job: Job::LagCheck,
        subscriptions: statuses.len(),
        max_lag_seconds,
    })
}
