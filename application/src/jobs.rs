//! The scheduled jobs: what runs on a clock rather than on a request or an event.
//!
//! - [`FinetuneExport`] (weekly): per tenant, the approved and amended decisions after its
//!   last recorded export, as chat examples (`{"messages": [user, assistant]}`, one per line)
//!   to `<tenant>/finetune/<date>.jsonl` in the artifacts bucket, then recorded on the tenant
//!   as `FinetuneExported`.
//! - [`AuditArchive`] (nightly): per tenant, the audit rows after its last archive and
//!   recorded before the start of the run's day, to `<tenant>/<yyyy>/<mm>/<dd>.jsonl` (the
//!   day before the run), ending with the chain's head.
//! - [`LagCheck`] (every five minutes): every subscription's lag, and an alert for each one
//!   behind the threshold.
//!
//! Each job repeats safely. An export's range comes from history: it starts where the
//! tenant's last `FinetuneExported` ended, and the tenant refuses a record that does not (a
//! concurrent run) or a second one the same day. Files are written before they are
//! recorded: a crash between the two leaves a file the next run overwrites with the same
//! rows and more, never a recorded file that doesn't exist.
//!
//! An export file holds nothing of an erased customer (decision 0027): their texts read from
//! the log as redactions, and [`ExportFiles`] leaves such examples out, both when the job
//! writes a file and when an erasure's purge ([`ErasurePurge`](crate::erasure::ErasurePurge))
//! rewrites every file recorded before it.

use std::sync::Arc;
use std::time::Duration;

use casebook_domain::actor::Actor;
use casebook_domain::decision::Verdict;
use casebook_domain::finetune::{FinetuneExport as ExportRecord, LogPosition};
use casebook_domain::ids::{DiagnosisId, TenantId};
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::personal::ERASED;
use casebook_domain::tenant::{TenantCommand, TenantEvent};
use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ports::BoxError;
use crate::service::{RequestContext, Service, ServiceError};

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A port failed (the database, the bucket); the next run retries.
    #[error("{0} failed")]
    Port(&'static str, #[source] BoxError),
    /// A command was refused or failed.
    #[error("command failed for tenant {tenant}")]
    Command {
        /// The tenant.
        tenant: TenantId,
        /// Why.
        #[source]
        source: ServiceError,
    },
    /// A line could not be encoded.
    #[error("cannot encode a JSONL line")]
    Encode(#[source] serde_json::Error),
}

impl JobError {
    /// Whether running again may succeed: a port or the store was unavailable or raced.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            JobError::Port(..)
                | JobError::Command {
                    source: ServiceError::Unavailable(_) | ServiceError::Concurrency,
                    ..
                }
        )
    }
}

fn port(what: &'static str) -> impl FnOnce(BoxError) -> JobError {
    move |err| JobError::Port(what, err)
}

/// Every onboarded tenant.
#[async_trait::async_trait]
pub trait TenantDirectory: Send + Sync {
    /// Their ids, in a stable order.
    async fn tenants(&self) -> Result<Vec<TenantId>, BoxError>;
}

/// A consultant's decision as the log holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedDecision {
    /// The diagnosis decided.
    pub diagnosis_id: DiagnosisId,
    /// What was decided.
    pub verdict: Verdict,
    /// Where the decision sits in the log.
    pub position: LogPosition,
}

/// The tenant's decisions in log order.
#[async_trait::async_trait]
pub trait DecisionLog: Send + Sync {
    /// `tenant`'s decisions after `after` (all of them without), in log order.
    async fn decisions_after(
        &self,
        tenant: TenantId,
        after: Option<LogPosition>,
    ) -> Result<Vec<LoggedDecision>, BoxError>;
}

/// A bucket whose keys start with their tenant's id.
#[async_trait::async_trait]
pub trait TenantObjects: Send + Sync {
    /// The bucket's name.
    fn bucket(&self) -> &str;

    /// The full key of `relative` under `tenant`'s prefix, refused if it could escape it.
    fn key(&self, tenant: TenantId, relative: &str) -> Result<String, BoxError>;

    /// Writes `body` to `key` (under `tenant`'s prefix).
    async fn put(
        &self,
        tenant: TenantId,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), BoxError>;

    /// Deletes the object at `key` (under `tenant`'s prefix). A key that holds nothing is
    /// deleted already, as S3 answers it, so a purge repeats safely.
    async fn delete(&self, tenant: TenantId, key: &str) -> Result<(), BoxError>;
}

