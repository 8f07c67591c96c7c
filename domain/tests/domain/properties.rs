//! Random command sequences, run through cqrs-es on an in-memory store as the application
//! would run them, never break the invariants.

use std::collections::HashSet;

use casebook_domain::actor::{Actor, Role};
use casebook_domain::any_event::AnyEvent;
use casebook_domain::decision::{
    ConsultantDecision, DecisionCommand, DecisionEvent, Outcome, Verdict,
};
use casebook_domain::diagnosis::{Diagnosis, DiagnosisCommand, DiagnosisEvent, DiagnosisSnapshot};
use casebook_domain::ids::{DecisionId, JudgmentId, QueryId, SessionId};
use casebook_domain::judgment::{Judgment, JudgmentCommand, JudgmentContent, JudgmentEvent};
use casebook_domain::policy::{
    route_model, should_auto_approve, Complexity, ModelPolicy, ModelTier, PlanTier, QueryFeatures,
    RoutingInput, TriageResult, MAX_DIAGNOSIS_ATTEMPTS,
};
use casebook_domain::session::{SessionCommand, SessionEvent, TenantSession};
use casebook_domain::tenant::{Tenant, TenantCommand, TenantEvent};
use casebook_domain::values::{Confidence, Reason, UploadKey};
use cqrs_es::mem_store::MemStore;
use cqrs_es::{Aggregate, AggregateError, CqrsFramework, DomainEvent, EventStore};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use uuid::Uuid;

use crate::diagnosis::provenance;
use crate::support::{actor, conf, v, DIAGNOSIS, OTHER_TENANT, TENANT};

/// The one stream each sequence runs against.
const STREAM: &str = "00000000-0000-0000-0000-0000000000d1";

/// Runs `commands` through the framework on an in-memory store and pairs each command with
/// the event it appended, or `None` when refused. Checks what holds for every aggregate: the
/// stored sequence numbers are 1, 2, 3…; each accepted command appends exactly one event and a
/// refused one none; and every stored event decodes back to itself from its stored form.
fn run<A>(
    commands: Vec<A::Command>,
    wrap: fn(A::Event) -> AnyEvent,
) -> Vec<(A::Command, Option<A::Event>)>
where
    A: Aggregate<Services = ()> + Clone,
    A::Command: Clone,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = MemStore::<A>::default();
        let cqrs = CqrsFramework::new(store.clone(), vec![], ());
        let mut accepted = Vec::with_capacity(commands.len());
        for command in &commands {
            match cqrs.execute(STREAM, command.clone()).await {
                Ok(()) => accepted.push(true),
                Err(AggregateError::UserError(_)) => accepted.push(false),
                Err(other) => panic!("unexpected framework error: {other}"),
            }
        }
        let stored = store.load_events(STREAM).await.expect("in-memory load");
        let sequences: Vec<usize> = stored.iter().map(|e| e.sequence).collect();
        assert_eq!(sequences, (1..=stored.len()).collect::<Vec<_>>());
        assert_eq!(stored.len(), accepted.iter().filter(|a| **a).count());

        let mut events = stored.into_iter().map(|envelope| {
            let event = envelope.payload;
            let payload = serde_json::to_value(&event).expect("serializes");
            assert_eq!(payload["type"], event.event_type().as_str());
            let decoded = AnyEvent::decode(
                A::TYPE,
                &event.event_type(),
                &event.event_version(),
                payload,
            )
            .expect("a stored event decodes");
            assert_eq!(decoded, wrap(event.clone()));
            event
        });
        commands
            .into_iter()
            .zip(accepted)
            .map(|(command, ok)| (command, ok.then(|| events.next().expect("counted"))))
            .collect()
    })
}

fn tenant_id() -> impl Strategy<Value = casebook_domain::ids::TenantId> {
    prop_oneof![3 => Just(TENANT), 1 => Just(OTHER_TENANT)]
}

