//! The in-process scheduler of `casebook serve`: each job on its cron expression (UTC), the
//! local stand-in for the EventBridge schedules.

use std::future::Future;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::Cron;

use super::{Job, Jobs};

/// A cron expression that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: invalid cron expression {expression:?}")]
pub struct ScheduleError {
    /// The variable it came from.
    pub variable: &'static str,
    /// The expression.
    pub expression: String,
    /// Why.
    #[source]
    pub source: croner::errors::CronError,
}

/// When each job runs.
#[derive(Debug, Clone)]
pub struct Schedule {
    entries: Vec<(Job, Cron)>,
}

impl Schedule {
    /// The default expressions, overridable by `SCHEDULE_LAG_CHECK`,
    /// `SCHEDULE_FINETUNE_EXPORT`, `SCHEDULE_AUDIT_ARCHIVE` and `SCHEDULE_BUDGET_RESUME` as
    /// `lookup` gives them (the process's [`Settings`](crate::settings::Settings) read them).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ScheduleError> {
        let entries = Job::ALL
            .into_iter()
            .map(|job| {
                let (variable, default) = match job {
                    // As the EventBridge schedules in infra/template.yaml.
                    Job::LagCheck => ("SCHEDULE_LAG_CHECK", "*/5 * * * *"),
                    Job::FinetuneExport => ("SCHEDULE_FINETUNE_EXPORT", "0 2 * * SUN"),
                    Job::AuditArchive => ("SCHEDULE_AUDIT_ARCHIVE", "30 3 * * *"),
                    Job::BudgetResume => ("SCHEDULE_BUDGET_RESUME", "10 0 * * *"),
                };
                let expression = lookup(variable)
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| default.to_owned());
                Cron::from_str(&expression)
                    .map(|cron| (job, cron))
                    .map_err(|source| ScheduleError {
                        variable,
                        expression,
                        source,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    /// The next time any job is due strictly after `after`, and every job due then.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<(DateTime<Utc>, Vec<Job>)> {
        let due: Vec<(DateTime<Utc>, Job)> = self
            .entries
            .iter()
            .filter_map(|(job, cron)| {
                cron.find_next_occurrence(&after, false)
                    .ok()
                    .map(|at| (at, *job))
            })
            .collect();
        let first = due.iter().map(|(at, _)| *at).min()?;
        let jobs = due
            .into_iter()
            .filter(|(at, _)| *at == first)
            .map(|(_, job)| job)
            .collect();
        Some((first, jobs))
    }
}

/// Runs `jobs` on `schedule` until `shutdown` completes. A failing job is logged and the
/// schedule goes on (as a failed EventBridge invocation would be retried by the next one).
pub async fn run_scheduler_until(
    jobs: Jobs,
    schedule: Schedule,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut after = Utc::now();
    while let Some((at, due)) = schedule.next_after(after) {
        let wait = (at - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(wait) => {}
        }
        for job in due {
            match jobs.run(job, at).await {
                Ok(report) => tracing::info!(job = job.name(), ?report, "scheduled job done"),
                Err(err) => {
                    tracing::error!(job = job.name(), error = ?err, "scheduled job failed")
                }
            }
        }
        after = at;
    }
}
