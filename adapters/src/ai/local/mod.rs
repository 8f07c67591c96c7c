//! Embedded local providers: the default when no AWS is configured, so the product runs
//! fully offline.
//!
//! - [`LocalEmbedder`]: all-MiniLM-L6-v2 sentence embeddings (384 dimensions, normalized).
//! - [`GgufLlm`]: the custom-model provider, a GGUF model run with candle's quantized llama.

mod gguf;
mod gguf_tokenizer;
mod minilm;

pub use gguf::{Generation, GgufLlm, GgufSettings, GGUF_DIR, SMOLLM2_FILE, UNSTRUCTURED_CONFIDENCE};
pub use minilm::{LocalEmbedder, MINILM_DIMENSION, MINILM_DIR, MINILM_MODEL_ID};
