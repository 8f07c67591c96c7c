//! The API Gateway Lambda (TOKEN) authorizer: verifies the Cognito ID token with the same
//! [`TokenVerifier`](crate::auth::TokenVerifier) the API uses, and tells API Gateway the
//! tenant, the roles, and which usage plan's API key meters the tenant (its plan tier).
//!
//! The result is cached by API Gateway per token, so the policy allows every method of the
//! stage: what a caller may do is decided by the API's own role checks.

use std::collections::HashMap;

use casebook_domain::policy::PlanTier;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::AuthError;
use crate::http::caller::Authenticator;
use crate::service::{Service, ServiceError};

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
    /// The method ARN is not one API Gateway sends.
    #[error("malformed method ARN")]
    MethodArn,
}

/// The authorizer's dependencies.
pub struct Authorizer {
    verifier: Authenticator,
    service: Service,
    usage_keys: HashMap<PlanTier, String>,
}

impl Authorizer {
    /// An authorizer metering each tier with the API key value in `usage_keys`.
    pub fn new(
        verifier: Authenticator,
        service: Service,
        usage_keys: HashMap<PlanTier, String>,
    ) -> Self {
        Self {
            verifier,
            service,
            usage_keys,
        }
    }

    /// The usage key of each tier from `CASEBOOK_USAGE_KEY_<TIER>` (e.g.
    /// `CASEBOOK_USAGE_KEY_COST_SENSITIVE`); tiers without one are not metered by a key.
    pub fn usage_keys_from_env() -> HashMap<PlanTier, String> {
        [
            PlanTier::Starter,
            PlanTier::Professional,
            PlanTier::Enterprise,
            PlanTier::CostSensitive,
        ]
        .into_iter()
        .filter_map(|tier| {
            let name = serde_json::to_value(tier).ok()?.as_str()?.to_uppercase();
            let key = std::env::var(format!("CASEBOOK_USAGE_KEY_{name}")).ok()?;
            Some((tier, key))
        })
        .collect()
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
        let tier = self
            .service
            .tenant_plan(principal.tenant_id)
            .await
            .map_err(AuthorizerError::Lookup)?
            .unwrap_or(PlanTier::Starter);
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
        if let Some(key) = self.usage_keys.get(&tier) {
            answer["usageIdentifierKey"] = Value::String(key.clone());
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
