//! Every branch of the diagnosis use case, in memory: given a question, when its request is
//! diagnosed, then the diagnosis' events, the calls made and the answer to the queue.

#[allow(dead_code)]
mod support;

use std::collections::HashMap;

use std::sync::Arc;

use casebook_application::diagnosis::{DiagnosisError, PRECEDENTS};
use casebook_application::in_memory::{Failure, FixedPrecedents, FlatPrices};
use casebook_domain::diagnosis::{AttachmentOutcome, SkipReason};
use casebook_domain::ids::TenantId;
use casebook_domain::policy::{ModelTier, PlanTier, MAX_DIAGNOSIS_ATTEMPTS};
use casebook_domain::ports::{EmbedError, LlmError};
use support::{RacingIndex, RacingLlm, Rival, Scenario, ScriptedLlm};

const QUESTION: &str = "Is the indemnity cap enforceable?";

/// An ordinary query a confident triage model answers: proposed at once.
fn confident_triage() -> Vec<support::Answer> {
    vec![(ModelTier::Triage, 0.9, None, "haiku")]
}

/// A hard query (long, or with many attachments) goes to the strongest tier at once.
fn confident_strongest() -> Vec<support::Answer> {
    vec![(ModelTier::Strongest, 0.9, None, "opus")]
}

#[tokio::test]
async fn a_requested_diagnosis_gets_its_context_and_a_proposal_with_full_provenance() {
    let scenario = Scenario::given(confident_triage()).await;
    let diagnosis = scenario.asked(QUESTION, vec![]).await;

    scenario.diagnose(diagnosis).await.expect("handled");

    assert_eq!(
        scenario.event_types(diagnosis),
        [
            "DiagnosisRequested",
            "ContextRetrieved",
            "DiagnosisProposed"
        ]
    );
    let provenance = scenario.provenance(diagnosis).unwrap();
    let found = scenario.found.clone();
    assert_eq!(provenance.model_id, "haiku");
    assert_eq!(provenance.model_tier, ModelTier::Triage);
    assert_eq!(provenance.prompt_template_id, "diagnosis-test");
    assert_eq!(provenance.prompt_template_hash, "abc123");
    assert_eq!(
        provenance.retrieved_judgment_ids,
        [found.precedent.judgment_id]
    );
    let precedents = provenance.precedents.unwrap();
    assert_eq!(precedents[0].source_position, found.source_position);
    assert_eq!(provenance.embedding.unwrap().model_id, "test-embedder");
    assert_eq!(provenance.attachments, Some(vec![]));
    assert_eq!(
        (provenance.input_tokens, provenance.output_tokens),
        (1_000, 100)
    );
    // The model saw the system prompt, the question and the precedent.
    let prompts = scenario.llm.prompts.lock().unwrap();
    assert_eq!(prompts[0].system, "You review contracts.");
    assert_eq!(prompts[0].query.as_str(), QUESTION);
    assert_eq!(prompts[0].precedents, [found.precedent]);
}

#[tokio::test]
async fn every_command_names_the_request_as_its_cause_and_carries_the_customers_correlation() {
    let scenario = Scenario::given(confident_triage()).await;
    let diagnosis = scenario.asked(QUESTION, vec![]).await;

    scenario.diagnose(diagnosis).await.unwrap();

    let metadata = scenario.stores.diagnoses.metadata(&diagnosis.to_string());
    for later in &metadata[1..] {
        assert_eq!(later["causation_id"], format!("Diagnosis/{diagnosis}/1"));
        assert_eq!(later["correlation_id"], "req-customer");
        assert_eq!(later["source"], "worker");
        assert_eq!(later["actor_role"], "system");
    }
}

#[tokio::test]
async fn a_redelivered_request_for_a_proposed_diagnosis_asks_nothing_again() {
    let scenario = Scenario::given(confident_triage()).await;
    let diagnosis = scenario.asked(QUESTION, vec![]).await;
    scenario.diagnose(diagnosis).await.unwrap();

    scenario.diagnose(diagnosis).await.expect("already done");

    assert_eq!(scenario.llm.asked().len(), 1);
    assert_eq!(scenario.event_types(diagnosis).len(), 3);
}

#[tokio::test]
async fn a_request_for_an_unknown_diagnosis_is_malformed() {
    let scenario = Scenario::given(vec![]).await;
    let never_asked =
        casebook_domain::ids::DiagnosisId::for_query(casebook_domain::ids::QueryId::new());

    let err = scenario.diagnose(never_asked).await.unwrap_err();

    assert!(matches!(err, DiagnosisError::Malformed(_)), "{err:?}");
}