/// Usually an actor in `role`; sometimes anyone, of either tenant.
fn actor_mostly(role: Role) -> impl Strategy<Value = Actor> {
    let any_role = select(vec![
        Role::Customer,
        Role::Consultant,
        Role::Auditor,
        Role::Admin,
        Role::System,
        Role::Operator,
    ]);
    prop_oneof![
        3 => tenant_id().prop_map(move |t| actor(role, t)),
        1 => (any_role, tenant_id()).prop_map(|(r, t)| actor(r, t)),
    ]
}

/// Confidences that often sit exactly on typical thresholds.
fn confidence() -> impl Strategy<Value = Confidence> {
    prop_oneof![select(vec![0.0, 0.5, 0.8, 0.9, 1.0]), 0.0..=1.0_f64].prop_map(conf)
}

fn reason() -> Reason {
    v("because")
}

fn tenant_command() -> impl Strategy<Value = TenantCommand> {
    let plan = select(vec![
        PlanTier::Starter,
        PlanTier::Professional,
        PlanTier::Enterprise,
        PlanTier::CostSensitive,
    ]);
    let admin = || actor_mostly(Role::Admin);
    let operator = || actor_mostly(Role::Operator);
    prop_oneof![
        (admin(), plan.clone()).prop_map(|(actor, plan)| TenantCommand::Onboard {
            actor,
            name: v("Acme"),
            plan
        }),
        (operator(), plan).prop_map(|(actor, plan)| TenantCommand::ChangePlan { actor, plan }),
        (admin(), proptest::option::of(confidence())).prop_map(|(actor, threshold)| {
            TenantCommand::SetAutoResolveThreshold { actor, threshold }
        }),
        (
            admin(),
            select(vec![ModelPolicy::ByPlan, ModelPolicy::OpenWeightsOnly])
        )
            .prop_map(|(actor, policy)| TenantCommand::SetModelPolicy { actor, policy }),
        operator().prop_map(|actor| TenantCommand::Suspend {
            actor,
            reason: reason()
        }),
        operator().prop_map(|actor| TenantCommand::Reactivate { actor }),
    ]
}

fn session_command() -> impl Strategy<Value = SessionCommand> {
    let session_id = SessionId::from_uuid(Uuid::from_u128(0x5E));
    let query_id = (0_u128..3).prop_map(|n| QueryId::from_uuid(Uuid::from_u128(n)));
    let attachment = (tenant_id(), 0_u128..4).prop_map(|(t, n)| {
        v::<UploadKey>(&format!("{t}/uploads/{}/lease.pdf", Uuid::from_u128(n)))
    });
    let customer = || actor_mostly(Role::Customer);
    prop_oneof![
        1 => (customer(), vec(attachment, 0..3), any::<bool>()).prop_map(
            move |(actor, attachments, tenant_active)| SessionCommand::Open {
                actor,
                session_id,
                subject: v("Leases"),
                uploads_issued_to_actor: attachments.iter().cloned().collect(),
                attachments,
                tenant_active,
            }
        ),
        4 => (customer(), query_id, any::<bool>()).prop_map(|(actor, query_id, tenant_active)| {
            SessionCommand::SubmitQuery {
                actor,
                query_id,
                text: v("Finance or operating?"),
                tenant_active,
            }
        }),
        1 => customer().prop_map(|actor| SessionCommand::Close { actor }),
    ]
}

