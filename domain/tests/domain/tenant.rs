use casebook_domain::actor::Role;
use casebook_domain::error::{AccessError, DomainError, ErrorKind};
use casebook_domain::policy::{ModelPolicy, PlanTier};
use casebook_domain::tenant::{Tenant, TenantCommand, TenantError, TenantEvent};
use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;

use crate::support::{actor, conf, onboarded, user, v, OTHER_TENANT, TENANT};

fn tenant() -> TestFramework<Tenant> {
    TestFramework::with(())
}

fn admin() -> casebook_domain::actor::Actor {
    actor(Role::Admin, TENANT)
}

fn suspended() -> Vec<TenantEvent> {
    let mut events = onboarded();
    events.push(TenantEvent::TenantSuspended {
        reason: v("unpaid invoices"),
    });
    events
}

fn replay(events: Vec<TenantEvent>) -> Tenant {
    let mut tenant = Tenant::default();
    events.into_iter().for_each(|e| tenant.apply(e));
    tenant
}

#[test]
fn an_admin_onboards_their_tenant() {
    tenant()
        .given_no_previous_events()
        .when(TenantCommand::Onboard {
            actor: admin(),
            name: v("Acme Audit"),
            plan: PlanTier::Professional,
        })
        .then_expect_events(onboarded());
}

#[test]
fn only_an_admin_onboards() {
    tenant()
        .given_no_previous_events()
        .when(TenantCommand::Onboard {
            actor: actor(Role::Consultant, TENANT),
            name: v("Acme Audit"),
            plan: PlanTier::Starter,
        })
        .then_expect_error(TenantError::Access(AccessError::Forbidden {
            role: Role::Consultant,
        }));
}

#[test]
fn onboarding_twice_is_refused() {
    tenant()
        .given(onboarded())
        .when(TenantCommand::Onboard {
            actor: admin(),
            name: v("Acme Again"),
            plan: PlanTier::Starter,
        })
        .then_expect_error(TenantError::AlreadyOnboarded);
}

#[test]
fn onboarding_over_another_tenant_is_not_found() {
    tenant()
        .given(onboarded())
        .when(TenantCommand::Onboard {
            actor: actor(Role::Admin, OTHER_TENANT),
            name: v("Intruder"),
            plan: PlanTier::Starter,
        })
        .then_expect_error(TenantError::Access(AccessError::NotFound));
}

fn operator() -> casebook_domain::actor::Actor {
    actor(Role::Operator, TENANT)
}

#[test]
fn the_operator_changes_the_plan() {
    tenant()
        .given(onboarded())
        .when(TenantCommand::ChangePlan {
            actor: operator(),
            plan: PlanTier::CostSensitive,
        })
        .then_expect_events(vec![TenantEvent::PlanChanged {
            plan: PlanTier::CostSensitive,
        }]);
}

#[test]
fn the_tenants_own_admin_cannot_change_its_plan_suspend_it_or_lift_a_suspension() {
    let forbidden = TenantError::Access(AccessError::Forbidden { role: Role::Admin });
    tenant()
        .given(onboarded())
        .when(TenantCommand::ChangePlan {
            actor: admin(),
            plan: PlanTier::Enterprise,
        })
        .then_expect_error(forbidden.clone());
    tenant()
        .given(onboarded())
        .when(TenantCommand::Suspend {
            actor: admin(),
            reason: v("holiday"),
        })
        .then_expect_error(forbidden.clone());
    tenant()
        .given(suspended())
        .when(TenantCommand::Reactivate { actor: admin() })
        .then_expect_error(forbidden);
}

#[test]
fn another_tenants_operator_actor_cannot_see_the_tenant() {
    tenant()
        .given(onboarded())
        .when(TenantCommand::ChangePlan {
            actor: actor(Role::Operator, OTHER_TENANT),
            plan: PlanTier::Enterprise,
        })
        .then_expect_error(TenantError::Access(AccessError::NotFound));
}

#[test]
fn commands_before_onboarding_are_not_found() {
    tenant()
        .given_no_previous_events()
        .when(TenantCommand::ChangePlan {
            actor: operator(),
            plan: PlanTier::Enterprise,
        })
        .then_expect_error(TenantError::Access(AccessError::NotFound));
}

#[test]
fn a_customer_cannot_change_the_plan() {
    tenant()
        .given(onboarded())
        .when(TenantCommand::ChangePlan {
            actor: actor(Role::Customer, TENANT),
            plan: PlanTier::Enterprise,
        })
        .then_expect_error(TenantError::Access(AccessError::Forbidden {
            role: Role::Customer,
        }));
}