/// One row of a tenant's audit chain, as an archive file holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    /// Its number in the chain.
    pub seq: i64,
    /// When the store accepted its event.
    pub recorded_at: DateTime<Utc>,
    /// Its hash, hex.
    pub hash: String,
    /// The whole row, as it is written to the file.
    pub record: serde_json::Value,
}

/// A tenant's audit chain and the archives already written of it.
#[async_trait::async_trait]
pub trait AuditTrail: Send + Sync {
    /// The last row `tenant`'s archives hold.
    async fn last_archived(&self, tenant: TenantId) -> Result<Option<i64>, BoxError>;

    /// Up to `limit` of `tenant`'s rows after `after_seq`, in chain order.
    async fn rows_after(
        &self,
        tenant: TenantId,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditRow>, BoxError>;

    /// Records that `head`'s rows are archived in `bucket` under `key`.
    async fn record_archive(
        &self,
        head: &ChainHead,
        bucket: &str,
        key: &str,
    ) -> Result<(), BoxError>;
}

/// How far one subscription is behind the log.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionLag {
    /// The subscription.
    pub name: String,
    /// Committed events it hasn't applied.
    pub lag_events: i64,
    /// The age of the oldest of them (0 when caught up).
    pub lag_seconds: f64,
}

/// Every subscription's lag.
#[async_trait::async_trait]
pub trait SubscriptionLags: Send + Sync {
    /// Each subscription's lag now.
    async fn lags(&self) -> Result<Vec<SubscriptionLag>, BoxError>;
}

/// What `job` made of each tenant in turn, for the tenants it made something of. The first
/// failure stops the run: the next run starts over, and every job repeats safely.
pub(crate) async fn each_tenant<T, F, Fut>(
    directory: &dyn TenantDirectory,
    mut job: F,
) -> Result<Vec<T>, JobError>
where
    F: FnMut(TenantId) -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, JobError>>,
{
    let tenants = directory
        .tenants()
        .await
        .map_err(port("listing the tenants"))?;
    let mut made = Vec::new();
    for tenant in tenants {
        made.extend(job(tenant).await?);
    }
    Ok(made)
}

/// Appends `line` as one line of JSON.
fn push_line<T: Serialize>(body: &mut Vec<u8>, line: &T) -> Result<(), JobError> {
    serde_json::to_writer(&mut *body, line).map_err(JobError::Encode)?;
    body.push(b'\n');
    Ok(())
}

/// One tenant's export file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantExport {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The object key.
    pub key: String,
    /// Examples written.
    pub examples: u32,
}

/// One line of an export: a chat example in the common fine-tuning shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatExample {
    /// The customer's query, then the approved (or amended) diagnosis.
    pub messages: Vec<ChatMessage>,
}

/// One message of a [`ChatExample`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatExample {
    /// The example of `query` answered `answer`.
    pub fn new(query: String, answer: String) -> Self {
        let message = |role: &str, content| ChatMessage {
            role: role.to_owned(),
            content,
        };
        Self {
            messages: vec![message("user", query), message("assistant", answer)],
        }
    }
}

/// The key of an export on `date`, relative to its tenant's prefix.
pub fn export_path(date: NaiveDate) -> String {
    format!("finetune/{}.jsonl", date.format("%Y-%m-%d"))
}

/// A tenant's fine-tune export files: the chat examples of a range of the log, read as the
/// log reads now, written to the artifacts bucket. The weekly job writes each file once; an
/// erasure's purge writes every recorded one again, so that a file holds no example of a
/// customer erased since.
#[derive(Clone)]
pub struct ExportFiles {
    service: Service,
    decisions: Arc<dyn DecisionLog>,
    artifacts: Arc<dyn TenantObjects>,
}

impl ExportFiles {
    /// Files of the decisions `decisions` holds, with the diagnoses' texts read through
    /// `service`, in `artifacts`.
    pub fn new(
        service: Service,
        decisions: Arc<dyn DecisionLog>,
        artifacts: Arc<dyn TenantObjects>,
    ) -> Self {
        Self {
            service,
            decisions,
            artifacts,
        }
    }

    async fn decisions_after(
        &self,
        tenant: TenantId,
        after: Option<LogPosition>,
    ) -> Result<Vec<LoggedDecision>, JobError> {
        self.decisions
            .decisions_after(tenant, after)
            .await
            .map_err(port("reading the decisions"))
    }

