//! The inventory of personal fields against the stored shapes: every pointer names a value
//! some stored event of its type holds, and every event read with its personal fields
//! redacted (their key destroyed) still decodes.

use std::collections::BTreeSet;

use casebook_domain::any_event::AnyEvent;
use casebook_domain::personal::personal_fields;
use serde_json::Value;

use casebook_domain::decision::ConsultantDecision;
use casebook_domain::diagnosis::Diagnosis;
use casebook_domain::judgment::Judgment;
use casebook_domain::session::TenantSession;
use casebook_domain::tenant::Tenant;

use crate::history::{history, rebuild, StoredRow, Wrapped};

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

/// `row` as it reads once its subject is erased, and how many fields that redacted.
fn redacted(row: &StoredRow) -> (StoredRow, usize) {
    let mut row = row.clone();
    let mut fields = 0;
    for field in personal_fields(&row.aggregate_type, &row.event_type) {
        if let Some(value) = row.payload.pointer_mut(field.pointer) {
            if !value.is_null() {
                *value =
                    serde_json::from_str::<Value>(field.redacted).expect("a redaction is JSON");
                fields += 1;
            }
        }
    }
    (row, fields)
}

#[test]
fn every_event_decodes_with_its_personal_fields_redacted() {
    let mut redacted_some = 0;
    for row in history() {
        let (row, fields) = redacted(&row);
        redacted_some += fields;
        AnyEvent::decode(
            &row.aggregate_type,
            &row.event_type,
            &row.event_version,
            row.payload.clone(),
        )
        .unwrap_or_else(|err| panic!("{} redacted: {err:?}", row.at()));
    }
    assert!(redacted_some > 0);
}

/// Every aggregate of the stored history folds to the same state with its personal fields
/// redacted: states hold ids and statuses, never what a subject wrote, so the event store
/// folds a command's aggregate without opening a sealed value, and a snapshot holds nothing
/// an erasure would have to reach.
#[test]
fn every_aggregate_folds_to_the_same_state_with_its_personal_fields_redacted() {
    fn same<A: Wrapped>(history: &[StoredRow], redacted: &[StoredRow]) {
        let redacted = rebuild::<A>(redacted);
        for (id, stream) in rebuild::<A>(history) {
            assert_eq!(
                stream.aggregate,
                redacted[&id].aggregate,
                "{} {id}",
                A::TYPE
            );
        }
    }
    let history = history();
    let redacted: Vec<StoredRow> = history.iter().map(|row| redacted(row).0).collect();
    same::<Tenant>(&history, &redacted);
    same::<TenantSession>(&history, &redacted);
    same::<Diagnosis>(&history, &redacted);
    same::<ConsultantDecision>(&history, &redacted);
    same::<Judgment>(&history, &redacted);
}
