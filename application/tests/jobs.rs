//! The scheduled jobs, in memory: given tenants with decisions and audit rows, when a job
//! runs (and runs again), then the files written and the events recorded.

#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use casebook_application::jobs::{
    AuditArchive, AuditRow, AuditTrail, ChainHead, ChatExample, DecisionLog, FinetuneExport,
    JobError, LagCheck, LoggedDecision, SubscriptionLag, SubscriptionLags, TenantDirectory,
    TenantObjects,
};
use casebook_application::ports::BoxError;
use casebook_application::service::ConsultantVerdict;
use casebook_domain::actor::Role;
use casebook_domain::decision::DecisionEvent;
use casebook_domain::finetune::LogPosition;
use casebook_domain::ids::{DecisionId, DiagnosisId, TenantId};
use casebook_domain::policy::ModelTier;
use casebook_domain::tenant::TenantEvent;
use casebook_domain::values::{DiagnosisText, Reason};
use chrono::{DateTime, Days, TimeZone, Utc};
use support::{ctx, Scenario};

struct Tenants(Vec<TenantId>);

#[async_trait]
impl TenantDirectory for Tenants {
    async fn tenants(&self) -> Result<Vec<TenantId>, BoxError> {
        Ok(self.0.clone())
    }
}

/// The decisions of the scenario's store, numbered in the order they were made.
struct Decisions(Vec<(TenantId, LoggedDecision)>);

#[async_trait]
impl DecisionLog for Decisions {
    async fn decisions_after(
        &self,
        tenant: TenantId,
        after: Option<LogPosition>,
    ) -> Result<Vec<LoggedDecision>, BoxError> {
        let after = after.map_or(0, |p| p.global_position);
        Ok(self
            .0
            .iter()
            .filter(|(owner, d)| *owner == tenant && d.position.global_position > after)
            .map(|(_, d)| d.clone())
            .collect())
    }
}

/// A bucket in memory: bodies by key, and an outage on demand.
#[derive(Default)]
struct Objects {
    bodies: Mutex<BTreeMap<String, Vec<u8>>>,
    down: Mutex<bool>,
}

