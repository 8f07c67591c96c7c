//! Who is calling: the verified [`Principal`] ([`require_caller`], on every `/v1` route), and
//! the role it acts in on this route ([`authorize`], from the route table's roles).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use casebook_domain::actor::{Actor, Role};

use super::access_log::Seen;
use super::problem::ApiError;
use super::AppState;
use crate::auth::{bearer_token, AuthError, AuthErrorKind, Principal, TokenVerifier};

/// Shared handle to the token verifier.
pub type Authenticator = Arc<TokenVerifier>;

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        tracing::info!(code = err.code(), error = %err, "token refused");
        match err.kind() {
            // A valid token of a user in none of Casebook's groups: known, but not allowed.
            AuthErrorKind::Forbidden => ApiError::Forbidden,
            // Our dependency failed, not the caller's token.
            AuthErrorKind::Unavailable => ApiError::Unavailable(Box::new(err)),
            AuthErrorKind::Unauthenticated => ApiError::Unauthenticated(err.code()),
        }
    }
}

/// The caller acting in the role the route admitted them in (see [`authorize`]).
#[derive(Debug, Clone)]
pub struct Acting(pub Actor);

/// Route middleware: admits a caller holding one of `roles`, acting in the first of them they
/// hold (a route lists its roles in order of preference, so a user who is staff and customer
/// reads as staff); `403 forbidden` otherwise.
///
/// It runs before `Idempotency-Key` handling, so a stored answer is replayed only to a caller
/// the route admits today.
pub async fn authorize(
    State(roles): State<&'static [Role]>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let actor = request
        .extensions()
        .get::<Principal>()
        .ok_or(ApiError::Unauthenticated("missing_token"))?
        .actor_for(roles)
        .ok_or(ApiError::Forbidden)?;
    Seen::note(&request, |seen| seen.admitted(actor.role));
    request.extensions_mut().insert(Acting(actor));
    Ok(next.run(request).await)
}

/// Middleware: every `/v1` request must carry a valid bearer token of a user their tenant
/// still lets in ([`super::access`]); the caller is put in the request's extensions for
/// handlers and the layers after this one.
pub async fn require_caller(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .map(|value| value.to_str().unwrap_or_default())
        .unwrap_or_default();
    let token = bearer_token(header)?.to_owned();
    let authorizer_tenant = authorizer_tenant(&request);
    let caller = state
        .auth
        .verify_with_authorizer_tenant(&token, authorizer_tenant.as_deref())
        .await?;
    // Before revocation: a revoked member's refusal is recorded in their tenant's access log.
    Seen::note(&request, |seen| seen.verified(&caller));
    let caller = state.access.admit(caller).await?;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// The tenant API Gateway's Lambda authorizer put in the request context, if any.
fn authorizer_tenant(request: &Request) -> Option<String> {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV1(context) => context
            .authorizer
            .fields
            .get("tenant_id")
            .and_then(|value| value.as_str())
            .map(str::to_owned),
        _ => None,
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Acting {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        // Only a route registered without roles would lack it: a wiring fault, not the caller's.
        parts.extensions.get::<Acting>().cloned().ok_or_else(|| {
            ApiError::Internal("route registered without its roles (http::allow)".into())
        })
    }
}
