//! `audit verify` from the database and offline from both kinds of file.

use std::path::{Path, PathBuf};

use casebook_projections::audit::records;
use serde_json::{json, Value};

use crate::helpers::{replay, seed, Run};
use crate::support::Stack;

struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("replay-audit-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, lines: &[String]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(
            &path,
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn edit(lines: &[String], index: usize, change: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut edited = lines.to_vec();
    let mut value: Value = serde_json::from_str(&edited[index]).unwrap();
    change(&mut value);
    edited[index] = value.to_string();
    edited
}

fn without(lines: &[String], index: usize) -> Vec<String> {
    let mut fewer = lines.to_vec();
    fewer.remove(index);
    fewer
}

async fn verify(stack: &Stack, tenant: &str, files: &[&Path]) -> (Run, Value) {
    let mut args = vec!["audit", "verify", "--tenant", tenant, "--json"];
    for file in files {
        args.push("--file");
        args.push(file.to_str().unwrap());
    }
    let run = replay(stack, &args).await;
    let report = run.json();
    (run, report)
}

/// Asserts a failed verification (exit 1) names `line` (1-based) and `seq`.
fn assert_broken_at(run: &Run, report: &Value, line: usize, seq: i64, problem: &str) {
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(report["ok"], false);
    let broken = &report["broken"];
    assert_eq!(broken["line"], line, "{report}");
    assert_eq!(broken["seq"], seq, "{report}");
    assert!(
        broken["problem"].as_str().unwrap().contains(problem),
        "{report}"
    );
}

#[tokio::test]
async fn a_stream_export_verifies_offline_and_an_edited_or_deleted_line_breaks_at_that_row() {
    let seeded = seed(20, 400, 0).await;
    let stack = &seeded.stack;
    let tenant = seeded.tenant(1);
    let dir = Dir::new();

    let (run, report) = verify(stack, &tenant, &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(report["source"], "database");
    let rows = report["verified"].as_u64().unwrap();
    assert!(rows > 50, "{report}");

    let export = dir.0.join("export.jsonl");
    replay(
        stack,
        &[
            "stream",
            "--tenant",
            &tenant,
            "--audit",
            "--out",
            export.to_str().unwrap(),
        ],
    )
    .await
    .assert_ok();
    let lines = read_lines(&export);
    assert_eq!(
        lines.len() as u64,
        rows + 1,
        "an event per row, then the head"
    );

    let (run, report) = verify(stack, &tenant, &[&export]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(report["verified"], rows);
    assert_eq!(report["anchored"], true);

    let k = lines.len() / 2;
    let seq = k as i64 + 1;
    let altered_row = dir.write(
        "altered_row.jsonl",
        &edit(&lines, k, |line| {
            // Whatever the row's role was, another one.
            let role = &mut line["audit"]["actor_role"];
            *role = json!(if *role == "admin" {
                "customer"
            } else {
                "admin"
            });
        }),
    );
    let (run, report) = verify(stack, &tenant, &[&altered_row]).await;
    assert_broken_at(&run, &report, k + 1, seq, "altered");

    let altered_event = dir.write(
        "altered_event.jsonl",
        &edit(&lines, k, |line| {
            line["metadata"]["request_id"] = json!("forged-request")
        }),
    );
    let (run, report) = verify(stack, &tenant, &[&altered_event]).await;
    assert_broken_at(&run, &report, k + 1, seq, "metadata");

    let deleted = dir.write("deleted.jsonl", &without(&lines, k));
    let (run, report) = verify(stack, &tenant, &[&deleted]).await;
    // Line k + 1 now holds the row after the deleted one.
    assert_broken_at(&run, &report, k + 1, seq + 1, "missing");

    let last_deleted = dir.write("last_deleted.jsonl", &without(&lines, lines.len() - 2));
    let (run, report) = verify(stack, &tenant, &[&last_deleted]).await;
    assert_broken_at(
        &run,
        &report,
        lines.len() - 1,
        rows as i64,
        "missing at the end",
    );
}

#[tokio::test]
async fn a_nightly_archive_verifies_across_nights_and_an_edited_or_deleted_row_breaks_there() {
    let seeded = seed(21, 400, 0).await;
    let stack = &seeded.stack;
    let tenant = seeded.tenants[2];
    let dir = Dir::new();

    // The archive's shape: one audit row per line, then the chain head.
    let mut conn = stack.owner.acquire().await.unwrap();
    let chain = records(&mut conn, tenant, 0, 1_000_000).await.unwrap();
    assert!(chain.len() > 50);
    let head = |upto: usize| {
        let last = &chain[upto - 1];
        json!({"chain_head": {"tenant_id": tenant, "seq": last.seq, "hash": last.hash}}).to_string()
    };
    let night = |range: std::ops::Range<usize>| {
        let mut lines: Vec<String> = chain[range.clone()]
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        lines.push(head(range.end));
        lines
    };
    let split = chain.len() / 3;
    let first = dir.write("first.jsonl", &night(0..split));
    let second_lines = night(split..chain.len());
    let second = dir.write("second.jsonl", &second_lines);
    let tenant = tenant.to_string();

    let (run, report) = verify(stack, &tenant, &[&first, &second]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(report["verified"], chain.len());
    // Rows alone: the chain verifies, the events' content could not be checked.
    assert_eq!(report["content_checked"], 0);

    let (run, report) = verify(stack, &tenant, &[&second]).await;
    assert_broken_at(&run, &report, 1, split as i64 + 1, "earlier archives");

    let k = 5;
    let edited = dir.write(
        "edited.jsonl",
        &edit(&second_lines, k, |row| {
            row["reason"] = json!("nothing to see")
        }),
    );
    let (run, report) = verify(stack, &tenant, &[&first, &edited]).await;
    assert_broken_at(&run, &report, k + 1, (split + k + 1) as i64, "altered");
    assert!(report["broken"]["file"]
        .as_str()
        .unwrap()
        .ends_with("edited.jsonl"));

    let deleted = dir.write("deleted.jsonl", &without(&second_lines, k));
    let (run, report) = verify(stack, &tenant, &[&first, &deleted]).await;
    assert_broken_at(&run, &report, k + 1, (split + k + 2) as i64, "missing");
}
