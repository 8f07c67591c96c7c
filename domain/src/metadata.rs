//! What the store records next to every event: who, on whose behalf, because of what.
//!
//! cqrs-es carries metadata as a string map; [`EventMetadata`] is its typed form, written by
//! the application on every command and read back by projections and auditors. The keys are
//! part of the stored format (the events table derives `tenant_id` from its key).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::actor::{Actor, Role};
use crate::ids::{TenantId, UserId};

/// Which part of the system issued the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// An API request.
    Api,
    /// The diagnosis worker (SQS).
    Worker,
    /// A reaction to another event (a process manager).
    Reaction,
    /// A scheduled job.
    Scheduler,
    /// The operator's command line.
    Operator,
}

/// The typed metadata of one command's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The tenant every event of the command belongs to.
    pub tenant_id: TenantId,
    /// The acting user (or `casebook:system`).
    pub actor_id: UserId,
    /// The actor's role when acting.
    pub actor_role: Role,
    /// The request (HTTP request id, SQS message id, schedule run id).
    pub request_id: String,
    /// The chain this command belongs to: the first request's id, carried along.
    pub correlation_id: String,
    /// The event (`Aggregate/id/sequence`) or request that caused this command.
    pub causation_id: String,
    /// Who issued the command.
    pub source: Source,
    /// The `x-request-id` the client sent with the request, if any: kept for the client's
    /// own tracing, never trusted as `request_id` or `correlation_id` (the server makes those).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
}

/// Metadata that cannot be read back (a stored map missing a key or with a bad value).
#[derive(Debug, thiserror::Error)]
#[error("invalid event metadata: {0}")]
pub struct MetadataError(#[from] serde_json::Error);

impl EventMetadata {
    /// Metadata for a command issued by `actor` at the start of a chain: the request is its
    /// own correlation and cause.
    pub fn new(actor: &Actor, request_id: impl Into<String>, source: Source) -> Self {
        let request_id = request_id.into();
        Self {
            tenant_id: actor.tenant_id,
            actor_id: actor.user_id.clone(),
            actor_role: actor.role,
            correlation_id: request_id.clone(),
            causation_id: request_id.clone(),
            request_id,
            source,
            client_request_id: None,
        }
    }

    /// The same metadata, noting the id the client gave its request.
    pub fn with_client_request_id(self, client_request_id: Option<String>) -> Self {
        Self {
            client_request_id,
            ..self
        }
    }

    /// Metadata for a command caused by an earlier event: same correlation, that event as
    /// the cause.
    pub fn caused_by(
        actor: &Actor,
        cause: &EventMetadata,
        causing_event: impl Into<String>,
        source: Source,
    ) -> Self {
        Self {
            tenant_id: actor.tenant_id,
            actor_id: actor.user_id.clone(),
            actor_role: actor.role,
            request_id: cause.request_id.clone(),
            correlation_id: cause.correlation_id.clone(),
            causation_id: causing_event.into(),
            source,
            client_request_id: cause.client_request_id.clone(),
        }
    }

    /// The string map cqrs-es stores.
    pub fn to_map(&self) -> HashMap<String, String> {
        let value = serde_json::to_value(self).expect("metadata serializes to an object");
        value
            .as_object()
            .into_iter()
            .flatten()
            .map(|(key, value)| {
                let text = match value {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                (key.clone(), text)
            })
            .collect()
    }

    /// Reads the stored map (or JSON object) back.
    pub fn from_json(value: serde_json::Value) -> Result<Self, MetadataError> {
        Ok(serde_json::from_value(value)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TenantId;

    #[test]
    fn metadata_round_trips_through_the_stored_string_map() {
        let actor = Actor {
            user_id: UserId::parse("user-1").unwrap(),
            tenant_id: TenantId::new(),
            role: Role::Consultant,
        };
        let metadata = EventMetadata::new(&actor, "req-1", Source::Api);
        let map = metadata.to_map();
        assert_eq!(map["tenant_id"], actor.tenant_id.to_string());
        assert_eq!(map["actor_role"], "consultant");
        assert_eq!(map["source"], "api");
        let back = EventMetadata::from_json(serde_json::to_value(&map).unwrap()).unwrap();
        assert_eq!(back, metadata);
    }

    #[test]
    fn a_caused_command_keeps_the_correlation_and_names_its_cause() {
        let actor = Actor {
            user_id: UserId::parse("user-1").unwrap(),
            tenant_id: TenantId::new(),
            role: Role::Customer,
        };
        let first = EventMetadata::new(&actor, "req-1", Source::Api);
        let system = Actor::system(actor.tenant_id);
        let next = EventMetadata::caused_by(&system, &first, "Diagnosis/abc/1", Source::Worker);
        assert_eq!(next.correlation_id, "req-1");
        assert_eq!(next.causation_id, "Diagnosis/abc/1");
        assert_eq!(next.actor_role, Role::System);
    }
}
