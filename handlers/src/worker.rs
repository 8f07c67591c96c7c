//! The SQS worker: one handler per message type, run by `lambda_runtime` (the `worker`
//! function, [`handle_sqs_event`]) or locally by a long-polling loop
//! ([`run_worker_until`]) over the same [`Worker::handle`].
//!
//! Messages arrive at least once (the relay republishes after a crash, SQS redelivers after
//! a visibility timeout), so every consumer is idempotent: either its effect is a row written
//! together with a `processed_messages (consumer, event_id)` row in one transaction
//! ([`consume_once`]), or the target aggregate refuses a repeat (the diagnosis handler: a
//! diagnosis already proposed is success).
//!
//! A handler's error leaves the message on the queue: it comes back after the visibility
//! timeout and, after `maxReceiveCount` receives, moves to the queue's dead-letter queue.
//! In a batch, only the failed messages are reported (`batchItemFailures`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use casebook_adapters::aws::sqs::Queue;
use casebook_adapters::event_store::EventStore;
use casebook_domain::actor::Actor;
use casebook_domain::diagnosis::{
    Diagnosis, DiagnosisCommand, DiagnosisEvent, DiagnosisStatus, RetrievedJudgment,
};
use casebook_domain::ids::{DiagnosisId, TenantId};
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::policy::ModelTier;
use casebook_domain::ports::{DiagnosisPrompt, Embedder, Llm, LlmError, Precedent};
use casebook_domain::upcast::upcasters;
use casebook_domain::values::{QueryText, Reason};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::relay::{DiagnosisMessage, DIAGNOSIS_REQUESTED};
use crate::service::{RequestContext, Service, ServiceError};

/// The diagnosis handler's consumer name.
pub const DIAGNOSIS_CONSUMER: &str = "diagnosis-worker";
/// Precedents retrieved per diagnosis.
pub const PRECEDENTS: u32 = 5;
/// The diagnosis prompt template's id.
pub const PROMPT_TEMPLATE_ID: &str = "diagnosis/v1";
const SYSTEM_PROMPT: &str = "You are a senior consultant. Diagnose the customer's query using the precedents given; answer with a diagnosis, its findings and your confidence.";

/// Any error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a message was not handled (it stays on the queue and is retried).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The message cannot be understood.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// No handler for the message's type.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A dependency failed; a retry may succeed.
    #[error("{0}")]
    Failed(String, #[source] BoxError),
}

fn failed(what: &str, err: impl std::error::Error + Send + Sync + 'static) -> WorkerError {
    WorkerError::Failed(what.to_owned(), Box::new(err))
}

