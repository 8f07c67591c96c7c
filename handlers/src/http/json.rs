//! JSON bodies and query strings whose rejections are problem documents with the offending
//! field.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::Json;
use serde::de::DeserializeOwned;

use super::problem::ApiError;

/// Like [`axum::Json`], but a body that does not fit is a 422 `validation_failed` naming the
/// field (or a `malformed_body` when it is not JSON at all), never axum's plain-text error.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(JsonRejection::JsonDataError(err)) => {
                // serde_path_to_error's "path: message" (axum's source error) names the field.
                let detail = std::error::Error::source(&err)
                    .map(ToString::to_string)
                    .unwrap_or_else(|| err.body_text());
                let (field, message) = detail
                    .split_once(": ")
                    .map(|(field, message)| (field.to_owned(), message.to_owned()))
                    .unwrap_or_else(|| ("body".to_owned(), detail.clone()));
                Err(ApiError::Invalid { field, message })
            }
            Err(rejection) => Err(ApiError::MalformedBody(rejection.body_text())),
        }
    }
}

/// Like [`axum::extract::Query`], but a query string that does not fit is a 422
/// `validation_failed` problem, never axum's plain-text 400.
pub struct Params<T>(pub T);

impl<S, T> FromRequestParts<S> for Params<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // Postgres text holds no U+0000, and a NUL only ever arrives percent-encoded.
        if parts.uri.query().is_some_and(|query| query.contains("%00")) {
            return Err(ApiError::Invalid {
                field: "query".into(),
                message: "must not contain NUL characters (%00)".into(),
            });
        }
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Params(value)),
            Err(rejection) => {
                // serde_urlencoded names the parameter in its message, not as a path.
                let message = std::error::Error::source(&rejection)
                    .map(ToString::to_string)
                    .unwrap_or_else(|| rejection.body_text());
                Err(ApiError::Invalid {
                    field: "query".into(),
                    message,
                })
            }
        }
    }
}
