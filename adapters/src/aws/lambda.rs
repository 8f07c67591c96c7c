//! Invoking a Lambda function asynchronously (`InvocationType=Event`): the API's nudge of
//! the projector after a commit, so events reach read models and queues without waiting
//! for the projector's schedule.

use aws_config::SdkConfig;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_lambda::Client;

use super::AwsError;

/// A client for one function.
#[derive(Debug, Clone)]
pub struct Function {
    client: Client,
    name: String,
}

impl Function {
    /// A client for the function `name` (a name or ARN).
    pub fn new(shared: &SdkConfig, name: impl Into<String>) -> Self {
        Self {
            client: Client::new(shared),
            name: name.into(),
        }
    }

    /// The function's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queues an invocation with `payload` (JSON) and returns once Lambda accepted it,
    /// without waiting for the function to run.
    pub async fn invoke_async(&self, payload: &[u8]) -> Result<(), AwsError> {
        let output = self
            .client
            .invoke()
            .function_name(&self.name)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|err| AwsError::call("Invoke", err))?;
        // An accepted asynchronous invocation answers 202.
        if output.status_code() != 202 {
            return Err(AwsError::Invalid {
                operation: "Invoke",
                reason: format!("asynchronous invocation answered {}", output.status_code()),
            });
        }
        Ok(())
    }
}