impl Objects {
    fn lines<T: serde::de::DeserializeOwned>(&self, key: &str) -> Vec<T> {
        let bodies = self.bodies.lock().unwrap();
        String::from_utf8(bodies[key].clone())
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

#[async_trait]
impl TenantObjects for Objects {
    fn bucket(&self) -> &str {
        "artifacts"
    }

    fn key(&self, tenant: TenantId, relative: &str) -> Result<String, BoxError> {
        Ok(format!("{tenant}/{relative}"))
    }

    async fn put(
        &self,
        tenant: TenantId,
        key: &str,
        body: Vec<u8>,
        _content_type: &str,
    ) -> Result<(), BoxError> {
        assert!(key.starts_with(&tenant.to_string()), "under its tenant");
        if *self.down.lock().unwrap() {
            return Err("the bucket is down".into());
        }
        self.bodies.lock().unwrap().insert(key.to_owned(), body);
        Ok(())
    }
}

/// A consultant's verdicts on three proposals: approved, amended, rejected.
async fn decided(scenario: &Scenario) -> Decisions {
    let consultant = ctx(scenario.tenant, Role::Consultant, "consultant");
    let verdicts = [
        ConsultantVerdict::Approve,
        ConsultantVerdict::Amend {
            amended_text: DiagnosisText::parse("Cap it at twelve months.").unwrap(),
            reason: None,
        },
        ConsultantVerdict::Reject {
            reason: Reason::parse("Wrong law").unwrap(),
        },
    ];
    let mut decisions = Vec::new();
    for (n, verdict) in verdicts.into_iter().enumerate() {
        scenario
            .llm
            .then_answer((ModelTier::Triage, 0.9, None, "haiku"));
        let diagnosis = scenario.asked(&format!("Question {n}?"), vec![]).await;
        scenario.diagnose(diagnosis).await.unwrap();
        scenario
            .service
            .decide(&consultant, diagnosis, verdict)
            .await
            .unwrap();
        decisions.push((scenario.tenant, logged(scenario, diagnosis, n as i64 + 1)));
    }
    Decisions(decisions)
}

fn logged(scenario: &Scenario, diagnosis: DiagnosisId, position: i64) -> LoggedDecision {
    let events = scenario
        .stores
        .decisions
        .events(&DecisionId::for_diagnosis(diagnosis).to_string());
    let DecisionEvent::DecisionMade { verdict, .. } = events[0].clone();
    LoggedDecision {
        diagnosis_id: diagnosis,
        verdict,
        position: LogPosition {
            transaction_id: position,
            global_position: position,
        },
    }
}

/// The export of `scenario`'s tenant, its decisions read from `decisions`.
fn export(scenario: &Scenario, decisions: Decisions, objects: &Arc<Objects>) -> FinetuneExport {
    FinetuneExport::new(
        scenario.service.clone(),
        Arc::new(Tenants(vec![scenario.tenant])),
        Arc::new(decisions),
        objects.clone(),
    )
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
    let decisions = decided(&scenario).await;
    let objects = Arc::new(Objects::default());
    let job = export(&scenario, decisions, &objects);

    let exports = job.run(monday(), "run-1").await.unwrap();

    assert_eq!(exports.len(), 1);
    let key = format!("{}/finetune/2026-12-07.jsonl", scenario.tenant);
    assert_eq!(
        (exports[0].key.as_str(), exports[0].examples),
        (key.as_str(), 2)
    );
    assert_eq!(
        objects.lines::<ChatExample>(&key),
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
    let Decisions(mut decisions) = decided(&scenario).await;
    let objects = Arc::new(Objects::default());
    let later = decisions.split_off(1);
    let first = export(&scenario, Decisions(decisions.clone()), &objects);
    first.run(monday(), "run-1").await.unwrap();
    decisions.extend(later);
    let next_week = monday().checked_add_days(Days::new(7)).unwrap();
    let second = export(&scenario, Decisions(decisions), &objects);

    let exports = second.run(next_week, "run-2").await.unwrap();

    assert_eq!(exports[0].examples, 1, "only the amendment is new");
    // A week with nothing new writes nothing.
    let after = next_week.checked_add_days(Days::new(7)).unwrap();
    assert!(second.run(after, "run-3").await.unwrap().is_empty());
    assert_eq!(exports_recorded(&scenario), 2);
}

#[tokio::test]
async fn an_export_whose_file_cannot_be_written_records_nothing() {
    let scenario = Scenario::given(vec![]).await;
    let decisions = decided(&scenario).await;
    let objects = Arc::new(Objects::default());
    *objects.down.lock().unwrap() = true;
    let job = export(&scenario, decisions, &objects);

    let err = job.run(monday(), "run-1").await.unwrap_err();

    assert!(matches!(err, JobError::Port(..)), "{err:?}");
    assert_eq!(exports_recorded(&scenario), 0);
    *objects.down.lock().unwrap() = false;
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
    let objects = Arc::new(Objects::default());
    let archive = AuditArchive::new(
        Arc::new(Tenants(vec![tenant])),
        trail.clone(),
        objects.clone(),
    );

    let archives = archive.run(monday()).await.unwrap();

    let key = format!("{tenant}/2026/12/06.jsonl");
    assert_eq!(archives[0].key, key);
    let lines: Vec<serde_json::Value> = objects.lines(&key);
    assert_eq!(lines.len(), 3, "two rows and the head");
    assert_eq!(lines[1]["seq"], 2);
    let head = &archives[0].head;
    assert_eq!((head.from_seq, head.seq), (1, 2));
    assert_eq!(head.hash, format!("{:064x}", 2));
    assert_eq!(lines[2]["chain_head"]["seq"], 2);
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
    let objects = Arc::new(Objects::default());
    let archive = AuditArchive::new(Arc::new(Tenants(vec![tenant])), trail.clone(), objects);

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
