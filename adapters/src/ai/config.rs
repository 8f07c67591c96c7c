//! The AI path's configuration, read from the environment once at start-up.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CASEBOOK_AI_PROVIDER` | `local` | `local` (embedded models, offline) or `bedrock` |
//! | `CASEBOOK_MODELS_DIR` | `${CASEBOOK_CACHE:-/var/cache/casebook}/models` | where `infra/local/models.sh` unpacks the local models |
//! | `CASEBOOK_LOCAL_EMBEDDINGS` | `onnx` | the local embedder's runtime: `onnx` (int8, onnxruntime) or `candle` (F32) |
//! | `CASEBOOK_ONNXRUNTIME_LIB` | `<models dir>/onnxruntime/libonnxruntime.so` | the onnxruntime library (from the PyPI wheel) |
//! | `CASEBOOK_GGUF_PATH` | `<models dir>/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf` | the custom model (a GGUF file) |
//! | `CASEBOOK_GGUF_MAX_NEW_TOKENS` | `256` | generation limit of the custom model |
//! | `CASEBOOK_GGUF_DEQUANTIZE` | `true` | expand the custom model to F32 when loading (faster, 4 bytes per parameter) |
//! | `CASEBOOK_BEDROCK_REGION` | the SDK's (`AWS_REGION`, profile, …) | Bedrock's region |
//! | `CASEBOOK_BEDROCK_ENDPOINT_URL` | the SDK's | another Bedrock endpoint (a VPC endpoint, a test's fake) |
//! | `CASEBOOK_BEDROCK_EMBEDDING_MODEL` | `amazon.titan-embed-text-v2:0` | Titan Text Embeddings v2 |
//! | `CASEBOOK_BEDROCK_EMBEDDING_DIMENSIONS` | `1024` | 256, 512 or 1024 |
//! | `CASEBOOK_BEDROCK_MODEL_TRIAGE` | `us.anthropic.claude-3-5-haiku-20241022-v1:0` | model or inference-profile id per [`ModelTier`] |
//! | `CASEBOOK_BEDROCK_MODEL_STANDARD` | `us.anthropic.claude-sonnet-4-20250514-v1:0` | |
//! | `CASEBOOK_BEDROCK_MODEL_STRONGEST` | `us.anthropic.claude-opus-4-1-20250805-v1:0` | |
//! | `CASEBOOK_BEDROCK_MODEL_OPEN_WEIGHTS` | `us.meta.llama3-3-70b-instruct-v1:0` | the cost-sensitive / open-weights tier |
//! | `CASEBOOK_BEDROCK_MAX_TOKENS` | `2048` | output limit per Converse call |
//! | `CASEBOOK_BEDROCK_TIMEOUT_MS` | `60000` | per attempt; a timeout is a retryable failure |
//! | `CASEBOOK_BEDROCK_MAX_ATTEMPTS` | `4` | attempts per call while Bedrock throttles |
//! | `CASEBOOK_BEDROCK_BACKOFF_BASE_MS`, `…_MAX_MS` | `200`, `5000` | full-jitter exponential backoff between them |
//! | `CASEBOOK_BEDROCK_PRICES` | the table in [`default_prices`] | JSON `{"<model id>": {"input": 0.8, "output": 4.0}, …}` in USD per million tokens, merged over the defaults |
//!
//! The local stack exports `AWS_*` variables for its AWS emulator, which has no Bedrock: so
//! Bedrock is used only when asked for by `CASEBOOK_AI_PROVIDER=bedrock`.

use std::path::PathBuf;
use std::time::Duration;

use casebook_domain::policy::ModelTier;

use crate::ai::bedrock::CallPolicy;
use crate::ai::local::{MiniLmRuntime, GGUF_DIR, MINILM_DIR, SMOLLM2_FILE};
use crate::ai::pricing::{ModelPrice, PriceTable};
use crate::config::{parse_or, ConfigError};

/// Which family of providers serves embeddings and generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// In-process models from the local models directory.
    Local,
    /// Amazon Bedrock.
    Bedrock,
}

