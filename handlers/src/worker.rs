//! The SQS worker: one handler per message type, run by `lambda_runtime` (the `worker`
//! function, [`handle_sqs_event`]) or locally by a long-polling loop
//! ([`run_worker_until`]) over the same [`Worker::handle`].
//!
//! Messages arrive at least once (the relay republishes after a crash, SQS redelivers after
//! a visibility timeout); the use cases behind each type are idempotent
//! ([`Diagnoser`]: a diagnosis already proposed
//! is success).
//!
//! A handler's error leaves the message on the queue: it comes back after the visibility
//! timeout and, after `maxReceiveCount` receives, moves to the queue's dead-letter queue.
//! In a batch, only the failed messages are reported (`batchItemFailures`).

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use casebook_adapters::aws::sqs::Queue;
use casebook_application::diagnosis::{Diagnoser, DiagnosisError, DiagnosisRequest};
use casebook_domain::ids::{DiagnosisId, TenantId};
use tracing::Instrument;

use crate::relay::{DiagnosisMessage, DIAGNOSIS_REQUESTED, DIAGNOSIS_RESUMED};

/// Why a message was not handled (it stays on the queue and is retried).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The message cannot be understood.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// No handler for the message's type.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// The use case failed on it.
    #[error(transparent)]
    Diagnosis(#[from] DiagnosisError),
}

/// The message handlers, with the use cases they call.
#[derive(Clone)]
pub struct Worker {
    diagnoser: Diagnoser,
}

impl Worker {
    /// A worker handing diagnosis requests to `diagnoser`.
    pub fn new(diagnoser: Diagnoser) -> Self {
        Self { diagnoser }
    }

    /// Handles one message by its `type` attribute: a diagnosis requested or resumed (a body
    /// without one is a request, the only type there first was).
    pub async fn handle(
        &self,
        body: &str,
        attributes: &HashMap<String, String>,
    ) -> Result<(), WorkerError> {
        // The request's ids (the relay's message attributes) on every line of the handling,
        // so one id finds the worker's lines with the API's.
        let attribute = |name: &str| attributes.get(name).map_or("", String::as_str);
        let span = tracing::info_span!(
            "message",
            event_id = attribute("event_id"),
            tenant_id = attribute("tenant_id"),
            request_id = attribute("request_id"),
            correlation_id = attribute("correlation_id"),
        );
        async move {
            let handled = self.dispatch(body, attributes).await;
            match &handled {
                Ok(()) => tracing::info!("message handled"),
                Err(err) => tracing::warn!(error = %err, "message failed; left for redelivery"),
            }
            handled
        }
        .instrument(span)
        .await
    }

    async fn dispatch(
        &self,
        body: &str,
        attributes: &HashMap<String, String>,
    ) -> Result<(), WorkerError> {
        match attributes.get("type").map(String::as_str) {
            None | Some(DIAGNOSIS_REQUESTED | DIAGNOSIS_RESUMED) => {
                let message: DiagnosisMessage = serde_json::from_str(body)
                    .map_err(|err| WorkerError::Malformed(err.to_string()))?;
                let request = DiagnosisRequest {
                    event_id: message.event_id,
                    tenant_id: TenantId::from_uuid(message.tenant_id),
                    diagnosis_id: DiagnosisId::from_uuid(message.diagnosis_id),
                };
                Ok(self.diagnoser.diagnose(&request).await?)
            }
            Some(other) => Err(WorkerError::UnknownType(other.to_owned())),
        }
    }
}

/// Counts a handled message: `WorkerMessages` by `Outcome` (`handled`, `failed`), and
/// `WorkerRetries` for a message received before (a failed attempt, or a lost delete). A
/// message that fails its last receive moves to the dead-letter queue, whose depth SQS
/// reports itself.
fn count(handled: &Result<(), WorkerError>, receives: u32) {
    let outcome = if handled.is_ok() { "handled" } else { "failed" };
    metrics::counter!("WorkerMessages", "Outcome" => outcome).increment(1);
    if receives > 1 {
        metrics::counter!("WorkerRetries").increment(1);
    }
}

/// The handler of the `worker` Lambda: handles each record and reports the failed ones as
/// `batchItemFailures` (the rest are deleted by Lambda).
pub async fn handle_sqs_event(worker: &Worker, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        let attributes: HashMap<String, String> = record
            .message_attributes
            .iter()
            .filter_map(|(name, value)| value.string_value.clone().map(|v| (name.clone(), v)))
            .collect();
        let body = record.body.as_deref().unwrap_or_default();
        let receives = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|count| count.parse().ok())
            .unwrap_or(1);
        let handled = worker.handle(body, &attributes).await;
        count(&handled, receives);
        if handled.is_err() {
            response.add_failure(message_id);
        }
    }
    response
}

/// Long-polls `queue` and handles each message with `worker` until `shutdown` resolves: a
/// handled message is deleted, a failed one is left to reappear after its visibility timeout
/// (and to move to the DLQ after `maxReceiveCount`).
pub async fn run_worker_until(
    worker: Worker,
    queue: Queue,
    shutdown: impl Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(200);
    loop {
        let received = tokio::select! {
            () = &mut shutdown => return,
            received = queue.receive(10, 10) => received,
        };
        let messages = match received {
            Ok(messages) => {
                backoff = Duration::from_millis(200);
                messages
            }
            Err(err) => {
                tracing::warn!(error = %err, queue = %queue.url(), "receive failed; retrying");
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        for message in messages {
            let handled = worker.handle(&message.body, &message.attributes).await;
            count(&handled, message.receive_count);
            // A failure is logged in the message's span; it stays on the queue.
            if handled.is_ok() {
                if let Err(err) = queue.delete(&message.receipt_handle).await {
                    tracing::warn!(error = %err, message_id = %message.message_id, "delete failed; it will be redelivered");
                }
            }
        }
    }
}
