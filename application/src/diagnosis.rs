//! The diagnosis use case: what happens between a customer's query and the proposal a
//! consultant reviews.
//!
//! For a requested diagnosis it reads the session's text attachments, embeds the query with
//! them, retrieves the tenant's nearest captured judgments, asks the model tiers the routing
//! policy picks, and records the proposal with its provenance — or the failed attempt, told
//! retryable (throttling, an unavailable store or provider: the request's message is
//! redelivered) from final (a refused input: nothing will change on retry).
//!
//! Requests arrive at least once, so handling is idempotent: a diagnosis already past the
//! point a request asks for is success, and a command the diagnosis refuses as a repeat
//! counts as done.

use std::sync::Arc;

use casebook_domain::actor::Actor;
use casebook_domain::budget::BudgetUse;
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
    AttachmentError, AttachmentStore, DiagnosisPrompt, Embedder, Llm, LlmAnswer, LlmError,
};
use casebook_domain::session::SessionEvent;
use casebook_domain::tenant::Tenant;
use casebook_domain::values::{QueryText, Reason, UploadKey};
use cqrs_es::Aggregate;

use crate::budget::Budgets;
use crate::judgments::{nearest, SearchError};
use crate::own_models::{load_named, ModelArtifacts};
use crate::ports::{BoxError, PrecedentSearch, Pricing};
use crate::service::{RequestContext, Service, ServiceError};

/// Precedents retrieved per diagnosis.
pub const PRECEDENTS: u32 = 5;

/// A request to diagnose, as the queue delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagnosisRequest {
    /// The id of the event that asked for it, `DiagnosisRequested` or `DiagnosisResumed` (the
    /// cause of every command issued).
    pub event_id: String,
    /// The tenant the message claims; it must own the diagnosis.
    pub tenant_id: TenantId,
    /// The diagnosis.
    pub diagnosis_id: DiagnosisId,
}

/// Why a request was not handled (its message stays on the queue and is retried).
#[derive(Debug, thiserror::Error)]
pub enum DiagnosisError {
    /// The request names something that isn't there (no such diagnosis, another tenant's,
    /// a tenant not onboarded).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// A dependency failed; a retry may succeed.
    #[error("{0}")]
    Failed(String, #[source] BoxError),
}

fn failed(what: &str, err: impl std::error::Error + Send + Sync + 'static) -> DiagnosisError {
    DiagnosisError::Failed(what.to_owned(), Box::new(err))
}

/// The versioned system prompt every proposal is asked with; its id and hash go into the
/// provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemPrompt {
    /// The template's id (e.g. `diagnosis-v2`).
    pub id: String,
    /// The rendered system prompt.
    pub text: String,
    /// The SHA-256 of the text, hex.
    pub sha256_hex: String,
}

/// The diagnosis use case with its ports.
#[derive(Clone)]
pub struct Diagnoser {
    service: Service,
    search: Arc<dyn PrecedentSearch>,
    embedder: Arc<dyn Embedder>,
    llm: Arc<dyn Llm>,
    pricing: Arc<dyn Pricing>,
    prompt: Arc<SystemPrompt>,
    budgets: Budgets,
    attachments: Option<Arc<dyn AttachmentStore>>,
    own_models: Option<Arc<dyn ModelArtifacts>>,
}

/// The ports a [`Diagnoser`] always needs.
pub struct DiagnoserPorts {
    /// Commands go through it, and streams are read from its stores.
    pub service: Service,
    /// The judgment index.
    pub search: Arc<dyn PrecedentSearch>,
    /// Embeds the query (with its attachments' text).
    pub embedder: Arc<dyn Embedder>,
    /// Answers the prompt.
    pub llm: Arc<dyn Llm>,
    /// Prices the answers for their provenance.
    pub pricing: Arc<dyn Pricing>,
    /// The system prompt.
    pub prompt: SystemPrompt,
    /// The tenants' monthly token budgets.
    pub budgets: Budgets,
}

impl Diagnoser {
    /// A diagnoser over `ports`, with no attachment store (attachments are skipped, and the
    /// provenance says so).
    pub fn new(ports: DiagnoserPorts) -> Self {
        Self {
            service: ports.service,
            search: ports.search,
            embedder: ports.embedder,
            llm: ports.llm,
            pricing: ports.pricing,
            prompt: Arc::new(ports.prompt),
            budgets: ports.budgets,
            attachments: None,
            own_models: None,
        }
    }

    /// The same diagnoser, running a tenant's promoted own model (loaded from `models`)
    /// where the routing policy picks the tier it serves.
    pub fn with_own_models(mut self, models: Arc<dyn ModelArtifacts>) -> Self {
        self.own_models = Some(models);
        self
    }

