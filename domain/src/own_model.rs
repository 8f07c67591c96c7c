//! A practice's own model: weights trained on its local machine from its exported decisions,
//! uploaded under `<tenant>/models/`, registered on the [`Tenant`](crate::tenant::Tenant) as
//! a candidate, and promoted to serve a model tier only if an evaluation on decisions it was
//! not trained on scores it at least as well as what serves that tier now (the gate,
//! [`ModelEvaluation::passes`]).
//!
//! **Held out.** One decision in [`HELD_OUT_ONE_IN`], picked by a hash of its id, never goes
//! into a fine-tune export ([`is_held_out`]), so the evaluation never scores a model on what
//! it was trained on.
//!
//! **The metric** ([`METRIC`]): for each held-out approved or amended decision the model
//! answers the customer's query; the answer scores `0.7 × cosine(answer, approved text)`
//! (both embedded by the index's embedder) `+ 0.3 × Jaccard(answer's findings, approved
//! findings)` (by lowercased summary; two empty sets agree). A model's score is the mean; the
//! candidate passes when it is no lower than the current route's on the same examples and
//! there are at least [`MIN_HELD_OUT`] of them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{DecisionId, TenantId};
use crate::policy::ModelTier;

/// One decision in this many is held out of fine-tune exports, for evaluations.
pub const HELD_OUT_ONE_IN: u8 = 5;

/// The fewest held-out decisions an evaluation must score to promote a model: fewer say
/// nothing about it.
pub const MIN_HELD_OUT: u32 = 3;

/// The name and version of the evaluation metric (see the module documentation).
pub const METRIC: &str = "similarity-0.7+findings-0.3/v1";

/// The weight of the answer's similarity to the approved text in an example's score.
pub const SIMILARITY_WEIGHT: f64 = 0.7;

/// Whether `decision` is held out of fine-tune exports for evaluating models: decided by the
/// id alone, so the export and the evaluation agree without sharing state.
pub fn is_held_out(decision: DecisionId) -> bool {
    let digest = Uuid::new_v5(decision.as_uuid(), b"casebook/held-out");
    digest.as_bytes()[0] % HELD_OUT_ONE_IN == 0
}

/// A registered model's id: derived from its tenant and artifact key, so the same upload
/// notified twice registers once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ModelId(Uuid);

impl ModelId {
    /// The model of the artifact at `key` in `tenant`'s prefix.
    pub fn for_artifact(tenant: TenantId, key: &str) -> Self {
        Self(Uuid::new_v5(tenant.as_uuid(), key.as_bytes()))
    }

    /// Wraps an existing UUID.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The underlying UUID.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// How provenance names the model: `practice-model/<id>`.
    pub fn provenance_name(&self) -> String {
        format!("practice-model/{self}")
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// The file formats a practice's model may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelFormat {
    /// llama.cpp's GGUF (quantized llama-architecture weights), run in process with candle.
    Gguf,
}

/// A trained model's weights in S3, as its trainer uploaded them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelArtifact {
    /// The artifacts bucket.
    pub bucket: String,
    /// The object key, `<tenant>/models/<job>/model.gguf`.
    pub key: String,
    /// The object's size.
    pub size_bytes: u64,
    /// The object's entity tag: which upload of the key this is.
    pub etag: String,
    /// The weights' format.
    pub format: ModelFormat,
    /// The model it was fine-tuned from, as the trainer named it.
    pub base_model: Option<String>,
    /// The training job (the `FinetuneExported` event's id it trained on), as the trainer
    /// named it.
    pub training_job: Option<String>,
    /// The trainer's own figures (loss, steps, …), as it reported them.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
}

impl ModelArtifact {
    /// Whether the key lies under `tenant`'s models prefix: a tenant registers only its own
    /// uploads.
    pub fn belongs_to(&self, tenant: TenantId) -> bool {
        self.key
            .strip_prefix(&format!("{tenant}/models/"))
            .is_some_and(|rest| !rest.is_empty())
    }
}

/// What the evaluation gate measured for a candidate (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEvaluation {
    /// [`METRIC`] when it was measured.
    pub metric: String,
    /// The tier the candidate would serve.
    pub tier: ModelTier,
    /// What serves that tier now, by provenance name.
    pub baseline_model: String,
    /// Held-out decisions scored.
    pub held_out: u32,
    /// The candidate's mean score.
    pub candidate_score: f64,
    /// The current route's mean score on the same decisions.
    pub baseline_score: f64,
}

