//! The evaluation gate in memory: an uploaded model is registered, scored against the
//! current route on the practice's held-out decisions, promoted or rejected — and once
//! promoted, the next diagnosis routed to its tier is its answer, named in the provenance.

#[allow(dead_code)]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use casebook_application::in_memory::FlatPrices;
use casebook_application::own_models::{
    ArtifactDescription, GateOutcome, GatePorts, HeldOutDecisions, HeldOutExample, ModelArtifacts,
    ModelGate, ModelUpload,
};
use casebook_application::ports::BoxError;
use casebook_domain::actor::Role;
use casebook_domain::ids::TenantId;
use casebook_domain::own_model::{ModelEvaluation, ModelId, ModelStatus, PromotedModel};
use casebook_domain::policy::{ModelPolicy, ModelTier};
use casebook_domain::ports::{
    DiagnosisPrompt, EmbedError, Embedder, Llm, LlmAnswer, LlmError, StopReason,
};
use casebook_domain::tenant::{TenantCommand, TenantEvent};
use casebook_domain::values::{Confidence, DiagnosisText, QueryText};
use support::{ctx, system_prompt, Scenario};

/// The approved answers of the practice's held-out decisions.
const APPROVED: [&str; 3] = [
    "The liability cap of twelve months of fees is enforceable.",
    "The exclusivity clause binds for two years and then lapses.",
    "The notice to renew the lease must be served six months ahead.",
];

/// Words hashed into buckets: texts sharing words are close, so an answer that says what the
/// consultant approved scores near 1 and an unrelated one near 0.
struct WordsEmbedder;

#[async_trait]
impl Embedder for WordsEmbedder {
    fn model_id(&self) -> &str {
        "test/words"
    }

    fn dimension(&self) -> usize {
        64
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts
            .iter()
            .map(|text| {
                let mut vector = vec![0.0_f32; 64];
                for word in text.split(|c: char| !c.is_alphanumeric()) {
                    if !word.is_empty() {
                        let hash = word.to_lowercase().bytes().fold(7_usize, |h, b| {
                            h.wrapping_mul(31).wrapping_add(usize::from(b))
                        });
                        vector[hash % 64] += 1.0;
                    }
                }
                vector
            })
            .collect())
    }
}

/// A model answering every prompt from a table of query → answer, or `otherwise`.
struct TableLlm {
    name: String,
    answers: HashMap<String, String>,
    otherwise: String,
}

impl TableLlm {
    /// Answers each held-out query with its approved text.
    fn faithful(name: &str) -> Self {
        Self {
            name: name.into(),
            answers: APPROVED
                .iter()
                .enumerate()
                .map(|(i, approved)| (query(i), (*approved).to_owned()))
                .collect(),
            otherwise: "The practice's model has an answer.".into(),
        }
    }

    /// Answers everything with the same unrelated text.
    fn off_topic(name: &str) -> Self {
        Self {
            name: name.into(),
            answers: HashMap::new(),
            otherwise: "Sunny weather is expected over the weekend.".into(),
        }
    }
}

#[async_trait]
impl Llm for TableLlm {
    async fn diagnose(&self, prompt: &DiagnosisPrompt) -> Result<LlmAnswer, LlmError> {
        let text = self
            .answers
            .get(prompt.query.as_str())
            .unwrap_or(&self.otherwise);
        Ok(LlmAnswer {
            text: DiagnosisText::parse(text.clone()).unwrap(),
            findings: vec![],
            confidence: Confidence::new(0.9).unwrap(),
            input_tokens: 10,
            output_tokens: 10,
            model_id: self.name.clone(),
            stop_reason: StopReason::EndTurn,
        })
    }
}

fn query(i: usize) -> String {
    format!("Held-out question number {i}?")
}

/// The artifacts bucket: each key's model, and how often each was loaded.
#[derive(Default)]
struct Artifacts {
    models: Mutex<HashMap<String, Arc<dyn Llm>>>,
    loads: Mutex<Vec<String>>,
}

impl Artifacts {
    fn put(&self, key: &str, model: impl Llm + 'static) {
        self.models
            .lock()
            .unwrap()
            .insert(key.to_owned(), Arc::new(model));
    }
}