fn diagnosis_command() -> impl Strategy<Value = DiagnosisCommand> {
    let system = || actor_mostly(Role::System);
    let decision_id = prop_oneof![
        3 => Just(DecisionId::for_diagnosis(DIAGNOSIS)),
        1 => Just(DecisionId::from_uuid(Uuid::from_u128(0xBAD))),
    ];
    let outcome = select(vec![
        Outcome::Approved,
        Outcome::Amended,
        Outcome::Rejected,
        Outcome::AutoApproved,
    ]);
    prop_oneof![
        1 => (actor_mostly(Role::Customer), any::<bool>()).prop_map(|(actor, tenant_active)| {
            DiagnosisCommand::Request {
                actor,
                diagnosis_id: DIAGNOSIS,
                session_id: SessionId::from_uuid(Uuid::from_u128(0x5E)),
                query_id: QueryId::from_uuid(Uuid::from_u128(0x01)),
                query: v("Finance or operating?"),
                tenant_active,
            }
        }),
        3 => system().prop_map(|actor| DiagnosisCommand::RecordContext {
            actor,
            judgments: vec![],
        }),
        3 => (system(), confidence()).prop_map(|(actor, confidence)| DiagnosisCommand::Propose {
            actor,
            text: v("A finance lease."),
            findings: vec![],
            confidence,
            provenance: provenance(),
        }),
        3 => (system(), any::<bool>()).prop_map(|(actor, retryable)| DiagnosisCommand::Fail {
            actor,
            reason: reason(),
            retryable,
        }),
        2 => (system(), decision_id, outcome).prop_map(|(actor, decision_id, outcome)| {
            DiagnosisCommand::Resolve {
                actor,
                decision_id,
                outcome,
            }
        }),
    ]
}

fn decision_command() -> impl Strategy<Value = DecisionCommand> {
    let snapshot = || {
        (tenant_id(), proptest::option::of(confidence())).prop_map(
            |(tenant_id, proposed_confidence)| DiagnosisSnapshot {
                diagnosis_id: DIAGNOSIS,
                tenant_id,
                proposed_confidence,
                customer: None,
            },
        )
    };
    let consultant = || actor_mostly(Role::Consultant);
    prop_oneof![
        1 => (consultant(), snapshot())
            .prop_map(|(actor, diagnosis)| DecisionCommand::Approve { actor, diagnosis }),
        1 => (consultant(), snapshot()).prop_map(|(actor, diagnosis)| DecisionCommand::Amend {
            actor,
            diagnosis,
            amended_text: v("An operating lease."),
            reason: None,
        }),
        1 => (consultant(), snapshot()).prop_map(|(actor, diagnosis)| DecisionCommand::Reject {
            actor,
            diagnosis,
            reason: reason(),
        }),
        2 => (
            actor_mostly(Role::System),
            snapshot(),
            proptest::option::of(confidence()),
            any::<bool>()
        )
            .prop_map(|(actor, diagnosis, threshold, tenant_active)| {
                DecisionCommand::AutoApprove {
                    actor,
                    diagnosis,
                    threshold,
                    tenant_active,
                }
            }),
    ]
}

fn judgment_command() -> impl Strategy<Value = JudgmentCommand> {
    let content = || JudgmentContent {
        title: v("Leases"),
        body: v("Title transfer means finance lease."),
        tags: vec![],
    };
    let consultant = || actor_mostly(Role::Consultant);
    prop_oneof![
        1 => consultant().prop_map(move |actor| JudgmentCommand::Author {
            actor,
            judgment_id: JudgmentId::from_uuid(Uuid::from_u128(0x70)),
            content: content(),
        }),
        2 => consultant().prop_map(move |actor| JudgmentCommand::Revise {
            actor,
            content: content(),
        }),
        1 => consultant().prop_map(|actor| JudgmentCommand::Retire {
            actor,
            reason: reason(),
        }),
    ]
}

