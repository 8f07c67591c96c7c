//! Titan Text Embeddings v2 through `InvokeModel`.
//!
//! One request per text (the model embeds one input per call), up to
//! [`CONCURRENT_REQUESTS`] in flight; `normalize: true`, so vectors are unit length and
//! cosine similarity is a dot product.

use async_trait::async_trait;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::Client;
use casebook_domain::ports::{EmbedError, Embedder};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::client::{call, classify, CallFailed, Failure};
use super::CallPolicy;
use crate::ai::pricing::PriceTable;

/// Requests in flight per [`embed`](Embedder::embed) call.
pub const CONCURRENT_REQUESTS: usize = 8;
/// Titan v2 takes at most this many characters per input; longer texts are cut.
const MAX_INPUT_CHARS: usize = 50_000;

/// Bedrock's Titan Text Embeddings v2.
#[derive(Debug, Clone)]
pub struct TitanEmbedder {
    client: Client,
    model_id: String,
    dimensions: usize,
    policy: CallPolicy,
    prices: PriceTable,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TitanRequest<'a> {
    input_text: &'a str,
    dimensions: usize,
    normalize: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TitanResponse {
    embedding: Vec<f32>,
    input_text_token_count: u32,
}

/// The response body is not Titan's JSON.
#[derive(Debug, thiserror::Error)]
#[error("unexpected InvokeModel response from {model_id}")]
struct BadResponse {
    model_id: String,
    #[source]
    source: serde_json::Error,
}

impl TitanEmbedder {
    /// An embedder calling `model_id` (Titan v2) with `dimensions` (256, 512 or 1024; the
    /// configuration checks), under `policy`; `prices` prices the tokens it logs.
    pub fn new(
        client: Client,
        model_id: impl Into<String>,
        dimensions: usize,
        policy: CallPolicy,
        prices: PriceTable,
    ) -> Self {
        Self {
            client,
            model_id: model_id.into(),
            dimensions,
            policy,
            prices,
        }
    }

    async fn embed_one(&self, text: &str) -> Result<TitanResponse, EmbedError> {
        let input_text = match text.char_indices().nth(MAX_INPUT_CHARS) {
            Some((cut, _)) => &text[..cut],
            None => text,
        };
        let body = serde_json::to_vec(&TitanRequest {
            input_text,
            dimensions: self.dimensions,
            normalize: true,
        })
        .map_err(|err| EmbedError::Permanent(Box::new(err)))?;
        let response = call(&self.policy, "InvokeModel", &self.model_id, || async {
            let output = self
                .client
                .invoke_model()
                .model_id(&self.model_id)
                .content_type("application/json")
                .accept("application/json")
                .body(Blob::new(body.clone()))
                .send()
                .await
                .map_err(classify)?;
            serde_json::from_slice::<TitanResponse>(output.body().as_ref()).map_err(|source| {
                Failure::Permanent(Box::new(BadResponse {
                    model_id: self.model_id.clone(),
                    source,
                }))
            })
        })
        .await
        .map_err(|CallFailed { retryable, source }| {
            if retryable {
                EmbedError::Transient(source)
            } else {
                EmbedError::Permanent(source)
            }
        })?;
        if response.embedding.len() != self.dimensions {
            return Err(EmbedError::WrongDimension {
                expected: self.dimensions,
                actual: response.embedding.len(),
            });
        }
        Ok(response)
    }
}

#[async_trait]
impl Embedder for TitanEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimension(&self) -> usize {
        self.dimensions
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        // By index: a closure over `&String` trips the compiler's higher-ranked lifetime
        // check inside `async_trait`.
        let responses: Vec<TitanResponse> = futures::stream::iter(0..texts.len())
            .map(|i| self.embed_one(&texts[i]))
            .buffered(CONCURRENT_REQUESTS)
            .try_collect()
            .await?;
        let input_tokens: u32 = responses.iter().map(|r| r.input_text_token_count).sum();
        tracing::info!(
            model_id = %self.model_id,
            texts = texts.len(),
            input_tokens,
            cost_usd_micros = self.prices.cost_usd_micros(&self.model_id, input_tokens, 0),
            "bedrock embeddings"
        );
        Ok(responses.into_iter().map(|r| r.embedding).collect())
    }
}
