use casebook_domain::actor::{Actor, Role};
use casebook_domain::decision::Outcome;
use casebook_domain::diagnosis::{
    attachment_text, is_text, retrieval_text, skip_reason, AttachmentOutcome, AttachmentRead,
    AttachmentText, Diagnosis, DiagnosisCommand, DiagnosisError, DiagnosisEvent, DiagnosisStatus,
    EmbeddingModel, Finding, PrecedentSource, Provenance, ProvenanceDefect, RetrievedJudgment,
    Severity, SkipReason, RETRIEVAL_TEXT_LIMIT,
};
use casebook_domain::error::AccessError;
use casebook_domain::ids::{DecisionId, JudgmentId, QueryId, SessionId};
use casebook_domain::policy::{ModelTier, MAX_DIAGNOSIS_ATTEMPTS};
use casebook_domain::ports::StopReason;
use casebook_domain::values::QueryText;
use cqrs_es::test::TestFramework;
use cqrs_es::{Aggregate, DomainEvent};
use uuid::Uuid;

use crate::support::{actor, conf, user, v, DIAGNOSIS, OTHER_TENANT, TENANT};

const SESSION: SessionId = SessionId::from_uuid(Uuid::from_u128(0x5E));
const QUERY: QueryId = QueryId::from_uuid(Uuid::from_u128(0x01));
const PRECEDENT: JudgmentId = JudgmentId::from_uuid(Uuid::from_u128(0x77));

fn diagnosis() -> TestFramework<Diagnosis> {
    TestFramework::with(())
}

fn system() -> Actor {
    Actor::system(TENANT)
}

fn request(actor: Actor, tenant_active: bool) -> DiagnosisCommand {
    DiagnosisCommand::Request {
        actor,
        diagnosis_id: DIAGNOSIS,
        session_id: SESSION,
        query_id: QUERY,
        query: v("Is this lease a finance lease?"),
        tenant_active,
    }
}

fn context() -> Vec<RetrievedJudgment> {
    vec![RetrievedJudgment {
        judgment_id: PRECEDENT,
        score: 0.82,
    }]
}

fn record_context(actor: Actor) -> DiagnosisCommand {
    DiagnosisCommand::RecordContext {
        actor,
        judgments: context(),
    }
}

pub fn provenance() -> Provenance {
    Provenance {
        model_id: "anthropic.claude-sonnet".to_owned(),
        model_tier: ModelTier::Standard,
        prompt_template_id: "diagnose/v3".to_owned(),
        prompt_template_hash: "sha256:abc123".to_owned(),
        retrieved_judgment_ids: vec![PRECEDENT],
        input_tokens: 1_200,
        output_tokens: 300,
        cost_usd_micros: 4_500,
        stop_reason: Some(StopReason::EndTurn),
        embedding: Some(EmbeddingModel {
            model_id: "all-MiniLM-L6-v2".to_owned(),
            dimension: 384,
        }),
        precedents: Some(vec![PrecedentSource {
            judgment_id: PRECEDENT,
            score: 0.82,
            source_position: 41,
        }]),
        attachments: Some(vec![
            AttachmentRead {
                key: v(&format!("{TENANT}/uploads/1/lease.txt")),
                content_type: Some("text/plain".to_owned()),
                outcome: AttachmentOutcome::Included {
                    bytes: 2_048,
                    truncated: false,
                },
            },
            AttachmentRead {
                key: v(&format!("{TENANT}/uploads/2/scan.pdf")),
                content_type: Some("application/pdf".to_owned()),
                outcome: AttachmentOutcome::Skipped {
                    reason: SkipReason::NotText,
                },
            },
        ]),
    }
}

fn findings() -> Vec<Finding> {
    vec![Finding {
        summary: "Transfer of ownership at term end".to_owned(),
        detail: None,
        severity: Severity::Medium,
    }]
}

fn propose(actor: Actor) -> DiagnosisCommand {
    DiagnosisCommand::Propose {
        actor,
        text: v("A finance lease: ownership transfers at the end of the term."),
        findings: findings(),
        confidence: conf(0.87),
        provenance: provenance(),
    }
}

fn fail(retryable: bool) -> DiagnosisCommand {
    DiagnosisCommand::Fail {
        actor: system(),
        reason: v("model throttled"),
        retryable,
    }
}

fn resolve(decision_id: DecisionId) -> DiagnosisCommand {
    DiagnosisCommand::Resolve {
        actor: system(),
        decision_id,
        outcome: Outcome::Approved,
    }
}

fn requested() -> Vec<DiagnosisEvent> {
    vec![DiagnosisEvent::DiagnosisRequested {
        diagnosis_id: DIAGNOSIS,
        tenant_id: TENANT,
        session_id: SESSION,
        query_id: QUERY,
        query: v("Is this lease a finance lease?"),
        requested_by: user(Role::Customer),
    }]
}

