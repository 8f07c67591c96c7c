//! The AWS clients: EventBridge ([`eventbridge`]), SQS ([`sqs`]), tenant-partitioned S3
//! buckets ([`s3`]), asynchronous Lambda invocations ([`lambda`]), API Gateway usage keys
//! ([`apigateway`]), secrets (`secrets`, with the feature of that name), plus [`setup`], which
//! creates the bus, queues and buckets idempotently (the local emulator, tests).
//!
//! Every client is built from one shared configuration ([`shared_config`]), which honours
//! `AWS_ENDPOINT_URL` (the local emulator) and the usual credential chain.

pub mod apigateway;
pub mod eventbridge;
pub mod lambda;
pub mod s3;
#[cfg(feature = "secrets")]
pub mod secrets;
pub mod setup;
pub mod sqs;

pub use aws_sdk_eventbridge;
pub use aws_sdk_s3;
pub use aws_sdk_sqs;

pub use aws_config::SdkConfig;

use aws_config::BehaviorVersion;

/// Any error, boxed, with its cause chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Loads the shared AWS configuration from the environment.
pub async fn shared_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Why an AWS call failed.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// The call itself failed (network, throttling, a service error).
    #[error("{operation} failed")]
    Call {
        /// The API operation.
        operation: &'static str,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
    /// Some entries were still refused after every retry.
    #[error("{operation}: {failed} entries still failing after {attempts} attempts (last: {last_error})")]
    EntriesFailed {
        /// The API operation.
        operation: &'static str,
        /// How many entries failed.
        failed: usize,
        /// How many attempts were made.
        attempts: u32,
        /// The last error code and message reported for an entry.
        last_error: String,
    },
    /// A single entry cannot be sent at all (e.g. larger than the service allows).
    #[error("{operation}: {reason}")]
    Invalid {
        /// The API operation.
        operation: &'static str,
        /// Why.
        reason: String,
    },
    /// The service answered without something it must return.
    #[error("{operation}: response lacks {what}")]
    Missing {
        /// The API operation.
        operation: &'static str,
        /// What was missing.
        what: &'static str,
    },
}

impl AwsError {
    pub(crate) fn call(
        operation: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Call {
            operation,
            source: Box::new(source),
        }
    }

    /// Whether retrying later may help (everything but an invalid entry).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Invalid { .. })
    }
}
