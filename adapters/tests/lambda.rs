//! Asynchronous Lambda invocations against a loopback stand-in for the Lambda API (the
//! emulator would need docker to run a function): the request is an `Event` invocation of
//! the named function with the payload, and a refusal is an error.

mod support;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use casebook_adapters::aws::lambda::Function;
use casebook_adapters::aws::SdkConfig;
use support::aws_config_at;

/// One request the fake received: the function, `X-Amz-Invocation-Type`, the payload.
type Invocation = (String, Option<String>, Bytes);

#[derive(Default, Clone)]
struct Seen(Arc<Mutex<Vec<Invocation>>>);

async fn invocations(
    State((seen, status)): State<(Seen, StatusCode)>,
    Path(function): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let kind = headers
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    seen.0.lock().unwrap().push((function, kind, body));
    status
}

/// A fake Lambda API answering `status`, and a configuration pointing at it.
async fn fake_lambda(status: StatusCode) -> (SdkConfig, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route(
            "/2015-03-31/functions/{function}/invocations",
            post(invocations),
        )
        .with_state((seen.clone(), status));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (aws_config_at(endpoint).await, seen)
}

#[tokio::test]
async fn an_asynchronous_invoke_queues_an_event_invocation_of_the_function() {
    let (aws, seen) = fake_lambda(StatusCode::ACCEPTED).await;
    let function = Function::new(&aws, "casebook-projector");
    assert_eq!(function.name(), "casebook-projector");
    function
        .invoke_async(br#"{"nudge":true}"#)
        .await
        .expect("accepted");
    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(
            "casebook-projector".to_owned(),
            Some("Event".to_owned()),
            Bytes::from_static(br#"{"nudge":true}"#)
        )]
    );
}

#[tokio::test]
async fn a_refused_or_synchronous_answer_is_an_error() {
    for status in [StatusCode::OK, StatusCode::TOO_MANY_REQUESTS] {
        let (aws, _) = fake_lambda(status).await;
        let result = Function::new(&aws, "casebook-projector")
            .invoke_async(b"{}")
            .await;
        assert!(result.is_err(), "{status}: {result:?}");
    }
}