fn context_retrieved(attempt: u32) -> DiagnosisEvent {
    DiagnosisEvent::ContextRetrieved {
        attempt,
        judgments: context(),
    }
}

fn failed(attempt: u32, retryable: bool) -> DiagnosisEvent {
    DiagnosisEvent::DiagnosisFailed {
        attempt,
        reason: v("model throttled"),
        retryable,
    }
}

fn proposed_event() -> DiagnosisEvent {
    DiagnosisEvent::DiagnosisProposed {
        text: v("A finance lease: ownership transfers at the end of the term."),
        findings: findings(),
        confidence: conf(0.87),
        provenance: provenance(),
    }
}

fn with(
    mut events: Vec<DiagnosisEvent>,
    more: impl IntoIterator<Item = DiagnosisEvent>,
) -> Vec<DiagnosisEvent> {
    events.extend(more);
    events
}

fn proposed() -> Vec<DiagnosisEvent> {
    with(requested(), [context_retrieved(1), proposed_event()])
}

fn resolved() -> Vec<DiagnosisEvent> {
    with(
        proposed(),
        [DiagnosisEvent::DiagnosisResolved {
            decision_id: DecisionId::for_diagnosis(DIAGNOSIS),
            outcome: Outcome::Approved,
        }],
    )
}

fn illegal(command: &'static str, status: DiagnosisStatus) -> DiagnosisError {
    DiagnosisError::IllegalTransition { command, status }
}

#[test]
fn a_customer_requests_a_diagnosis() {
    diagnosis()
        .given_no_previous_events()
        .when(request(actor(Role::Customer, TENANT), true))
        .then_expect_events(requested());
}

#[test]
fn a_suspended_tenant_cannot_request_a_diagnosis() {
    diagnosis()
        .given_no_previous_events()
        .when(request(actor(Role::Customer, TENANT), false))
        .then_expect_error(DiagnosisError::TenantSuspended);
}

#[test]
fn a_consultant_cannot_request_a_diagnosis() {
    diagnosis()
        .given_no_previous_events()
        .when(request(actor(Role::Consultant, TENANT), true))
        .then_expect_error(DiagnosisError::Access(AccessError::Forbidden {
            role: Role::Consultant,
        }));
}

#[test]
fn requesting_twice_is_refused() {
    diagnosis()
        .given(requested())
        .when(request(actor(Role::Customer, TENANT), true))
        .then_expect_error(DiagnosisError::AlreadyRequested);
}

#[test]
fn the_system_records_the_retrieved_context() {
    diagnosis()
        .given(requested())
        .when(record_context(system()))
        .then_expect_events(vec![context_retrieved(1)]);
}

#[test]
fn a_customer_cannot_record_context() {
    diagnosis()
        .given(requested())
        .when(record_context(actor(Role::Customer, TENANT)))
        .then_expect_error(DiagnosisError::Access(AccessError::Forbidden {
            role: Role::Customer,
        }));
}

#[test]
fn the_system_acting_for_another_tenant_finds_nothing() {
    diagnosis()
        .given(requested())
        .when(record_context(Actor::system(OTHER_TENANT)))
        .then_expect_error(DiagnosisError::Access(AccessError::NotFound));
}

#[test]
fn context_is_not_recorded_twice_in_one_attempt() {
    diagnosis()
        .given(with(requested(), [context_retrieved(1)]))
        .when(record_context(system()))
        .then_expect_error(illegal(
            "record context for",
            DiagnosisStatus::ContextRetrieved,
        ));
}

#[test]
fn the_system_proposes_after_retrieving_context() {
    diagnosis()
        .given(with(requested(), [context_retrieved(1)]))
        .when(propose(system()))
        .then_expect_events(vec![proposed_event()]);
}

#[test]
fn a_proposal_records_its_full_provenance_as_version_3() {
    let event = proposed_event();
    assert_eq!(event.event_version(), "3");
    let DiagnosisEvent::DiagnosisProposed { provenance, .. } = &event else {
        unreachable!()
    };
    assert_eq!(provenance.defect(), None);
    let json = serde_json::to_value(&event).expect("serializes");
    assert_eq!(json["provenance"]["stop_reason"], "end_turn");
    assert_eq!(
        json["provenance"]["embedding"],
        serde_json::json!({"model_id": "all-MiniLM-L6-v2", "dimension": 384})
    );
    assert_eq!(json["provenance"]["precedents"][0]["source_position"], 41);
    assert_eq!(
        json["provenance"]["attachments"][1]["outcome"],
        serde_json::json!({"status": "skipped", "reason": "not_text"})
    );
    let back: DiagnosisEvent = serde_json::from_value(json).expect("deserializes");
    assert_eq!(back, event);
}

