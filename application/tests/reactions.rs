//! The reactions, in memory: given the events a command left, when each is delivered (twice:
//! delivery is at least once), then the commands and calls that followed.

#[allow(dead_code)]
mod support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use casebook_application::business::BusinessEvents;
use casebook_application::in_memory::{KeptBusinessLog, KeptMailbox};
use casebook_application::ports::{
    BoxError, IdentityError, IdentityProvider, Provisioned, UsageKeys,
};
use casebook_application::reactions::{
    Delivered, People, Reaction, ReactionError, Reactions, UsageKeyAssignment,
};
use casebook_application::service::ConsultantVerdict;
use casebook_domain::actor::Role;
use casebook_domain::any_event::AnyEvent;
use casebook_domain::decision::ConsultantDecision;
use casebook_domain::diagnosis::{Diagnosis, DiagnosisEvent};
use casebook_domain::ids::{DecisionId, DiagnosisId, JudgmentId, TenantId};
use casebook_domain::judgment::JudgmentEvent;
use casebook_domain::policy::{ModelTier, PlanTier};
use casebook_domain::session::TenantSession;
use casebook_domain::tenant::{Invitee, Member, TenantCommand, TenantEvent};
use casebook_domain::values::{Confidence, DiagnosisText, Email, PersonName, QueryText, Reason};
use support::{ctx, deliver_twice, delivered, tenant_events, Scenario};

/// A proposed diagnosis of `scenario`'s tenant, asked `question` and answered `answer`.
async fn proposed(scenario: &Scenario, question: &str, answer: Option<String>) -> DiagnosisId {
    *scenario.llm.text.lock().unwrap() = answer;
    // A long query is hard: the strongest tier answers it at once.
    let tier = if question.len() > 10_000 {
        ModelTier::Strongest
    } else {
        ModelTier::Triage
    };
    scenario.llm.then_answer((tier, 0.9, None, "haiku"));
    let diagnosis = scenario.asked(question, vec![]).await;
    scenario.diagnose(diagnosis).await.expect("proposed");
    diagnosis
}

async fn decided(scenario: &Scenario, diagnosis: DiagnosisId, verdict: ConsultantVerdict) {
    let consultant = ctx(scenario.tenant, Role::Consultant, "consultant");
    scenario
        .service
        .decide(&consultant, diagnosis, verdict)
        .await
        .expect("decided");
}

fn decision_events(scenario: &Scenario, diagnosis: DiagnosisId) -> Vec<Delivered> {
    let id = DecisionId::for_diagnosis(diagnosis).to_string();
    delivered::<ConsultantDecision>(&scenario.stores.decisions, &id, AnyEvent::Decision)
}

fn judgment_events(scenario: &Scenario, diagnosis: DiagnosisId) -> Vec<JudgmentEvent> {
    let id = JudgmentId::for_decision(DecisionId::for_diagnosis(diagnosis)).to_string();
    scenario.stores.judgments.events(&id)
}

#[tokio::test]
async fn an_approval_resolves_the_diagnosis_and_captures_it_as_judgment_once() {
    let scenario = Scenario::given(vec![]).await;
    let diagnosis = proposed(&scenario, "Is the indemnity cap enforceable?", None).await;
    decided(&scenario, diagnosis, ConsultantVerdict::Approve).await;

    deliver_twice(
        &Reactions::new(scenario.service.clone()),
        &decision_events(&scenario, diagnosis),
    )
    .await;

    assert_eq!(
        scenario.event_types(diagnosis).last().unwrap(),
        "DiagnosisResolved"
    );
    let captured = judgment_events(&scenario, diagnosis);
    assert_eq!(captured.len(), 1);
    let JudgmentEvent::JudgmentCaptured { content, .. } = &captured[0] else {
        panic!("{captured:?}");
    };
    assert_eq!(content.title.as_str(), "Is the indemnity cap enforceable?");
    assert_eq!(
        content.body.as_str(),
        "Q: Is the indemnity cap enforceable?\n\nA: haiku says the cap holds."
    );
    let metadata = scenario
        .stores
        .judgments
        .metadata(&JudgmentId::for_decision(DecisionId::for_diagnosis(diagnosis)).to_string());
    assert_eq!(metadata[0]["source"], "reaction");
    assert_eq!(
        metadata[0]["causation_id"],
        format!(
            "ConsultantDecision/{}/1",
            DecisionId::for_diagnosis(diagnosis)
        )
    );
    assert_eq!(metadata[0]["correlation_id"], "req-consultant");
}

