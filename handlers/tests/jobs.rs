//! Scheduled jobs against Postgres and the AWS emulator: the weekly fine-tune export per
//! tenant under its own prefix, the nightly audit archive whose head matches the audit
//! table, the lag check's alert, the local schedule.

mod support;

use std::sync::Arc;
use std::time::Duration;

use casebook_adapters::aws::s3::TenantBucket;
use casebook_adapters::aws::setup::{ensure_resources, ResourceNames, Resources};
use casebook_adapters::aws::{shared_config, SdkConfig};
use casebook_adapters::postgres::DbRole;
use casebook_application::jobs::{export_path, ChainHead, ChatExample};
use casebook_application::service::ConsultantVerdict;
use casebook_domain::actor::Role;
use casebook_domain::ids::TenantId;
use casebook_domain::values::{DiagnosisText, Reason};
use casebook_handlers::jobs::{Job, JobReport, JobRequest, Jobs, JobsConfig, Schedule};
use casebook_projections::audit::chain::{AuditRecord, ChainHash};
use casebook_projections::log::{Checkpoint, LogReader, Scope};
use casebook_tests::TestDb;
use chrono::{Days, TimeZone, Utc};
use sqlx::{PgPool, Row};
use support::scenario::{ask, ctx, onboard, propose, FixedEmbedder};

/// One line of an archive file: a row, or the closing head.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ArchiveLine {
    Head { chain_head: ChainHead },
    Record(Box<AuditRecord>),
}

/// The key of `tenant`'s export on `date`.
fn export_key(tenant: TenantId, date: chrono::NaiveDate) -> String {
    TenantBucket::tenant_key(tenant, &export_path(date)).unwrap()
}

struct Env {
    db: TestDb,
    app: PgPool,
    log: PgPool,
    aws: SdkConfig,
    resources: Resources,
    jobs: Jobs,
}

async fn env() -> Env {
    let db = TestDb::new().await;
    let app = db.pool(DbRole::App, 8).await;
    let aws = shared_config().await;
    let prefix = format!("jobs-{}", uuid::Uuid::new_v4().simple());
    let resources = ensure_resources(&aws, &ResourceNames::with_prefix(&prefix))
        .await
        .expect("queues and buckets");
    let config = JobsConfig {
        artifacts_bucket: Some(resources.artifacts_bucket.clone()),
        audit_archive_bucket: Some(resources.audit_archive_bucket.clone()),
        lag_alert: Duration::from_secs(60),
    };
    let log = db.pool(DbRole::Projector, 2).await;
    let jobs = Jobs::new(app.clone(), log.clone(), &aws, &config);
    Env {
        db,
        app,
        log,
        aws,
        resources,
        jobs,
    }
}

/// A tenant whose consultant approved one proposal, amended one and rejected one; every
/// question names the tenant, so a line of another tenant's file would show.
async fn tenant_with_decisions(env: &Env, name: &str) -> TenantId {
    let service = casebook_handlers::compose::service(env.app.clone());
    let tenant = onboard(&service, name).await;
    let customer = ctx(tenant, Role::Customer, &format!("{name}-customer"));
    let consultant = ctx(tenant, Role::Consultant, &format!("{name}-consultant"));
    let verdicts = [
        ConsultantVerdict::Approve,
        ConsultantVerdict::Amend {
            amended_text: DiagnosisText::parse(format!("{name}: cap it at 12 months")).unwrap(),
            reason: None,
        },
        ConsultantVerdict::Reject {
            reason: Reason::parse("off topic").unwrap(),
        },
    ];
    for (i, verdict) in verdicts.into_iter().enumerate() {
        let (_, diagnosis) = ask(&service, &customer, &format!("{name}: question {i}")).await;
        propose(&env.app, tenant, diagnosis).await;
        service
            .decide(&consultant, diagnosis, verdict)
            .await
            .expect("decided");
    }
    tenant
}

