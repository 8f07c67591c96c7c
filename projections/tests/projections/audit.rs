//! The audit table: one chained row per event; tampering is caught at the row.

use casebook_domain::ids::TenantId;
use casebook_projections::audit::{
    self, verify_chain, Encoding, LinkProblem, Verified, VerifyError,
};
use casebook_projections::chain::Break;
use casebook_projections::projection::ProjectionId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::{Executor, PgConnection};

use crate::oracle::fold_log;
use crate::support::{assert_all_match, Driver, Stack};

/// The migration that gave audit rows their event's digest (encoding 2).
const EVENT_DIGEST_MIGRATION: i64 = 20261206000001;

#[tokio::test]
async fn every_event_gets_one_row_in_its_tenants_chain_which_verifies() {
    let stack = Stack::new().await;
    let mut driver = Driver::new(stack.app.clone(), 61);
    driver.onboard(3).await;
    driver.run(300).await;
    stack.drain_all(33).await;
    let expected = fold_log(&stack.owner).await;
    let mut conn = stack.owner.acquire().await.unwrap();
    for (tenant, events) in &expected.events {
        let tenant = TenantId::from_uuid(*tenant);
        let rows = audit::records(&mut conn, tenant, 0, 1_000_000)
            .await
            .unwrap();
        let got: Vec<(i64, String)> = rows
            .iter()
            .map(|r| (r.global_position, r.action.clone()))
            .collect();
        assert_eq!(&got, events);
        assert!(rows.iter().zip(1..).all(|(r, seq)| r.seq == seq));
        assert!(rows.iter().all(|r| r.encoding == Encoding::V2));
        assert_eq!(
            verify_chain(&mut conn, tenant).await.unwrap(),
            Verified {
                rows: rows.len() as u64,
                content_checked: rows.len() as u64
            }
        );
        // An export verifies offline, from JSON lines, with the pure verifier.
        let lines: Vec<String> = rows
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        let back: Vec<audit::AuditRecord> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(audit::chain::verify_records(&back), Ok(rows.len() as u64));

        for row in &rows {
            match row.action.as_str() {
                "DiagnosisProposed" => {
                    let d = &expected.diagnoses[row.diagnosis_id.unwrap().as_uuid()];
                    let p = &d.proposal.as_ref().unwrap().provenance;
                    assert_eq!(row.model_id.as_ref(), Some(&p.model_id));
                    assert_eq!(row.input_tokens, Some(i64::from(p.input_tokens)));
                    assert_eq!(row.actor_role, "system");
                    assert_eq!(row.source, "worker");
                }
                "DecisionMade" => {
                    let decision = &expected.decisions[row.decision_id.unwrap().as_uuid()];
                    assert_eq!(row.actor_id, decision.decided_by.to_string());
                    let outcome = serde_json::to_value(decision.verdict.outcome()).unwrap();
                    assert_eq!(row.outcome.as_deref(), outcome.as_str());
                    assert_eq!(
                        row.threshold.is_some(),
                        row.outcome.as_deref() == Some("auto_approved")
                    );
                }
                _ => {}
            }
            assert!(row.request_id.starts_with("req-"));
        }
    }
}

/// Applies `change` to the row `seq` of `tenant` as the superuser, verifies in the same
/// transaction, and rolls back.
async fn verify_with(
    su: &mut PgConnection,
    tenant: TenantId,
    seq: i64,
    change: &str,
) -> Result<Verified, VerifyError> {
    su.execute("BEGIN").await.unwrap();
    let changed = sqlx::query(&format!(
        "UPDATE audit_log SET {change} WHERE tenant_id = $1 AND seq = $2"
    ))
    .bind(tenant.as_uuid())
    .bind(seq)
    .execute(&mut *su)
    .await
    .unwrap();
    assert_eq!(changed.rows_affected(), 1);
    let result = verify_chain(su, tenant).await;
    su.execute("ROLLBACK").await.unwrap();
    result
}