impl Provider {
    /// Whether this build can call the provider: the embedded models come with the
    /// `local-models` feature, the Bedrock client with `bedrock` (see [`Provider::feature`]).
    pub const fn is_built(self) -> bool {
        match self {
            Provider::Local => cfg!(feature = "local-models"),
            Provider::Bedrock => cfg!(feature = "bedrock"),
        }
    }

    /// The Cargo feature that builds the provider in.
    pub const fn feature(self) -> &'static str {
        match self {
            Provider::Local => "local-models",
            Provider::Bedrock => "bedrock",
        }
    }
}

/// Titan Text Embeddings v2, the default Bedrock embedding model.
pub const TITAN_EMBED_V2: &str = "amazon.titan-embed-text-v2:0";

/// Everything the AI providers need.
#[derive(Debug, Clone)]
pub struct AiConfig {
    /// Local or Bedrock.
    pub provider: Provider,
    /// Where the local models live.
    pub models_dir: PathBuf,
    /// The local embedder's runtime.
    pub local_embeddings: MiniLmRuntime,
    /// The custom-model provider's GGUF file.
    pub gguf_path: PathBuf,
    /// The custom model's generation limit.
    pub gguf_max_new_tokens: u32,
    /// Whether the custom model is expanded to F32 when loading.
    pub gguf_dequantize: bool,
    /// Bedrock's settings (defaults when the provider is local).
    pub bedrock: BedrockConfig,
}

/// How Casebook uses Bedrock.
#[derive(Debug, Clone)]
pub struct BedrockConfig {
    /// The region, if not the SDK's default.
    pub region: Option<String>,
    /// Another endpoint, if not the SDK's.
    pub endpoint_url: Option<String>,
    /// The embedding model id.
    pub embedding_model: String,
    /// The embedding's length: 256, 512 or 1024.
    pub embedding_dimensions: usize,
    /// The model id (or inference-profile id) per tier.
    pub models: TierModels,
    /// The output limit per Converse call.
    pub max_tokens: u32,
    /// Timeout and retries per call.
    pub call_policy: CallPolicy,
    /// Prices of every configured model.
    pub prices: PriceTable,
}

/// A model id (or inference-profile id) for each [`ModelTier`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierModels {
    /// [`ModelTier::Triage`].
    pub triage: String,
    /// [`ModelTier::Standard`].
    pub standard: String,
    /// [`ModelTier::Strongest`].
    pub strongest: String,
    /// [`ModelTier::OpenWeights`].
    pub open_weights: String,
}

impl TierModels {
    /// The model for `tier`.
    pub fn model(&self, tier: ModelTier) -> &str {
        match tier {
            ModelTier::Triage => &self.triage,
            ModelTier::Standard => &self.standard,
            ModelTier::Strongest => &self.strongest,
            ModelTier::OpenWeights => &self.open_weights,
        }
    }

    fn all(&self) -> [&str; 4] {
        [
            &self.triage,
            &self.standard,
            &self.strongest,
            &self.open_weights,
        ]
    }
}

/// On-demand prices (USD per million tokens) of the default models, as Bedrock lists them
/// for us-east-1; deployments override them with `CASEBOOK_BEDROCK_PRICES`.
pub fn default_prices() -> PriceTable {
    let price = |input, output| ModelPrice { input, output };
    PriceTable::new([
        (TITAN_EMBED_V2.to_owned(), price(0.02, 0.0)),
        (
            "us.anthropic.claude-3-5-haiku-20241022-v1:0".to_owned(),
            price(0.8, 4.0),
        ),
        (
            "us.anthropic.claude-sonnet-4-20250514-v1:0".to_owned(),
            price(3.0, 15.0),
        ),
        (
            "us.anthropic.claude-opus-4-1-20250805-v1:0".to_owned(),
            price(15.0, 75.0),
        ),
        (
            "us.meta.llama3-3-70b-instruct-v1:0".to_owned(),
            price(0.72, 0.72),
        ),
    ])
}

