//! The HTTP API: one router, whatever hosts it (`axum::serve` locally, `lambda_http` in
//! the `api` Lambda). Nothing in it needs a TCP peer.
//!
//! Every `/v1` route runs behind, in order: request id → access log → authentication
//! ([`caller`]) and revocation ([`access`]) → the tenant's rate limit ([`rate_limit`]) → the
//! relay's nudge after a committed write ([`nudge`], in Lambda) → the route's roles
//! ([`caller::authorize`]) → `Idempotency-Key` handling ([`idempotency`], on POST and PUT).
//! The public routes ([`signup`]: a practice signing up, the plans) have limits of their own
//! and no token. Errors are problem documents ([`problem`]).

pub mod access;
pub mod access_log;
pub mod caller;
pub mod commands;
pub mod cursor;
pub mod erasure;
pub mod events;
pub mod idempotency;
pub mod json;
pub mod judgments;
pub mod metrics;
pub mod nudge;
pub mod people;
pub mod problem;
pub mod rate_limit;
pub mod reads;
pub mod request_id;
pub mod signup;
pub mod uploads;
pub mod verifiable_log;
pub mod web;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state, map_response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use casebook_domain::actor::Role;
use serde_json::{json, Value};
use sqlx::PgPool;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access_log::AccessLog;
use crate::relay::RelayNudge;
use access::AccessList;
use caller::Authenticator;
use casebook_adapters::idempotency::IdempotencyKeys;
use casebook_application::judgments::JudgmentSearch;
use casebook_application::service::Service;
use rate_limit::TenantLimiter;
use request_id::{MakeUuid, X_REQUEST_ID};
use signup::SignUpLimiter;
use uploads::Uploads;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The request-path pool (runs as `casebook_app`).
    pub pool: PgPool,
    /// The use cases.
    pub service: Service,
    /// Verifies bearer tokens.
    pub auth: Authenticator,
    /// Per-tenant rate limits.
    pub limiter: Arc<TenantLimiter>,
    /// The public sign-up's limits.
    pub sign_up_limiter: Arc<SignUpLimiter>,
    /// Members' current standing: disabled users and changed roles are refused.
    pub access: Arc<AccessList>,
    /// Presigned uploads, when a bucket is configured.
    pub uploads: Option<Uploads>,
    /// Wakes the relay after a commit (in Lambda; `None` where `NOTIFY` does it).
    pub nudge: Option<Arc<dyn RelayNudge>>,
    /// The web app, where this process serves it (`casebook serve`; deployed, CloudFront).
    pub web: Option<Arc<web::WebApp>>,
    /// Where every `/v1` request's access record goes; `None` records nothing.
    pub access_log: Option<AccessLog>,
    /// Consultants' search of their judgments; `None` answers `503 search_unavailable`.
    pub judgment_search: Option<JudgmentSearch>,
}

impl AppState {
    /// State over `pool` with the given authenticator and limiter (the sign-up's limits
    /// scaled as `limiter`'s).
    pub fn new(pool: PgPool, auth: Authenticator, limiter: Arc<TenantLimiter>) -> Self {
        Self {
            service: crate::compose::service(pool.clone()),
            access: Arc::new(AccessList::new(pool.clone(), AccessList::DEFAULT_TTL)),
            sign_up_limiter: Arc::new(SignUpLimiter::new(limiter.scale())),
            pool,
            auth,
            limiter,
            uploads: None,
            nudge: None,
            web: None,
            access_log: None,
            judgment_search: None,
        }
    }

    /// The same state, recording every `/v1` request in `log`.
    pub fn with_access_log(self, log: AccessLog) -> Self {
        Self {
            access_log: Some(log),
            ..self
        }
    }

    /// The same state, serving `web` at `/`.
    pub fn with_web(self, web: web::WebApp) -> Self {
        Self {
            web: Some(Arc::new(web)),
            ..self
        }
    }

    /// The same state, remembering members' standing for `ttl` (tests: zero, so a change
    /// shows on the next request).
    pub fn with_access_ttl(self, ttl: std::time::Duration) -> Self {
        Self {
            access: Arc::new(AccessList::new(self.pool.clone(), ttl)),
            ..self
        }
    }

