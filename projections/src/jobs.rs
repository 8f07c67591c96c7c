//! The scheduled jobs' ports over the log and the subscriptions (`casebook_projector`, which
//! reads every tenant's events): the onboarded tenants, a tenant's decisions in log order,
//! and every subscription's lag.

use std::sync::Arc;

use casebook_application::jobs::{
    DecisionLog, LoggedDecision, SubscriptionLag, SubscriptionLags, TenantDirectory,
};
use casebook_application::ports::BoxError;
use casebook_domain::decision::DecisionEvent;
use casebook_domain::finetune::LogPosition;
use casebook_domain::ids::TenantId;
use casebook_vault::Vault;
use futures::TryStreamExt;
use sqlx::PgPool;

use crate::log::{Checkpoint, LogReader, Scope};
use crate::status::{report_lag, status};

/// Every tenant with a stream, from the log.
#[derive(Clone)]
pub struct OnboardedTenants {
    log: PgPool,
}

impl OnboardedTenants {
    /// Tenants read through `log` (a projector pool).
    pub fn new(log: PgPool) -> Self {
        Self { log }
    }
}

#[async_trait::async_trait]
impl TenantDirectory for OnboardedTenants {
    async fn tenants(&self) -> Result<Vec<TenantId>, BoxError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT aggregate_id FROM events
              WHERE aggregate_type = 'Tenant' AND sequence = 1 ORDER BY aggregate_id",
        )
        .fetch_all(&self.log)
        .await?;
        ids.iter()
            .map(|id| {
                id.parse()
                    .map_err(|err| format!("tenant id {id:?}: {err}").into())
            })
            .collect()
    }
}

/// A tenant's `DecisionMade` events, read with the gap-safe log reader.
#[derive(Clone)]
pub struct TenantDecisions {
    log: PgPool,
    vault: Option<Arc<Vault>>,
}

impl TenantDecisions {
    /// Decisions read through `log` (a projector pool), their sealed texts opened with
    /// `vault`.
    pub fn new(log: PgPool, vault: Option<Arc<Vault>>) -> Self {
        Self { log, vault }
    }
}

#[async_trait::async_trait]
impl DecisionLog for TenantDecisions {
    async fn decisions_after(
        &self,
        tenant: TenantId,
        after: Option<LogPosition>,
    ) -> Result<Vec<LoggedDecision>, BoxError> {
        let from = after.map_or(Checkpoint::START, |p| Checkpoint {
            transaction_id: p.transaction_id,
            global_position: p.global_position,
        });
        let mut events = std::pin::pin!(LogReader::new(self.log.clone())
            .with_vault(self.vault.clone())
            .catch_up(from, Scope::Tenant(*tenant.as_uuid())));
        let mut decisions = Vec::new();
        while let Some(event) = events.try_next().await? {
            if event.event_type != "DecisionMade" {
                continue;
            }
            let DecisionEvent::DecisionMade {
                diagnosis_id,
                verdict,
                ..
            } = event
                .payload::<DecisionEvent>()
                .map_err(|err| format!("DecisionMade at {}: {err}", event.global_position()))?;
            decisions.push(LoggedDecision {
                diagnosis_id,
                verdict,
                position: LogPosition {
                    transaction_id: event.checkpoint.transaction_id,
                    global_position: event.checkpoint.global_position,
                },
            });
        }
        Ok(decisions)
    }
}

/// Every subscription's lag, from `subscriptions`; reading it also reports each (log line
/// and metric).
#[derive(Clone)]
pub struct SubscriptionBoard {
    pool: PgPool,
}

impl SubscriptionBoard {
    /// Lags read through `pool` (a projector pool).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl SubscriptionLags for SubscriptionBoard {
    async fn lags(&self) -> Result<Vec<SubscriptionLag>, BoxError> {
        let mut conn = self.pool.acquire().await?;
        Ok(status(&mut conn)
            .await?
            .iter()
            .map(|status| {
                report_lag(status);
                SubscriptionLag {
                    name: status.name.clone(),
                    lag_events: status.lag_events,
                    lag_seconds: status.lag_seconds,
                }
            })
            .collect())
    }
}
