//! The AI path's providers: embeddings and diagnoses, from Amazon Bedrock in AWS or from
//! models embedded in the process when no AWS is configured.
//!
//! | module | holds |
//! |---|---|
//! | [`config`] | [`AiConfig`]: provider choice, model paths, Bedrock model ids per tier, prices, timeouts |
//! | [`bedrock`] | [`bedrock::TitanEmbedder`] (Titan Text Embeddings v2) and [`bedrock::BedrockLlm`] (Converse) |
//! | [`local`] | `LocalEmbedder` (all-MiniLM-L6-v2, int8 in onnxruntime or F32 in candle) and `GgufLlm` (a GGUF model on candle), with the `local-models` feature; their settings always |
//! | [`prompt`] | versioned, hashed prompt templates ([`prompt::DIAGNOSIS_V2`]) and the user message |
//! | [`pricing`] | [`pricing::PriceTable`]: tokens to micro-dollars |
//! | `model_cache` | local models load lazily, once per process; a missing file names `infra/local/models.sh` (with `local-models`) |
//!
//! [`AiProviders::from_config`] builds the pair the domain's ports need:
//!
//! ```no_run
//! # async fn example() -> Result<(), casebook_adapters::config::ConfigError> {
//! use casebook_adapters::ai::{AiConfig, AiProviders};
//! let providers = AiProviders::from_config(&AiConfig::from_env()?).await;
//! let vectors = providers.embedder.embed(&["a query".to_owned()]).await;
//! # Ok(()) }
//! ```

#[cfg(any(feature = "bedrock", feature = "local-models"))]
pub(crate) mod answer;
pub mod bedrock;
pub mod config;
pub mod local;
#[cfg(feature = "local-models")]
pub mod model_cache;
pub mod pricing;
pub mod prompt;

use std::sync::Arc;

use casebook_domain::ports::{Embedder, Llm, LlmAnswer};

pub use config::{AiConfig, Provider};

#[cfg(feature = "bedrock")]
use crate::ai::bedrock::{bedrock_client, BedrockLlm, TitanEmbedder};
#[cfg(feature = "local-models")]
use crate::ai::local::{GgufLlm, LocalEmbedder};
use crate::ai::pricing::PriceTable;

/// The providers of one process, behind the domain's ports.
#[derive(Clone)]
pub struct AiProviders {
    /// Turns texts into vectors (the judgment index and the queries).
    pub embedder: Arc<dyn Embedder>,
    /// Answers diagnosis prompts.
    pub llm: Arc<dyn Llm>,
    /// Prices of the models `llm` and `embedder` call (empty for local models).
    pub prices: PriceTable,
}

impl AiProviders {
    /// Bedrock (Titan v2 + Converse) when `config.provider` is [`Provider::Bedrock`],
    /// otherwise the embedded models (all-MiniLM-L6-v2 + the GGUF model, see [`Self::local`]). Local models load
    /// on first use, so this never touches the model files.
    ///
    /// # Panics
    ///
    /// For a provider this build lacks ([`Provider::Local`] without the `local-models`
    /// feature, [`Provider::Bedrock`] without `bedrock`): the settings of every process that
    /// asks for providers refuse those first ([`Provider::is_built`]).
    pub async fn from_config(config: &AiConfig) -> Self {
        match config.provider {
            #[cfg(feature = "local-models")]
            Provider::Local => Self::local(config),
            #[cfg(not(feature = "local-models"))]
            Provider::Local => panic!(
                "CASEBOOK_AI_PROVIDER=local in a build without local models: the settings should have refused it"
            ),
            #[cfg(not(feature = "bedrock"))]
            Provider::Bedrock => panic!(
                "CASEBOOK_AI_PROVIDER=bedrock in a build without Bedrock: the settings should have refused it"
            ),
            #[cfg(feature = "bedrock")]
            Provider::Bedrock => {
                let bedrock = &config.bedrock;
                let client = bedrock_client(bedrock).await;
                Self {
                    embedder: Arc::new(TitanEmbedder::new(
                        client.clone(),
                        bedrock.embedding_model.clone(),
                        bedrock.embedding_dimensions,
                        bedrock.call_policy,
                        bedrock.prices.clone(),
                    )),
                    llm: Arc::new(BedrockLlm::new(
                        client,
                        bedrock.models.clone(),
                        bedrock.max_tokens,
                        bedrock.call_policy,
                        bedrock.prices.clone(),
                    )),
                    prices: bedrock.prices.clone(),
                }
            }
        }
    }

    /// The embedded models from `config`'s models directory and GGUF path.
    #[cfg(feature = "local-models")]
    pub fn local(config: &AiConfig) -> Self {
        Self {
            embedder: Arc::new(LocalEmbedder::new(
                config.minilm_dir(),
                config.local_embeddings.clone(),
            )),
            llm: Arc::new(GgufLlm::new(config.gguf_settings())),
            prices: PriceTable::default(),
        }
    }

    /// What `answer` cost in millionths of a US dollar, for its provenance: its tokens at
    /// the answering model's price, 0 for a model run in process.
    pub fn cost_usd_micros(&self, answer: &LlmAnswer) -> u64 {
        self.prices
            .cost_usd_micros(&answer.model_id, answer.input_tokens, answer.output_tokens)
            .unwrap_or(0)
    }
}
