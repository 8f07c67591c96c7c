//! Sealing and opening the personal fields of an event's payload, as the domain lists them
//! ([`personal_fields`]).
//!
//! A sealed field is replaced by `{"sealed": {"subject": <id>, "value": <base64>}}`: the
//! subject names the key, the value is the field's JSON sealed under it, bound to the tenant,
//! the subject, the event type and the field. Opening puts the field back, or its redaction
//! when the subject's key is destroyed.

use base64::Engine as _;
use casebook_domain::personal::personal_fields;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::cipher::Key;
use crate::keys::SubjectKeys;
use crate::VaultError;

const SEALED: &str = "sealed";

/// Which event a payload is: the context its fields are sealed in.
#[derive(Debug, Clone, Copy)]
pub struct EventContext<'a> {
    /// The tenant whose log holds it.
    pub tenant: Uuid,
    /// e.g. `TenantSession`.
    pub aggregate_type: &'a str,
    /// e.g. `QuerySubmitted`.
    pub event_type: &'a str,
}

impl EventContext<'_> {
    fn additional_data(&self, subject: &str, pointer: &str) -> Vec<u8> {
        format!(
            "casebook/sealed/v1\0{}\0{subject}\0{}\0{pointer}",
            self.tenant, self.event_type
        )
        .into_bytes()
    }

    /// Whether the event has personal fields at all.
    pub fn is_personal(&self) -> bool {
        !personal_fields(self.aggregate_type, self.event_type).is_empty()
    }
}

/// Seals the payload's personal fields under `subject`'s `key`; returns how many it sealed.
/// Absent and `null` fields, and fields sealed already, are left alone.
pub fn seal(
    payload: &mut Value,
    event: EventContext<'_>,
    subject: &str,
    key: &Key,
) -> Result<usize, VaultError> {
    let mut sealed = 0;
    for field in personal_fields(event.aggregate_type, event.event_type) {
        let Some(value) = payload.pointer_mut(field.pointer) else {
            continue;
        };
        if value.is_null() || sealed_subject(value).is_some() {
            continue;
        }
        let plaintext = serde_json::to_vec(value).map_err(VaultError::Json)?;
        let ciphertext = key.seal(&event.additional_data(subject, field.pointer), &plaintext)?;
        *value = json!({ SEALED: {
            "subject": subject,
            "value": base64::engine::general_purpose::STANDARD.encode(ciphertext),
        }});
        sealed += 1;
    }
    Ok(sealed)
}

/// The subjects whose keys open the payload's sealed fields.
pub fn subjects<'v>(payload: &'v Value, event: EventContext<'_>) -> Vec<&'v str> {
    let mut subjects: Vec<&str> = personal_fields(event.aggregate_type, event.event_type)
        .iter()
        .filter_map(|field| payload.pointer(field.pointer).and_then(sealed_subject))
        .collect();
    subjects.dedup();
    subjects
}

/// Opens the payload's sealed fields with `keys`; a field whose subject is erased becomes its
/// redaction. Returns whether any field was redacted.
pub fn open(
    payload: &mut Value,
    event: EventContext<'_>,
    keys: &SubjectKeys,
) -> Result<bool, VaultError> {
    open_with(payload, event, |subject| keys.get(subject))
}

/// Replaces the payload's sealed fields by their redactions, without any key: what a reader
/// without the vault (an auditor replaying state, which holds nothing personal) decodes.
pub fn redact(payload: &mut Value, event: EventContext<'_>) -> Result<bool, VaultError> {
    open_with(payload, event, |_| Ok(None))
}

fn open_with<'k>(
    payload: &mut Value,
    event: EventContext<'_>,
    key_of: impl Fn(&str) -> Result<Option<&'k Key>, VaultError>,
) -> Result<bool, VaultError> {
    let mut redacted = false;
    for field in personal_fields(event.aggregate_type, event.event_type) {
        let Some(value) = payload.pointer_mut(field.pointer) else {
            continue;
        };
        let Some(subject) = sealed_subject(value) else {
            continue;
        };
        let opened = match key_of(subject)? {
            Some(key) => {
                let ciphertext = value
                    .pointer("/sealed/value")
                    .and_then(Value::as_str)
                    .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
                    .ok_or_else(|| {
                        VaultError::Damaged(format!("the sealed {} is malformed", field.pointer))
                    })?;
                let plaintext =
                    key.open(&event.additional_data(subject, field.pointer), &ciphertext)?;
                serde_json::from_slice(&plaintext).map_err(VaultError::Json)?
            }
            None => {
                redacted = true;
                serde_json::from_str(field.redacted).map_err(VaultError::Json)?
            }
        };
        *value = opened;
    }
    Ok(redacted)
}

/// The subject of a sealed field; `None` for a value in the clear.
pub fn sealed_subject(value: &Value) -> Option<&str> {
    let object = value.as_object()?;
    if object.len() != 1 {
        return None;
    }
    object.get(SEALED)?.get("subject")?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::from_bytes(&Key::generate_material().expect("material")).expect("a key")
    }

    const TENANT: Uuid = Uuid::from_u128(7);

    fn query_submitted() -> (Value, EventContext<'static>) {
        (
            json!({"type": "QuerySubmitted", "query_id": "q", "text": "my landlord Ann Smith", "submitted_by": "c-1"}),
            EventContext {
                tenant: TENANT,
                aggregate_type: "TenantSession",
                event_type: "QuerySubmitted",
            },
        )
    }

    #[test]
    fn a_sealed_field_opens_to_its_value_and_nothing_else_is_touched() {
        let (original, event) = query_submitted();
        let key = key();
        let mut payload = original.clone();
        assert_eq!(seal(&mut payload, event, "c-1", &key).expect("seals"), 1);
        assert!(!payload.to_string().contains("Ann Smith"));
        assert_eq!(payload["query_id"], "q");
        assert_eq!(subjects(&payload, event), ["c-1"]);
        let redacted = open(&mut payload, event, &SubjectKeys::single("c-1", key)).expect("opens");
        assert!(!redacted);
        assert_eq!(payload, original);
    }

    #[test]
    fn an_erased_subjects_field_opens_as_its_redaction() {
        let (mut payload, event) = query_submitted();
        seal(&mut payload, event, "c-1", &key()).expect("seals");
        let keys: SubjectKeys = SubjectKeys::erased("c-1");
        assert!(open(&mut payload, event, &keys).expect("opens"));
        assert_eq!(payload["text"], "[erased]");
    }

    #[test]
    fn a_field_moved_to_another_event_does_not_open() {
        let (mut payload, event) = query_submitted();
        let key = key();
        seal(&mut payload, event, "c-1", &key).expect("seals");
        let moved = EventContext {
            event_type: "DiagnosisRequested",
            aggregate_type: "Diagnosis",
            ..event
        };
        let mut requested = json!({"query": payload["text"].clone()});
        assert!(open(&mut requested, moved, &SubjectKeys::single("c-1", key)).is_err());
    }

    #[test]
    fn events_without_personal_fields_are_left_as_they_are() {
        let mut payload = json!({"type": "SessionClosed", "closed_by": "c-1"});
        let event = EventContext {
            tenant: TENANT,
            aggregate_type: "TenantSession",
            event_type: "SessionClosed",
        };
        assert_eq!(seal(&mut payload, event, "c-1", &key()).expect("seals"), 0);
        assert_eq!(
            payload,
            json!({"type": "SessionClosed", "closed_by": "c-1"})
        );
    }
}
