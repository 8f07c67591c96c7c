use casebook_domain::actor::{Actor, Role};
use casebook_domain::decision::Outcome;
use casebook_domain::error::AccessError;
use casebook_domain::ids::{DecisionId, JudgmentId};
use casebook_domain::judgment::{
    DecisionSnapshot, Judgment, JudgmentCommand, JudgmentContent, JudgmentError, JudgmentEvent,
    JudgmentOrigin,
};
use cqrs_es::test::TestFramework;
use uuid::Uuid;

use crate::support::{actor, user, v, DIAGNOSIS, OTHER_TENANT, TENANT};

const AUTHORED: JudgmentId = JudgmentId::from_uuid(Uuid::from_u128(0x70));

fn judgment() -> TestFramework<Judgment> {
    TestFramework::with(())
}

fn consultant() -> Actor {
    actor(Role::Consultant, TENANT)
}

fn content() -> JudgmentContent {
    JudgmentContent {
        title: v("Leases with title transfer"),
        body: v("Ownership passing at term end makes it a finance lease."),
        tags: vec![v("leases"), v("ifrs-16")],
    }
}

fn revised_content() -> JudgmentContent {
    JudgmentContent {
        body: v("Ownership passing at term end, or a bargain purchase option, makes it a finance lease."),
        ..content()
    }
}

fn decided(outcome: Outcome) -> DecisionSnapshot {
    DecisionSnapshot {
        decision_id: DecisionId::for_diagnosis(DIAGNOSIS),
        diagnosis_id: DIAGNOSIS,
        tenant_id: TENANT,
        outcome,
        customer: Some(user(Role::Customer)),
    }
}

fn capture(actor: Actor, decision: DecisionSnapshot) -> JudgmentCommand {
    JudgmentCommand::CaptureFromDecision {
        actor,
        decision,
        content: content(),
    }
}

fn authored() -> Vec<JudgmentEvent> {
    vec![JudgmentEvent::JudgmentCaptured {
        judgment_id: AUTHORED,
        tenant_id: TENANT,
        origin: JudgmentOrigin::Authored,
        content: content(),
        captured_by: user(Role::Consultant),
    }]
}

fn retired() -> Vec<JudgmentEvent> {
    let mut events = authored();
    events.push(JudgmentEvent::JudgmentRetired {
        reason: v("Superseded by the 2025 guidance"),
        retired_by: user(Role::Consultant),
    });
    events
}

#[test]
fn the_system_captures_an_approved_or_amended_decision() {
    for outcome in [Outcome::Approved, Outcome::Amended] {
        let decision_id = DecisionId::for_diagnosis(DIAGNOSIS);
        judgment()
            .given_no_previous_events()
            .when(capture(Actor::system(TENANT), decided(outcome)))
            .then_expect_events(vec![JudgmentEvent::JudgmentCaptured {
                judgment_id: JudgmentId::for_decision(decision_id),
                tenant_id: TENANT,
                origin: JudgmentOrigin::Decision {
                    decision_id,
                    diagnosis_id: DIAGNOSIS,
                    customer: Some(user(Role::Customer)),
                },
                content: content(),
                captured_by: Actor::system(TENANT).user_id,
            }]);
    }
}

#[test]
fn rejected_and_auto_approved_decisions_are_not_captured() {
    for outcome in [Outcome::Rejected, Outcome::AutoApproved] {
        judgment()
            .given_no_previous_events()
            .when(capture(Actor::system(TENANT), decided(outcome)))
            .then_expect_error(JudgmentError::NotCapturable { outcome });
    }
}

#[test]
fn a_decision_is_captured_once() {
    let first = judgment()
        .given_no_previous_events()
        .when(capture(Actor::system(TENANT), decided(Outcome::Approved)))
        .inspect_result()
        .expect("first capture is accepted");
    judgment()
        .given(first)
        .when(capture(Actor::system(TENANT), decided(Outcome::Approved)))
        .then_expect_error(JudgmentError::AlreadyExists);
}

#[test]
fn only_the_system_captures_from_decisions() {
    judgment()
        .given_no_previous_events()
        .when(capture(consultant(), decided(Outcome::Approved)))
        .then_expect_error(JudgmentError::Access(AccessError::Forbidden {
            role: Role::Consultant,
        }));
}

#[test]
fn another_tenants_decision_is_not_found() {
    judgment()
        .given_no_previous_events()
        .when(capture(
            Actor::system(OTHER_TENANT),
            decided(Outcome::Approved),
        ))
        .then_expect_error(JudgmentError::Access(AccessError::NotFound));
}

#[test]
fn a_consultant_authors_a_judgment() {
    judgment()
        .given_no_previous_events()
        .when(JudgmentCommand::Author {
            actor: consultant(),
            judgment_id: AUTHORED,
            content: content(),
        })
        .then_expect_events(authored());
}

#[test]
fn a_customer_cannot_author_judgment() {
    judgment()
        .given_no_previous_events()
        .when(JudgmentCommand::Author {
            actor: actor(Role::Customer, TENANT),
            judgment_id: AUTHORED,
            content: content(),
        })
        .then_expect_error(JudgmentError::Access(AccessError::Forbidden {
            role: Role::Customer,
        }));
}

#[test]
fn authoring_an_existing_judgment_is_refused() {
    judgment()
        .given(authored())
        .when(JudgmentCommand::Author {
            actor: consultant(),
            judgment_id: AUTHORED,
            content: content(),
        })
        .then_expect_error(JudgmentError::AlreadyExists);
}

#[test]
fn a_consultant_revises_a_judgment() {
    judgment()
        .given(authored())
        .when(JudgmentCommand::Revise {
            actor: consultant(),
            content: revised_content(),
        })
        .then_expect_events(vec![JudgmentEvent::JudgmentRevised {
            content: revised_content(),
            revised_by: user(Role::Consultant),
        }]);
}

#[test]
fn a_retired_judgment_cannot_be_revised() {
    judgment()
        .given(retired())
        .when(JudgmentCommand::Revise {
            actor: consultant(),
            content: revised_content(),
        })
        .then_expect_error(JudgmentError::Retired);
}

#[test]
fn another_tenants_consultant_cannot_revise() {
    judgment()
        .given(authored())
        .when(JudgmentCommand::Revise {
            actor: actor(Role::Consultant, OTHER_TENANT),
            content: revised_content(),
        })
        .then_expect_error(JudgmentError::Access(AccessError::NotFound));
}

#[test]
fn a_consultant_retires_a_judgment() {
    judgment()
        .given(authored())
        .when(JudgmentCommand::Retire {
            actor: consultant(),
            reason: v("Superseded by the 2025 guidance"),
        })
        .then_expect_events(retired()[1..].to_vec());
}

#[test]
fn retiring_twice_is_refused() {
    judgment()
        .given(retired())
        .when(JudgmentCommand::Retire {
            actor: consultant(),
            reason: v("again"),
        })
        .then_expect_error(JudgmentError::Retired);
}

#[test]
fn retiring_a_missing_judgment_is_not_found() {
    judgment()
        .given_no_previous_events()
        .when(JudgmentCommand::Retire {
            actor: consultant(),
            reason: v("never existed"),
        })
        .then_expect_error(JudgmentError::Access(AccessError::NotFound));
}
