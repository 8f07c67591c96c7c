//! Stored events decoded into the domain's types: upcast, deserialized, metadata typed.
//!
//! Decoding costs more than most projections' work on an event, so a batch is decoded once
//! and shared by every projection that applies it.

use casebook_domain::any_event::AnyEvent;
use casebook_domain::metadata::EventMetadata;
use casebook_domain::tenant::TenantEvent;
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::audit::content::EventContent;
use crate::error::ApplyError;
use crate::log::{Checkpoint, RecordedEvent};

/// One event of the log in the domain's terms.
#[derive(Debug, Clone)]
pub struct DecodedEvent {
    /// Where the event sits in the log.
    pub checkpoint: Checkpoint,
    /// The tenant, as the store recorded it.
    pub tenant_id: Uuid,
    /// e.g. `Diagnosis`.
    pub aggregate_type: String,
    /// The aggregate instance.
    pub aggregate_id: String,
    /// 1-based position within the aggregate's stream.
    pub sequence: i64,
    /// The event's variant name.
    pub event_type: String,
    /// When the store accepted it.
    pub recorded_at: DateTime<Utc>,
    /// The event, upcast to its current version.
    pub event: AnyEvent,
    /// Actor, request, correlation and causation ids, source.
    pub metadata: EventMetadata,
    /// The payload's schema version, as stored (before upcasting).
    pub stored_version: String,
    /// The payload, as stored (before upcasting).
    pub stored_payload: Box<RawValue>,
    /// The metadata, as stored.
    pub stored_metadata: Box<RawValue>,
    /// Whether personal fields were stored sealed: they stay out of whatever outlives an
    /// erasure (the audit rows).
    pub sealed: bool,
    /// Whether a sealed field read as its redaction: its subject is erased.
    pub redacted: bool,
}

impl DecodedEvent {
    /// Decodes a stored event. An event that doesn't decode is a permanent failure: it would
    /// not decode on a retry either.
    pub fn decode(recorded: &RecordedEvent) -> Result<Self, ApplyError> {
        let payload = recorded
            .payload()
            .map_err(|err| ApplyError::permanent_from("payload is not JSON", err))?;
        let event = AnyEvent::decode(
            &recorded.aggregate_type,
            &recorded.event_type,
            &recorded.event_version,
            payload,
        )
        .map_err(|err| ApplyError::permanent_from("cannot decode the event", err))?;
        let metadata: EventMetadata = recorded
            .metadata()
            .map_err(|err| ApplyError::permanent_from("invalid event metadata", err))?;
        Ok(Self {
            checkpoint: recorded.checkpoint,
            tenant_id: recorded.tenant_id,
            aggregate_type: recorded.aggregate_type.clone(),
            aggregate_id: recorded.aggregate_id.clone(),
            sequence: recorded.sequence,
            event_type: recorded.event_type.clone(),
            recorded_at: recorded.recorded_at,
            event,
            metadata,
            stored_version: recorded.event_version.clone(),
            stored_payload: recorded.payload.clone(),
            stored_metadata: recorded.metadata.clone(),
            sealed: recorded.opened.is_some(),
            redacted: recorded.redacted,
        })
    }

    /// The event as stored, as the audit chain's event digest covers it.
    pub fn content(&self) -> EventContent<'_> {
        EventContent {
            global_position: self.position(),
            aggregate_type: &self.aggregate_type,
            aggregate_id: &self.aggregate_id,
            sequence: self.sequence,
            event_type: &self.event_type,
            event_version: &self.stored_version,
            payload: &self.stored_payload,
            metadata: &self.stored_metadata,
        }
    }

    /// The global position.
    pub fn position(&self) -> i64 {
        self.checkpoint.global_position
    }

    /// The aggregate id as a UUID (every Casebook aggregate's id is one).
    pub fn aggregate_uuid(&self) -> Result<Uuid, ApplyError> {
        Uuid::parse_str(&self.aggregate_id).map_err(|err| {
            ApplyError::permanent_from(
                format!("aggregate id {:?} is not a UUID", self.aggregate_id),
                err,
            )
        })
    }
}

/// One line naming an event, for errors and logs: `Diagnosis/<id>#3 DiagnosisProposed at 1234`.
pub fn describe(event: &RecordedEvent) -> String {
    format!(
        "{}/{}#{} {} at {}",
        event.aggregate_type,
        event.aggregate_id,
        event.sequence,
        event.event_type,
        event.global_position()
    )
}

/// Decodes a batch; the first event that doesn't decode fails it.
pub fn decode_all(events: &[RecordedEvent]) -> Result<Vec<DecodedEvent>, ApplyError> {
    events.iter().map(DecodedEvent::decode).collect()
}

/// Runs each of `purges` (binding `$1` the tenant, `$2` the subject, or `NULL` for every
/// subject of an erased tenant) for every erasure `events` record, in log order. Each
/// projection purges what it holds of them once it has stored the batch: the batch's own
/// events of an erased subject were read after their key was destroyed and hold redactions
/// already, but rows it loaded may still hold what earlier batches wrote.
pub async fn purge_erased_subjects(
    conn: &mut PgConnection,
    events: &[DecodedEvent],
    purges: &[&str],
) -> Result<(), sqlx::Error> {
    let erased = events.iter().filter_map(|e| match &e.event {
        AnyEvent::Tenant(TenantEvent::SubjectErased { subject, .. }) => {
            Some((e.tenant_id, Some(subject.as_str())))
        }
        AnyEvent::Tenant(TenantEvent::TenantErased { .. }) => Some((e.tenant_id, None)),
        _ => None,
    });
    for (tenant, subject) in erased {
        for purge in purges {
            sqlx::query(purge)
                .bind(tenant)
                .bind(subject)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}