#[async_trait]
impl ModelArtifacts for Artifacts {
    async fn describe(&self, _bucket: &str, key: &str) -> Result<ArtifactDescription, BoxError> {
        assert!(self.models.lock().unwrap().contains_key(key), "{key}");
        Ok(ArtifactDescription {
            format: Some("gguf".into()),
            base_model: Some("SmolLM2-135M-Instruct".into()),
            training_job: Some("evt-export".into()),
            metrics: BTreeMap::from([("loss".to_owned(), 1.2)]),
        })
    }

    async fn load(&self, model: &PromotedModel) -> Result<Arc<dyn Llm>, BoxError> {
        self.loads.lock().unwrap().push(model.key.clone());
        self.models
            .lock()
            .unwrap()
            .get(&model.key)
            .cloned()
            .ok_or_else(|| format!("no object {}", model.key).into())
    }
}

struct HeldOut;

#[async_trait]
impl HeldOutDecisions for HeldOut {
    async fn held_out(
        &self,
        _tenant: TenantId,
        limit: u32,
    ) -> Result<Vec<HeldOutExample>, BoxError> {
        Ok(APPROVED
            .iter()
            .enumerate()
            .take(limit as usize)
            .map(|(i, approved)| HeldOutExample {
                query: QueryText::parse(query(i)).unwrap(),
                approved_text: (*approved).to_owned(),
                approved_findings: vec![],
            })
            .collect())
    }
}

struct Practice {
    scenario: Scenario,
    artifacts: Arc<Artifacts>,
    gate: ModelGate,
}

impl Practice {
    /// A practice whose platform open-weights model answers `platform`, routing every query
    /// to the open-weights tier.
    async fn new(platform: TableLlm) -> Self {
        let scenario = Scenario::given(vec![]).await;
        let admin = ctx(scenario.tenant, Role::Admin, "admin");
        scenario
            .service
            .administer_tenant(
                &admin,
                TenantCommand::SetModelPolicy {
                    actor: admin.actor.clone(),
                    policy: ModelPolicy::OpenWeightsOnly,
                },
            )
            .await
            .expect("policy set");
        let artifacts = Arc::new(Artifacts::default());
        let gate = ModelGate::new(GatePorts {
            service: scenario.service.clone(),
            artifacts: artifacts.clone(),
            held_out: Arc::new(HeldOut),
            embedder: Arc::new(WordsEmbedder),
            platform: Arc::new(platform),
            system_prompt: system_prompt().text,
        });
        Self {
            scenario,
            artifacts,
            gate,
        }
    }

    fn upload(&self, job: &str) -> ModelUpload {
        ModelUpload {
            bucket: "artifacts".into(),
            key: format!("{}/models/{job}/model.gguf", self.scenario.tenant),
            size_bytes: 1 << 20,
            etag: format!("etag-{job}"),
        }
    }

    fn model(&self, job: &str) -> ModelId {
        ModelId::for_artifact(self.scenario.tenant, &self.upload(job).key)
    }

    fn model_events(&self) -> Vec<TenantEvent> {
        self.scenario
            .stores
            .tenants
            .events(&self.scenario.tenant.to_string())
            .into_iter()
            .filter(|e| {
                matches!(
                    e,
                    TenantEvent::ModelRegistered { .. }
                        | TenantEvent::ModelPromoted { .. }
                        | TenantEvent::ModelRejected { .. }
                )
            })
            .collect()
    }

    /// `model` uploaded as `job`'s weights and put through the gate: what it measured and
    /// whether it promoted the model.
    async fn evaluated(&self, job: &str, model: TableLlm) -> (ModelId, ModelEvaluation, bool) {
        let upload = self.upload(job);
        self.artifacts.put(&upload.key, model);
        let outcome = self
            .gate
            .on_upload(&upload, &format!("s3-event-{job}"))
            .await
            .unwrap();
        let GateOutcome::Evaluated {
            model_id,
            evaluation,
            promoted,
        } = outcome
        else {
            panic!("not evaluated: {outcome:?}");
        };
        (model_id, evaluation, promoted)
    }

    async fn status(&self, job: &str) -> Option<ModelStatus> {
        self.scenario
            .service
            .tenant_state(self.scenario.tenant)
            .await
            .unwrap()
            .model_status(self.model(job))
    }
}

