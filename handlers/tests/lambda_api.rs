//! The `api` Lambda's view: an API Gateway REST proxy event (with the authorizer's context)
//! through the same router gives the same answer as the local server.

mod support;

use axum::http::StatusCode;
use serde_json::json;
use support::{json_body, spawn_app};
use uuid::Uuid;

fn event(template: &str, token: &str, tenant: &str, session: Uuid) -> lambda_http::Request {
    let json = template
        .replace("__TOKEN__", token)
        .replace("__SUB__", "from-the-authorizer")
        .replace("__TENANT__", tenant)
        .replace("__SESSION__", &session.to_string());
    lambda_http::request::from_str(&json).expect("a REST proxy event")
}

#[tokio::test]
async fn a_rest_proxy_event_gets_the_same_response_as_a_local_request() {
    // As the template configures the function: routes don't carry API Gateway's stage.
    std::env::set_var("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true");
    let app = spawn_app().await;
    let template = include_str!("fixtures/apigw_rest_open_session.json");
    let (status, _) = app
        .post(
            &app.acme.admin,
            "/v1/tenant",
            json!({ "name": "Acme", "plan": "enterprise" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let tenant = app.acme.tenant.to_string();
    let via_lambda = app
        .send(
            event(template, &app.acme.customer.token, &tenant, Uuid::new_v4())
                .map(axum::body::Body::new),
        )
        .await;
    assert_eq!(via_lambda.status(), StatusCode::CREATED);
    let lambda_body = json_body(via_lambda).await;

    let session = Uuid::new_v4();
    let (local_status, local_body) = app
        .post(
            &app.acme.customer,
            "/v1/sessions",
            json!({ "session_id": session, "subject": "Supplier contract" }),
        )
        .await;
    assert_eq!(local_status, StatusCode::CREATED);
    assert_eq!(
        lambda_body["events"][0]["event_type"],
        local_body["events"][0]["event_type"]
    );
    assert_eq!(
        lambda_body.as_object().unwrap().keys().collect::<Vec<_>>(),
        local_body.as_object().unwrap().keys().collect::<Vec<_>>()
    );

    // The authorizer's tenant must agree with the token's: defence in depth.
    let mismatched = app
        .send(
            event(
                template,
                &app.acme.customer.token,
                &app.globex.tenant.to_string(),
                Uuid::new_v4(),
            )
            .map(axum::body::Body::new),
        )
        .await;
    assert_eq!(mismatched.status(), StatusCode::UNAUTHORIZED);
}
