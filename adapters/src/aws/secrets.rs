//! Secrets Manager, for what a function must hold but its configuration must not show (a
//! Lambda's environment is readable by anyone allowed `GetFunctionConfiguration`): the
//! verifiable logs' signing key.

use aws_config::SdkConfig;
pub use aws_sdk_secretsmanager;
use aws_sdk_secretsmanager::Client;

use super::AwsError;

/// The current string value of the secret `id` (its name or ARN).
pub async fn secret_string(config: &SdkConfig, id: &str) -> Result<String, AwsError> {
    Client::new(config)
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|err| AwsError::call("GetSecretValue", err))?
        .secret_string
        .ok_or(AwsError::Missing {
            operation: "GetSecretValue",
            what: "a string value",
        })
}