#[tokio::test]
async fn a_request_naming_another_tenant_finds_nothing_and_changes_nothing() {
    let scenario = Scenario::given(vec![]).await;
    let diagnosis = scenario.asked(QUESTION, vec![]).await;
    let mut request = scenario.request(diagnosis);
    request.tenant_id = TenantId::new();

    let err = scenario
        .diagnoser(FlatPrices::default())
        .diagnose(&request)
        .await
        .unwrap_err();

    assert!(matches!(err, DiagnosisError::Malformed(_)), "{err:?}");
    assert_eq!(scenario.event_types(diagnosis), ["DiagnosisRequested"]);
    assert!(scenario.llm.asked().is_empty());
}

#[tokio::test]
async fn an_embedder_outage_records_a_retryable_failure_and_fails_the_message() {
    let scenario = Scenario::given(confident_triage()).await;
    let diagnosis = scenario.asked(QUESTION, vec![]).await;
    scenario
        .embedder
        .fail_next(EmbedError::Transient("throttled".into()));

    let err = scenario.diagnose(diagnosis).await.unwrap_err();

    assert!(matches!(err, DiagnosisError::Failed(..)), "{err:?}");
    let failures = scenario.failures(diagnosis);
    assert_eq!(failures.len(), 1);
    assert!(failures[0].0, "retryable");
    assert!(failures[0].1.starts_with("embedding the query failed"));
    // The redelivery succeeds.
    scenario.diagnose(diagnosis).await.expect("retried");
    assert!(scenario.provenance(diagnosis).is_some());
}

#[tokio::test]
async fn an_embedder_refusal_is_a_final_failure_and_the_message_is_done() {
    let scenario = Scenario::given(vec![]).await;
    let diagnosis = scenario.asked(QUESTION, vec![]).await;
    scenario
        .embedder
        .fail_next(EmbedError::Permanent("input too long".into()));

    scenario
        .diagnose(diagnosis)
        .await
        .expect("nothing to retry");

    assert!(!scenario.failures(diagnosis)[0].0, "final");
    // Redelivered, a final failure is left alone.
    scenario.diagnose(diagnosis).await.unwrap();
    assert_eq!(scenario.failures(diagnosis).len(), 1);
    assert!(scenario.llm.asked().is_empty());
}

#[tokio::test]
async fn an_embedder_returning_the_wrong_number_of_vectors_fails_the_message_unrecorded() {
    let scenario = Scenario::given(vec![]).await;
    let diagnosis = scenario.asked(QUESTION, vec![]).await;
    scenario.embedder.answer_next_with_vectors(2);

    let err = scenario.diagnose(diagnosis).await.unwrap_err();

    assert!(matches!(err, DiagnosisError::Malformed(_)), "{err:?}");
    assert_eq!(scenario.event_types(diagnosis), ["DiagnosisRequested"]);
}

#[tokio::test]
async fn an_index_outage_fails_the_message_for_a_retry_without_recording_a_failure() {
    let scenario = Scenario::given(confident_triage()).await;
    let diagnosis = scenario.asked(QUESTION, vec![]).await;
    scenario.index.fail_next(Failure::Unavailable);

    let err = scenario.diagnose(diagnosis).await.unwrap_err();

    assert!(matches!(err, DiagnosisError::Failed(..)), "{err:?}");
    assert_eq!(scenario.event_types(diagnosis), ["DiagnosisRequested"]);
    scenario.diagnose(diagnosis).await.expect("retried");
    assert!(scenario.provenance(diagnosis).is_some());
}

#[tokio::test]
async fn a_model_outage_fails_the_attempt_and_the_retry_is_a_new_attempt_with_its_own_context() {
    let scenario = Scenario::given(vec![]).await;
    let diagnosis = scenario.asked(QUESTION, vec![]).await;
    scenario
        .llm
        .then_fail(LlmError::Transient("throttled".into()));

    let err = scenario.diagnose(diagnosis).await.unwrap_err();
    assert!(matches!(err, DiagnosisError::Failed(..)), "{err:?}");
    assert_eq!(
        scenario.event_types(diagnosis),
        ["DiagnosisRequested", "ContextRetrieved", "DiagnosisFailed"]
    );

    scenario
        .llm
        .then_answer((ModelTier::Triage, 0.9, None, "haiku"));
    scenario.diagnose(diagnosis).await.expect("retried");
    assert_eq!(
        scenario.event_types(diagnosis),
        [
            "DiagnosisRequested",
            "ContextRetrieved",
            "DiagnosisFailed",
            "ContextRetrieved",
            "DiagnosisProposed"
        ]
    );
}

