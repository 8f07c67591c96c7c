//! The application service against the real Postgres: the whole happy path, metadata on
//! every event, and tenant isolation.

mod support;

use casebook_adapters::postgres::DbRole;
use casebook_application::reactions::{Reaction, Reactions};
use casebook_application::service::{ConsultantVerdict, RequestContext, Service, ServiceError};
use casebook_domain::actor::{Actor, Role};
use casebook_domain::diagnosis::{
    DiagnosisCommand, EmbeddingModel, Finding, Provenance, RetrievedJudgment, Severity,
};
use casebook_domain::ids::{DecisionId, DiagnosisId, JudgmentId, QueryId, SessionId, TenantId};
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::policy::{ModelTier, PlanTier};
use casebook_domain::ports::StopReason;
use casebook_domain::tenant::TenantCommand;
use casebook_domain::values::{Confidence, DiagnosisText, QueryText, Subject, TenantName};
use casebook_handlers::operator::{Operator, OperatorAction};
use casebook_handlers::reactions::delivered;
use casebook_projections::log::{Checkpoint, LogReader, RecordedEvent, Scope};
use casebook_tests::TestDb;
use futures::TryStreamExt;
use support::scenario::ctx;

fn system(tenant: TenantId) -> RequestContext {
    let actor = Actor::system(tenant);
    let metadata = EventMetadata::new(&actor, "worker-run", Source::Worker);
    RequestContext { actor, metadata }
}

struct Tenant {
    id: TenantId,
    admin: RequestContext,
    customer: RequestContext,
    consultant: RequestContext,
}

async fn onboarded(service: &Service, name: &str) -> Tenant {
    let id = TenantId::new();
    let tenant = Tenant {
        id,
        admin: ctx(id, Role::Admin, &format!("{name}-admin")),
        customer: ctx(id, Role::Customer, &format!("{name}-customer")),
        consultant: ctx(id, Role::Consultant, &format!("{name}-consultant")),
    };
    service
        .onboard_tenant(
            &tenant.admin,
            TenantCommand::Onboard {
                actor: tenant.admin.actor.clone(),
                name: TenantName::parse(name).unwrap(),
                plan: PlanTier::Professional,
            },
        )
        .await
        .expect("onboarded");
    tenant
}

/// Opens a session and submits a query; returns the diagnosis id.
async fn asked(service: &Service, tenant: &Tenant, question: &str) -> (SessionId, DiagnosisId) {
    let session = SessionId::new();
    service
        .open_session(
            &tenant.customer,
            session,
            Subject::parse("Supplier contract").unwrap(),
            vec![],
        )
        .await
        .expect("session opened");
    let query = QueryId::new();
    let accepted = service
        .submit_query(
            &tenant.customer,
            session,
            query,
            QueryText::parse(question).unwrap(),
        )
        .await
        .expect("query submitted");
    let types: Vec<&str> = accepted
        .events
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(types, ["QuerySubmitted", "DiagnosisRequested"]);
    (session, DiagnosisId::for_query(query))
}

async fn proposed(service: &Service, tenant: &Tenant, diagnosis: DiagnosisId) {
    let worker = system(tenant.id);
    service
        .advance_diagnosis(
            &worker,
            diagnosis,
            DiagnosisCommand::RecordContext {
                actor: worker.actor.clone(),
                judgments: vec![RetrievedJudgment {
                    judgment_id: JudgmentId::new(),
                    score: 0.91,
                }],
            },
        )
        .await
        .expect("context recorded");
    service
        .advance_diagnosis(
            &worker,
            diagnosis,
            DiagnosisCommand::Propose {
                actor: worker.actor.clone(),
                text: DiagnosisText::parse("Cap the indemnity at 12 months of fees.").unwrap(),
                findings: vec![Finding {
                    summary: "Uncapped indemnity".into(),
                    detail: None,
                    severity: Severity::High,
                }],
                confidence: Confidence::new(0.72).unwrap(),
                provenance: Provenance {
                    model_id: "anthropic.claude-sonnet".into(),
                    model_tier: ModelTier::Standard,
                    prompt_template_id: "diagnosis/v1".into(),
                    prompt_template_hash: "ab12".into(),
                    retrieved_judgment_ids: vec![],
                    input_tokens: 812,
                    output_tokens: 140,
                    cost_usd_micros: 4_536,
                    stop_reason: Some(StopReason::EndTurn),
                    embedding: Some(EmbeddingModel {
                        model_id: "amazon.titan-embed-text-v2:0".into(),
                        dimension: 1024,
                    }),
                    precedents: Some(vec![]),
                    attachments: Some(vec![]),
                },
            },
        )
        .await
        .expect("proposed");
}

/// How many events the store holds (readable or not yet).
async fn event_count(db: &TestDb) -> usize {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.pool(DbRole::Projector, 1).await)
        .await
        .unwrap();
    count as usize
}

