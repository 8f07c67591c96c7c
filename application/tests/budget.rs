//! Monthly token budgets, in memory: given a tenant's use of its plan's budget, when its
//! diagnoses are worked, its plan changes or a new month starts, then what is deferred,
//! resumed, recorded and counted.

#[allow(dead_code)]
mod support;

use std::sync::Arc;

use casebook_application::budget::{BudgetResume, BudgetResumption, Resumption, TenantResumed};
use casebook_application::jobs::TenantDirectory;
use casebook_application::ports::{BoxError, Clock};
use casebook_application::reactions::{Delivered, Reaction};
use casebook_application::RequestContext;
use casebook_domain::actor::{Actor, Role};
use casebook_domain::any_event::AnyEvent;
use casebook_domain::budget::{BudgetMonth, BudgetThreshold, BudgetUse};
use casebook_domain::diagnosis::{Deferral, DiagnosisEvent, DiagnosisStatus};
use casebook_domain::ids::TenantId;
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::policy::{ModelTier, PlanTier};
use casebook_domain::ports::LlmError;
use casebook_domain::tenant::{TenantCommand, TenantEvent};
use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::DomainEvent;
use support::{ctx, Counted, Scenario};

const QUESTION: &str = "Is the indemnity cap enforceable?";
/// Tokens of one scripted answer (1,000 in, 100 out).
const ANSWER_TOKENS: u64 = 1_100;

fn starter_budget() -> u64 {
    PlanTier::Starter.monthly_token_budget()
}

/// A starter tenant whose model answers confidently, as often as asked.
async fn starter(answers: usize) -> Scenario {
    Scenario::on_plan(
        PlanTier::Starter,
        vec![(ModelTier::Triage, 0.9, None, "haiku"); answers],
    )
    .await
}

fn month(scenario: &Scenario) -> BudgetMonth {
    BudgetMonth::of(scenario.clock.now())
}

fn next_month() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 1, 1, 0, 10, 0).unwrap()
}

/// The thresholds recorded on the scenario's tenant, in order.
fn thresholds(scenario: &Scenario) -> Vec<(BudgetMonth, BudgetThreshold)> {
    scenario
        .stores
        .tenants
        .events(&scenario.tenant.to_string())
        .into_iter()
        .filter_map(|event| match event {
            TenantEvent::TokenBudgetThresholdCrossed { threshold, budget } => {
                Some((budget.month, threshold))
            }
            _ => None,
        })
        .collect()
}

fn crossed(counted: &Counted, percent: &str) -> u64 {
    counted.of("TokenBudgetThresholdCrossed", &[("Threshold", percent)])
}

fn deferred(counted: &Counted) -> u64 {
    counted.of("DiagnosesDeferred", &[("Reason", "budget")])
}

fn resumption(scenario: &Scenario) -> Resumption {
    Resumption::new(scenario.budgets(), scenario.stores.diagnoses.clone())
}

/// The scenario's one tenant.
struct OneTenant(TenantId);

#[async_trait::async_trait]
impl TenantDirectory for OneTenant {
    async fn tenants(&self) -> Result<Vec<TenantId>, BoxError> {
        Ok(vec![self.0])
    }
}

fn job(scenario: &Scenario) -> BudgetResume {
    BudgetResume::new(Arc::new(OneTenant(scenario.tenant)), resumption(scenario))
}

/// The operator moves the tenant to `plan`; the `PlanChanged` event as the log delivers it.
async fn plan_changed(scenario: &Scenario, plan: PlanTier) -> Delivered {
    let operator = ctx(scenario.tenant, Role::Operator, "operator");
    scenario
        .service
        .administer_tenant(
            &operator,
            TenantCommand::ChangePlan {
                actor: operator.actor.clone(),
                plan,
            },
        )
        .await
        .expect("plan changed");
    let id = scenario.tenant.to_string();
    let events = scenario.stores.tenants.events(&id);
    let event = events.last().cloned().expect("the plan change");
    Delivered {
        aggregate_type: "Tenant".to_owned(),
        aggregate_id: id,
        event_type: event.event_type(),
        sequence: events.len() as i64,
        global_position: 0,
        recorded_at: Utc::now(),
        event: AnyEvent::Tenant(event),
        metadata: operator.metadata,
    }
}

