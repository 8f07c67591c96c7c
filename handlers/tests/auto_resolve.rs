//! The auto-resolve flow end to end: a proposal at or above the tenant's threshold is
//! approved by the system without review, resolves its diagnosis, and the audit table says
//! so; below the threshold it waits for a consultant.

mod support;

use std::sync::Arc;
use std::time::Duration;

use casebook_adapters::postgres::DbRole;
use casebook_domain::actor::Role;
use casebook_domain::ids::{DiagnosisId, TenantId};
use casebook_domain::tenant::TenantCommand;
use casebook_domain::values::Confidence;
use casebook_tests::TestDb;
use sqlx::{PgPool, Row};
use support::scenario::{ask, ctx, onboard, propose, FixedEmbedder};

/// A tenant with `threshold` whose customer asked one question, proposed at confidence 0.6
/// (the counting model's answer).
async fn proposed(app: &PgPool, name: &str, threshold: f64) -> (TenantId, DiagnosisId) {
    let service = casebook_handlers::compose::service(app.clone());
    let tenant = onboard(&service, name).await;
    let admin = ctx(tenant, Role::Admin, &format!("{name}-admin"));
    service
        .administer_tenant(
            &admin,
            TenantCommand::SetAutoResolveThreshold {
                actor: admin.actor.clone(),
                threshold: Some(Confidence::new(threshold).unwrap()),
            },
        )
        .await
        .expect("threshold set");
    let customer = ctx(tenant, Role::Customer, &format!("{name}-customer"));
    let (_, diagnosis) = ask(&service, &customer, "Is the indemnity cap enforceable?").await;
    propose(app, tenant, diagnosis).await;
    (tenant, diagnosis)
}

#[tokio::test]
async fn a_proposal_at_the_threshold_is_approved_without_review_and_audited_so() {
    let db = TestDb::new().await;
    let app = db.pool(DbRole::App, 8).await;
    let projector = db.pool(DbRole::Projector, 12).await;
    let (auto, auto_diagnosis) = proposed(&app, "confident", 0.6).await;
    let (manual, manual_diagnosis) = proposed(&app, "careful", 0.9).await;

    // Run every projection and reaction (as `casebook serve` does) until the auto-approved
    // diagnosis is resolved in the audit table and every event has its audit row.
    let mut admin = db.superuser().await;
    let mut settled = false;
    for _ in 0..300 {
        casebook_handlers::compose::projector(
            projector.clone(),
            casebook_handlers::compose::service(app.clone()),
            Arc::new(FixedEmbedder),
            None,
        )
        .drain(Duration::from_secs(10))
        .await
        .expect("projections");
        let (events, rows, resolved): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM audit_log),
                    (SELECT count(*) FROM audit_log WHERE action = 'DiagnosisResolved')",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if resolved == 1 && events == rows {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(settled, "the auto-resolve flow never completed");

    let decision = sqlx::query(
        "SELECT actor_id, actor_role, source, outcome, threshold, confidence, diagnosis_id,
                causation_id
           FROM audit_log WHERE tenant_id = $1 AND action = 'DecisionMade'",
    )
    .bind(auto.as_uuid())
    .fetch_one(&mut admin)
    .await
    .expect("one decision, audited");
    assert_eq!(decision.get::<String, _>("actor_role"), "system");
    assert_eq!(decision.get::<String, _>("source"), "reaction");
    assert_eq!(decision.get::<String, _>("outcome"), "auto_approved");
    assert_eq!(decision.get::<Option<f64>, _>("threshold"), Some(0.6));
    assert_eq!(decision.get::<Option<f64>, _>("confidence"), Some(0.6));
    assert_eq!(
        decision.get::<Option<uuid::Uuid>, _>("diagnosis_id"),
        Some(*auto_diagnosis.as_uuid())
    );
    // Caused by the proposal, not by a consultant's request.
    assert!(decision
        .get::<String, _>("causation_id")
        .starts_with(&format!("Diagnosis/{auto_diagnosis}/")));
    let resolved: String = sqlx::query_scalar(
        "SELECT outcome FROM audit_log WHERE tenant_id = $1 AND action = 'DiagnosisResolved'",
    )
    .bind(auto.as_uuid())
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(resolved, "auto_approved");

    // Below its threshold, the other tenant's proposal waits for a consultant.
    let undecided: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'DecisionMade'",
    )
    .bind(manual_diagnosis.to_string())
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(undecided, 0, "tenant {manual} was decided without review");
}