#[test]
fn an_admin_sets_and_clears_the_auto_resolve_threshold() {
    tenant()
        .given(onboarded())
        .when(TenantCommand::SetAutoResolveThreshold {
            actor: admin(),
            threshold: Some(conf(0.9)),
        })
        .then_expect_events(vec![TenantEvent::AutoResolveThresholdSet {
            threshold: Some(conf(0.9)),
        }]);
    tenant()
        .given(onboarded())
        .when(TenantCommand::SetAutoResolveThreshold {
            actor: admin(),
            threshold: None,
        })
        .then_expect_events(vec![TenantEvent::AutoResolveThresholdSet {
            threshold: None,
        }]);
}

#[test]
fn an_auditor_cannot_set_the_threshold() {
    tenant()
        .given(onboarded())
        .when(TenantCommand::SetAutoResolveThreshold {
            actor: actor(Role::Auditor, TENANT),
            threshold: Some(conf(0.5)),
        })
        .then_expect_error(TenantError::Access(AccessError::Forbidden {
            role: Role::Auditor,
        }));
}

#[test]
fn an_admin_sets_the_model_policy() {
    tenant()
        .given(onboarded())
        .when(TenantCommand::SetModelPolicy {
            actor: admin(),
            policy: ModelPolicy::OpenWeightsOnly,
        })
        .then_expect_events(vec![TenantEvent::ModelPolicySet {
            policy: ModelPolicy::OpenWeightsOnly,
        }]);
}

#[test]
fn the_system_cannot_set_the_model_policy() {
    tenant()
        .given(onboarded())
        .when(TenantCommand::SetModelPolicy {
            actor: actor(Role::System, TENANT),
            policy: ModelPolicy::OpenWeightsOnly,
        })
        .then_expect_error(TenantError::Access(AccessError::Forbidden {
            role: Role::System,
        }));
}

#[test]
fn the_operator_suspends_an_active_tenant() {
    tenant()
        .given(onboarded())
        .when(TenantCommand::Suspend {
            actor: operator(),
            reason: v("unpaid invoices"),
        })
        .then_expect_events(vec![TenantEvent::TenantSuspended {
            reason: v("unpaid invoices"),
        }]);
}

#[test]
fn suspending_twice_is_refused() {
    tenant()
        .given(suspended())
        .when(TenantCommand::Suspend {
            actor: operator(),
            reason: v("again"),
        })
        .then_expect_error(TenantError::AlreadySuspended);
}

#[test]
fn the_operator_reactivates_a_suspended_tenant() {
    tenant()
        .given(suspended())
        .when(TenantCommand::Reactivate { actor: operator() })
        .then_expect_events(vec![TenantEvent::TenantReactivated]);
}

#[test]
fn reactivating_an_active_tenant_is_refused() {
    tenant()
        .given(onboarded())
        .when(TenantCommand::Reactivate { actor: operator() })
        .then_expect_error(TenantError::NotSuspended);
}

#[test]
fn another_tenants_operator_actor_cannot_reactivate() {
    tenant()
        .given(suspended())
        .when(TenantCommand::Reactivate {
            actor: actor(Role::Operator, OTHER_TENANT),
        })
        .then_expect_error(TenantError::Access(AccessError::NotFound));
}

#[test]
fn the_tenant_reports_what_the_application_reads_before_dispatch() {
    assert!(!Tenant::default().is_active());
    let active = replay(onboarded());
    assert!(active.is_active());
    assert_eq!(active.plan(), Some(PlanTier::Professional));
    assert_eq!(active.model_policy(), Some(ModelPolicy::ByPlan));
    assert_eq!(active.auto_resolve_threshold(), None);

    let mut events = suspended();
    events.push(TenantEvent::AutoResolveThresholdSet {
        threshold: Some(conf(0.8)),
    });
    let suspended = replay(events);
    assert!(!suspended.is_active());
    assert_eq!(suspended.auto_resolve_threshold(), Some(conf(0.8)));
}

#[test]
fn errors_are_classified_for_clients() {
    assert_eq!(
        TenantError::Access(AccessError::NotFound).kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        TenantError::Access(AccessError::Forbidden {
            role: Role::Auditor
        })
        .kind(),
        ErrorKind::Forbidden
    );
    assert_eq!(TenantError::AlreadySuspended.kind(), ErrorKind::Conflict);
}

fn system() -> casebook_domain::actor::Actor {
    actor(Role::System, TENANT)
}

fn record_key(id: &str, plan: PlanTier) -> TenantCommand {
    TenantCommand::RecordUsageKey {
        actor: system(),
        api_key_id: id.to_owned(),
        plan,
    }
}