#[tokio::test]
async fn a_malformed_answer_is_retryable_a_refused_prompt_is_final() {
    let scenario = Scenario::given(vec![]).await;
    let malformed = scenario.asked(QUESTION, vec![]).await;
    let refused = scenario.asked(QUESTION, vec![]).await;
    scenario
        .llm
        .then_fail(LlmError::MalformedAnswer("no tool call".into()));
    scenario
        .llm
        .then_fail(LlmError::Permanent("prompt too long".into()));

    assert!(scenario.diagnose(malformed).await.is_err());
    scenario.diagnose(refused).await.expect("final: done");

    assert!(scenario.failures(malformed)[0].0);
    assert!(!scenario.failures(refused)[0].0);
    assert!(scenario.failures(refused)[0]
        .1
        .starts_with("model call failed"));
}

#[tokio::test]
async fn once_the_attempts_are_spent_a_retryable_failure_becomes_final() {
    let scenario = Scenario::given(vec![]).await;
    let diagnosis = scenario.asked(QUESTION, vec![]).await;
    for attempt in 1..=MAX_DIAGNOSIS_ATTEMPTS {
        scenario
            .llm
            .then_fail(LlmError::Transient("throttled".into()));
        let result = scenario.diagnose(diagnosis).await;
        if attempt < MAX_DIAGNOSIS_ATTEMPTS {
            assert!(result.is_err(), "attempt {attempt} is retried");
        }
    }

    let failures = scenario.failures(diagnosis);
    assert_eq!(failures.len() as u32, MAX_DIAGNOSIS_ATTEMPTS);
    assert!(!failures.last().unwrap().0, "the last one is final");
    scenario
        .diagnose(diagnosis)
        .await
        .expect("nothing left to do");
    assert_eq!(scenario.llm.asked().len() as u32, MAX_DIAGNOSIS_ATTEMPTS);
}

#[tokio::test]
async fn an_unsure_professional_query_escalates_once_and_every_call_is_priced() {
    // Triage unsure about a medium-severity finding, the standard tier unsure too: the
    // strongest tier is asked once, and its answer, unsure too, is proposed.
    let scenario = Scenario::given(vec![
        (
            ModelTier::Triage,
            0.9,
            Some(casebook_domain::diagnosis::Severity::Medium),
            "haiku",
        ),
        (ModelTier::Standard, 0.3, None, "sonnet"),
        (ModelTier::Strongest, 0.4, None, "opus"),
    ])
    .await;
    let diagnosis = scenario.asked(QUESTION, vec![]).await;
    let prices = FlatPrices(HashMap::from([
        ("haiku".to_owned(), (1, 4)),
        ("sonnet".to_owned(), (3, 15)),
        ("opus".to_owned(), (15, 75)),
    ]));

    scenario
        .diagnoser(prices)
        .diagnose(&scenario.request(diagnosis))
        .await
        .unwrap();

    assert_eq!(
        scenario.llm.asked(),
        [ModelTier::Triage, ModelTier::Standard, ModelTier::Strongest]
    );
    let provenance = scenario.provenance(diagnosis).unwrap();
    assert_eq!(
        (provenance.model_id.as_str(), provenance.model_tier),
        ("opus", ModelTier::Strongest)
    );
    assert_eq!(
        (provenance.input_tokens, provenance.output_tokens),
        (3_000, 300)
    );
    let cost = (1_000 + 100 * 4) + (3_000 + 100 * 15) + (15_000 + 100 * 75);
    assert_eq!(provenance.cost_usd_micros, cost);
}

#[tokio::test]
async fn a_model_without_a_price_costs_nothing() {
    let scenario = Scenario::given(confident_triage()).await;
    let diagnosis = scenario.asked(QUESTION, vec![]).await;

    scenario.diagnose(diagnosis).await.unwrap();

    assert_eq!(scenario.provenance(diagnosis).unwrap().cost_usd_micros, 0);
}

#[tokio::test]
async fn a_cost_sensitive_tenant_is_never_routed_to_the_strongest_tier() {
    let scenario = Scenario::on_plan(
        PlanTier::CostSensitive,
        vec![
            (
                ModelTier::Triage,
                0.2,
                Some(casebook_domain::diagnosis::Severity::High),
                "haiku",
            ),
            (ModelTier::OpenWeights, 0.2, None, "llama"),
        ],
    )
    .await;
    let diagnosis = scenario.asked(QUESTION, vec![]).await;

    scenario.diagnose(diagnosis).await.unwrap();

    assert_eq!(
        scenario.llm.asked(),
        [ModelTier::Triage, ModelTier::OpenWeights]
    );
    assert_eq!(
        scenario.provenance(diagnosis).unwrap().model_tier,
        ModelTier::OpenWeights
    );
}

