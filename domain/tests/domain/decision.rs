use casebook_domain::actor::{Actor, Role};
use casebook_domain::decision::{
    ConsultantDecision, DecisionCommand, DecisionError, DecisionEvent, Outcome, Verdict,
};
use casebook_domain::diagnosis::DiagnosisSnapshot;
use casebook_domain::error::AccessError;
use casebook_domain::ids::DecisionId;
use casebook_domain::policy::AutoApproveRefusal;
use casebook_domain::values::Confidence;
use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;

use crate::support::{actor, conf, user, v, DIAGNOSIS, OTHER_TENANT, TENANT};

fn decision() -> TestFramework<ConsultantDecision> {
    TestFramework::with(())
}

fn consultant() -> Actor {
    actor(Role::Consultant, TENANT)
}

fn proposed(confidence: f64) -> DiagnosisSnapshot {
    DiagnosisSnapshot {
        diagnosis_id: DIAGNOSIS,
        tenant_id: TENANT,
        proposed_confidence: Some(conf(confidence)),
        customer: Some(user(Role::Customer)),
    }
}

fn not_yet_proposed() -> DiagnosisSnapshot {
    DiagnosisSnapshot {
        proposed_confidence: None,
        ..proposed(0.0)
    }
}

fn approve(actor: Actor, diagnosis: DiagnosisSnapshot) -> DecisionCommand {
    DecisionCommand::Approve { actor, diagnosis }
}

fn auto_approve(
    confidence: f64,
    threshold: Option<Confidence>,
    tenant_active: bool,
) -> DecisionCommand {
    DecisionCommand::AutoApprove {
        actor: Actor::system(TENANT),
        diagnosis: proposed(confidence),
        threshold,
        tenant_active,
    }
}

fn made(verdict: Verdict, decided_by: Role) -> DecisionEvent {
    DecisionEvent::DecisionMade {
        decision_id: DecisionId::for_diagnosis(DIAGNOSIS),
        diagnosis_id: DIAGNOSIS,
        tenant_id: TENANT,
        verdict,
        decided_by: match decided_by {
            Role::System => Actor::system(TENANT).user_id,
            role => user(role),
        },
        customer: Some(user(Role::Customer)),
    }
}

fn approved() -> Vec<DecisionEvent> {
    vec![made(Verdict::Approved, Role::Consultant)]
}

#[test]
fn a_consultant_approves_a_proposal() {
    decision()
        .given_no_previous_events()
        .when(approve(consultant(), proposed(0.7)))
        .then_expect_events(approved());
}

#[test]
fn a_consultant_amends_a_proposal() {
    decision()
        .given_no_previous_events()
        .when(DecisionCommand::Amend {
            actor: consultant(),
            diagnosis: proposed(0.7),
            amended_text: v("An operating lease: no transfer of ownership."),
            reason: Some(v("Clause 14 keeps title with the lessor")),
        })
        .then_expect_events(vec![made(
            Verdict::Amended {
                text: v("An operating lease: no transfer of ownership."),
                reason: Some(v("Clause 14 keeps title with the lessor")),
            },
            Role::Consultant,
        )]);
}

#[test]
fn a_consultant_rejects_a_proposal_with_a_reason() {
    decision()
        .given_no_previous_events()
        .when(DecisionCommand::Reject {
            actor: consultant(),
            diagnosis: proposed(0.7),
            reason: v("Cites the superseded standard"),
        })
        .then_expect_events(vec![made(
            Verdict::Rejected {
                reason: v("Cites the superseded standard"),
            },
            Role::Consultant,
        )]);
}

#[test]
fn a_decision_needs_a_proposal() {
    decision()
        .given_no_previous_events()
        .when(approve(consultant(), not_yet_proposed()))
        .then_expect_error(DecisionError::NotProposed);
}

#[test]
fn a_diagnosis_is_decided_once() {
    decision()
        .given(approved())
        .when(DecisionCommand::Reject {
            actor: consultant(),
            diagnosis: proposed(0.7),
            reason: v("Changed my mind"),
        })
        .then_expect_error(DecisionError::AlreadyDecided);
    decision()
        .given(approved())
        .when(auto_approve(0.99, Some(conf(0.5)), true))
        .then_expect_error(DecisionError::AlreadyDecided);
}

#[test]
fn another_tenants_consultant_cannot_decide() {
    decision()
        .given_no_previous_events()
        .when(approve(
            actor(Role::Consultant, OTHER_TENANT),
            proposed(0.7),
        ))
        .then_expect_error(DecisionError::Access(AccessError::NotFound));
}