#[tokio::test]
async fn altering_any_one_stored_audit_row_fails_verification_at_exactly_that_row() {
    let stack = Stack::new().await;
    let mut driver = Driver::new(stack.app.clone(), 71);
    driver.onboard(3).await;
    driver.run(200).await;
    stack.drain_all(50).await;
    let tenant = driver.tenants[0];
    let mut su = stack.db.superuser().await;
    let rows = verify_chain(&mut su, tenant).await.unwrap().rows as i64;
    assert!(rows > 20);

    let changes = [
        "actor_id = actor_id || '-forged'",
        "actor_role = 'admin' || actor_role",
        "action = 'DecisionMade' || action",
        "outcome = COALESCE(outcome, '') || 'x'",
        "reason = COALESCE(reason, '') || 'x'",
        "recorded_at = recorded_at + interval '1 microsecond'",
        "global_position = global_position + 1000000",
        "confidence = COALESCE(confidence, 0) + 0.01",
        "model_id = COALESCE(model_id, '') || 'x'",
        "retrieved_judgment_ids = '[\"00000000-0000-0000-0000-000000000001\"]'",
        "cost_usd_micros = COALESCE(cost_usd_micros, 0) + 1",
        "request_id = request_id || 'x'",
        "causation_id = causation_id || 'x'",
        "session_id = gen_random_uuid()",
        "event_digest = sha256(event_digest)",
        "encoding = 1, event_digest = NULL",
        "hash = sha256(hash)",
        "prev_hash = sha256(prev_hash)",
    ];
    let mut rng = StdRng::seed_from_u64(7);
    for change in changes {
        let seq = rng.gen_range(1..=rows);
        match verify_with(&mut su, tenant, seq, change).await {
            Err(VerifyError::Broken(link)) => {
                assert_eq!(link.seq, seq, "{change}: {link}");
                assert_eq!(link.tenant_id, tenant);
                let expected_problem = if change.starts_with("prev_hash") {
                    matches!(link.problem, LinkProblem::Chain(Break::PrevHash { .. }))
                } else {
                    matches!(link.problem, LinkProblem::Chain(Break::Hash { .. }))
                };
                assert!(expected_problem, "{change}: {link}");
            }
            other => panic!("{change} at seq {seq} went unnoticed: {other:?}"),
        }
    }

    // A deleted row breaks the chain at its successor.
    su.execute("BEGIN").await.unwrap();
    sqlx::query("DELETE FROM audit_log WHERE tenant_id = $1 AND seq = 5")
        .bind(tenant.as_uuid())
        .execute(&mut su)
        .await
        .unwrap();
    let Err(VerifyError::Broken(link)) = verify_chain(&mut su, tenant).await else {
        panic!("a deleted row went unnoticed");
    };
    su.execute("ROLLBACK").await.unwrap();
    assert_eq!(
        (link.seq, link.problem),
        (6, LinkProblem::Chain(Break::Sequence { expected: 5 }))
    );

    // Untouched, it still verifies.
    assert_eq!(
        verify_chain(&mut su, tenant).await.unwrap().rows as i64,
        rows
    );
}

/// Applies `change` to the event at the row `seq` of `tenant` as the superuser (through the
/// erasure path, the only way to change a stored event), verifies in the same transaction,
/// and rolls back.
async fn verify_with_event(
    su: &mut PgConnection,
    tenant: TenantId,
    seq: i64,
    change: &str,
) -> Result<Verified, VerifyError> {
    su.execute("BEGIN; SET LOCAL casebook.erasure = 'on'")
        .await
        .unwrap();
    let changed = sqlx::query(&format!(
        "{change} WHERE global_position =
           (SELECT global_position FROM audit_log WHERE tenant_id = $1 AND seq = $2)"
    ))
    .bind(tenant.as_uuid())
    .bind(seq)
    .execute(&mut *su)
    .await
    .unwrap();
    assert_eq!(changed.rows_affected(), 1, "{change}");
    let result = verify_chain(su, tenant).await;
    su.execute("ROLLBACK").await.unwrap();
    result
}

