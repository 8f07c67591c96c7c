//! `x-request-id`: taken from the client (or API Gateway) when present, generated otherwise,
//! echoed on every response and recorded in every log line and event of the request.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderName;
use tower_http::request_id::{MakeRequestId, RequestId as TowerRequestId};

use super::problem::ApiError;

/// The header.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Generates UUIDv4 request ids.
#[derive(Clone, Copy, Default)]
pub struct MakeUuid;

impl MakeRequestId for MakeUuid {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<TowerRequestId> {
        let id = uuid::Uuid::new_v4().to_string();
        Some(TowerRequestId::new(id.parse().ok()?))
    }
}

/// The current request's id, for handlers.
#[derive(Debug, Clone)]
pub struct RequestId(String);

impl RequestId {
    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let id = parts
            .extensions
            .get::<TowerRequestId>()
            .and_then(|id| id.header_value().to_str().ok())
            .unwrap_or_default();
        Ok(RequestId(id.to_owned()))
    }
}
