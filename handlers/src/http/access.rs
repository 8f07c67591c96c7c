//! Revocation: a token says what its user's groups were when it was issued (up to an hour
//! ago); their tenant says what they are now. Every request's caller is checked against the
//! tenant's people (`tenant_users`, the same table for every API process):
//!
//! - a disabled member is refused, `401 token_revoked`, whatever their token's expiry;
//! - a member whose role changed is admitted only in their current role: a token carrying only
//!   the old one is refused (`token_revoked`), and a refreshed token carries the new one;
//! - a user their tenant never invited (one an operator created in Cognito) is judged by their
//!   token alone.
//!
//! Each process remembers a member's standing for [`AccessList::DEFAULT_TTL`]. So a change is
//! enforced everywhere within that TTL plus the tenants projection's lag behind the commit
//! (sub-second while it runs): **within 5 seconds plus projection lag** with the defaults.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use casebook_adapters::postgres::{begin_for_tenants, Access};
use casebook_domain::actor::Role;
use casebook_domain::ids::{TenantId, UserId};
use casebook_projections::read;
use sqlx::PgPool;

use super::problem::ApiError;
use crate::auth::Principal;

/// What the tenant says of a member now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Standing {
    role: Role,
    enabled: bool,
}

type Remembered = (Option<Standing>, Instant);

/// The tenants' members' current standing, briefly remembered.
pub struct AccessList {
    pool: PgPool,
    ttl: Duration,
    known: Mutex<HashMap<(TenantId, UserId), Remembered>>,
}

impl AccessList {
    /// How long a standing is trusted before it is read again: the revocation bound, less
    /// the projection's lag.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(5);

    /// Past this many remembered callers, expired ones are forgotten on the next read.
    const SWEEP_ABOVE: usize = 10_000;

    /// Standings read through `pool` (the request path's), remembered for `ttl`.
    pub fn new(pool: PgPool, ttl: Duration) -> Self {
        Self {
            pool,
            ttl,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// `caller` as their tenant lets them in now: acting only in their current role, or
    /// refused with `token_revoked`.
    pub async fn admit(&self, caller: Principal) -> Result<Principal, ApiError> {
        match self.standing(caller.tenant_id, &caller.user_id).await? {
            None => Ok(caller),
            Some(standing) if standing.enabled && caller.has_role(standing.role) => Ok(Principal {
                roles: vec![standing.role],
                ..caller
            }),
            Some(_) => {
                tracing::info!(tenant = %caller.tenant_id, user = %caller.user_id, "token revoked");
                Err(ApiError::Unauthenticated("token_revoked"))
            }
        }
    }

    async fn standing(
        &self,
        tenant: TenantId,
        user: &UserId,
    ) -> Result<Option<Standing>, ApiError> {
        let key = (tenant, user.clone());
        if let Some((standing, read_at)) =
            self.known.lock().expect("access list poisoned").get(&key)
        {
            if read_at.elapsed() < self.ttl {
                return Ok(*standing);
            }
        }
        let mut tx = begin_for_tenants(&self.pool, Access::ReadOnly, &[*tenant.as_uuid()]).await?;
        let standing = read::tenants::user_by_subject(&mut tx, tenant, user)
            .await?
            .map(|member| Standing {
                role: member.role,
                enabled: member.enabled,
            });
        tx.commit().await?;
        let mut known = self.known.lock().expect("access list poisoned");
        if known.len() > Self::SWEEP_ABOVE {
            let ttl = self.ttl;
            known.retain(|_, (_, read_at)| read_at.elapsed() < ttl);
        }
        known.insert(key, (standing, Instant::now()));
        Ok(standing)
    }
}
