//! `audit prove` and `audit verify --proofs` as an auditor runs them: a bundle read from the
//! database, then checked offline with the published key against an export, a few rows and
//! the checkpoint saved last time; exit 1 on a rewritten history or another key's checkpoint.

use std::path::Path;
use std::sync::Arc;

use casebook_projections::tlog::{Integrator, LogKey};
use serde_json::{json, Value};
use sqlx::Executor;

use crate::audit::{edit, read_lines, Dir};
use crate::helpers::{replay, seed, Run};
use crate::support::Stack;

/// Integrates every tenant's rows with `private`, as the projector does.
async fn integrate(stack: &Stack, private: &str) {
    let key = Arc::new(LogKey::from_private(private).unwrap());
    Integrator::new(key)
        .integrate_all(&stack.projector)
        .await
        .unwrap();
}

async fn prove(
    stack: &Stack,
    tenant: &str,
    extra: &[&str],
    dir: &Dir,
    name: &str,
) -> std::path::PathBuf {
    let mut args = vec!["audit", "prove", "--tenant", tenant];
    args.extend_from_slice(extra);
    let run = replay(stack, &args).await;
    run.assert_ok();
    dir.write(name, std::slice::from_ref(&run.stdout))
}

async fn verify(stack: &Stack, tenant: &str, key: &Path, args: &[&str]) -> (Run, Value) {
    let mut all = vec!["audit", "verify", "--tenant", tenant, "--json", "--key"];
    all.push(key.to_str().unwrap());
    all.extend_from_slice(args);
    let run = replay(stack, &all).await;
    let report = run.json();
    (run, report)
}

fn path(file: &Path) -> &str {
    file.to_str().unwrap()
}

#[tokio::test]
async fn an_auditor_checks_proofs_offline_and_a_rewritten_history_or_another_key_exits_1() {
    let seeded = seed(31, 200, 0).await;
    let stack = &seeded.stack;
    let tenant = seeded.tenant(0);
    let dir = Dir::new();
    let (private, verifier) = LogKey::generate("casebook.test");
    let key = dir.write("log.pub", &[verifier]);
    integrate(stack, &private).await;

    // The whole export against the checkpoint, and the checkpoint saved for next time.
    let export = dir.0.join("export.jsonl");
    replay(
        stack,
        &[
            "stream",
            "--tenant",
            &tenant,
            "--audit",
            "--out",
            path(&export),
        ],
    )
    .await
    .assert_ok();
    let bundle = prove(stack, &tenant, &[], &dir, "bundle.json").await;
    let saved = dir.0.join("saved.note");
    let (run, report) = verify(
        stack,
        &tenant,
        &key,
        &[
            "--file",
            path(&export),
            "--proofs",
            path(&bundle),
            "--save-checkpoint",
            path(&saved),
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let size = report["log"]["size"].as_u64().unwrap();
    assert_eq!(report["log"]["whole_tree"], true, "{report}");
    assert_eq!(report["verified"].as_u64(), Some(size));
    assert!(std::fs::read_to_string(&saved)
        .unwrap()
        .contains(&format!("/audit/{tenant}\n{size}\n")));

    // A few rows, each proven; one of them altered, or one without its proof.
    let lines = read_lines(&export);
    let rows = dir.write("rows.jsonl", &lines[4..7]);
    let some = prove(stack, &tenant, &["--seq", "5,6,7"], &dir, "some.json").await;
    let (run, report) = verify(
        stack,
        &tenant,
        &key,
        &["--rows", path(&rows), "--proofs", path(&some)],
    )
    .await;
    assert_eq!(
        (run.code, &report["log"]["rows_checked"]),
        (0, &json!(3)),
        "{run:?}"
    );
    let altered = dir.write(
        "altered.jsonl",
        &edit(&lines[4..7], 1, |line| {
            line["audit"]["reason"] = json!("forged")
        }),
    );
    let (run, report) = verify(
        stack,
        &tenant,
        &key,
        &["--rows", path(&altered), "--proofs", path(&some)],
    )
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        report["log"]["problem"].as_str().unwrap().contains("row 6"),
        "{report}"
    );
    let fewer = prove(stack, &tenant, &["--seq", "5,7"], &dir, "fewer.json").await;
    let (run, report) = verify(
        stack,
        &tenant,
        &key,
        &["--rows", path(&rows), "--proofs", path(&fewer)],
    )
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        report["log"]["problem"]
            .as_str()
            .unwrap()
            .contains("no inclusion proof"),
        "{report}"
    );

    // Someone holding the database and the key rewrites row 2 and re-signs a new tree.
    let mut su = stack.db.superuser().await;
    su.execute(
        format!(
            "SET session_replication_role = replica;
             UPDATE audit_log SET actor_id = actor_id || '-rewritten' WHERE tenant_id = '{tenant}' AND seq = 2;
             DELETE FROM tlog_tiles WHERE tenant_id = '{tenant}';
             DELETE FROM tlog_checkpoints WHERE tenant_id = '{tenant}';"
        )
        .as_str(),
    )
    .await
    .unwrap();
    integrate(stack, &private).await;
    let rewritten = prove(
        stack,
        &tenant,
        &["--from", &size.to_string()],
        &dir,
        "rewritten.json",
    )
    .await;
    let (run, report) = verify(
        stack,
        &tenant,
        &key,
        &[
            "--proofs",
            path(&rewritten),
            "--last-checkpoint",
            path(&saved),
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        report["log"]["problem"]
            .as_str()
            .unwrap()
            .contains("rewritten history"),
        "{report}"
    );

    // A checkpoint the published key did not sign.
    let (_, other) = LogKey::generate("casebook.test");
    let other = dir.write("other.pub", &[other]);
    let (run, report) = verify(stack, &tenant, &other, &["--proofs", path(&bundle)]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        report["log"]["problem"]
            .as_str()
            .unwrap()
            .contains("not signed"),
        "{report}"
    );

    // Nothing was checked for a tenant the key does not sign this checkpoint for.
    let (run, _) = verify(stack, &seeded.tenant(1), &key, &["--proofs", path(&bundle)]).await;
    assert_eq!(run.code, 1, "{run:?}");
}
