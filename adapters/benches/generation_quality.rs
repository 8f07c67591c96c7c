//! Whether the embedded GGUF model's answers read well: 20 fixed short questions
//! (`data/generation_queries.json`, most with one precedent as the judgment index would give
//! it) through the product's diagnosis prompt, decoded raw (greedy, stopping only at the end
//! of turn or the token limit: the baseline) and with the configured repetition control, in
//! the same run.
//!
//! ```sh
//! infra/local/models.sh
//! cargo bench -p casebook-adapters --bench generation_quality
//! ```
//!
//! Per answer: its tokens, why it stopped (`end`: end-of-turn token; `loop`: the loop stop
//! cut it at its last full sentence; `max`: the token limit), and its distinct-4-gram ratio
//! (distinct word 4-grams over all of them, [`Generation::distinct_ngram_ratio`]). The
//! targets: every answer's ratio ≥ 0.8, none ending on the token limit.
//!
//! `BENCH_DECODINGS="1.2:64:12 1.3:32:0"` adds decodings to compare (`penalty:window:loop
//! n-gram` each, [`GgufSettings`]); `BENCH_QUERIES=5` runs the first five questions only;
//! `BENCH_PRINT_ANSWERS=1` prints every answer.

use std::time::{Duration, Instant};

use casebook_adapters::ai::local::{Generation, GgufLlm, GgufSettings};
use casebook_adapters::ai::AiConfig;
use casebook_domain::ports::StopReason;

#[path = "data/generation_queries.rs"]
mod generation_queries;

use generation_queries::DISTINCT_4_FLOOR;

fn main() {
    let config = AiConfig::from_env().expect("AI configuration");
    let mut queries = generation_queries::queries();
    if let Ok(limit) = std::env::var("BENCH_QUERIES") {
        queries.truncate(limit.parse().expect("BENCH_QUERIES: a number"));
    }
    let print_answers = std::env::var("BENCH_PRINT_ANSWERS").is_ok_and(|v| v == "1");
    let configured = config.gguf_settings();
    let mut decodings = vec![
        (
            "raw".to_owned(),
            configured.clone().without_repetition_control(),
        ),
        ("configured".to_owned(), configured.clone()),
    ];
    for spec in std::env::var("BENCH_DECODINGS")
        .unwrap_or_default()
        .split_whitespace()
    {
        decodings.push((spec.to_owned(), decoding(spec, &configured)));
    }
    let started = Instant::now();
    GgufLlm::new(configured.clone())
        .preload()
        .expect("load the GGUF model");
    println!(
        "{} loaded in {:.2?}; {} questions, at most {} tokens each",
        configured.path.display(),
        started.elapsed(),
        queries.len(),
        configured.max_new_tokens,
    );
    let mut summaries = Vec::new();
    for (label, settings) in &decodings {
        println!(
            "\n{label}: penalty {} over {} tokens, loop stop at {} tokens",
            settings.repeat_penalty, settings.repeat_window, settings.loop_ngram
        );
        let llm = GgufLlm::new(settings.clone());
        let mut answers = Vec::with_capacity(queries.len());
        for (number, query) in queries.iter().enumerate() {
            let (system, user) = query.chat();
            let generation = llm.complete_blocking(&system, &user).expect("generate");
            println!(
                "  {:>2}. {:>3} tokens in {:>6.2?}, {:<4} distinct-4 {:.3}  {}",
                number + 1,
                generation.output_tokens,
                generation.elapsed,
                stop(&generation),
                generation.distinct_ngram_ratio(4),
                query.query,
            );
            if print_answers {
                println!("      {:?}", generation.text);
            }
            answers.push(generation);
        }
        summaries.push((label.as_str(), Summary::of(&answers)));
    }
    println!("\nsummary ({} questions)", queries.len());
    for (label, summary) in &summaries {
        println!("  {label:<12} {summary}");
    }
}

/// `end`, `loop` or `max`.
fn stop(generation: &Generation) -> &'static str {
    match generation.stop_reason {
        _ if generation.looped => "loop",
        StopReason::EndTurn => "end",
        StopReason::MaxTokens => "max",
        StopReason::ContentFiltered => "filtered",
    }
}

/// The figures of one decoding over all the questions.
struct Summary {
    ratios: Vec<f64>,
    at_floor: usize,
    max_tokens: usize,
    looped: usize,
    output_tokens: u32,
    generation_time: Duration,
}

impl Summary {
    fn of(answers: &[Generation]) -> Self {
        let mut ratios: Vec<f64> = answers
            .iter()
            .map(|answer| answer.distinct_ngram_ratio(4))
            .collect();
        ratios.sort_by(f64::total_cmp);
        Self {
            at_floor: ratios.iter().filter(|r| **r >= DISTINCT_4_FLOOR).count(),
            ratios,
            max_tokens: answers
                .iter()
                .filter(|a| a.stop_reason == StopReason::MaxTokens)
                .count(),
            looped: answers.iter().filter(|a| a.looped).count(),
            output_tokens: answers.iter().map(|a| a.output_tokens).sum(),
            generation_time: answers.iter().map(|a| a.elapsed).sum(),
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.ratios.len();
        let mean = self.ratios.iter().sum::<f64>() / n as f64;
        write!(
            f,
            "distinct-4 min {:.3}, median {:.3}, mean {:.3}; {}/{n} at ≥ {DISTINCT_4_FLOOR}; \
             {}/{n} on the token limit, {}/{n} loop-stopped; {:.1} tokens an answer, {:.1?} in all",
            self.ratios[0],
            self.ratios[n / 2],
            mean,
            self.at_floor,
            self.max_tokens,
            self.looped,
            f64::from(self.output_tokens) / n as f64,
            self.generation_time,
        )
    }
}

/// `configured` with the `penalty:window:loop n-gram` of `spec`.
fn decoding(spec: &str, configured: &GgufSettings) -> GgufSettings {
    let parts: Vec<&str> = spec.split(':').collect();
    let [penalty, window, ngram] = parts[..] else {
        panic!("BENCH_DECODINGS: {spec:?} is not penalty:window:ngram");
    };
    GgufSettings {
        repeat_penalty: penalty.parse().expect("a penalty"),
        repeat_window: window.parse().expect("a window"),
        loop_ngram: ngram.parse().expect("an n-gram length"),
        ..configured.clone()
    }
}
