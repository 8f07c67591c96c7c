//! Every read model equals a straightforward fold over the log.

use casebook_domain::diagnosis::DiagnosisStatus;

use crate::oracle::{assert_read_models_match, fold_log};
use crate::support::{assert_all_match, Driver, Stack};
use casebook_projections::projection::ProjectionId;
use casebook_projections::rebuild::{Rebuild, RebuildScope};

#[tokio::test]
async fn every_read_model_equals_a_straightforward_fold_after_random_commands_across_three_tenants()
{
    let stack = Stack::new().await;
    let mut driver = Driver::new(stack.app.clone(), 5);
    driver.onboard(3).await;
    driver.run(200).await;
    driver.record_usage_key(driver.tenants[0]).await;
    driver.record_budget_threshold(driver.tenants[0]).await;
    // The tenant's own models change nothing these read models show.
    driver.model_lifecycle(driver.tenants[0]).await;
    // An erasure of someone with nothing in these read models purges nothing of the others'.
    driver.erase_subject(driver.tenants[0]).await;
    // Small batches: rows are created in one batch and changed in later ones.
    stack.drain_all(7).await;
    driver.run(300).await;
    stack.drain_all(64).await;

    let expected = fold_log(&stack.owner).await;
    assert_eq!(expected.tenants.len(), 3);
    assert!(expected.sessions.len() > 10, "{}", expected.sessions.len());
    assert!(expected.decisions.len() > 5, "{}", expected.decisions.len());
    assert!(!expected.usage.is_empty());
    let statuses = |pred: fn(&DiagnosisStatus) -> bool| {
        expected
            .diagnoses
            .values()
            .filter(|d| pred(&d.status))
            .count()
    };
    assert!(
        statuses(|s| matches!(s, DiagnosisStatus::Proposed)) > 0,
        "something waits for review"
    );
    assert!(statuses(|s| matches!(s, DiagnosisStatus::Resolved { .. })) > 0);
    assert!(statuses(|s| matches!(s, DiagnosisStatus::Failed { .. })) > 0);
    assert_read_models_match(&stack.app, &expected).await;
    assert_all_match(&stack.verify_against_rebuild(&ProjectionId::ALL).await);
}

#[tokio::test]
async fn a_signed_up_practice_its_people_and_its_erasure_are_folded_into_tenants_and_tenant_users_and_rebuild_alike(
) {
    let stack = Stack::new().await;
    let mut driver = Driver::new(stack.app.clone(), 11);
    let tenant = driver.sign_up().await;
    driver.people_work(tenant).await;
    // The practice leaves at last: its people stay on record, the tenant shows as erased.
    driver.erase_tenant(tenant).await;
    stack.drain_all(100).await;

    let mut su = stack.db.superuser().await;
    let people: Vec<(String, String, bool, Option<String>)> = sqlx::query_as(
        "SELECT email, role, enabled, user_id FROM tenant_users WHERE tenant_id = $1 ORDER BY email",
    )
    .bind(*tenant.as_uuid())
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(
        people,
        vec![
            ("founder@practice.test".into(), "admin".into(), true, None),
            (
                "kim@practice.test".into(),
                "auditor".into(),
                true,
                Some("0c2f6c1e-0000-4000-8000-00000000000a".into())
            ),
        ]
    );
    let (plan, onboarded_by, status): (String, String, String) =
        sqlx::query_as("SELECT plan, onboarded_by, status FROM tenants WHERE tenant_id = $1")
            .bind(*tenant.as_uuid())
            .fetch_one(&mut su)
            .await
            .unwrap();
    assert_eq!(
        (plan.as_str(), onboarded_by.as_str(), status.as_str()),
        ("starter", "casebook:system", "erased")
    );

    let rebuild = Rebuild::new(
        stack.maintainer.clone(),
        [ProjectionId::Tenants],
        RebuildScope::All,
    );
    stack
        .build_to_head(&rebuild, &[ProjectionId::Tenants])
        .await;
    assert_all_match(&rebuild.verify().await.unwrap());
}