fn propose_with(provenance: Provenance) -> DiagnosisCommand {
    DiagnosisCommand::Propose {
        actor: system(),
        text: v("A finance lease."),
        findings: vec![],
        confidence: conf(0.5),
        provenance,
    }
}

#[test]
fn a_proposal_whose_precedents_are_not_its_retrieved_judgments_is_invalid() {
    for retrieved in [
        vec![JudgmentId::from_uuid(Uuid::from_u128(0x78))],
        vec![PRECEDENT, PRECEDENT],
        vec![],
    ] {
        diagnosis()
            .given(with(requested(), [context_retrieved(1)]))
            .when(propose_with(Provenance {
                retrieved_judgment_ids: retrieved,
                ..provenance()
            }))
            .then_expect_error(DiagnosisError::InvalidProvenance(
                ProvenanceDefect::PrecedentsDisagree,
            ));
    }
}

#[test]
fn a_new_proposal_without_any_part_of_its_v3_provenance_is_invalid() {
    let full = provenance();
    for incomplete in [
        Provenance {
            stop_reason: None,
            ..full.clone()
        },
        Provenance {
            embedding: None,
            ..full.clone()
        },
        Provenance {
            precedents: None,
            ..full.clone()
        },
        Provenance {
            attachments: None,
            ..full.clone()
        },
    ] {
        diagnosis()
            .given(with(requested(), [context_retrieved(1)]))
            .when(propose_with(incomplete))
            .then_expect_error(DiagnosisError::InvalidProvenance(
                ProvenanceDefect::Incomplete,
            ));
    }
}

#[test]
fn text_attachments_are_text_and_json_whatever_their_parameters() {
    for text in [
        "text/plain",
        "text/csv",
        "Text/Markdown; charset=utf-8",
        "application/json",
        " application/JSON ;charset=utf-8",
    ] {
        assert!(is_text(text), "{text}");
    }
    for binary in [
        "application/pdf",
        "image/png",
        "application/octet-stream",
        "application/jsonx",
        "",
        "textplain",
    ] {
        assert!(!is_text(binary), "{binary}");
    }
}

#[test]
fn only_non_empty_text_attachments_are_read() {
    assert_eq!(skip_reason(Some("text/plain"), 12), None);
    assert_eq!(skip_reason(Some("application/json"), 1), None);
    assert_eq!(skip_reason(Some("text/plain"), 0), Some(SkipReason::Empty));
    assert_eq!(
        skip_reason(Some("image/png"), 12),
        Some(SkipReason::NotText)
    );
    assert_eq!(skip_reason(None, 12), Some(SkipReason::NotText));
}

#[test]
fn a_truncated_attachment_ends_on_a_character_boundary() {
    let text = "Clause 7 — liability: €1 m cap 🙂";
    let bytes = text.as_bytes();
    for cut in 0..=bytes.len() {
        let truncated = cut < bytes.len();
        let read = attachment_text(&bytes[..cut], truncated);
        assert!(text.starts_with(&read), "cut {cut}: {read:?}");
        assert!(!read.contains('\u{FFFD}'), "cut {cut}: {read:?}");
        // Only the cut character is dropped (at most 3 bytes of it).
        assert!(cut - read.len() <= 3, "cut {cut}: {read:?}");
    }
    assert_eq!(attachment_text(bytes, false), text);
    // Bytes that are not UTF-8 anywhere else are replaced, not fatal.
    assert_eq!(attachment_text(b"caf\xE9 ok", false), "caf\u{FFFD} ok");
    assert_eq!(attachment_text(b"caf\xE9 ok", true), "caf\u{FFFD} ok");
}

#[test]
fn the_retrieval_text_is_the_query_then_the_attachments_bounded() {
    let query: QueryText = v("Is the cap enforceable?");
    let attachment = |name: &str, text: &str| AttachmentText {
        key: v(&format!("{TENANT}/uploads/1/{name}")),
        text: text.to_owned(),
    };
    let contract = attachment("contract.txt", "The cap is 1 m.");
    assert_eq!(contract.file_name(), "contract.txt");
    assert_eq!(retrieval_text(&query, &[]), "Is the cap enforceable?");
    assert_eq!(
        retrieval_text(&query, &[contract, attachment("notes.md", "Signed 2024.")]),
        "Is the cap enforceable?\n\nThe cap is 1 m.\n\nSigned 2024."
    );
    let long = attachment("long.txt", &"é".repeat(RETRIEVAL_TEXT_LIMIT));
    let text = retrieval_text(&query, &[long]);
    assert_eq!(text.chars().count(), RETRIEVAL_TEXT_LIMIT);
    assert!(text.starts_with("Is the cap enforceable?\n\néé"));
}

