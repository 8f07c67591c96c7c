//! Local AI providers: embedding throughput (texts/s) of both all-MiniLM-L6-v2 runtimes
//! (int8 in onnxruntime, F32 in candle) and GGUF generation speed (tokens/s).
//!
//! ```sh
//! infra/local/models.sh
//! cargo bench -p casebook-adapters --bench embeddings
//! ```
//!
//! The corpus is real text: lines of the plain-text files under `/usr/share/doc` (20–300
//! characters, deduplicated, chosen by hash so every package contributes). The whole
//! corpus (`BENCH_CORPUS_TEXTS`, default 101,000: 100,000 to index and 1,000 queries) is
//! embedded once and cached as
//! `${CASEBOOK_CACHE:-/var/cache/casebook}/bench/minilm-corpus.{txt,f32}`, which the
//! judgment-search benchmark of `casebook-projections` loads, with the configured runtime
//! (`CASEBOOK_LOCAL_EMBEDDINGS`, default onnx). Throughput (texts/s and tokens/s) is measured
//! for each runtime of `BENCH_RUNTIMES` (default `onnx,candle`) on the same
//! `BENCH_EMBED_SAMPLE` texts (default 5,000) of the corpus, one after the other, then on
//! as many short texts (at most 16 tokens with `[CLS]` and `[SEP]`, the length of the
//! reference figure). `BENCH_GGUF_TOKENS=0` skips the generation benchmark.

use std::collections::{hash_map::DefaultHasher, HashSet};
use std::hash::{Hash, Hasher};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use casebook_adapters::ai::local::{
    GgufLlm, GgufSettings, LocalEmbedder, MiniLmRuntime, MINILM_DIMENSION,
};
use casebook_adapters::ai::prompt::{user_message, DIAGNOSIS_V1};
use casebook_adapters::ai::AiConfig;
use casebook_domain::ids::JudgmentId;
use casebook_domain::policy::ModelTier;
use casebook_domain::ports::{DiagnosisPrompt, Precedent};
use casebook_domain::values::{JudgmentBody, JudgmentTitle, QueryText};

fn main() {
    let config = AiConfig::from_env().expect("AI configuration");
    let corpus_texts = env_usize("BENCH_CORPUS_TEXTS", 101_000);
    let sample = env_usize("BENCH_EMBED_SAMPLE", 5_000);
    let cache_dir = cache_dir().join("bench");
    std::fs::create_dir_all(&cache_dir).expect("create the bench cache dir");

    let texts_file = cache_dir.join("minilm-corpus.txt");
    let vectors_file = cache_dir.join("minilm-corpus.f32");
    let texts: Vec<String> = if texts_file.is_file() && vectors_file.is_file() {
        println!("corpus cached in {}", cache_dir.display());
        std::fs::read_to_string(&texts_file)
            .expect("read the cached corpus")
            .lines()
            .map(str::to_owned)
            .collect()
    } else {
        let texts = corpus(corpus_texts);
        println!("corpus: {} lines from /usr/share/doc", texts.len());
        let embedder = LocalEmbedder::new(config.minilm_dir(), config.local_embeddings.clone());
        let started = Instant::now();
        let vectors = embed_all(&embedder, &texts);
        println!(
            "embedded the corpus ({:?}) in {:.1?}",
            config.local_embeddings,
            started.elapsed()
        );
        write_corpus(&texts_file, &vectors_file, &texts, &vectors);
        println!("cached the embedded corpus in {}", cache_dir.display());
        texts
    };
    let sample = &texts[..sample.min(texts.len())];
    let onnx = match &config.local_embeddings {
        runtime @ MiniLmRuntime::Onnx { .. } => runtime.clone(),
        MiniLmRuntime::Candle => MiniLmRuntime::Onnx {
            library: config.models_dir.join("onnxruntime/libonnxruntime.so"),
        },
    };
    // Counted as the embedder sees them: the shipped tokenizer pads to 128, the embedder doesn't.
    let mut tokenizer =
        tokenizers::Tokenizer::from_file(config.minilm_dir().join("tokenizer.json"))
            .expect("read tokenizer.json");
    tokenizer.with_padding(None);
    let tokens = |text: &String| {
        tokenizer
            .encode(text.as_str(), true)
            .expect("tokenize")
            .get_ids()
            .len()
            .min(256)
    };
    let short: Vec<String> = texts
        .iter()
        .filter(|text| tokens(text) <= 16)
        .take(sample.len())
        .cloned()
        .collect();
    let runtimes = std::env::var("BENCH_RUNTIMES").unwrap_or_else(|_| "onnx,candle".into());
    for name in runtimes.split(',') {
        let runtime = match name.trim() {
            "onnx" => onnx.clone(),
            "candle" => MiniLmRuntime::Candle,
            other => panic!("unknown runtime {other:?} in BENCH_RUNTIMES"),
        };
        let embedder = LocalEmbedder::new(config.minilm_dir(), runtime);
        for (label, texts) in [("corpus sample", sample), ("short texts", &short[..])] {
            let token_count: usize = texts.iter().map(tokens).sum();
            throughput(&embedder, label, texts, token_count);
        }
    }
    if env_usize("BENCH_GGUF_TOKENS", 128) > 0 {
        generation(&config);
    }
}

/// Greedy generation speed of the GGUF model on a diagnosis prompt with three precedents.
fn generation(config: &AiConfig) {
    let max_new_tokens = u32::try_from(env_usize("BENCH_GGUF_TOKENS", 128)).unwrap();
    for dequantize in [true, false] {
        let llm = GgufLlm::new(GgufSettings {
            max_new_tokens,
            dequantize,
            ..config.gguf_settings()
        });
        let started = Instant::now();
        llm.preload().expect("load the GGUF model");
        println!(
            "\nGGUF model (dequantized to F32: {dequantize}) load: {:.2?}",
            started.elapsed()
        );
        generate(&llm);
    }
}