impl AiConfig {
    /// Reads the variables in the [module docs](self).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`AiConfig::from_env`], over any source of variables (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let provider = match lookup("CASEBOOK_AI_PROVIDER").as_deref() {
            None | Some("local") => Provider::Local,
            Some("bedrock") => Provider::Bedrock,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: "CASEBOOK_AI_PROVIDER",
                    reason: "must be `local` or `bedrock`".into(),
                })
            }
        };
        let models_dir = lookup("CASEBOOK_MODELS_DIR").map_or_else(
            || {
                PathBuf::from(
                    lookup("CASEBOOK_CACHE").unwrap_or_else(|| "/var/cache/casebook".into()),
                )
                .join("models")
            },
            PathBuf::from,
        );
        let local_embeddings = match lookup("CASEBOOK_LOCAL_EMBEDDINGS").as_deref() {
            None | Some("onnx") => MiniLmRuntime::Onnx {
                library: lookup("CASEBOOK_ONNXRUNTIME_LIB").map_or_else(
                    || models_dir.join("onnxruntime").join("libonnxruntime.so"),
                    PathBuf::from,
                ),
            },
            Some("candle") => MiniLmRuntime::Candle,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: "CASEBOOK_LOCAL_EMBEDDINGS",
                    reason: "must be `onnx` or `candle`".into(),
                })
            }
        };
        let gguf_path = lookup("CASEBOOK_GGUF_PATH").map_or_else(
            || models_dir.join(GGUF_DIR).join(SMOLLM2_FILE),
            PathBuf::from,
        );
        let gguf_max_new_tokens = parse_or(&lookup, "CASEBOOK_GGUF_MAX_NEW_TOKENS", 256)?;
        let gguf_dequantize = parse_or(&lookup, "CASEBOOK_GGUF_DEQUANTIZE", true)?;
        let bedrock = BedrockConfig::from_lookup(&lookup)?;
        Ok(Self {
            provider,
            models_dir,
            local_embeddings,
            gguf_path,
            gguf_max_new_tokens,
            gguf_dequantize,
            bedrock,
        })
    }

    /// The custom-model provider's settings.
    pub fn gguf_settings(&self) -> crate::ai::local::GgufSettings {
        crate::ai::local::GgufSettings::new(
            self.gguf_path.clone(),
            self.gguf_max_new_tokens,
            self.gguf_dequantize,
        )
    }

    /// The all-MiniLM-L6-v2 directory inside the models directory.
    pub fn minilm_dir(&self) -> PathBuf {
        self.models_dir.join(MINILM_DIR)
    }
}

