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
use casebook_adapters::ai::pricing::PriceTable;
use casebook_adapters::ai::prompt::DIAGNOSIS_V2;
use casebook_adapters::ai::AiProviders;
use casebook_adapters::aws::sqs::Queue;
use casebook_adapters::config::DatabaseConfig;
use casebook_adapters::event_store::EventStore;
use casebook_adapters::postgres::{self, begin_for_tenants, Access, ConnectError, DbRole};
use casebook_domain::actor::Actor;
use casebook_domain::diagnosis::{
    attachment_text, retrieval_text, skip_reason, AttachmentOutcome, AttachmentRead,
    AttachmentText, Diagnosis, DiagnosisCommand, DiagnosisEvent, DiagnosisStatus, EmbeddingModel,
    PrecedentSource, Provenance, RetrievedJudgment, SkipReason, ATTACHMENTS_TEXT_BUDGET,
    ATTACHMENT_TEXT_LIMIT,
};
use casebook_domain::ids::{DiagnosisId, SessionId, TenantId};
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::policy::{
    next_call, Complexity, ModelPolicy, ModelTier, NextCall, PlanTier, QueryFeatures, RoutedAnswer,
};
use casebook_domain::ports::{
    AttachmentError, AttachmentStore, DiagnosisPrompt, EmbedError, Embedder, Llm, LlmAnswer,
    LlmError,
};
use casebook_domain::session::{SessionEvent, TenantSession};
use casebook_domain::tenant::Tenant;
use casebook_domain::upcast::upcasters;
use casebook_domain::values::{QueryText, Reason, UploadKey};
use casebook_projections::judgment_index::{self, JudgmentHit};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::relay::{DiagnosisMessage, DIAGNOSIS_REQUESTED};
use crate::service::{RequestContext, Service, ServiceError};

/// The diagnosis handler's consumer name.
pub const DIAGNOSIS_CONSUMER: &str = "diagnosis-worker";
/// Precedents retrieved per diagnosis.
pub const PRECEDENTS: u32 = 5;

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
    let mut tx = begin_for_tenants(pool, Access::ReadWrite, &[tenant_id])
        .await
        .map_err(|e| failed("begin", e))?;
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

/// The pool the worker searches the judgment index on (as `casebook_search`): it handles one
/// message at a time, so one connection, which keeps the tenants' search plans.
pub async fn search_pool(config: &DatabaseConfig) -> Result<PgPool, ConnectError> {
    postgres::connect_database(config, DbRole::Search, 1).await
}

/// The handlers, with what they need.
#[derive(Clone)]
pub struct Worker {
    search_pool: PgPool,
    service: Service,
    diagnoses: EventStore<Diagnosis>,
    tenants: EventStore<Tenant>,
    sessions: EventStore<TenantSession>,
    embedder: Arc<dyn Embedder>,
    llm: Arc<dyn Llm>,
    prices: PriceTable,
    attachments: Option<Arc<dyn AttachmentStore>>,
}

impl Worker {
    /// A worker over `pool` (the application role), `search_pool` (the search role, see
    /// [`search_pool`]) and the AI ports, with no prices (every answer costs 0, as for models
    /// run in process) and no attachment store (attachments are skipped, and the provenance
    /// says so).
    pub fn new(
        pool: PgPool,
        search_pool: PgPool,
        embedder: Arc<dyn Embedder>,
        llm: Arc<dyn Llm>,
    ) -> Self {
        let service = Service::new(pool);
        let appender = service.appender();
        Self {
            search_pool,
            diagnoses: EventStore::with_appender(appender.clone(), upcasters()),
            tenants: EventStore::with_appender(appender.clone(), upcasters()),
            sessions: EventStore::with_appender(appender, upcasters()),
            service,
            embedder,
            llm,
            prices: PriceTable::default(),
            attachments: None,
        }
    }

    /// A worker over `pool` and `search_pool` with the process's providers, pricing answers
    /// by their table.
    pub fn from_providers(pool: PgPool, search_pool: PgPool, providers: &AiProviders) -> Self {
        Self::new(
            pool,
            search_pool,
            providers.embedder.clone(),
            providers.llm.clone(),
        )
        .with_prices(providers.prices.clone())
    }

    /// Prices answers by `prices` for their provenance.
    pub fn with_prices(mut self, prices: PriceTable) -> Self {
        self.prices = prices;
        self
    }