/// Waits until every event of the database is readable in the gap-safe order (other tests'
/// open transactions hold the horizon back for a moment).
async fn log_settled(env: &Env) {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&env.log)
        .await
        .unwrap();
    let reader = LogReader::new(env.log.clone());
    for _ in 0..300 {
        let visible = reader
            .read_page(Checkpoint::START, Scope::All, 100_000)
            .await
            .unwrap()
            .len();
        if visible as i64 >= total {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the log never settled");
}

async fn lines<T: serde::de::DeserializeOwned>(
    env: &Env,
    bucket: &str,
    tenant: TenantId,
    key: &str,
) -> Vec<T> {
    let body = TenantBucket::new(&env.aws, bucket)
        .get(tenant, key)
        .await
        .expect("file written");
    String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn example(query: &str, answer: &str) -> ChatExample {
    serde_json::from_value(serde_json::json!({
        "messages": [
            {"role": "user", "content": query},
            {"role": "assistant", "content": answer},
        ]
    }))
    .unwrap()
}

#[tokio::test]
async fn the_weekly_export_writes_each_tenants_decisions_under_its_own_prefix_once() {
    let env = env().await;
    let acme = tenant_with_decisions(&env, "acme").await;
    let globex = tenant_with_decisions(&env, "globex").await;
    log_settled(&env).await;
    let now = Utc::now();

    let JobReport::FinetuneExport { exports } =
        env.jobs.run(Job::FinetuneExport, now).await.unwrap()
    else {
        panic!("another report");
    };
    assert_eq!(exports.len(), 2, "{exports:?}");
    for (tenant, name) in [(acme, "acme"), (globex, "globex")] {
        let key = export_key(tenant, now.date_naive());
        assert!(key.starts_with(&format!("{tenant}/finetune/")));
        let export = exports.iter().find(|e| e.tenant_id == tenant).unwrap();
        assert_eq!((export.key.as_str(), export.examples), (key.as_str(), 2));
        let file: Vec<ChatExample> =
            lines(&env, &env.resources.artifacts_bucket, tenant, &key).await;
        // Approved: the proposal; amended: the consultant's text; rejected: left out.
        assert_eq!(
            file,
            vec![
                example(&format!("{name}: question 0"), "The cap is enforceable."),
                example(
                    &format!("{name}: question 1"),
                    &format!("{name}: cap it at 12 months")
                ),
            ]
        );
        // The other tenant's file is out of reach with this tenant's id.
        let other = if tenant == acme { globex } else { acme };
        let foreign = export_key(other, now.date_naive());
        assert!(TenantBucket::new(&env.aws, &env.resources.artifacts_bucket)
            .get(tenant, &foreign)
            .await
            .is_err());
    }

    // Recorded on each tenant, by the scheduler, with where the file is.
    let recorded = sqlx::query(
        "SELECT aggregate_id, payload, metadata FROM events
          WHERE event_type = 'FinetuneExported' ORDER BY aggregate_id",
    )
    .fetch_all(&env.log)
    .await
    .unwrap();
    assert_eq!(recorded.len(), 2);
    for row in &recorded {
        let payload: serde_json::Value = row.get("payload");
        let metadata: serde_json::Value = row.get("metadata");
        let tenant: TenantId = row.get::<String, _>("aggregate_id").parse().unwrap();
        assert_eq!(
            payload["export"]["key"],
            export_key(tenant, now.date_naive())
        );
        assert_eq!(payload["export"]["bucket"], env.resources.artifacts_bucket);
        assert_eq!(payload["export"]["examples"], 2);
        assert!(payload["export"]["after"].is_null());
        assert_eq!(metadata["source"], "scheduler");
    }

    // Run again the same day, and the next week with nothing new: no file, no event.
    log_settled(&env).await;
    for when in [now, now + Days::new(7)] {
        let report = env.jobs.run(Job::FinetuneExport, when).await.unwrap();
        assert_eq!(report, JobReport::FinetuneExport { exports: vec![] });
    }

    // New decisions the week after: only they are exported, from where the last export ended.
    let service = casebook_handlers::compose::service(env.app.clone());
    let customer = ctx(acme, Role::Customer, "acme-customer");
    let consultant = ctx(acme, Role::Consultant, "acme-consultant");
    let (_, diagnosis) = ask(&service, &customer, "acme: question 3").await;
    propose(&env.app, acme, diagnosis).await;
    service
        .decide(&consultant, diagnosis, ConsultantVerdict::Approve)
        .await
        .unwrap();
    log_settled(&env).await;
    let next_week = now + Days::new(7);
    let JobReport::FinetuneExport { exports } =
        env.jobs.run(Job::FinetuneExport, next_week).await.unwrap()
    else {
        panic!("another report");
    };
    assert_eq!(exports.len(), 1);
    assert_eq!((exports[0].tenant_id, exports[0].examples), (acme, 1));
    let file: Vec<ChatExample> =
        lines(&env, &env.resources.artifacts_bucket, acme, &exports[0].key).await;
    assert_eq!(
        file,
        vec![example("acme: question 3", "The cap is enforceable.")]
    );
    drop(env.db);
}

/// Runs every projection (and the reactions) until the audit table holds a row per event.
async fn audited(env: &Env) {
    let projector = env.db.pool(DbRole::Projector, 12).await;
    let service = casebook_handlers::compose::service(env.app.clone());
    for _ in 0..300 {
        casebook_handlers::compose::projector(
            projector.clone(),
            service.clone(),
            Arc::new(FixedEmbedder),
            None,
        )
        .drain(Duration::from_secs(10))
        .await
        .expect("projections");
        let mut admin = env.db.superuser().await;
        let (events, rows): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM audit_log)",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if events == rows {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the audit table never caught up");
}

#[tokio::test]
async fn the_nightly_archive_holds_each_tenants_new_rows_and_its_head_matches_the_audit_table() {
    let env = env().await;
    let acme = tenant_with_decisions(&env, "acme").await;
    let globex = tenant_with_decisions(&env, "globex").await;
    audited(&env).await;

    // Tonight's run (rows recorded today are archived by tomorrow's run).
    let today = Utc::now();
    let report = env.jobs.run(Job::AuditArchive, today).await.unwrap();
    assert_eq!(report, JobReport::AuditArchive { archives: vec![] });

    let tomorrow = today + Days::new(1);
    let JobReport::AuditArchive { archives } =
        env.jobs.run(Job::AuditArchive, tomorrow).await.unwrap()
    else {
        panic!("another report");
    };
    assert_eq!(archives.len(), 2);
    let mut admin = env.db.superuser().await;
    for tenant in [acme, globex] {
        let archive = archives.iter().find(|a| a.tenant_id == tenant).unwrap();
        assert_eq!(
            archive.key,
            format!("{tenant}/{}.jsonl", today.format("%Y/%m/%d"))
        );
        let mut file: Vec<ArchiveLine> = lines(
            &env,
            &env.resources.audit_archive_bucket,
            tenant,
            &archive.key,
        )
        .await;
        let Some(ArchiveLine::Head { chain_head }) = file.pop() else {
            panic!("the file ends with its head");
        };
        let records: Vec<AuditRecord> = file
            .into_iter()
            .map(|line| match line {
                ArchiveLine::Record(record) => *record,
                ArchiveLine::Head { .. } => panic!("one head, at the end"),
            })
            .collect();
        // The whole chain so far, only this tenant's, linked and intact.
        let mut prev = ChainHash::ZERO;
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record.tenant_id, tenant);
            assert_eq!(record.seq, i as i64 + 1);
            assert_eq!(record.prev_hash, prev);
            assert_eq!(record.compute_hash(), record.hash);
            prev = record.hash;
        }
        let row = sqlx::query(
            "SELECT count(*) OVER () AS rows, seq, hash FROM audit_log
              WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(tenant.as_uuid())
        .fetch_one(&mut admin)
        .await
        .unwrap();
        let table_head = ChainHead {
            tenant_id: tenant,
            from_seq: 1,
            seq: row.get("seq"),
            hash: ChainHash(row.get::<Vec<u8>, _>("hash").try_into().unwrap()).to_string(),
        };
        assert_eq!(chain_head, table_head);
        assert_eq!(archive.head, table_head);
        assert_eq!(records.len() as i64, row.get::<i64, _>("rows"));
        assert_eq!(prev.to_string(), table_head.hash);
    }

    // Nothing new: the next run writes nothing.
    let report = env.jobs.run(Job::AuditArchive, tomorrow).await.unwrap();
    assert_eq!(report, JobReport::AuditArchive { archives: vec![] });
}

