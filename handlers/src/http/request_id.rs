//! `x-request-id`: made by the server for every request, echoed on every response and
//! recorded in every log line and event of the request (as `request_id` and, for the first
//! request of a chain, `correlation_id`).
//!
//! A client's own `x-request-id` is never trusted as either: an auditor must be able to rely on
//! ids no client chose. It is kept beside them as `client_request_id` when it is short and
//! printable (1..=128 visible ASCII characters), and dropped otherwise.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::HeaderName;
use axum::middleware::Next;
use axum::response::Response;
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

/// The id a client gave its request, kept beside the server's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequestId(pub String);

const MAX_CLIENT_REQUEST_ID: usize = 128;

/// Middleware, outside the one that makes the server's id: takes the client's `x-request-id`
/// off the request (so the server's id is always the one made here) and keeps an acceptable
/// one as [`ClientRequestId`].
pub async fn set_aside_client_request_id(mut request: Request, next: Next) -> Response {
    if let Some(value) = request.headers_mut().remove(&X_REQUEST_ID) {
        let acceptable = value
            .to_str()
            .ok()
            .filter(|id| (1..=MAX_CLIENT_REQUEST_ID).contains(&id.len()))
            .filter(|id| id.bytes().all(|b| b.is_ascii_graphic()));
        if let Some(id) = acceptable {
            let id = ClientRequestId(id.to_owned());
            request.extensions_mut().insert(id);
        }
    }
    next.run(request).await
}

/// The current request's id, and the client's own if it sent one, for handlers.
#[derive(Debug, Clone)]
pub struct RequestId {
    server: String,
    client: Option<String>,
}

impl RequestId {
    /// The server's id.
    pub fn as_str(&self) -> &str {
        &self.server
    }

    /// The client's own id, if it sent an acceptable one.
    pub fn client(&self) -> Option<&str> {
        self.client.as_deref()
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
        let client = parts
            .extensions
            .get::<ClientRequestId>()
            .map(|id| id.0.clone());
        Ok(RequestId {
            server: id.to_owned(),
            client,
        })
    }
}
