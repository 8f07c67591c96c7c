//! Which parts of a stored event are personal data, and whose (decision 0027).
//!
//! The domain keeps plaintext types; the event store seals the fields listed here when it
//! appends and opens them when anything reads the log, each under the data key of the
//! stream's data subject. Once that key is destroyed (the subject erased), a field opens as
//! its redaction, which decodes like any stored value: replay, as-of state and rebuilds go on.
//!
//! The pointers are JSON pointers into the event's serialized payload, so they must follow
//! its serde shape; the tests of this module seal and redact a sample of every listed event
//! and decode it back.

use crate::decision::ConsultantDecision;
use crate::diagnosis::Diagnosis;
use crate::ids::UserId;
use crate::judgment::Judgment;
use crate::session::TenantSession;

/// What an erased text field reads as.
pub const ERASED: &str = "[erased]";

/// One personal field of an event's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonalField {
    /// A JSON pointer into the payload. A pointer that resolves to nothing (another variant
    /// of an enum, an absent optional) or to `null` is left alone.
    pub pointer: &'static str,
    /// The JSON the field reads as once its key is destroyed.
    pub redacted: &'static str,
}

const TEXT: &str = "\"[erased]\"";
const LIST: &str = "[]";

const fn text(pointer: &'static str) -> PersonalField {
    PersonalField {
        pointer,
        redacted: TEXT,
    }
}

const fn list(pointer: &'static str) -> PersonalField {
    PersonalField {
        pointer,
        redacted: LIST,
    }
}

const SESSION_OPENED: &[PersonalField] = &[text("/subject"), list("/attachments")];
const QUERY_SUBMITTED: &[PersonalField] = &[text("/text")];
const DIAGNOSIS_REQUESTED: &[PersonalField] = &[text("/query")];
// The attachments a proposal read are named by their upload keys, which end in the file's name.
const DIAGNOSIS_PROPOSED: &[PersonalField] = &[
    text("/text"),
    list("/findings"),
    list("/provenance/attachments"),
];
const DECISION_MADE: &[PersonalField] = &[text("/verdict/text"), text("/verdict/reason")];
const JUDGMENT_CONTENT: &[PersonalField] = &[PersonalField {
    pointer: "/content",
    redacted: r#"{"title":"[erased]","body":"[erased]","tags":[]}"#,
}];
const JUDGMENT_RETIRED: &[PersonalField] = &[text("/reason")];

/// The personal fields of a stored event, by its aggregate and event type; empty for an event
/// that holds nothing personal.
///
/// Tenant events name members by their sign-in address, which is also how the tenant
/// aggregate tells them apart: they are not sealed (decision 0027 lists this as open).
pub fn personal_fields(aggregate_type: &str, event_type: &str) -> &'static [PersonalField] {
    use cqrs_es::Aggregate as _;
    match (aggregate_type, event_type) {
        (TenantSession::TYPE, "SessionOpened") => SESSION_OPENED,
        (TenantSession::TYPE, "QuerySubmitted") => QUERY_SUBMITTED,
        (Diagnosis::TYPE, "DiagnosisRequested") => DIAGNOSIS_REQUESTED,
        (Diagnosis::TYPE, "DiagnosisProposed") => DIAGNOSIS_PROPOSED,
        (ConsultantDecision::TYPE, "DecisionMade") => DECISION_MADE,
        (Judgment::TYPE, "JudgmentCaptured" | "JudgmentRevised") => JUDGMENT_CONTENT,
        (Judgment::TYPE, "JudgmentRetired") => JUDGMENT_RETIRED,
        _ => &[],
    }
}

/// An aggregate whose stream holds one person's data: the customer a session, a diagnosis,
/// a decision or a judgment captured from it is about.
pub trait DataSubject {
    /// Whose data the stream holds, once known; `None` for a stream about nobody in
    /// particular (a tenant, an authored judgment).
    fn data_subject(&self) -> Option<UserId>;
}
