//! Scheduled jobs: the input contract and the lag check.

use casebook_adapters::postgres::DbRole;
use casebook_handlers::jobs::{run_job, Job, JobRequest};
use casebook_tests::TestDb;

#[test]
fn only_built_jobs_are_accepted() {
    let parse = |s: &str| serde_json::from_str::<JobRequest>(s).map(|r| r.job);
    assert_eq!(parse(r#"{"job":"lag_check"}"#).unwrap(), Job::LagCheck);
    assert!(
        parse(r#"{"job":"finetune_export"}"#).is_err(),
        "not built yet"
    );
    assert!(parse(r#"{"job":"nope"}"#).is_err());
}

#[tokio::test]
async fn the_lag_check_reports() {
    let db = TestDb::new().await;
    let pool = db.pool(DbRole::App, 2).await;
    let report = run_job(&pool, Job::LagCheck).await.expect("lag check");
    assert_eq!(report.job, Job::LagCheck);
    assert!(report.max_lag_seconds >= 0.0);
}
