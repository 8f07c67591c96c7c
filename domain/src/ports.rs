//! The services the domain's workflows need from outside, as small traits that adapters
//! implement (a hosted provider in the cloud, an embedded one locally): [`Embedder`], [`Llm`],
//! and the [`AttachmentStore`] the diagnosis worker reads sessions' uploads from.
//!
//! Each error tells a retryable failure (throttling, timeouts, an unavailable provider) from a
//! final one, which is what [`DiagnosisCommand::Fail`](crate::diagnosis::DiagnosisCommand::Fail)
//! records.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::diagnosis::{AttachmentText, Finding};
use crate::ids::{JudgmentId, TenantId};
use crate::policy::ModelTier;
use crate::values::{Confidence, DiagnosisText, JudgmentBody, JudgmentTitle, QueryText, UploadKey};

/// A provider's underlying error, kept as the cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Turns texts into vectors for similarity search.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// The embedding model's id, recorded beside every stored vector.
    fn model_id(&self) -> &str;

    /// The length of every vector this embedder returns.
    fn dimension(&self) -> usize;

    /// One vector of [`dimension`](Embedder::dimension) floats per text, in order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// Why [`Embedder::embed`] failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// Throttled, timed out or unavailable: try again later.
    #[error("embedding provider temporarily unavailable")]
    Transient(#[source] BoxError),
    /// Refused the input or misconfigured: retrying won't help.
    #[error("embedding request failed")]
    Permanent(#[source] BoxError),
    /// The provider returned vectors of the wrong length (a changed model): retrying won't help.
    #[error("embedding has {actual} dimensions, expected {expected}")]
    WrongDimension {
        /// [`Embedder::dimension`].
        expected: usize,
        /// What came back.
        actual: usize,
    },
}

impl EmbedError {
    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

/// A captured judgment put into a prompt as precedent.
#[derive(Debug, Clone, PartialEq)]
pub struct Precedent {
    /// The judgment.
    pub judgment_id: JudgmentId,
    /// Its title.
    pub title: JudgmentTitle,
    /// Its body.
    pub body: JudgmentBody,
    /// Its similarity to the query.
    pub score: f32,
}

/// Everything the model is asked.
#[derive(Debug, Clone, PartialEq)]
pub struct DiagnosisPrompt {
    /// The rendered system prompt (from a versioned template).
    pub system: String,
    /// The customer's query.
    pub query: QueryText,
    /// Retrieved precedents, best first.
    pub precedents: Vec<Precedent>,
    /// The text of the session's attachments that are text, in the session's order (each cut
    /// to [`ATTACHMENT_TEXT_LIMIT`](crate::diagnosis::ATTACHMENT_TEXT_LIMIT) bytes).
    pub attachments: Vec<AttachmentText>,
    /// The tier [`route_model`](crate::policy::route_model) chose; the adapter maps it to a model.
    pub tier: ModelTier,
}

/// Why the model stopped (recorded in the proposal's provenance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// It finished its answer.
    EndTurn,
    /// It hit the output token limit: the answer may be cut short.
    MaxTokens,
    /// A guardrail or content filter stopped it.
    ContentFiltered,
}

/// The model's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmAnswer {
    /// The proposed diagnosis.
    pub text: DiagnosisText,
    /// Its structured findings.
    pub findings: Vec<Finding>,
    /// The model's confidence.
    pub confidence: Confidence,
    /// Tokens in.
    pub input_tokens: u32,
    /// Tokens out.
    pub output_tokens: u32,
    /// The model that answered.
    pub model_id: String,
    /// Why it stopped.
    pub stop_reason: StopReason,
}

/// Answers diagnosis prompts.
#[async_trait]
pub trait Llm: Send + Sync {
    /// Asks the model for a diagnosis.
    async fn diagnose(&self, prompt: &DiagnosisPrompt) -> Result<LlmAnswer, LlmError>;
}

/// Why [`Llm::diagnose`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// Throttled, timed out or unavailable: try again later.
    #[error("model temporarily unavailable")]
    Transient(#[source] BoxError),
    /// The answer didn't follow the expected structure; another sample may.
    #[error("model answer was malformed: {0}")]
    MalformedAnswer(String),
    /// Refused the prompt (too long, filtered) or misconfigured: retrying won't help.
    #[error("model request failed")]
    Permanent(#[source] BoxError),
}

impl LlmError {
    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient(_) | Self::MalformedAnswer(_))
    }
}

/// What the store knows about an uploaded object before anything is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentInfo {
    /// The content type it was uploaded with, if any.
    pub content_type: Option<String>,
    /// Its size in bytes.
    pub size: u64,
}

/// Reads the tenant's uploaded attachments (an object store in the cloud).
///
/// Both calls take the tenant the caller acts for and refuse a key outside its prefix
/// ([`AttachmentError::OutsideTenant`]) before reading anything, so one tenant's worker can
/// never read another tenant's upload, whatever a stored key says.
#[async_trait]
pub trait AttachmentStore: Send + Sync {
    /// The content type and size of `key`, without reading its body.
    async fn describe(
        &self,
        tenant: TenantId,
        key: &UploadKey,
    ) -> Result<AttachmentInfo, AttachmentError>;

    /// The first `max_bytes` bytes of `key` (all of it when it is shorter).
    async fn read_prefix(
        &self,
        tenant: TenantId,
        key: &UploadKey,
        max_bytes: u64,
    ) -> Result<Vec<u8>, AttachmentError>;
}

/// Why an [`AttachmentStore`] call failed.
#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    /// The key lies outside the tenant's prefix (or is malformed): refused unread.
    #[error("attachment {key} is outside the tenant's prefix")]
    OutsideTenant {
        /// The refused key.
        key: UploadKey,
    },
    /// Nothing is stored under the key (the upload never happened).
    #[error("attachment {key} does not exist")]
    Missing {
        /// The key.
        key: UploadKey,
    },
    /// The store could not answer (down, throttled, access denied, no such bucket): the
    /// attempt fails, and is retried while attempts remain.
    #[error("attachment store unavailable")]
    Unavailable(#[source] BoxError),
}