/// Three greedy generations of a diagnosis prompt with three precedents.
fn generate(llm: &GgufLlm) {
    let precedent = |title: &str, body: &str| Precedent {
        judgment_id: JudgmentId::new(),
        title: JudgmentTitle::parse(title).unwrap(),
        body: JudgmentBody::parse(body).unwrap(),
        score: 0.8,
    };
    let prompt = DiagnosisPrompt {
        system: DIAGNOSIS_V1.text().to_owned(),
        query: QueryText::parse(
            "Our boiler loses about one bar of pressure every night and the radiators \
             upstairs are cold in the morning. What is wrong and what should we do?",
        )
        .unwrap(),
        precedents: vec![
            precedent("Pressure loss overnight", "Usually a flat expansion vessel: recharge it to 1 bar and check the relief valve for drips."),
            precedent("Cold radiators upstairs", "Air in the system or a pump running too slowly: bleed the radiators, then check the pump speed."),
            precedent("Boiler lockout after refill", "Overfilling trips the pressure switch: drain to 1.5 bar and reset."),
        ],
        attachments: vec![],
        tier: ModelTier::OpenWeights,
    };
    let user = user_message(&prompt);
    for run in 1..=3 {
        let generation = llm
            .complete_blocking(&prompt.system, &user)
            .expect("generate");
        let decode = generation.elapsed - generation.prompt_time;
        println!(
            "run {run}: prompt {} tokens in {:.2?} ({:.0} tokens/s); generated {} tokens in {:.2?} ({:.1} tokens/s, {:?})",
            generation.input_tokens,
            generation.prompt_time,
            f64::from(generation.input_tokens) / generation.prompt_time.as_secs_f64(),
            generation.output_tokens,
            decode,
            f64::from(generation.output_tokens.saturating_sub(1)) / decode.as_secs_f64(),
            generation.stop_reason,
        );
        if run == 1 {
            println!("output: {:?}", generation.text);
        }
    }
}

/// Embeds `texts` in chunks of 1,024 as a batch job would.
fn embed_all(embedder: &LocalEmbedder, texts: &[String]) -> Vec<Vec<f32>> {
    texts
        .chunks(1_024)
        .flat_map(|chunk| embedder.embed_blocking(chunk).expect("embed"))
        .collect()
}

/// Prints the texts/s and tokens/s of embedding `texts` (`tokens` tokens in all, after
/// truncation) after loading the model, with the load average.
fn throughput(embedder: &LocalEmbedder, label: &str, texts: &[String], tokens: usize) {
    let started = Instant::now();
    embedder.preload().expect("load all-MiniLM-L6-v2");
    let load = started.elapsed();
    embed_all(embedder, &texts[..texts.len().min(200)]); // warm-up
    let started = Instant::now();
    embed_all(embedder, texts);
    let elapsed = started.elapsed();
    println!(
        "{} ({label}): load {load:.2?}; {} texts ({:.1} tokens each) in {elapsed:.2?} = {:.0} texts/s, {:.0} tokens/s; load average {}",
        casebook_domain::ports::Embedder::model_id(embedder),
        texts.len(),
        tokens as f64 / texts.len() as f64,
        texts.len() as f64 / elapsed.as_secs_f64(),
        tokens as f64 / elapsed.as_secs_f64(),
        load_average(),
    );
}

/// The 1-minute load average, as `/proc/loadavg` has it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// Up to `limit` distinct lines of plain text from `/usr/share/doc`.
fn corpus(limit: usize) -> Vec<String> {
    let mut files = Vec::new();
    collect_files(Path::new("/usr/share/doc"), &mut files);
    files.sort();
    let mut seen = HashSet::new();
    let mut lines = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue; // binary or not UTF-8
        };
        for line in text.lines() {
            let line = line.trim();
            let chars = line.chars().count();
            let letters = line.chars().filter(|c| c.is_alphabetic()).count();
            if (20..=300).contains(&chars) && letters * 2 >= chars && seen.insert(line.to_owned()) {
                lines.push(line.to_owned());
            }
        }
    }
    // Spread the choice over every file rather than taking the alphabetically first packages.
    lines.sort_by_cached_key(|line| {
        let mut hasher = DefaultHasher::new();
        line.hash(&mut hasher);
        hasher.finish()
    });
    lines.truncate(limit);
    lines
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            collect_files(&path, files);
        } else if meta.is_file()
            && meta.len() < 2 << 20
            && path.extension().is_none_or(|ext| ext != "gz")
        {
            files.push(path);
        }
    }
}

/// Texts one per line; vectors as little-endian f32, [`MINILM_DIMENSION`] per text.
fn write_corpus(texts_file: &Path, vectors_file: &Path, texts: &[String], vectors: &[Vec<f32>]) {
    let mut out = BufWriter::new(std::fs::File::create(texts_file).expect("create corpus"));
    for text in texts {
        writeln!(out, "{text}").expect("write corpus");
    }
    out.flush().expect("write corpus");
    let mut out = BufWriter::new(std::fs::File::create(vectors_file).expect("create vectors"));
    for vector in vectors {
        assert_eq!(vector.len(), MINILM_DIMENSION);
        for value in vector {
            out.write_all(&value.to_le_bytes()).expect("write vectors");
        }
    }
    out.flush().expect("write vectors");
}

fn cache_dir() -> PathBuf {
    PathBuf::from(std::env::var("CASEBOOK_CACHE").unwrap_or_else(|_| "/var/cache/casebook".into()))
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|raw| {
            raw.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
        .unwrap_or(default)
}