#[tokio::test]
async fn the_lag_check_reports_and_alerts_on_subscriptions_behind_the_threshold() {
    let env = env().await;
    let report = env.jobs.run(Job::LagCheck, Utc::now()).await.unwrap();
    assert!(matches!(
        report,
        JobReport::LagCheck { ref lagging, .. } if lagging.is_empty()
    ));

    // A subscription that never ran, behind a committed event, with no tolerance.
    let service = casebook_handlers::compose::service(env.app.clone());
    onboard(&service, "lagging").await;
    let mut admin = env.db.superuser().await;
    sqlx::query("INSERT INTO subscriptions (name) VALUES ('stuck')")
        .execute(&mut admin)
        .await
        .unwrap();
    let strict = Jobs::new(
        env.app.clone(),
        env.log.clone(),
        &env.aws,
        &JobsConfig {
            lag_alert: Duration::ZERO,
            ..JobsConfig::from_lookup(|_| None).unwrap()
        },
    );
    let mut lagging = Vec::new();
    for _ in 0..300 {
        if let JobReport::LagCheck { lagging: l, .. } =
            strict.run(Job::LagCheck, Utc::now()).await.unwrap()
        {
            lagging = l;
        }
        if !lagging.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(lagging, vec!["stuck".to_owned()]);
}

#[test]
fn every_built_job_is_accepted_by_name_and_unknown_ones_are_refused() {
    let parse = |s: &str| serde_json::from_str::<JobRequest>(s).map(|r| r.job);
    for job in Job::ALL {
        assert_eq!(
            parse(&format!(r#"{{"job":"{}"}}"#, job.name())).unwrap(),
            job
        );
    }
    assert!(parse(r#"{"job":"nope"}"#).is_err());
}

#[test]
fn settings_have_defaults_and_bad_values_are_refused() {
    let config = JobsConfig::from_lookup(|_| None).unwrap();
    assert_eq!(config.lag_alert, Duration::from_secs(60));
    assert_eq!(config.artifacts_bucket, None);
    assert!(
        JobsConfig::from_lookup(|n| (n == "LAG_ALERT_SECONDS").then(|| "soon".into())).is_err()
    );
    assert!(Schedule::from_lookup(
        |n| (n == "SCHEDULE_AUDIT_ARCHIVE").then(|| "at midnight".into())
    )
    .is_err());
}

#[test]
fn the_local_schedule_runs_each_job_on_its_cron_expression() {
    let schedule = Schedule::from_lookup(|_| None).unwrap();
    let at = |d, h, m| Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap();
    // Saturday 2026-11-21: the lag check every five minutes, the archive at 03:30 daily,
    // the export at 02:00 on Sundays (UTC, as the EventBridge schedules).
    let start = Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 30).unwrap();
    assert_eq!(
        schedule.next_after(start).unwrap(),
        (at(21, 0, 5), vec![Job::LagCheck])
    );
    assert_eq!(
        schedule.next_after(at(21, 3, 27)).unwrap(),
        (at(21, 3, 30), vec![Job::LagCheck, Job::AuditArchive])
    );
    assert_eq!(
        schedule.next_after(at(22, 1, 58)).unwrap(),
        (at(22, 2, 0), vec![Job::LagCheck, Job::FinetuneExport])
    );

    // The budget job daily at 00:10, so a month's first run is just after it turns.
    assert_eq!(
        schedule.next_after(at(21, 0, 7)).unwrap(),
        (at(21, 0, 10), vec![Job::LagCheck, Job::BudgetResume])
    );

    let custom =
        Schedule::from_lookup(|n| (n == "SCHEDULE_LAG_CHECK").then(|| "0 0 1 1 *".into())).unwrap();
    assert_eq!(
        custom.next_after(start).unwrap(),
        (at(21, 0, 10), vec![Job::BudgetResume])
    );
}