#[test]
fn another_tenants_consultant_cannot_learn_a_decision_exists() {
    decision()
        .given(approved())
        .when(approve(
            actor(Role::Consultant, OTHER_TENANT),
            proposed(0.7),
        ))
        .then_expect_error(DecisionError::Access(AccessError::NotFound));
}

#[test]
fn only_consultants_decide_by_hand() {
    for role in [Role::Customer, Role::Admin, Role::Auditor, Role::System] {
        decision()
            .given_no_previous_events()
            .when(approve(actor(role, TENANT), proposed(0.7)))
            .then_expect_error(DecisionError::Access(AccessError::Forbidden { role }));
    }
}

#[test]
fn the_system_auto_approves_at_the_threshold() {
    decision()
        .given_no_previous_events()
        .when(auto_approve(0.9, Some(conf(0.9)), true))
        .then_expect_events(vec![made(
            Verdict::AutoApproved {
                threshold: conf(0.9),
                confidence: conf(0.9),
            },
            Role::System,
        )]);
}

#[test]
fn auto_approval_below_the_threshold_is_refused() {
    decision()
        .given_no_previous_events()
        .when(auto_approve(0.89, Some(conf(0.9)), true))
        .then_expect_error(DecisionError::AutoApproveRefused(
            AutoApproveRefusal::BelowThreshold {
                confidence: conf(0.89),
                threshold: conf(0.9),
            },
        ));
}

#[test]
fn auto_approval_needs_a_threshold() {
    decision()
        .given_no_previous_events()
        .when(auto_approve(1.0, None, true))
        .then_expect_error(DecisionError::AutoApproveRefused(
            AutoApproveRefusal::Disabled,
        ));
}

#[test]
fn a_suspended_tenant_is_not_auto_approved() {
    decision()
        .given_no_previous_events()
        .when(auto_approve(1.0, Some(conf(0.5)), false))
        .then_expect_error(DecisionError::AutoApproveRefused(
            AutoApproveRefusal::TenantSuspended,
        ));
}

#[test]
fn only_the_system_auto_approves() {
    decision()
        .given_no_previous_events()
        .when(DecisionCommand::AutoApprove {
            actor: consultant(),
            diagnosis: proposed(0.99),
            threshold: Some(conf(0.5)),
            tenant_active: true,
        })
        .then_expect_error(DecisionError::Access(AccessError::Forbidden {
            role: Role::Consultant,
        }));
}

#[test]
fn auto_approval_needs_a_proposal() {
    decision()
        .given_no_previous_events()
        .when(DecisionCommand::AutoApprove {
            actor: Actor::system(TENANT),
            diagnosis: not_yet_proposed(),
            threshold: Some(conf(0.5)),
            tenant_active: true,
        })
        .then_expect_error(DecisionError::NotProposed);
}

#[test]
fn the_decision_reports_its_outcome() {
    let mut decision = ConsultantDecision::default();
    assert_eq!(decision.outcome(), None);
    approved().into_iter().for_each(|e| decision.apply(e));
    assert_eq!(decision.outcome(), Some(Outcome::Approved));
}

#[test]
fn amending_needs_a_proposal() {
    decision()
        .given_no_previous_events()
        .when(DecisionCommand::Amend {
            actor: consultant(),
            diagnosis: not_yet_proposed(),
            amended_text: v("An operating lease."),
            reason: None,
        })
        .then_expect_error(DecisionError::NotProposed);
}

#[test]
fn refusals_are_conflicts_and_a_foreign_diagnosis_is_not_found() {
    use casebook_domain::error::{DomainError, ErrorKind};
    assert_eq!(DecisionError::AlreadyDecided.kind(), ErrorKind::Conflict);
    assert_eq!(
        DecisionError::AutoApproveRefused(AutoApproveRefusal::Disabled).kind(),
        ErrorKind::Conflict
    );
    assert_eq!(
        DecisionError::Access(AccessError::NotFound).kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn a_decision_is_stored_in_a_stable_json_shape() {
    let event = made(
        Verdict::AutoApproved {
            threshold: conf(0.9),
            confidence: conf(0.95),
        },
        Role::System,
    );
    let json = serde_json::to_value(&event).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({
            "type": "DecisionMade",
            "decision_id": DIAGNOSIS.to_string(),
            "diagnosis_id": DIAGNOSIS.to_string(),
            "tenant_id": TENANT.to_string(),
            "verdict": { "kind": "AutoApproved", "threshold": 0.9, "confidence": 0.95 },
            "decided_by": "casebook:system",
            "customer": user(Role::Customer).as_str(),
        })
    );
    assert_eq!(
        serde_json::from_value::<DecisionEvent>(json).ok(),
        Some(event)
    );
}