    /// Reads sessions' attachments from `store` (the uploads bucket), so the text ones are
    /// embedded with the query and put into the prompt.
    pub fn with_attachments(mut self, store: Arc<dyn AttachmentStore>) -> Self {
        self.attachments = Some(store);
        self
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
    pub async fn diagnose(&self, request: &DiagnosisRequest) -> Result<(), DiagnosisError> {
        let diagnosis_id = request.diagnosis_id;
        let aggregate_id = diagnosis_id.to_string();
        let events = self
            .service
            .stores()
            .diagnoses
            .load_events(request.tenant_id, &aggregate_id)
            .await
            .map_err(|e| failed("load diagnosis", e))?;
        let mut requested = None;
        let mut diagnosis = Diagnosis::default();
        for envelope in &events {
            if let DiagnosisEvent::DiagnosisRequested {
                query,
                tenant_id,
                session_id,
                ..
            } = &envelope.payload
            {
                requested = Some((query.clone(), *tenant_id, *session_id, &envelope.metadata));
            }
            diagnosis.apply(envelope.payload.clone());
        }
        let Some((query, tenant_id, session_id, request_metadata)) = requested else {
            return Err(DiagnosisError::Malformed(format!(
                "diagnosis {aggregate_id} not found"
            )));
        };
        if tenant_id != request.tenant_id {
            return Err(DiagnosisError::Malformed(
                "tenant does not own the diagnosis".into(),
            ));
        }
        let status = diagnosis.status();
        match status {
            Some(status) if status.awaits_an_attempt() => {}
            other => {
                tracing::info!(diagnosis = %aggregate_id, status = ?other, event_id = %request.event_id, "diagnosis already handled");
                return Ok(());
            }
        }
        let cause = serde_json::to_value(request_metadata)
            .map_err(|e| failed("request metadata", e))
            .and_then(|value| {
                EventMetadata::from_json(value).map_err(|e| {
                    DiagnosisError::Malformed(format!("request metadata of {aggregate_id}: {e}"))
                })
            })?;
        let actor = Actor::system(tenant_id);
        let ctx = RequestContext {
            metadata: EventMetadata::caused_by(
                &actor,
                &cause,
                request.event_id.clone(),
                Source::Worker,
            ),
            actor,
        };
        let tenant = self
            .service
            .tenant_state(tenant_id)
            .await
            .map_err(|e| failed("load tenant", e))?;
        let budget = self
            .budgets
            .this_month(tenant_id, &tenant)
            .await
            .map_err(|e| failed("read the token budget", e))?
            .ok_or_else(|| not_onboarded(tenant_id))?;
        self.budgets
            .record_thresholds(&ctx, &tenant, budget)
            .await
            .map_err(|e| failed("record a budget threshold", e))?;
        if budget.is_spent() {
            self.budgets
                .defer(&ctx, diagnosis_id, budget)
                .await
                .map_err(|e| failed("defer", e))?;
            return Ok(());
        }
        let embedding = self.embedding_model()?;
        let attachment_keys = self.session_attachments(tenant_id, session_id).await?;
        let routing = routing(&tenant, &query, attachment_keys.len())
            .ok_or_else(|| not_onboarded(tenant_id))?;
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

        let hits = match nearest(
            self.embedder.as_ref(),
            self.search.as_ref(),
            tenant_id,
            &retrieval_text(&query, &attachment_texts),
            PRECEDENTS,
        )
        .await
        {
            Ok(hits) => hits,
            Err(SearchError::Embed(err)) => {
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
            Err(SearchError::Index(err)) => {
                return Err(DiagnosisError::Failed(
                    "search the judgment index".into(),
                    err,
                ))
            }
            Err(err @ (SearchError::Malformed(_) | SearchError::Invalid(_))) => {
                return Err(DiagnosisError::Malformed(err.to_string()))
            }
        };
        if status != Some(DiagnosisStatus::ContextRetrieved) {
            let judgments = hits
                .iter()
                .map(|hit| RetrievedJudgment {
                    judgment_id: hit.precedent.judgment_id,
                    score: hit.precedent.score,
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
        let retrieved_judgment_ids: Vec<_> =
            hits.iter().map(|hit| hit.precedent.judgment_id).collect();
        let precedents: Vec<_> = hits
            .iter()
            .map(|hit| PrecedentSource {
                judgment_id: hit.precedent.judgment_id,
                score: hit.precedent.score,
                source_position: hit.source_position,
            })
            .collect();
        let mut prompt = DiagnosisPrompt {
            system: self.prompt.text.clone(),
            query,
            precedents: hits.into_iter().map(|hit| hit.precedent).collect(),
            attachments: attachment_texts,
            tier: ModelTier::Standard,
        };
        let (answer, usage) = match self.ask(&mut prompt, &routing, &tenant).await {
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
            prompt_template_id: self.prompt.id.clone(),
            prompt_template_hash: self.prompt.sha256_hex.clone(),
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
        if done_if_repeated(
            self.service
                .advance_diagnosis(&ctx, diagnosis_id, command)
                .await,
        )? {
            return Ok(());
        }
        let spent = BudgetUse {
            tokens_used: budget.tokens_used.saturating_add(usage.tokens()),
            ..budget
        };
        // The proposal is recorded, so the message is done: a threshold missed here is
        // recorded by the tenant's next diagnosis, which reads this proposal's tokens.
        if let Err(err) = self.budgets.record_thresholds(&ctx, &tenant, spent).await {
            tracing::warn!(tenant = %tenant_id, error = %err, "budget threshold not recorded");
        }
        Ok(())
    }

    /// The embedder's model, for provenance.
    fn embedding_model(&self) -> Result<EmbeddingModel, DiagnosisError> {
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
    ) -> Result<Vec<UploadKey>, DiagnosisError> {
        let session = self
            .service
            .stores()
            .sessions
            .load_events(tenant_id, &session_id.to_string())
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
                        tracing::error!(
                            %tenant,
                            key = key.without_file_name(),
                            "attachment outside the tenant's prefix refused"
                        );
                        (None, skipped(SkipReason::OutsideTenant), None)
                    }
                    Err(err @ AttachmentError::Unavailable(_)) => return Err(err),
                },
            };
            if let AttachmentOutcome::Skipped { reason } = outcome {
                tracing::info!(
                    %tenant,
                    key = key.without_file_name(),
                    ?reason,
                    "attachment skipped"
                );
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

    /// Asks the tiers [`next_call`] picks until it says to propose; returns the last answer
    /// (with `prompt.tier` its tier) and the usage of every call.
    async fn ask(
        &self,
        prompt: &mut DiagnosisPrompt,
        routing: &Routing,
        tenant: &Tenant,
    ) -> Result<(LlmAnswer, Usage), LlmError> {
        let mut routed = Vec::new();
        let mut usage = Usage::default();
        let mut last = None;
        while let NextCall::Ask(tier) =
            next_call(routing.plan, routing.policy, routing.features, &routed)
        {
            prompt.tier = tier;
            let answer = self.model_for(tenant, tier).await?.diagnose(prompt).await?;
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

    /// The model serving `tier` for `tenant`: its promoted own model, or the platform's.
    /// A promoted model that cannot be loaded fails the attempt (retried) rather than
    /// quietly answering with another model than the practice chose.
    async fn model_for(&self, tenant: &Tenant, tier: ModelTier) -> Result<Arc<dyn Llm>, LlmError> {
        match (&self.own_models, tenant.promoted_model(tier)) {
            (Some(models), Some(promoted)) => {
                load_named(models.as_ref(), &promoted).await.map_err(|err| {
                    LlmError::Transient(
                        format!("loading {}: {err}", promoted.model_id.provenance_name()).into(),
                    )
                })
            }
            _ => Ok(self.llm.clone()),
        }
    }

    /// `answer`'s cost by the price table; 0 for a model it doesn't price (one run in
    /// process: configuration checks every configured Bedrock model has a price).
    fn cost_usd_micros(&self, answer: &LlmAnswer) -> u64 {
        self.pricing
            .cost_usd_micros(&answer.model_id, answer.input_tokens, answer.output_tokens)
            .unwrap_or(0)
    }

    /// Records a failed attempt; a retryable failure also fails the message (SQS retries it).
    async fn fail(
        &self,
        ctx: &RequestContext,
        diagnosis_id: DiagnosisId,
        reason: String,
        retryable: bool,
        err: impl std::error::Error + Send + Sync + 'static,
    ) -> Result<(), DiagnosisError> {
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

/// What the routing policy decides from: the tenant's plan and model policy, and the query's
/// length and attachments; `None` before the tenant is onboarded.
fn routing(tenant: &Tenant, query: &QueryText, attachment_count: usize) -> Option<Routing> {
    Some(Routing {
        plan: tenant.plan()?,
        policy: tenant.model_policy()?,
        features: QueryFeatures {
            length_chars: query.as_str().chars().count(),
            attachment_count,
            flagged_hard: false,
        },
    })
}

fn not_onboarded(tenant_id: TenantId) -> DiagnosisError {
    DiagnosisError::Malformed(format!("tenant {tenant_id} is not onboarded"))
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
    /// Tokens in and out, as budgets count them.
    fn tokens(&self) -> u64 {
        u64::from(self.input_tokens) + u64::from(self.output_tokens)
    }

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
fn done_if_repeated<T>(result: Result<T, ServiceError>) -> Result<bool, DiagnosisError> {
    match result {
        Ok(_) => Ok(false),
        Err(ServiceError::Conflict(reason)) => {
            tracing::info!(%reason, "already done");
            Ok(true)
        }
        Err(err) => Err(failed("command", err)),
    }
}