    /// The examples of `decisions`, and the position of the last one made an example of.
    ///
    /// Approved and amended decisions are examples; rejected ones teach nothing, and an
    /// auto-approval was no consultant's judgment. A decision whose query or answer reads as
    /// erased is left out as well: its customer was forgotten, and an example of a redaction
    /// would teach a model to answer `[erased]`.
    async fn examples(
        &self,
        tenant: TenantId,
        decisions: &[LoggedDecision],
    ) -> Result<(Vec<ChatExample>, Option<LogPosition>), JobError> {
        let mut examples = Vec::new();
        let mut last = None;
        for decision in decisions {
            let amended = match &decision.verdict {
                Verdict::Approved => None,
                Verdict::Amended { text, .. } => Some(text.as_str().to_owned()),
                Verdict::Rejected { .. } | Verdict::AutoApproved { .. } => continue,
            };
            let (query, proposal) = self
                .service
                .diagnosis_texts(tenant, decision.diagnosis_id)
                .await
                .map_err(|source| JobError::Command { tenant, source })?;
            let answer = amended.unwrap_or(proposal);
            if query == ERASED || answer == ERASED {
                continue;
            }
            examples.push(ChatExample::new(query, answer));
            last = Some(decision.position);
        }
        Ok((examples, last))
    }

    /// Writes `examples` to `key`, one JSON line each.
    async fn write(
        &self,
        tenant: TenantId,
        key: &str,
        examples: &[ChatExample],
    ) -> Result<(), JobError> {
        let mut body = Vec::new();
        for example in examples {
            push_line(&mut body, example)?;
        }
        self.artifacts
            .put(tenant, key, body, "application/x-ndjson")
            .await
            .map_err(port("writing the export"))
    }

    /// Writes every export recorded on `tenant` again from the log as it reads now: a file
    /// keeps the examples it had but those whose customer was erased since. The log is read
    /// once, from where the first of them starts. Returns the files written.
    ///
    /// The count each `FinetuneExported` recorded stays what the file held when it was first
    /// written: the log is never rewritten, and the file itself is the count that holds.
    pub async fn rewrite_recorded(&self, tenant: TenantId) -> Result<usize, JobError> {
        let exports = self.recorded(tenant).await?;
        self.rewrite(tenant, &exports).await?;
        Ok(exports.len())
    }

    /// Deletes every export recorded on `tenant` (the whole tenant erased: nothing of its
    /// customers may stay, history sealed or not). Returns the files deleted.
    pub async fn delete_recorded(&self, tenant: TenantId) -> Result<usize, JobError> {
        let exports = self.recorded(tenant).await?;
        for export in &exports {
            self.artifacts
                .delete(tenant, &export.key)
                .await
                .map_err(port("deleting an export"))?;
        }
        Ok(exports.len())
    }

    /// The exports recorded on `tenant`, in the log's order.
    async fn recorded(&self, tenant: TenantId) -> Result<Vec<ExportRecord>, JobError> {
        Ok(self
            .service
            .stores()
            .tenants
            .load_events(tenant, &tenant.to_string())
            .await
            .map_err(|err| JobError::Command {
                tenant,
                source: err.into(),
            })?
            .into_iter()
            .filter_map(|envelope| match envelope.payload {
                TenantEvent::FinetuneExported { export } => Some(export),
                _ => None,
            })
            .collect())
    }

    /// Writes each of `exports` (ranges of the log in order) again from the log.
    async fn rewrite(&self, tenant: TenantId, exports: &[ExportRecord]) -> Result<(), JobError> {
        let Some(first) = exports.first() else {
            return Ok(());
        };
        let decisions = self.decisions_after(tenant, first.after).await?;
        for export in exports {
            let in_range: Vec<LoggedDecision> = decisions
                .iter()
                .filter(|decision| {
                    export.after.is_none_or(|after| decision.position > after)
                        && decision.position <= export.up_to
                })
                .cloned()
                .collect();
            let (examples, _) = self.examples(tenant, &in_range).await?;
            // Where it was recorded, in this bucket: the stage's artifacts bucket, whose name
            // the template fixes.
            self.write(tenant, &export.key, &examples).await?;
        }
        Ok(())
    }
}

