//! Pure policies: which model answers a query, when a proposal resolves itself, how often a
//! diagnosis is retried.

use serde::{Deserialize, Serialize};

use crate::diagnosis::{Finding, Severity};
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

impl PlanTier {
    /// Every plan.
    pub const ALL: [PlanTier; 4] = [
        PlanTier::Starter,
        PlanTier::Professional,
        PlanTier::Enterprise,
        PlanTier::CostSensitive,
    ];

    /// The plan's name as stored and as the template's usage plans spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanTier::Starter => "starter",
            PlanTier::Professional => "professional",
            PlanTier::Enterprise => "enterprise",
            PlanTier::CostSensitive => "cost_sensitive",
        }
    }
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

/// One model answer within a diagnosis attempt, as [`next_call`] needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoutedAnswer {
    /// The tier that answered.
    pub tier: ModelTier,
    /// The answer's confidence.
    pub confidence: Confidence,
    /// How hard its findings make the query look ([`Complexity::of_findings`]).
    pub complexity: Complexity,
}

impl Complexity {
    /// A model's findings read as a verdict on the query: a high-severity finding makes it
    /// complex, a medium one moderate, anything milder (or none) simple.
    pub fn of_findings(findings: &[Finding]) -> Self {
        let severe = |severity| findings.iter().any(|f| f.severity == severity);
        if severe(Severity::High) {
            Self::Complex
        } else if severe(Severity::Medium) {
            Self::Moderate
        } else {
            Self::Simple
        }
    }
}

impl TriageResult {
    /// The triage model's answer as its verdict on the query.
    pub fn from_answer(answer: &RoutedAnswer) -> Self {
        Self {
            complexity: answer.complexity,
            confidence: answer.confidence,
        }
    }
}

/// What the diagnosis worker does next within one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextCall {
    /// Ask the model of this tier.
    Ask(ModelTier),
    /// Propose the last answer.
    Propose,
}

