//! `PutEvents` against a loopback stand-in for EventBridge that refuses chosen entries on the
//! first attempt: only the refused entries are sent again, and an entry refused every time
//! surfaces as an error naming how many failed. (The emulator never refuses single entries.)

mod support;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use casebook_adapters::aws::eventbridge::{BusEntry, EventBus};
use casebook_adapters::aws::{AwsError, SdkConfig};
use serde_json::{json, Value};
use support::aws_config_at;

/// The `Detail`s of each `PutEvents` request, in order.
#[derive(Default, Clone)]
struct Requests(Arc<Mutex<Vec<Vec<String>>>>);

/// Refuses every entry whose detail is in `refuse_first` on its first attempt, and every
/// entry whose detail is in `refuse_always` on every attempt.
#[derive(Clone)]
struct Refusals {
    first: Vec<&'static str>,
    always: Vec<&'static str>,
}

async fn put_events(
    State((requests, refusals)): State<(Requests, Refusals)>,
    headers: HeaderMap,
    body: Bytes,
) -> Json<Value> {
    assert_eq!(
        headers.get("x-amz-target").and_then(|v| v.to_str().ok()),
        Some("AWSEvents.PutEvents")
    );
    let request: Value = serde_json::from_slice(&body).expect("a JSON request");
    let details: Vec<String> = request["Entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|entry| entry["Detail"].as_str().expect("a detail").to_owned())
        .collect();
    let first_attempt = requests.0.lock().unwrap().is_empty();
    requests.0.lock().unwrap().push(details.clone());
    let results: Vec<Value> = details
        .iter()
        .map(|detail| {
            let refused = refusals.always.contains(&detail.as_str())
                || (first_attempt && refusals.first.contains(&detail.as_str()));
            if refused {
                json!({ "ErrorCode": "InternalFailure", "ErrorMessage": "try again" })
            } else {
                json!({ "EventId": format!("id-{detail}") })
            }
        })
        .collect();
    let failed = results
        .iter()
        .filter(|r| r.get("ErrorCode").is_some())
        .count();
    Json(json!({ "FailedEntryCount": failed, "Entries": results }))
}

async fn fake_eventbridge(refusals: Refusals) -> (SdkConfig, Requests) {
    let requests = Requests::default();
    let app = Router::new()
        .route("/", post(put_events))
        .with_state((requests.clone(), refusals));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (aws_config_at(endpoint).await, requests)
}

fn entries(details: &[&str]) -> Vec<BusEntry> {
    details
        .iter()
        .map(|detail| BusEntry {
            source: "casebook".into(),
            detail_type: "Test".into(),
            detail: (*detail).to_owned(),
        })
        .collect()
}

#[tokio::test]
async fn only_the_entries_the_bus_refused_are_sent_again() {
    let (aws, requests) = fake_eventbridge(Refusals {
        first: vec![r#"{"n":2}"#, r#"{"n":4}"#],
        always: vec![],
    })
    .await;
    let details = [r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#, r#"{"n":4}"#];
    EventBus::new(&aws, "casebook")
        .put(&entries(&details))
        .await
        .expect("published after one retry");
    assert_eq!(
        requests.0.lock().unwrap().clone(),
        vec![
            details.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>(),
            vec![r#"{"n":2}"#.to_owned(), r#"{"n":4}"#.to_owned()],
        ]
    );
}

#[tokio::test]
async fn an_entry_refused_on_every_attempt_is_an_error_and_the_others_are_sent_once() {
    let (aws, requests) = fake_eventbridge(Refusals {
        first: vec![],
        always: vec![r#"{"n":2}"#],
    })
    .await;
    let err = EventBus::new(&aws, "casebook")
        .put(&entries(&[r#"{"n":1}"#, r#"{"n":2}"#]))
        .await
        .expect_err("one entry is never accepted");
    assert!(
        matches!(err, AwsError::EntriesFailed { failed: 1, .. }),
        "{err:?}"
    );
    let requests = requests.0.lock().unwrap().clone();
    assert_eq!(requests[0].len(), 2, "the first attempt sends both");
    assert!(
        requests[1..]
            .iter()
            .all(|r| r == &vec![r#"{"n":2}"#.to_owned()]),
        "retries send only the refused entry: {requests:?}"
    );
}
