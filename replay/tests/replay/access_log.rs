//! `access-log export` and `access-log verify`: a tenant's access chain (and the platform's)
//! exported and verified offline, and in the database; an edited, removed or cut record is
//! found where it is.

use std::path::Path;

use casebook_adapters::postgres::{begin_for_tenants, Access};
use casebook_domain::ids::TenantId;
use casebook_projections::access_log::{self, AccessRecord, PLATFORM};
use chrono::Utc;
use serde_json::Value;
use sqlx::Executor;
use uuid::Uuid;

use crate::audit::{assert_broken_at, edit, read_lines, without, Dir};
use crate::helpers::{replay, Run};
use crate::support::Stack;

/// Three batches as the API's writer appends them: four reads of `tenant` and one request
/// refused before any tenant was known, each.
async fn seeded() -> (Stack, TenantId) {
    let stack = Stack::new().await;
    let tenant = TenantId::new();
    for batch in 0..3 {
        let mut records: Vec<AccessRecord> = (0..4)
            .map(|i| {
                AccessRecord::unchained(
                    tenant,
                    Utc::now(),
                    Some(format!("consultant-{i}")),
                    Some("consultant".into()),
                    "GET".into(),
                    "/v1/sessions/{session_id}".into(),
                    vec![Uuid::new_v4().to_string()],
                    None,
                    200,
                    format!("request-{batch}-{i}"),
                )
            })
            .collect();
        records.push(AccessRecord::unchained(
            PLATFORM,
            Utc::now(),
            None,
            None,
            "GET".into(),
            "/v1/sessions".into(),
            vec![],
            None,
            401,
            format!("request-{batch}-anonymous"),
        ));
        let tenants = [*tenant.as_uuid(), *PLATFORM.as_uuid()];
        let mut tx = begin_for_tenants(&stack.app, Access::ReadWrite, &tenants)
            .await
            .unwrap();
        access_log::append(&mut tx, &mut records).await.unwrap();
        tx.commit().await.unwrap();
    }
    (stack, tenant)
}

async fn verify(stack: &Stack, tenant: TenantId, files: &[&Path]) -> (Run, Value) {
    let tenant = tenant.to_string();
    let mut args = vec!["access-log", "verify", "--tenant", &tenant, "--json"];
    for file in files {
        args.push("--file");
        args.push(file.to_str().unwrap());
    }
    let run = replay(stack, &args).await;
    let report = run.json();
    (run, report)
}

async fn export(stack: &Stack, tenant: TenantId, dir: &Dir) -> Vec<String> {
    let out = dir.0.join(format!("{tenant}.jsonl"));
    replay(
        stack,
        &[
            "access-log",
            "export",
            "--tenant",
            &tenant.to_string(),
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .await
    .assert_ok();
    read_lines(&out)
}

#[tokio::test]
async fn an_export_verifies_offline_and_an_edited_removed_or_cut_record_breaks_there() {
    let (stack, tenant) = seeded().await;
    let dir = Dir::new();
    let lines = export(&stack, tenant, &dir).await;
    assert_eq!(lines.len(), 13, "twelve records and the chain head");
    let file = dir.write("whole.jsonl", &lines);
    let (run, report) = verify(&stack, tenant, &[&file]).await;
    run.assert_ok();
    assert_eq!(report["verified"], 12, "{report}");
    assert_eq!(report["anchored"], true, "{report}");
    assert_eq!(report["head"]["seq"], 12, "{report}");

    let edited = dir.write(
        "edited.jsonl",
        &edit(&lines, 4, |record| record["route"] = "/v1/tenant".into()),
    );
    let (run, report) = verify(&stack, tenant, &[&edited]).await;
    assert_broken_at(&run, &report, 5, 5, "altered");

    let removed = dir.write("removed.jsonl", &without(&lines, 4));
    let (run, report) = verify(&stack, tenant, &[&removed]).await;
    assert_broken_at(&run, &report, 5, 6, "missing");

    let cut = dir.write("cut.jsonl", &without(&lines, 11));
    let (run, report) = verify(&stack, tenant, &[&cut]).await;
    assert_broken_at(&run, &report, 12, 12, "missing at the end");

    // The platform's chain is a chain of its own, exported and verified the same way.
    let platform = export(&stack, PLATFORM, &dir).await;
    let file = dir.write("platform.jsonl", &platform);
    let (run, report) = verify(&stack, PLATFORM, &[&file]).await;
    run.assert_ok();
    assert_eq!(report["verified"], 3, "{report}");
}

#[tokio::test]
async fn the_database_chain_verifies_until_a_record_is_changed_behind_the_trigger() {
    let (stack, tenant) = seeded().await;
    let (run, report) = verify(&stack, tenant, &[]).await;
    run.assert_ok();
    assert_eq!(
        (report["source"].as_str(), report["verified"].as_u64()),
        (Some("database"), Some(12))
    );

    let mut su = stack.db.superuser().await;
    su.execute("SET session_replication_role = replica")
        .await
        .unwrap();
    sqlx::query("UPDATE access_log SET status = 500 WHERE tenant_id = $1 AND seq = 7")
        .bind(tenant.as_uuid())
        .execute(&mut su)
        .await
        .unwrap();
    let (run, report) = verify(&stack, tenant, &[]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(report["broken"]["seq"], 7, "{report}");
    assert_eq!(report["verified"], 6, "{report}");
}