/// Every event, once at least `expected` are readable: the log shows an event when every
/// older transaction in the cluster (other tests' included) has ended.
async fn events(db: &TestDb, expected: usize) -> Vec<RecordedEvent> {
    let reader = LogReader::new(db.pool(DbRole::Projector, 2).await);
    for _ in 0..600 {
        let events: Vec<RecordedEvent> = reader
            .catch_up(Checkpoint::START, Scope::All)
            .try_collect()
            .await
            .unwrap();
        if events.len() >= expected {
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("fewer than {expected} events became readable");
}

#[tokio::test]
async fn a_query_becomes_an_approved_diagnosis_and_captured_judgment_with_full_metadata() {
    let db = TestDb::new().await;
    let service = casebook_handlers::compose::service(db.pool(DbRole::App, 4).await);
    let reactions = Reactions::new(service.clone());
    let tenant = onboarded(&service, "acme").await;
    let (_, diagnosis) = asked(&service, &tenant, "Is this indemnity clause acceptable?").await;
    proposed(&service, &tenant, diagnosis).await;

    service
        .decide(&tenant.consultant, diagnosis, ConsultantVerdict::Approve)
        .await
        .expect("approved");
    // The process managers, as the subscription would run them (twice: at least once).
    for _ in 0..2 {
        for event in events(&db, 7).await {
            reactions
                .react(&delivered(&event).expect("decodable"))
                .await
                .expect("reaction");
        }
    }

    let events = events(&db, 9).await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "TenantOnboarded",
            "SessionOpened",
            "QuerySubmitted",
            "DiagnosisRequested",
            "ContextRetrieved",
            "DiagnosisProposed",
            "DecisionMade",
            "DiagnosisResolved",
            "JudgmentCaptured",
        ]
    );
    for event in &events {
        let metadata =
            EventMetadata::from_json(event.metadata().unwrap()).expect("complete metadata");
        assert_eq!(metadata.tenant_id, tenant.id);
        assert_eq!(event.tenant_id, tenant.id.as_uuid().to_owned());
    }
    let decision = &events[6];
    let resolved = EventMetadata::from_json(events[7].metadata().unwrap()).unwrap();
    assert_eq!(resolved.source, Source::Reaction);
    assert_eq!(resolved.actor_role, Role::System);
    assert_eq!(
        resolved.causation_id,
        format!("ConsultantDecision/{}/1", decision.aggregate_id)
    );
    assert_eq!(resolved.correlation_id, "req-acme-consultant");
    assert_eq!(
        decision.aggregate_id,
        DecisionId::for_diagnosis(diagnosis).to_string()
    );
    let judgment = &events[8];
    assert_eq!(
        judgment.aggregate_id,
        JudgmentId::for_decision(DecisionId::for_diagnosis(diagnosis)).to_string()
    );
    assert!(judgment.payload.get().contains("Cap the indemnity"));
}

#[tokio::test]
async fn another_tenants_resources_are_not_found_and_unchanged() {
    let db = TestDb::new().await;
    let service = casebook_handlers::compose::service(db.pool(DbRole::App, 4).await);
    let acme = onboarded(&service, "acme").await;
    let globex = onboarded(&service, "globex").await;
    let (session, diagnosis) = asked(&service, &acme, "Is this indemnity clause acceptable?").await;
    proposed(&service, &acme, diagnosis).await;
    let before = events(&db, 7).await.len();

    let err = service
        .submit_query(
            &globex.customer,
            session,
            QueryId::new(),
            QueryText::parse("peek").unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::NotFound), "{err:?}");
    let err = service
        .close_session(&globex.customer, session)
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::NotFound), "{err:?}");
    let err = service
        .decide(&globex.consultant, diagnosis, ConsultantVerdict::Approve)
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::NotFound), "{err:?}");

    assert_eq!(event_count(&db).await, before, "nothing appended");
}

#[tokio::test]
async fn a_second_decision_and_a_customer_decision_are_refused() {
    let db = TestDb::new().await;
    let service = casebook_handlers::compose::service(db.pool(DbRole::App, 4).await);
    let acme = onboarded(&service, "acme").await;
    let (_, diagnosis) = asked(&service, &acme, "Is this indemnity clause acceptable?").await;

    let err = service
        .decide(&acme.consultant, diagnosis, ConsultantVerdict::Approve)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ServiceError::Conflict(_)),
        "not proposed yet: {err:?}"
    );

    proposed(&service, &acme, diagnosis).await;
    let err = service
        .decide(&acme.customer, diagnosis, ConsultantVerdict::Approve)
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Forbidden), "{err:?}");
    service
        .decide(&acme.consultant, diagnosis, ConsultantVerdict::Approve)
        .await
        .unwrap();
    let err = service
        .decide(&acme.consultant, diagnosis, ConsultantVerdict::Approve)
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Conflict(_)), "{err:?}");
}

#[tokio::test]
async fn a_suspended_tenant_cannot_open_sessions() {
    let db = TestDb::new().await;
    let service = casebook_handlers::compose::service(db.pool(DbRole::App, 4).await);
    let acme = onboarded(&service, "acme").await;
    // The service has just seen the tenant active: the suspension must still count at once.
    service
        .open_session(
            &acme.customer,
            SessionId::new(),
            Subject::parse("before").unwrap(),
            vec![],
        )
        .await
        .unwrap();
    Operator::new("ops", acme.id, "ops-run")
        .unwrap()
        .apply(
            &service,
            OperatorAction::Suspend(
                casebook_domain::values::Reason::parse("unpaid invoices").unwrap(),
            ),
        )
        .await
        .unwrap();
    let err = service
        .open_session(
            &acme.customer,
            SessionId::new(),
            Subject::parse("x").unwrap(),
            vec![],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Conflict(_)), "{err:?}");
}

#[tokio::test]
async fn opening_a_session_that_exists_is_refused_and_another_tenant_does_not_see_it() {
    let db = TestDb::new().await;
    let service = casebook_handlers::compose::service(db.pool(DbRole::App, 4).await);
    let acme = onboarded(&service, "acme").await;
    let globex = onboarded(&service, "globex").await;
    let session = SessionId::new();
    let subject = || Subject::parse("Supplier contract").unwrap();
    service
        .open_session(&acme.customer, session, subject(), vec![])
        .await
        .expect("opened");
    let before = events(&db, 3).await.len();

    let err = service
        .open_session(&acme.customer, session, subject(), vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Conflict(_)), "{err:?}");
    let err = service
        .open_session(&globex.customer, session, subject(), vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::NotFound), "{err:?}");

    assert_eq!(event_count(&db).await, before, "nothing appended");
}
