//! The API nudges the relay after a committed write, and only then.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use casebook_handlers::http::router;
use casebook_handlers::relay::RelayNudge;
use serde_json::json;
use support::spawn_app;

#[derive(Default)]
struct CountingNudge(AtomicUsize);

#[async_trait::async_trait]
impl RelayNudge for CountingNudge {
    async fn nudge(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_committed_write_nudges_the_relay_once_and_reads_replays_and_refusals_do_not() {
    let mut app = spawn_app().await;
    let nudges = Arc::new(CountingNudge::default());
    app.router = router(app.state.clone().with_nudge(nudges.clone()));
    let count = || nudges.0.load(Ordering::SeqCst);
    let admin = &app.acme.admin;
    let onboarding = json!({ "name": "A practice", "plan": "enterprise" });

    let (status, body) = app
        .post_with_key(admin, "/v1/tenant", onboarding.clone(), "onboard-1")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(count(), 1, "the committed write nudged");

    let (status, _) = app
        .post_with_key(admin, "/v1/tenant", onboarding, "onboard-1")
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(count(), 1, "an idempotent replay committed nothing new");

    let (status, _) = app.post(admin, "/v1/tenant", json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(count(), 1, "a refused command committed nothing");

    let (status, _, _) = app.get_raw(&app.acme.customer, "/v1/sessions").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(count(), 1, "reads never nudge");
}
