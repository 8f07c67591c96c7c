//! A small bag-of-words embedder for the judgment index's tests and benchmarks: each word
//! hashed into one of `dimension` buckets, the counts normalized, so texts sharing more words
//! are closer and the order of results is known exactly. Deterministic and fast; the real
//! models are tested in `casebook-adapters`.

use async_trait::async_trait;
use casebook_domain::ports::{EmbedError, Embedder};

/// The tests' dimension.
pub const DIMENSION: usize = 64;

/// Words hashed into buckets, normalized: texts sharing more words are closer.
#[derive(Debug, Clone, Copy)]
pub struct WordsEmbedder {
    pub model_id: &'static str,
    pub dimension: usize,
}

#[async_trait]
impl Embedder for WordsEmbedder {
    fn model_id(&self) -> &str {
        self.model_id
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts
            .iter()
            .map(|text| words_vector_of(text, self.dimension))
            .collect())
    }
}

/// The tests' embedder.
pub const WORDS: WordsEmbedder = WordsEmbedder {
    model_id: "test/words-v1",
    dimension: DIMENSION,
};

/// `text` as [`WORDS`] embeds it.
pub fn words_vector(text: &str) -> Vec<f32> {
    words_vector_of(text, DIMENSION)
}

/// `text` embedded into `dimension` buckets.
pub fn words_vector_of(text: &str, dimension: usize) -> Vec<f32> {
    let mut vector = vec![0.0_f32; dimension];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let hash = word
            .to_lowercase()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        vector[(hash % dimension as u64) as usize] += 1.0;
    }
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-6);
    vector.iter().map(|v| v / norm).collect()
}
