//! `stream`, `state`, `status`, exit codes and the auditor's read-only connection.

use casebook_adapters::aws::{s3, setup, shared_config};
use casebook_replay::db::auditor_pool;
use serde_json::Value;

use crate::helpers::{events_of, replay, seed};

fn positions(lines: &[Value]) -> Vec<i64> {
    lines
        .iter()
        .map(|line| line["global_position"].as_i64().expect("a position"))
        .collect()
}

#[tokio::test]
async fn stream_returns_exactly_the_tenants_events_in_order_and_nothing_of_other_tenants() {
    let seeded = seed(7, 2_000, 2_500).await;
    let stack = &seeded.stack;
    let mut streamed_total = 0;
    for (i, tenant) in seeded.tenants.iter().enumerate() {
        let run = replay(stack, &["stream", "--tenant", &seeded.tenant(i)]).await;
        let lines = run.assert_ok().json_lines();
        let expected = events_of(stack, &tenant.to_string()).await;
        assert!(expected.len() > 100, "a tenant has a real history");
        assert_eq!(
            positions(&lines),
            expected.iter().map(|e| e.0).collect::<Vec<_>>()
        );
        for (line, (_, payload, _)) in lines.iter().zip(&expected) {
            assert_eq!(line["tenant_id"], tenant.to_string());
            assert_eq!(&line["payload"], payload);
            assert_eq!(line["metadata"]["tenant_id"], tenant.to_string());
            assert!(line["recorded_at"].is_string() && line["event_type"].is_string());
        }
        streamed_total += lines.len();
    }
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&stack.owner)
        .await
        .unwrap();
    assert!(all > 2_000, "thousands of events: {all}");
    assert_eq!(streamed_total as i64, all, "every event is some tenant's");
}

#[tokio::test]
async fn until_and_from_cut_at_the_right_event_by_position_and_by_time() {
    let seeded = seed(8, 500, 500).await;
    let stack = &seeded.stack;
    let tenant = seeded.tenant(0);
    let expected = events_of(stack, &tenant).await;
    let all: Vec<i64> = expected.iter().map(|e| e.0).collect();

    let middle = all[all.len() / 2];
    let until = replay(
        stack,
        &[
            "stream",
            "--tenant",
            &tenant,
            "--until",
            &middle.to_string(),
        ],
    )
    .await;
    assert_eq!(
        positions(&until.assert_ok().json_lines()),
        all[..=all.len() / 2]
    );
    let from = replay(
        stack,
        &["stream", "--tenant", &tenant, "--from", &middle.to_string()],
    )
    .await;
    assert_eq!(
        positions(&from.assert_ok().json_lines()),
        all[all.len() / 2..]
    );

    let time = seeded.snapshot.time;
    let until_time = replay(
        stack,
        &["stream", "--tenant", &tenant, "--until", &time.to_rfc3339()],
    )
    .await;
    let before: Vec<i64> = expected
        .iter()
        .filter(|e| e.2 <= time)
        .map(|e| e.0)
        .collect();
    assert!(!before.is_empty() && before.len() < all.len());
    assert_eq!(positions(&until_time.assert_ok().json_lines()), before);

    let no_such = replay(
        stack,
        &["stream", "--tenant", &tenant, "--until", "999999999"],
    )
    .await;
    assert_eq!(no_such.code, 2, "{no_such:?}");
}

#[tokio::test]
async fn filters_keep_one_aggregate_or_one_event_type_and_a_table_reads_as_rows() {
    let seeded = seed(11, 400, 0).await;
    let stack = &seeded.stack;
    let tenant = seeded.tenant(0);
    let diagnosis: String = sqlx::query_scalar(
        "SELECT aggregate_id FROM events WHERE tenant_id = $1::uuid AND aggregate_type = 'Diagnosis'
          ORDER BY sequence DESC LIMIT 1",
    )
    .bind(&tenant)
    .fetch_one(&stack.owner)
    .await
    .unwrap();
    let one = replay(
        stack,
        &[
            "stream",
            "--tenant",
            &tenant,
            "--aggregate",
            &format!("Diagnosis/{diagnosis}"),
        ],
    )
    .await;
    let lines = one.assert_ok().json_lines();
    assert!(!lines.is_empty());
    let mut sequence = 0;
    for line in &lines {
        assert_eq!(line["aggregate_id"], diagnosis);
        sequence += 1;
        assert_eq!(line["sequence"], sequence, "its events, in order");
    }
    let decisions = replay(
        stack,
        &[
            "stream",
            "--tenant",
            &tenant,
            "--event-type",
            "QuerySubmitted",
        ],
    )
    .await;
    let lines = decisions.assert_ok().json_lines();
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|l| l["event_type"] == "QuerySubmitted"));

    let table = replay(stack, &["stream", "--tenant", &tenant, "--format", "table"]).await;
    let rows = table.assert_ok().stdout.lines().count();
    assert_eq!(rows, events_of(stack, &tenant).await.len());
}

