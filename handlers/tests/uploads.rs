//! Presigned uploads against the AWS emulator's S3, through the real router.

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use casebook_adapters::aws::s3::TenantBucket;
use casebook_adapters::aws::setup::ensure_bucket;
use casebook_adapters::aws::shared_config;
use casebook_domain::actor::Role;
use casebook_handlers::http::router;
use casebook_handlers::http::uploads::Uploads;
use serde_json::json;
use support::{spawn_app, TestApp};
use uuid::Uuid;

/// The app with its own bucket in the emulator.
async fn with_bucket() -> (TestApp, TenantBucket) {
    let mut app = spawn_app().await;
    let aws = shared_config().await;
    let name = format!("casebook-test-{}", Uuid::new_v4().simple());
    ensure_bucket(&aws, &name).await.expect("bucket");
    let bucket = TenantBucket::new(&aws, name);
    let state = app
        .state
        .clone()
        .with_uploads(Uploads::new(bucket.clone(), Duration::from_secs(300)));
    app.router = router(state);
    (app, bucket)
}

#[tokio::test]
async fn a_customer_uploads_through_the_presigned_url_under_its_tenant() {
    let (app, bucket) = with_bucket().await;
    let request =
        json!({ "file_name": "contract.pdf", "content_type": "application/pdf", "size_bytes": 13 });
    let (status, ticket) = app
        .post_with_key(
            &app.acme.customer,
            "/v1/uploads",
            request.clone(),
            "upload-1",
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let key = ticket["key"].as_str().unwrap().to_owned();
    assert!(
        key.starts_with(&format!("{}/uploads/", app.acme.tenant)),
        "{key}"
    );
    assert!(key.ends_with("/contract.pdf"));
    assert_eq!(ticket["method"], "PUT");
    assert!(ticket["expires_at"].is_string());
    let (_, replayed) = app
        .post_with_key(&app.acme.customer, "/v1/uploads", request, "upload-1")
        .await;
    assert_eq!(
        replayed, ticket,
        "a repeat with its key gets the same ticket"
    );

    // The URL works over loopback, with the headers the ticket names.
    let url = ticket["url"].as_str().unwrap();
    assert!(url.starts_with("http://127.0.0.1"), "{url}");
    let mut upload = reqwest::Client::new()
        .put(url)
        .body(b"%PDF-1.7 test".to_vec());
    for (name, value) in ticket["headers"].as_object().unwrap() {
        upload = upload.header(name, value.as_str().unwrap());
    }
    let response = upload.send().await.expect("upload sent");
    assert!(response.status().is_success(), "{}", response.status());
    let stored = bucket.get(app.acme.tenant, &key).await.expect("stored");
    assert_eq!(stored, b"%PDF-1.7 test");

    // The key is the tenant's attachment; another tenant can neither attach nor fetch it.
    for admin in [&app.acme.admin, &app.globex.admin] {
        app.post(
            admin,
            "/v1/tenant",
            json!({ "name": "P", "plan": "enterprise" }),
        )
        .await;
    }
    let (status, body) = app
        .post(
            &app.acme.customer,
            "/v1/sessions",
            json!({ "session_id": Uuid::new_v4(), "subject": "Contract", "attachments": [key] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .post(
            &app.globex.customer,
            "/v1/sessions",
            json!({ "session_id": Uuid::new_v4(), "subject": "Peek", "attachments": [key] }),
        )
        .await;
    assert!(status.is_client_error(), "{status} {body}");
    assert!(bucket.get(app.globex.tenant, &key).await.is_err());
    assert!(bucket
        .presign_get(app.globex.tenant, &key, Duration::from_secs(60))
        .await
        .is_err());
}

#[tokio::test]
async fn bad_upload_requests_are_refused_before_signing() {
    let (app, _bucket) = with_bucket().await;
    for (body, field) in [
        (
            json!({ "file_name": "../other-tenant/x", "content_type": "text/plain", "size_bytes": 10 }),
            "file_name",
        ),
        (
            json!({ "file_name": "", "content_type": "text/plain", "size_bytes": 10 }),
            "file_name",
        ),
        (
            json!({ "file_name": "bad\u{7}name", "content_type": "text/plain", "size_bytes": 10 }),
            "file_name",
        ),
        (
            json!({ "file_name": "a.txt", "content_type": "text", "size_bytes": 10 }),
            "content_type",
        ),
        (
            json!({ "file_name": "a.txt", "content_type": "text/plain\r\nx: y", "size_bytes": 10 }),
            "content_type",
        ),
        (
            json!({ "file_name": "a.txt", "content_type": "text/plain", "size_bytes": 0 }),
            "size_bytes",
        ),
        (
            json!({ "file_name": "a.txt", "content_type": "text/plain", "size_bytes": 25 * 1024 * 1024 + 1 }),
            "size_bytes",
        ),
    ] {
        let (status, problem) = app.post(&app.acme.customer, "/v1/uploads", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["field"], field, "{problem}");
    }
    for user in [&app.acme.consultant, &app.acme.auditor, &app.acme.admin] {
        let (status, problem) = app
            .post(
                user,
                "/v1/uploads",
                json!({ "file_name": "a.txt", "content_type": "text/plain", "size_bytes": 10 }),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    }
}

#[tokio::test]
async fn without_a_bucket_uploads_are_unavailable_not_an_error() {
    let app = spawn_app().await;
    let (status, problem) = app
        .post(
            &app.acme.customer,
            "/v1/uploads",
            json!({ "file_name": "a.txt", "content_type": "text/plain", "size_bytes": 10 }),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(problem["code"], "uploads_unavailable");
}

/// The URL binds the upload to the size asked for: `content-length` is among the signed headers,
/// so S3 refuses any other length (`SignatureDoesNotMatch`). The emulator does not verify
/// presigned signatures, so this checks the signature's scope, not S3's refusal.
#[tokio::test]
async fn the_upload_url_is_signed_for_exactly_the_size_asked_for() {
    let (app, _bucket) = with_bucket().await;
    let (status, ticket) = app
        .post(
            &app.acme.customer,
            "/v1/uploads",
            json!({ "file_name": "small.txt", "content_type": "text/plain", "size_bytes": 5 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    assert_eq!(ticket["headers"]["content-length"], "5", "{ticket}");
    let url = ticket["url"].as_str().unwrap();
    let signed_headers = url
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("X-Amz-SignedHeaders="))
        .unwrap_or_default();
    assert!(
        signed_headers.split("%3B").any(|h| h == "content-length"),
        "{url}"
    );
}

/// Opens a session as `customer` with `attachments`; the status and problem.
async fn open_with(
    app: &TestApp,
    customer: &support::User,
    attachments: Vec<String>,
) -> (StatusCode, serde_json::Value) {
    app.post(
        customer,
        "/v1/sessions",
        json!({ "session_id": Uuid::new_v4(), "subject": "Contract", "attachments": attachments }),
    )
    .await
}

#[tokio::test]
async fn a_customer_attaches_only_their_own_canonical_uploads_at_most_twenty_once_each() {
    let (app, _bucket) = with_bucket().await;
    app.onboard_both("enterprise").await;
    let mine = app
        .upload(&app.acme.customer, "lease.txt", "text/plain", b"my lease")
        .await;
    let colleague = app
        .another_user(app.acme.tenant, "acme-other-customer", Role::Customer)
        .await;
    let theirs = app
        .upload(&colleague, "their-lease.txt", "text/plain", b"their lease")
        .await;

    // Another customer's upload of the same practice: refused at the API, before any event.
    let (status, problem) = open_with(&app, &app.acme.customer, vec![theirs.clone()]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "validation_failed");

    // Keys not in the form the API issues, even under the tenant's own prefix.
    let tenant = app.acme.tenant;
    let upload_id = mine.split('/').nth(2).unwrap();
    for odd in [
        format!("{tenant}/uploads/{upload_id}/../{upload_id}/lease.txt"),
        format!("{tenant}//uploads/{upload_id}/lease.txt"),
        format!("{tenant}/uploads/{upload_id}/./lease.txt"),
        format!("{}/uploads/{upload_id}/lease.txt", app.globex.tenant),
        format!("{tenant}/finetune/{upload_id}/lease.txt"),
    ] {
        let (status, problem) = open_with(&app, &app.acme.customer, vec![odd.clone()]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{odd}: {problem}");
    }

    // The same upload twice, and more than twenty.
    let (status, problem) =
        open_with(&app, &app.acme.customer, vec![mine.clone(), mine.clone()]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let mut many = Vec::new();
    for i in 0..21 {
        many.push(
            app.upload(
                &app.acme.customer,
                &format!("page-{i}.txt"),
                "text/plain",
                b"page",
            )
            .await,
        );
    }
    let (status, problem) = open_with(&app, &app.acme.customer, many.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    many.pop();
    let (status, body) = open_with(&app, &app.acme.customer, many).await;
    assert_eq!(status, StatusCode::CREATED, "twenty is the limit: {body}");

    // Their own upload is theirs to attach; nothing was appended for the refusals.
    let (status, body) = open_with(&app, &colleague, vec![theirs]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let opened: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'SessionOpened'")
            .fetch_one(&app.projector_pool().await)
            .await
            .unwrap();
    assert_eq!(opened, 2);
}
