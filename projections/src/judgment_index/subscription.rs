//! The index as a live subscription.

use std::sync::Arc;

use async_trait::async_trait;
use casebook_domain::ports::Embedder;
use sqlx::PgConnection;

use super::{apply, IndexError};
use crate::error::ApplyError;
use crate::log::RecordedEvent;
use crate::subscription::Subscription;

/// The subscription's name: its row in `subscriptions`.
pub const SUBSCRIPTION: &str = "judgment_index";

/// Keeps the index up to date with the log, embedding with `embedder` (see [`apply`]).
///
/// An index holding another model's vectors (a rebuild for a new model was swapped in, and
/// this process still runs the old one; or this process was deployed with a new model before
/// the swap) is a transient failure: the runner retries, with `last_error` saying why, and
/// applies nothing until a process embedding with the index's model holds the subscription.
/// No event is skipped.
pub struct JudgmentIndexSubscription {
    embedder: Arc<dyn Embedder>,
}

impl JudgmentIndexSubscription {
    /// The index, embedding with `embedder` (the one the diagnosis path embeds queries with).
    pub fn new(embedder: Arc<dyn Embedder>) -> Self {
        Self { embedder }
    }
}

#[async_trait]
impl Subscription for JudgmentIndexSubscription {
    fn name(&self) -> &str {
        SUBSCRIPTION
    }

    async fn apply(
        &mut self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ApplyError> {
        apply(conn, events, self.embedder.as_ref())
            .await
            .map(drop)
            .map_err(into_apply_error)
    }
}

/// A database failure keeps its own classification; a transient embedder failure and an
/// index of another model (see [`JudgmentIndexSubscription`]) are retried; anything else (an
/// undecodable event) stops the subscription there.
pub(super) fn into_apply_error(err: IndexError) -> ApplyError {
    match err {
        IndexError::Database(db) => db.into(),
        err if err.is_retryable() => ApplyError::Transient(Box::new(err)),
        err => ApplyError::permanent_from("cannot index judgments", err),
    }
}
