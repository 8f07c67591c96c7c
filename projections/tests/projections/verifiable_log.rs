//! The verifiable log: each tenant's audit rows integrated into a Merkle tree, signed
//! checkpoints, and an auditor's offline check of proofs against their own copy — which
//! catches a tampered, dropped or rewritten row, a forked tree and another key's checkpoint.

use std::collections::BTreeMap;
use std::sync::Arc;

use casebook_application::in_memory::InMemoryBucket;

use casebook_domain::ids::TenantId;
use casebook_projections::audit;
use casebook_projections::tlog::checkpoint::{origin, CheckpointError};
use casebook_projections::tlog::proof::{self, AuditorCopy, LogProblem};
use casebook_projections::tlog::{
    self, Integrator, LogKey, LogName, ProofBundle, ProofRequest, StoredCheckpoint, Tiles,
};
use sqlx::{Executor, PgConnection};
use uuid::Uuid;

use crate::support::{as_tenant, Driver, Stack};

const KEY_NAME: &str = "casebook.test";

fn key() -> (Arc<LogKey>, String) {
    let (private, verifier) = LogKey::generate(KEY_NAME);
    (Arc::new(LogKey::from_private(&private).unwrap()), verifier)
}

/// Three tenants' audit trails, integrated in batches of 37 rows.
async fn integrated(seed: u64, key: &Arc<LogKey>) -> (Stack, Vec<TenantId>) {
    let stack = Stack::new().await;
    let mut driver = Driver::new(stack.app.clone(), seed);
    driver.onboard(3).await;
    driver.run(150).await;
    stack.drain_all(50).await;
    let integrator = Integrator::new(key.clone()).with_batch(37);
    let integrated = integrator.integrate_all(&stack.projector).await.unwrap();
    assert!(integrated.len() > 3, "several batches: {integrated:?}");
    assert!(integrator
        .integrate_all(&stack.projector)
        .await
        .unwrap()
        .is_empty());
    (stack, driver.tenants.clone())
}

/// The tenant's audit rows as an export holds them: canonical bytes by `seq`.
async fn export(conn: &mut PgConnection, tenant: TenantId) -> BTreeMap<i64, Vec<u8>> {
    audit::records(conn, tenant, 0, i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.seq, row.canonical_bytes()))
        .collect()
}

/// What an auditor holding `rows` checks a bundle against.
fn copy_of(rows: &BTreeMap<i64, Vec<u8>>) -> AuditorCopy<'static> {
    AuditorCopy {
        leaves: rows
            .iter()
            .map(|(seq, bytes)| (*seq, tlog::tree::leaf_hash(bytes)))
            .collect(),
        last_checkpoint: None,
    }
}

/// What an auditor of `tenant` is given: the newest checkpoint, the inclusion proofs of
/// `rows` and the consistency proof from `since`. Read as the auditor role, as the API does.
async fn bundle(stack: &Stack, tenant: TenantId, rows: &[i64], since: Option<u64>) -> ProofBundle {
    let mut conn = stack.owner.acquire().await.unwrap();
    as_tenant(&mut conn, "casebook_auditor", Some(tenant)).await;
    let request = ProofRequest {
        seqs: rows.to_vec(),
        from: since,
        size: None,
    };
    let bundle = tlog::prove(&mut conn, LogName::Audit, tenant, &request)
        .await
        .unwrap()
        .expect("a checkpoint");
    conn.execute("ROLLBACK").await.unwrap();
    bundle
}

fn audit_origin(tenant: TenantId) -> String {
    origin(KEY_NAME, LogName::Audit, tenant)
}

