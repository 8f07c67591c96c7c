//! Per-tenant rate limits by plan tier: a token bucket per tenant, the same rates and bursts
//! as the API Gateway usage plans in `infra/template.yaml` (a test keeps them equal), so the
//! local server throttles exactly as the deployment does.
//!
//! Inside a tenant, each user also has a bucket of half the tenant's rate and burst: one
//! customer (or a runaway script with one user's token) can take at most half of the
//! practice's capacity, and its consultants keep the rest.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use casebook_domain::ids::{TenantId, UserId};
use casebook_domain::policy::PlanTier;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::problem::ApiError;
use super::AppState;
use crate::auth::Principal;

/// Requests per second and burst for one tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierLimit {
    /// Sustained requests per second.
    pub rate: u32,
    /// Bucket size.
    pub burst: u32,
}

/// The limit of every tier.
pub fn tier_limit(tier: PlanTier) -> TierLimit {
    match tier {
        PlanTier::Starter => TierLimit {
            rate: 10,
            burst: 20,
        },
        PlanTier::Professional => TierLimit {
            rate: 50,
            burst: 100,
        },
        PlanTier::Enterprise => TierLimit {
            rate: 200,
            burst: 400,
        },
        PlanTier::CostSensitive => TierLimit { rate: 5, burst: 10 },
    }
}

/// How long a tenant's tier is trusted before it is read again (plan changes take effect
/// within this delay).
const TIER_TTL: Duration = Duration::from_secs(30);

/// The share of its tenant's rate and burst one user may take.
const USER_SHARE_DIVISOR: u32 = 2;

/// The buckets of all tenants and of their users.
pub struct TenantLimiter {
    limiters: HashMap<PlanTier, DefaultKeyedRateLimiter<TenantId>>,
    user_limiters: HashMap<PlanTier, DefaultKeyedRateLimiter<(TenantId, UserId)>>,
    tiers: Mutex<HashMap<TenantId, (PlanTier, Instant)>>,
    scale: u32,
}

impl TenantLimiter {
    /// Limits as configured for the tiers, multiplied by `scale` (benchmarks raise them; 1 in
    /// production).
    pub fn new(scale: u32) -> Arc<Self> {
        let quota = |tier: PlanTier, divisor: u32| {
            let limit = tier_limit(tier);
            Quota::per_second(nonzero(limit.rate * scale / divisor))
                .allow_burst(nonzero(limit.burst * scale / divisor))
        };
        let limiters = PlanTier::ALL
            .into_iter()
            .map(|tier| (tier, RateLimiter::keyed(quota(tier, 1))))
            .collect();
        let user_limiters = PlanTier::ALL
            .into_iter()
            .map(|tier| (tier, RateLimiter::keyed(quota(tier, USER_SHARE_DIVISOR))))
            .collect();
        Arc::new(Self {
            limiters,
            user_limiters,
            tiers: Mutex::new(HashMap::new()),
            scale,
        })
    }

    fn cached_tier(&self, tenant: TenantId) -> Option<PlanTier> {
        let tiers = self.tiers.lock().expect("tier cache poisoned");
        tiers
            .get(&tenant)
            .filter(|(_, read_at)| read_at.elapsed() < TIER_TTL)
            .map(|(tier, _)| *tier)
    }

    fn remember(&self, tenant: TenantId, tier: PlanTier) {
        self.tiers
            .lock()
            .expect("tier cache poisoned")
            .insert(tenant, (tier, Instant::now()));
    }

    /// Takes one token from the user's bucket and one from the tenant's, or says how long to
    /// wait. The user's comes first, so a user over their share never drains the tenant's.
    fn admit(&self, caller: &Principal, tier: PlanTier) -> Result<(), Duration> {
        let wait = |not_until: governor::NotUntil<_>| {
            not_until.wait_time_from(DefaultClock::default().now())
        };
        self.user_limiters[&tier]
            .check_key(&(caller.tenant_id, caller.user_id.clone()))
            .map_err(wait)?;
        self.limiters[&tier]
            .check_key(&caller.tenant_id)
            .map_err(wait)
    }

    /// Drops every cached tier, so the next request of each tenant reads its plan again.
    pub fn forget_tiers(&self) {
        self.tiers.lock().expect("tier cache poisoned").clear();
    }

