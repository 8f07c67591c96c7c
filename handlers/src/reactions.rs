//! The application's reactions fed by the global log: each a checkpointed subscription of
//! the projections runner. Commands go through the event store (their own transactions), so
//! delivery is at least once and the reactions' idempotency is what makes a redelivery
//! harmless.

use std::sync::Arc;

use casebook_application::reactions::{Delivered, Reaction, ReactionError};
use casebook_domain::any_event::AnyEvent;
use casebook_domain::metadata::{EventMetadata, MetadataError};
use casebook_projections::error::ApplyError;
use casebook_projections::log::RecordedEvent;
use casebook_projections::subscription::Subscription;

/// A [`Reaction`] as a subscription: the events it wants decoded and handed over, its
/// failures told retryable (the runner retries from its checkpoint) or final (it stops).
pub struct ReactionSubscription {
    reaction: Arc<dyn Reaction>,
}

impl ReactionSubscription {
    /// The subscription running `reaction`, checkpointed under its name.
    pub fn new(reaction: impl Reaction + 'static) -> Self {
        Self {
            reaction: Arc::new(reaction),
        }
    }
}

/// `event` decoded for a reaction; an event that can't be is a final failure, as it would
/// fail the same way on every delivery.
pub fn delivered(event: &RecordedEvent) -> Result<Delivered, ApplyError> {
    let payload = event
        .payload()
        .map_err(|err| undecodable(event, "the payload", err))?;
    let decoded = AnyEvent::decode(
        &event.aggregate_type,
        &event.event_type,
        &event.event_version,
        payload,
    )
    .map_err(|err| undecodable(event, "the event", err))?;
    let metadata = event
        .metadata::<serde_json::Value>()
        .map_err(MetadataError::from)
        .and_then(EventMetadata::from_json)
        .map_err(|err| undecodable(event, "the metadata", err))?;
    Ok(Delivered {
        aggregate_type: event.aggregate_type.clone(),
        aggregate_id: event.aggregate_id.clone(),
        event_type: event.event_type.clone(),
        sequence: event.sequence,
        global_position: event.global_position(),
        recorded_at: event.recorded_at,
        event: decoded,
        metadata,
    })
}

fn undecodable(
    event: &RecordedEvent,
    what: &str,
    err: impl std::error::Error + Send + Sync + 'static,
) -> ApplyError {
    ApplyError::permanent_from(
        format!(
            "{what} of {} {}/{} at position {} cannot be decoded",
            event.event_type,
            event.aggregate_type,
            event.aggregate_id,
            event.global_position()
        ),
        err,
    )
}

fn apply_error(err: ReactionError, event: &RecordedEvent) -> ApplyError {
    if err.is_retryable() {
        ApplyError::Transient(Box::new(err))
    } else {
        ApplyError::permanent_from(
            format!(
                "reaction to {} {}/{} failed",
                event.event_type, event.aggregate_type, event.aggregate_id
            ),
            err,
        )
    }
}

#[async_trait::async_trait]
impl Subscription for ReactionSubscription {
    fn name(&self) -> &str {
        self.reaction.name()
    }

    async fn apply(
        &mut self,
        _conn: &mut sqlx::PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ApplyError> {
        for event in events {
            if !self
                .reaction
                .wants(&event.aggregate_type, &event.event_type)
            {
                continue;
            }
            let delivered = delivered(event)?;
            self.reaction
                .react(&delivered)
                .await
                .map_err(|err| apply_error(err, event))?;
        }
        Ok(())
    }
}
