//! The web app as `casebook serve` serves it: no token needed, hashed assets cached for a
//! year, everything else revalidated, the app's own routes answered with its `index.html`, a
//! strict Content-Security-Policy on every answer, and `/v1/…` never mistaken for the app.

mod support;

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::{Request, StatusCode};
use casebook_handlers::http::router;
use casebook_handlers::http::web::{CognitoEndpoint, WebApp, WebConfig};
use http_body_util::BodyExt;
use support::spawn_app;

const INDEX: &str =
    "<!doctype html><title>Casebook</title><script type=module src=/assets/app-3f9a.js></script>";

fn built_app() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), INDEX).unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("assets/app-3f9a.js"), "export {};").unwrap();
    dir
}

#[tokio::test]
async fn the_app_is_served_without_a_token_with_its_caching_and_its_content_security_policy() {
    let app = spawn_app().await;
    let dir = built_app();
    let config = WebConfig {
        cognito: CognitoEndpoint {
            endpoint: "http://127.0.0.1:5000/".into(),
            region: "us-east-1".into(),
            client_id: "client123".into(),
        },
    };
    let web = WebApp::new(dir.path(), config, "http://127.0.0.1:5000");
    let router = router(app.state.clone().with_web(web));
    let get = |path: &str| {
        let router = router.clone();
        let request = Request::get(path).body(Body::empty()).unwrap();
        async move {
            use tower::ServiceExt;
            let response = router.oneshot(request).await.unwrap();
            let (parts, body) = response.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            (parts, String::from_utf8_lossy(&body).into_owned())
        }
    };

    for path in ["/", "/review/3f1c2a9e", "/signup"] {
        let (parts, body) = get(path).await;
        assert_eq!(parts.status, StatusCode::OK, "{path}");
        assert_eq!(body, INDEX, "{path}");
        assert!(parts.headers[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert_eq!(parts.headers[CACHE_CONTROL], "no-cache", "{path}");
        let csp = parts.headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.starts_with("default-src 'self'; script-src 'self';"),
            "{csp}"
        );
        assert!(
            csp.contains("connect-src 'self' http://127.0.0.1:5000 http://127.0.0.1:5000;"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    }

    let (parts, body) = get("/assets/app-3f9a.js").await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(body, "export {};");
    assert!(parts.headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .contains("javascript"));
    assert_eq!(
        parts.headers[CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );

    let (parts, body) = get("/config.json").await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers[CACHE_CONTROL], "no-cache");
    let config: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(config["cognito"]["clientId"], "client123");
    assert_eq!(config["cognito"]["endpoint"], "http://127.0.0.1:5000/");

    // The API keeps its own answers.
    let (parts, body) = get("/v1/no-such-route").await;
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
    assert_eq!(
        parts.headers[CONTENT_TYPE], "application/problem+json",
        "{body}"
    );
    let (parts, _) = get("/v1/sessions").await;
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
    let (parts, body) = get("/v1/plans").await;
    assert_eq!(parts.status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn against_the_emulator_the_browsers_cognito_calls_are_relayed_same_origin() {
    let app = spawn_app().await;
    let dir = built_app();
    let emulator = std::env::var("AWS_ENDPOINT_URL").expect("the emulator");
    let web =
        WebApp::against_emulator(dir.path(), "us-east-1", &app.pool_info.client_id, &emulator);
    let router = router(app.state.clone().with_web(web));
    use tower::ServiceExt;

    let config = router
        .clone()
        .oneshot(Request::get("/config.json").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&config.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(config["cognito"]["endpoint"], "/local/cognito/");

    // A sign-in with a wrong password, exactly as the browser sends it: Cognito's own refusal.
    let call = serde_json::json!({
        "AuthFlow": "USER_PASSWORD_AUTH",
        "ClientId": app.pool_info.client_id,
        "AuthParameters": { "USERNAME": "acme-admin@casebook.test", "PASSWORD": "Not-the-password-1" },
    });
    let request = Request::post("/local/cognito/")
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "x-amz-target",
            "AWSCognitoIdentityProviderService.InitiateAuth",
        )
        .body(Body::from(call.to_string()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["__type"], "NotAuthorizedException", "{body}");
    let csp = router
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap()
        .headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    // The page reaches the relay on its own origin, and the emulator's buckets for uploads.
    assert!(
        csp.contains(&format!(
            "connect-src 'self' {};",
            emulator.trim_end_matches('/')
        )),
        "{csp}"
    );
}