#[test]
fn a_proposal_needs_retrieved_context() {
    diagnosis()
        .given(requested())
        .when(propose(system()))
        .then_expect_error(illegal("propose", DiagnosisStatus::Requested));
}

#[test]
fn a_proposal_for_a_missing_diagnosis_is_not_found() {
    diagnosis()
        .given_no_previous_events()
        .when(propose(system()))
        .then_expect_error(DiagnosisError::Access(AccessError::NotFound));
}

#[test]
fn a_retryable_failure_allows_another_attempt() {
    diagnosis()
        .given(with(requested(), [context_retrieved(1)]))
        .when(fail(true))
        .then_expect_events(vec![failed(1, true)]);
    diagnosis()
        .given(with(requested(), [context_retrieved(1), failed(1, true)]))
        .when(record_context(system()))
        .then_expect_events(vec![context_retrieved(2)]);
}

#[test]
fn a_failure_before_retrieval_is_retryable_too() {
    diagnosis()
        .given(requested())
        .when(fail(true))
        .then_expect_events(vec![failed(1, true)]);
}

#[test]
fn a_final_failure_is_terminal() {
    let events = with(requested(), [context_retrieved(1), failed(1, false)]);
    diagnosis()
        .given(events.clone())
        .when(record_context(system()))
        .then_expect_error(illegal(
            "record context for",
            DiagnosisStatus::Failed { retryable: false },
        ));
    diagnosis()
        .given(events)
        .when(propose(system()))
        .then_expect_error(illegal(
            "propose",
            DiagnosisStatus::Failed { retryable: false },
        ));
}

#[test]
fn the_last_attempt_fails_for_good() {
    let mut events = requested();
    for attempt in 1..MAX_DIAGNOSIS_ATTEMPTS {
        events.extend([context_retrieved(attempt), failed(attempt, true)]);
    }
    events.push(context_retrieved(MAX_DIAGNOSIS_ATTEMPTS));
    diagnosis()
        .given(events)
        .when(fail(true))
        .then_expect_events(vec![failed(MAX_DIAGNOSIS_ATTEMPTS, false)]);
}

#[test]
fn a_proposed_diagnosis_cannot_fail() {
    diagnosis()
        .given(proposed())
        .when(fail(true))
        .then_expect_error(illegal("fail", DiagnosisStatus::Proposed));
}

#[test]
fn the_system_resolves_a_proposal_with_its_decision() {
    let decision_id = DecisionId::for_diagnosis(DIAGNOSIS);
    diagnosis()
        .given(proposed())
        .when(resolve(decision_id))
        .then_expect_events(vec![DiagnosisEvent::DiagnosisResolved {
            decision_id,
            outcome: Outcome::Approved,
        }]);
}

#[test]
fn only_a_proposal_is_resolved() {
    diagnosis()
        .given(with(requested(), [context_retrieved(1)]))
        .when(resolve(DecisionId::for_diagnosis(DIAGNOSIS)))
        .then_expect_error(illegal("resolve", DiagnosisStatus::ContextRetrieved));
}

#[test]
fn resolving_twice_is_refused() {
    diagnosis()
        .given(resolved())
        .when(resolve(DecisionId::for_diagnosis(DIAGNOSIS)))
        .then_expect_error(illegal(
            "resolve",
            DiagnosisStatus::Resolved {
                outcome: Outcome::Approved,
            },
        ));
}

#[test]
fn another_diagnosis_decision_does_not_resolve_this_one() {
    let foreign = DecisionId::from_uuid(Uuid::from_u128(0xBAD));
    diagnosis()
        .given(proposed())
        .when(resolve(foreign))
        .then_expect_error(DiagnosisError::ForeignDecision {
            decision_id: foreign,
        });
}

#[test]
fn the_snapshot_carries_the_confidence_only_while_proposed() {
    let replay = |events: Vec<DiagnosisEvent>| {
        let mut diagnosis = Diagnosis::default();
        events.into_iter().for_each(|e| diagnosis.apply(e));
        diagnosis
    };
    assert_eq!(Diagnosis::default().snapshot(), None);

    let waiting = replay(requested()).snapshot().expect("requested");
    assert_eq!(
        (waiting.diagnosis_id, waiting.tenant_id),
        (DIAGNOSIS, TENANT)
    );
    assert_eq!(waiting.proposed_confidence, None);

    let proposed = replay(proposed());
    assert_eq!(proposed.status(), Some(DiagnosisStatus::Proposed));
    assert_eq!(
        proposed.snapshot().and_then(|s| s.proposed_confidence),
        Some(conf(0.87))
    );

    assert_eq!(
        replay(resolved())
            .snapshot()
            .and_then(|s| s.proposed_confidence),
        None
    );
}