proptest! {
    #[test]
    fn a_tenant_is_onboarded_once_and_suspension_alternates(commands in vec(tenant_command(), 1..12)) {
        let (mut owner, mut suspended) = (None, false);
        for (command, event) in run::<Tenant>(commands, AnyEvent::Tenant) {
            let Some(event) = event else { continue };
            let actor = command.actor();
            let platforms = matches!(
                event,
                TenantEvent::PlanChanged { .. }
                    | TenantEvent::TenantSuspended { .. }
                    | TenantEvent::TenantReactivated
            );
            let expected = if platforms { Role::Operator } else { Role::Admin };
            prop_assert_eq!(actor.role, expected);
            match event {
                TenantEvent::TenantOnboarded { tenant_id, .. } => {
                    prop_assert!(owner.is_none(), "onboarded twice");
                    owner = Some(tenant_id);
                }
                TenantEvent::TenantSuspended { .. } => {
                    prop_assert!(!suspended, "suspended twice");
                    suspended = true;
                }
                TenantEvent::TenantReactivated => {
                    prop_assert!(suspended, "reactivated while active");
                    suspended = false;
                }
                _ => {}
            }
            prop_assert_eq!(Some(actor.tenant_id), owner);
        }
    }

    #[test]
    fn a_closed_session_accepts_nothing(commands in vec(session_command(), 1..16)) {
        let (mut owner, mut closed, mut queries) = (None, false, HashSet::new());
        for (command, event) in run::<TenantSession>(commands, AnyEvent::Session) {
            let Some(event) = event else { continue };
            prop_assert!(!closed, "a closed session accepted {:?}", command);
            let actor = command.actor();
            prop_assert_eq!(actor.role, Role::Customer);
            match event {
                SessionEvent::SessionOpened { tenant_id, attachments, .. } => {
                    prop_assert!(attachments.iter().all(|k| k.is_upload_of(tenant_id)));
                    owner = Some(tenant_id);
                }
                SessionEvent::QuerySubmitted { query_id, .. } => {
                    prop_assert!(queries.insert(query_id), "query {} accepted twice", query_id);
                }
                SessionEvent::SessionClosed { .. } => closed = true,
            }
            prop_assert_eq!(Some(actor.tenant_id), owner);
            if let SessionCommand::Open { tenant_active, .. }
            | SessionCommand::SubmitQuery { tenant_active, .. } = command
            {
                prop_assert!(tenant_active, "a suspended tenant's command was accepted");
            }
        }
    }

    #[test]
    fn a_diagnosis_follows_its_lifecycle(commands in vec(diagnosis_command(), 1..20)) {
        let (mut owner, mut previous, mut attempt) = (None, None::<DiagnosisEvent>, 0);
        for (command, event) in run::<Diagnosis>(commands, AnyEvent::Diagnosis) {
            let Some(event) = event else { continue };
            let actor = command.actor();
            match (&event, &previous) {
                (DiagnosisEvent::DiagnosisRequested { tenant_id, .. }, None) => {
                    prop_assert_eq!(actor.role, Role::Customer);
                    owner = Some(*tenant_id);
                    attempt = 1;
                }
                (DiagnosisEvent::ContextRetrieved { attempt: a, .. }, Some(DiagnosisEvent::DiagnosisRequested { .. })) => {
                    prop_assert_eq!(*a, 1);
                }
                (DiagnosisEvent::ContextRetrieved { attempt: a, .. }, Some(DiagnosisEvent::DiagnosisFailed { retryable: true, .. })) => {
                    prop_assert_eq!(*a, attempt + 1);
                    attempt = *a;
                }
                (DiagnosisEvent::DiagnosisProposed { .. }, Some(DiagnosisEvent::ContextRetrieved { .. })) => {}
                (
                    DiagnosisEvent::DiagnosisFailed { attempt: a, retryable, .. },
                    Some(DiagnosisEvent::DiagnosisRequested { .. } | DiagnosisEvent::ContextRetrieved { .. }),
                ) => {
                    prop_assert_eq!(*a, attempt);
                    prop_assert!(!retryable || attempt < MAX_DIAGNOSIS_ATTEMPTS);
                }
                (DiagnosisEvent::DiagnosisResolved { decision_id, .. }, Some(DiagnosisEvent::DiagnosisProposed { .. })) => {
                    prop_assert_eq!(*decision_id, DecisionId::for_diagnosis(DIAGNOSIS));
                }
                (event, previous) => {
                    prop_assert!(false, "{:?} after {:?}", event, previous);
                }
            }
            prop_assert_eq!(Some(actor.tenant_id), owner);
            prop_assert!(actor.role == Role::System || previous.is_none());
            prop_assert!(attempt <= MAX_DIAGNOSIS_ATTEMPTS);
            previous = Some(event);
        }
    }

    #[test]
    fn a_diagnosis_is_decided_at_most_once_and_auto_approved_only_at_the_threshold(
        commands in vec(decision_command(), 1..8)
    ) {
        let steps = run::<ConsultantDecision>(commands, AnyEvent::Decision);
        let decided: Vec<_> = steps.iter().filter(|(_, event)| event.is_some()).collect();
        prop_assert!(decided.len() <= 1, "{} decisions", decided.len());
        for (command, event) in &steps {
            if let DecisionCommand::AutoApprove { diagnosis, threshold, tenant_active, .. } = command {
                let allowed = diagnosis
                    .proposed_confidence
                    .is_some_and(|c| should_auto_approve(*threshold, c, *tenant_active));
                prop_assert!(allowed || event.is_none(), "auto-approved against policy: {:?}", command);
            }
            let Some(DecisionEvent::DecisionMade { tenant_id, verdict, .. }) = event else { continue };
            let (actor, diagnosis) = match command {
                DecisionCommand::Approve { actor, diagnosis }
                | DecisionCommand::Amend { actor, diagnosis, .. }
                | DecisionCommand::Reject { actor, diagnosis, .. }
                | DecisionCommand::AutoApprove { actor, diagnosis, .. } => (actor, diagnosis),
            };
            prop_assert_eq!(*tenant_id, actor.tenant_id);
            prop_assert_eq!(*tenant_id, diagnosis.tenant_id);
            prop_assert!(diagnosis.proposed_confidence.is_some());
            if let Verdict::AutoApproved { threshold, confidence } = verdict {
                prop_assert!(confidence >= threshold);
                let DecisionCommand::AutoApprove { threshold: given, .. } = command else {
                    return Err(TestCaseError::fail("auto-approval from a manual command"));
                };
                prop_assert_eq!(Some(*threshold), *given);
                prop_assert_eq!(Some(*confidence), diagnosis.proposed_confidence);
            }
        }
    }

    #[test]
    fn a_retired_judgment_accepts_nothing(commands in vec(judgment_command(), 1..10)) {
        let mut retired = false;
        for (command, event) in run::<Judgment>(commands, AnyEvent::Judgment) {
            let Some(event) = event else { continue };
            prop_assert!(!retired, "a retired judgment accepted {:?}", command);
            retired = matches!(event, JudgmentEvent::JudgmentRetired { .. });
        }
    }

    #[test]
    fn auto_approval_is_exactly_at_or_above_the_threshold(
        threshold in proptest::option::of(confidence()),
        confidence in confidence(),
        tenant_active in any::<bool>(),
    ) {
        let expected = tenant_active && threshold.is_some_and(|t| confidence.value() >= t.value());
        prop_assert_eq!(should_auto_approve(threshold, confidence, tenant_active), expected);
    }

    #[test]
    fn routing_escalates_at_most_once_and_keeps_cost_sensitive_plans_off_the_strongest_tier(
        plan in select(vec![PlanTier::Starter, PlanTier::Professional, PlanTier::Enterprise, PlanTier::CostSensitive]),
        length_chars in 0_usize..10_000,
        attachment_count in 0_usize..6,
        flagged_hard in any::<bool>(),
        triage in proptest::option::of((select(vec![Complexity::Simple, Complexity::Moderate, Complexity::Complex]), confidence())),
        prior_answers in vec(confidence(), 0..4),
    ) {
        let features = QueryFeatures { length_chars, attachment_count, flagged_hard };
        let triage = triage.map(|(complexity, confidence)| TriageResult { complexity, confidence });
        let input = RoutingInput { plan, policy: ModelPolicy::ByPlan, features, triage, prior_answers: &prior_answers };
        let tier = route_model(&input);
        let calm_triage = triage.map(|t| TriageResult { confidence: conf(1.0), ..t });
        let calm = route_model(&RoutingInput { triage: calm_triage, prior_answers: &[], ..input });
        if plan == PlanTier::CostSensitive {
            prop_assert_ne!(tier, ModelTier::Strongest);
        } else {
            prop_assert!(tier == calm || tier == calm.escalated(), "{:?} from calm {:?}", tier, calm);
        }
    }
}
