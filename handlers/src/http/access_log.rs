//! The access audit's side of a request: every `/v1` route's request becomes one
//! [`AccessRecord`] — served or refused (401, 403, 404, 429, …) — queued for the access log's
//! writer ([`crate::access_log`]) as its response leaves.
//!
//! The record names:
//! - the tenant and the caller as the layers inside learned them ([`Seen`]): authentication
//!   once the token verified (so a revoked member's 401 is in their tenant's chain), the
//!   route's roles once they admitted the caller; a request refused before any tenant was known
//!   goes to the platform's chain ([`PLATFORM`]);
//! - the route as registered and the ids its path named (`/v1/sessions/{session_id}`: that
//!   session), then the ids a list returned ([`Returned`], which lists put on their response),
//!   with their count.
//!
//! Auditors read their tenant's records ([`list_access_records`], `GET /v1/access-log`) and
//! verify its chain ([`verify_access_chain`]).

use std::sync::{Arc, Mutex};

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::Json;
use casebook_domain::actor::Role;
use casebook_domain::ids::TenantId;
use casebook_projections::access_log::{self, AccessFilter, AccessRecord, VerifyError, PLATFORM};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::caller::Acting;
use super::json::Params;
use super::problem::ApiError;
use super::reads::{tenant_read, time_range, Identified, Listing, PageParams};
use super::request_id::X_REQUEST_ID;
use super::AppState;
use crate::access_log::AccessLog;
use crate::auth::Principal;

/// What the layers inside the access log learned of the caller; each request has its own.
#[derive(Debug, Clone, Default)]
pub struct Seen(Arc<Mutex<Caller>>);

#[derive(Debug, Default)]
struct Caller {
    tenant: Option<TenantId>,
    actor: Option<String>,
    role: Option<Role>,
}

impl Seen {
    /// The caller's token verified: the record is their tenant's and names them.
    pub fn verified(&self, principal: &Principal) {
        let mut caller = self.0.lock().expect("access note poisoned");
        caller.tenant = Some(principal.tenant_id);
        caller.actor = Some(principal.user_id.to_string());
    }

    /// The route admitted the caller in `role`.
    pub fn admitted(&self, role: Role) {
        self.0.lock().expect("access note poisoned").role = Some(role);
    }

    /// Tells the request's note, if the access log is recording it, what `note` says.
    pub fn note(request: &Request, note: impl FnOnce(&Seen)) {
        if let Some(seen) = request.extensions().get::<Seen>() {
            note(seen);
        }
    }
}

/// A response extension: the ids of the items a list returned, in its order.
#[derive(Debug, Clone, Default)]
pub struct Returned(pub Vec<String>);

/// The longest text kept of an id from a request's path: ids are UUIDs, addresses or user ids;
/// anything longer was refused by its route anyway, and is kept as far as this.
const MAX_ID_CHARS: usize = 256;

