//! Decoding a stored event of any aggregate, for consumers that read the whole log
//! (projections, the relay, replay).

use std::sync::LazyLock;

use cqrs_es::persist::{EventUpcaster, SemanticVersion, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use serde_json::Value;

use crate::decision::{ConsultantDecision, DecisionEvent};
use crate::diagnosis::{Diagnosis, DiagnosisEvent};
use crate::judgment::{Judgment, JudgmentEvent};
use crate::session::{SessionEvent, TenantSession};
use crate::tenant::{Tenant, TenantEvent};
use crate::upcast::{upcast, upcasters};

static UPCASTERS: LazyLock<Vec<Box<dyn EventUpcaster>>> = LazyLock::new(upcasters);

/// An event of any of the domain's aggregates.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyEvent {
    /// A [`Tenant`] event.
    Tenant(TenantEvent),
    /// A [`TenantSession`] event.
    Session(SessionEvent),
    /// A [`Diagnosis`] event.
    Diagnosis(DiagnosisEvent),
    /// A [`ConsultantDecision`] event.
    Decision(DecisionEvent),
    /// A [`Judgment`] event.
    Judgment(JudgmentEvent),
}

/// Why a stored event couldn't be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The aggregate type isn't one of the domain's.
    #[error("unknown aggregate type {0:?}")]
    UnknownAggregateType(String),
    /// The payload doesn't fit the event, even after upcasting.
    #[error("cannot decode {event_type} v{event_version}")]
    Payload {
        /// The stored event type.
        event_type: String,
        /// The stored version, after upcasting.
        event_version: String,
        /// The deserialization error.
        #[source]
        source: serde_json::Error,
    },
    /// The payload decoded, but as another event type or version than stored (after
    /// upcasting): a missing upcaster or a corrupt row.
    #[error("stored as {stored_type} v{stored_version} but decodes as {decoded_type} v{decoded_version}")]
    Mismatch {
        /// The stored event type.
        stored_type: String,
        /// The stored version, after upcasting.
        stored_version: String,
        /// The decoded event's type.
        decoded_type: String,
        /// The decoded event's (current) version.
        decoded_version: String,
    },
}

impl AnyEvent {
    /// Upcasts and deserializes a stored event from its `aggregate_type`, `event_type`,
    /// `event_version` and `payload` columns.
    pub fn decode(
        aggregate_type: &str,
        event_type: &str,
        event_version: &str,
        payload: Value,
    ) -> Result<Self, DecodeError> {
        let stored = SerializedEvent::new(
            String::new(),
            0,
            aggregate_type.to_owned(),
            event_type.to_owned(),
            event_version.to_owned(),
            payload,
            Value::Null,
        );
        let event = upcast(stored, &UPCASTERS);
        match aggregate_type {
            Tenant::TYPE => parse(event).map(Self::Tenant),
            TenantSession::TYPE => parse(event).map(Self::Session),
            Diagnosis::TYPE => parse(event).map(Self::Diagnosis),
            ConsultantDecision::TYPE => parse(event).map(Self::Decision),
            Judgment::TYPE => parse(event).map(Self::Judgment),
            other => Err(DecodeError::UnknownAggregateType(other.to_owned())),
        }
    }
}

/// Deserializes an upcast event and checks it is the type and version it was stored as.
fn parse<E: DomainEvent>(event: SerializedEvent) -> Result<E, DecodeError> {
    let SerializedEvent {
        event_type,
        event_version,
        payload,
        ..
    } = event;
    let decoded: E = match serde_json::from_value(payload) {
        Ok(decoded) => decoded,
        Err(source) => {
            return Err(DecodeError::Payload {
                event_type,
                event_version,
                source,
            })
        }
    };
    let (decoded_type, decoded_version) = (decoded.event_type(), decoded.event_version());
    if decoded_type == event_type && same_version(&decoded_version, &event_version) {
        Ok(decoded)
    } else {
        Err(DecodeError::Mismatch {
            stored_type: event_type,
            stored_version: event_version,
            decoded_type,
            decoded_version,
        })
    }
}

/// Versions compare semantically: an upcaster writes `"2.0.0"` for the event's `"2"`.
fn same_version(a: &str, b: &str) -> bool {
    match (a.parse::<SemanticVersion>(), b.parse::<SemanticVersion>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
