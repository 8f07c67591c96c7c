//! A tokenizer rebuilt from a GGUF file's own vocabulary and merges, so a model file is
//! self-contained: no `tokenizer.json` has to travel with a fine-tuned model.
//!
//! Supports the GPT-2 style byte-level BPE (`tokenizer.ggml.model = "gpt2"`) that SmolLM2
//! and the llama-3 family use; control tokens (`token_type` 3) become special tokens, so
//! chat markers such as `<|im_start|>` stay single tokens.

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

/// GGUF's token type of control tokens.
const CONTROL: i32 = 3;

/// Why the GGUF metadata doesn't make a tokenizer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GgufTokenizerError {
    /// A required key is absent or of another type.
    #[error("GGUF metadata {0} is missing or malformed")]
    Metadata(&'static str),
    /// Only byte-level BPE is supported.
    #[error("GGUF tokenizer model {0:?} is not supported (only \"gpt2\")")]
    Unsupported(String),
    /// The tokenizers crate refused the vocabulary.
    #[error("building the tokenizer failed: {0}")]
    Build(String),
}

/// The tokenizer and the ids generation needs.
pub(crate) struct GgufTokenizer {
    pub(crate) tokenizer: Tokenizer,
    /// Ends the assistant's turn (`tokenizer.ggml.eos_token_id`).
    pub(crate) eos: u32,
}

pub(crate) fn from_gguf(content: &Content) -> Result<GgufTokenizer, GgufTokenizerError> {
    let get = |key: &'static str| {
        content
            .metadata
            .get(key)
            .ok_or(GgufTokenizerError::Metadata(key))
    };
    let model = get("tokenizer.ggml.model")?
        .to_string()
        .map_err(|_| GgufTokenizerError::Metadata("tokenizer.ggml.model"))?;
    if model != "gpt2" {
        return Err(GgufTokenizerError::Unsupported(model.clone()));
    }
    let tokens = strings(get("tokenizer.ggml.tokens")?, "tokenizer.ggml.tokens")?;
    let merges = strings(get("tokenizer.ggml.merges")?, "tokenizer.ggml.merges")?;
    let types: Vec<i32> = match content.metadata.get("tokenizer.ggml.token_type") {
        Some(value) => value
            .to_vec()
            .map_err(|_| GgufTokenizerError::Metadata("tokenizer.ggml.token_type"))?
            .iter()
            .map(|v| v.to_i32().unwrap_or(1))
            .collect(),
        None => Vec::new(),
    };
    let eos = get("tokenizer.ggml.eos_token_id")?
        .to_u32()
        .map_err(|_| GgufTokenizerError::Metadata("tokenizer.ggml.eos_token_id"))?;

    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(id, token)| (token.to_string(), u32::try_from(id).unwrap_or(u32::MAX)))
        .collect();
    let merges = merges
        .iter()
        .map(|merge| {
            merge
                .split_once(' ')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or(GgufTokenizerError::Metadata("tokenizer.ggml.merges"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|err| GgufTokenizerError::Build(err.to_string()))?;
    let mut tokenizer = Tokenizer::new(bpe);
    // llama.cpp's "smollm"/"gpt2" pre-tokenization: digits one by one, then GPT-2's regex
    // split on byte-level text.
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
        Digits::new(true).into(),
        ByteLevel::new(false, true, true).into(),
    ])));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    let special: Vec<AddedToken> = tokens
        .iter()
        .zip(types.iter().copied().chain(std::iter::repeat(1)))
        .filter(|(_, kind)| *kind == CONTROL)
        .map(|(token, _)| AddedToken::from(token.to_string(), true))
        .collect();
    tokenizer
        .add_special_tokens(special)
        .map_err(|err| GgufTokenizerError::Build(err.to_string()))?;
    Ok(GgufTokenizer { tokenizer, eos })
}

fn strings<'a>(value: &'a Value, key: &'static str) -> Result<Vec<&'a str>, GgufTokenizerError> {
    value
        .to_vec()
        .map_err(|_| GgufTokenizerError::Metadata(key))?
        .iter()
        .map(|v| {
            v.to_string()
                .map(String::as_str)
                .map_err(|_| GgufTokenizerError::Metadata(key))
        })
        .collect()
}
