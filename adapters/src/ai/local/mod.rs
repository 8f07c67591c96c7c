//! Embedded local providers: the default when no AWS is configured, so the product runs
//! fully offline.
//!
//! - [`LocalEmbedder`]: all-MiniLM-L6-v2 sentence embeddings (384 dimensions, normalized),
//!   int8 in onnxruntime by default, F32 in candle as the alternative.
//! - [`GgufLlm`]: the custom-model provider, a GGUF model run with candle's quantized llama.

mod gguf;
mod gguf_tokenizer;
mod minilm;

pub use gguf::{
    Generation, GgufLlm, GgufSettings, GGUF_DIR, SMOLLM2_FILE, UNSTRUCTURED_CONFIDENCE,
};
pub use minilm::{
    LocalEmbedder, MiniLmRuntime, MINILM_CANDLE_MODEL_ID, MINILM_DIMENSION, MINILM_DIR,
    MINILM_ONNX_FILE, MINILM_ONNX_MODEL_ID,
};
