//! Scheduled jobs: run by the `scheduler` Lambda with input `{"job": "<name>"}` (EventBridge
//! schedules in AWS), and locally by [`run_scheduler_until`] on cron expressions from the
//! environment.
//!
//! - `fine_tune_export` (weekly, [`finetune`]): each tenant's approved and amended decisions
//!   since its last export, as JSONL chat examples to
//!   `s3://<artifacts>/<tenant>/finetune/<date>.jsonl`, recorded on the tenant as
//!   `FinetuneExported` (which the relay puts on the `local-jobs` queue).
//! - `audit_archive` (nightly, [`archive`]): each tenant's audit rows not archived yet, up
//!   to the start of the run's day, as JSONL with the chain head to
//!   `s3://<audit-archive>/<tenant>/<yyyy>/<mm>/<dd>.jsonl`.
//! - `lag_check` (every minute): logs every subscription's lag as a metric line, and an
//!   error for each one lagging more than `LAG_ALERT_SECONDS`.
//!
//! Environment ([`JobsConfig::from_env`]): `ARTIFACTS_BUCKET`, `AUDIT_ARCHIVE_BUCKET`,
//! `LAG_ALERT_SECONDS` (default 60), and for the local scheduler `SCHEDULE_FINETUNE_EXPORT`
//! (default `0 2 * * SUN`), `SCHEDULE_AUDIT_ARCHIVE` (`30 3 * * *`), `SCHEDULE_LAG_CHECK`
//! (`*/5 * * * *`), all UTC: the same times as the EventBridge schedules in
//! `infra/template.yaml`.

pub mod archive;
mod config;
pub mod finetune;
mod schedule;

use std::time::Duration;

use casebook_adapters::aws::s3::{S3Error, TenantBucket};
use casebook_adapters::aws::SdkConfig;
use casebook_domain::ids::TenantId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

pub use config::{InvalidSetting, JobsConfig};
pub use schedule::{run_scheduler_until, Schedule, ScheduleError};

use crate::relay::Relay;
use casebook_application::service::{Service, ServiceError};

/// The input of the `scheduler` function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRequest {
    /// Which job.
    pub job: Job,
}

/// The scheduled jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    /// Logs the subscriptions' lag.
    LagCheck,
    /// Exports approved and amended decisions as fine-tune examples.
    #[serde(rename = "fine_tune_export")]
    FinetuneExport,
    /// Archives new audit rows.
    AuditArchive,
}

impl Job {
    /// Every job, in the order the local scheduler lists them.
    pub const ALL: [Job; 3] = [Job::LagCheck, Job::FinetuneExport, Job::AuditArchive];

    /// The name in the job's input (`lag_check`, `fine_tune_export`, `audit_archive`).
    pub fn name(self) -> &'static str {
        match self {
            Job::LagCheck => "lag_check",
            Job::FinetuneExport => "fine_tune_export",
            Job::AuditArchive => "audit_archive",
        }
    }
}