#[tokio::test]
async fn an_amendment_captures_the_consultants_text_not_the_models() {
    let scenario = Scenario::given(vec![]).await;
    let diagnosis = proposed(&scenario, "Cap?", None).await;
    let verdict = ConsultantVerdict::Amend {
        amended_text: DiagnosisText::parse("Only with a carve-out for fraud.").unwrap(),
        reason: Some(Reason::parse("Fraud can't be capped").unwrap()),
    };
    decided(&scenario, diagnosis, verdict).await;

    deliver_twice(
        &Reactions::new(scenario.service.clone()),
        &decision_events(&scenario, diagnosis),
    )
    .await;

    let JudgmentEvent::JudgmentCaptured { content, .. } = &judgment_events(&scenario, diagnosis)[0]
    else {
        panic!("not captured");
    };
    assert!(content
        .body
        .as_str()
        .ends_with("A: Only with a carve-out for fraud."));
}

#[tokio::test]
async fn a_rejection_resolves_the_diagnosis_and_captures_nothing() {
    let scenario = Scenario::given(vec![]).await;
    let diagnosis = proposed(&scenario, "Cap?", None).await;
    let verdict = ConsultantVerdict::Reject {
        reason: Reason::parse("Wrong jurisdiction").unwrap(),
    };
    decided(&scenario, diagnosis, verdict).await;

    deliver_twice(
        &Reactions::new(scenario.service.clone()),
        &decision_events(&scenario, diagnosis),
    )
    .await;

    assert_eq!(
        scenario.event_types(diagnosis).last().unwrap(),
        "DiagnosisResolved"
    );
    assert!(judgment_events(&scenario, diagnosis).is_empty());
}

#[tokio::test]
async fn a_question_and_answer_longer_than_a_judgment_keep_the_answer_whole() {
    let scenario = Scenario::given(vec![]).await;
    let question = "q".repeat(QueryText::MAX_CHARS);
    let answer = "a".repeat(DiagnosisText::MAX_CHARS - 100);
    let diagnosis = proposed(&scenario, &question, Some(answer.clone())).await;
    decided(&scenario, diagnosis, ConsultantVerdict::Approve).await;

    deliver_twice(
        &Reactions::new(scenario.service.clone()),
        &decision_events(&scenario, diagnosis),
    )
    .await;

    let JudgmentEvent::JudgmentCaptured { content, .. } = &judgment_events(&scenario, diagnosis)[0]
    else {
        panic!("not captured");
    };
    let body = content.body.as_str();
    assert!(body.ends_with(&format!("\n\nA: {answer}")));
    assert!(body.starts_with("Q: qqq"));
    assert!(body.contains("…\n\nA: "), "the question is cut");
}

async fn with_threshold(scenario: &Scenario, threshold: Option<f64>) {
    let admin = ctx(scenario.tenant, Role::Admin, "admin");
    scenario
        .service
        .administer_tenant(
            &admin,
            TenantCommand::SetAutoResolveThreshold {
                actor: admin.actor.clone(),
                threshold: threshold.map(|t| Confidence::new(t).unwrap()),
            },
        )
        .await
        .expect("threshold set");
}

fn proposal_events(scenario: &Scenario, diagnosis: DiagnosisId) -> Vec<Delivered> {
    delivered::<Diagnosis>(
        &scenario.stores.diagnoses,
        &diagnosis.to_string(),
        AnyEvent::Diagnosis,
    )
}

/// A tenant with threshold 0.85 whose proposal at 0.9 was delivered (twice) to the
/// reactions.
async fn delivered_above_the_threshold() -> (Scenario, DiagnosisId) {
    let scenario = Scenario::given(vec![]).await;
    with_threshold(&scenario, Some(0.85)).await;
    let diagnosis = proposed(&scenario, "Cap?", None).await;
    deliver_twice(
        &Reactions::new(scenario.service.clone()),
        &proposal_events(&scenario, diagnosis),
    )
    .await;
    (scenario, diagnosis)
}

