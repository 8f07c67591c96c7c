//! `rebuild` killed half way, resumed, verified and swapped in.

use std::time::{Duration, Instant};

use casebook_projections::projection::ProjectionId;

use crate::helpers::{command, replay, seed};

#[tokio::test]
async fn a_rebuild_killed_half_way_resumes_and_verify_reports_equality() {
    let seeded = seed(30, 800, 0).await;
    let stack = &seeded.stack;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&stack.owner)
        .await
        .unwrap();

    let mut child = command(stack, &["rebuild", "all", "--batch-size", "10"])
        .spawn()
        .unwrap();
    // Wait until every projection's rebuild has committed some batches, but not all.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let progress: Vec<i64> = sqlx::query_scalar(
            "SELECT checkpoint_position FROM subscriptions WHERE name LIKE '%#rebuild'",
        )
        .fetch_all(&stack.owner)
        .await
        .unwrap();
        if progress.len() == ProjectionId::ALL.len() && progress.iter().all(|p| *p > 0) {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the rebuild ended first"
        );
        assert!(Instant::now() < deadline, "no progress: {progress:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().await.unwrap();
    let applied: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events e JOIN subscriptions s ON s.name = 'audit#rebuild'
          WHERE (e.transaction_id, e.global_position) <= (s.checkpoint_tx, s.checkpoint_position)",
    )
    .fetch_one(&stack.owner)
    .await
    .unwrap();
    assert!(applied > 0 && applied < total, "{applied} of {total}");

    // The killed session's locks go when the server notices the dead connection.
    let deadline = Instant::now() + Duration::from_secs(30);
    let resumed = loop {
        let run = replay(stack, &["rebuild", "all", "--resume", "--json"]).await;
        if run.code == 3 && run.stderr.contains("another process") && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        break run;
    };
    let report = resumed.assert_ok().json();
    assert_eq!(report["caught_up"], true);
    assert!(report["resumed_from"].as_i64().unwrap() > 0, "{report}");
    assert!(report["applied"].as_i64().unwrap() < total, "{report}");

    let verify = replay(stack, &["verify", "all", "--json"]).await;
    let verdict = verify.assert_ok().json();
    assert_eq!(verdict["matches"], true);
    assert!(verdict["tables"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["matches"] == true && t["live_rows"] == t["rebuilt_rows"]));

    replay(stack, &["swap", "all"]).await.assert_ok();
    let leftover: i64 =
        sqlx::query_scalar("SELECT count(*) FROM subscriptions WHERE name LIKE '%#rebuild%'")
            .fetch_one(&stack.owner)
            .await
            .unwrap();
    assert_eq!(leftover, 0);
}

#[tokio::test]
async fn verify_exits_1_and_names_the_first_differing_key_when_a_live_row_was_changed() {
    let seeded = seed(31, 200, 0).await;
    let stack = &seeded.stack;
    replay(stack, &["rebuild", "diagnoses"]).await.assert_ok();
    let changed: uuid::Uuid = sqlx::query_scalar(
        "UPDATE diagnoses SET attempt = attempt + 7
          WHERE diagnosis_id = (SELECT diagnosis_id FROM diagnoses ORDER BY diagnosis_id LIMIT 1)
         RETURNING diagnosis_id",
    )
    .fetch_one(&stack.owner)
    .await
    .unwrap();
    let verify = replay(stack, &["verify", "diagnoses", "--json"]).await;
    assert_eq!(verify.code, 1, "{verify:?}");
    let verdict = verify.json();
    assert_eq!(verdict["matches"], false);
    let first = verdict["tables"][0]["first_difference"].as_str().unwrap();
    assert!(first.contains(&changed.to_string()), "{verdict}");
}
