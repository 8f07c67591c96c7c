use casebook_domain::any_event::{AnyEvent, DecodeError};
use casebook_domain::diagnosis::{DiagnosisEvent, Provenance};
use casebook_domain::upcast::{upcast, upcasters};
use cqrs_es::persist::{SemanticVersion, SerializedEvent};
use cqrs_es::DomainEvent;
use serde_json::{json, Value};

use crate::diagnosis::provenance;

const V1_FIXTURE: &str = include_str!("../fixtures/diagnosis_proposed_v1.json");
const V2_FIXTURE: &str = include_str!("../fixtures/diagnosis_proposed_v2.json");

fn fixture(text: &str) -> SerializedEvent {
    let stored: Value = serde_json::from_str(text).expect("fixture is JSON");
    let field = |name: &str| stored[name].as_str().expect("string field").to_owned();
    SerializedEvent::new(
        field("aggregate_id"),
        usize::try_from(stored["sequence"].as_u64().expect("sequence")).expect("fits"),
        field("aggregate_type"),
        field("event_type"),
        field("event_version"),
        stored["payload"].clone(),
        stored["metadata"].clone(),
    )
}

/// The provenance an event of `cost` recorded before v3 upcasts to: what it recorded, and
/// "not recorded" for everything v3 added.
fn unrecorded_since_v3(cost_usd_micros: u64) -> Provenance {
    Provenance {
        cost_usd_micros,
        stop_reason: None,
        embedding: None,
        precedents: None,
        attachments: None,
        ..provenance()
    }
}

/// Upcasts `stored` and deserializes it as the current (v3) `DiagnosisEvent`.
fn upcast_to_current(stored: &SerializedEvent) -> Provenance {
    let upcast = upcast(stored.clone(), &upcasters());
    assert_eq!(upcast.event_version.parse(), "3".parse::<SemanticVersion>());
    assert_eq!(
        (&upcast.aggregate_id, upcast.sequence, &upcast.metadata),
        (&stored.aggregate_id, stored.sequence, &stored.metadata)
    );
    for field in ["stop_reason", "embedding", "precedents", "attachments"] {
        assert_eq!(upcast.payload["provenance"][field], Value::Null, "{field}");
    }
    let event: DiagnosisEvent = serde_json::from_value(upcast.payload).expect("v3 shape");
    assert_eq!(event.event_version(), "3");
    match event {
        DiagnosisEvent::DiagnosisProposed {
            confidence,
            provenance,
            ..
        } => {
            assert_eq!(confidence.value(), 0.87);
            provenance
        }
        other => panic!("expected a proposal, got {other:?}"),
    }
}

#[test]
fn a_stored_v1_proposal_is_upcast_to_v3_with_zero_cost_and_nothing_else_invented() {
    let stored = fixture(V1_FIXTURE);
    assert!(serde_json::from_value::<DiagnosisEvent>(stored.payload.clone()).is_err());
    assert_eq!(upcast_to_current(&stored), unrecorded_since_v3(0));
}

#[test]
fn a_stored_v2_proposal_is_upcast_to_v3_keeping_its_cost() {
    let stored = fixture(V2_FIXTURE);
    assert_eq!(upcast_to_current(&stored), unrecorded_since_v3(4_500));
}

#[test]
fn the_v1_and_v2_fixtures_decode_as_any_event() {
    for (text, cost) in [(V1_FIXTURE, 0), (V2_FIXTURE, 4_500)] {
        let stored = fixture(text);
        let decoded = AnyEvent::decode(
            &stored.aggregate_type,
            &stored.event_type,
            &stored.event_version,
            stored.payload,
        )
        .expect("decodes");
        let AnyEvent::Diagnosis(DiagnosisEvent::DiagnosisProposed { provenance, .. }) = decoded
        else {
            panic!("expected a diagnosis proposal, got {decoded:?}");
        };
        assert_eq!(provenance, unrecorded_since_v3(cost));
    }
}

#[test]
fn current_events_pass_the_upcasters_unchanged() {
    let mut stored = fixture(V2_FIXTURE);
    stored.event_version = "3".to_owned();
    stored.payload["provenance"] = serde_json::to_value(provenance()).expect("serializes");
    assert_eq!(upcast(stored.clone(), &upcasters()), stored);
    let decoded = AnyEvent::decode(
        &stored.aggregate_type,
        &stored.event_type,
        &stored.event_version,
        stored.payload,
    )
    .expect("decodes");
    let AnyEvent::Diagnosis(DiagnosisEvent::DiagnosisProposed { provenance: p, .. }) = decoded
    else {
        panic!("expected a diagnosis proposal, got {decoded:?}");
    };
    assert_eq!(p, provenance());
}

#[test]
fn an_unknown_aggregate_type_is_an_error() {
    let err = AnyEvent::decode(
        "Invoice",
        "InvoiceSent",
        "1",
        json!({"type": "InvoiceSent"}),
    )
    .expect_err("unknown");
    assert!(matches!(err, DecodeError::UnknownAggregateType(t) if t == "Invoice"));
}

#[test]
fn a_payload_that_disagrees_with_its_columns_is_an_error() {
    let err = AnyEvent::decode(
        "TenantSession",
        "SessionOpened",
        "1",
        json!({"type": "SessionClosed", "closed_by": "u-1"}),
    )
    .expect_err("mismatch");
    assert!(
        matches!(err, DecodeError::Mismatch { decoded_type, .. } if decoded_type == "SessionClosed")
    );

    let err = AnyEvent::decode(
        "TenantSession",
        "SessionClosed",
        "7",
        json!({"type": "SessionClosed", "closed_by": "u-1"}),
    )
    .expect_err("unknown version");
    assert!(matches!(err, DecodeError::Mismatch { stored_version, .. } if stored_version == "7"));

    let err = AnyEvent::decode(
        "TenantSession",
        "SessionClosed",
        "1",
        json!({"type": "SessionClosed"}),
    )
    .expect_err("missing field");
    assert!(matches!(err, DecodeError::Payload { .. }));
}