/// The fine-tune export.
pub struct FinetuneExport {
    tenants: Arc<dyn TenantDirectory>,
    files: ExportFiles,
}

impl FinetuneExport {
    /// Exports the decisions of the tenants `tenants` lists into `files`.
    pub fn new(tenants: Arc<dyn TenantDirectory>, files: ExportFiles) -> Self {
        Self { tenants, files }
    }

    /// Exports every tenant with new approved or amended decisions, as of `now`, the run
    /// named `run_id` (the correlation id of the events it records).
    pub async fn run(
        &self,
        now: DateTime<Utc>,
        run_id: &str,
    ) -> Result<Vec<TenantExport>, JobError> {
        each_tenant(self.tenants.as_ref(), |tenant| {
            self.export(tenant, now, run_id)
        })
        .await
    }

    async fn export(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
        run_id: &str,
    ) -> Result<Option<TenantExport>, JobError> {
        let service = &self.files.service;
        let today = now.date_naive();
        let state = service
            .tenant_state(tenant)
            .await
            .map_err(|source| JobError::Command { tenant, source })?;
        let last = state.last_finetune_export();
        if last.is_some_and(|l| l.exported_on == today) {
            return Ok(None);
        }
        let after = last.map(|l| l.up_to);
        let decisions = self.files.decisions_after(tenant, after).await?;
        let (examples, up_to) = self.files.examples(tenant, &decisions).await?;
        let Some(up_to) = up_to else {
            return Ok(None);
        };
        let key = self
            .files
            .artifacts
            .key(tenant, &export_path(today))
            .map_err(port("the export's key"))?;
        self.files.write(tenant, &key, &examples).await?;
        let examples = u32::try_from(examples.len()).unwrap_or(u32::MAX);
        let actor = Actor::system(tenant);
        let metadata = EventMetadata::new(&actor, run_id, Source::Scheduler);
        let export = ExportRecord {
            bucket: self.files.artifacts.bucket().to_owned(),
            key: key.clone(),
            exported_on: today,
            examples,
            after,
            up_to,
        };
        let command = TenantCommand::RecordFinetuneExport {
            actor: actor.clone(),
            export: export.clone(),
        };
        service
            .administer_tenant(&RequestContext { actor, metadata }, command)
            .await
            .map_err(|source| JobError::Command { tenant, source })?;
        // A customer erased while this file was being written may have been read in the
        // clear, and their purge may have looked for exports before this one was recorded.
        // Recorded before their erasure, the purge rewrites it; recorded after, this run does.
        let erasures_now = service
            .tenant_state(tenant)
            .await
            .map_err(|source| JobError::Command { tenant, source })?
            .erasures();
        if erasures_now > state.erasures() {
            self.files
                .rewrite(tenant, std::slice::from_ref(&export))
                .await?;
        }
        tracing::info!(%tenant, %key, examples, "fine-tune export written");
        Ok(Some(TenantExport {
            tenant_id: tenant,
            key,
            examples,
        }))
    }
}

/// The last line of an archive file: what an auditor compares with the live chain (or the
/// next file's first `prev_hash`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The first row in the file.
    pub from_seq: i64,
    /// The last row in the file: the head of the chain it archives.
    pub seq: i64,
    /// That row's hash, hex.
    pub hash: String,
}

/// One tenant's archive file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantArchive {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The object key.
    pub key: String,
    /// The file's head.
    pub head: ChainHead,
}

/// The audit archive.
pub struct AuditArchive {
    tenants: Arc<dyn TenantDirectory>,
    trail: Arc<dyn AuditTrail>,
    archive: Arc<dyn TenantObjects>,
}

impl AuditArchive {
    /// Rows read per round trip.
    const PAGE: i64 = 1_000;

    /// Archives the chains `trail` holds of the tenants `tenants` lists into `archive`.
    pub fn new(
        tenants: Arc<dyn TenantDirectory>,
        trail: Arc<dyn AuditTrail>,
        archive: Arc<dyn TenantObjects>,
    ) -> Self {
        Self {
            tenants,
            trail,
            archive,
        }
    }

    /// Archives every tenant's new rows recorded before the start of `now`'s day.
    pub async fn run(&self, now: DateTime<Utc>) -> Result<Vec<TenantArchive>, JobError> {
        each_tenant(self.tenants.as_ref(), |tenant| {
            self.archive_tenant(tenant, now)
        })
        .await
    }

