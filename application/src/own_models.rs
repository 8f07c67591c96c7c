//! A practice's own models: an upload under `<tenant>/models/` is registered as a candidate
//! and put through the evaluation gate (see `casebook_domain::own_model` for the metric),
//! which promotes it to serve its tier or rejects it; the diagnosis then runs a promoted
//! model where the routing policy picks its tier.
//!
//! The gate asks the candidate and the tier's current route (the model promoted before, or
//! the platform's model for the tier) the same prompts: each held-out approved decision's
//! query, without precedents, so neither answer leans on the judgment the decision itself
//! became. Both answers are scored against what the consultant approved, with the index's
//! embedder.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use casebook_domain::actor::Actor;
use casebook_domain::ids::TenantId;
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::own_model::{
    example_score, ModelArtifact, ModelEvaluation, ModelFormat, ModelId, ModelStatus,
    PromotedModel, METRIC,
};
use casebook_domain::policy::ModelTier;
use casebook_domain::ports::{DiagnosisPrompt, EmbedError, Embedder, Llm, LlmAnswer, LlmError};
use casebook_domain::tenant::{Tenant, TenantCommand};
use casebook_domain::values::QueryText;

use crate::ports::BoxError;
use crate::service::{RequestContext, Service, ServiceError};

/// The tier a practice's own model is evaluated for and serves: the open-weights tier, the
/// cost-sensitive plans' path (a fine-tuned small model is an open-weights model).
pub const OWN_MODEL_TIER: ModelTier = ModelTier::OpenWeights;

/// The most held-out decisions one evaluation scores.
pub const MAX_HELD_OUT: u32 = 20;

/// An object written to the artifacts bucket, as its notification tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelUpload {
    /// The bucket.
    pub bucket: String,
    /// The key, `<tenant>/models/<job>/model.gguf`.
    pub key: String,
    /// Its size.
    pub size_bytes: u64,
    /// Its entity tag.
    pub etag: String,
}

impl ModelUpload {
    /// The tenant whose models prefix holds the key, if it is a models key at all.
    pub fn tenant(&self) -> Option<TenantId> {
        let (tenant, rest) = self.key.split_once('/')?;
        let rest = rest.strip_prefix("models/")?;
        (!rest.is_empty()).then_some(())?;
        tenant.parse().ok()
    }
}

/// What the trainer said about its artifact (the object's metadata).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArtifactDescription {
    /// `gguf`; anything else is refused.
    pub format: Option<String>,
    /// The model it was fine-tuned from.
    pub base_model: Option<String>,
    /// The training job.
    pub training_job: Option<String>,
    /// The trainer's figures.
    pub metrics: BTreeMap<String, f64>,
}

/// The practice's models' weights.
#[async_trait]
pub trait ModelArtifacts: Send + Sync {
    /// What the trainer recorded on the uploaded object.
    async fn describe(&self, bucket: &str, key: &str) -> Result<ArtifactDescription, BoxError>;

    /// The model `model` as an [`Llm`]; loaded once per process and kept.
    async fn load(&self, model: &PromotedModel) -> Result<Arc<dyn Llm>, BoxError>;
}

/// `model` loaded from `artifacts`, its answers naming it as provenance does
/// ([`ModelId::provenance_name`]), whatever the weights call themselves.
pub(crate) async fn load_named(
    artifacts: &dyn ModelArtifacts,
    model: &PromotedModel,
) -> Result<Arc<dyn Llm>, BoxError> {
    Ok(Arc::new(Named {
        inner: artifacts.load(model).await?,
        name: model.model_id.provenance_name(),
    }))
}

/// A practice's model, answering under its registry name.
struct Named {
    inner: Arc<dyn Llm>,
    name: String,
}

#[async_trait]
impl Llm for Named {
    async fn diagnose(&self, prompt: &DiagnosisPrompt) -> Result<LlmAnswer, LlmError> {
        let mut answer = self.inner.diagnose(prompt).await?;
        answer.model_id.clone_from(&self.name);
        Ok(answer)
    }
}

/// A held-out approved decision: what the customer asked and what the consultant approved.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldOutExample {
    /// The query.
    pub query: QueryText,
    /// The approved (or amended) text.
    pub approved_text: String,
    /// The approved proposal's findings, by summary.
    pub approved_findings: Vec<String>,
}

/// The decisions the evaluation scores models on.
#[async_trait]
pub trait HeldOutDecisions: Send + Sync {
    /// Up to `limit` of `tenant`'s held-out approved or amended decisions, newest first.
    async fn held_out(&self, tenant: TenantId, limit: u32)
        -> Result<Vec<HeldOutExample>, BoxError>;
}