#[tokio::test]
async fn while_the_budget_is_spent_a_diagnosis_is_deferred_without_asking_a_model() {
    let counted = Counted::default();
    let _recorder = counted.install();
    let scenario = starter(0).await;
    scenario
        .ledger
        .spend(scenario.tenant, month(&scenario), starter_budget());
    let diagnosis = scenario.asked(QUESTION, vec![]).await;

    scenario.diagnose(diagnosis).await.expect("handled");

    assert_eq!(
        scenario.event_types(diagnosis),
        ["DiagnosisRequested", "DiagnosisDeferred"]
    );
    let events = scenario.stores.diagnoses.events(&diagnosis.to_string());
    let DiagnosisEvent::DiagnosisDeferred {
        deferral: Deferral::Budget { budget },
    } = &events[1]
    else {
        panic!("a budget deferral: {events:?}");
    };
    assert_eq!(
        (budget.month, budget.tokens_used, budget.tokens_budget),
        (month(&scenario), starter_budget(), starter_budget())
    );
    assert!(scenario.llm.asked().is_empty());
    assert!(scenario.embedder.texts.lock().unwrap().is_empty());
    assert_eq!(deferred(&counted), 1);
    // The spent budget was not recorded yet: both thresholds are, once each.
    assert_eq!(
        thresholds(&scenario),
        [
            (month(&scenario), BudgetThreshold::Approaching),
            (month(&scenario), BudgetThreshold::Spent)
        ]
    );
    assert_eq!((crossed(&counted, "80"), crossed(&counted, "100")), (1, 1));
}

#[tokio::test]
async fn a_redelivered_request_for_a_deferred_diagnosis_defers_and_counts_nothing_more() {
    let counted = Counted::default();
    let _recorder = counted.install();
    let scenario = starter(0).await;
    scenario
        .ledger
        .spend(scenario.tenant, month(&scenario), starter_budget());
    let diagnosis = scenario.asked(QUESTION, vec![]).await;

    for _ in 0..2 {
        scenario.diagnose(diagnosis).await.expect("handled");
    }
    let second = scenario.asked(QUESTION, vec![]).await;
    scenario.diagnose(second).await.expect("handled");

    assert_eq!(
        scenario.event_types(diagnosis),
        ["DiagnosisRequested", "DiagnosisDeferred"]
    );
    assert_eq!(deferred(&counted), 2, "one per diagnosis deferred");
    assert_eq!(thresholds(&scenario).len(), 2);
    assert_eq!((crossed(&counted, "80"), crossed(&counted, "100")), (1, 1));
}

#[tokio::test]
async fn a_proposal_that_reaches_80_percent_records_the_threshold_once_for_the_month() {
    let counted = Counted::default();
    let _recorder = counted.install();
    let scenario = starter(2).await;
    let eighty = starter_budget() * 8 / 10;
    scenario
        .ledger
        .spend(scenario.tenant, month(&scenario), eighty - 1);
    let first = scenario.asked(QUESTION, vec![]).await;

    scenario.diagnose(first).await.expect("handled");

    assert_eq!(
        scenario.event_types(first).last().unwrap(),
        "DiagnosisProposed"
    );
    assert_eq!(
        thresholds(&scenario),
        [(month(&scenario), BudgetThreshold::Approaching)]
    );
    assert_eq!((crossed(&counted, "80"), crossed(&counted, "100")), (1, 0));

    // The usage read model has counted the first proposal by the time of the second.
    scenario
        .ledger
        .spend(scenario.tenant, month(&scenario), ANSWER_TOKENS);
    let second = scenario.asked(QUESTION, vec![]).await;
    scenario.diagnose(second).await.expect("handled");

    assert_eq!(
        scenario.event_types(second).last().unwrap(),
        "DiagnosisProposed"
    );
    assert_eq!(thresholds(&scenario).len(), 1);
    assert_eq!(crossed(&counted, "80"), 1);
    assert_eq!(deferred(&counted), 0);
}

#[tokio::test]
async fn a_threshold_already_recorded_this_month_is_neither_recorded_nor_counted_again() {
    let counted = Counted::default();
    let _recorder = counted.install();
    let scenario = starter(1).await;
    let eighty = starter_budget() * 8 / 10;
    scenario
        .ledger
        .spend(scenario.tenant, month(&scenario), eighty);
    let actor = Actor::system(scenario.tenant);
    let earlier = RequestContext {
        metadata: EventMetadata::new(&actor, "earlier", Source::Worker),
        actor: actor.clone(),
    };
    scenario
        .service
        .administer_tenant(
            &earlier,
            TenantCommand::RecordBudgetThreshold {
                actor,
                threshold: BudgetThreshold::Approaching,
                budget: BudgetUse {
                    month: month(&scenario),
                    tokens_used: eighty,
                    tokens_budget: starter_budget(),
                },
            },
        )
        .await
        .expect("recorded earlier");
    let diagnosis = scenario.asked(QUESTION, vec![]).await;

    scenario.diagnose(diagnosis).await.expect("handled");

    assert_eq!(thresholds(&scenario).len(), 1);
    assert_eq!(crossed(&counted, "80"), 0);
}