#[tokio::test]
async fn a_store_outage_when_proposing_fails_the_message_and_the_retry_proposes_once() {
    let scenario = Scenario::given(confident_triage()).await;
    let diagnosis = scenario.asked(QUESTION, vec![]).await;
    // The context lands; the proposal's append finds the store down.
    scenario.stores.diagnoses.let_next_append_land();
    scenario
        .stores
        .diagnoses
        .fail_next_append(Failure::Unavailable);
    // …and the retry, finding the context recorded, goes straight to the model.

    let err = scenario.diagnose(diagnosis).await.unwrap_err();
    assert!(matches!(err, DiagnosisError::Failed(..)), "{err:?}");
    assert_eq!(
        scenario.event_types(diagnosis),
        ["DiagnosisRequested", "ContextRetrieved"]
    );

    scenario
        .llm
        .then_answer((ModelTier::Triage, 0.9, None, "haiku"));
    scenario.diagnose(diagnosis).await.expect("retried");
    assert_eq!(scenario.event_types(diagnosis).len(), 3);
}

#[tokio::test]
async fn a_proposal_that_lost_the_race_to_another_delivery_is_success() {
    let scenario = Scenario::given(confident_triage()).await;
    let diagnosis = scenario.asked(QUESTION, vec![]).await;
    // The same message delivered twice: the rival proposes while this delivery waits for
    // its model, so this one's proposal is refused as a repeat.
    let rival = Rival::new(
        scenario.diagnoser(FlatPrices::default()),
        scenario.request(diagnosis),
    );
    let racing = scenario.diagnoser_over(
        scenario.index.clone(),
        Arc::new(RacingLlm {
            rival,
            inner: ScriptedLlm::answers(confident_triage()),
        }),
        FlatPrices::default(),
    );

    racing
        .diagnose(&scenario.request(diagnosis))
        .await
        .expect("a repeat is success");

    assert_eq!(
        scenario.event_types(diagnosis),
        [
            "DiagnosisRequested",
            "ContextRetrieved",
            "DiagnosisProposed"
        ]
    );
}

#[tokio::test]
async fn a_context_recorded_by_another_delivery_first_ends_this_one() {
    let scenario = Scenario::given(confident_triage()).await;
    let diagnosis = scenario.asked(QUESTION, vec![]).await;
    let rival = Rival::new(
        scenario.diagnoser(FlatPrices::default()),
        scenario.request(diagnosis),
    );
    let racing = scenario.diagnoser_over(
        Arc::new(RacingIndex {
            rival,
            inner: FixedPrecedents::new(vec![scenario.found.clone()]),
        }),
        Arc::new(ScriptedLlm::default()),
        FlatPrices::default(),
    );

    racing
        .diagnose(&scenario.request(diagnosis))
        .await
        .expect("the rival carries on");

    // This delivery never asked its model (it has no answers scripted: it would panic).
    assert_eq!(scenario.event_types(diagnosis).len(), 3);
}

#[tokio::test]
async fn text_attachments_are_embedded_with_the_query_and_put_into_the_prompt() {
    let scenario = Scenario::given(confident_triage()).await.with_bucket();
    let contract = scenario.upload("contract.txt");
    scenario.bucket().put(
        &contract,
        Some("text/plain"),
        b"Liability is capped at fees.",
    );
    let diagnosis = scenario.asked(QUESTION, vec![contract.clone()]).await;

    scenario.diagnose(diagnosis).await.unwrap();

    let prompts = scenario.llm.prompts.lock().unwrap();
    assert_eq!(prompts[0].attachments.len(), 1);
    assert_eq!(
        prompts[0].attachments[0].text,
        "Liability is capped at fees."
    );
    let embedded = scenario.embedder.texts.lock().unwrap();
    assert!(embedded[0].contains(QUESTION) && embedded[0].contains("capped at fees"));
    let attachments = scenario.provenance(diagnosis).unwrap().attachments.unwrap();
    assert_eq!(attachments[0].key, contract);
    assert_eq!(
        attachments[0].outcome,
        AttachmentOutcome::Included {
            bytes: 28,
            truncated: false
        }
    );
}

