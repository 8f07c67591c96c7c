//! The embedded local providers on the real models, found through the product's own
//! configuration (`CASEBOOK_MODELS_DIR`, else `${CASEBOOK_CACHE:-/var/cache/casebook}/models`;
//! `infra/local/models.sh` puts them there).

use std::path::PathBuf;

use casebook_adapters::ai::config::AiConfig;
use casebook_adapters::ai::local::{
    GgufLlm, GgufSettings, LocalEmbedder, MiniLmRuntime, MINILM_CANDLE_MODEL_ID, MINILM_DIMENSION,
    MINILM_ONNX_MODEL_ID, UNSTRUCTURED_CONFIDENCE,
};
use casebook_adapters::ai::prompt::DIAGNOSIS_V1;
use casebook_adapters::ai::AiProviders;
use casebook_domain::ids::JudgmentId;
use casebook_domain::policy::ModelTier;
use casebook_domain::ports::{
    DiagnosisPrompt, EmbedError, Embedder, LlmError, Precedent, StopReason,
};
use casebook_domain::values::{JudgmentBody, JudgmentTitle, QueryText};

/// The generation benchmark's questions, shared with it.
#[path = "../benches/data/generation_queries.rs"]
mod generation_queries;

fn config() -> AiConfig {
    AiConfig::from_env().expect("AI configuration")
}