/// The next step of a diagnosis attempt whose model answers so far are `answers` (in order),
/// with the tiers [`route_model`] picks:
///
/// 1. Nothing asked yet: the routed tier (triage for an ordinary query; the strongest tier,
///    or open weights, for a hard one).
/// 2. After triage: a simple query the triage model answered confidently is proposed as
///    is (the cheap path); otherwise the query goes to the tier routed from the triage
///    verdict (the complexity of its findings, [`Complexity::of_findings`]), one tier up if
///    triage was unsure.
/// 3. After a diagnosis answer: a confident one is proposed; an unsure one is asked once
///    more, one tier up, unless the attempt has already escalated (from an unsure triage
///    or a first unsure answer) or no stronger tier is allowed. Escalation happens at most
///    once per attempt, and a cost-sensitive plan never reaches [`ModelTier::Strongest`].
pub fn next_call(
    plan: PlanTier,
    policy: ModelPolicy,
    features: QueryFeatures,
    answers: &[RoutedAnswer],
) -> NextCall {
    let (triage, diagnoses) = match answers.split_first() {
        Some((first, rest)) if first.tier == ModelTier::Triage => {
            (Some(TriageResult::from_answer(first)), rest)
        }
        _ => (None, answers),
    };
    let route = |prior_answers: &[Confidence]| {
        route_model(&RoutingInput {
            plan,
            policy,
            features,
            triage,
            prior_answers,
        })
    };
    let is_low = |confidence: Confidence| confidence.value() < LOW_CONFIDENCE;
    match (triage, diagnoses) {
        (None, []) => NextCall::Ask(route(&[])),
        (Some(verdict), []) => {
            if verdict.complexity == Complexity::Simple && !is_low(verdict.confidence) {
                NextCall::Propose
            } else {
                NextCall::Ask(route(&[]))
            }
        }
        (_, [only]) if is_low(only.confidence) => {
            // The one escalation: `route_model` escalates once however many low answers it
            // is given, so a tier equal to the one just asked means none is left.
            let escalated = route(&[only.confidence]);
            if escalated == only.tier {
                NextCall::Propose
            } else {
                NextCall::Ask(escalated)
            }
        }
        _ => NextCall::Propose,
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

#[cfg(test)]
mod tests {
    use super::*;

    const ORDINARY: QueryFeatures = QueryFeatures {
        length_chars: 200,
        attachment_count: 0,
        flagged_hard: false,
    };
    const HARD: QueryFeatures = QueryFeatures {
        flagged_hard: true,
        ..ORDINARY
    };

    fn answer(tier: ModelTier, confidence: f64, finding: Option<Severity>) -> RoutedAnswer {
        let findings: Vec<Finding> = finding
            .into_iter()
            .map(|severity| Finding {
                summary: "a finding".to_owned(),
                detail: None,
                severity,
            })
            .collect();
        RoutedAnswer {
            tier,
            confidence: Confidence::new(confidence).unwrap(),
            complexity: Complexity::of_findings(&findings),
        }
    }

    /// Plays a whole attempt: each asked tier answers with the next confidence of `script`
    /// (and `finding`); returns the tiers asked.
    fn play(
        plan: PlanTier,
        features: QueryFeatures,
        script: &[f64],
        finding: Option<Severity>,
    ) -> Vec<ModelTier> {
        let mut answers = Vec::new();
        let mut confidences = script.iter();
        while let NextCall::Ask(tier) = next_call(plan, ModelPolicy::ByPlan, features, &answers) {
            let confidence = confidences.next().expect("the script has an answer left");
            answers.push(answer(tier, *confidence, finding));
        }
        answers.iter().map(|a| a.tier).collect()
    }

    #[test]
    fn given_an_ordinary_query_when_triage_is_sure_it_is_simple_then_its_answer_is_proposed() {
        assert_eq!(
            play(PlanTier::Professional, ORDINARY, &[0.9], None),
            [ModelTier::Triage]
        );
    }

    #[test]
    fn given_a_moderate_triage_when_the_diagnosis_is_confident_then_it_is_proposed() {
        assert_eq!(
            play(
                PlanTier::Professional,
                ORDINARY,
                &[0.9, 0.8],
                Some(Severity::Medium)
            ),
            [ModelTier::Triage, ModelTier::Standard]
        );
    }

    #[test]
    fn given_a_low_confidence_diagnosis_when_routed_then_it_escalates_one_tier_once() {
        // Triage sure but moderate; the standard answer unsure; the strongest still unsure.
        assert_eq!(
            play(
                PlanTier::Professional,
                ORDINARY,
                &[0.9, 0.3, 0.2],
                Some(Severity::Medium)
            ),
            [ModelTier::Triage, ModelTier::Standard, ModelTier::Strongest]
        );
    }

    #[test]
    fn given_an_unsure_triage_when_the_escalated_answer_is_unsure_too_then_no_second_escalation() {
        assert_eq!(
            play(PlanTier::Enterprise, ORDINARY, &[0.2, 0.1], None),
            [ModelTier::Triage, ModelTier::Strongest]
        );
    }

    #[test]
    fn given_a_hard_query_when_the_strongest_is_unsure_then_it_is_proposed_anyway() {
        assert_eq!(
            play(PlanTier::Enterprise, HARD, &[0.1], None),
            [ModelTier::Strongest]
        );
    }

    #[test]
    fn given_a_cost_sensitive_plan_when_anything_happens_then_the_strongest_tier_is_never_asked() {
        for features in [ORDINARY, HARD] {
            for finding in [None, Some(Severity::Medium), Some(Severity::High)] {
                for script in [[0.9, 0.9, 0.9], [0.1, 0.1, 0.1], [0.9, 0.1, 0.1]] {
                    let tiers = play(PlanTier::CostSensitive, features, &script, finding);
                    assert!(!tiers.contains(&ModelTier::Strongest), "{tiers:?}");
                    let escalations = tiers.len().saturating_sub(2);
                    assert!(escalations <= 1, "{tiers:?}");
                }
            }
        }
        assert_eq!(
            play(
                PlanTier::CostSensitive,
                ORDINARY,
                &[0.9, 0.3, 0.3],
                Some(Severity::Medium)
            ),
            [
                ModelTier::Triage,
                ModelTier::Standard,
                ModelTier::OpenWeights
            ]
        );
    }

    #[test]
    fn given_an_open_weights_only_tenant_when_unsure_then_open_weights_answer_once() {
        let tiers = {
            let mut answers = Vec::new();
            while let NextCall::Ask(tier) = next_call(
                PlanTier::Enterprise,
                ModelPolicy::OpenWeightsOnly,
                ORDINARY,
                &answers,
            ) {
                answers.push(answer(tier, 0.1, None));
            }
            answers.iter().map(|a| a.tier).collect::<Vec<_>>()
        };
        assert_eq!(tiers, [ModelTier::OpenWeights]);
    }

    #[test]
    fn findings_read_as_a_verdict_by_the_most_severe() {
        let verdict = |finding| {
            TriageResult::from_answer(&answer(ModelTier::Triage, 0.7, finding)).complexity
        };
        assert_eq!(verdict(None), Complexity::Simple);
        assert_eq!(verdict(Some(Severity::Low)), Complexity::Simple);
        assert_eq!(verdict(Some(Severity::Medium)), Complexity::Moderate);
        assert_eq!(verdict(Some(Severity::High)), Complexity::Complex);
    }
}