#[tokio::test]
async fn a_new_month_resumes_deferred_diagnoses_and_the_worker_proposes_them() {
    let scenario = starter(1).await;
    scenario
        .ledger
        .spend(scenario.tenant, month(&scenario), starter_budget());
    let diagnosis = scenario.asked(QUESTION, vec![]).await;
    scenario.diagnose(diagnosis).await.expect("deferred");

    // The job earlier in the month resumes nothing: the budget is still spent.
    let today = scenario.clock.now();
    assert_eq!(job(&scenario).run(today, "run-1").await.unwrap(), []);
    assert_eq!(scenario.event_types(diagnosis).len(), 2);

    scenario.clock.set(next_month());
    let resumed = job(&scenario).run(next_month(), "run-2").await.unwrap();
    let again = job(&scenario).run(next_month(), "run-3").await.unwrap();

    assert_eq!(
        resumed,
        [TenantResumed {
            tenant_id: scenario.tenant,
            diagnoses: 1
        }]
    );
    assert_eq!(again, [], "a diagnosis resumes once");
    let events = scenario.stores.diagnoses.events(&diagnosis.to_string());
    assert_eq!(
        events.last(),
        Some(&DiagnosisEvent::DiagnosisResumed {
            to: DiagnosisStatus::Requested
        })
    );
    let metadata = scenario.stores.diagnoses.metadata(&diagnosis.to_string());
    let resumed_by =
        EventMetadata::from_json(serde_json::to_value(metadata.last()).unwrap()).expect("metadata");
    assert_eq!(resumed_by.source, Source::Scheduler);

    // The relay hands `DiagnosisResumed` to the worker as a request.
    scenario.diagnose(diagnosis).await.expect("proposed");
    assert_eq!(
        scenario.event_types(diagnosis)[2..],
        ["DiagnosisResumed", "ContextRetrieved", "DiagnosisProposed"]
    );
}

#[tokio::test]
async fn a_plan_upgrade_resumes_deferred_diagnoses_and_a_plan_that_is_still_spent_does_not() {
    let scenario = starter(0).await;
    // Spent on the starter plan, and on the cost-sensitive plan too, but not on professional.
    let used = PlanTier::CostSensitive.monthly_token_budget();
    scenario
        .ledger
        .spend(scenario.tenant, month(&scenario), used);
    let diagnosis = scenario.asked(QUESTION, vec![]).await;
    scenario.diagnose(diagnosis).await.expect("deferred");
    let reaction = BudgetResumption::new(resumption(&scenario));
    assert!(reaction.wants("Tenant", "PlanChanged"));
    assert!(!reaction.wants("Tenant", "UsageKeyAssigned"));

    let still_spent = plan_changed(&scenario, PlanTier::CostSensitive).await;
    reaction.react(&still_spent).await.expect("reacted");
    assert_eq!(
        scenario.event_types(diagnosis).last().unwrap(),
        "DiagnosisDeferred"
    );

    let upgraded = plan_changed(&scenario, PlanTier::Professional).await;
    for _ in 0..2 {
        reaction.react(&upgraded).await.expect("reacted");
    }
    assert_eq!(
        scenario.event_types(diagnosis),
        [
            "DiagnosisRequested",
            "DiagnosisDeferred",
            "DiagnosisResumed"
        ]
    );
}

#[tokio::test]
async fn a_retry_deferred_after_a_failed_attempt_resumes_as_that_retry() {
    let scenario = starter(0).await;
    scenario
        .llm
        .then_fail(LlmError::Transient("throttled".into()));
    scenario
        .llm
        .then_answer((ModelTier::Triage, 0.9, None, "haiku"));
    let diagnosis = scenario.asked(QUESTION, vec![]).await;
    assert!(scenario.diagnose(diagnosis).await.is_err(), "retried");

    // Meanwhile the tenant spent its budget: the retry is deferred, then resumed next month.
    scenario
        .ledger
        .spend(scenario.tenant, month(&scenario), starter_budget());
    scenario.diagnose(diagnosis).await.expect("deferred");
    scenario.clock.set(next_month());
    job(&scenario).run(next_month(), "run").await.unwrap();
    scenario.diagnose(diagnosis).await.expect("proposed");

    let events = scenario.stores.diagnoses.events(&diagnosis.to_string());
    assert_eq!(
        events[4],
        DiagnosisEvent::DiagnosisResumed {
            to: DiagnosisStatus::Failed { retryable: true }
        }
    );
    assert!(matches!(
        events[5],
        DiagnosisEvent::ContextRetrieved { attempt: 2, .. }
    ));
    assert_eq!(
        scenario.event_types(diagnosis).last().unwrap(),
        "DiagnosisProposed"
    );
}