impl ModelEvaluation {
    /// The gate: enough held-out decisions, and a candidate scoring at least as well as the
    /// current route.
    pub fn passes(&self) -> bool {
        self.held_out >= MIN_HELD_OUT
            && self.candidate_score.is_finite()
            && self.candidate_score >= self.baseline_score
    }
}

/// Where a registered model stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelStatus {
    /// Registered, not yet evaluated.
    Candidate,
    /// Serving its tier.
    Promoted,
    /// Evaluated below the gate.
    Rejected,
    /// Withdrawn (or replaced by a later promotion).
    Retired,
}

/// The tenant's promoted model for a tier: what the diagnosis runs instead of the platform's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotedModel {
    /// The model.
    pub model_id: ModelId,
    /// Its weights' bucket.
    pub bucket: String,
    /// Its weights' key.
    pub key: String,
    /// Which upload of the key.
    pub etag: String,
    /// The tier it serves.
    pub tier: ModelTier,
}

/// The score of one answer against the approved decision: the module documentation's metric.
/// `similarity` is the cosine of the two texts' embeddings.
pub fn example_score(similarity: f64, answer_findings: &[&str], approved_findings: &[&str]) -> f64 {
    let normalize = |titles: &[&str]| -> std::collections::BTreeSet<String> {
        titles.iter().map(|t| t.trim().to_lowercase()).collect()
    };
    let (answer, approved) = (normalize(answer_findings), normalize(approved_findings));
    let union = answer.union(&approved).count();
    let overlap = if union == 0 {
        1.0
    } else {
        answer.intersection(&approved).count() as f64 / union as f64
    };
    SIMILARITY_WEIGHT * similarity.clamp(-1.0, 1.0) + (1.0 - SIMILARITY_WEIGHT) * overlap
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evaluation(held_out: u32, candidate: f64, baseline: f64) -> ModelEvaluation {
        ModelEvaluation {
            metric: METRIC.into(),
            tier: ModelTier::OpenWeights,
            baseline_model: "platform".into(),
            held_out,
            candidate_score: candidate,
            baseline_score: baseline,
        }
    }

    #[test]
    fn the_gate_promotes_a_candidate_at_least_as_good_on_enough_examples() {
        assert!(evaluation(MIN_HELD_OUT, 0.8, 0.8).passes());
        assert!(evaluation(10, 0.81, 0.8).passes());
        assert!(!evaluation(10, 0.79, 0.8).passes());
        assert!(!evaluation(MIN_HELD_OUT - 1, 0.9, 0.1).passes());
        assert!(!evaluation(10, f64::NAN, 0.1).passes());
    }

    #[test]
    fn an_example_scores_similarity_and_findings_overlap() {
        assert!((example_score(1.0, &[], &[]) - 1.0).abs() < 1e-9);
        assert!((example_score(0.5, &["Cap"], &["cap ", "Term"]) - (0.35 + 0.15)).abs() < 1e-9);
        assert!((example_score(0.0, &["A"], &["B"])).abs() < 1e-9);
    }

    #[test]
    fn about_one_decision_in_five_is_held_out() {
        let held = (0..2_000_u128)
            .map(|i| DecisionId::from_uuid(Uuid::from_u128(i)))
            .filter(|d| is_held_out(*d))
            .count();
        assert!((300..=500).contains(&held), "{held} of 2000");
    }

    #[test]
    fn an_artifact_belongs_to_the_tenant_whose_models_prefix_holds_it() {
        let tenant = TenantId::new();
        let artifact = |key: String| ModelArtifact {
            bucket: "artifacts".into(),
            key,
            size_bytes: 1,
            etag: "e".into(),
            format: ModelFormat::Gguf,
            base_model: None,
            training_job: None,
            metrics: BTreeMap::new(),
        };
        assert!(artifact(format!("{tenant}/models/job/model.gguf")).belongs_to(tenant));
        assert!(!artifact(format!("{tenant}/models/")).belongs_to(tenant));
        assert!(!artifact(format!("{tenant}/finetune/x.gguf")).belongs_to(tenant));
        assert!(!artifact(format!("{}/models/job/model.gguf", TenantId::new())).belongs_to(tenant));
    }
}
