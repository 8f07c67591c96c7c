//! The public routes: a practice signs itself up (`POST /v1/signup`) on one of the plans
//! `GET /v1/plans` lists. No token: nobody has an account yet.
//!
//! A sign-up appends `TenantSignedUp` and answers; the people subscription then creates the
//! admin's Cognito account, and Cognito mails them a temporary password (see [`People`](casebook_application::reactions::People)).
//! Why an API route and not Cognito's own `SignUp` with a trigger: the tenant must be chosen by
//! the platform and written once into the immutable `custom:tenant_id`, which only an
//! administrator's call can set at creation; with Cognito's self sign-up the browser would
//! write the attributes, and no trigger may change an immutable one afterwards.
//!
//! Abuse is held off by two token buckets in front of everything else — one per source
//! address, one for the whole process — and every attempt, whatever its outcome, is recorded
//! in `signup_attempts`.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use casebook_domain::ids::TenantId;
use casebook_domain::policy::PlanTier;
use casebook_domain::tenant::Invitee;
use casebook_domain::values::{Email, PersonName, TenantName};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::commands::{answer, parse_enum, CommandAccepted};
use super::idempotency::IDEMPOTENCY_KEY;
use super::json::Body;
use super::problem::ApiError;
use super::rate_limit::tier_limit;
use super::request_id::RequestId;
use super::AppState;
use casebook_application::service::{Accepted, SignUp, SignUpAttempt, SignedUp};

/// The sign-up's buckets: per source address, and for the whole process.
pub struct SignUpLimiter {
    per_source: DefaultKeyedRateLimiter<String>,
    overall: DefaultDirectRateLimiter,
}

impl SignUpLimiter {
    /// Five sign-ups per source, then one every two minutes; twenty at once overall, then one
    /// a second. A practice signs up once (retries with its key are replays), so these leave
    /// room for a shared office address and nothing for a script. `scale` multiplies the
    /// bursts (1 in production).
    pub fn new(scale: u32) -> Self {
        let nonzero = |n: u32| NonZeroU32::new(n.max(1)).expect("at least one");
        let per_source = Quota::with_period(Duration::from_secs(120))
            .expect("a non-zero period")
            .allow_burst(nonzero(5 * scale));
        let overall = Quota::per_second(nonzero(scale)).allow_burst(nonzero(20 * scale));
        Self {
            per_source: RateLimiter::keyed(per_source),
            overall: RateLimiter::direct(overall),
        }
    }

    /// Takes a token for `source` and one from the overall bucket, or says how long to wait.
    /// The source's comes first, so one address over its share never drains everyone's.
    fn admit(&self, source: &str) -> Result<(), ApiError> {
        let refused = |not_until: governor::NotUntil<_>| ApiError::RateLimited {
            retry_after_secs: not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs_f64()
                .ceil()
                .max(1.0) as u64,
        };
        self.per_source
            .check_key(&source.to_owned())
            .map_err(refused)?;
        self.overall.check().map_err(refused)
    }
}

/// The caller's address: as API Gateway saw it in Lambda, as the listener saw it locally.
#[derive(Debug, Clone)]
pub struct SourceAddress(pub String);

impl<S: Send + Sync> FromRequestParts<S> for SourceAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        use lambda_http::request::RequestContext;
        use lambda_http::RequestExt;
        let from_gateway = match parts.extensions.request_context_ref() {
            Some(RequestContext::ApiGatewayV1(context)) => context.identity.source_ip.clone(),
            _ => None,
        };
        let address = from_gateway
            .or_else(|| {
                parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|ConnectInfo(peer)| peer.ip().to_string())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Ok(Self(address))
    }
}

/// A practice signing itself up.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUpRequest {
    /// The practice's name.
    pub practice_name: String,
    /// The first admin's email address: their sign-in name, where Cognito sends the
    /// invitation.
    pub admin_email: String,
    /// The first admin's name.
    pub admin_name: String,
    /// One of `GET /v1/plans`.
    pub plan: String,
}

