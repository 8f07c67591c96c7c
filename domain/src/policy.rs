//! Pure policies: which model answers a query, when a proposal resolves itself, how often a
//! diagnosis is retried.

use serde::{Deserialize, Serialize};

use crate::values::Confidence;

/// A tenant's subscription plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanTier {
    /// Entry plan.
    Starter,
    /// Standard paid plan.
    Professional,
    /// Large practices.
    Enterprise,
    /// Lowest cost per query: never routed to the strongest (most expensive) models.
    CostSensitive,
}

/// Which models a tenant allows for its data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelPolicy {
    /// Route by plan and query (see [`route_model`]).
    #[default]
    ByPlan,
    /// Only open-weights models, whatever the query.
    OpenWeightsOnly,
}

/// A class of model, from cheapest to strongest, plus open-weights models run by the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelTier {
    /// A cheap, fast model that sizes up the query first.
    Triage,
    /// The usual diagnosis model.
    Standard,
    /// The strongest model, for hard or low-confidence cases.
    Strongest,
    /// An open-weights model: the cost-sensitive and open-weights-only choice.
    OpenWeights,
}

impl ModelTier {
    /// One tier stronger; the strongest and open-weights tiers stay where they are.
    pub fn escalated(self) -> Self {
        match self {
            Self::Triage => Self::Standard,
            Self::Standard | Self::Strongest => Self::Strongest,
            Self::OpenWeights => Self::OpenWeights,
        }
    }
}

/// A query longer than this (in characters) goes straight to the strongest tier.
pub const LONG_QUERY_CHARS: usize = 4_000;
/// More attachments than this make a query hard.
pub const MANY_ATTACHMENTS: usize = 3;
/// An answer below this confidence escalates the next attempt by one tier.
pub const LOW_CONFIDENCE: f64 = 0.6;
/// Attempts a diagnosis gets before a failure becomes final.
pub const MAX_DIAGNOSIS_ATTEMPTS: u32 = 3;

/// What is known about a query before choosing its model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryFeatures {
    /// Length of the query text in characters.
    pub length_chars: usize,
    /// Number of attachments in the session.
    pub attachment_count: usize,
    /// A person flagged the query as hard.
    pub flagged_hard: bool,
}

/// How hard the triage model judged a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Complexity {
    /// Routine.
    Simple,
    /// Needs the standard model.
    Moderate,
    /// Needs the strongest model.
    Complex,
}

/// The triage model's verdict on a query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TriageResult {
    /// How hard the query is.
    pub complexity: Complexity,
    /// How sure the triage model is.
    pub confidence: Confidence,
}

/// Everything [`route_model`] decides from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoutingInput<'a> {
    /// The tenant's plan.
    pub plan: PlanTier,
    /// The tenant's model policy.
    pub policy: ModelPolicy,
    /// The query's features.
    pub features: QueryFeatures,
    /// The triage verdict, once triage has run.
    pub triage: Option<TriageResult>,
    /// The confidence of each earlier answer to this query (retries after a low-confidence proposal).
    pub prior_answers: &'a [Confidence],
}

/// Chooses the model tier for the next call on a query.
///
/// - A hard query (flagged, long, many attachments, or triaged complex) goes to the strongest tier;
///   otherwise an untriaged query goes to triage first, and a triaged one to the standard tier.
/// - Low confidence (from triage or any earlier answer) escalates one tier, and only once.
/// - A cost-sensitive plan takes open weights where it would reach the strongest tier;
///   an open-weights-only policy always does.
pub fn route_model(input: &RoutingInput<'_>) -> ModelTier {
    if input.policy == ModelPolicy::OpenWeightsOnly {
        return ModelTier::OpenWeights;
    }
    let features = input.features;
    let hard = features.flagged_hard
        || features.length_chars > LONG_QUERY_CHARS
        || features.attachment_count > MANY_ATTACHMENTS
        || input
            .triage
            .is_some_and(|t| t.complexity == Complexity::Complex);
    let base = match (hard, input.triage) {
        (true, _) => ModelTier::Strongest,
        (false, None) => ModelTier::Triage,
        (false, Some(_)) => ModelTier::Standard,
    };
    let is_low = |c: Confidence| c.value() < LOW_CONFIDENCE;
    let low_confidence = input.triage.is_some_and(|t| is_low(t.confidence))
        || input.prior_answers.iter().copied().any(is_low);
    let tier = if low_confidence {
        base.escalated()
    } else {
        base
    };
    match (input.plan, tier) {
        (PlanTier::CostSensitive, ModelTier::Strongest) => ModelTier::OpenWeights,
        _ => tier,
    }
}

/// Why a proposal may not be auto-approved.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum AutoApproveRefusal {
    /// The tenant is suspended.
    #[error("the tenant is suspended")]
    TenantSuspended,
    /// The tenant has no auto-resolve threshold.
    #[error("auto-resolve is disabled for this tenant")]
    Disabled,
    /// The proposal's confidence is below the tenant's threshold.
    #[error("confidence {confidence} is below the auto-resolve threshold {threshold}")]
    BelowThreshold {
        /// The proposal's confidence.
        confidence: Confidence,
        /// The tenant's threshold.
        threshold: Confidence,
    },
}

/// Checks whether a proposal with `confidence` may be approved without review: the tenant must
/// be active and have a threshold, and the confidence must be at or above it. Returns the
/// threshold that allowed it.
pub fn check_auto_approval(
    threshold: Option<Confidence>,
    confidence: Confidence,
    tenant_active: bool,
) -> Result<Confidence, AutoApproveRefusal> {
    if !tenant_active {
        return Err(AutoApproveRefusal::TenantSuspended);
    }
    let threshold = threshold.ok_or(AutoApproveRefusal::Disabled)?;
    if confidence >= threshold {
        Ok(threshold)
    } else {
        Err(AutoApproveRefusal::BelowThreshold {
            confidence,
            threshold,
        })
    }
}

/// Whether a proposal with `confidence` may be approved without review (see [`check_auto_approval`]).
pub fn should_auto_approve(
    threshold: Option<Confidence>,
    confidence: Confidence,
    tenant_active: bool,
) -> bool {
    check_auto_approval(threshold, confidence, tenant_active).is_ok()
}