#[tokio::test]
async fn a_proposal_at_or_above_the_tenants_threshold_is_approved_without_review_once() {
    let (scenario, diagnosis) = delivered_above_the_threshold().await;

    let decisions = decision_events(&scenario, diagnosis);
    assert_eq!(decisions.len(), 1);
    assert!(format!("{:?}", decisions[0].event).contains("AutoApproved"));
}

#[tokio::test]
async fn a_proposal_below_the_threshold_or_without_one_waits_for_a_consultant() {
    for threshold in [Some(0.95), None] {
        let scenario = Scenario::given(vec![]).await;
        with_threshold(&scenario, threshold).await;
        let diagnosis = proposed(&scenario, "Cap?", None).await;

        deliver_twice(
            &Reactions::new(scenario.service.clone()),
            &proposal_events(&scenario, diagnosis),
        )
        .await;

        assert!(
            decision_events(&scenario, diagnosis).is_empty(),
            "{threshold:?}"
        );
    }
}

#[tokio::test]
async fn a_suspended_tenants_proposals_are_never_approved_without_review() {
    let scenario = Scenario::given(vec![]).await;
    with_threshold(&scenario, Some(0.5)).await;
    let diagnosis = proposed(&scenario, "Cap?", None).await;
    let operator = ctx(scenario.tenant, Role::Operator, "operator");
    scenario
        .service
        .administer_tenant(
            &operator,
            TenantCommand::Suspend {
                actor: operator.actor.clone(),
                reason: Reason::parse("Unpaid").unwrap(),
            },
        )
        .await
        .expect("suspended");

    deliver_twice(
        &Reactions::new(scenario.service.clone()),
        &proposal_events(&scenario, diagnosis),
    )
    .await;

    assert!(decision_events(&scenario, diagnosis).is_empty());
}