/// Runs `effect` in a transaction together with recording `(consumer, event_id)` in
/// `processed_messages`; a message already recorded is skipped. `Ok(true)`: applied now;
/// `Ok(false)`: applied before.
pub async fn consume_once<F>(
    pool: &PgPool,
    consumer: &str,
    event_id: &str,
    tenant_id: Uuid,
    effect: F,
) -> Result<bool, WorkerError>
where
    F: for<'t> FnOnce(
        &'t mut Transaction<'static, Postgres>,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<(), WorkerError>> + Send + 't>,
    >,
{
    let mut tx = pool.begin().await.map_err(|e| failed("begin", e))?;
    let inserted = sqlx::query(
        "INSERT INTO processed_messages (consumer, event_id, tenant_id) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(event_id)
    .bind(tenant_id)
    .execute(&mut *tx)
    .await
    .map_err(|e| failed("record processed message", e))?
    .rows_affected();
    if inserted == 0 {
        tx.rollback().await.map_err(|e| failed("rollback", e))?;
        return Ok(false);
    }
    effect(&mut tx).await?;
    tx.commit().await.map_err(|e| failed("commit", e))?;
    Ok(true)
}

/// The handlers, with what they need.
#[derive(Clone)]
pub struct Worker {
    pool: PgPool,
    service: Service,
    diagnoses: EventStore<Diagnosis>,
    embedder: Arc<dyn Embedder>,
    llm: Arc<dyn Llm>,
}

impl Worker {
    /// A worker over `pool` (the application role) and the AI ports.
    pub fn new(pool: PgPool, embedder: Arc<dyn Embedder>, llm: Arc<dyn Llm>) -> Self {
        Self {
            service: Service::new(pool.clone()),
            diagnoses: EventStore::new(pool.clone(), upcasters()),
            pool,
            embedder,
            llm,
        }
    }

    /// Handles one message by its `type` attribute (a body without one is a diagnosis
    /// request, the only type so far).
    pub async fn handle(
        &self,
        body: &str,
        attributes: &HashMap<String, String>,
    ) -> Result<(), WorkerError> {
        match attributes.get("type").map(String::as_str) {
            None | Some(DIAGNOSIS_REQUESTED) => {
                let message: DiagnosisMessage = serde_json::from_str(body)
                    .map_err(|err| WorkerError::Malformed(err.to_string()))?;
                self.handle_diagnosis(&message).await
            }
            Some(other) => Err(WorkerError::UnknownType(other.to_owned())),
        }
    }

    /// Retrieves context for a requested diagnosis, asks the model and records the proposal.
    /// Idempotent: a diagnosis past the point this message asks for is success.
    pub async fn handle_diagnosis(&self, message: &DiagnosisMessage) -> Result<(), WorkerError> {
        let diagnosis_id: DiagnosisId = message
            .diagnosis_id
            .to_string()
            .parse()
            .map_err(|_| WorkerError::Malformed("diagnosis id".into()))?;
        let aggregate_id = diagnosis_id.to_string();
        let events = cqrs_es::EventStore::load_events(&self.diagnoses, &aggregate_id)
            .await
            .map_err(|e| failed("load diagnosis", e))?;
        let mut query = None;
        let mut tenant = None;
        let mut diagnosis = Diagnosis::default();
        for envelope in &events {
            if let DiagnosisEvent::DiagnosisRequested {
                query: text,
                tenant_id,
                ..
            } = &envelope.payload
            {
                query = Some(text.clone());
                tenant = Some(*tenant_id);
            }
            cqrs_es::Aggregate::apply(&mut diagnosis, envelope.payload.clone());
        }
        let (Some(query), Some(tenant_id)) = (query, tenant) else {
            return Err(WorkerError::Malformed(format!(
                "diagnosis {aggregate_id} not found"
            )));
        };
        if tenant_id.to_string() != message.tenant_id.to_string() {
            return Err(WorkerError::Malformed(
                "tenant does not own the diagnosis".into(),
            ));
        }
        let status = diagnosis.status();
        match status {
            Some(DiagnosisStatus::Requested)
            | Some(DiagnosisStatus::ContextRetrieved)
            | Some(DiagnosisStatus::Failed { retryable: true }) => {}
            other => {
                tracing::info!(diagnosis = %aggregate_id, status = ?other, event_id = %message.event_id, "diagnosis already handled");
                return Ok(());
            }
        }
        let actor = Actor::system(tenant_id);
        let ctx = RequestContext {
            metadata: EventMetadata::new(&actor, message.event_id.clone(), Source::Worker),
            actor,
        };
        let precedents = self.retrieve(tenant_id, &query).await?;
        if status != Some(DiagnosisStatus::ContextRetrieved) {
            let judgments = precedents
                .iter()
                .map(|p| RetrievedJudgment {
                    judgment_id: p.judgment_id,
                    score: p.score,
                })
                .collect();
            let command = DiagnosisCommand::RecordContext {
                actor: ctx.actor.clone(),
                judgments,
            };
            if done_if_repeated(
                self.service
                    .advance_diagnosis(&ctx, diagnosis_id, command)
                    .await,
            )? {
                return Ok(());
            }
        }
        let prompt = DiagnosisPrompt {
            system: SYSTEM_PROMPT.to_owned(),
            query,
            precedents: precedents.clone(),
            tier: ModelTier::Standard,
        };
        let answer = match self.llm.diagnose(&prompt).await {
            Ok(answer) => answer,
            Err(err) => return self.fail(&ctx, diagnosis_id, err).await,
        };
        let provenance = casebook_domain::diagnosis::Provenance {
            model_id: answer.model_id.clone(),
            model_tier: prompt.tier,
            prompt_template_id: PROMPT_TEMPLATE_ID.to_owned(),
            prompt_template_hash: format!("{:x}", Sha256::digest(SYSTEM_PROMPT.as_bytes())),
            retrieved_judgment_ids: precedents.iter().map(|p| p.judgment_id).collect(),
            input_tokens: answer.input_tokens,
            output_tokens: answer.output_tokens,
            cost_usd_micros: 0,
        };
        let command = DiagnosisCommand::Propose {
            actor: ctx.actor.clone(),
            text: answer.text,
            findings: answer.findings,
            confidence: answer.confidence,
            provenance,
        };
        done_if_repeated(
            self.service
                .advance_diagnosis(&ctx, diagnosis_id, command)
                .await,
        )?;
        Ok(())
    }

    /// The tenant's nearest judgments; an index not built yet for the tenant gives none.
    async fn retrieve(
        &self,
        tenant: TenantId,
        query: &QueryText,
    ) -> Result<Vec<Precedent>, WorkerError> {
        let vectors = self
            .embedder
            .embed(&[query.as_str().to_owned()])
            .await
            .map_err(|e| failed("embed query", e))?;
        let Some(vector) = vectors.into_iter().next() else {
            return Ok(Vec::new());
        };
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| failed("acquire", e))?;
        match casebook_projections::judgment_index::search(&mut conn, tenant, &vector, PRECEDENTS)
            .await
        {
            Ok(hits) => Ok(hits
                .into_iter()
                .map(|hit| Precedent {
                    judgment_id: hit.judgment_id,
                    title: hit.title,
                    body: hit.body,
                    score: hit.score,
                })
                .collect()),
            Err(err) => {
                tracing::warn!(error = %err, tenant = %tenant, "judgment search failed; proceeding without precedents");
                Ok(Vec::new())
            }
        }
    }

    /// Records a failed attempt; a retryable failure also fails the message (SQS retries it).
    async fn fail(
        &self,
        ctx: &RequestContext,
        diagnosis_id: DiagnosisId,
        err: LlmError,
    ) -> Result<(), WorkerError> {
        let retryable = err.is_retryable();
        let reason =
            Reason::parse(format!("model call failed: {err}")).map_err(|e| failed("reason", e))?;
        let command = DiagnosisCommand::Fail {
            actor: ctx.actor.clone(),
            reason,
            retryable,
        };
        done_if_repeated(
            self.service
                .advance_diagnosis(ctx, diagnosis_id, command)
                .await,
        )?;
        if retryable {
            Err(failed("model call", err))
        } else {
            Ok(())
        }
    }
}

/// `Ok(true)` when the command was refused as a repeat (already done).
fn done_if_repeated<T>(result: Result<T, ServiceError>) -> Result<bool, WorkerError> {
    match result {
        Ok(_) => Ok(false),
        Err(ServiceError::Conflict(reason)) => {
            tracing::info!(%reason, "already done");
            Ok(true)
        }
        Err(err) => Err(failed("command", err)),
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
        if let Err(err) = worker.handle(body, &attributes).await {
            tracing::warn!(message_id = %message_id, error = %err, "message failed");
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
            match worker.handle(&message.body, &message.attributes).await {
                Ok(()) => {
                    if let Err(err) = queue.delete(&message.receipt_handle).await {
                        tracing::warn!(error = %err, message_id = %message.message_id, "delete failed; it will be redelivered");
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, message_id = %message.message_id, receives = message.receive_count, "message failed; left for redelivery");
                }
            }
        }
    }
}
