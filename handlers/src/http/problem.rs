//! Errors as RFC 9457 problem details (`application/problem+json`).
//!
//! Every error a client can see has a stable machine-readable `code`; the human `detail` never
//! carries internal messages (those go to the logs, with the request id).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use casebook_domain::error::ErrorKind;

use casebook_application::service::ServiceError;

/// An error response.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or unusable credentials (401).
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// The caller's role may not do this (403).
    #[error("forbidden")]
    Forbidden,
    /// No such resource in the caller's tenant (404).
    #[error("not found")]
    NotFound,
    /// A field failed validation (422).
    #[error("invalid field {field}: {message}")]
    Invalid {
        /// The offending field (JSON pointer-ish name).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The body is not acceptable JSON for this route (422 — well-formed but unusable,
    /// or 400 when it is not JSON at all).
    #[error("malformed body: {0}")]
    MalformedBody(String),
    /// The resource's state does not allow this (409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Another request changed the resource first (409, retryable).
    #[error("concurrent modification")]
    Concurrency,
    /// The same idempotency key was used with a different request (422).
    #[error("idempotency key reused with a different request")]
    IdempotencyMismatch,
    /// The same idempotency key is still being processed (409).
    #[error("request with this idempotency key is in progress")]
    IdempotencyInProgress,
    /// A rule with a code of its own refused the request (its kind's status).
    #[error("refused ({code}): {message}")]
    Refused {
        /// The status.
        status: StatusCode,
        /// The stable code.
        code: &'static str,
        /// What the client may read.
        message: String,
    },
    /// Too many requests for the tenant's plan (429).
    #[error("rate limited")]
    RateLimited {
        /// Seconds until a request would be admitted.
        retry_after_secs: u64,
    },
    /// No uploads bucket is configured here (503).
    #[error("uploads are not configured")]
    UploadsUnavailable,
    /// A dependency is down (503).
    #[error("service unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A bug (500).
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Invalid { .. }
            | ApiError::MalformedBody(_)
            | ApiError::IdempotencyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict(_) | ApiError::Concurrency | ApiError::IdempotencyInProgress => {
                StatusCode::CONFLICT
            }
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::UploadsUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Refused { status, .. } => *status,
        }
    }

    /// The stable error code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(code) => code,
            ApiError::Forbidden => "forbidden",
            ApiError::NotFound => "not_found",
            ApiError::Invalid { .. } => "validation_failed",
            ApiError::MalformedBody(_) => "malformed_body",
            ApiError::Conflict(_) => "state_conflict",
            ApiError::Concurrency => "concurrent_modification",
            ApiError::IdempotencyMismatch => "idempotency_key_reused",
            ApiError::IdempotencyInProgress => "idempotency_key_in_progress",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::UploadsUnavailable => "uploads_unavailable",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal_error",
            ApiError::Refused { code, .. } => code,
        }
    }

    fn title(&self) -> &'static str {
        self.status().canonical_reason().unwrap_or("Error")
    }

    /// What the client may read: domain wording for its own mistakes, nothing internal.
    fn detail(&self) -> Option<String> {
        match self {
            ApiError::Invalid { message, .. } => Some(message.clone()),
            ApiError::MalformedBody(message)
            | ApiError::Conflict(message)
            | ApiError::Refused { message, .. } => Some(message.clone()),
            ApiError::RateLimited { retry_after_secs } => {
                Some(format!("retry after {retry_after_secs} s"))
            }
            _ => None,
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::NotFound => ApiError::NotFound,
            ServiceError::Forbidden => ApiError::Forbidden,
            ServiceError::Invalid(message) => ApiError::Invalid {
                field: "body".into(),
                message,
            },
            ServiceError::Conflict(message) => ApiError::Conflict(message),
            ServiceError::Concurrency => ApiError::Concurrency,
            ServiceError::Unavailable(err) => ApiError::Unavailable(err),
            ServiceError::Internal(err) => ApiError::Internal(err),
            ServiceError::Refused {
                code,
                kind,
                message,
            } => ApiError::Refused {
                status: match kind {
                    ErrorKind::NotFound => StatusCode::NOT_FOUND,
                    ErrorKind::Forbidden => StatusCode::FORBIDDEN,
                    ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorKind::Conflict => StatusCode::CONFLICT,
                },
                code,
                message,
            },
        }
    }
}

impl From<casebook_domain::values::ValidationError> for ApiError {
    fn from(err: casebook_domain::values::ValidationError) -> Self {
        ApiError::Invalid {
            field: err.field.to_string(),
            message: err.message.to_string(),
        }
    }
}

/// A read model's query failed: a database out of reach is worth a retry, anything else is
/// a bug.
impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                ApiError::Unavailable(Box::new(err))
            }
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

/// Middleware: an error response that isn't a problem document yet (the router's own 404 and
/// 405, a body over the size limit, a path that isn't UTF-8) becomes one, with a code for its
/// status, so clients only ever parse one error format.
pub async fn problem_for_bare_errors(response: Response) -> Response {
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE);
    let is_problem =
        content_type.is_some_and(|value| value.as_bytes() == b"application/problem+json");
    // Cognito's own refusals, relayed to the browser against the emulator
    // (`web::LOCAL_COGNITO`): the app reads Cognito's error format there.
    let is_cognitos =
        content_type.is_some_and(|value| value.as_bytes().starts_with(b"application/x-amz-json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem || is_cognitos {
        return response;
    }
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        status if status.is_server_error() => "internal_error",
        _ => "bad_request",
    };
    let body = Problem {
        kind: format!("https://casebook.dev/problems/{code}"),
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        code,
        detail: None,
        field: None,
    };
    let mut bare = (status, axum::Json(body)).into_response();
    // Keep what the original answer said about itself (e.g. `Allow` on a 405, the request id).
    let (parts, _) = response.into_parts();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            bare.headers_mut().insert(name.clone(), value.clone());
        }
    }
    bare.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    bare
}

/// The problem code an error response carries, for the middleware that counts refusals
/// (a response extension: it never reaches the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProblemCode(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = ?self, code = self.code(), "request failed");
        }
        let field = match &self {
            ApiError::Invalid { field, .. } => Some(field.as_str()),
            _ => None,
        };
        let body = Problem {
            kind: format!("https://casebook.dev/problems/{}", self.code()),
            title: self.title(),
            status: status.as_u16(),
            code: self.code(),
            detail: self.detail(),
            field,
        };
        let mut response = (status, axum::Json(body)).into_response();
        response.extensions_mut().insert(ProblemCode(self.code()));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            ApiError::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::Unauthenticated(code) => {
                let challenge = format!(r#"Bearer realm="casebook", error="{code}""#);
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            _ => {}
        }
        response
    }
}
