//! The index as a live subscription, and its rebuild.

use std::sync::Arc;

use async_trait::async_trait;
use casebook_domain::ports::Embedder;
use sqlx::PgConnection;

use super::{apply, reset, IndexError};
use crate::checkpoints::{self, State, TX_PARAM};
use crate::error::ApplyError;
use crate::log::{Checkpoint, RecordedEvent};
use crate::subscription::Subscription;

/// The subscription's name: its row in `subscriptions`.
pub const SUBSCRIPTION: &str = "judgment_index";

/// Keeps the index up to date with the log, embedding with `embedder` (see [`apply`]).
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

/// A database failure keeps its own classification; a transient embedder failure is retried;
/// anything else (a changed model, an undecodable event) stops the subscription there.
fn into_apply_error(err: IndexError) -> ApplyError {
    match err {
        IndexError::Database(db) => db.into(),
        err if err.is_retryable() => ApplyError::Transient(Box::new(err)),
        err => ApplyError::permanent_from("cannot index judgments", err),
    }
}

/// Rebuilds the index from history, e.g. for another embedding model: in one transaction on
/// `conn`, waits for the live subscription's batch in flight, empties the index (every
/// partition and the recorded model, see [`reset`]) and moves the subscription back to the
/// start of the log (`running`, also if it had failed on a changed model). The live runner
/// then notices its checkpoint moved and replays the log into the empty index with its
/// embedder; searches find fewer precedents until it has caught up.
pub async fn rebuild(conn: &mut PgConnection) -> Result<(), IndexError> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    checkpoints::ensure(&mut tx, SUBSCRIPTION, State::Running).await?;
    checkpoints::lock(&mut tx, SUBSCRIPTION).await?;
    reset(&mut tx).await?;
    sqlx::query(&format!(
        "UPDATE subscriptions
            SET checkpoint_tx = $2{TX_PARAM}, checkpoint_position = $3, status = $4,
                last_error = NULL, updated_at = now()
          WHERE name = $1"
    ))
    .bind(SUBSCRIPTION)
    .bind(Checkpoint::START.transaction_id)
    .bind(Checkpoint::START.global_position)
    .bind(State::Running.as_str())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
