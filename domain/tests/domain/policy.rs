use casebook_domain::policy::{
    route_model, should_auto_approve, Complexity, ModelPolicy, ModelTier, PlanTier, QueryFeatures,
    RoutingInput, TriageResult, LONG_QUERY_CHARS, MANY_ATTACHMENTS,
};
use casebook_domain::values::Confidence;

use crate::support::conf;

const ORDINARY: QueryFeatures = QueryFeatures {
    length_chars: 400,
    attachment_count: 1,
    flagged_hard: false,
};

fn triaged(complexity: Complexity, confidence: f64) -> Option<TriageResult> {
    Some(TriageResult {
        complexity,
        confidence: conf(confidence),
    })
}

fn route(
    plan: PlanTier,
    features: QueryFeatures,
    triage: Option<TriageResult>,
    prior_answers: &[Confidence],
) -> ModelTier {
    route_model(&RoutingInput {
        plan,
        policy: ModelPolicy::ByPlan,
        features,
        triage,
        prior_answers,
    })
}

#[test]
fn an_ordinary_query_is_triaged_first() {
    assert_eq!(
        route(PlanTier::Professional, ORDINARY, None, &[]),
        ModelTier::Triage
    );
}

#[test]
fn a_confident_triage_sends_the_query_to_the_standard_tier() {
    let simple = triaged(Complexity::Simple, 0.9);
    assert_eq!(
        route(PlanTier::Professional, ORDINARY, simple, &[]),
        ModelTier::Standard
    );
}

#[test]
fn hard_queries_go_to_the_strongest_tier() {
    let flagged = QueryFeatures {
        flagged_hard: true,
        ..ORDINARY
    };
    let long = QueryFeatures {
        length_chars: LONG_QUERY_CHARS + 1,
        ..ORDINARY
    };
    let many_files = QueryFeatures {
        attachment_count: MANY_ATTACHMENTS + 1,
        ..ORDINARY
    };
    for features in [flagged, long, many_files] {
        assert_eq!(
            route(PlanTier::Enterprise, features, None, &[]),
            ModelTier::Strongest
        );
    }
    let complex = triaged(Complexity::Complex, 0.9);
    assert_eq!(
        route(PlanTier::Enterprise, ORDINARY, complex, &[]),
        ModelTier::Strongest
    );
}

#[test]
fn low_confidence_escalates_one_tier() {
    let unsure_triage = triaged(Complexity::Simple, 0.3);
    assert_eq!(
        route(PlanTier::Professional, ORDINARY, unsure_triage, &[]),
        ModelTier::Strongest
    );
    let sure_triage = triaged(Complexity::Moderate, 0.9);
    assert_eq!(
        route(PlanTier::Professional, ORDINARY, sure_triage, &[conf(0.4)]),
        ModelTier::Strongest
    );
}

#[test]
fn repeated_low_confidence_escalates_only_once() {
    let lows = [conf(0.1), conf(0.2), conf(0.3)];
    assert_eq!(
        route(PlanTier::Professional, ORDINARY, None, &lows),
        ModelTier::Standard
    );
    let unsure_triage = triaged(Complexity::Simple, 0.1);
    assert_eq!(
        route(PlanTier::Professional, ORDINARY, unsure_triage, &lows),
        ModelTier::Strongest
    );
}

#[test]
fn a_cost_sensitive_plan_takes_open_weights_instead_of_the_strongest_tier() {
    let flagged = QueryFeatures {
        flagged_hard: true,
        ..ORDINARY
    };
    assert_eq!(
        route(PlanTier::CostSensitive, flagged, None, &[]),
        ModelTier::OpenWeights
    );
    let unsure = triaged(Complexity::Simple, 0.2);
    assert_eq!(
        route(PlanTier::CostSensitive, ORDINARY, unsure, &[]),
        ModelTier::OpenWeights
    );
    let sure = triaged(Complexity::Simple, 0.9);
    assert_eq!(
        route(PlanTier::CostSensitive, ORDINARY, sure, &[]),
        ModelTier::Standard
    );
}

#[test]
fn an_open_weights_only_policy_always_gets_open_weights() {
    let tier = route_model(&RoutingInput {
        plan: PlanTier::Enterprise,
        policy: ModelPolicy::OpenWeightsOnly,
        features: ORDINARY,
        triage: None,
        prior_answers: &[],
    });
    assert_eq!(tier, ModelTier::OpenWeights);
}

#[test]
fn auto_approval_needs_an_active_tenant_a_threshold_and_enough_confidence() {
    let threshold = Some(conf(0.8));
    assert!(should_auto_approve(threshold, conf(0.8), true));
    assert!(should_auto_approve(threshold, conf(0.95), true));
    assert!(!should_auto_approve(threshold, conf(0.79), true));
    assert!(!should_auto_approve(threshold, conf(0.95), false));
    assert!(!should_auto_approve(None, conf(1.0), true));
}