    async fn archive_tenant(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
    ) -> Result<Option<TenantArchive>, JobError> {
        let cutoff = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc();
        let day = now
            .date_naive()
            .checked_sub_days(Days::new(1))
            .expect("a day before any run");
        let last = self
            .trail
            .last_archived(tenant)
            .await
            .map_err(port("reading the archives"))?;
        let rows = self.rows_before(tenant, last.unwrap_or(0), cutoff).await?;
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok(None);
        };
        let head = ChainHead {
            tenant_id: tenant,
            from_seq: first.seq,
            seq: last.seq,
            hash: last.hash.clone(),
        };
        let path = format!(
            "{:04}/{:02}/{:02}.jsonl",
            day.year(),
            day.month(),
            day.day()
        );
        let key = self
            .archive
            .key(tenant, &path)
            .map_err(port("the archive's key"))?;
        let mut body = Vec::new();
        for row in &rows {
            push_line(&mut body, &row.record)?;
        }
        push_line(&mut body, &ArchiveHead { chain_head: &head })?;
        self.archive
            .put(tenant, &key, body, "application/x-ndjson")
            .await
            .map_err(port("writing the archive"))?;
        self.trail
            .record_archive(&head, self.archive.bucket(), &key)
            .await
            .map_err(port("recording the archive"))?;
        tracing::info!(%tenant, %key, from_seq = head.from_seq, seq = head.seq, "audit rows archived");
        Ok(Some(TenantArchive {
            tenant_id: tenant,
            key,
            head,
        }))
    }

    /// `tenant`'s rows after `after_seq`, in chain order, up to the first one recorded at or
    /// after `cutoff` (so a file is always a contiguous run of the chain).
    async fn rows_before(
        &self,
        tenant: TenantId,
        mut after_seq: i64,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<AuditRow>, JobError> {
        let mut rows = Vec::new();
        loop {
            let page = self
                .trail
                .rows_after(tenant, after_seq, Self::PAGE)
                .await
                .map_err(port("reading the audit rows"))?;
            let full = page.len() as i64 == Self::PAGE;
            for row in page {
                if row.recorded_at >= cutoff {
                    return Ok(rows);
                }
                after_seq = row.seq;
                rows.push(row);
            }
            if !full {
                return Ok(rows);
            }
        }
    }
}

/// The closing line of an archive file.
#[derive(Serialize)]
struct ArchiveHead<'a> {
    chain_head: &'a ChainHead,
}

/// The lag check's findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LagReport {
    /// Subscriptions checked.
    pub subscriptions: usize,
    /// The largest lag seen, seconds.
    pub max_lag_seconds: f64,
    /// Subscriptions lagging more than the alert threshold.
    pub lagging: Vec<String>,
}

/// The lag check.
pub struct LagCheck {
    lags: Arc<dyn SubscriptionLags>,
    alert: Duration,
}

impl LagCheck {
    /// The relay's subscription, whose lag is also reported as `RelayLagSeconds`: events
    /// not relayed yet are work nobody outside has seen.
    pub const RELAY: &'static str = "relay";

    /// Checks the subscriptions `lags` reports, alerting on those more than `alert` behind.
    pub fn new(lags: Arc<dyn SubscriptionLags>, alert: Duration) -> Self {
        Self { lags, alert }
    }

    /// Reports every subscription's lag and alerts on those behind the threshold.
    pub async fn run(&self) -> Result<LagReport, JobError> {
        let lags = self
            .lags
            .lags()
            .await
            .map_err(port("reading the subscriptions"))?;
        let mut max_lag_seconds: f64 = 0.0;
        let mut lagging = Vec::new();
        for lag in &lags {
            if lag.name == Self::RELAY {
                metrics::histogram!("RelayLagSeconds").record(lag.lag_seconds);
            }
            if lag.lag_seconds > self.alert.as_secs_f64() {
                tracing::error!(
                    subscription = %lag.name,
                    lag_seconds = lag.lag_seconds,
                    lag_events = lag.lag_events,
                    alert_seconds = self.alert.as_secs_f64(),
                    "subscription lagging beyond the alert threshold"
                );
                lagging.push(lag.name.clone());
            }
            max_lag_seconds = max_lag_seconds.max(lag.lag_seconds);
        }
        Ok(LagReport {
            subscriptions: lags.len(),
            max_lag_seconds,
            lagging,
        })
    }
}