#[test]
fn the_system_records_the_tenants_usage_key_on_its_current_plan() {
    tenant()
        .given(onboarded())
        .when(record_key("key-1", PlanTier::Professional))
        .then_expect_events(vec![TenantEvent::UsageKeyAssigned {
            api_key_id: "key-1".to_owned(),
            plan: PlanTier::Professional,
        }]);
}

#[test]
fn a_usage_key_for_another_plan_than_the_tenants_is_refused() {
    tenant()
        .given(onboarded())
        .when(record_key("key-1", PlanTier::Enterprise))
        .then_expect_error(TenantError::UsageKeyPlanOutdated {
            assigned: PlanTier::Enterprise,
            current: PlanTier::Professional,
        });
}

#[test]
fn the_same_usage_key_on_the_same_plan_is_recorded_once_and_again_after_a_plan_change() {
    let mut events = onboarded();
    events.push(TenantEvent::UsageKeyAssigned {
        api_key_id: "key-1".to_owned(),
        plan: PlanTier::Professional,
    });
    tenant()
        .given(events.clone())
        .when(record_key("key-1", PlanTier::Professional))
        .then_expect_error(TenantError::UsageKeyAlreadyAssigned);
    events.push(TenantEvent::PlanChanged {
        plan: PlanTier::Enterprise,
    });
    let moved = replay(events.clone());
    assert_eq!(moved.usage_key_id(), Some("key-1"));
    assert!(!moved.usage_key_on_current_plan());
    tenant()
        .given(events)
        .when(record_key("key-1", PlanTier::Enterprise))
        .then_expect_events(vec![TenantEvent::UsageKeyAssigned {
            api_key_id: "key-1".to_owned(),
            plan: PlanTier::Enterprise,
        }]);
}

#[test]
fn only_the_system_records_usage_keys() {
    tenant()
        .given(onboarded())
        .when(TenantCommand::RecordUsageKey {
            actor: admin(),
            api_key_id: "mine".to_owned(),
            plan: PlanTier::Professional,
        })
        .then_expect_error(TenantError::Access(AccessError::Forbidden {
            role: Role::Admin,
        }));
}

fn erase(actor: casebook_domain::actor::Actor) -> TenantCommand {
    TenantCommand::EraseSubject {
        actor,
        subject: user(Role::Customer),
    }
}

#[test]
fn an_admin_erases_a_customer() {
    tenant()
        .given(onboarded())
        .when(erase(admin()))
        .then_expect_events(vec![TenantEvent::SubjectErased {
            subject: user(Role::Customer),
            erased_by: user(Role::Admin),
        }]);
}

#[test]
fn erasing_a_subject_twice_is_refused() {
    let mut history = onboarded();
    history.push(TenantEvent::SubjectErased {
        subject: user(Role::Customer),
        erased_by: user(Role::Admin),
    });
    tenant()
        .given(history)
        .when(erase(admin()))
        .then_expect_error(TenantError::AlreadyErased(user(Role::Customer)));
}

#[test]
fn only_an_admin_erases_a_subject() {
    for role in [Role::Consultant, Role::Customer, Role::Auditor] {
        tenant()
            .given(onboarded())
            .when(erase(actor(role, TENANT)))
            .then_expect_error(TenantError::Access(AccessError::Forbidden { role }));
    }
}

fn erased_tenant() -> Vec<TenantEvent> {
    let mut history = onboarded();
    history.push(TenantEvent::TenantErased {
        erased_by: operator().user_id,
    });
    history
}

#[test]
fn the_operator_erases_a_tenant_which_then_takes_no_command() {
    tenant()
        .given(onboarded())
        .when(TenantCommand::EraseTenant { actor: operator() })
        .then_expect_events(vec![TenantEvent::TenantErased {
            erased_by: operator().user_id,
        }]);
    assert!(!replay(erased_tenant()).is_active());
    for command in [
        TenantCommand::EraseTenant { actor: operator() },
        TenantCommand::Reactivate { actor: operator() },
        erase(admin()),
        TenantCommand::SetAutoResolveThreshold {
            actor: admin(),
            threshold: None,
        },
    ] {
        tenant()
            .given(erased_tenant())
            .when(command)
            .then_expect_error(TenantError::TenantErased);
    }
}

#[test]
fn only_the_operator_erases_a_tenant() {
    for role in [Role::Admin, Role::Consultant, Role::Customer, Role::Auditor] {
        tenant()
            .given(onboarded())
            .when(TenantCommand::EraseTenant {
                actor: actor(role, TENANT),
            })
            .then_expect_error(TenantError::Access(AccessError::Forbidden { role }));
    }
}
