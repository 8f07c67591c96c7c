//! The API Gateway Lambda (TOKEN) authorizer: verifies the Cognito ID token with the same
//! [`TokenVerifier`](crate::auth::TokenVerifier) the API uses, and tells API Gateway the
//! tenant, the roles, and the tenant's own API key (`usageIdentifierKey`), which sits on its
//! plan's usage plan (see [`UsageKeyAssignment`](casebook_application::reactions::UsageKeyAssignment)): throttles and quotas are per tenant. A tenant
//! whose key is not assigned yet (the first seconds after onboarding) gets no key, and the
//! gateway refuses its requests until it is.
//!
//! The result is cached by API Gateway per token, so the policy allows every method of the
//! stage: what a caller may do is decided by the API's own role checks.

use std::sync::Arc;
use std::time::Duration;

use casebook_adapters::aws::BoxError;
use casebook_domain::policy::PlanTier;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::AuthError;
use crate::http::caller::Authenticator;
use casebook_application::ports::UsageKeys;
use casebook_application::service::{Service, ServiceError};

/// What API Gateway sends a TOKEN authorizer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenAuthorizerEvent {
    /// `Bearer <ID token>`.
    pub authorization_token: String,
    /// `arn:aws:execute-api:<region>:<account>:<api>/<stage>/<method>/<path>`.
    pub method_arn: String,
}

/// Why a request is not authorized. API Gateway turns the message `Unauthorized` into a 401.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizerError {
    /// The token is missing or invalid.
    #[error("Unauthorized")]
    Unauthorized(#[source] AuthError),
    /// The tenant's plan could not be read (API Gateway answers 500; the client may retry).
    #[error("tenant lookup failed")]
    Lookup(#[source] ServiceError),
    /// The tenant's key could not be read from the gateway (500; the client may retry).
    #[error("usage key lookup failed")]
    KeyLookup(#[source] BoxError),
    /// The method ARN is not one API Gateway sends.
    #[error("malformed method ARN")]
    MethodArn,
}

/// The authorizer's dependencies.
pub struct Authorizer {
    verifier: Authenticator,
    service: Service,
    keys: Option<Arc<dyn UsageKeys>>,
    /// Key values by key id: a key's value never changes, so each container asks the gateway
    /// once per tenant.
    values: moka::sync::Cache<String, String>,
}

impl Authorizer {
    /// An authorizer naming each tenant's key from `keys` (`None`: no usage keys, as without
    /// a gateway).
    pub fn new(
        verifier: Authenticator,
        service: Service,
        keys: Option<Arc<dyn UsageKeys>>,
    ) -> Self {
        Self {
            verifier,
            service,
            keys,
            values: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(3_600))
                .build(),
        }
    }

    /// The value of the tenant's key `key_id`.
    async fn key_value(
        &self,
        keys: &dyn UsageKeys,
        key_id: &str,
    ) -> Result<String, AuthorizerError> {
        if let Some(value) = self.values.get(key_id) {
            return Ok(value);
        }
        let value = keys
            .key_value(key_id)
            .await
            .map_err(AuthorizerError::KeyLookup)?;
        self.values.insert(key_id.to_owned(), value.clone());
        Ok(value)
    }

    /// The authorizer's answer for `event`.
    pub async fn authorize(&self, event: &TokenAuthorizerEvent) -> Result<Value, AuthorizerError> {
        let token = crate::auth::bearer_token(&event.authorization_token)
            .map_err(AuthorizerError::Unauthorized)?;
        let principal = self
            .verifier
            .verify(token)
            .await
            .map_err(AuthorizerError::Unauthorized)?;
        let tenant = self
            .service
            .tenant_state(principal.tenant_id)
            .await
            .map_err(AuthorizerError::Lookup)?;
        let tier = tenant.plan().unwrap_or(PlanTier::Starter);
        let roles: Vec<Value> = principal
            .roles
            .iter()
            .filter_map(|role| serde_json::to_value(role).ok())
            .collect();
        let roles = roles
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(",");
        let mut answer = json!({
            "principalId": principal.user_id.as_str(),
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": stage_wildcard(&event.method_arn)?,
                }],
            },
            // Authorizer context values must be strings, numbers or booleans.
            "context": {
                "tenant_id": principal.tenant_id.to_string(),
                "roles": roles,
                "plan": serde_json::to_value(tier).unwrap_or(Value::Null),
            },
        });
        if let (Some(keys), Some(key_id)) = (&self.keys, tenant.usage_key_id()) {
            let value = self.key_value(keys.as_ref(), key_id).await?;
            answer["usageIdentifierKey"] = Value::String(value);
        }
        Ok(answer)
    }
}

/// `…:<api>/<stage>/<method>/<path>` → `…:<api>/<stage>/*/*`.
fn stage_wildcard(method_arn: &str) -> Result<String, AuthorizerError> {
    let (prefix, path) = method_arn
        .split_once(":execute-api:")
        .ok_or(AuthorizerError::MethodArn)?;
    let mut parts = path.splitn(3, '/');
    let api = parts
        .next()
        .filter(|p| !p.is_empty())
        .ok_or(AuthorizerError::MethodArn)?;
    let stage = parts
        .next()
        .filter(|p| !p.is_empty())
        .ok_or(AuthorizerError::MethodArn)?;
    Ok(format!("{prefix}:execute-api:{api}/{stage}/*/*"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_covers_every_method_of_the_stage() {
        let arn = "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/POST/v1/sessions";
        assert_eq!(
            stage_wildcard(arn).unwrap(),
            "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/*/*"
        );
        assert!(stage_wildcard("arn:aws:lambda:x").is_err());
    }
}