/// The tenant a sign-up creates: derived from its `Idempotency-Key`, so a retry lands on the
/// same tenant; a fresh one without a key.
fn tenant_for(headers: &HeaderMap) -> Result<TenantId, ApiError> {
    let Some(key) = headers.get(&IDEMPOTENCY_KEY) else {
        return Ok(TenantId::new());
    };
    let key = key
        .to_str()
        .ok()
        .filter(|key| (1..=255).contains(&key.len()))
        .ok_or_else(|| ApiError::Invalid {
            field: "Idempotency-Key".into(),
            message: "must be 1 to 255 visible ASCII characters".into(),
        })?;
    let name = format!("casebook:signup:{key}");
    Ok(TenantId::from_uuid(Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        name.as_bytes(),
    )))
}

/// Signs a practice up: creates its tenant on the chosen plan with its first admin, who is
/// mailed a temporary password. Public; limited per source address and overall. Send an
/// `Idempotency-Key` to retry safely: the same key and admin answer the same tenant again.
#[utoipa::path(post, path = "/v1/signup", request_body = SignUpRequest, security(()),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries land once")),
    responses(
        (status = 201, body = CommandAccepted, description = "Signed up (or the same sign-up again: no events)"),
        (status = 409, description = "`email_taken`: the address already belongs to a user"),
        (status = 422, description = "`validation_failed`, `malformed_body`, or `idempotency_key_reused`: the key signed up another practice"),
        (status = 429, description = "`rate_limited`"),
    ),
    tag = "sign-up")]
pub async fn sign_up(
    State(state): State<AppState>,
    SourceAddress(source): SourceAddress,
    request_id: RequestId,
    headers: HeaderMap,
    body: Result<Body<SignUpRequest>, ApiError>,
) -> Result<(StatusCode, Json<CommandAccepted>), ApiError> {
    let mut email = None;
    let mut tenant = None;
    let result = async {
        state.sign_up_limiter.admit(&source)?;
        let Body(body) = body?;
        let admin = Invitee {
            email: Email::parse(body.admin_email)?,
            name: PersonName::parse(body.admin_name)?,
        };
        email = Some(admin.email.clone());
        let sign_up = SignUp {
            name: TenantName::parse(body.practice_name)?,
            plan: parse_enum::<PlanTier>("plan", &body.plan)?,
            admin,
        };
        let tenant_id = tenant_for(&headers)?;
        let landed = state
            .service
            .sign_up(tenant_id, request_id.as_str(), sign_up)
            .await?;
        tenant = Some(tenant_id);
        Ok::<_, ApiError>((tenant_id, landed))
    }
    .await;
    let outcome = match &result {
        Ok((_, SignedUp::Created(_))) => "created",
        Ok((_, SignedUp::Replayed)) => "replayed",
        Err(err) => err.code(),
    };
    let attempt = SignUpAttempt {
        source: &source,
        email: email.as_ref(),
        outcome,
        tenant_id: tenant,
        request_id: request_id.as_str(),
    };
    if let Err(err) = state.service.record_sign_up_attempt(&attempt).await {
        // The outcome stands: a sign-up isn't refused for want of its audit row, which the log
        // line carries instead.
        tracing::error!(error = %err, ?attempt, "sign-up attempt not recorded");
    }
    let (tenant_id, landed) = result?;
    let accepted = match landed {
        SignedUp::Created(accepted) => accepted,
        SignedUp::Replayed => Accepted { events: Vec::new() },
    };
    answer(
        StatusCode::CREATED,
        json!({ "tenant_id": tenant_id, "admin_email": email }),
        accepted,
    )
}

/// A plan a practice can sign up for.
#[derive(Debug, Serialize, ToSchema)]
pub struct Plan {
    /// Its name, as `POST /v1/signup` takes it.
    pub plan: &'static str,
    /// Sustained requests per second for the whole practice.
    pub requests_per_second: u32,
    /// Requests it may send at once above that.
    pub burst: u32,
}

/// The plans a practice can sign up for, with their request limits. Public.
#[utoipa::path(get, path = "/v1/plans", security(()),
    responses((status = 200, body = Vec<Plan>)), tag = "sign-up")]
pub async fn plans() -> Json<Vec<Plan>> {
    Json(
        PlanTier::ALL
            .into_iter()
            .map(|tier| {
                let limit = tier_limit(tier);
                Plan {
                    plan: tier.as_str(),
                    requests_per_second: limit.rate,
                    burst: limit.burst,
                }
            })
            .collect(),
    )
}