/// What a job did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum JobReport {
    /// The lag check.
    LagCheck {
        /// Subscriptions checked.
        subscriptions: usize,
        /// The largest lag seen, seconds.
        max_lag_seconds: f64,
        /// Subscriptions lagging more than the alert threshold.
        lagging: Vec<String>,
    },
    /// The fine-tune export: one entry per tenant that got a file.
    FinetuneExport {
        /// The files written.
        exports: Vec<finetune::TenantExport>,
    },
    /// The audit archive: one entry per tenant that got a file.
    AuditArchive {
        /// The files written.
        archives: Vec<archive::TenantArchive>,
    },
}

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The database failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Reading the event log failed.
    #[error("reading the event log failed")]
    Log(#[from] casebook_projections::log::ReadError),
    /// S3 failed or refused a key.
    #[error("S3 error")]
    S3(#[from] S3Error),
    /// A command was refused or failed.
    #[error("command failed for tenant {tenant}")]
    Command {
        /// The tenant.
        tenant: TenantId,
        /// Why.
        #[source]
        source: ServiceError,
    },
    /// A stored event or row could not be decoded.
    #[error("cannot decode {what}")]
    Decode {
        /// What.
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The job needs a setting that is not configured.
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
}

/// What the jobs run against: the database — a tenant's rows in transactions of the
/// request path's role scoped to it, the whole log and the subscriptions as `casebook_projector`
/// — the application service (for the commands jobs issue) and the buckets.
#[derive(Clone)]
pub struct Jobs {
    pool: PgPool,
    log: PgPool,
    service: Service,
    artifacts: Option<TenantBucket>,
    audit_archive: Option<TenantBucket>,
    lag_alert: Duration,
}

impl Jobs {
    /// Jobs over `pool` (a [`DbRole::App`](casebook_adapters::postgres::DbRole) pool) and
    /// `log` (a projector pool, reading every tenant's events and the subscriptions) with
    /// buckets from `config` (clients from `aws`).
    pub fn new(pool: PgPool, log: PgPool, aws: &SdkConfig, config: &JobsConfig) -> Self {
        Self {
            service: crate::compose::service(pool.clone()),
            pool,
            log,
            artifacts: config
                .artifacts_bucket
                .as_ref()
                .map(|name| TenantBucket::new(aws, name)),
            audit_archive: config
                .audit_archive_bucket
                .as_ref()
                .map(|name| TenantBucket::new(aws, name)),
            lag_alert: config.lag_alert,
        }
    }

    /// Runs `job` as of `now` (the export's date, the archive's cut-off).
    pub async fn run(&self, job: Job, now: DateTime<Utc>) -> Result<JobReport, JobError> {
        let run_id = format!("schedule:{}:{}", job.name(), now.to_rfc3339());
        match job {
            Job::LagCheck => lag_check(&self.log, self.lag_alert).await,
            Job::FinetuneExport => {
                let bucket = self
                    .artifacts
                    .as_ref()
                    .ok_or(JobError::NotConfigured("ARTIFACTS_BUCKET"))?;
                let exports =
                    finetune::export_all(&self.log, &self.service, bucket, now, &run_id).await?;
                Ok(JobReport::FinetuneExport { exports })
            }
            Job::AuditArchive => {
                let bucket = self
                    .audit_archive
                    .as_ref()
                    .ok_or(JobError::NotConfigured("AUDIT_ARCHIVE_BUCKET"))?;
                let archives = archive::archive_all(&self.pool, &self.log, bucket, now).await?;
                Ok(JobReport::AuditArchive { archives })
            }
        }
    }
}

/// Every onboarded tenant (from the log, through `log`, a projector pool).
pub(crate) async fn tenants(log: &PgPool) -> Result<Vec<TenantId>, JobError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT aggregate_id FROM events
          WHERE aggregate_type = 'Tenant' AND sequence = 1 ORDER BY aggregate_id",
    )
    .fetch_all(log)
    .await?;
    ids.iter()
        .map(|id| {
            id.parse().map_err(|err| JobError::Decode {
                what: format!("tenant id {id:?}"),
                source: Box::new(err),
            })
        })
        .collect()
}

/// Appends `line` as one line of JSON.
pub(crate) fn push_line<T: Serialize>(body: &mut Vec<u8>, line: &T) -> Result<(), JobError> {
    serde_json::to_writer(&mut *body, line).map_err(|err| JobError::Decode {
        what: "a JSONL line".to_owned(),
        source: Box::new(err),
    })?;
    body.push(b'\n');
    Ok(())
}

/// Logs every subscription's lag (`projection_lag` metric lines; the relay's also as
/// `RelayLagSeconds`) and an error for each lagging more than `alert`.
pub async fn lag_check(pool: &PgPool, alert: Duration) -> Result<JobReport, JobError> {
    let mut conn = pool.acquire().await?;
    let statuses = casebook_projections::status::status(&mut conn).await?;
    let mut max_lag_seconds: f64 = 0.0;
    let mut lagging = Vec::new();
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
        if status.lag_seconds > alert.as_secs_f64() {
            tracing::error!(
                subscription = %status.name,
                lag_seconds = status.lag_seconds,
                lag_events = status.lag_events,
                alert_seconds = alert.as_secs_f64(),
                "subscription lagging beyond the alert threshold"
            );
            lagging.push(status.name.clone());
        }
        max_lag_seconds = max_lag_seconds.max(status.lag_seconds);
    }
    Ok(JobReport::LagCheck {
        subscriptions: statuses.len(),
        max_lag_seconds,
        lagging,
    })
}
