//! Scheduled jobs: run by the `scheduler` Lambda with input `{"job": "<name>"}` (EventBridge
//! schedules in AWS), and locally by [`run_scheduler_until`] on cron expressions from the
//! environment.
//!
//! The jobs themselves are the application's ([`casebook_application::jobs`]):
//! - `fine_tune_export` (weekly): each tenant's approved and amended decisions since its last
//!   export, as JSONL chat examples to `s3://<artifacts>/<tenant>/finetune/<date>.jsonl`,
//!   recorded on the tenant as `FinetuneExported` (which the relay puts on the `local-jobs`
//!   queue).
//! - `audit_archive` (nightly): each tenant's audit rows not archived yet, up to the start of
//!   the run's day, as JSONL with the chain head to
//!   `s3://<audit-archive>/<tenant>/<yyyy>/<mm>/<dd>.jsonl`.
//! - `budget_resume` (daily, just after midnight UTC): each tenant's diagnoses deferred while
//!   its monthly token budget was spent, resumed where the budget allows, which on the first
//!   of a month is everywhere ([`BudgetResume`]).
//! - `lag_check` (every five minutes): logs every subscription's lag as a metric line, and an
//!   error for each one lagging more than `LAG_ALERT_SECONDS`.
//!
//! Environment (read with the rest of [`Settings`](crate::settings::Settings)): `ARTIFACTS_BUCKET`, `AUDIT_ARCHIVE_BUCKET`,
//! `LAG_ALERT_SECONDS` (default 60), and for the local scheduler `SCHEDULE_FINETUNE_EXPORT`
//! (default `0 2 * * SUN`), `SCHEDULE_AUDIT_ARCHIVE` (`30 3 * * *`), `SCHEDULE_LAG_CHECK`
//! (`*/5 * * * *`), `SCHEDULE_BUDGET_RESUME` (`10 0 * * *`), all UTC: the same times as the EventBridge schedules in
//! `infra/template.yaml`.

mod config;
mod schedule;

use std::sync::Arc;

use casebook_adapters::aws::s3::TenantBucket;
use casebook_adapters::aws::SdkConfig;
use casebook_adapters::postgres::{begin_for_tenants, Access};
use casebook_application::budget::{BudgetResume, TenantResumed};
use casebook_application::jobs::{
    AuditArchive, AuditRow, AuditTrail, ChainHead, FinetuneExport, LagCheck, TenantArchive,
    TenantExport,
};
use casebook_application::ports::BoxError;
use casebook_domain::ids::TenantId;
use casebook_projections::audit::archives;
use casebook_projections::jobs::{OnboardedTenants, SubscriptionBoard};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

pub use config::{InvalidSetting, JobsConfig};
pub use schedule::{run_scheduler_until, Schedule, ScheduleError};

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
    /// Resumes diagnoses deferred for a budget that allows them now.
    BudgetResume,
}

impl Job {
    /// Every job, in the order the local scheduler lists them.
    pub const ALL: [Job; 4] = [
        Job::LagCheck,
        Job::FinetuneExport,
        Job::AuditArchive,
        Job::BudgetResume,
    ];

    /// The name in the job's input (`lag_check`, `fine_tune_export`, `audit_archive`).
    pub fn name(self) -> &'static str {
        match self {
            Job::LagCheck => "lag_check",
            Job::FinetuneExport => "fine_tune_export",
            Job::AuditArchive => "audit_archive",
            Job::BudgetResume => "budget_resume",
        }
    }
}

/// What a job did: the scheduler function's answer.
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
        exports: Vec<TenantExport>,
    },
    /// The audit archive: one entry per tenant that got a file.
    AuditArchive {
        /// The files written.
        archives: Vec<TenantArchive>,
    },
    /// The budget job: one entry per tenant whose deferred diagnoses were resumed.
    BudgetResume {
        /// The tenants and how many diagnoses each.
        resumed: Vec<TenantResumed>,
    },
}

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job failed.
    #[error(transparent)]
    Job(#[from] casebook_application::jobs::JobError),
    /// The job needs a setting that is not configured.
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
}

