//! API Gateway usage keys: each tenant's own API key on its plan's usage plan, so the gateway
//! throttles each tenant and counts its monthly quota apart from every other tenant of the
//! same plan. The authorizer names the key (`usageIdentifierKey`) for each request.
//!
//! Names tie the pieces together: the usage plans are `<prefix><plan>` (the template's
//! `casebook-<stage>-starter`, …) and a tenant's key is `<prefix>tenant-<tenant id>`, so a
//! repeated call finds what an earlier one made instead of making another.

use aws_config::SdkConfig;
use aws_sdk_apigateway::Client;
use casebook_domain::ids::TenantId;
use casebook_domain::policy::PlanTier;

use super::AwsError;

pub use aws_sdk_apigateway;

/// A usage plan lists at most this many keys per page; a page of plans holds them all.
const PAGE: i32 = 500;

/// The usage plans of one deployment (one name prefix) and the tenants' keys on them.
#[derive(Debug, Clone)]
pub struct UsagePlans {
    client: Client,
    prefix: String,
}

impl UsagePlans {
    /// The plans named `<prefix><plan>` (e.g. prefix `casebook-prod-`).
    pub fn new(shared: &SdkConfig, prefix: impl Into<String>) -> Self {
        Self {
            client: Client::new(shared),
            prefix: prefix.into(),
        }
    }

    /// The name of `plan`'s usage plan.
    pub fn plan_name(&self, plan: PlanTier) -> String {
        format!("{}{}", self.prefix, plan.as_str())
    }

    /// The name of `tenant`'s API key.
    pub fn key_name(&self, tenant: TenantId) -> String {
        format!("{}tenant-{tenant}", self.prefix)
    }

    /// Puts `tenant`'s own key (created on first use) on `plan`'s usage plan, and takes it off
    /// any other of the deployment's plans; returns the key's id. Safe to repeat: each step
    /// finds what an earlier call did. The key leaves its old plan before it joins the new
    /// one, since the gateway refuses a key on two plans of the same stage.
    pub async fn put_on_plan(&self, tenant: TenantId, plan: PlanTier) -> Result<String, AwsError> {
        let key_id = match self.find_key(tenant).await? {
            Some(id) => id,
            None => self.create_key(tenant).await?,
        };
        let target_name = self.plan_name(plan);
        let plans = self.plans(None).await?;
        let target = plans
            .iter()
            .find(|(_, name)| *name == target_name)
            .map(|(id, _)| id.clone())
            .ok_or_else(|| AwsError::Invalid {
                operation: "GetUsagePlans",
                reason: format!("no usage plan named {target_name}"),
            })?;
        let holding = self.plans(Some(&key_id)).await?;
        for (id, name) in &holding {
            if *id != target && name.starts_with(&self.prefix) {
                self.client
                    .delete_usage_plan_key()
                    .usage_plan_id(id)
                    .key_id(&key_id)
                    .send()
                    .await
                    .map_err(|err| AwsError::call("DeleteUsagePlanKey", err))?;
            }
        }
        if !holding.iter().any(|(id, _)| *id == target) {
            match self
                .client
                .create_usage_plan_key()
                .usage_plan_id(&target)
                .key_id(&key_id)
                .key_type("API_KEY")
                .send()
                .await
            {
                Ok(_) => {}
                // A concurrent call put it there first.
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|e| e.is_conflict_exception()) => {}
                Err(err) => return Err(AwsError::call("CreateUsagePlanKey", err)),
            }
        }
        Ok(key_id)
    }

    /// The value of the key `key_id`: what the authorizer returns as `usageIdentifierKey`.
    pub async fn key_value(&self, key_id: &str) -> Result<String, AwsError> {
        self.client
            .get_api_key()
            .api_key(key_id)
            .include_value(true)
            .send()
            .await
            .map_err(|err| AwsError::call("GetApiKey", err))?
            .value
            .ok_or(AwsError::Missing {
                operation: "GetApiKey",
                what: "the key's value",
            })
    }

    /// The names of the deployment's usage plans that hold the key `key_id`.
    pub async fn plans_holding(&self, key_id: &str) -> Result<Vec<String>, AwsError> {
        Ok(self
            .plans(Some(key_id))
            .await?
            .into_iter()
            .map(|(_, name)| name)
            .filter(|name| name.starts_with(&self.prefix))
            .collect())
    }

    /// Creates the four plans' usage plans unless they exist (the local emulator, tests;
    /// deployed, the template creates them with their throttles and quotas).
    pub async fn ensure_plans(&self) -> Result<(), AwsError> {
        let existing = self.plans(None).await?;
        for plan in PlanTier::ALL {
            let name = self.plan_name(plan);
            if existing.iter().any(|(_, n)| *n == name) {
                continue;
            }
            self.client
                .create_usage_plan()
                .name(name)
                .send()
                .await
                .map_err(|err| AwsError::call("CreateUsagePlan", err))?;
        }
        Ok(())
    }

    async fn find_key(&self, tenant: TenantId) -> Result<Option<String>, AwsError> {
        let name = self.key_name(tenant);
        let keys = self
            .client
            .get_api_keys()
            .name_query(&name)
            .limit(PAGE)
            .send()
            .await
            .map_err(|err| AwsError::call("GetApiKeys", err))?;
        // `nameQuery` matches prefixes: keep the exact name only.
        Ok(keys
            .items
            .unwrap_or_default()
            .into_iter()
            .find(|key| key.name.as_deref() == Some(name.as_str()))
            .and_then(|key| key.id))
    }

    async fn create_key(&self, tenant: TenantId) -> Result<String, AwsError> {
        self.client
            .create_api_key()
            .name(self.key_name(tenant))
            .description(format!(
                "Casebook tenant {tenant}: its own throttle and quota"
            ))
            .enabled(true)
            .send()
            .await
            .map_err(|err| AwsError::call("CreateApiKey", err))?
            .id
            .ok_or(AwsError::Missing {
                operation: "CreateApiKey",
                what: "the key's id",
            })
    }

    /// `(id, name)` of every usage plan, or of those holding `key_id`.
    async fn plans(&self, key_id: Option<&str>) -> Result<Vec<(String, String)>, AwsError> {
        let plans = self
            .client
            .get_usage_plans()
            .set_key_id(key_id.map(str::to_owned))
            .limit(PAGE)
            .send()
            .await
            .map_err(|err| AwsError::call("GetUsagePlans", err))?;
        Ok(plans
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|plan| Some((plan.id?, plan.name?)))
            .collect())
    }
}

#[async_trait::async_trait]
impl casebook_application::ports::UsageKeys for UsagePlans {
    async fn put_on_plan(
        &self,
        tenant: TenantId,
        plan: PlanTier,
    ) -> Result<String, casebook_application::ports::BoxError> {
        Ok(UsagePlans::put_on_plan(self, tenant, plan).await?)
    }

    async fn key_value(
        &self,
        key_id: &str,
    ) -> Result<String, casebook_application::ports::BoxError> {
        Ok(UsagePlans::key_value(self, key_id).await?)
    }
}
