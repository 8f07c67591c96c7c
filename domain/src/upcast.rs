//! Bringing stored events of older versions up to the current shape, on raw JSON, before they
//! are deserialized.

use cqrs_es::persist::{EventUpcaster, SemanticVersionEventUpcaster, SerializedEvent};
use serde_json::Value;

/// Every upcaster of the domain, for the event store (`with_upcasters`) and for
/// [`AnyEvent::decode`](crate::any_event::AnyEvent::decode).
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    vec![
        Box::new(diagnosis_proposed_v2()),
        Box::new(diagnosis_proposed_v3()),
    ]
}

/// Runs `event` through every upcaster that applies to it, in order.
pub fn upcast(event: SerializedEvent, upcasters: &[Box<dyn EventUpcaster>]) -> SerializedEvent {
    upcasters.iter().fold(event, |event, upcaster| {
        if upcaster.can_upcast(&event.event_type, &event.event_version) {
            upcaster.upcast(event)
        } else {
            event
        }
    })
}

/// `DiagnosisProposed` v1 had no cost in its provenance; v2 records it, and v1 events get 0.
fn diagnosis_proposed_v2() -> SemanticVersionEventUpcaster {
    SemanticVersionEventUpcaster::new("DiagnosisProposed", "2", Box::new(add_zero_cost))
}

/// Adds `provenance.cost_usd_micros: 0` where it is missing. A payload without a provenance
/// object is left as it is, to fail deserialization loudly rather than be patched up.
fn add_zero_cost(mut payload: Value) -> Value {
    if let Some(provenance) = payload.get_mut("provenance").and_then(Value::as_object_mut) {
        provenance
            .entry("cost_usd_micros")
            .or_insert(Value::from(0_u64));
    }
    payload
}

/// `DiagnosisProposed` v3 added the stop reason, the embedding model, the precedents' sources
/// and the attachments to the provenance; older events did not record them, and say so with
/// `null` ("not recorded") rather than a guess.
fn diagnosis_proposed_v3() -> SemanticVersionEventUpcaster {
    SemanticVersionEventUpcaster::new("DiagnosisProposed", "3", Box::new(add_unrecorded_v3))
}

/// Adds `null` for each v3 provenance field that is missing. As in [`add_zero_cost`], a
/// payload without a provenance object is left to fail deserialization.
fn add_unrecorded_v3(mut payload: Value) -> Value {
    if let Some(provenance) = payload.get_mut("provenance").and_then(Value::as_object_mut) {
        for field in ["stop_reason", "embedding", "precedents", "attachments"] {
            provenance.entry(field).or_insert(Value::Null);
        }
    }
    payload
}