    /// Reads sessions' attachments from `store` (the uploads bucket), so the text ones are
    /// embedded with the query and put into the prompt.
    pub fn with_attachments(mut self, store: Arc<dyn AttachmentStore>) -> Self {
        self.attachments = Some(store);
        self
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

    /// Reads the session's text attachments, retrieves context for a requested diagnosis
    /// (embedding the query with that text), asks the models the routing policy picks and
    /// records the proposal with its provenance: models, template, precedents with their
    /// sources, attachments used or skipped, tokens, cost and stop reason. Idempotent: a
    /// diagnosis past the point this message asks for is success.
    ///
    /// Every command it issues names the request's event as its cause and carries on the
    /// request's correlation id, so an auditor can walk from the customer's query to the
    /// proposal.
    pub async fn handle_diagnosis(&self, message: &DiagnosisMessage) -> Result<(), WorkerError> {
        let diagnosis_id = DiagnosisId::from_uuid(message.diagnosis_id);
        let aggregate_id = diagnosis_id.to_string();
        let diagnoses = self.diagnoses.for_tenant(message.tenant_id);
        let events = cqrs_es::EventStore::load_events(&diagnoses, &aggregate_id)
            .await
            .map_err(|e| failed("load diagnosis", e))?;
        let mut request = None;
        let mut diagnosis = Diagnosis::default();
        for envelope in &events {
            if let DiagnosisEvent::DiagnosisRequested {
                query,
                tenant_id,
                session_id,
                ..
            } = &envelope.payload
            {
                request = Some((query.clone(), *tenant_id, *session_id, &envelope.metadata));
            }
            cqrs_es::Aggregate::apply(&mut diagnosis, envelope.payload.clone());
        }
        let Some((query, tenant_id, session_id, request_metadata)) = request else {
            return Err(WorkerError::Malformed(format!(
                "diagnosis {aggregate_id} not found"
            )));
        };
        if *tenant_id.as_uuid() != message.tenant_id {
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
        let cause = serde_json::to_value(request_metadata)
            .map_err(|e| failed("request metadata", e))
            .and_then(|value| {
                EventMetadata::from_json(value).map_err(|e| {
                    WorkerError::Malformed(format!("request metadata of {aggregate_id}: {e}"))
                })
            })?;
        let actor = Actor::system(tenant_id);
        let ctx = RequestContext {
            metadata: EventMetadata::caused_by(
                &actor,
                &cause,
                message.event_id.clone(),
                Source::Worker,
            ),
            actor,
        };
        let embedding = self.embedding_model()?;
        let attachment_keys = self.session_attachments(tenant_id, session_id).await?;
        let routing = self
            .routing(tenant_id, &query, attachment_keys.len())
            .await?;
        let (attachments, attachment_texts) =
            match self.read_attachments(tenant_id, attachment_keys).await {
                Ok(read) => read,
                Err(err) => {
                    return self
                        .fail(
                            &ctx,
                            diagnosis_id,
                            format!("reading the attachments failed: {err}"),
                            true,
                            err,
                        )
                        .await;
                }
            };

        let hits = match self
            .retrieve(tenant_id, &retrieval_text(&query, &attachment_texts))
            .await
        {
            Ok(hits) => hits,
            Err(Retrieval::Embed(err)) => {
                let retryable = err.is_retryable();
                return self
                    .fail(
                        &ctx,
                        diagnosis_id,
                        format!("embedding the query failed: {err}"),
                        retryable,
                        err,
                    )
                    .await;
            }
            Err(Retrieval::Other(err)) => return Err(err),
        };
        if status != Some(DiagnosisStatus::ContextRetrieved) {
            let judgments = hits
                .iter()
                .map(|hit| RetrievedJudgment {
                    judgment_id: hit.judgment_id,
                    score: hit.score,
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
        let retrieved_judgment_ids: Vec<_> = hits.iter().map(|hit| hit.judgment_id).collect();
        let precedents: Vec<_> = hits
            .iter()
            .map(|hit| PrecedentSource {
                judgment_id: hit.judgment_id,
                score: hit.score,
                source_position: hit.source_position,
            })
            .collect();
        let mut prompt = DiagnosisPrompt {
            system: DIAGNOSIS_V2.text().to_owned(),
            query,
            precedents: hits.into_iter().map(JudgmentHit::into_precedent).collect(),
            attachments: attachment_texts,
            tier: ModelTier::Standard,
        };
        let (answer, usage) = match self.ask(&mut prompt, &routing).await {
            Ok(answered) => answered,
            Err(err) => {
                let retryable = err.is_retryable();
                return self
                    .fail(
                        &ctx,
                        diagnosis_id,
                        format!("model call failed: {err}"),
                        retryable,
                        err,
                    )
                    .await;
            }
        };
        tracing::info!(
            diagnosis = %aggregate_id,
            tenant = %tenant_id,
            model_id = %answer.model_id,
            tier = ?prompt.tier,
            calls = usage.calls,
            stop_reason = ?answer.stop_reason,
            attachments = prompt.attachments.len(),
            input_tokens = usage.input_tokens,
            output_tokens = usage.output_tokens,
            cost_usd_micros = usage.cost_usd_micros,
            "diagnosis answered"
        );
        let provenance = Provenance {
            model_id: answer.model_id,
            model_tier: prompt.tier,
            prompt_template_id: DIAGNOSIS_V2.id().to_owned(),
            prompt_template_hash: DIAGNOSIS_V2.sha256_hex(),
            retrieved_judgment_ids,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost_usd_micros: usage.cost_usd_micros,
            stop_reason: Some(answer.stop_reason),
            embedding: Some(embedding),
            precedents: Some(precedents),
            attachments: Some(attachments),
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

    /// The embedder's model, for provenance.
    fn embedding_model(&self) -> Result<EmbeddingModel, WorkerError> {
        Ok(EmbeddingModel {
            model_id: self.embedder.model_id().to_owned(),
            dimension: u32::try_from(self.embedder.dimension())
                .map_err(|e| failed("embedding dimension", e))?,
        })
    }

    /// The keys the session was opened with, in order.
    async fn session_attachments(
        &self,
        tenant_id: TenantId,
        session_id: SessionId,
    ) -> Result<Vec<UploadKey>, WorkerError> {
        let sessions = self.sessions.for_tenant(*tenant_id.as_uuid());
        let session = cqrs_es::EventStore::load_events(&sessions, &session_id.to_string())
            .await
            .map_err(|e| failed("load session", e))?;
        Ok(session
            .into_iter()
            .find_map(|envelope| match envelope.payload {
                SessionEvent::SessionOpened { attachments, .. } => Some(attachments),
                _ => None,
            })
            .unwrap_or_default())
    }

    /// Each attachment's fate and the text of those that are text, in the session's order.
    /// Only a failing store is an error (the attempt fails, to be retried); a missing,
    /// foreign, binary or empty attachment is skipped and recorded as such.
    async fn read_attachments(
        &self,
        tenant: TenantId,
        keys: Vec<UploadKey>,
    ) -> Result<(Vec<AttachmentRead>, Vec<AttachmentText>), AttachmentError> {
        let mut reads = Vec::with_capacity(keys.len());
        let mut texts = Vec::new();
        let mut budget = ATTACHMENTS_TEXT_BUDGET;
        for key in keys {
            let limit = budget.min(ATTACHMENT_TEXT_LIMIT);
            let (content_type, outcome, text) = match &self.attachments {
                None => (None, skipped(SkipReason::NoStore), None),
                Some(_) if limit == 0 => (None, skipped(SkipReason::OverBudget), None),
                Some(store) => match read_attachment(store.as_ref(), tenant, &key, limit).await {
                    Ok(read) => read,
                    Err(AttachmentError::Missing { .. }) => {
                        (None, skipped(SkipReason::Missing), None)
                    }
                    Err(AttachmentError::OutsideTenant { .. }) => {
                        // Sessions refuse foreign keys, so a stored one is corruption or
                        // tampering: worth an alert, never a read.
                        tracing::error!(%tenant, %key, "attachment outside the tenant's prefix refused");
                        (None, skipped(SkipReason::OutsideTenant), None)
                    }
                    Err(err @ AttachmentError::Unavailable(_)) => return Err(err),
                },
            };
            if let AttachmentOutcome::Skipped { reason } = outcome {
                tracing::info!(%tenant, %key, ?reason, "attachment skipped");
            }
            if let Some(text) = text {
                budget = budget.saturating_sub(text.len() as u64);
                texts.push(AttachmentText {
                    key: key.clone(),
                    text,
                });
            }
            reads.push(AttachmentRead {
                key,
                content_type,
                outcome,
            });
        }
        Ok((reads, texts))
    }

    /// What the routing policy decides from: the tenant's plan and model policy, and the
    /// query's length and attachments.
    async fn routing(
        &self,
        tenant_id: TenantId,
        query: &QueryText,
        attachment_count: usize,
    ) -> Result<Routing, WorkerError> {
        let tenant: Tenant = cqrs_es::EventStore::load_aggregate(
            &self.tenants.for_tenant(*tenant_id.as_uuid()),
            &tenant_id.to_string(),
        )
        .await
        .map_err(|e| failed("load tenant", e))?
        .into_state();
        let (Some(plan), Some(policy)) = (tenant.plan(), tenant.model_policy()) else {
            return Err(WorkerError::Malformed(format!(
                "tenant {tenant_id} is not onboarded"
            )));
        };
        Ok(Routing {
            plan,
            policy,
            features: QueryFeatures {
                length_chars: query.as_str().chars().count(),
                attachment_count,
                flagged_hard: false,
            },
        })
    }

    /// Asks the tiers [`next_call`] picks until it says to propose; returns the last answer
    /// (with `prompt.tier` its tier) and the usage of every call.
    async fn ask(
        &self,
        prompt: &mut DiagnosisPrompt,
        routing: &Routing,
    ) -> Result<(LlmAnswer, Usage), LlmError> {
        let mut routed = Vec::new();
        let mut usage = Usage::default();
        let mut last = None;
        while let NextCall::Ask(tier) =
            next_call(routing.plan, routing.policy, routing.features, &routed)
        {
            prompt.tier = tier;
            let answer = self.llm.diagnose(prompt).await?;
            usage.add(&answer, self.cost_usd_micros(&answer));
            routed.push(RoutedAnswer {
                tier,
                confidence: answer.confidence,
                complexity: Complexity::of_findings(&answer.findings),
            });
            last = Some(answer);
        }
        // `next_call` asks at least once before proposing.
        let answer =
            last.ok_or_else(|| LlmError::Permanent("the routing policy asked no model".into()))?;
        Ok((answer, usage))
    }

    /// `answer`'s cost by the price table; 0 for a model it doesn't price (one run in
    /// process: configuration checks every configured Bedrock model has a price).
    fn cost_usd_micros(&self, answer: &LlmAnswer) -> u64 {
        self.prices
            .cost_usd_micros(&answer.model_id, answer.input_tokens, answer.output_tokens)
            .unwrap_or(0)
    }

    /// The tenant's judgments nearest to `text`, best first (none before its first judgment
    /// is indexed).
    async fn retrieve(&self, tenant: TenantId, text: &str) -> Result<Vec<JudgmentHit>, Retrieval> {
        let vectors = self
            .embedder
            .embed(&[text.to_owned()])
            .await
            .map_err(Retrieval::Embed)?;
        let [vector] = vectors.as_slice() else {
            return Err(Retrieval::Other(WorkerError::Malformed(format!(
                "the embedder returned {} vectors for one query",
                vectors.len()
            ))));
        };
        let mut conn = self
            .search_pool
            .acquire()
            .await
            .map_err(|e| Retrieval::Other(failed("acquire", e)))?;
        judgment_index::search(&mut conn, tenant, vector, PRECEDENTS)
            .await
            .map_err(|e| Retrieval::Other(failed("search the judgment index", e)))
    }

    /// Records a failed attempt; a retryable failure also fails the message (SQS retries it).
    async fn fail(
        &self,
        ctx: &RequestContext,
        diagnosis_id: DiagnosisId,
        reason: String,
        retryable: bool,
        err: impl std::error::Error + Send + Sync + 'static,
    ) -> Result<(), WorkerError> {
        let reason = Reason::parse(reason).map_err(|e| failed("reason", e))?;
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
            Err(failed("diagnosis attempt", err))
        } else {
            Ok(())
        }
    }
}

/// Why retrieving precedents failed: the embedder (recorded on the diagnosis) or the rest.
enum Retrieval {
    Embed(EmbedError),
    Other(WorkerError),
}

/// What routing decides from, read once per message.
struct Routing {
    plan: PlanTier,
    policy: ModelPolicy,
    features: QueryFeatures,
}

/// Tokens and cost of every model call of an attempt (triage and escalation included).
#[derive(Default)]
struct Usage {
    calls: u32,
    input_tokens: u32,
    output_tokens: u32,
    cost_usd_micros: u64,
}

impl Usage {
    fn add(&mut self, answer: &LlmAnswer, cost_usd_micros: u64) {
        self.calls += 1;
        self.input_tokens = self.input_tokens.saturating_add(answer.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(answer.output_tokens);
        self.cost_usd_micros = self.cost_usd_micros.saturating_add(cost_usd_micros);
    }
}

fn skipped(reason: SkipReason) -> AttachmentOutcome {
    AttachmentOutcome::Skipped { reason }
}

/// One attachment's content type, outcome and (when included) text: described first, and
/// read — at most `limit` bytes — only when it is non-empty text.
async fn read_attachment(
    store: &dyn AttachmentStore,
    tenant: TenantId,
    key: &UploadKey,
    limit: u64,
) -> Result<(Option<String>, AttachmentOutcome, Option<String>), AttachmentError> {
    let info = store.describe(tenant, key).await?;
    if let Some(reason) = skip_reason(info.content_type.as_deref(), info.size) {
        return Ok((info.content_type, skipped(reason), None));
    }
    let bytes = store.read_prefix(tenant, key, limit).await?;
    let truncated = info.size > bytes.len() as u64;
    let text = attachment_text(&bytes, truncated);
    let outcome = AttachmentOutcome::Included {
        bytes: text.len() as u64,
        truncated,
    };
    Ok((info.content_type, outcome, Some(text)))
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
