//! Monthly token budgets: each plan's budget, the month it is spent in, the thresholds
//! reported once a month, and diagnoses deferred while it is spent.

use casebook_domain::actor::{Actor, Role};
use casebook_domain::budget::{BudgetMonth, BudgetThreshold, BudgetUse};
use casebook_domain::diagnosis::{
    Deferral, Diagnosis, DiagnosisCommand, DiagnosisError, DiagnosisEvent, DiagnosisStatus,
};
use casebook_domain::ids::{QueryId, SessionId};
use casebook_domain::policy::PlanTier;
use casebook_domain::tenant::{Tenant, TenantCommand, TenantError, TenantEvent};
use chrono::{NaiveDate, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use uuid::Uuid;

use crate::support::{actor, onboarded, user, v, DIAGNOSIS, TENANT};

fn month(text: &str) -> BudgetMonth {
    text.parse().expect("test month is valid")
}

fn use_of(month_text: &str, tokens_used: u64) -> BudgetUse {
    BudgetUse {
        month: month(month_text),
        tokens_used,
        tokens_budget: 1_000,
    }
}

fn system() -> Actor {
    Actor::system(TENANT)
}

#[test]
fn every_plan_has_a_budget_and_larger_plans_larger_ones() {
    let budget = PlanTier::monthly_token_budget;
    assert!(PlanTier::ALL.iter().all(|plan| budget(*plan) > 0));
    assert!(budget(PlanTier::Starter) < budget(PlanTier::Professional));
    assert!(budget(PlanTier::Professional) < budget(PlanTier::Enterprise));
}

#[test]
fn a_month_is_the_utc_calendar_month_and_renews_on_the_first_of_the_next() {
    let late = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
    let december = BudgetMonth::of(late);
    assert_eq!(december.to_string(), "2026-12");
    assert_eq!(
        december.first_day(),
        NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
    );
    assert_eq!(
        december.last_day(),
        NaiveDate::from_ymd_opt(2026, 12, 31).unwrap()
    );
    assert_eq!(
        december.renews_on(),
        NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()
    );
    let next = BudgetMonth::of(Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
    assert_eq!(BudgetMonth::containing(december.renews_on()), next);
    assert!(december < next);
    assert_eq!(
        serde_json::to_value(december).unwrap(),
        serde_json::json!("2026-12")
    );
    assert!("2026-13".parse::<BudgetMonth>().is_err());
}

#[test]
fn thresholds_are_reached_at_80_and_100_percent() {
    let reached = |used| {
        use_of("2026-12", used)
            .thresholds_reached()
            .collect::<Vec<_>>()
    };
    assert_eq!(reached(799), vec![]);
    assert_eq!(reached(800), vec![BudgetThreshold::Approaching]);
    assert_eq!(
        reached(1_000),
        vec![BudgetThreshold::Approaching, BudgetThreshold::Spent]
    );
    assert!(!use_of("2026-12", 999).is_spent());
    assert!(use_of("2026-12", 1_200).is_spent());
    assert_eq!(use_of("2026-12", 1_200).remaining(), 0);
    assert_eq!(use_of("2026-12", 250).remaining(), 750);
    assert_eq!(
        serde_json::to_value(BudgetThreshold::Approaching).unwrap(),
        serde_json::json!(80)
    );
}

fn tenant() -> TestFramework<Tenant> {
    TestFramework::with(())
}

fn record(threshold: BudgetThreshold, budget: BudgetUse) -> TenantCommand {
    TenantCommand::RecordBudgetThreshold {
        actor: system(),
        threshold,
        budget,
    }
}

fn crossed(threshold: BudgetThreshold, budget: BudgetUse) -> TenantEvent {
    TenantEvent::TokenBudgetThresholdCrossed { threshold, budget }
}

#[test]
fn the_system_records_a_threshold_crossed() {
    tenant()
        .given(onboarded())
        .when(record(BudgetThreshold::Approaching, use_of("2026-12", 850)))
        .then_expect_events(vec![crossed(
            BudgetThreshold::Approaching,
            use_of("2026-12", 850),
        )]);
}

#[test]
fn a_threshold_is_recorded_once_a_month() {
    let mut history = onboarded();
    history.push(crossed(
        BudgetThreshold::Approaching,
        use_of("2026-12", 850),
    ));
    tenant()
        .given(history.clone())
        .when(record(BudgetThreshold::Approaching, use_of("2026-12", 900)))
        .then_expect_error(TenantError::BudgetThresholdAlreadyRecorded {
            month: month("2026-12"),
            threshold: BudgetThreshold::Approaching,
        });
    tenant()
        .given(history.clone())
        .when(record(BudgetThreshold::Spent, use_of("2026-12", 1_000)))
        .then_expect_events(vec![crossed(
            BudgetThreshold::Spent,
            use_of("2026-12", 1_000),
        )]);
    tenant()
        .given(history)
        .when(record(BudgetThreshold::Approaching, use_of("2027-01", 800)))
        .then_expect_events(vec![crossed(
            BudgetThreshold::Approaching,
            use_of("2027-01", 800),
        )]);
}

#[test]
fn a_month_before_the_last_recorded_one_is_over() {
    let mut history = onboarded();
    history.push(crossed(
        BudgetThreshold::Approaching,
        use_of("2027-01", 850),
    ));
    let mut replayed = Tenant::default();
    history.iter().cloned().for_each(|e| replayed.apply(e));
    assert!(replayed.budget_threshold_recorded(month("2026-12"), BudgetThreshold::Spent));
    assert!(!replayed.budget_threshold_recorded(month("2027-01"), BudgetThreshold::Spent));
    tenant()
        .given(history)
        .when(record(BudgetThreshold::Spent, use_of("2026-12", 1_000)))
        .then_expect_error(TenantError::BudgetThresholdAlreadyRecorded {
            month: month("2026-12"),
            threshold: BudgetThreshold::Spent,
        });
}

#[test]
fn only_the_system_records_a_threshold() {
    let result = tenant()
        .given(onboarded())
        .when(TenantCommand::RecordBudgetThreshold {
            actor: actor(Role::Admin, TENANT),
            threshold: BudgetThreshold::Spent,
            budget: use_of("2026-12", 1_000),
        })
        .inspect_result();
    assert!(matches!(result, Err(TenantError::Access(_))));
}

fn diagnosis() -> TestFramework<Diagnosis> {
    TestFramework::with(())
}

fn requested() -> Vec<DiagnosisEvent> {
    vec![DiagnosisEvent::DiagnosisRequested {
        diagnosis_id: DIAGNOSIS,
        tenant_id: TENANT,
        session_id: SessionId::from_uuid(Uuid::from_u128(0x5E)),
        query_id: QueryId::from_uuid(Uuid::from_u128(0x01)),
        query: v("Is this lease a finance lease?"),
        requested_by: user(Role::Customer),
    }]
}

fn spent() -> Deferral {
    Deferral::Budget {
        budget: use_of("2026-12", 1_000),
    }
}

fn deferred_after(before: Vec<DiagnosisEvent>) -> Vec<DiagnosisEvent> {
    let mut events = before;
    events.push(DiagnosisEvent::DiagnosisDeferred { deferral: spent() });
    events
}

fn replay(events: Vec<DiagnosisEvent>) -> Diagnosis {
    let mut diagnosis = Diagnosis::default();
    events.into_iter().for_each(|e| diagnosis.apply(e));
    diagnosis
}

#[test]
fn the_system_defers_a_requested_diagnosis_while_the_budget_is_spent() {
    diagnosis()
        .given(requested())
        .when(DiagnosisCommand::Defer {
            actor: system(),
            deferral: spent(),
        })
        .then_expect_events(vec![DiagnosisEvent::DiagnosisDeferred {
            deferral: spent(),
        }]);
    assert_eq!(
        replay(deferred_after(requested())).status(),
        Some(DiagnosisStatus::DeferredBudget)
    );
}

#[test]
fn a_deferred_diagnosis_resumes_where_it_was_put_aside() {
    let failed = {
        let mut events = requested();
        events.push(DiagnosisEvent::ContextRetrieved {
            attempt: 1,
            judgments: vec![],
        });
        events.push(DiagnosisEvent::DiagnosisFailed {
            attempt: 1,
            reason: v("model throttled"),
            retryable: true,
        });
        events
    };
    diagnosis()
        .given(deferred_after(failed.clone()))
        .when(DiagnosisCommand::Resume { actor: system() })
        .then_expect_events(vec![DiagnosisEvent::DiagnosisResumed {
            to: DiagnosisStatus::Failed { retryable: true },
        }]);
    let mut resumed = deferred_after(failed);
    resumed.push(DiagnosisEvent::DiagnosisResumed {
        to: DiagnosisStatus::Failed { retryable: true },
    });
    assert_eq!(
        replay(resumed).status(),
        Some(DiagnosisStatus::Failed { retryable: true })
    );
}

#[test]
fn only_a_diagnosis_awaiting_an_attempt_is_deferred_and_only_a_deferred_one_resumed() {
    let mut resumed = deferred_after(requested());
    resumed.push(DiagnosisEvent::DiagnosisResumed {
        to: DiagnosisStatus::Requested,
    });
    diagnosis()
        .given(deferred_after(requested()))
        .when(DiagnosisCommand::Defer {
            actor: system(),
            deferral: spent(),
        })
        .then_expect_error(DiagnosisError::IllegalTransition {
            command: "defer",
            status: DiagnosisStatus::DeferredBudget,
        });
    diagnosis()
        .given(resumed)
        .when(DiagnosisCommand::Resume { actor: system() })
        .then_expect_error(DiagnosisError::IllegalTransition {
            command: "resume",
            status: DiagnosisStatus::Requested,
        });
}

#[test]
fn a_customer_can_neither_defer_nor_resume() {
    for command in [
        DiagnosisCommand::Defer {
            actor: actor(Role::Customer, TENANT),
            deferral: spent(),
        },
        DiagnosisCommand::Resume {
            actor: actor(Role::Customer, TENANT),
        },
    ] {
        let result = diagnosis()
            .given(deferred_after(requested()))
            .when(command)
            .inspect_result();
        assert!(matches!(result, Err(DiagnosisError::Access(_))));
    }
}
