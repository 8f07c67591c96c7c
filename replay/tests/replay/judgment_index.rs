//! `judgment-index rebuild | status | verify | swap`: the live index of a test model rebuilt
//! for the local MiniLM by the built binary, killed half way and resumed, verified, swapped
//! in, and searched with the new model.

use std::sync::Arc;
use std::time::{Duration, Instant};

use casebook_adapters::ai::local::MINILM_ONNX_MODEL_ID;
use casebook_adapters::ai::{AiConfig, AiProviders};
use casebook_domain::ports::Embedder;
use casebook_projections::judgment_index::{self, IndexError, JudgmentIndexSubscription};
use casebook_projections::runner::Runner;
use casebook_projections::status::status_of;
use casebook_tests::DbRole;

use crate::helpers::{command, replay, seed};
use crate::support::Stack;
use crate::words::{words_vector, WORDS};

/// Runs the live index with `embedder` until it has applied the whole log.
async fn index_live(stack: &Stack, embedder: Arc<dyn Embedder>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        Runner::new(stack.projector.clone())
            .with_subscription(JudgmentIndexSubscription::new(embedder.clone()))
            .with_config(Stack::config(500))
            .drain(Duration::from_secs(30))
            .await
            .expect("no subscription panics");
        let mut conn = stack.owner.acquire().await.unwrap();
        let lag = status_of(&mut conn, judgment_index::SUBSCRIPTION)
            .await
            .unwrap()
            .map(|status| status.lag_events);
        if lag == Some(0) {
            return;
        }
        assert!(Instant::now() < deadline, "the live index never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_index_is_rebuilt_for_another_model_resumed_after_a_kill_verified_and_swapped_in() {
    let seeded = seed(33, 1_500, 0).await;
    let stack = &seeded.stack;
    index_live(stack, Arc::new(WORDS)).await;
    let live_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM judgment_index")
        .fetch_one(&stack.owner)
        .await
        .unwrap();
    assert!(live_rows > 10, "a history with judgments: {live_rows}");

    // Killed part way through its batches…
    let mut child = command(
        stack,
        &[
            "judgment-index",
            "rebuild",
            "--model",
            "minilm",
            "--batch-size",
            "20",
        ],
    )
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let progress: Option<i64> = sqlx::query_scalar(
            "SELECT checkpoint_position FROM subscriptions WHERE name = 'judgment_index#rebuild'",
        )
        .fetch_optional(&stack.owner)
        .await
        .unwrap();
        if progress.is_some_and(|p| p > 0) {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the rebuild ended first"
        );
        assert!(Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().await.unwrap();

    // …resumed (once the server has let the killed session's lock go).
    let deadline = Instant::now() + Duration::from_secs(30);
    let resumed = loop {
        let run = replay(
            stack,
            &[
                "judgment-index",
                "rebuild",
                "--model",
                "minilm",
                "--resume",
                "--json",
            ],
        )
        .await;
        if run.code == 3 && run.stderr.contains("another process") && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        break run;
    };
    let report = resumed.assert_ok().json();
    assert_eq!(report["caught_up"], true, "{report}");
    assert_eq!(report["model"], MINILM_ONNX_MODEL_ID);
    assert!(report["resumed_from"].as_i64().unwrap() > 0, "{report}");

    let status = replay(stack, &["judgment-index", "status", "--json"]).await;
    let status = status.assert_ok().json();
    assert_eq!(status["live_model"], WORDS.model_id);
    assert_eq!(status["green"]["model"], MINILM_ONNX_MODEL_ID);
    assert_eq!(status["green"]["dimension"], 384);
    assert_eq!(status["green"]["rows"], live_rows);
    assert_eq!(status["green"]["graphs"], status["green"]["partitions"]);

    let verify = replay(stack, &["judgment-index", "verify", "--json"]).await;
    let verdict = verify.assert_ok().json();
    assert_eq!(verdict["passes"], true, "{verdict}");
    let tenants = verdict["tenants"].as_array().unwrap();
    assert_eq!(tenants.len(), seeded.tenants.len(), "{verdict}");
    assert!(tenants
        .iter()
        .all(|t| t["expected"] == t["green"] && t["green"] == t["live"]));
    assert!(verdict["sampled"].as_u64().unwrap() > 10, "{verdict}");

    let swap = replay(stack, &["judgment-index", "swap", "--json"]).await;
    assert_eq!(swap.assert_ok().json()["swapped"], true);
    let status = replay(stack, &["judgment-index", "status", "--json"]).await;
    let status = status.assert_ok().json();
    assert_eq!(status["live_model"], MINILM_ONNX_MODEL_ID);
    assert_eq!(status["live_rows"], live_rows);
    assert!(status["green"].is_null());

    // Searched as the product searches, with the new model; the old one is refused.
    let minilm = AiProviders::local(&AiConfig::from_env().unwrap()).embedder;
    let (tenant, title): (uuid::Uuid, String) =
        sqlx::query_as("SELECT tenant_id, title FROM judgment_index LIMIT 1")
            .fetch_one(&stack.maintainer)
            .await
            .unwrap();
    let tenant = casebook_domain::ids::TenantId::from_uuid(tenant);
    let searcher = stack.db.pool(DbRole::Search, 1).await;
    let mut conn = searcher.acquire().await.unwrap();
    let query = minilm
        .embed(std::slice::from_ref(&title))
        .await
        .unwrap()
        .remove(0);
    let hits = judgment_index::search(&mut conn, tenant, minilm.model_id(), &query, 10)
        .await
        .unwrap();
    assert!(
        hits.iter().any(|hit| hit.title.as_str() == title),
        "{hits:?}"
    );
    let refused =
        judgment_index::search(&mut conn, tenant, WORDS.model_id, &words_vector(&title), 10)
            .await
            .unwrap_err();
    assert!(
        matches!(refused, IndexError::QueryModel { .. }),
        "{refused:?}"
    );
}

#[tokio::test]
async fn verify_and_swap_without_a_rebuild_are_usage_errors() {
    let seeded = seed(34, 50, 0).await;
    for step in ["verify", "swap"] {
        let run = replay(&seeded.stack, &["judgment-index", step]).await;
        assert_eq!(run.code, 2, "{run:?}");
        assert!(run.stderr.contains("judgment-index rebuild"), "{run:?}");
    }
}