#[tokio::test]
async fn attachments_that_cannot_be_read_are_skipped_each_with_its_reason() {
    // Many attachments make a hard query: the strongest tier answers.
    let scenario = Scenario::given(confident_strongest()).await.with_bucket();
    let image = scenario.upload("scan.png");
    let empty = scenario.upload("empty.txt");
    let missing = scenario.upload("never-uploaded.txt");
    let foreign = scenario.upload("tampered.txt");
    scenario
        .bucket()
        .put(&image, Some("image/png"), &[0x89, 0x50]);
    scenario.bucket().put(&empty, Some("text/plain"), b"");
    scenario.bucket().refuse_as_foreign(&foreign);
    let diagnosis = scenario
        .asked(QUESTION, vec![image, empty, missing, foreign])
        .await;

    scenario.diagnose(diagnosis).await.unwrap();

    let reasons: Vec<_> = scenario
        .provenance(diagnosis)
        .unwrap()
        .attachments
        .unwrap()
        .into_iter()
        .map(|read| read.outcome)
        .collect();
    let skipped = |reason| AttachmentOutcome::Skipped { reason };
    assert_eq!(
        reasons,
        [
            skipped(SkipReason::NotText),
            skipped(SkipReason::Empty),
            skipped(SkipReason::Missing),
            skipped(SkipReason::OutsideTenant),
        ]
    );
    assert!(scenario.llm.prompts.lock().unwrap()[0]
        .attachments
        .is_empty());
}

#[tokio::test]
async fn without_an_uploads_bucket_attachments_are_skipped_and_the_provenance_says_so() {
    let scenario = Scenario::given(confident_triage()).await;
    let contract = scenario.upload("contract.txt");
    let diagnosis = scenario.asked(QUESTION, vec![contract]).await;

    scenario.diagnose(diagnosis).await.unwrap();

    let attachments = scenario.provenance(diagnosis).unwrap().attachments.unwrap();
    assert_eq!(
        attachments[0].outcome,
        AttachmentOutcome::Skipped {
            reason: SkipReason::NoStore
        }
    );
}

#[tokio::test]
async fn attachments_past_the_text_budget_are_truncated_then_skipped() {
    use casebook_domain::diagnosis::{ATTACHMENTS_TEXT_BUDGET, ATTACHMENT_TEXT_LIMIT};
    let scenario = Scenario::given(confident_strongest()).await.with_bucket();
    let needed = ATTACHMENTS_TEXT_BUDGET.div_ceil(ATTACHMENT_TEXT_LIMIT) as usize;
    let keys: Vec<_> = (0..=needed)
        .map(|n| scenario.upload(&format!("part-{n}.txt")))
        .collect();
    let long = vec![b'a'; ATTACHMENT_TEXT_LIMIT as usize + 10];
    for key in &keys {
        scenario.bucket().put(key, Some("text/plain"), &long);
    }
    let diagnosis = scenario.asked(QUESTION, keys).await;

    scenario.diagnose(diagnosis).await.unwrap();

    let outcomes: Vec<_> = scenario
        .provenance(diagnosis)
        .unwrap()
        .attachments
        .unwrap()
        .into_iter()
        .map(|read| read.outcome)
        .collect();
    assert!(matches!(
        outcomes[0],
        AttachmentOutcome::Included {
            truncated: true,
            ..
        }
    ));
    assert_eq!(
        outcomes.last().unwrap(),
        &AttachmentOutcome::Skipped {
            reason: SkipReason::OverBudget
        }
    );
    let included: u64 = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            AttachmentOutcome::Included { bytes, .. } => Some(*bytes),
            _ => None,
        })
        .sum();
    assert_eq!(included, ATTACHMENTS_TEXT_BUDGET);
}

#[tokio::test]
async fn a_bucket_outage_records_a_retryable_failure_before_anything_is_embedded() {
    let scenario = Scenario::given(confident_triage()).await.with_bucket();
    let contract = scenario.upload("contract.txt");
    scenario
        .bucket()
        .put(&contract, Some("text/plain"), b"Cap.");
    let diagnosis = scenario.asked(QUESTION, vec![contract]).await;
    scenario.bucket().set_down(true);

    let err = scenario.diagnose(diagnosis).await.unwrap_err();

    assert!(matches!(err, DiagnosisError::Failed(..)), "{err:?}");
    let failures = scenario.failures(diagnosis);
    assert!(failures[0].0);
    assert!(failures[0].1.starts_with("reading the attachments failed"));
    assert!(scenario.embedder.texts.lock().unwrap().is_empty());
    scenario.bucket().set_down(false);
    scenario.diagnose(diagnosis).await.expect("retried");
}

#[tokio::test]
async fn the_index_is_asked_for_the_configured_number_of_precedents() {
    let scenario = Scenario::given(confident_triage()).await;
    let diagnosis = scenario.asked(QUESTION, vec![]).await;

    scenario.diagnose(diagnosis).await.unwrap();

    assert_eq!(scenario.index.asked_for(), vec![PRECEDENTS]);
}
