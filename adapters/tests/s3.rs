//! The tenant-partitioned S3 adapter against the AWS emulator: presigned URLs work for a
//! plain HTTP client, and keys outside the caller's tenant prefix (or malformed) are refused
//! before any request leaves the process.

mod support;

use std::time::Duration;

use casebook_adapters::aws::s3::{S3Error, TenantBucket};
use casebook_adapters::aws::setup::{ensure_resources, ResourceNames, Resources};
use casebook_adapters::aws::{shared_config, SdkConfig};
use casebook_domain::ids::TenantId;
use support::aws_config_at;

async fn resources() -> (SdkConfig, Resources) {
    let aws = shared_config().await;
    let prefix = format!("s3-{}", uuid::Uuid::new_v4().simple());
    let resources = ensure_resources(&aws, &ResourceNames::with_prefix(&prefix))
        .await
        .expect("bus, queues and buckets");
    (aws, resources)
}

#[tokio::test]
async fn a_presigned_put_then_a_presigned_get_round_trip_over_plain_http() {
    let (aws, resources) = resources().await;
    let bucket = TenantBucket::new(&aws, &resources.uploads_bucket);
    assert_eq!(bucket.name(), resources.uploads_bucket);
    let tenant = TenantId::new();
    let key = TenantBucket::tenant_key(tenant, "uploads/contract.pdf").unwrap();
    let expiry = Duration::from_secs(900);

    let put = bucket
        .presign_put(tenant, &key, "application/pdf", 17, expiry)
        .await
        .expect("presigned PUT");
    assert_eq!(put.method, "PUT");
    assert!(put.url.contains("X-Amz-Expires=900"), "{}", put.url);
    let until = put.expires_at - chrono::Utc::now();
    assert!(until <= chrono::TimeDelta::seconds(900) && until > chrono::TimeDelta::zero());

    let http = reqwest::Client::new();
    let mut request = http.put(&put.url).body(b"%PDF-1.7 contract".to_vec());
    for (name, value) in &put.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("PUT sent");
    assert!(response.status().is_success(), "{response:?}");

    let get = bucket
        .presign_get(tenant, &key, expiry)
        .await
        .expect("presigned GET");
    assert_eq!(get.method, "GET");
    let response = http.get(&get.url).send().await.expect("GET sent");
    assert!(response.status().is_success(), "{response:?}");
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/pdf"
    );
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        b"%PDF-1.7 contract"
    );

    // The SDK path reads the same object.
    assert_eq!(
        bucket.get(tenant, &key).await.unwrap(),
        b"%PDF-1.7 contract"
    );
}

#[tokio::test]
async fn put_and_get_round_trip_and_a_missing_object_is_an_aws_error() {
    let (aws, resources) = resources().await;
    let bucket = TenantBucket::new(&aws, &resources.artifacts_bucket);
    let tenant = TenantId::new();
    let key = TenantBucket::tenant_key(tenant, "finetune/2026-11-25.jsonl").unwrap();
    bucket
        .put(
            tenant,
            &key,
            b"{\"a\":1}\n".to_vec(),
            "application/x-ndjson",
        )
        .await
        .unwrap();
    assert_eq!(bucket.get(tenant, &key).await.unwrap(), b"{\"a\":1}\n");

    let missing = TenantBucket::tenant_key(tenant, "finetune/none.jsonl").unwrap();
    assert!(matches!(
        bucket.get(tenant, &missing).await,
        Err(S3Error::Aws { .. })
    ));
}

/// A configuration whose endpoint is a loopback listener of the test's own, so it can tell
/// whether the adapter sent anything.
async fn watched_config() -> (SdkConfig, std::net::TcpListener) {
    // Non-blocking, so `accept` answers at once whether a connection is waiting (the kernel
    // completes loopback handshakes into the backlog without the test accepting them).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    (aws_config_at(endpoint).await, listener)
}

#[tokio::test]
async fn a_key_outside_the_tenant_prefix_is_refused_before_any_aws_call() {
    let (aws, listener) = watched_config().await;
    let bucket = TenantBucket::new(&aws, "watched");
    let tenant = TenantId::new();
    let other = TenantId::new();
    let foreign = TenantBucket::tenant_key(other, "uploads/secret.pdf").unwrap();
    let expiry = Duration::from_secs(60);

    let outside = |result: Result<_, S3Error>| matches!(result, Err(S3Error::OutsideTenantPrefix { key }) if key == foreign);
    assert!(outside(bucket.get(tenant, &foreign).await));
    assert!(outside(
        bucket
            .put(tenant, &foreign, b"x".to_vec(), "text/plain")
            .await
            .map(|_| Vec::new())
    ));
    assert!(outside(
        bucket
            .presign_put(tenant, &foreign, "text/plain", 1, expiry)
            .await
            .map(|_| Vec::new())
    ));
    assert!(outside(
        bucket
            .presign_get(tenant, &foreign, expiry)
            .await
            .map(|_| Vec::new())
    ));
    for bad in ["/abs", "a//b", "../x", "a\nb"] {
        let key = format!("{tenant}/{bad}");
        assert!(
            matches!(
                bucket.get(tenant, &key).await,
                Err(S3Error::InvalidKey { .. })
            ),
            "{key:?} accepted"
        );
    }
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "a refused key still reached the endpoint"
    );

    // The control: an allowed key does reach it (the listener never answers, so the
    // request itself is abandoned once the connection is seen).
    let own = TenantBucket::tenant_key(tenant, "uploads/mine.pdf").unwrap();
    let request = tokio::spawn(async move { bucket.get(tenant, &own).await });
    let mut reached = false;
    for _ in 0..300 {
        if listener.accept().is_ok() {
            reached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    request.abort();
    assert!(reached, "an allowed key never reached the endpoint");
}