/// The jobs over the real adapters: the log and the subscriptions through a projector pool,
/// a tenant's audit rows and archives through the request path's role scoped to it, and the
/// buckets the configuration names.
#[derive(Clone)]
pub struct Jobs {
    lag_check: Arc<LagCheck>,
    finetune_export: Option<Arc<FinetuneExport>>,
    audit_archive: Option<Arc<AuditArchive>>,
    budget_resume: Arc<BudgetResume>,
}

impl Jobs {
    /// Jobs over `pool` (a [`DbRole::App`](casebook_adapters::postgres::DbRole) pool) and
    /// `log` (a projector pool, reading every tenant's events and the subscriptions) with
    /// buckets from `config` (clients from `aws`).
    pub fn new(pool: PgPool, log: PgPool, aws: &SdkConfig, config: &JobsConfig) -> Self {
        let tenants = Arc::new(OnboardedTenants::new(log.clone()));
        Self {
            budget_resume: Arc::new(BudgetResume::new(
                tenants.clone(),
                crate::compose::resumption(pool.clone()),
            )),
            lag_check: Arc::new(LagCheck::new(
                Arc::new(SubscriptionBoard::new(log.clone())),
                config.lag_alert,
            )),
            finetune_export: config.artifacts_bucket.as_ref().map(|name| {
                Arc::new(FinetuneExport::new(
                    tenants.clone(),
                    crate::compose::export_files(pool.clone(), log, TenantBucket::new(aws, name)),
                ))
            }),
            audit_archive: config.audit_archive_bucket.as_ref().map(|name| {
                Arc::new(AuditArchive::new(
                    tenants.clone(),
                    Arc::new(ScopedAuditTrail { pool }),
                    Arc::new(TenantBucket::new(aws, name)),
                ))
            }),
        }
    }

    /// Runs `job` as of `now` (the export's date, the archive's cut-off).
    pub async fn run(&self, job: Job, now: DateTime<Utc>) -> Result<JobReport, JobError> {
        let run_id = format!("schedule:{}:{}", job.name(), now.to_rfc3339());
        Ok(match job {
            Job::LagCheck => {
                let report = self.lag_check.run().await?;
                JobReport::LagCheck {
                    subscriptions: report.subscriptions,
                    max_lag_seconds: report.max_lag_seconds,
                    lagging: report.lagging,
                }
            }
            Job::FinetuneExport => JobReport::FinetuneExport {
                exports: self
                    .finetune_export
                    .as_ref()
                    .ok_or(JobError::NotConfigured("ARTIFACTS_BUCKET"))?
                    .run(now, &run_id)
                    .await?,
            },
            Job::AuditArchive => JobReport::AuditArchive {
                archives: self
                    .audit_archive
                    .as_ref()
                    .ok_or(JobError::NotConfigured("AUDIT_ARCHIVE_BUCKET"))?
                    .run(now)
                    .await?,
            },
            Job::BudgetResume => JobReport::BudgetResume {
                resumed: self.budget_resume.run(now, &run_id).await?,
            },
        })
    }
}

/// The audit chain and its archives, each tenant's read and written in transactions of the
/// request path's role scoped to it.
struct ScopedAuditTrail {
    pool: PgPool,
}

#[async_trait::async_trait]
impl AuditTrail for ScopedAuditTrail {
    async fn last_archived(&self, tenant: TenantId) -> Result<Option<i64>, BoxError> {
        let mut tx = begin_for_tenants(&self.pool, Access::ReadOnly, &[*tenant.as_uuid()]).await?;
        let last = archives::last_archived(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(last)
    }

    async fn rows_after(
        &self,
        tenant: TenantId,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditRow>, BoxError> {
        let mut tx = begin_for_tenants(&self.pool, Access::ReadOnly, &[*tenant.as_uuid()]).await?;
        let rows = archives::rows_after(&mut tx, tenant, after_seq, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn record_archive(
        &self,
        head: &ChainHead,
        bucket: &str,
        key: &str,
    ) -> Result<(), BoxError> {
        let scope = [*head.tenant_id.as_uuid()];
        let mut tx = begin_for_tenants(&self.pool, Access::ReadWrite, &scope).await?;
        archives::record_archive(&mut tx, head, bucket, key).await?;
        tx.commit().await?;
        Ok(())
    }
}
