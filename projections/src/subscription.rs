//! The [`Subscription`] trait: a named, checkpointed consumer of the global log.

use async_trait::async_trait;
use sqlx::PgConnection;

use crate::error::ApplyError;
use crate::log::RecordedEvent;

/// A named consumer of the log, driven by the [`Runner`](crate::runner::Runner).
///
/// The runner reads the log from the subscription's checkpoint and hands it batches in
/// reading order. Each call runs inside a transaction on `conn` that the runner commits
/// together with the new checkpoint: rows written through `conn` take effect exactly once.
/// Side effects outside the database (publishing a message) happen at least once, since a
/// failure after them rolls the checkpoint back; such subscriptions give every effect a
/// stable id (the event's `Aggregate/id/sequence`) so consumers can deduplicate.
///
/// Return [`ApplyError::Transient`] for failures a retry may cure (the runner backs off and
/// retries the batch) and [`ApplyError::Permanent`] for an event that cannot be applied (the
/// runner isolates it, applies everything before it, and stops the subscription with status
/// `failed` and the error in `subscriptions.last_error`).
#[async_trait]
pub trait Subscription: Send {
    /// The subscription's name: its row in `subscriptions` and its advisory lock.
    fn name(&self) -> &str;

    /// Applies `events` (non-empty, in reading order) inside the runner's transaction.
    async fn apply(
        &mut self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ApplyError>;
}

#[async_trait]
impl<S: Subscription + ?Sized> Subscription for Box<S> {
    fn name(&self) -> &str {
        (**self).name()
    }

    async fn apply(
        &mut self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ApplyError> {
        (**self).apply(conn, events).await
    }
}