#[tokio::test]
async fn every_tenants_rows_are_in_its_signed_tree_and_each_rows_proof_verifies_offline() {
    let (key, verifier) = key();
    let (stack, tenants) = integrated(81, &key).await;
    let mut su = stack.db.superuser().await;
    for &tenant in &tenants {
        let rows = export(&mut su, tenant).await;
        let size = rows.len() as u64;
        let sample: Vec<i64> = vec![2, 3, size as i64 / 2, size as i64];
        let bundle = bundle(&stack, tenant, &sample, None).await;

        let verified =
            proof::verify(&verifier, &audit_origin(tenant), &bundle, &copy_of(&rows)).unwrap();
        assert_eq!((verified.size, verified.whole_tree), (size, true));

        // A few rows, not from the first: each proven by its own path.
        let given: BTreeMap<i64, Vec<u8>> =
            sample.iter().map(|seq| (*seq, rows[seq].clone())).collect();
        let copy = copy_of(&given);
        let verified = proof::verify(&verifier, &audit_origin(tenant), &bundle, &copy).unwrap();
        assert_eq!((verified.rows_checked, verified.whole_tree), (4, false));

        // Another tenant's checkpoint is not this tenant's log.
        let other = tenants.iter().find(|t| **t != tenant).unwrap();
        assert!(matches!(
            proof::verify(&verifier, &audit_origin(*other), &bundle, &copy),
            Err(LogProblem::Checkpoint(CheckpointError::Origin { .. }))
        ));
    }

    // An auditor sees their own tenant's tree only.
    let mut conn = stack.owner.acquire().await.unwrap();
    as_tenant(&mut conn, "casebook_auditor", Some(tenants[0])).await;
    let theirs = tlog::checkpoint(&mut conn, LogName::Audit, tenants[1], None)
        .await
        .unwrap();
    assert!(theirs.is_none());
    let their_row = ProofRequest {
        seqs: vec![1],
        ..ProofRequest::default()
    };
    assert!(
        tlog::prove(&mut conn, LogName::Audit, tenants[1], &their_row)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_tampered_or_dropped_row_in_the_auditors_copy_is_caught() {
    let (key, verifier) = key();
    let (stack, tenants) = integrated(82, &key).await;
    let tenant = tenants[0];
    let mut su = stack.db.superuser().await;
    let rows = export(&mut su, tenant).await;
    let bundle = bundle(&stack, tenant, &[5], None).await;
    let check = |rows: BTreeMap<i64, Vec<u8>>| {
        proof::verify(&verifier, &audit_origin(tenant), &bundle, &copy_of(&rows))
    };
    assert!(check(rows.clone()).is_ok());

    let mut tampered = rows.clone();
    tampered.get_mut(&5).unwrap().push(b'!');
    assert!(matches!(
        check(tampered.clone()),
        Err(LogProblem::NotIncluded { seq: 5 })
    ));
    tampered.retain(|seq, _| *seq == 5);
    assert!(matches!(
        check(tampered),
        Err(LogProblem::NotIncluded { seq: 5 })
    ));

    let mut altered_elsewhere = rows.clone();
    altered_elsewhere.get_mut(&9).unwrap()[0] ^= 1;
    assert!(matches!(
        check(altered_elsewhere),
        Err(LogProblem::WrongRoot { .. })
    ));

    let mut dropped = rows.clone();
    dropped.remove(&9);
    assert!(matches!(check(dropped), Err(LogProblem::RowMissing(9))));

    let mut unproven = rows.clone();
    unproven.retain(|seq, _| *seq == 5 || *seq == 9);
    assert!(matches!(check(unproven), Err(LogProblem::Unproven(9))));
}

#[tokio::test]
async fn a_history_rewritten_and_re_signed_fails_consistency_with_the_saved_checkpoint() {
    let (key, verifier) = key();
    let (stack, tenants) = integrated(83, &key).await;
    let tenant = tenants[0];
    let saved = bundle(&stack, tenant, &[], None).await.checkpoint;
    let saved_size = tlog_size(&stack, tenant).await;

    // Whoever holds the database and the key rewrites row 3 and rebuilds the tree over the
    // rewritten rows, one more row longer: every checkpoint it signs is well signed.
    let mut su = stack.db.superuser().await;
    su.execute("SET session_replication_role = replica")
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET actor_id = 'someone-else' WHERE tenant_id = $1 AND seq = 3")
        .bind(tenant.as_uuid())
        .execute(&mut su)
        .await
        .unwrap();
    for table in ["tlog_tiles", "tlog_checkpoints"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE tenant_id = $1"))
            .bind(tenant.as_uuid())
            .execute(&mut su)
            .await
            .unwrap();
    }
    su.execute(
        format!(
            "CREATE TEMP TABLE extra AS SELECT * FROM audit_log WHERE tenant_id = '{tenant}' AND seq = 1;
             UPDATE extra SET seq = (SELECT max(seq) + 1 FROM audit_log WHERE tenant_id = '{tenant}');
             INSERT INTO audit_log SELECT * FROM extra"
        )
        .as_str(),
    )
    .await
    .unwrap();
    Integrator::new(key.clone())
        .integrate(&stack.projector, LogName::Audit, tenant)
        .await
        .unwrap()
        .expect("the rewritten tree");
    let rewritten = bundle(&stack, tenant, &[], Some(saved_size)).await;

    let problem = proof::verify(
        &verifier,
        &audit_origin(tenant),
        &rewritten,
        &AuditorCopy {
            leaves: BTreeMap::new(),
            last_checkpoint: Some(&saved),
        },
    )
    .unwrap_err();
    assert!(
        matches!(problem, LogProblem::NotConsistent { last, .. } if last == saved_size),
        "{problem}"
    );
}

async fn tlog_size(stack: &Stack, tenant: TenantId) -> u64 {
    let mut conn = stack.owner.acquire().await.unwrap();
    as_tenant(&mut conn, "casebook_auditor", Some(tenant)).await;
    let checkpoint: StoredCheckpoint = tlog::checkpoint(&mut conn, LogName::Audit, tenant, None)
        .await
        .unwrap()
        .unwrap();
    conn.execute("ROLLBACK").await.unwrap();
    checkpoint.size
}

/// A tree of `rows` signed with `key` for `tenant`: what a log shows one auditor.
fn view(key: &LogKey, tenant: TenantId, rows: &[Vec<u8>]) -> (String, Tiles) {
    let leaves: Vec<_> = rows.iter().map(|row| tlog::tree::leaf_hash(row)).collect();
    let appended = Tiles::default().append(0, &leaves).unwrap();
    let note = key
        .sign(LogName::Audit, tenant, appended.size, appended.root)
        .unwrap();
    let mut tiles = Tiles::default();
    for (position, data) in appended.tiles {
        tiles.insert(position, data);
    }
    (note, tiles)
}

#[test]
fn a_forked_tree_is_caught_and_a_checkpoint_signed_by_another_key_is_refused() {
    let (key, verifier) = key();
    let tenant = TenantId::from_uuid(Uuid::new_v4());
    let rows: Vec<Vec<u8>> = (0..40).map(|n| format!("row {n}").into_bytes()).collect();
    let (seen_by_a, _) = view(&key, tenant, &rows[..30]);
    let mut forked = rows.clone();
    forked[12] = b"row 12, as another auditor was shown it".to_vec();
    let (seen_by_b, tiles_b) = view(&key, tenant, &forked);
    let (same_size_b, _) = view(&key, tenant, &forked[..30]);

    // B's view extended: its consistency proof from 30 does not start from A's tree.
    let bundle = ProofBundle {
        checkpoint: seen_by_b,
        inclusions: vec![],
        consistency: Some(tlog::Consistency {
            old_size: 30,
            proof: tiles_b.consistency_proof(40, 30).unwrap(),
        }),
    };
    let a_saved = AuditorCopy {
        leaves: BTreeMap::new(),
        last_checkpoint: Some(&seen_by_a),
    };
    let origin = audit_origin(tenant);
    assert!(matches!(
        proof::verify(&verifier, &origin, &bundle, &a_saved),
        Err(LogProblem::NotConsistent { last: 30, size: 40 })
    ));
    // Two checkpoints of one size with different roots.
    let same_size = ProofBundle {
        checkpoint: same_size_b,
        inclusions: vec![],
        consistency: None,
    };
    assert!(matches!(
        proof::verify(&verifier, &origin, &same_size, &a_saved),
        Err(LogProblem::NotConsistent { last: 30, size: 30 })
    ));

    let (impostor, _) = self::key();
    let (signed_elsewhere, _) = view(&impostor, tenant, &rows);
    let bundle = ProofBundle {
        checkpoint: signed_elsewhere,
        inclusions: vec![],
        consistency: None,
    };
    assert!(matches!(
        proof::verify(&verifier, &origin, &bundle, &AuditorCopy::default()),
        Err(LogProblem::Checkpoint(CheckpointError::Signature(_)))
    ));
}

#[tokio::test]
async fn every_checkpoint_signed_is_archived_once_the_bucket_takes_it() {
    let stack = Stack::new().await;
    let mut driver = Driver::new(stack.app.clone(), 84);
    driver.onboard(2).await;
    driver.run(60).await;
    stack.drain_all(50).await;
    let (key, _) = key();
    let bucket = Arc::new(InMemoryBucket::new("audit-archive"));
    let integrator = Integrator::new(key)
        .with_batch(25)
        .with_archive(bucket.clone());

    bucket.set_down(true);
    let signed = integrator
        .integrate(&stack.projector, LogName::Audit, driver.tenants[0])
        .await;
    assert!(signed.unwrap().is_some());
    assert!(
        integrator.integrate_all(&stack.projector).await.is_err(),
        "the bucket is down"
    );
    assert!(bucket.keys().is_empty());

    bucket.set_down(false);
    assert!(integrator
        .integrate_all(&stack.projector)
        .await
        .unwrap()
        .is_empty());
    let mut su = stack.db.superuser().await;
    let notes: Vec<(Uuid, i64, String, Option<String>)> = sqlx::query_as(
        "SELECT tenant_id, size, note, archived_key FROM tlog_checkpoints ORDER BY signed_at",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert!(notes.len() > 2, "several checkpoints: {}", notes.len());
    assert_eq!(bucket.keys().len(), notes.len());
    for (tenant, size, note, archived) in notes {
        let key = format!("{tenant}/checkpoints/audit/{size:020}.note");
        assert_eq!(archived.as_deref(), Some(key.as_str()));
        assert_eq!(bucket.body(&key), Some(note.into_bytes()));
    }
}