impl BedrockConfig {
    fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let string_or = |name, default: &str| lookup(name).unwrap_or_else(|| default.to_owned());
        let embedding_dimensions = parse_or(lookup, "CASEBOOK_BEDROCK_EMBEDDING_DIMENSIONS", 1024)?;
        if ![256, 512, 1024].contains(&embedding_dimensions) {
            return Err(ConfigError::Invalid {
                name: "CASEBOOK_BEDROCK_EMBEDDING_DIMENSIONS",
                reason: "Titan Text Embeddings v2 supports 256, 512 or 1024".into(),
            });
        }
        let models = TierModels {
            triage: string_or(
                "CASEBOOK_BEDROCK_MODEL_TRIAGE",
                "us.anthropic.claude-3-5-haiku-20241022-v1:0",
            ),
            standard: string_or(
                "CASEBOOK_BEDROCK_MODEL_STANDARD",
                "us.anthropic.claude-sonnet-4-20250514-v1:0",
            ),
            strongest: string_or(
                "CASEBOOK_BEDROCK_MODEL_STRONGEST",
                "us.anthropic.claude-opus-4-1-20250805-v1:0",
            ),
            open_weights: string_or(
                "CASEBOOK_BEDROCK_MODEL_OPEN_WEIGHTS",
                "us.meta.llama3-3-70b-instruct-v1:0",
            ),
        };
        let embedding_model = string_or("CASEBOOK_BEDROCK_EMBEDDING_MODEL", TITAN_EMBED_V2);
        let mut prices = default_prices();
        if let Some(raw) = lookup("CASEBOOK_BEDROCK_PRICES") {
            let overrides: std::collections::HashMap<String, ModelPrice> =
                serde_json::from_str(&raw).map_err(|err| ConfigError::Invalid {
                    name: "CASEBOOK_BEDROCK_PRICES",
                    reason: err.to_string(),
                })?;
            if overrides
                .values()
                .any(|p| !(p.input >= 0.0 && p.output >= 0.0))
            {
                return Err(ConfigError::Invalid {
                    name: "CASEBOOK_BEDROCK_PRICES",
                    reason: "prices must be non-negative numbers".into(),
                });
            }
            prices.extend(overrides);
        }
        for model in models.all().into_iter().chain([embedding_model.as_str()]) {
            if prices.price(model).is_none() {
                return Err(ConfigError::Invalid {
                    name: "CASEBOOK_BEDROCK_PRICES",
                    reason: format!("no price for the configured model {model}"),
                });
            }
        }
        let call_policy = CallPolicy {
            timeout: Duration::from_millis(parse_or(
                lookup,
                "CASEBOOK_BEDROCK_TIMEOUT_MS",
                60_000,
            )?),
            max_attempts: parse_or(lookup, "CASEBOOK_BEDROCK_MAX_ATTEMPTS", 4)?,
            backoff_base: Duration::from_millis(parse_or(
                lookup,
                "CASEBOOK_BEDROCK_BACKOFF_BASE_MS",
                200,
            )?),
            backoff_max: Duration::from_millis(parse_or(
                lookup,
                "CASEBOOK_BEDROCK_BACKOFF_MAX_MS",
                5_000,
            )?),
        };
        if call_policy.max_attempts == 0 {
            return Err(ConfigError::Invalid {
                name: "CASEBOOK_BEDROCK_MAX_ATTEMPTS",
                reason: "must be at least 1".into(),
            });
        }
        Ok(Self {
            region: lookup("CASEBOOK_BEDROCK_REGION"),
            endpoint_url: lookup("CASEBOOK_BEDROCK_ENDPOINT_URL"),
            embedding_model,
            embedding_dimensions,
            models,
            max_tokens: parse_or(lookup, "CASEBOOK_BEDROCK_MAX_TOKENS", 2_048)?,
            call_policy,
            prices,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config_from(vars: &[(&str, &str)]) -> Result<AiConfig, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        AiConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn without_configuration_the_local_providers_serve_from_the_cache_dir() {
        let config = config_from(&[("AWS_REGION", "us-east-1")]).expect("valid");
        assert_eq!(config.provider, Provider::Local);
        assert_eq!(
            config.minilm_dir(),
            PathBuf::from("/var/cache/casebook/models/all-minilm-l6-v2")
        );
        assert_eq!(
            config.local_embeddings,
            MiniLmRuntime::Onnx {
                library: PathBuf::from("/var/cache/casebook/models/onnxruntime/libonnxruntime.so")
            }
        );
        let config = config_from(&[("CASEBOOK_CACHE", "/tmp/cb")]).expect("valid");
        assert_eq!(
            config.gguf_path,
            PathBuf::from("/tmp/cb/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
        );
    }

    #[test]
    fn bedrock_models_come_from_config_per_tier() {
        let config = config_from(&[
            ("CASEBOOK_AI_PROVIDER", "bedrock"),
            (
                "CASEBOOK_BEDROCK_MODEL_OPEN_WEIGHTS",
                "mistral.mistral-large-2407-v1:0",
            ),
            (
                "CASEBOOK_BEDROCK_PRICES",
                r#"{"mistral.mistral-large-2407-v1:0": {"input": 2.0, "output": 6.0}}"#,
            ),
        ])
        .expect("valid");
        assert_eq!(config.provider, Provider::Bedrock);
        assert_eq!(
            config.bedrock.models.model(ModelTier::OpenWeights),
            "mistral.mistral-large-2407-v1:0"
        );
        assert_eq!(
            config.bedrock.models.model(ModelTier::Triage),
            "us.anthropic.claude-3-5-haiku-20241022-v1:0"
        );
    }

    #[test]
    fn a_model_without_a_price_is_refused() {
        let err =
            config_from(&[("CASEBOOK_BEDROCK_MODEL_STANDARD", "some.new-model-v1:0")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "CASEBOOK_BEDROCK_PRICES",
                ..
            }
        ));
    }

    #[test]
    fn titan_dimensions_other_than_256_512_1024_are_refused() {
        let err = config_from(&[("CASEBOOK_BEDROCK_EMBEDDING_DIMENSIONS", "384")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "CASEBOOK_BEDROCK_EMBEDDING_DIMENSIONS",
                ..
            }
        ));
    }
}