    /// The multiplier in force.
    pub fn scale(&self) -> u32 {
        self.scale
    }
}

fn nonzero(value: u32) -> NonZeroU32 {
    NonZeroU32::new(value.max(1)).expect("at least one")
}

/// Middleware (after authentication): 429 with `Retry-After` once the caller's or the
/// tenant's bucket is empty.
pub async fn limit_tenant(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or(ApiError::Unauthenticated("missing_token"))?;
    let tenant = caller.tenant_id;
    let tier = match state.limiter.cached_tier(tenant) {
        Some(tier) => tier,
        None => {
            // A tenant not yet onboarded is held to the smallest plan.
            let tier = state
                .service
                .tenant_plan(tenant)
                .await?
                .unwrap_or(PlanTier::Starter);
            state.limiter.remember(tenant, tier);
            tier
        }
    };
    if let Err(wait) = state.limiter.admit(&caller, tier) {
        return Err(ApiError::RateLimited {
            retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
        });
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `Tiers` mapping of the SAM template, read without a YAML library: the block is a
    /// fixed two-level map of names to Rate/Burst.
    fn template_tiers() -> HashMap<String, (u32, u32)> {
        let template = include_str!("../../../infra/template.yaml");
        let block = template
            .split("\n  Tiers:\n")
            .nth(1)
            .expect("the template maps Tiers");
        let mut tiers = HashMap::new();
        let mut current: Option<String> = None;
        let mut rate = 0;
        for line in block.lines() {
            let indent = line.len() - line.trim_start().len();
            let line = line.trim();
            if indent < 4 && !line.is_empty() {
                break;
            }
            if let Some(name) = line.strip_prefix("Name: ") {
                current = Some(name.to_owned());
            } else if let Some(value) = line.strip_prefix("Rate: ") {
                rate = value.parse().unwrap();
            } else if let Some(value) = line.strip_prefix("Burst: ") {
                tiers.insert(current.clone().unwrap(), (rate, value.parse().unwrap()));
            }
        }
        tiers
    }

    #[test]
    fn local_limits_equal_the_usage_plans_in_the_template() {
        let template = template_tiers();
        assert_eq!(template.len(), PlanTier::ALL.len());
        for tier in PlanTier::ALL {
            let name = serde_json::to_value(tier).unwrap();
            let limit = tier_limit(tier);
            assert_eq!(
                template[name.as_str().unwrap()],
                (limit.rate, limit.burst),
                "{tier:?}"
            );
        }
    }

    fn user(tenant: TenantId, name: &str) -> Principal {
        Principal {
            user_id: UserId::parse(name).unwrap(),
            tenant_id: tenant,
            roles: vec![casebook_domain::actor::Role::Customer],
        }
    }

    #[test]
    fn a_tenants_burst_is_admitted_then_refused_with_a_wait() {
        let limiter = TenantLimiter::new(1);
        let tenant = TenantId::new();
        let burst = tier_limit(PlanTier::CostSensitive).burst;
        let users = [user(tenant, "a"), user(tenant, "b")];
        for i in 0..burst {
            limiter
                .admit(&users[i as usize % 2], PlanTier::CostSensitive)
                .unwrap();
        }
        let wait = limiter
            .admit(&user(tenant, "c"), PlanTier::CostSensitive)
            .unwrap_err();
        assert!(wait > Duration::ZERO);
        limiter
            .admit(&user(TenantId::new(), "a"), PlanTier::CostSensitive)
            .expect("another tenant has its own bucket");
    }

    #[test]
    fn one_user_takes_at_most_half_of_the_tenants_burst_and_leaves_the_rest_to_others() {
        let limiter = TenantLimiter::new(1);
        let tenant = TenantId::new();
        let share = tier_limit(PlanTier::CostSensitive).burst / USER_SHARE_DIVISOR;
        let greedy = user(tenant, "greedy");
        for _ in 0..share {
            limiter.admit(&greedy, PlanTier::CostSensitive).unwrap();
        }
        assert!(limiter.admit(&greedy, PlanTier::CostSensitive).is_err());
        for _ in 0..share {
            limiter
                .admit(&user(tenant, "consultant"), PlanTier::CostSensitive)
                .expect("the rest of the tenant's burst is the others'");
        }
    }
}