/// An id from the path as stored: Postgres text holds no NUL, so a `%00` becomes U+FFFD
/// rather than failing the batch it is written in.
fn stored_id(id: &str) -> String {
    id.chars()
        .take(MAX_ID_CHARS)
        .map(|c| {
            if c == '\0' {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .collect()
}

fn role_name(role: Role) -> Option<String> {
    serde_json::to_value(role)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
}

/// Middleware, outside authentication: records the request once its response is made.
pub async fn record_access(State(log): State<AccessLog>, request: Request, next: Next) -> Response {
    let requested_at = Utc::now();
    let (mut parts, body) = request.into_parts();
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map_or_else(|| parts.uri.path(), MatchedPath::as_str)
        .to_owned();
    let method = parts.method.to_string();
    let request_id = parts
        .headers
        .get(&X_REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // A path that isn't UTF-8 has no parameters to name; its route refuses it.
    let mut resource_ids: Vec<String> = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .map(|params| params.iter().map(|(_, id)| stored_id(id)).collect())
        .unwrap_or_default();
    let seen = Seen::default();
    parts.extensions.insert(seen.clone());
    let mut response = next.run(Request::from_parts(parts, body)).await;
    let result_count = match response.extensions_mut().remove::<Returned>() {
        Some(Returned(ids)) => {
            let count = i64::try_from(ids.len()).unwrap_or(i64::MAX);
            resource_ids.extend(ids);
            Some(count)
        }
        None => None,
    };
    let caller = std::mem::take(&mut *seen.0.lock().expect("access note poisoned"));
    log.record(AccessRecord::unchained(
        caller.tenant.unwrap_or(PLATFORM),
        requested_at,
        caller.actor,
        caller.role.and_then(role_name),
        method,
        route,
        resource_ids,
        result_count,
        response.status().as_u16(),
        request_id,
    ));
    response
}

/// Middleware, outermost, where the process is frozen once an answer is out (Lambda): the
/// answer waits until the access log holds its record.
pub async fn drain_after_each(
    State(log): State<AccessLog>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    log.drain().await;
    response
}

/// Filters of the access records; every filter given must match.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccessLogParams {
    /// Requests at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Requests before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// The caller's user id.
    pub actor: Option<String>,
    /// The route as registered, e.g. `/v1/sessions/{session_id}`.
    pub route: Option<String>,
    /// The response's status, 100..=599.
    pub status: Option<u16>,
    /// The `next_cursor` of the previous page.
    pub after: Option<String>,
    /// Records per page, 1..=100 (default 20).
    pub limit: Option<i64>,
}

/// The tenant's access records in chain order, with their hashes, filtered (auditor): who read
/// or changed what, or was refused, through the API.
#[utoipa::path(get, path = "/v1/access-log", params(AccessLogParams),
    responses((status = 200, body = Listing<AccessRow>)), tag = "audit")]
pub async fn list_access_records(
    State(state): State<AppState>,
    Acting(reader): Acting,
    Params(params): Params<AccessLogParams>,
) -> Result<Listing<AccessRow>, ApiError> {
    let request = PageParams {
        after: params.after,
        limit: params.limit,
    }
    .request()?;
    time_range(params.from, params.to)?;
    if params
        .status
        .is_some_and(|status| !(100..=599).contains(&status))
    {
        return Err(ApiError::Invalid {
            field: "status".into(),
            message: "must be an HTTP status, 100 to 599".into(),
        });
    }
    let filter = AccessFilter {
        from: params.from,
        to: params.to,
        actor_id: params.actor,
        route: params.route,
        status: params.status,
    };
    let mut tx = tenant_read(&state.pool, reader.tenant_id).await?;
    let page = access_log::list(&mut tx, reader.tenant_id, &filter, request).await?;
    tx.commit().await?;
    Ok(Listing::of(page, AccessRow))
}

/// One access record: when, who in which role, which route and resources, the status and the
/// request id, and its place in the tenant's chain (`seq`, `prev_hash`, `hash`, hex).
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct AccessRow(pub AccessRecord);

impl utoipa::PartialSchema for AccessRow {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .description(Some(
                "An access record: tenant_id, seq, requested_at, actor_id, actor_role, method, route, resource_ids, result_count, status, request_id, prev_hash and hash (hex)",
            ))
            .into()
    }
}

impl ToSchema for AccessRow {}

/// An access record by its place in the tenant's chain.
impl Identified for AccessRow {
    fn resource_id(&self) -> String {
        format!("access:{}", self.0.seq)
    }
}

/// Whether the tenant's access chain holds, checked now.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessChainVerification {
    /// Every record's hash recomputed and linked to its predecessor's.
    pub verified: bool,
    /// Records checked (before the broken one, when one is).
    pub rows: u64,
    /// Where it broke, when it did.
    pub broken: Option<BrokenRecord>,
}

/// The first broken link of an access chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrokenRecord {
    /// The record's `seq`.
    pub seq: i64,
    /// What is wrong, in words.
    pub problem: String,
}

/// Verifies the tenant's whole access chain, now (auditor): no record altered, removed or
/// inserted before the last.
#[utoipa::path(get, path = "/v1/access-log/verification",
    responses((status = 200, body = AccessChainVerification)), tag = "audit")]
pub async fn verify_access_chain(
    State(state): State<AppState>,
    Acting(reader): Acting,
) -> Result<Json<AccessChainVerification>, ApiError> {
    let mut tx = tenant_read(&state.pool, reader.tenant_id).await?;
    let verification = match access_log::verify_chain(&mut tx, reader.tenant_id).await {
        Ok(rows) => AccessChainVerification {
            verified: true,
            rows,
            broken: None,
        },
        Err(VerifyError::Broken { link, verified }) => AccessChainVerification {
            verified: false,
            rows: verified,
            broken: Some(BrokenRecord {
                seq: link.seq,
                problem: link.problem.describe(link.seq),
            }),
        },
        Err(VerifyError::Database(err)) => return Err(err.into()),
    };
    tx.commit().await?;
    Ok(Json(verification))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_from_the_path_is_stored_without_nul_and_bounded() {
        assert_eq!(stored_id("a\0b"), "a\u{fffd}b");
        assert_eq!(stored_id(&"x".repeat(1000)).chars().count(), MAX_ID_CHARS);
        assert_eq!(role_name(Role::Consultant).as_deref(), Some("consultant"));
    }
}
