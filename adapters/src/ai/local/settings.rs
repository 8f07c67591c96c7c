//! Where the embedded models are and how they run: read with the settings in every build,
//! the models themselves only in one with the `local-models` feature.

use std::path::PathBuf;

/// The SmolLM2 stand-in's directory under the models directory.
pub const GGUF_DIR: &str = "smollm2-135m-instruct";
/// The SmolLM2 stand-in's file name.
pub const SMOLLM2_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Where the model is and how long it may talk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufSettings {
    /// The `.gguf` file.
    pub path: PathBuf,
    /// Generation stops after this many tokens ([`StopReason::MaxTokens`](casebook_domain::ports::StopReason::MaxTokens)).
    pub max_new_tokens: u32,
    /// Expand the quantized weights to F32 when loading (4 bytes per parameter in memory).
    /// candle has no SIMD kernel for some GGUF types (Q4_1 among them) unless built for a
    /// specific CPU, and F32 matrix products are several times faster than its portable
    /// ones; a large model may not fit, hence the choice.
    pub dequantize: bool,
}

/// The model directory's name under the models directory.
pub const MINILM_DIR: &str = "all-minilm-l6-v2";

/// Which runtime computes the embeddings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MiniLmRuntime {
    /// The int8 model in onnxruntime, from the shared library at `library`.
    Onnx {
        /// `libonnxruntime.so` (from the PyPI `onnxruntime` wheel).
        library: PathBuf,
    },
    /// The F32 model in candle.
    Candle,
}
