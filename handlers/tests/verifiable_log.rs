//! The verifiable logs over HTTP: an auditor fetches their tenant's signed checkpoints and
//! proof bundles, and checks them offline against rows they read themselves and the
//! checkpoint they kept — for the audit trail and the access log alike. Another tenant's
//! auditor sees only their own tree; other roles are refused; bad input is a 422 naming the
//! parameter, and a checkpoint not signed (yet) a 404.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use casebook_domain::ids::TenantId;
use casebook_projections::access_log::AccessRecord;
use casebook_projections::audit::AuditRecord;
use casebook_projections::tlog::checkpoint::{self, CheckpointError};
use casebook_projections::tlog::proof::{self, AuditorCopy, LogProblem};
use casebook_projections::tlog::tree::{leaf_hash, NodeHash};
use casebook_projections::tlog::{Integrator, LogKey, LogName, ProofBundle};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use support::{spawn_app, TenantUsers, TestApp, User};
use uuid::Uuid;

const KEY_NAME: &str = "casebook.test";

/// A log key: the integrator that signs with it, and the verifier an auditor is given.
fn signer() -> (Integrator, String) {
    let (private, verifier) = LogKey::generate(KEY_NAME);
    let key = Arc::new(LogKey::from_private(&private).unwrap());
    (Integrator::new(key), verifier)
}

fn origin(log: LogName, tenant: TenantId) -> String {
    checkpoint::origin(KEY_NAME, log, tenant)
}

/// Integrates every row written so far, the access records still queued included.
async fn integrate(app: &TestApp, integrator: &Integrator) {
    if let Some(log) = &app.state.access_log {
        log.drain().await;
    }
    let pool = app.projector_pool().await;
    integrator.integrate_all(&pool).await.expect("integrated");
    pool.close().await;
}