#[tokio::test]
async fn altering_or_removing_any_stored_event_fails_verification_at_its_row() {
    let stack = Stack::new().await;
    let mut driver = Driver::new(stack.app.clone(), 73);
    driver.onboard(2).await;
    driver.run(150).await;
    stack.drain_all(50).await;
    let tenant = driver.tenants[1];
    let mut su = stack.db.superuser().await;
    let rows = verify_chain(&mut su, tenant).await.unwrap().rows as i64;
    assert!(rows > 20);

    // Not one of these touches the audit row: version 1 verified every one of them.
    let changes = [
        "UPDATE events SET payload = payload || '{\"edited\": true}'",
        "UPDATE events SET payload = payload - 'type'",
        "UPDATE events SET metadata = jsonb_set(metadata, '{source}', '\"scheduler\"')",
        "UPDATE events SET metadata = metadata || '{\"note\": \"added\"}'",
        "UPDATE events SET event_version = event_version || '.1'",
        "DELETE FROM events",
    ];
    let mut rng = StdRng::seed_from_u64(11);
    for change in changes {
        let seq = rng.gen_range(1..=rows);
        match verify_with_event(&mut su, tenant, seq, change).await {
            Err(VerifyError::Broken(link)) => {
                assert_eq!(link.seq, seq, "{change}: {link}");
                let expected_problem = if change.starts_with("DELETE") {
                    link.problem == LinkProblem::EventMissing
                } else {
                    matches!(link.problem, LinkProblem::EventDigest { .. })
                };
                assert!(expected_problem, "{change}: {link}");
            }
            other => panic!("{change} at seq {seq} went unnoticed: {other:?}"),
        }
    }
    assert_eq!(
        verify_chain(&mut su, tenant).await.unwrap().rows as i64,
        rows
    );
}

#[tokio::test]
async fn a_chain_upgraded_from_encoding_1_verifies_row_by_row_and_rebuilds_to_the_same_rows() {
    // A deployment before event digests: its audit projection chained every event in
    // encoding 1.
    let stack = Stack::migrated_before(EVENT_DIGEST_MIGRATION).await;
    let mut driver = Driver::new(stack.app.clone(), 83);
    driver.onboard(2).await;
    driver.run(120).await;
    let before = stack.chain_in_encoding_1().await;
    assert!(before > 40);

    stack.upgrade().await;
    driver.record_finetune_export(driver.tenants[0]).await;
    driver.run(120).await;
    stack.drain_all(50).await;

    let mut conn = stack.owner.acquire().await.unwrap();
    let mut v1 = 0;
    for &tenant in &driver.tenants {
        let rows = audit::records(&mut conn, tenant, 0, 1_000_000)
            .await
            .unwrap();
        // Encoding 1 up to the upgrade, 2 after, never back.
        let upgraded = rows.partition_point(|r| r.encoding == Encoding::V1);
        assert!(rows[upgraded..].iter().all(|r| r.encoding == Encoding::V2));
        assert!(rows[..upgraded].iter().all(|r| r.event_digest.is_none()));
        assert!(
            upgraded > 0 && upgraded < rows.len(),
            "{upgraded} of {}",
            rows.len()
        );
        v1 += upgraded;
        assert_eq!(
            verify_chain(&mut conn, tenant).await.unwrap(),
            Verified {
                rows: rows.len() as u64,
                content_checked: (rows.len() - upgraded) as u64,
            }
        );
    }
    assert_eq!(v1, before);
    drop(conn);

    // Rebuilt from history, the table holds the same rows: version 1 up to where the
    // version-1 rows ended, version 2 after.
    assert_all_match(&stack.verify_against_rebuild(&[ProjectionId::Audit]).await);

    // The events of version-2 rows are covered.
    let tenant = driver.tenants[0];
    let mut su = stack.db.superuser().await;
    let last = verify_chain(&mut su, tenant).await.unwrap().rows as i64;
    let edited = verify_with_event(
        &mut su,
        tenant,
        last,
        "UPDATE events SET payload = payload || '{\"edited\": true}'",
    )
    .await;
    assert!(
        matches!(&edited, Err(VerifyError::Broken(link)) if link.seq == last
            && matches!(link.problem, LinkProblem::EventDigest { .. })),
        "{edited:?}"
    );
}