#[tokio::test]
async fn a_model_closer_to_the_approved_decisions_is_promoted_and_answers_the_next_diagnosis() {
    let practice = Practice::new(TableLlm::off_topic("platform-open-weights")).await;
    let (model_id, evaluation, promoted) = practice
        .evaluated("job-1", TableLlm::faithful("ignored-name"))
        .await;
    assert!(promoted, "{evaluation:?}");
    assert_eq!(model_id, practice.model("job-1"));
    assert_eq!(evaluation.held_out, 3);
    assert_eq!(evaluation.tier, ModelTier::OpenWeights);
    assert!(
        evaluation.candidate_score > 0.99 && evaluation.baseline_score < 0.5,
        "{evaluation:?}"
    );
    assert_eq!(practice.status("job-1").await, Some(ModelStatus::Promoted));

    // The next diagnosis routed to the open-weights tier is the practice's model's answer.
    let scenario = &practice.scenario;
    let diagnosis = scenario.asked("Is the cap enforceable?", vec![]).await;
    scenario
        .diagnoser(FlatPrices::default())
        .with_own_models(practice.artifacts.clone())
        .diagnose(&scenario.request(diagnosis))
        .await
        .unwrap();
    let provenance = scenario.provenance(diagnosis).expect("proposed");
    assert_eq!(provenance.model_id, model_id.provenance_name());
    assert_eq!(provenance.model_tier, ModelTier::OpenWeights);
    assert!(scenario.llm.asked().is_empty(), "the platform was asked");
}

#[tokio::test]
async fn a_model_below_the_current_route_is_rejected_and_the_platform_keeps_serving() {
    let practice = Practice::new(TableLlm::faithful("platform-open-weights")).await;
    let (_, evaluation, promoted) = practice
        .evaluated("job-1", TableLlm::off_topic("ignored-name"))
        .await;
    assert!(!promoted, "{evaluation:?}");
    assert!(evaluation.candidate_score < evaluation.baseline_score);
    assert_eq!(practice.status("job-1").await, Some(ModelStatus::Rejected));
    let tenant = practice
        .scenario
        .service
        .tenant_state(practice.scenario.tenant)
        .await
        .unwrap();
    assert_eq!(tenant.promoted_model(ModelTier::OpenWeights), None);
}

#[tokio::test]
async fn a_second_model_must_beat_the_promoted_one_not_the_platform() {
    let practice = Practice::new(TableLlm::off_topic("platform-open-weights")).await;
    practice
        .evaluated("job-1", TableLlm::faithful("first"))
        .await;
    // As good as the platform, worse than the promoted model.
    let (_, evaluation, promoted) = practice
        .evaluated("job-2", TableLlm::off_topic("second"))
        .await;
    assert!(!promoted, "{evaluation:?}");
    assert_eq!(
        evaluation.baseline_model,
        practice.model("job-1").provenance_name()
    );
    assert_eq!(practice.status("job-2").await, Some(ModelStatus::Rejected));
    assert_eq!(practice.status("job-1").await, Some(ModelStatus::Promoted));
}

#[tokio::test]
async fn a_repeated_notification_registers_and_evaluates_once() {
    let practice = Practice::new(TableLlm::off_topic("platform-open-weights")).await;
    let upload = practice.upload("job-1");
    practice
        .artifacts
        .put(&upload.key, TableLlm::faithful("model"));
    practice
        .gate
        .on_upload(&upload, "s3-event-1")
        .await
        .unwrap();
    let again = practice
        .gate
        .on_upload(&upload, "s3-event-1")
        .await
        .unwrap();
    assert_eq!(
        again,
        GateOutcome::AlreadyEvaluated(practice.model("job-1"), ModelStatus::Promoted)
    );
    assert_eq!(
        practice.model_events().len(),
        2,
        "registered and promoted once"
    );
}

#[tokio::test]
async fn an_object_outside_a_tenants_models_prefix_is_ignored() {
    let practice = Practice::new(TableLlm::off_topic("platform-open-weights")).await;
    let finetune = ModelUpload {
        key: format!("{}/finetune/2026-12-01.jsonl", practice.scenario.tenant),
        ..practice.upload("job-1")
    };
    assert_eq!(
        practice
            .gate
            .on_upload(&finetune, "s3-event-1")
            .await
            .unwrap(),
        GateOutcome::Ignored
    );
    assert!(practice.model_events().is_empty());
}