/// `users`' customer opens `count` sessions; their ids.
async fn open_sessions(app: &TestApp, users: &TenantUsers, count: usize) -> Vec<Uuid> {
    let mut sessions = Vec::new();
    for _ in 0..count {
        let session = Uuid::new_v4();
        let (status, body) = app
            .put(
                &users.customer,
                &format!("/v1/sessions/{session}"),
                json!({ "subject": "Supplier contract" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        sessions.push(session);
    }
    sessions
}

/// Every item of the list at `path`, page by page, as `T`.
async fn every<T: DeserializeOwned>(app: &TestApp, user: &User, path: &str) -> Vec<T> {
    let mut items = Vec::new();
    let mut page = format!("{path}?limit=100");
    loop {
        let (status, body) = app.get(user, &page).await;
        assert_eq!(status, StatusCode::OK, "{page}: {body}");
        for item in body["items"].as_array().expect("items") {
            items.push(serde_json::from_value(item.clone()).expect("a row"));
        }
        match body["next_cursor"].as_str() {
            Some(cursor) => page = format!("{path}?limit=100&after={cursor}"),
            None => return items,
        }
    }
}

/// The tenant's audit rows as its auditor reads them (`GET /v1/audit`), once every event in
/// `sessions` has its row: one row per event of the tenant.
async fn audit_rows(app: &TestApp, auditor: &User, sessions: &[Uuid]) -> Vec<AuditRecord> {
    for _ in 0..200 {
        app.project().await;
        let (_, _, events) = app.get_raw(auditor, "/v1/events?limit=1000").await;
        let rows: Vec<AuditRecord> = every(app, auditor, "/v1/audit").await;
        let all_there = sessions.iter().all(|s| events.contains(&s.to_string()));
        if all_there && rows.len() == events.lines().count() {
            return rows;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the audit trail never caught up with the events");
}

/// What an auditor holding `rows` (each `seq` and canonical bytes) checks a bundle against.
fn copy_of<'a>(
    rows: impl IntoIterator<Item = (i64, Vec<u8>)>,
    last_checkpoint: Option<&'a str>,
) -> AuditorCopy<'a> {
    let leaves: BTreeMap<i64, NodeHash> = rows
        .into_iter()
        .map(|(seq, bytes)| (seq, leaf_hash(&bytes)))
        .collect();
    AuditorCopy {
        leaves,
        last_checkpoint,
    }
}

fn audit_copy<'a>(
    rows: &[AuditRecord],
    seqs: &[i64],
    last_checkpoint: Option<&'a str>,
) -> AuditorCopy<'a> {
    let chosen = rows.iter().filter(|row| seqs.contains(&row.seq));
    copy_of(
        chosen.map(|row| (row.seq, row.canonical_bytes())),
        last_checkpoint,
    )
}

/// `GET path` as `user`: a checkpoint, answered as text.
async fn checkpoint_note(app: &TestApp, user: &User, path: &str) -> String {
    let (status, headers, note) = app.get_raw(user, path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {note}");
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    note
}

/// `GET path` as `user`: a proof bundle, and the request's id.
async fn bundle(app: &TestApp, user: &User, path: &str) -> (ProofBundle, String) {
    let (status, headers, body) = app.get_raw(user, path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    let request_id = headers["x-request-id"].to_str().unwrap().to_owned();
    (serde_json::from_str(&body).expect("a bundle"), request_id)
}

/// `GET path` as `user` is a problem document with `status` and `code` (and `field`).
async fn assert_problem(
    app: &TestApp,
    user: &User,
    path: &str,
    status: StatusCode,
    code: &str,
    field: Option<&str>,
) -> Value {
    let (got, headers, body) = app.get_raw(user, path).await;
    assert_eq!(got, status, "{path}: {body}");
    assert_eq!(
        headers["content-type"], "application/problem+json",
        "{path}"
    );
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["code"], code, "{path}: {problem}");
    if let Some(field) = field {
        assert_eq!(problem["field"], field, "{path}: {problem}");
    }
    problem
}

#[tokio::test]
async fn an_auditors_checkpoints_and_proofs_verify_offline_against_the_rows_they_read() {
    let app = spawn_app().await;
    app.onboard_both("enterprise").await;
    let (integrator, verifier) = signer();
    let (acme, auditor) = (app.acme.tenant, &app.acme.auditor);
    let audit_origin = origin(LogName::Audit, acme);

    // A first checkpoint, which the auditor keeps.
    let mut sessions = open_sessions(&app, &app.acme, 2).await;
    audit_rows(&app, auditor, &sessions).await;
    integrate(&app, &integrator).await;
    let kept = checkpoint_note(&app, auditor, "/v1/audit/checkpoint").await;
    assert!(kept.starts_with(&format!("{audit_origin}\n")), "{kept}");
    let old = checkpoint::open(&kept, &verifier, &audit_origin)
        .unwrap()
        .size;
    let kept_access = checkpoint_note(&app, auditor, "/v1/access-log/checkpoint").await;
    let access_origin = origin(LogName::Access, acme);
    assert!(kept_access.starts_with(&format!("{access_origin}\n")));
    let old_access = checkpoint::open(&kept_access, &verifier, &access_origin)
        .unwrap()
        .size;

    // The log grows and a new checkpoint is signed; the kept one is still served by its size.
    sessions.extend(open_sessions(&app, &app.acme, 3).await);
    let rows = audit_rows(&app, auditor, &sessions).await;
    integrate(&app, &integrator).await;
    let newest = checkpoint_note(&app, auditor, "/v1/audit/checkpoint").await;
    let size = checkpoint::open(&newest, &verifier, &audit_origin)
        .unwrap()
        .size;
    assert_eq!(size, rows.len() as u64);
    assert!(size > old, "{old} → {size}");
    let at_old = checkpoint_note(&app, auditor, &format!("/v1/audit/checkpoint?size={old}")).await;
    assert_eq!(at_old, kept);

    // A few rows proven in the new tree, and the new tree proven to extend the kept one:
    // checked with the published key, the rows the auditor read and the kept checkpoint only.
    let seqs = [2, old as i64, size as i64];
    let (proofs, request_id) = bundle(
        &app,
        auditor,
        &format!(
            "/v1/audit/proofs?seq={},{},{}&from={old}",
            seqs[0], seqs[1], seqs[2]
        ),
    )
    .await;
    assert_eq!(proofs.checkpoint, newest);
    assert_eq!(proofs.inclusions.len(), 3);
    let verified = proof::verify(
        &verifier,
        &audit_origin,
        &proofs,
        &audit_copy(&rows, &seqs, Some(&kept)),
    )
    .expect("the bundle verifies");
    assert_eq!(
        (verified.size, verified.rows_checked, verified.whole_tree),
        (size, 3, false)
    );
    assert_eq!(verified.extends, Some(old));
    // The whole trail the auditor read makes the signed root.
    let all: Vec<i64> = (1..=size as i64).collect();
    let whole = proof::verify(
        &verifier,
        &audit_origin,
        &proofs,
        &audit_copy(&rows, &all, Some(&kept)),
    )
    .unwrap();
    assert!(whole.whole_tree);
    // A row that is not the one at its place is caught.
    let mut swapped = audit_copy(&rows, &seqs, None);
    let third = leaf_hash(&rows[2].canonical_bytes());
    swapped.leaves.insert(2, third);
    assert!(matches!(
        proof::verify(&verifier, &audit_origin, &proofs, &swapped),
        Err(LogProblem::NotIncluded { seq: 2 })
    ));
    // The access record of the request names the rows proven, as the audit list names them.
    let records = app.access_records(acme).await;
    let record = records
        .iter()
        .find(|r| r.request_id == request_id)
        .expect("the request's access record");
    assert_eq!(record.route, "/v1/audit/proofs");
    assert_eq!(
        record.resource_ids,
        seqs.iter()
            .map(|s| format!("audit:{s}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(record.result_count, Some(3));

    // The access log, the same way: its records as the auditor lists them (not from the first,
    // which would be an export of the whole log).
    let newest_access = checkpoint_note(&app, auditor, "/v1/access-log/checkpoint").await;
    let access_size = checkpoint::open(&newest_access, &verifier, &access_origin)
        .unwrap()
        .size;
    assert!(access_size > old_access, "{old_access} → {access_size}");
    let (access_proofs, _) = bundle(
        &app,
        auditor,
        &format!("/v1/access-log/proofs?seq=2,{access_size}&from={old_access}"),
    )
    .await;
    assert_eq!(access_proofs.checkpoint, newest_access);
    let records: Vec<AccessRecord> = every(&app, auditor, "/v1/access-log").await;
    let given = records
        .iter()
        .filter(|r| r.seq == 2 || r.seq == access_size as i64)
        .map(|r| (r.seq, r.canonical_bytes()));
    let verified = proof::verify(
        &verifier,
        &access_origin,
        &access_proofs,
        &copy_of(given, Some(&kept_access)),
    )
    .expect("the access log's bundle verifies");
    assert_eq!(
        (verified.size, verified.rows_checked, verified.extends),
        (access_size, 2, Some(old_access))
    );
    // An audit checkpoint is not the access log's.
    assert!(matches!(
        proof::verify(&verifier, &access_origin, &proofs, &AuditorCopy::default()),
        Err(LogProblem::Checkpoint(CheckpointError::Origin { .. }))
    ));
}

#[tokio::test]
async fn an_auditor_gets_their_own_tenants_tree_and_never_anothers_rows() {
    let app = spawn_app().await;
    app.onboard_both("enterprise").await;
    let (integrator, verifier) = signer();
    let acme_sessions = open_sessions(&app, &app.acme, 4).await;
    let globex_sessions = open_sessions(&app, &app.globex, 1).await;
    let acme_rows = audit_rows(&app, &app.acme.auditor, &acme_sessions).await;
    let globex_rows = audit_rows(&app, &app.globex.auditor, &globex_sessions).await;
    assert!(acme_rows.len() > globex_rows.len());
    integrate(&app, &integrator).await;
    let (acme, globex) = (app.acme.tenant, app.globex.tenant);
    let auditor = &app.globex.auditor;

    let theirs = checkpoint_note(&app, &app.acme.auditor, "/v1/audit/checkpoint").await;
    let ours = checkpoint_note(&app, auditor, "/v1/audit/checkpoint").await;
    assert_ne!(ours, theirs);
    assert!(ours.starts_with(&format!("{}\n", origin(LogName::Audit, globex))));
    assert!(!ours.contains(&acme.to_string()), "{ours}");
    let size = checkpoint::open(&ours, &verifier, &origin(LogName::Audit, globex))
        .unwrap()
        .size;
    assert_eq!(size, globex_rows.len() as u64);
    let access = checkpoint_note(&app, auditor, "/v1/access-log/checkpoint").await;
    assert!(access.starts_with(&format!("{}\n", origin(LogName::Access, globex))));

    // Proofs are of the auditor's own tree: they verify against their own rows, and the
    // bundle is no proof of the other tenant's log.
    let (proofs, _) = bundle(&app, auditor, &format!("/v1/audit/proofs?seq=1,{size}")).await;
    assert_eq!(proofs.checkpoint, ours);
    let copy = audit_copy(&globex_rows, &[1, size as i64], None);
    proof::verify(&verifier, &origin(LogName::Audit, globex), &proofs, &copy)
        .expect("their own rows verify");
    assert!(matches!(
        proof::verify(&verifier, &origin(LogName::Audit, acme), &proofs, &copy),
        Err(LogProblem::Checkpoint(CheckpointError::Origin { .. }))
    ));

    // A row or size only the other tenant's tree has is out of the auditor's range.
    let acme_size = acme_rows.len();
    for (path, status, code, field) in [
        (
            format!("/v1/audit/proofs?seq={acme_size}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("seq"),
        ),
        (
            format!("/v1/audit/proofs?from={acme_size}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("from"),
        ),
        (
            format!("/v1/audit/checkpoint?size={acme_size}"),
            StatusCode::NOT_FOUND,
            "no_checkpoint",
            None,
        ),
        (
            format!("/v1/audit/proofs?seq=1&size={acme_size}"),
            StatusCode::NOT_FOUND,
            "no_checkpoint",
            None,
        ),
    ] {
        let problem = assert_problem(&app, auditor, &path, status, code, field).await;
        assert!(
            !problem.to_string().contains(&acme.to_string()),
            "{problem}"
        );
        assert!(!problem.to_string().contains(&theirs), "{problem}");
    }
}

#[tokio::test]
async fn other_roles_are_refused_bad_input_is_a_422_and_an_unsigned_log_a_404() {
    let app = spawn_app().await;
    app.onboard_both("enterprise").await;
    let auditor = &app.acme.auditor;
    let routes = [
        "/v1/audit/checkpoint",
        "/v1/audit/proofs?seq=1",
        "/v1/access-log/checkpoint",
        "/v1/access-log/proofs?seq=1",
    ];

    // Documented, for auditors only.
    let document = support::json_body(app.get_public("/v1/openapi.json").await).await;
    for path in routes {
        let path = path.split('?').next().unwrap();
        assert_eq!(
            document["paths"][path]["get"]["x-casebook-roles"],
            json!(["auditor"]),
            "{path}"
        );
    }
    assert!(document["components"]["schemas"]["ProofBundle"].is_object());

    // Nothing is signed yet.
    for path in routes {
        assert_problem(
            &app,
            auditor,
            path,
            StatusCode::NOT_FOUND,
            "no_checkpoint",
            None,
        )
        .await;
    }
    let (integrator, _) = signer();
    let sessions = open_sessions(&app, &app.acme, 1).await;
    let rows = audit_rows(&app, auditor, &sessions).await;
    integrate(&app, &integrator).await;

    for user in [&app.acme.customer, &app.acme.consultant, &app.acme.admin] {
        for path in routes {
            assert_problem(&app, user, path, StatusCode::FORBIDDEN, "forbidden", None).await;
        }
    }

    let size = rows.len();
    let too_many = (1..=101)
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let beyond = size + 1;
    for log in ["audit", "access-log"] {
        for (query, field) in [
            ("seq=abc".to_owned(), "seq"),
            ("seq=0".to_owned(), "seq"),
            ("seq=-3".to_owned(), "seq"),
            ("seq=1,,2".to_owned(), "seq"),
            ("seq=".to_owned(), "seq"),
            (format!("seq={too_many}"), "seq"),
            ("seq=99999999999".to_owned(), "seq"),
            ("from=x".to_owned(), "from"),
            ("from=99999999999".to_owned(), "from"),
            ("size=0".to_owned(), "size"),
            ("size=1.5".to_owned(), "size"),
        ] {
            let path = format!("/v1/{log}/proofs?{query}");
            assert_problem(
                &app,
                auditor,
                &path,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                Some(field),
            )
            .await;
        }
        let path = format!("/v1/{log}/checkpoint?size=nine");
        assert_problem(
            &app,
            auditor,
            &path,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("size"),
        )
        .await;
    }
    // The audit trail's tree has exactly its rows.
    assert_problem(
        &app,
        auditor,
        &format!("/v1/audit/proofs?seq={beyond}"),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("seq"),
    )
    .await;
    assert_problem(
        &app,
        auditor,
        &format!("/v1/audit/proofs?seq=1&from={beyond}"),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("from"),
    )
    .await;
    // From the empty tree or the tree itself: nothing to prove, and still a bundle.
    for from in [0, size] {
        let (proofs, _) = bundle(&app, auditor, &format!("/v1/audit/proofs?from={from}")).await;
        let consistency = proofs.consistency.expect("a consistency proof");
        assert_eq!(consistency.old_size, from as u64);
        assert!(consistency.proof.is_empty());
    }

    // Tiles lost from the stored tree are the server's fault, never an answer.
    let mut su = app.superuser().await;
    sqlx::query("DELETE FROM tlog_tiles WHERE log = 'audit' AND tenant_id = $1")
        .bind(app.acme.tenant.as_uuid())
        .execute(&mut su)
        .await
        .unwrap();
    let problem = assert_problem(
        &app,
        auditor,
        "/v1/audit/proofs?seq=1",
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        None,
    )
    .await;
    assert!(problem.get("detail").is_none(), "{problem}");
}