    /// The same state, nudging the relay with `nudge` after every committed write.
    pub fn with_nudge(self, nudge: Arc<dyn RelayNudge>) -> Self {
        Self {
            nudge: Some(nudge),
            ..self
        }
    }

    /// The same state, searching judgments with `search`.
    pub fn with_judgment_search(self, search: JudgmentSearch) -> Self {
        Self {
            judgment_search: Some(search),
            ..self
        }
    }

    /// The same state, handing out presigned upload URLs from `uploads`.
    pub fn with_uploads(self, uploads: Uploads) -> Self {
        Self {
            uploads: Some(uploads),
            ..self
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Casebook API", version = "1", description = "Sessions, diagnoses, consultant decisions and captured judgment, per tenant. Errors are application/problem+json with a stable `code`."),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT (Cognito ID token)")
                    .build(),
            ),
        );
    }
}

/// In order of preference: a user who is staff and customer reads as staff.
const SESSION_READERS: &[Role] = &[Role::Consultant, Role::Auditor, Role::Customer];
const DECISION_READERS: &[Role] = &[Role::Consultant, Role::Auditor];
const TENANT_READERS: &[Role] = &[Role::Auditor, Role::Admin];

/// The `/v1` routes and their OpenAPI description, from one registration: who may call each
/// route is stated here and nowhere else.
fn v1() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(allow(
            &[Role::Admin],
            OpenApiRouter::new()
                .routes(routes!(commands::onboard_tenant))
                .routes(routes!(commands::change_tenant_settings))
                .routes(routes!(people::invite_user, people::list_users))
                .routes(routes!(people::change_role))
                .routes(routes!(people::disable_user))
                .routes(routes!(people::enable_user))
                .routes(routes!(erasure::erase_subject)),
        ))
        .merge(allow(
            TENANT_READERS,
            OpenApiRouter::new().routes(routes!(erasure::erasure_receipt)),
        ))
        .merge(allow(
            &[Role::Customer],
            OpenApiRouter::new()
                .routes(routes!(commands::open_session))
                .routes(routes!(commands::put_session))
                .routes(routes!(commands::submit_query))
                .routes(routes!(commands::close_session))
                .routes(routes!(uploads::request_upload)),
        ))
        .merge(allow(
            &[Role::Consultant],
            OpenApiRouter::new()
                .routes(routes!(commands::decide))
                .routes(routes!(
                    commands::author_judgment,
                    judgments::list_judgments
                ))
                .routes(routes!(judgments::get_judgment))
                .routes(routes!(commands::revise_judgment))
                .routes(routes!(commands::retire_judgment))
                .routes(routes!(reads::review_queue)),
        ))
        .merge(allow(
            SESSION_READERS,
            OpenApiRouter::new()
                .routes(routes!(reads::list_sessions))
                .routes(routes!(reads::get_session))
                .routes(routes!(reads::list_diagnoses))
                .routes(routes!(reads::get_diagnosis)),
        ))
        .merge(allow(
            DECISION_READERS,
            OpenApiRouter::new()
                .routes(routes!(reads::list_decisions))
                .routes(routes!(reads::get_decision)),
        ))
        .merge(allow(
            TENANT_READERS,
            OpenApiRouter::new()
                .routes(routes!(reads::usage))
                .routes(routes!(reads::get_tenant)),
        ))
        .merge(allow(
            &[Role::Auditor],
            OpenApiRouter::new()
                .routes(routes!(events::stream_events))
                .routes(routes!(reads::audit_rows))
                .routes(routes!(reads::verify_audit_chain))
                .routes(routes!(verifiable_log::audit_checkpoint))
                .routes(routes!(verifiable_log::audit_proofs))
                .routes(routes!(access_log::list_access_records))
                .routes(routes!(access_log::verify_access_chain))
                .routes(routes!(verifiable_log::access_checkpoint))
                .routes(routes!(verifiable_log::access_proofs)),
        ))
        .split_for_parts()
}

