//! `audit verify` from the database and offline from both kinds of file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use casebook_domain::any_event::AnyEvent;
use casebook_domain::decision::{DecisionEvent, Verdict};
use casebook_domain::diagnosis::DiagnosisEvent;
use casebook_domain::judgment::JudgmentEvent;
use casebook_domain::session::SessionEvent;
use casebook_domain::tenant::TenantEvent;
use casebook_projections::audit::records;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::helpers::{replay, seed, Run};
use crate::support::{Driver, Stack};

/// The migration that gave audit rows their event's digest (encoding 2).
const EVENT_DIGEST_MIGRATION: i64 = 20261206000001;

pub(crate) struct Dir(pub(crate) PathBuf);

impl Dir {
    pub(crate) fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("replay-audit-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub(crate) fn write(&self, name: &str, lines: &[String]) -> PathBuf {
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

pub(crate) fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

pub(crate) fn edit(lines: &[String], index: usize, change: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut edited = lines.to_vec();
    let mut value: Value = serde_json::from_str(&edited[index]).unwrap();
    change(&mut value);
    edited[index] = value.to_string();
    edited
}

pub(crate) fn without(lines: &[String], index: usize) -> Vec<String> {
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
pub(crate) fn assert_broken_at(run: &Run, report: &Value, line: usize, seq: i64, problem: &str) {
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

/// Exports `tenant`'s events with their audit rows and returns the export's lines.
async fn export(stack: &Stack, tenant: &str, dir: &Dir) -> (PathBuf, Vec<String>) {
    let export = dir.0.join("export.jsonl");
    replay(
        stack,
        &[
            "stream",
            "--tenant",
            tenant,
            "--audit",
            "--out",
            export.to_str().unwrap(),
        ],
    )
    .await
    .assert_ok();
    let lines = read_lines(&export);
    (export, lines)
}

#[tokio::test]
async fn a_chain_upgraded_from_encoding_1_verifies_in_the_database_and_from_an_export() {
    // A deployment before event digests: its audit projection chained every event in
    // encoding 1. Then the upgrade, and more history in encoding 2.
    let stack = Stack::migrated_before(EVENT_DIGEST_MIGRATION).await;
    let mut driver = Driver::new(stack.app.clone(), 91);
    driver.onboard(1).await;
    driver.run(80).await;
    let v1 = stack.chain_in_encoding_1().await as u64;
    stack.upgrade().await;
    driver.run(80).await;
    stack.drain_all(500).await;
    let tenant = driver.tenants[0].to_string();
    let dir = Dir::new();

    let (run, report) = verify(&stack, &tenant, &[]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let rows = report["verified"].as_u64().unwrap();
    assert!(rows > v1 && v1 > 20, "{report}");
    assert_eq!(report["content_checked"], rows - v1, "{report}");

    let (file, lines) = export(&stack, &tenant, &dir).await;
    let encodings: Vec<i64> = lines[..lines.len() - 1]
        .iter()
        .map(|line| {
            let line: Value = serde_json::from_str(line).unwrap();
            line["audit"]["encoding"].as_i64().unwrap()
        })
        .collect();
    let upgraded = encodings.partition_point(|&e| e == 1);
    assert_eq!(upgraded as u64, v1);
    assert!(encodings[upgraded..].iter().all(|&e| e == 2));

    let (run, report) = verify(&stack, &tenant, &[&file]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(report["verified"], rows);
    assert_eq!(report["content_checked"], rows - v1);
    assert_eq!(report["anchored"], true);
    let text = replay(
        &stack,
        &[
            "audit",
            "verify",
            "--tenant",
            &tenant,
            "--file",
            file.to_str().unwrap(),
        ],
    )
    .await;
    assert!(
        text.stdout
            .contains(&format!("the content of {v1} rows' events was not checked")),
        "{text:?}"
    );

    // Either side of the upgrade, an altered line breaks the chain there.
    let row_1 = upgraded / 2;
    let altered_row = dir.write(
        "altered_v1_row.jsonl",
        &edit(&lines, row_1, |line| {
            line["audit"]["source"] = json!("scheduler")
        }),
    );
    let (run, report) = verify(&stack, &tenant, &[&altered_row]).await;
    assert_broken_at(&run, &report, row_1 + 1, row_1 as i64 + 1, "altered");
    let event_2 = upgraded + (lines.len() - 1 - upgraded) / 2;
    let altered_event = dir.write(
        "altered_v2_event.jsonl",
        &edit(&lines, event_2, |line| {
            line["payload"]["edited"] = json!(true)
        }),
    );
    let (run, report) = verify(&stack, &tenant, &[&altered_event]).await;
    assert_broken_at(
        &run,
        &report,
        event_2 + 1,
        event_2 as i64 + 1,
        "payload, metadata or identity was altered",
    );
}

/// Every event type of one aggregate, from its event enum's own serde: a `type` tag it
/// doesn't know is refused with the list of the ones it does.
fn event_types<E: DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
    let refused = serde_json::from_value::<E>(json!({"type": "?"}))
        .unwrap_err()
        .to_string();
    let (_, expected) = refused.split_once("expected").expect(&refused);
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Where in each kind of event's payload an edit goes: content the audit row does not
/// extract wherever there is some. The match is exhaustive, so a new event type (or
/// aggregate) doesn't compile until it has its edit here.
fn fields_to_edit(event: &AnyEvent) -> &'static [&'static str] {
    match event {
        AnyEvent::Tenant(event) => match event {
            TenantEvent::TenantOnboarded { .. } => &["/name"],
            TenantEvent::PlanChanged { .. } => &["/plan"],
            TenantEvent::AutoResolveThresholdSet { .. } => &["/threshold"],
            TenantEvent::ModelPolicySet { .. } => &["/policy"],
            TenantEvent::TenantSuspended { .. } => &["/reason"],
            // No field but its tag: one is added.
            TenantEvent::TenantReactivated => &[""],
            TenantEvent::UsageKeyAssigned { .. } => &["/api_key_id"],
            TenantEvent::FinetuneExported { .. } => &["/export/examples", "/export/key"],
            TenantEvent::TenantSignedUp { .. } => &["/name", "/admin/name"],
            TenantEvent::UserInvited { .. } => &["/invitee/name"],
            TenantEvent::UserRoleChanged { .. } => &["/previous_role"],
            TenantEvent::UserProvisioned { .. } => &["/user_id"],
            // The member's address and the access are the row's; nothing else is in them.
            TenantEvent::UserDisabled { .. } | TenantEvent::UserEnabled { .. } => &[""],
            // The row keeps the threshold; the budget's figures are only in the event.
            TenantEvent::TokenBudgetThresholdCrossed { .. } => &["/tokens_used", "/month"],
            // The row names the subject; who asked is only in the event.
            TenantEvent::SubjectErased { .. } => &["/erased_by"],
            // The row's actor comes from the metadata; the payload's copy is only in the event.
            TenantEvent::TenantErased { .. } => &["/erased_by"],
            // The row names the model and the outcome; the artifact and the scores are only
            // in the event.
            TenantEvent::ModelRegistered { .. } => &["/artifact/key", "/artifact/size_bytes"],
            TenantEvent::ModelPromoted { .. } => &["/evaluation/candidate_score"],
            TenantEvent::ModelRejected { .. } => &["/evaluation/baseline_score"],
            TenantEvent::ModelRetired { .. } => &["/retired_by"],
        },
        AnyEvent::Session(event) => match event {
            SessionEvent::SessionOpened { .. } => &["/subject", "/attachments"],
            SessionEvent::QuerySubmitted { .. } => &["/text"],
            SessionEvent::SessionClosed { .. } => &["/closed_by"],
        },
        AnyEvent::Diagnosis(event) => match event {
            DiagnosisEvent::DiagnosisRequested { .. } => &["/query"],
            DiagnosisEvent::ContextRetrieved { .. } => &["/judgments", "/attempt"],
            DiagnosisEvent::DiagnosisProposed { .. } => &["/text", "/findings", "/confidence"],
            DiagnosisEvent::DiagnosisFailed { .. } => &["/reason", "/retryable"],
            DiagnosisEvent::DiagnosisDeferred { .. } => &["/deferral/tokens_used"],
            DiagnosisEvent::DiagnosisResumed { .. } => &["/to"],
            DiagnosisEvent::DiagnosisResolved { .. } => &["/outcome"],
        },
        AnyEvent::Decision(DecisionEvent::DecisionMade { verdict, .. }) => match verdict {
            Verdict::Amended { .. } => &["/verdict/text"],
            Verdict::Approved | Verdict::Rejected { .. } | Verdict::AutoApproved { .. } => {
                &["/verdict", "/decided_by"]
            }
        },
        AnyEvent::Judgment(event) => match event {
            JudgmentEvent::JudgmentCaptured { .. } => &["/content/body"],
            JudgmentEvent::JudgmentRevised { .. } => &["/content/title", "/content/tags"],
            JudgmentEvent::JudgmentRetired { .. } => &["/reason"],
        },
    }
}

/// Changes one JSON value, whatever its kind.
fn alter(value: &mut Value) {
    match value {
        Value::Null => *value = json!("edited"),
        Value::Bool(flag) => *flag = !*flag,
        Value::Number(number) => {
            *value = match number.as_i64() {
                Some(n) => json!(n + 1),
                None => json!(number.as_f64().unwrap() / 2.0),
            }
        }
        Value::String(text) => text.push_str(" (edited)"),
        Value::Array(items) => items.push(json!("edited")),
        Value::Object(members) => {
            members.insert("edited".into(), json!(true));
        }
    }
}

/// The first line of each kind of event in an export's `lines` (its closing line aside), with
/// the fields its edits go to.
fn first_of_each_kind(lines: &[String]) -> BTreeMap<(String, &'static [&'static str]), usize> {
    let mut first = BTreeMap::new();
    for (index, line) in lines[..lines.len() - 1].iter().enumerate() {
        let line: Value = serde_json::from_str(line).unwrap();
        let event_type = line["event_type"].as_str().unwrap().to_owned();
        let event = AnyEvent::decode(
            line["aggregate_type"].as_str().unwrap(),
            &event_type,
            line["event_version"].as_str().unwrap(),
            line["payload"].clone(),
        )
        .unwrap();
        first
            .entry((event_type, fields_to_edit(&event)))
            .or_insert(index);
    }
    first
}

/// Each edit of `first`'s lines breaks `tenant`'s export at that line.
async fn assert_each_edit_breaks(
    stack: &Stack,
    tenant: &str,
    dir: &Dir,
    lines: &[String],
    first: &BTreeMap<(String, &'static [&'static str]), usize>,
) {
    for ((event_type, fields), &index) in first {
        for field in *fields {
            let edited = dir.write(
                "edited.jsonl",
                &edit(lines, index, |line| {
                    let value = line["payload"]
                        .pointer_mut(field)
                        .unwrap_or_else(|| panic!("{event_type} has {field}"));
                    alter(value);
                }),
            );
            let (run, report) = verify(stack, tenant, &[&edited]).await;
            assert_eq!(run.code, 1, "{event_type}{field}: {run:?}");
            assert_broken_at(&run, &report, index + 1, index as i64 + 1, "altered");
        }
    }
}

#[tokio::test]
async fn an_export_whose_event_of_any_type_was_edited_moved_or_repeated_fails_at_that_line() {
    let stack = Stack::new().await;
    let mut driver = Driver::new(stack.app.clone(), 97);
    driver.onboard(1).await;
    driver.run(600).await;
    driver.record_finetune_export(driver.tenants[0]).await;
    driver.record_usage_key(driver.tenants[0]).await;
    driver.record_budget_threshold(driver.tenants[0]).await;
    driver.model_lifecycle(driver.tenants[0]).await;
    driver.erase_subject(driver.tenants[0]).await;
    // A tenant is created once, by onboarding or by sign-up: the second kind, with the people
    // events, is a second tenant's history.
    let signed_up = driver.sign_up().await;
    driver.people_work(signed_up).await;
    driver.erase_tenant(signed_up).await;
    stack.drain_all(500).await;
    let tenant = driver.tenants[0].to_string();
    let dir = Dir::new();
    let (file, lines) = export(&stack, &tenant, &dir).await;
    let (run, report) = verify(&stack, &tenant, &[&file]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let events = lines.len() - 1;
    assert_eq!(report["content_checked"], events, "{report}");
    let people_tenant = signed_up.to_string();
    let people_dir = Dir::new();
    let (people_file, people_lines) = export(&stack, &people_tenant, &people_dir).await;
    let (run, _) = verify(&stack, &people_tenant, &[&people_file]).await;
    assert_eq!(run.code, 0, "{run:?}");

    let first = first_of_each_kind(&lines);
    let people_first = first_of_each_kind(&people_lines);
    let every_type: BTreeSet<String> = [
        event_types::<TenantEvent>(),
        event_types::<SessionEvent>(),
        event_types::<DecisionEvent>(),
        event_types::<DiagnosisEvent>(),
        event_types::<JudgmentEvent>(),
    ]
    .concat()
    .into_iter()
    .collect();
    assert_eq!(every_type.len(), 35, "{every_type:?}");
    let exported: BTreeSet<String> = first
        .keys()
        .chain(people_first.keys())
        .map(|(t, _)| t.clone())
        .collect();
    assert_eq!(exported, every_type, "the histories hold every event type");
    assert!(
        first.keys().any(|(_, fields)| fields == &["/verdict/text"]),
        "an amended decision among them"
    );

    assert_each_edit_breaks(&stack, &tenant, &dir, &lines, &first).await;
    assert_each_edit_breaks(
        &stack,
        &people_tenant,
        &people_dir,
        &people_lines,
        &people_first,
    )
    .await;

    let k = events / 2;
    let seq = k as i64 + 1;
    let metadata = dir.write(
        "metadata.jsonl",
        &edit(&lines, k, |line| alter(&mut line["metadata"]["actor_role"])),
    );
    let (run, report) = verify(&stack, &tenant, &[&metadata]).await;
    assert_broken_at(
        &run,
        &report,
        k + 1,
        seq,
        "payload, metadata or identity was altered",
    );

    let deleted = dir.write("deleted.jsonl", &without(&lines, k));
    let (run, report) = verify(&stack, &tenant, &[&deleted]).await;
    assert_broken_at(&run, &report, k + 1, seq + 1, "missing");

    let mut reordered_lines = lines.clone();
    reordered_lines.swap(k, k + 1);
    let reordered = dir.write("reordered.jsonl", &reordered_lines);
    let (run, report) = verify(&stack, &tenant, &[&reordered]).await;
    assert_broken_at(&run, &report, k + 1, seq + 1, "out of order");

    let mut duplicated_lines = lines.clone();
    duplicated_lines.insert(k + 1, lines[k].clone());
    let duplicated = dir.write("duplicated.jsonl", &duplicated_lines);
    let (run, report) = verify(&stack, &tenant, &[&duplicated]).await;
    assert_broken_at(&run, &report, k + 2, seq, "duplicated");
}
