//! The Bedrock client and the policy every call runs under: a timeout per attempt, backoff
//! while throttled, and the sorting of the SDK's errors into retryable or final.

use std::future::Future;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::Client;
use casebook_domain::ports::BoxError;
use rand::Rng;

use super::CallPolicy;
use crate::ai::config::BedrockConfig;

impl CallPolicy {
    /// The pause before attempt `attempt + 1` (1-based `attempt`): uniformly random between
    /// zero and `min(backoff_max, backoff_base × 2^(attempt-1))` ("full jitter"), so clients
    /// throttled together don't come back together.
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .backoff_base
            .saturating_mul(1_u32 << attempt.saturating_sub(1).min(20))
            .min(self.backoff_max);
        cap.mul_f64(rand::thread_rng().gen_range(0.0..=1.0))
    }
}

/// A Bedrock client for `config`: the SDK's default credentials chain, with the configured
/// region and endpoint.
pub async fn bedrock_client(config: &BedrockConfig) -> Client {
    let shared = aws_config::defaults(BehaviorVersion::latest()).load().await;
    bedrock_client_from(&shared, config)
}

/// A Bedrock client from an already loaded `shared` SDK configuration (tests pass static
/// credentials), with `config`'s region and endpoint and the SDK's retries off.
pub fn bedrock_client_from(shared: &SdkConfig, config: &BedrockConfig) -> Client {
    let mut builder =
        aws_sdk_bedrockruntime::config::Builder::from(shared).retry_config(RetryConfig::disabled());
    if let Some(region) = &config.region {
        builder = builder.region(Region::new(region.clone()));
    }
    if let Some(url) = &config.endpoint_url {
        builder = builder.endpoint_url(url);
    }
    Client::from_conf(builder.build())
}

/// How one attempt failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// Bedrock asked us to slow down: back off and try again.
    Throttled(BoxError),
    /// Worth trying again later, but not within this call.
    Transient(BoxError),
    /// Retrying won't help.
    Permanent(BoxError),
}

/// The outcome of a call after its retries: retryable (by the caller, later) or not.
#[derive(Debug)]
pub(super) struct CallFailed {
    pub(super) retryable: bool,
    pub(super) source: BoxError,
}

/// An attempt that exceeded [`CallPolicy::timeout`].
#[derive(Debug, thiserror::Error)]
#[error("{operation} on {model_id} timed out after {after:?}")]
struct TimedOut {
    operation: &'static str,
    model_id: String,
    after: Duration,
}

/// Bedrock throttled every attempt.
#[derive(Debug, thiserror::Error)]
#[error("{operation} on {model_id} still throttled after {attempts} attempts")]
struct StillThrottled {
    operation: &'static str,
    model_id: String,
    attempts: u32,
    #[source]
    last: BoxError,
}

/// Runs `attempt` under `policy`: each try limited by the timeout, retried with jittered
/// backoff only while throttled.
pub(super) async fn call<T, F, Fut>(
    policy: &CallPolicy,
    operation: &'static str,
    model_id: &str,
    mut attempt: F,
) -> Result<T, CallFailed>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        let failure = match tokio::time::timeout(policy.timeout, attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(failure)) => failure,
            Err(_) => Failure::Transient(Box::new(TimedOut {
                operation,
                model_id: model_id.to_owned(),
                after: policy.timeout,
            })),
        };
        match failure {
            Failure::Throttled(last) if tries >= policy.max_attempts => {
                return Err(CallFailed {
                    retryable: true,
                    source: Box::new(StillThrottled {
                        operation,
                        model_id: model_id.to_owned(),
                        attempts: tries,
                        last,
                    }),
                })
            }
            Failure::Throttled(err) => {
                let pause = policy.backoff(tries);
                tracing::warn!(operation, model_id, attempt = tries, ?pause, error = %err, "bedrock throttled; backing off");
                tokio::time::sleep(pause).await;
            }
            Failure::Transient(source) => {
                return Err(CallFailed {
                    retryable: true,
                    source,
                })
            }
            Failure::Permanent(source) => {
                return Err(CallFailed {
                    retryable: false,
                    source,
                })
            }
        }
    }
}

/// Sorts an SDK error: throttling and "not ready / unavailable" back off and retry; server
/// errors and network failures are retryable later; the rest (validation, access, unknown
/// model) are final.
pub(super) fn classify<E, R>(err: SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let (code, status) = match &err {
        SdkError::ServiceError(context) => (
            context.err().code().map(str::to_owned),
            status_of(context.raw()),
        ),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            return Failure::Transient(Box::new(err))
        }
        _ => return Failure::Permanent(Box::new(err)),
    };
    match (code.as_deref(), status) {
        (
            Some("ThrottlingException" | "ServiceUnavailableException" | "ModelNotReadyException"),
            _,
        )
        | (_, Some(429 | 503)) => Failure::Throttled(Box::new(err)),
        (Some("InternalServerException" | "ModelTimeoutException"), _) | (_, Some(500..)) => {
            Failure::Transient(Box::new(err))
        }
        _ => Failure::Permanent(Box::new(err)),
    }
}

/// The HTTP status of a raw response, when it is the SDK's HTTP response type.
fn status_of<R: 'static>(raw: &R) -> Option<u16> {
    (raw as &dyn std::any::Any)
        .downcast_ref::<aws_sdk_bedrockruntime::config::http::HttpResponse>()
        .map(|response| response.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_below_its_doubling_cap() {
        let policy = CallPolicy {
            timeout: Duration::from_secs(1),
            max_attempts: 5,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
        };
        for _ in 0..100 {
            assert!(policy.backoff(1) <= Duration::from_millis(100));
            assert!(policy.backoff(2) <= Duration::from_millis(200));
            assert!(policy.backoff(6) <= Duration::from_millis(300));
        }
    }
}
