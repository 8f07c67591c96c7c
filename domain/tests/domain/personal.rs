//! The inventory of personal fields against the stored shapes: every pointer names a value
//! some stored event of its type holds, and every event read with its personal fields
//! redacted (their key destroyed) still decodes.

use std::collections::BTreeSet;

use casebook_domain::any_event::AnyEvent;
use casebook_domain::personal::personal_fields;
use serde_json::Value;

use crate::history::history;

#[test]
fn every_personal_field_names_a_value_the_stored_events_hold() {
    let rows = history();
    let mut found = BTreeSet::new();
    for row in &rows {
        for field in personal_fields(&row.aggregate_type, &row.event_type) {
            if row
                .payload
                .pointer(field.pointer)
                .is_some_and(|v| !v.is_null())
            {
                found.insert((row.event_type.as_str(), field.pointer));
            }
        }
    }
    let listed: BTreeSet<(&str, &str)> = rows
        .iter()
        .flat_map(|row| {
            personal_fields(&row.aggregate_type, &row.event_type)
                .iter()
                .map(|field| (row.event_type.as_str(), field.pointer))
        })
        .collect();
    assert!(!listed.is_empty(), "the inventory lists nothing");
    let missing: Vec<_> = listed.difference(&found).collect();
    assert!(missing.is_empty(), "pointers no fixture holds: {missing:?}");
}

#[test]
fn every_event_decodes_with_its_personal_fields_redacted() {
    let mut redacted_some = 0;
    for row in history() {
        let mut payload = row.payload.clone();
        for field in personal_fields(&row.aggregate_type, &row.event_type) {
            if let Some(value) = payload.pointer_mut(field.pointer) {
                if !value.is_null() {
                    *value =
                        serde_json::from_str::<Value>(field.redacted).expect("a redaction is JSON");
                    redacted_some += 1;
                }
            }
        }
        AnyEvent::decode(
            &row.aggregate_type,
            &row.event_type,
            &row.event_version,
            payload,
        )
        .unwrap_or_else(|err| panic!("{} redacted: {err:?}", row.at()));
    }
    assert!(redacted_some > 0);
}