#[tokio::test]
async fn an_event_whose_aggregate_id_is_not_its_types_id_is_a_final_failure() {
    let scenario = Scenario::given(vec![]).await;
    let diagnosis = proposed(&scenario, "Cap?", None).await;
    let mut proposal = proposal_events(&scenario, diagnosis).pop().unwrap();
    proposal.aggregate_id = "not-a-diagnosis-id".into();

    let err = Reactions::new(scenario.service.clone())
        .react(&proposal)
        .await
        .unwrap_err();

    assert!(matches!(err, ReactionError::AggregateId { .. }), "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_store_outage_is_worth_a_retry() {
    let scenario = Scenario::given(vec![]).await;
    let diagnosis = proposed(&scenario, "Cap?", None).await;
    decided(&scenario, diagnosis, ConsultantVerdict::Approve).await;
    scenario
        .stores
        .diagnoses
        .fail_next_append(casebook_application::in_memory::Failure::Unavailable);

    let err = Reactions::new(scenario.service.clone())
        .react(&decision_events(&scenario, diagnosis)[0])
        .await
        .unwrap_err();

    assert!(err.is_retryable(), "{err:?}");
}

/// An identity provider in memory: accounts by address, the tenant each belongs to, and
/// outages on demand.
#[derive(Default)]
struct Accounts {
    accounts: Mutex<Vec<(Email, TenantId, Member)>>,
    down: Mutex<bool>,
    calls: Mutex<usize>,
}

#[async_trait]
impl IdentityProvider for Accounts {
    async fn converge(
        &self,
        tenant: TenantId,
        email: &Email,
        member: &Member,
    ) -> Result<Provisioned, IdentityError> {
        *self.calls.lock().unwrap() += 1;
        if *self.down.lock().unwrap() {
            return Err(IdentityError::Unavailable("the pool is down".into()));
        }
        let mut accounts = self.accounts.lock().unwrap();
        let sub = |email: &Email| format!("sub-{}", email.as_str().replace('@', "-at-"));
        match accounts.iter_mut().find(|(known, ..)| known == email) {
            Some((_, owner, _)) if *owner != tenant => Err(IdentityError::OtherTenant {
                email: email.clone(),
            }),
            Some((_, _, account)) => {
                *account = member.clone();
                Ok(Provisioned {
                    sub: sub(email),
                    temporary_password: None,
                })
            }
            None => {
                accounts.push((email.clone(), tenant, member.clone()));
                Ok(Provisioned {
                    sub: sub(email),
                    temporary_password: Some("Temp-1234".into()),
                })
            }
        }
    }
}

async fn invite(scenario: &Scenario, address: &str, role: Role) -> Email {
    let email = Email::parse(address).unwrap();
    let admin = ctx(scenario.tenant, Role::Admin, "admin");
    let invitee = Invitee {
        email: email.clone(),
        name: PersonName::parse("Ann Example").unwrap(),
    };
    scenario
        .service
        .invite_user(&admin, invitee, role)
        .await
        .expect("invited");
    email
}

#[tokio::test]
async fn an_invited_member_gets_an_account_an_invitation_and_their_subject_recorded_once() {
    let scenario = Scenario::given(vec![]).await;
    let email = invite(&scenario, "ann@acme.test", Role::Consultant).await;
    let accounts = Arc::new(Accounts::default());
    let mailbox = Arc::new(KeptMailbox::default());
    let people = People::new(scenario.service.clone(), accounts.clone(), mailbox.clone());

    deliver_twice(&people, &tenant_events(&scenario)).await;

    let tenant = scenario
        .service
        .tenant_state(scenario.tenant)
        .await
        .unwrap();
    let member = tenant.member(&email).unwrap();
    assert_eq!(
        member.user_id.as_ref().unwrap().as_str(),
        "sub-ann-at-acme.test"
    );
    assert_eq!(mailbox.invitations_to(&email), 1, "invited once");
    assert_eq!(mailbox.temporary_password(&email).unwrap(), "Temp-1234");
    let provisioned = tenant_events(&scenario)
        .iter()
        .filter(|e| {
            matches!(
                e.event,
                AnyEvent::Tenant(TenantEvent::UserProvisioned { .. })
            )
        })
        .count();
    assert_eq!(provisioned, 1);
}

#[tokio::test]
async fn a_disabled_member_is_disabled_at_the_provider_as_the_tenant_says_now() {
    let scenario = Scenario::given(vec![]).await;
    let email = invite(&scenario, "ann@acme.test", Role::Consultant).await;
    let admin = ctx(scenario.tenant, Role::Admin, "admin");
    scenario
        .service
        .administer_tenant(
            &admin,
            TenantCommand::DisableUser {
                actor: admin.actor.clone(),
                email: email.clone(),
            },
        )
        .await
        .unwrap();
    let accounts = Arc::new(Accounts::default());
    let people = People::new(
        scenario.service.clone(),
        accounts.clone(),
        Arc::new(KeptMailbox::default()),
    );

    // Even the invitation, delivered late, converges to the tenant's current word.
    deliver_twice(&people, &tenant_events(&scenario)).await;

    let accounts = accounts.accounts.lock().unwrap();
    assert!(!accounts[0].2.enabled);
}

#[tokio::test]
async fn a_provider_outage_is_worth_a_retry_and_loses_nothing() {
    let scenario = Scenario::given(vec![]).await;
    invite(&scenario, "ann@acme.test", Role::Customer).await;
    let accounts = Arc::new(Accounts::default());
    *accounts.down.lock().unwrap() = true;
    let people = People::new(
        scenario.service.clone(),
        accounts.clone(),
        Arc::new(KeptMailbox::default()),
    );
    let invited = tenant_events(&scenario).pop().unwrap();

    let err = people.react(&invited).await.unwrap_err();

    assert!(matches!(err, ReactionError::Outside(..)), "{err:?}");
    assert!(err.is_retryable());
    *accounts.down.lock().unwrap() = false;
    people.react(&invited).await.expect("after the outage");
}

#[tokio::test]
async fn an_account_of_another_tenant_is_left_alone_without_holding_up_the_rest() {
    let acme = Scenario::given(vec![]).await;
    let globex = Scenario::given(vec![]).await;
    let accounts = Arc::new(Accounts::default());
    let email = Email::parse("ann@acme.test").unwrap();
    accounts.accounts.lock().unwrap().push((
        email.clone(),
        globex.tenant,
        Member {
            name: PersonName::parse("Ann").unwrap(),
            role: Role::Customer,
            enabled: true,
            user_id: None,
        },
    ));
    invite(&acme, "ann@acme.test", Role::Consultant).await;
    let people = People::new(
        acme.service.clone(),
        accounts.clone(),
        Arc::new(KeptMailbox::default()),
    );

    deliver_twice(&people, &tenant_events(&acme)).await;

    let tenant = acme.service.tenant_state(acme.tenant).await.unwrap();
    assert!(tenant.member(&email).unwrap().user_id.is_none());
    assert_eq!(accounts.accounts.lock().unwrap()[0].1, globex.tenant);
}

#[tokio::test]
async fn an_event_naming_a_member_the_tenant_does_not_know_is_a_final_failure() {
    let scenario = Scenario::given(vec![]).await;
    invite(&scenario, "ann@acme.test", Role::Customer).await;
    let mut invited = tenant_events(&scenario).pop().unwrap();
    let AnyEvent::Tenant(TenantEvent::UserInvited { invitee, .. }) = &mut invited.event else {
        panic!("{invited:?}");
    };
    invitee.email = Email::parse("nobody@acme.test").unwrap();
    let people = People::new(
        scenario.service.clone(),
        Arc::new(Accounts::default()),
        Arc::new(KeptMailbox::default()),
    );

    let err = people.react(&invited).await.unwrap_err();

    assert!(
        matches!(err, ReactionError::UnknownMember { .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

/// The gateway's keys in memory: one per tenant, on one plan at a time.
#[derive(Default)]
struct Gateway {
    plans: Mutex<Vec<(TenantId, PlanTier)>>,
    outages: Mutex<VecDeque<()>>,
}

#[async_trait]
impl UsageKeys for Gateway {
    async fn put_on_plan(&self, tenant: TenantId, plan: PlanTier) -> Result<String, BoxError> {
        if self.outages.lock().unwrap().pop_front().is_some() {
            return Err("the gateway is down".into());
        }
        self.plans.lock().unwrap().push((tenant, plan));
        Ok(format!("key-{tenant}"))
    }

    async fn key_value(&self, key_id: &str) -> Result<String, BoxError> {
        Ok(format!("value-of-{key_id}"))
    }
}

#[tokio::test]
async fn an_onboarded_tenants_key_is_put_on_its_plan_and_recorded_once() {
    let scenario = Scenario::given(vec![]).await;
    let gateway = Arc::new(Gateway::default());
    let keys = UsageKeyAssignment::new(scenario.service.clone(), gateway.clone());

    deliver_twice(&keys, &tenant_events(&scenario)).await;

    assert_eq!(
        *gateway.plans.lock().unwrap(),
        [(scenario.tenant, PlanTier::Professional)]
    );
    let tenant = scenario
        .service
        .tenant_state(scenario.tenant)
        .await
        .unwrap();
    assert!(tenant.usage_key_on_current_plan());
}

#[tokio::test]
async fn a_replayed_old_plan_change_never_moves_the_key_back() {
    let scenario = Scenario::given(vec![]).await;
    let operator = ctx(scenario.tenant, Role::Operator, "operator");
    scenario
        .service
        .administer_tenant(
            &operator,
            TenantCommand::ChangePlan {
                actor: operator.actor.clone(),
                plan: PlanTier::Enterprise,
            },
        )
        .await
        .unwrap();
    let gateway = Arc::new(Gateway::default());
    let keys = UsageKeyAssignment::new(scenario.service.clone(), gateway.clone());

    deliver_twice(&keys, &tenant_events(&scenario)).await;

    assert_eq!(
        *gateway.plans.lock().unwrap(),
        [(scenario.tenant, PlanTier::Enterprise)],
        "only the current plan, once"
    );
}

#[tokio::test]
async fn a_gateway_outage_is_worth_a_retry() {
    let scenario = Scenario::given(vec![]).await;
    let gateway = Arc::new(Gateway::default());
    gateway.outages.lock().unwrap().push_back(());
    let keys = UsageKeyAssignment::new(scenario.service.clone(), gateway.clone());
    let onboarded = tenant_events(&scenario).remove(0);

    let err = keys.react(&onboarded).await.unwrap_err();

    assert!(err.is_retryable(), "{err:?}");
    keys.react(&onboarded).await.expect("after the outage");
    assert_eq!(gateway.plans.lock().unwrap().len(), 1);
}

/// Every event of `diagnosis`'s story as the log delivers it: the query, the proposal, the
/// decision.
fn story(scenario: &Scenario, diagnosis: DiagnosisId) -> Vec<Delivered> {
    let proposal = proposal_events(scenario, diagnosis);
    let AnyEvent::Diagnosis(DiagnosisEvent::DiagnosisRequested { session_id, .. }) =
        &proposal[0].event
    else {
        panic!("a diagnosis starts with its request");
    };
    let mut events = delivered::<TenantSession>(
        &scenario.stores.sessions,
        &session_id.to_string(),
        AnyEvent::Session,
    );
    events.extend(proposal);
    events.extend(decision_events(scenario, diagnosis));
    events
}

fn business_events(scenario: &Scenario, log: &Arc<KeptBusinessLog>) -> BusinessEvents {
    BusinessEvents::new(log.clone(), scenario.stores.diagnoses.clone())
}

#[tokio::test]
async fn a_query_its_proposal_and_its_decision_are_told_in_the_querys_chain() {
    let scenario = Scenario::given(vec![]).await;
    let diagnosis = proposed(&scenario, "Is the cap enforceable?", None).await;
    decided(
        &scenario,
        diagnosis,
        ConsultantVerdict::Reject {
            reason: Reason::parse("Cites the wrong statute").unwrap(),
        },
    )
    .await;
    let log = Arc::new(KeptBusinessLog::default());

    deliver_twice(
        &business_events(&scenario, &log),
        &story(&scenario, diagnosis),
    )
    .await;

    let told = log.events();
    let kinds: Vec<_> = told.iter().map(|event| event.kind).collect();
    assert_eq!(
        kinds,
        [
            "query_submitted",
            "diagnosis_proposed",
            "consultant_decided",
            "query_submitted",
            "diagnosis_proposed",
            "consultant_decided"
        ],
        "one record per delivered event"
    );
    // A redelivery repeats the same event id, which readers count once.
    assert_eq!(told[0].event_id, told[3].event_id);
    let chain = &told[0].correlation_id;
    assert!(
        told.iter().all(|event| &event.correlation_id == chain),
        "the consultant's decision joins the customer's chain: {told:#?}"
    );
    assert_ne!(
        told[2].request_id, told[0].request_id,
        "each keeps its own request"
    );
    assert!(told[2].message.contains("rejected"));
    assert!(told[2].message.contains("Cites the wrong statute"));
    let proposal = &told[1];
    assert!(proposal.message.contains("haiku"), "{}", proposal.message);
    let tokens = proposal
        .measures
        .iter()
        .find(|measure| measure.metric == "LlmTokens")
        .expect("tokens measured");
    let dimensions: Vec<_> = tokens.dimensions.iter().map(|(name, _)| *name).collect();
    assert_eq!(dimensions, ["Model", "Tier"]);
    assert!(
        told.iter()
            .flat_map(|event| &event.measures)
            .all(|measure| measure.dimensions.iter().all(|(name, _)| *name != "Tenant")),
        "the tenant is a property, never a dimension"
    );
    assert!(told.iter().all(|event| event.tenant_id == scenario.tenant));
}

#[tokio::test]
async fn an_approval_without_review_is_told_with_its_threshold() {
    let (scenario, diagnosis) = delivered_above_the_threshold().await;
    let log = Arc::new(KeptBusinessLog::default());

    business_events(&scenario, &log)
        .react(&decision_events(&scenario, diagnosis)[0])
        .await
        .expect("told");

    let [approval] = log.events().try_into().expect("one record");
    assert_eq!(approval.kind, "auto_approved");
    assert!(
        approval.message.contains("threshold 0.85"),
        "{}",
        approval.message
    );
    let metrics: Vec<_> = approval.measures.iter().map(|m| m.metric).collect();
    assert_eq!(metrics, ["Decisions", "AutoApprovals"]);
}