/// The embedder the product builds from its configuration (onnxruntime, int8, by default).
fn embedder() -> LocalEmbedder {
    let config = config();
    LocalEmbedder::new(config.minilm_dir(), config.local_embeddings)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn vectors_are_384_dimensional_and_normalized() {
    let embedder = embedder();
    assert!([MINILM_ONNX_MODEL_ID, MINILM_CANDLE_MODEL_ID].contains(&embedder.model_id()));
    assert_eq!(embedder.dimension(), 384);
    let texts = vec![
        "Short.".to_owned(),
        "The quarterly VAT return was filed late and a penalty notice arrived this morning."
            .to_owned(),
        String::new(),
    ];
    let vectors = embedder.embed(&texts).await.expect("embeddings");
    assert_eq!(vectors.len(), 3);
    for vector in &vectors {
        assert_eq!(vector.len(), MINILM_DIMENSION);
        let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
}

#[tokio::test]
async fn semantically_close_sentences_score_higher_than_unrelated_ones() {
    // Each anchor, then a paraphrase, then texts ever further from it.
    let cases: [[&str; 4]; 3] = [
        [
            "The boiler loses pressure every night.",
            "Our heating system's pressure drops overnight.",
            "The radiators upstairs stay cold.",
            "The invoice for March has not been paid.",
        ],
        [
            "The customer was charged twice for the same order.",
            "A client got billed two times for one purchase.",
            "The delivery of the order arrived late.",
            "Water is leaking through the bathroom ceiling.",
        ],
        [
            "The employee contract does not mention overtime pay.",
            "Extra hours are not covered by the worker's employment agreement.",
            "The office lease ends next spring.",
            "A recipe for chocolate cake with raspberries.",
        ],
    ];
    let embedder = embedder();
    for case in cases {
        let texts: Vec<String> = case.iter().map(|s| (*s).to_owned()).collect();
        let vectors = embedder.embed(&texts).await.expect("embeddings");
        let scores: Vec<f32> = vectors[1..]
            .iter()
            .map(|v| cosine(&vectors[0], v))
            .collect();
        assert!(
            scores.windows(2).all(|pair| pair[0] > pair[1]),
            "expected falling similarity to {:?}: {scores:?}",
            case[0]
        );
        assert!(scores[0] > 0.5, "paraphrase scores high: {scores:?}");
    }
}

#[tokio::test]
async fn a_texts_vector_does_not_depend_on_the_batch_it_is_embedded_with() {
    // Batches pad to their longest text; the mask must keep padding out of the mean.
    let embedder = embedder();
    let text = "Pressure drops overnight.".to_owned();
    let alone = embedder.embed(std::slice::from_ref(&text)).await.unwrap();
    let batch = vec![
        "A much longer sentence about tax returns, payroll, pensions and the annual accounts of a small firm.".to_owned(),
        text,
        "Hi".to_owned(),
    ];
    let together = embedder.embed(&batch).await.unwrap();
    assert!(cosine(&alone[0], &together[1]) > 0.9999);
}

#[tokio::test]
async fn the_int8_onnx_and_f32_candle_runtimes_agree() {
    let config = config();
    let library = config.models_dir.join("onnxruntime/libonnxruntime.so");
    let onnx = LocalEmbedder::new(config.minilm_dir(), MiniLmRuntime::Onnx { library });
    let candle = LocalEmbedder::new(config.minilm_dir(), MiniLmRuntime::Candle);
    assert_ne!(
        onnx.model_id(),
        candle.model_id(),
        "a runtime switch is a model change"
    );
    let texts = vec![
        "The boiler loses pressure every night.".to_owned(),
        "Copyright (C) 2009 Free Software Foundation, Inc.".to_owned(),
    ];
    let (a, b) = (
        onnx.embed(&texts).await.unwrap(),
        candle.embed(&texts).await.unwrap(),
    );
    for (x, y) in a.iter().zip(&b) {
        assert!(
            cosine(x, y) > 0.97,
            "int8 stays close to F32: {}",
            cosine(x, y)
        );
    }
}

#[tokio::test]
async fn a_missing_model_names_the_command_that_fetches_it() {
    let embedder = LocalEmbedder::new(
        "/nonexistent/models/all-minilm-l6-v2",
        MiniLmRuntime::Candle,
    );
    let err = embedder.embed(&["x".to_owned()]).await.unwrap_err();
    assert!(matches!(err, EmbedError::Permanent(_)));
    let message = std::error::Error::source(&err).unwrap().to_string();
    assert!(message.contains("infra/local/models.sh"), "{message}");

    let llm = GgufLlm::new(GgufSettings::new(
        PathBuf::from("/nonexistent/model.gguf"),
        8,
        false,
    ));
    let err = llm.preload().unwrap_err();
    assert!(err.to_string().contains("infra/local/models.sh"), "{err}");
}

fn diagnosis_prompt() -> DiagnosisPrompt {
    DiagnosisPrompt {
        system: DIAGNOSIS_V1.text().to_owned(),
        query: QueryText::parse("Our boiler loses pressure every night. What is wrong?").unwrap(),
        precedents: vec![Precedent {
            judgment_id: JudgmentId::new(),
            title: JudgmentTitle::parse("Pressure loss overnight").unwrap(),
            body: JudgmentBody::parse("Usually a flat expansion vessel: recharge it to 1 bar.")
                .unwrap(),
            score: 0.83,
        }],
        attachments: vec![],
        tier: ModelTier::OpenWeights,
    }
}

#[tokio::test]
async fn the_gguf_model_answers_deterministically() {
    let llm = GgufLlm::new(GgufSettings {
        max_new_tokens: 12,
        ..config().gguf_settings()
    });
    assert_eq!(llm.model_id(), "gguf:SmolLM2-135M-Instruct.Q4_1");
    // A short system prompt keeps the test quick in unoptimized builds.
    let prompt = DiagnosisPrompt {
        system: "You diagnose heating problems. Answer in one sentence.".to_owned(),
        ..diagnosis_prompt()
    };
    let first = casebook_domain::ports::Llm::diagnose(&llm, &prompt)
        .await
        .expect("an answer");
    let second = casebook_domain::ports::Llm::diagnose(&llm, &prompt)
        .await
        .expect("an answer");
    assert_eq!(first, second, "greedy decoding repeats itself");
    assert!(!first.text.as_str().is_empty());
    assert!(
        first.input_tokens > 40,
        "the whole prompt was read: {first:?}"
    );
    assert!((1..=12).contains(&first.output_tokens));
    assert_eq!(first.model_id, "gguf:SmolLM2-135M-Instruct.Q4_1");
    if first.findings.is_empty() {
        assert!((first.confidence.value() - UNSTRUCTURED_CONFIDENCE).abs() < 1e-9);
    }
}

/// Two of the generation benchmark's questions on which the raw greedy decoding loops until
/// the token limit (BENCHMARKS.md, "Local answers"): the two shortest answers, since each
/// takes seconds in a debug build; the benchmark asks all 20.
const LOOPING_QUESTIONS: [usize; 2] = [3, 9];

#[test]
fn short_questions_get_answers_that_end_their_turn_without_repeating_themselves() {
    let llm = GgufLlm::new(config().gguf_settings());
    let queries = generation_queries::queries();
    for question in LOOPING_QUESTIONS {
        let query = &queries[question];
        let (system, user) = query.chat();
        let answer = llm.complete_blocking(&system, &user).expect("an answer");
        assert_eq!(
            answer.stop_reason,
            StopReason::EndTurn,
            "{:?} ran to the token limit: {answer:?}",
            query.query
        );
        assert!(!answer.text.is_empty(), "{:?}: {answer:?}", query.query);
        let ratio = answer.distinct_ngram_ratio(4);
        assert!(
            ratio >= generation_queries::DISTINCT_4_FLOOR,
            "{:?} repeats itself (distinct-4-gram ratio {ratio:.3}): {answer:?}",
            query.query
        );
    }
}

#[tokio::test]
async fn a_prompt_longer_than_the_context_is_refused() {
    let llm = GgufLlm::new(config().gguf_settings());
    let err = llm
        .complete_blocking("system", &"word ".repeat(9_000))
        .unwrap_err();
    assert!(matches!(err, LlmError::Permanent(_)), "{err:?}");
}

#[tokio::test]
async fn without_aws_the_providers_are_the_local_models() {
    let providers = AiProviders::local(&config());
    assert_eq!(providers.embedder.model_id(), MINILM_ONNX_MODEL_ID);
    let vectors = providers
        .embedder
        .embed(&["hello".to_owned()])
        .await
        .expect("the local embedder serves");
    assert_eq!(vectors[0].len(), 384);
}