/// `routes`, callable by `roles` only ([`caller::authorize`]), then `Idempotency-Key` handling:
/// in that order, so a stored answer is never replayed to a caller the route refuses. The
/// document lists the roles on each operation as `x-casebook-roles`.
fn allow(roles: &'static [Role], routes: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    let mut routes = routes
        .route_layer(from_fn(idempotency::idempotent))
        .route_layer(from_fn_with_state(roles, caller::authorize));
    mark_operations(&mut routes, ROLES_EXTENSION, json!(roles));
    routes
}

/// Sets the extension `name` to `value` on every operation of `routes`' document.
fn mark_operations(routes: &mut OpenApiRouter<AppState>, name: &str, value: Value) {
    for item in routes.get_openapi_mut().paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            operation
                .extensions
                .get_or_insert_with(Default::default)
                .insert(name.to_owned(), value.clone());
        }
    }
}

/// The OpenAPI extension that lists the roles an operation admits.
pub const ROLES_EXTENSION: &str = "x-casebook-roles";

/// The OpenAPI extension that marks an operation anyone may call, without a token.
pub const PUBLIC_EXTENSION: &str = "x-casebook-public";

/// The routes anyone may call, without a token: signing a practice up and the plans.
fn public() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let mut routes = OpenApiRouter::new()
        .routes(routes!(signup::sign_up))
        .routes(routes!(signup::plans));
    mark_operations(&mut routes, PUBLIC_EXTENSION, json!(true));
    routes.split_for_parts()
}

/// The OpenAPI 3.1 document served at `/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut openapi = v1().1;
    openapi.merge(public().1);
    openapi
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    let (api, _) = v1();
    let (public, _) = public();
    let openapi = openapi();
    let api = api
        .layer(Extension(IdempotencyKeys::new(state.pool.clone())))
        .layer(from_fn_with_state(
            state.clone(),
            nudge::nudge_relay_after_writes,
        ))
        .layer(from_fn_with_state(state.clone(), rate_limit::limit_tenant))
        .layer(from_fn_with_state(state.clone(), caller::require_caller));
    let api = match &state.access_log {
        Some(log) => api.layer(from_fn_with_state(log.clone(), access_log::record_access)),
        None => api,
    };
    let operations = Arc::new(metrics::Operations::of(&openapi));
    let api = api.layer(from_fn_with_state(operations.clone(), metrics::measure));
    let public = public.layer(from_fn_with_state(operations, metrics::measure));
    let openapi = Arc::new(openapi);
    let web = state.web.clone();
    let router = Router::new()
        .route("/health", get(health))
        .route(
            "/v1/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move { Json(openapi.as_ref().clone()) }
            }),
        )
        .merge(api)
        .merge(public);
    let router = match web {
        Some(web) => {
            router.fallback(move |request: Request| async move { web.serve(request).await })
        }
        None => router,
    };
    let draining = state
        .access_log
        .clone()
        .filter(AccessLog::drains_each_request);
    let router = router
        .with_state(state)
        .layer(map_response(problem::problem_for_bare_errors));
    let router = match draining {
        Some(log) => router.layer(from_fn_with_state(log, access_log::drain_after_each)),
        None => router,
    };
    router
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID.clone()))
        .layer(
            TraceLayer::new_for_http()
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
                .make_span_with(|request: &Request| {
                    let request_id = request
                        .headers()
                        .get(&X_REQUEST_ID)
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default();
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id,
                    )
                }),
        )
        .layer(SetRequestIdLayer::new(X_REQUEST_ID.clone(), MakeUuid))
        .layer(from_fn(request_id::set_aside_client_request_id))
}

/// Healthy when the database answers; 503 otherwise, so load balancers stop routing here.
async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match casebook_adapters::postgres::ping(&state.pool).await {
        Ok(_) => (
            StatusCode::OK,
            Json(json!({ "status": "ok", "database": "ok" })),
        ),
        Err(err) => {
            tracing::error!(error = %err, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "database": "unreachable" })),
            )
        }
    }
}
