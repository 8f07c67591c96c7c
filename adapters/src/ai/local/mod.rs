//! Embedded local providers: the default when no AWS is configured, so the product runs
//! fully offline. Built with the `local-models` feature (the `casebook` binary's); the Lambda
//! functions, on Bedrock, are built without it and link none of candle, onnxruntime or
//! tokenizers.
//!
//! - [`LocalEmbedder`]: all-MiniLM-L6-v2 sentence embeddings (384 dimensions, normalized),
//!   int8 in onnxruntime by default, F32 in candle as the alternative.
//! - [`GgufLlm`]: the custom-model provider, a GGUF model run with candle's quantized llama.

#[cfg(feature = "local-models")]
mod gguf;
#[cfg(feature = "local-models")]
mod gguf_tokenizer;
#[cfg(feature = "local-models")]
mod minilm;
mod settings;

#[cfg(feature = "local-models")]
pub use gguf::{Generation, GgufLlm, UNSTRUCTURED_CONFIDENCE};
#[cfg(feature = "local-models")]
pub use minilm::{
    LocalEmbedder, MINILM_CANDLE_MODEL_ID, MINILM_DIMENSION, MINILM_ONNX_FILE, MINILM_ONNX_MODEL_ID,
};
pub use settings::{GgufSettings, MiniLmRuntime, GGUF_DIR, MINILM_DIR, SMOLLM2_FILE};
