//! Typed identifiers.
//!
//! Every aggregate's cqrs-es `aggregate_id` is its id's [`Display`](std::fmt::Display) form:
//! the UUID, hyphenated and lowercase.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::values::{bounded_text, ValidationError};

/// Declares a UUID-backed id newtype.
macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident { field: $field:literal }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random (v4) id.
            // No `Default`: a default that is random would surprise in `..Default::default()`.
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            /// Wraps an existing UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|e| ValidationError::new($field, e.to_string()))
            }
        }
    };
}

uuid_id! {
    /// A customer organisation (a tenant); also the id of its [`Tenant`](crate::tenant::Tenant) aggregate.
    TenantId { field: "tenant_id" }
}
uuid_id! {
    /// A customer's session; the id of its [`TenantSession`](crate::session::TenantSession) aggregate.
    SessionId { field: "session_id" }
}
uuid_id! {
    /// A query within a session, chosen by the caller.
    QueryId { field: "query_id" }
}
uuid_id! {
    /// A diagnosis; the id of its [`Diagnosis`](crate::diagnosis::Diagnosis) aggregate.
    DiagnosisId { field: "diagnosis_id" }
}
uuid_id! {
    /// A consultant's decision; the id of its [`ConsultantDecision`](crate::decision::ConsultantDecision) aggregate.
    ///
    /// Always derived from the diagnosis with [`DecisionId::for_diagnosis`].
    DecisionId { field: "decision_id" }
}
uuid_id! {
    /// A captured judgment; the id of its [`Judgment`](crate::judgment::Judgment) aggregate.
    JudgmentId { field: "judgment_id" }
}

impl DiagnosisId {
    /// The diagnosis of a query: the same UUID, so one query has one diagnosis and a retried
    /// request lands on the same stream.
    pub const fn for_query(query: QueryId) -> Self {
        Self(query.0)
    }
}

impl DecisionId {
    /// The one decision a diagnosis can have: the same UUID, so a second decision on the same
    /// diagnosis lands on the same event stream and is rejected.
    pub const fn for_diagnosis(diagnosis: DiagnosisId) -> Self {
        Self(diagnosis.0)
    }
}

impl JudgmentId {
    /// The judgment captured from a decision: a UUIDv5 of the decision's id, so capturing the same
    /// decision twice lands on the same event stream and is rejected.
    pub fn for_decision(decision: DecisionId) -> Self {
        Self(Uuid::new_v5(&decision.0, b"casebook/judgment"))
    }
}

bounded_text! {
    /// A user: the identity provider's subject (`sub` claim), up to 128 characters.
    UserId { field: "user_id", max_chars: 128 }
}

impl UserId {
    /// The user id recorded for commands the platform issues itself (process managers, the
    /// worker, schedules). It can't collide with an identity provider's subject, which is a UUID.
    pub fn system() -> Self {
        Self("casebook:system".to_owned())
    }
}
