//! Where the embedded models are and how they run: read with the settings in every build,
//! the models themselves only in one with the `local-models` feature.

use std::path::PathBuf;

/// The SmolLM2 stand-in's directory under the models directory.
pub const GGUF_DIR: &str = "smollm2-135m-instruct";
/// The SmolLM2 stand-in's file name.
pub const SMOLLM2_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Where the model is, how long it may talk, and how it keeps from repeating itself.
///
/// Decoding stays greedy whatever these say (the most likely token, after the penalty), so
/// the same prompt gives the same answer.
#[derive(Debug, Clone, PartialEq)]
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
    /// How much less likely a token becomes once the answer used it within the last
    /// [`repeat_window`](Self::repeat_window) tokens (candle's `apply_repeat_penalty`: a
    /// positive logit is divided by it, a negative one multiplied); 1 turns it off. Only the
    /// answer's own tokens count, not the prompt's: quoting a precedent is wanted.
    pub repeat_penalty: f32,
    /// How many of the answer's latest tokens the penalty looks back on.
    pub repeat_window: usize,
    /// Stop once the answer's last `loop_ngram` tokens already occurred earlier in it: the
    /// model has begun a loop. The answer then ends at the last full sentence before the
    /// repeat. 0 turns it off.
    pub loop_ngram: usize,
}

impl GgufSettings {
    /// The default [`repeat_penalty`](Self::repeat_penalty). Measured with `cargo bench -p
    /// casebook-adapters --bench generation_quality` (BENCHMARKS.md, "Local answers"): over
    /// 128 tokens, 1.2 lets SmolLM2-135M end every one of the 20 questions on its own
    /// end-of-turn token, none repeating itself (distinct-4-gram ratio ≥ 0.978). Over 64
    /// tokens, 1.1 and 1.2 each let one answer run to the token limit; stronger penalties
    /// bend its wording (at 1.5: `down stairs`, `payed`, a precedent quoted with words
    /// missing) and need the loop stop more often.
    pub const REPEAT_PENALTY: f32 = 1.2;
    /// The default [`repeat_window`](Self::repeat_window): about two sentences back. With 64,
    /// the model came back to a sentence once the penalty had forgotten it and ran to the
    /// token limit.
    pub const REPEAT_WINDOW: usize = 128;
    /// The default [`loop_ngram`](Self::loop_ngram): a safety net behind the penalty. With
    /// the defaults above it never fired on the benchmark's 20 questions (8 and 16 gave the
    /// same answers). 12 tokens (8 to 10 words) is longer than the phrases a sound answer
    /// may repeat (a name, a clause quoted from a precedent); a looped sentence shorter than
    /// that is caught once it has come round twice.
    pub const LOOP_NGRAM: usize = 12;

    /// The model at `path` with the measured defaults for repetition.
    pub fn new(path: PathBuf, max_new_tokens: u32, dequantize: bool) -> Self {
        Self {
            path,
            max_new_tokens,
            dequantize,
            repeat_penalty: Self::REPEAT_PENALTY,
            repeat_window: Self::REPEAT_WINDOW,
            loop_ngram: Self::LOOP_NGRAM,
        }
    }

    /// The same model decoding as it did before any of this: no penalty, no loop stop, only
    /// the end of turn and the token limit (the benchmark's baseline).
    pub fn without_repetition_control(self) -> Self {
        Self {
            repeat_penalty: 1.0,
            repeat_window: 0,
            loop_ngram: 0,
            ..self
        }
    }
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
