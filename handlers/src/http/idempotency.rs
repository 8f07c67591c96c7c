//! `Idempotency-Key` on POST and PUT: a repeat with the same key and request gets the original
//! response and causes no second effect; the same key with another request is refused.
//!
//! Keys belong to one caller: (tenant, user). The middleware runs after the route's roles are
//! checked, so a stored answer is replayed only to the user who made the request, and only
//! while the route still admits them; another user sending the same key is a new request.
//!
//! The first request claims the key (a row without a response), runs, and stores its
//! response. A concurrent repeat finds the claim and gets 409 until the first finishes. A
//! server error releases the claim, so the client may retry. The records are
//! [`IdempotencyKeys`].

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use casebook_adapters::idempotency::{Claim, IdempotencyKeys};
use sha2::{Digest, Sha256};

use super::caller::Acting;
use super::problem::ApiError;

/// The request header.
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on a replayed response.
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Bodies above this are refused anyway by the routes; bounding here keeps memory bounded.
const MAX_BODY: usize = 1024 * 1024;

/// Route middleware for every POST and PUT under `/v1`, inside the route's authorization.
pub async fn idempotent(
    Extension(store): Extension<IdempotencyKeys>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let key = match request.headers().get(&IDEMPOTENCY_KEY) {
        Some(key) if matches!(*request.method(), Method::POST | Method::PUT) => key
            .to_str()
            .ok()
            .filter(|key| (1..=255).contains(&key.len()))
            .ok_or_else(|| ApiError::Invalid {
                field: "Idempotency-Key".into(),
                message: "must be 1 to 255 visible ASCII characters".into(),
            })?
            .to_owned(),
        _ => return Ok(next.run(request).await),
    };
    let Acting(actor) = request
        .extensions()
        .get::<Acting>()
        .cloned()
        .ok_or_else(|| ApiError::Internal("idempotency outside a route's roles".into()))?;
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::MalformedBody("body too large".into()))?;
    let hash = request_hash(&parts.method, parts.uri.path(), &body);

    match store.claim(&actor, &key, &hash).await? {
        Claim::Claimed => {}
        Claim::Existing {
            request_hash,
            response,
        } => {
            if request_hash != hash {
                return Err(ApiError::IdempotencyMismatch);
            }
            let (status, body) = response.ok_or(ApiError::IdempotencyInProgress)?;
            return Ok(replay(status, body));
        }
    }

    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let (parts, body) = response.into_parts();
    let body = to_bytes(body, usize::MAX)
        .await
        .map_err(|err| ApiError::Internal(Box::new(err)))?;
    if parts.status.is_server_error() {
        store.release(&actor, &key).await?;
    } else {
        store
            .complete(&actor, &key, parts.status.as_u16(), &body)
            .await?;
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}

fn request_hash(method: &Method, path: &str, body: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str());
    hasher.update([0]);
    hasher.update(path);
    hasher.update([0]);
    hasher.update(body);
    hasher.finalize().to_vec()
}

fn replay(status: u16, body: Vec<u8>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = (status, Bytes::from(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(if status.is_success() {
            "application/json"
        } else {
            "application/problem+json"
        }),
    );
    headers.insert(
        IDEMPOTENT_REPLAYED.clone(),
        HeaderValue::from_static("true"),
    );
    response
}