/// Why an upload could not be registered or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The upload is not a model of a tenant, or its description is unusable: retrying
    /// won't help.
    #[error("not a model upload: {0}")]
    NotAModel(String),
    /// A port failed (S3, the read models, a model, the embedder): worth a retry.
    #[error("{what} failed")]
    Port {
        /// What was being done.
        what: &'static str,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The command was refused or the store failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

fn port(what: &'static str) -> impl FnOnce(BoxError) -> GateError {
    move |source| GateError::Port { what, source }
}

/// How an upload ended.
#[derive(Debug, Clone, PartialEq)]
pub enum GateOutcome {
    /// The key is not under a tenant's models prefix: nothing to do.
    Ignored,
    /// The model was evaluated before (a repeated notification): nothing more to do.
    AlreadyEvaluated(ModelId, ModelStatus),
    /// The gate measured it and promoted or rejected it.
    Evaluated {
        /// The model.
        model_id: ModelId,
        /// What was measured.
        evaluation: ModelEvaluation,
        /// Whether it now serves its tier.
        promoted: bool,
    },
}

/// What the gate needs.
pub struct GatePorts {
    /// Commands and the tenant's state.
    pub service: Service,
    /// The weights.
    pub artifacts: Arc<dyn ModelArtifacts>,
    /// The held-out decisions.
    pub held_out: Arc<dyn HeldOutDecisions>,
    /// The index's embedder, to compare answers with approved texts.
    pub embedder: Arc<dyn Embedder>,
    /// The platform's models: the current route of a tier no own model serves.
    pub platform: Arc<dyn Llm>,
    /// The system prompt the diagnosis uses.
    pub system_prompt: String,
}

/// The evaluation gate: registers an uploaded model and promotes or rejects it.
pub struct ModelGate {
    ports: GatePorts,
}

impl ModelGate {
    /// The gate over `ports`.
    pub fn new(ports: GatePorts) -> Self {
        Self { ports }
    }

    /// Registers `upload` on its tenant (once) and evaluates it (once): safe to call again
    /// with the same upload, as a redelivered notification does.
    pub async fn on_upload(
        &self,
        upload: &ModelUpload,
        cause_id: &str,
    ) -> Result<GateOutcome, GateError> {
        let Some(tenant_id) = upload.tenant() else {
            return Ok(GateOutcome::Ignored);
        };
        let actor = Actor::system(tenant_id);
        let ctx = RequestContext {
            metadata: EventMetadata::new(&actor, cause_id.to_owned(), Source::Worker),
            actor: actor.clone(),
        };
        let description = self
            .ports
            .artifacts
            .describe(&upload.bucket, &upload.key)
            .await
            .map_err(port("reading the artifact's description"))?;
        let format = match description.format.as_deref() {
            None | Some("gguf") => ModelFormat::Gguf,
            Some(other) => {
                return Err(GateError::NotAModel(format!(
                    "{}: format {other:?} is not gguf",
                    upload.key
                )))
            }
        };
        let artifact = ModelArtifact {
            bucket: upload.bucket.clone(),
            key: upload.key.clone(),
            size_bytes: upload.size_bytes,
            etag: upload.etag.clone(),
            format,
            base_model: description.base_model,
            training_job: description.training_job,
            metrics: description.metrics,
        };
        let model_id = ModelId::for_artifact(tenant_id, &artifact.key);
        let registered = self
            .ports
            .service
            .administer_tenant(
                &ctx,
                TenantCommand::RegisterModel {
                    actor: actor.clone(),
                    artifact,
                },
            )
            .await;
        if let Err(err) = registered {
            if !is_repeat(&err) {
                return Err(err.into());
            }
        }
        let tenant = self.ports.service.tenant_state(tenant_id).await?;
        match tenant.model_status(model_id) {
            Some(ModelStatus::Candidate) => {}
            Some(status) => return Ok(GateOutcome::AlreadyEvaluated(model_id, status)),
            None => {
                return Err(GateError::NotAModel(format!(
                    "{} is not registered on its tenant",
                    upload.key
                )))
            }
        }
        let evaluation = self.evaluate(tenant_id, &tenant, model_id).await?;
        let promoted = evaluation.passes();
        let recorded = self
            .ports
            .service
            .administer_tenant(
                &ctx,
                TenantCommand::RecordModelEvaluation {
                    actor,
                    model_id,
                    evaluation: evaluation.clone(),
                },
            )
            .await;
        match recorded {
            Ok(_) => Ok(GateOutcome::Evaluated {
                model_id,
                evaluation,
                promoted,
            }),
            Err(err) if is_repeat(&err) => {
                let tenant = self.ports.service.tenant_state(tenant_id).await?;
                let status = tenant
                    .model_status(model_id)
                    .unwrap_or(ModelStatus::Candidate);
                Ok(GateOutcome::AlreadyEvaluated(model_id, status))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Scores the candidate and the tier's current route on the tenant's held-out decisions.
    async fn evaluate(
        &self,
        tenant_id: TenantId,
        tenant: &Tenant,
        model_id: ModelId,
    ) -> Result<ModelEvaluation, GateError> {
        let artifact = tenant
            .model_artifact(model_id)
            .ok_or_else(|| GateError::NotAModel(format!("model {model_id} is not registered")))?;
        let candidate = load_named(
            self.ports.artifacts.as_ref(),
            &PromotedModel {
                model_id,
                bucket: artifact.bucket.clone(),
                key: artifact.key.clone(),
                etag: artifact.etag.clone(),
                tier: OWN_MODEL_TIER,
            },
        )
        .await
        .map_err(port("loading the candidate"))?;
        let (baseline, baseline_model) = match tenant.promoted_model(OWN_MODEL_TIER) {
            Some(current) => (
                load_named(self.ports.artifacts.as_ref(), &current)
                    .await
                    .map_err(port("loading the promoted model"))?,
                current.model_id.provenance_name(),
            ),
            None => (
                self.ports.platform.clone(),
                format!("platform/{OWN_MODEL_TIER:?}"),
            ),
        };
        let examples = self
            .ports
            .held_out
            .held_out(tenant_id, MAX_HELD_OUT)
            .await
            .map_err(port("reading the held-out decisions"))?;
        let mut candidate_total = 0.0;
        let mut baseline_total = 0.0;
        for example in &examples {
            candidate_total += self.score(candidate.as_ref(), example).await?;
            baseline_total += self.score(baseline.as_ref(), example).await?;
        }
        let held_out = u32::try_from(examples.len()).unwrap_or(u32::MAX);
        let mean = |total: f64| {
            if examples.is_empty() {
                0.0
            } else {
                total / f64::from(held_out)
            }
        };
        Ok(ModelEvaluation {
            metric: METRIC.to_owned(),
            tier: OWN_MODEL_TIER,
            baseline_model,
            held_out,
            candidate_score: mean(candidate_total),
            baseline_score: mean(baseline_total),
        })
    }

    /// One model's answer to one held-out query, scored against the approved decision.
    async fn score(&self, model: &dyn Llm, example: &HeldOutExample) -> Result<f64, GateError> {
        let prompt = DiagnosisPrompt {
            system: self.ports.system_prompt.clone(),
            query: example.query.clone(),
            precedents: Vec::new(),
            attachments: Vec::new(),
            tier: OWN_MODEL_TIER,
        };
        let answer = model
            .diagnose(&prompt)
            .await
            .map_err(|err: LlmError| port("asking a model")(Box::new(err)))?;
        let vectors = self
            .ports
            .embedder
            .embed(&[answer.text.to_string(), example.approved_text.clone()])
            .await
            .map_err(|err: EmbedError| port("embedding the answers")(Box::new(err)))?;
        let [answer_vector, approved_vector] = vectors.as_slice() else {
            return Err(GateError::NotAModel(format!(
                "the embedder returned {} vectors for two texts",
                vectors.len()
            )));
        };
        let findings: Vec<String> = answer.findings.iter().map(|f| f.summary.clone()).collect();
        let findings: Vec<&str> = findings.iter().map(String::as_str).collect();
        let approved: Vec<&str> = example
            .approved_findings
            .iter()
            .map(String::as_str)
            .collect();
        Ok(example_score(
            cosine(answer_vector, approved_vector),
            &findings,
            &approved,
        ))
    }
}

/// A refusal that says the command ran before: the same notification delivered again.
fn is_repeat(err: &ServiceError) -> bool {
    matches!(
        err,
        ServiceError::Conflict(_)
            | ServiceError::Refused {
                code: "model_already_registered" | "model_state_conflict",
                ..
            }
    )
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let denominator = norm(a) * norm(b);
    if denominator == 0.0 {
        0.0
    } else {
        dot / denominator
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_under_a_tenants_models_prefix_are_model_uploads() {
        let tenant = TenantId::new();
        let upload = |key: String| ModelUpload {
            bucket: "b".into(),
            key,
            size_bytes: 1,
            etag: "e".into(),
        };
        assert_eq!(
            upload(format!("{tenant}/models/j/model.gguf")).tenant(),
            Some(tenant)
        );
        assert_eq!(upload(format!("{tenant}/models/")).tenant(), None);
        assert_eq!(upload(format!("{tenant}/finetune/x.jsonl")).tenant(), None);
        assert_eq!(
            upload("not-a-tenant/models/j/model.gguf".into()).tenant(),
            None
        );
    }

    #[test]
    fn cosine_is_one_for_the_same_direction_and_zero_for_nothing() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-9);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