#[tokio::test]
async fn state_as_of_a_position_or_a_time_equals_what_the_read_model_showed_then() {
    let seeded = seed(12, 500, 700).await;
    let stack = &seeded.stack;
    let tenant = seeded.tenant(0);
    let snapshot = &seeded.snapshot;
    assert!(
        snapshot.diagnoses.len() >= 5,
        "{}",
        snapshot.diagnoses.len()
    );
    let mut changed_later = 0;
    for row in &snapshot.diagnoses {
        let aggregate = format!("Diagnosis/{}", row.id);
        for as_of in [snapshot.position.to_string(), snapshot.time.to_rfc3339()] {
            let run = replay(
                stack,
                &["state", &aggregate, "--tenant", &tenant, "--as-of", &as_of],
            )
            .await;
            let state = &run.assert_ok().json()["state"]["state"];
            assert_eq!(
                state["status"]["status"], row.status,
                "{aggregate} as of {as_of}"
            );
            assert_eq!(state["attempt"], row.attempt, "{aggregate} as of {as_of}");
            assert_eq!(state["confidence"].as_f64(), row.confidence, "{aggregate}");
        }
        let now = replay(stack, &["state", &aggregate, "--tenant", &tenant]).await;
        if now.assert_ok().json()["state"]["state"]["status"]["status"] != row.status {
            changed_later += 1;
        }
    }
    assert!(changed_later > 0, "the history went on after the snapshot");

    let other = replay(
        stack,
        &[
            "state",
            &format!("Diagnosis/{}", snapshot.diagnoses[0].id),
            "--tenant",
            &seeded.tenant(1),
        ],
    )
    .await;
    assert_eq!(
        other.code, 2,
        "another tenant's aggregate is not found: {other:?}"
    );
}

#[tokio::test]
async fn status_lists_every_subscription_with_its_checkpoint_and_lag() {
    let seeded = seed(11, 100, 0).await;
    let run = replay(&seeded.stack, &["status", "--json"]).await;
    let rows = run.assert_ok().json_lines();
    for name in [
        "tenants",
        "sessions",
        "diagnoses",
        "decisions",
        "tenant_usage",
        "audit",
    ] {
        let row = rows
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {rows:?}"));
        assert_eq!(row["state"], "running");
        assert_eq!(row["lag_events"], 0);
        assert!(row["global_position"].as_i64().unwrap() > 0);
    }
    let table = replay(&seeded.stack, &["status"]).await;
    assert!(table.assert_ok().stdout.contains("diagnoses"));
}

#[tokio::test]
async fn an_export_to_s3_is_the_same_bytes_as_an_export_to_a_file() {
    let seeded = seed(12, 300, 0).await;
    let stack = &seeded.stack;
    let tenant = seeded.tenant(0);
    let config = shared_config().await;
    let bucket = format!("replay-{}", uuid::Uuid::new_v4().simple());
    setup::ensure_bucket(&config, &bucket).await.unwrap();
    let key = format!("{tenant}/export.jsonl");
    let dir = std::env::temp_dir().join(format!("replay-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("export.jsonl");

    let to_s3 = format!("s3://{bucket}/{key}");
    replay(
        stack,
        &["stream", "--tenant", &tenant, "--audit", "--out", &to_s3],
    )
    .await
    .assert_ok();
    replay(
        stack,
        &[
            "stream",
            "--tenant",
            &tenant,
            "--audit",
            "--out",
            file.to_str().unwrap(),
        ],
    )
    .await
    .assert_ok();

    let object = s3::client(&config)
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    let body = object.body.collect().await.unwrap().into_bytes();
    let local = std::fs::read(&file).unwrap();
    assert!(local.len() > 10_000);
    assert_eq!(body.as_ref(), local.as_slice());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_auditor_connection_reads_but_cannot_write() {
    let seeded = seed(13, 20, 0).await;
    let tenant = *seeded.tenants[0].as_uuid();
    let pool = auditor_pool(seeded.stack.db.options(), Some(tenant))
        .await
        .unwrap();
    let role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(role, "casebook_auditor");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(count > 0);
    for write in [
        "UPDATE subscriptions SET last_error = 'x'",
        "DELETE FROM audit_log",
        "CREATE TABLE mischief (id int)",
    ] {
        let err = sqlx::query(write).execute(&pool).await.unwrap_err();
        let code = err.as_database_error().and_then(|e| e.code()).unwrap();
        // 25006: read-only transaction; 42501: insufficient privilege.
        assert!(code == "25006" || code == "42501", "{write}: {err}");
    }
}

#[tokio::test]
async fn usage_errors_exit_with_2_and_runtime_errors_with_3() {
    let seeded = seed(14, 10, 0).await;
    let stack = &seeded.stack;
    let bad_uuid = replay(stack, &["stream", "--tenant", "not-a-uuid"]).await;
    assert_eq!(bad_uuid.code, 2, "{bad_uuid:?}");
    let holes = replay(
        stack,
        &[
            "stream",
            "--tenant",
            &seeded.tenant(0),
            "--audit",
            "--event-type",
            "DecisionMade",
        ],
    )
    .await;
    assert_eq!(holes.code, 2, "a filtered export cannot verify: {holes:?}");
    let bad_projection = replay(stack, &["verify", "invoices"]).await;
    assert_eq!(bad_projection.code, 2, "{bad_projection:?}");
    let no_rebuild = replay(stack, &["verify", "diagnoses"]).await;
    assert_eq!(no_rebuild.code, 3, "{no_rebuild:?}");
    assert!(no_rebuild.stderr.contains("no rebuild"), "{no_rebuild:?}");
    let unreachable = crate::helpers::command(stack, &["status"])
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .await
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(3));
}
