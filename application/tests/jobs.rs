//! The scheduled jobs, in memory: given tenants with decisions and audit rows, when a job
//! runs (and runs again), then the files written and the events recorded.

#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use casebook_application::in_memory::InMemoryBucket;
use casebook_application::jobs::{
    AuditArchive, AuditRow, AuditTrail, ChainHead, ChatExample, ExportFiles, FinetuneExport,
    JobError, LagCheck, SubscriptionLag, SubscriptionLags,
};
use casebook_application::ports::BoxError;
use casebook_application::service::ConsultantVerdict;
use casebook_domain::actor::Role;
use casebook_domain::ids::TenantId;
use casebook_domain::policy::ModelTier;
use casebook_domain::tenant::TenantEvent;
use casebook_domain::values::{DiagnosisText, Reason};
use chrono::{DateTime, Days, TimeZone, Utc};
use support::{ctx, Scenario, Tenants};

/// The lines of the file at `key`.
fn lines<T: serde::de::DeserializeOwned>(bucket: &InMemoryBucket, key: &str) -> Vec<T> {
    String::from_utf8(bucket.body(key).expect("a file"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// A consultant's `verdicts`, in order, on proposals to questions numbered from `first`.
async fn decided(scenario: &Scenario, first: usize, verdicts: Vec<ConsultantVerdict>) {
    let consultant = ctx(scenario.tenant, Role::Consultant, "consultant");
    for (n, verdict) in verdicts.into_iter().enumerate() {
        scenario
            .llm
            .then_answer((ModelTier::Triage, 0.9, None, "haiku"));
        let diagnosis = scenario
            .asked(&format!("Question {}?", first + n), vec![])
            .await;
        scenario.diagnose(diagnosis).await.unwrap();
        scenario
            .service
            .decide(&consultant, diagnosis, verdict)
            .await
            .unwrap();
    }
}

fn amend() -> ConsultantVerdict {
    ConsultantVerdict::Amend {
        amended_text: DiagnosisText::parse("Cap it at twelve months.").unwrap(),
        reason: None,
    }
}

fn reject() -> ConsultantVerdict {
    ConsultantVerdict::Reject {
        reason: Reason::parse("Wrong law").unwrap(),
    }
}

/// The export of `scenario`'s tenant, its decisions read from the scenario's log.
fn export(scenario: &Scenario, bucket: &Arc<InMemoryBucket>) -> FinetuneExport {
    let files = ExportFiles::new(
        scenario.service.clone(),
        scenario.stores.decisions.clone(),
        bucket.clone(),
    );
    FinetuneExport::new(Arc::new(Tenants(vec![scenario.tenant])), files)
}

fn example(query: &str, answer: &str) -> ChatExample {
    ChatExample::new(query.to_owned(), answer.to_owned())
}

fn exports_recorded(scenario: &Scenario) -> usize {
    scenario
        .stores
        .tenants
        .events(&scenario.tenant.to_string())
        .iter()
        .filter(|e| matches!(e, TenantEvent::FinetuneExported { .. }))
        .count()
}

fn monday() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 2, 0, 0).unwrap()
}

#[tokio::test]
async fn the_export_writes_approved_and_amended_decisions_and_records_them_once_a_day() {
    let scenario = Scenario::given(vec![]).await;
    decided(
        &scenario,
        0,
        vec![ConsultantVerdict::Approve, amend(), reject()],
    )
    .await;
    let bucket = Arc::new(InMemoryBucket::new("artifacts"));
    let job = export(&scenario, &bucket);

    let exports = job.run(monday(), "run-1").await.unwrap();

    assert_eq!(exports.len(), 1);
    let key = format!("{}/finetune/2026-12-07.jsonl", scenario.tenant);
    assert_eq!(
        (exports[0].key.as_str(), exports[0].examples),
        (key.as_str(), 2)
    );
    assert_eq!(
        lines::<ChatExample>(&bucket, &key),
        [
            example("Question 0?", "haiku says the cap holds."),
            example("Question 1?", "Cap it at twelve months."),
        ]
    );
    assert_eq!(exports_recorded(&scenario), 1);
    // Again the same day: nothing new is written or recorded.
    assert!(job.run(monday(), "run-2").await.unwrap().is_empty());
    assert_eq!(exports_recorded(&scenario), 1);
}

#[tokio::test]
async fn the_next_export_starts_where_the_last_one_ended() {
    let scenario = Scenario::given(vec![]).await;
    decided(&scenario, 0, vec![ConsultantVerdict::Approve]).await;
    let bucket = Arc::new(InMemoryBucket::new("artifacts"));
    let job = export(&scenario, &bucket);
    job.run(monday(), "run-1").await.unwrap();
    decided(&scenario, 1, vec![amend(), reject()]).await;
    let next_week = monday().checked_add_days(Days::new(7)).unwrap();

    let exports = job.run(next_week, "run-2").await.unwrap();

    assert_eq!(exports[0].examples, 1, "only the amendment is new");
    // A week with nothing new writes nothing.
    let after = next_week.checked_add_days(Days::new(7)).unwrap();
    assert!(job.run(after, "run-3").await.unwrap().is_empty());
    assert_eq!(exports_recorded(&scenario), 2);
}

#[tokio::test]
async fn an_export_whose_file_cannot_be_written_records_nothing() {
    let scenario = Scenario::given(vec![]).await;
    decided(
        &scenario,
        0,
        vec![ConsultantVerdict::Approve, amend(), reject()],
    )
    .await;
    let bucket = Arc::new(InMemoryBucket::new("artifacts"));
    bucket.set_down(true);
    let job = export(&scenario, &bucket);

    let err = job.run(monday(), "run-1").await.unwrap_err();

    assert!(matches!(err, JobError::Port(..)), "{err:?}");
    assert_eq!(exports_recorded(&scenario), 0);
    bucket.set_down(false);
    assert_eq!(job.run(monday(), "run-2").await.unwrap().len(), 1);
}

/// A chain in memory: each tenant's rows, and the archives recorded.
#[derive(Default)]
struct Trail {
    rows: BTreeMap<TenantId, Vec<AuditRow>>,
    archived: Mutex<Vec<(ChainHead, String)>>,
    pages: Mutex<usize>,
}

impl Trail {
    fn with_rows(tenant: TenantId, times: &[DateTime<Utc>]) -> Self {
        let rows = times
            .iter()
            .enumerate()
            .map(|(n, at)| AuditRow {
                seq: n as i64 + 1,
                recorded_at: *at,
                hash: format!("{:064x}", n + 1),
                record: serde_json::json!({ "seq": n + 1 }),
            })
            .collect();
        Self {
            rows: BTreeMap::from([(tenant, rows)]),
            ..Self::default()
        }
    }
}

#[async_trait]
impl AuditTrail for Trail {
    async fn last_archived(&self, tenant: TenantId) -> Result<Option<i64>, BoxError> {
        let archived = self.archived.lock().unwrap();
        Ok(archived
            .iter()
            .filter(|(head, _)| head.tenant_id == tenant)
            .map(|(head, _)| head.seq)
            .max())
    }

    async fn rows_after(
        &self,
        tenant: TenantId,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditRow>, BoxError> {
        *self.pages.lock().unwrap() += 1;
        Ok(self.rows[&tenant]
            .iter()
            .filter(|row| row.seq > after_seq)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn record_archive(
        &self,
        head: &ChainHead,
        _bucket: &str,
        key: &str,
    ) -> Result<(), BoxError> {
        self.archived
            .lock()
            .unwrap()
            .push((head.clone(), key.to_owned()));
        Ok(())
    }
}

#[tokio::test]
async fn the_archive_writes_the_rows_before_the_runs_day_ending_with_the_chain_head() {
    let tenant = TenantId::new();
    let yesterday = Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 0).unwrap();
    let today = Utc.with_ymd_and_hms(2026, 12, 7, 1, 0, 0).unwrap();
    let trail = Arc::new(Trail::with_rows(tenant, &[yesterday, yesterday, today]));
    let bucket = Arc::new(InMemoryBucket::new("audit-archive"));
    let archive = AuditArchive::new(
        Arc::new(Tenants(vec![tenant])),
        trail.clone(),
        bucket.clone(),
    );

    let archives = archive.run(monday()).await.unwrap();

    let key = format!("{tenant}/2026/12/06.jsonl");
    assert_eq!(archives[0].key, key);
    let file: Vec<serde_json::Value> = lines(&bucket, &key);
    assert_eq!(file.len(), 3, "two rows and the head");
    assert_eq!(file[1]["seq"], 2);
    let head = &archives[0].head;
    assert_eq!((head.from_seq, head.seq), (1, 2));
    assert_eq!(head.hash, format!("{:064x}", 2));
    assert_eq!(file[2]["chain_head"]["seq"], 2);
    assert_eq!(trail.archived.lock().unwrap()[0].1, key);
    // Nothing new before the cut-off: the next run writes nothing.
    assert!(archive.run(monday()).await.unwrap().is_empty());
    // The next day, the row of today follows on from the head.
    let tuesday = monday().checked_add_days(Days::new(1)).unwrap();
    let next = archive.run(tuesday).await.unwrap();
    assert_eq!((next[0].head.from_seq, next[0].head.seq), (3, 3));
}

#[tokio::test]
async fn a_long_chain_is_read_page_by_page_into_one_file() {
    let tenant = TenantId::new();
    let yesterday = Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 0).unwrap();
    let trail = Arc::new(Trail::with_rows(tenant, &vec![yesterday; 2_500]));
    let bucket = Arc::new(InMemoryBucket::new("audit-archive"));
    let archive = AuditArchive::new(Arc::new(Tenants(vec![tenant])), trail.clone(), bucket);

    let archives = archive.run(monday()).await.unwrap();

    assert_eq!(archives[0].head.seq, 2_500);
    assert_eq!(*trail.pages.lock().unwrap(), 3);
}

struct Lags(Vec<SubscriptionLag>);

#[async_trait]
impl SubscriptionLags for Lags {
    async fn lags(&self) -> Result<Vec<SubscriptionLag>, BoxError> {
        Ok(self.0.clone())
    }
}

#[tokio::test]
async fn the_lag_check_names_the_subscriptions_behind_the_threshold() {
    let lag = |name: &str, seconds: f64| SubscriptionLag {
        name: name.to_owned(),
        lag_events: 3,
        lag_seconds: seconds,
    };
    let check = LagCheck::new(
        Arc::new(Lags(vec![
            lag("relay", 5.0),
            lag("audit", 90.0),
            lag("tenants", 0.0),
        ])),
        Duration::from_secs(60),
    );

    let report = check.run().await.unwrap();

    assert_eq!(report.subscriptions, 3);
    assert_eq!(report.lagging, ["audit"]);
    assert_eq!(report.max_lag_seconds, 90.0);
}
