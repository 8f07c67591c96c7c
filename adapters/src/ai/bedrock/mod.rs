//! Amazon Bedrock: Titan Text Embeddings v2 through `InvokeModel` (`TitanEmbedder`) and
//! the Claude tiers plus an open-weights model through `Converse` (`BedrockLlm`), with the
//! `bedrock` feature (the functions that call Bedrock: the worker, the projector, and
//! `casebook`); the [`CallPolicy`] of the settings always.
//!
//! Every call runs under a [`CallPolicy`]: a timeout per attempt (a timeout is a retryable
//! failure, left to the caller's redelivery), and, while Bedrock throttles, further attempts
//! after a full-jitter exponential backoff. The SDK's own retries are switched off so the
//! policy is the only one.

#[cfg(feature = "bedrock")]
mod client;
#[cfg(feature = "bedrock")]
mod converse;
#[cfg(feature = "bedrock")]
mod document;
#[cfg(feature = "bedrock")]
mod titan;

use std::time::Duration;

#[cfg(feature = "bedrock")]
pub use client::{bedrock_client, bedrock_client_from};
#[cfg(feature = "bedrock")]
pub use converse::BedrockLlm;
#[cfg(feature = "bedrock")]
pub use titan::TitanEmbedder;

/// Timeout and retries of one Bedrock call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallPolicy {
    /// Limit of one attempt.
    pub timeout: Duration,
    /// Attempts while Bedrock throttles (at least 1).
    pub max_attempts: u32,
    /// The first backoff's upper bound; it doubles per attempt…
    pub backoff_base: Duration,
    /// …up to this.
    pub backoff_max: Duration,
}
