//! The event digest: what ties an audit row (canonical encoding 2) to its event's full content.
//!
//! # Canonical form of an event
//!
//! The digest is `SHA-256` of the event's canonical JSON: the object
//!
//! ```json
//! {"aggregate_id": …, "aggregate_type": …, "event_type": …, "event_version": …,
//!  "global_position": …, "metadata": {…}, "payload": {…}, "sequence": …}
//! ```
//!
//! serialized as RFC 8785 (JSON Canonicalization Scheme, JCS): object members sorted by the
//! UTF-16 code units of their names, no insignificant whitespace, strings with JCS's minimal
//! escaping, numbers in ECMAScript's shortest form. `aggregate_type`, `aggregate_id`,
//! `event_type` and `event_version` are the stored columns as strings, `global_position` and
//! `sequence` integers, and `payload` and `metadata` the stored JSON documents.
//!
//! What follows from JCS, by design:
//! - the digest covers the documents' *content*, not their bytes: whitespace and member order
//!   don't count, so an export re-serialized by another JSON tool still verifies, while any
//!   changed, added or removed value does not;
//! - numbers are IEEE-754 doubles (as in JavaScript): integers beyond 2^53 are compared at
//!   double precision. No Casebook event holds such a number (token counts, costs in
//!   micro-dollars, positions stay far below it).
//!
//! The implementation is `serde_json_canonicalizer`: it follows RFC 8785 to the letter (UTF-16
//! ordering of member names, ECMAScript number form through `ryu-js`), runs the RFC's examples
//! and the reference implementation's test data as its tests, refuses what has no canonical
//! form (NaN, duplicate names, raw JSON text) instead of passing it through, and is released
//! actively. `serde_jcs` was written first, but stayed at 0.1 for years with reported
//! deviations from the RFC (the reason `serde_json_canonicalizer` exists).

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::chain::ChainHash;

/// An event as stored, with its identity: what an audit row's event digest covers.
#[derive(Debug, Clone, Copy)]
pub struct EventContent<'a> {
    /// The event's global position.
    pub global_position: i64,
    /// The stream's aggregate type.
    pub aggregate_type: &'a str,
    /// The stream's aggregate id.
    pub aggregate_id: &'a str,
    /// The event's sequence in its stream.
    pub sequence: i64,
    /// The event type.
    pub event_type: &'a str,
    /// The payload's schema version, as stored (before any upcasting).
    pub event_version: &'a str,
    /// The payload, as stored.
    pub payload: &'a RawValue,
    /// The metadata, as stored.
    pub metadata: &'a RawValue,
}

/// An event whose content has no canonical form.
#[derive(Debug, thiserror::Error)]
#[error("the event's {part} has no canonical JSON form")]
pub struct ContentError {
    part: &'static str,
    #[source]
    source: serde_json::Error,
}

/// The canonical form's object (JCS sorts the members; the order here doesn't matter).
#[derive(Serialize)]
struct Canonical<'a> {
    aggregate_id: &'a str,
    aggregate_type: &'a str,
    event_type: &'a str,
    event_version: &'a str,
    global_position: i64,
    metadata: Value,
    payload: Value,
    sequence: i64,
}

impl EventContent<'_> {
    /// The event's canonical JSON (see the module documentation).
    pub fn canonical_json(&self) -> Result<Vec<u8>, ContentError> {
        let mut bytes = Vec::with_capacity(self.payload.get().len() + 512);
        self.write_canonical(&mut bytes)?;
        Ok(bytes)
    }

    /// `SHA-256` of the event's canonical JSON.
    pub fn digest(&self) -> Result<ChainHash, ContentError> {
        let mut hasher = Sha256::new();
        self.write_canonical(&mut hasher)?;
        Ok(ChainHash(hasher.finalize().into()))
    }

    fn write_canonical(&self, out: &mut impl std::io::Write) -> Result<(), ContentError> {
        // The canonicalizer refuses raw JSON (it cannot vouch for text it didn't write), so the
        // documents are parsed first.
        let parse = |part, raw: &RawValue| {
            serde_json::from_str(raw.get()).map_err(|source| ContentError { part, source })
        };
        let canonical = Canonical {
            aggregate_id: self.aggregate_id,
            aggregate_type: self.aggregate_type,
            event_type: self.event_type,
            event_version: self.event_version,
            global_position: self.global_position,
            metadata: parse("metadata", self.metadata)?,
            payload: parse("payload", self.payload)?,
            sequence: self.sequence,
        };
        serde_json_canonicalizer::to_writer(&canonical, out).map_err(|source| ContentError {
            part: "content",
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    fn content<'a>(payload: &'a RawValue, metadata: &'a RawValue) -> EventContent<'a> {
        EventContent {
            global_position: 42,
            aggregate_type: "TenantSession",
            aggregate_id: "6f1c2f4e-8a8e-4f53-9d0e-4c1f3b0b8a11",
            sequence: 2,
            event_type: "QuerySubmitted",
            event_version: "1",
            payload,
            metadata,
        }
    }

    #[test]
    fn the_canonical_form_is_sorted_compact_jcs_of_the_documented_members() {
        let payload =
            raw(r#"{ "type": "QuerySubmitted", "text": "Is clause 4 valid?", "n": 1.50 }"#);
        let metadata = raw(r#"{"request_id": "req-1", "actor_id": "customer-1"}"#);
        let json = content(&payload, &metadata).canonical_json().unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"aggregate_id":"6f1c2f4e-8a8e-4f53-9d0e-4c1f3b0b8a11","aggregate_type":"TenantSession","event_type":"QuerySubmitted","event_version":"1","global_position":42,"metadata":{"actor_id":"customer-1","request_id":"req-1"},"payload":{"n":1.5,"text":"Is clause 4 valid?","type":"QuerySubmitted"},"sequence":2}"#
        );
    }

    #[test]
    fn whitespace_and_member_order_do_not_change_the_digest_but_any_value_does() {
        let metadata = raw(r#"{"request_id":"req-1"}"#);
        let original = raw(r#"{"type":"QuerySubmitted","text":"Is clause 4 valid?"}"#);
        let reformatted =
            raw("{\n  \"text\": \"Is clause 4 valid?\",\n  \"type\": \"QuerySubmitted\"\n}");
        let edited = raw(r#"{"type":"QuerySubmitted","text":"Is clause 5 valid?"}"#);
        let digest = content(&original, &metadata).digest().unwrap();
        assert_eq!(content(&reformatted, &metadata).digest().unwrap(), digest);
        assert_ne!(content(&edited, &metadata).digest().unwrap(), digest);
        let other_metadata = raw(r#"{"request_id":"req-2"}"#);
        assert_ne!(
            content(&original, &other_metadata).digest().unwrap(),
            digest
        );
        let mut moved = content(&original, &metadata);
        moved.sequence = 3;
        assert_ne!(moved.digest().unwrap(), digest);
    }

    #[test]
    fn the_digest_is_sha256_of_the_canonical_json() {
        let (payload, metadata) = (raw(r#"{"type":"SessionClosed"}"#), raw("{}"));
        let event = content(&payload, &metadata);
        let expected: [u8; 32] = Sha256::digest(event.canonical_json().unwrap()).into();
        assert_eq!(event.digest().unwrap(), ChainHash(expected));
    }
}
