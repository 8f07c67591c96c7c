use casebook_domain::any_event::{AnyEvent, DecodeError};
use casebook_domain::diagnosis::{DiagnosisEvent, Provenance};
use casebook_domain::upcast::{upcast, upcasters};
use cqrs_es::persist::{SemanticVersion, SerializedEvent};
use cqrs_es::DomainEvent;
use serde_json::{json, Value};

use crate::diagnosis::provenance;

const V1_FIXTURE: &str = include_str!("../fixtures/diagnosis_proposed_v1.json");

fn fixture() -> SerializedEvent {
    let stored: Value = serde_json::from_str(V1_FIXTURE).expect("fixture is JSON");
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

fn v1_provenance_with_zero_cost() -> Provenance {
    Provenance {
        cost_usd_micros: 0,
        ..provenance()
    }
}

#[test]
fn a_stored_v1_proposal_is_upcast_to_v2_with_zero_cost() {
    let stored = fixture();
    assert!(serde_json::from_value::<DiagnosisEvent>(stored.payload.clone()).is_err());

    let upcast = upcast(stored.clone(), &upcasters());
    assert_eq!(upcast.event_version.parse(), "2".parse::<SemanticVersion>());
    assert_eq!(
        (&upcast.aggregate_id, upcast.sequence, &upcast.metadata),
        (&stored.aggregate_id, stored.sequence, &stored.metadata)
    );
    assert_eq!(upcast.payload["provenance"]["cost_usd_micros"], json!(0));

    let event: DiagnosisEvent = serde_json::from_value(upcast.payload).expect("v2 shape");
    assert_eq!(event.event_version(), "2");
    match event {
        DiagnosisEvent::DiagnosisProposed {
            confidence,
            provenance,
            ..
        } => {
            assert_eq!(confidence.value(), 0.87);
            assert_eq!(provenance, v1_provenance_with_zero_cost());
        }
        other => panic!("expected a proposal, got {other:?}"),
    }
}

#[test]
fn the_v1_fixture_decodes_as_any_event() {
    let stored = fixture();
    let decoded = AnyEvent::decode(
        &stored.aggregate_type,
        &stored.event_type,
        &stored.event_version,
        stored.payload,
    )
    .expect("decodes");
    let AnyEvent::Diagnosis(DiagnosisEvent::DiagnosisProposed { provenance, .. }) = decoded else {
        panic!("expected a diagnosis proposal, got {decoded:?}");
    };
    assert_eq!(provenance, v1_provenance_with_zero_cost());
}

#[test]
fn current_events_pass_the_upcasters_unchanged() {
    let mut stored = fixture();
    stored.event_version = "2".to_owned();
    stored.payload["provenance"]["cost_usd_micros"] = json!(4_500);
    assert_eq!(upcast(stored.clone(), &upcasters()), stored);
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
