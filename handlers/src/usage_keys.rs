//! Each tenant's own API key at the gateway: when a tenant is onboarded or changes plan, its
//! key (created on first use) is put on the plan's usage plan and recorded on the tenant
//! (`UsageKeyAssigned`); the authorizer then names that key for each of the tenant's requests,
//! so throttles and monthly quotas are per tenant, not shared by every tenant of a plan.
//!
//! This runs as its own subscription (`usage_keys`): a gateway outage holds up only this
//! work, which resumes where it stopped, and never the other reactions. Every step repeats
//! safely — the gateway calls find what an earlier attempt made, and the tenant refuses the
//! same key on the same plan as already recorded — so delivery at least once is enough.

use std::sync::Arc;

use async_trait::async_trait;
use casebook_adapters::aws::apigateway::UsagePlans;
use casebook_adapters::aws::BoxError;
use casebook_domain::ids::TenantId;
use casebook_domain::policy::PlanTier;
use casebook_domain::tenant::{Tenant, TenantCommand};
use casebook_projections::error::ApplyError;
use casebook_projections::log::RecordedEvent;
use casebook_projections::subscription::Subscription;
use cqrs_es::Aggregate;

use crate::reactions::{caused_by, ReactionError};
use crate::service::{Service, ServiceError};

/// The gateway's API keys, as the application needs them.
#[async_trait]
pub trait UsageKeys: Send + Sync {
    /// Puts `tenant`'s own key (created on first use) on `plan`'s usage plan only; its id.
    async fn put_on_plan(&self, tenant: TenantId, plan: PlanTier) -> Result<String, BoxError>;

    /// The value of the key `key_id` (what the authorizer returns).
    async fn key_value(&self, key_id: &str) -> Result<String, BoxError>;
}

#[async_trait]
impl UsageKeys for UsagePlans {
    async fn put_on_plan(&self, tenant: TenantId, plan: PlanTier) -> Result<String, BoxError> {
        Ok(UsagePlans::put_on_plan(self, tenant, plan).await?)
    }

    async fn key_value(&self, key_id: &str) -> Result<String, BoxError> {
        Ok(UsagePlans::key_value(self, key_id).await?)
    }
}

/// The subscription that keeps each tenant's key on its plan.
pub struct UsageKeySubscription {
    service: Service,
    keys: Arc<dyn UsageKeys>,
}

impl UsageKeySubscription {
    /// The subscription's name in `subscriptions`.
    pub const NAME: &'static str = "usage_keys";

    /// Keys managed through `keys`, recorded through `service`.
    pub fn new(service: Service, keys: Arc<dyn UsageKeys>) -> Self {
        Self { service, keys }
    }

    /// Puts the tenant of `event` (an onboarding or a plan change) on its current plan.
    async fn assign(&self, event: &RecordedEvent) -> Result<(), ApplyError> {
        let tenant_id: TenantId = event
            .aggregate_id
            .parse()
            .map_err(|_| ApplyError::permanent(format!("tenant id {}", event.aggregate_id)))?;
        let failed = |err: ServiceError| ReactionError::Command(err).into_apply_error(event);
        let tenant = self.service.tenant_state(tenant_id).await.map_err(failed)?;
        // The tenant as it is now, not as the event left it: replaying an old plan change
        // must not move the key back to an old plan.
        let Some(plan) = tenant
            .plan()
            .filter(|_| !tenant.usage_key_on_current_plan())
        else {
            return Ok(());
        };
        let api_key_id = self
            .keys
            .put_on_plan(tenant_id, plan)
            .await
            .map_err(ApplyError::Transient)?;
        let ctx = caused_by(event).map_err(|err| err.into_apply_error(event))?;
        let record = TenantCommand::RecordUsageKey {
            actor: ctx.actor.clone(),
            api_key_id,
            plan,
        };
        match self.service.administer_tenant(&ctx, record).await {
            // Already recorded (a redelivery), or the plan changed meanwhile: the reaction to
            // that change assigns the key again.
            Ok(_) | Err(ServiceError::Conflict(_)) => Ok(()),
            Err(err) => Err(failed(err)),
        }
    }
}

#[async_trait]
impl Subscription for UsageKeySubscription {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn apply(
        &mut self,
        _conn: &mut sqlx::PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ApplyError> {
        for event in events {
            let moves_the_key = event.aggregate_type == Tenant::TYPE
                && matches!(
                    event.event_type.as_str(),
                    "TenantOnboarded" | "TenantSignedUp" | "PlanChanged"
                );
            if moves_the_key {
                self.assign(event).await?;
            }
        }
        Ok(())
    }
}
