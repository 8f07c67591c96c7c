//! The [`Diagnosis`] aggregate: the AI's answer to one query, from request to resolution.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::actor::{Actor, Owned, Role};
use crate::budget::BudgetUse;
use crate::decision::Outcome;
use crate::error::{ensure, AccessError, DomainError, ErrorKind};
use crate::ids::{DecisionId, DiagnosisId, JudgmentId, QueryId, SessionId, TenantId, UserId};
use crate::personal::DataSubject;
use crate::policy::{ModelTier, MAX_DIAGNOSIS_ATTEMPTS};
use crate::ports::StopReason;
use crate::values::{Confidence, DiagnosisText, QueryText, Reason, UploadKey};

/// Customers request diagnoses.
const CUSTOMERS: &[Role] = &[Role::Customer];
/// The platform (worker, process managers) drives them.
const SYSTEM: &[Role] = &[Role::System];

/// A captured judgment found relevant to the query, with its similarity score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetrievedJudgment {
    /// The judgment.
    pub judgment_id: JudgmentId,
    /// Similarity to the query (higher is closer).
    pub score: f32,
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For information.
    Info,
    /// Minor.
    Low,
    /// Worth attention.
    Medium,
    /// Needs action.
    High,
}

/// One structured finding of a proposed diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// One line.
    pub summary: String,
    /// Optional explanation.
    pub detail: Option<String>,
    /// How serious it is.
    pub severity: Severity,
}

/// Where a proposal came from: enough to reproduce and audit it.
///
/// The fields added by a later version of `DiagnosisProposed` are `Option`s: `None` in an
/// event recorded before that version means "not recorded", never "none".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The provider's model id.
    pub model_id: String,
    /// The tier the router chose.
    pub model_tier: ModelTier,
    /// The prompt template's id (name and version).
    pub prompt_template_id: String,
    /// A hash of the template's text.
    pub prompt_template_hash: String,
    /// The judgments put into the prompt.
    pub retrieved_judgment_ids: Vec<JudgmentId>,
    /// Tokens in.
    pub input_tokens: u32,
    /// Tokens out.
    pub output_tokens: u32,
    /// What the call cost, in millionths of a US dollar. Added in v2 of `DiagnosisProposed`;
    /// v1 events are upcast with 0.
    pub cost_usd_micros: u64,
    /// Why the proposing model stopped (v3).
    pub stop_reason: Option<StopReason>,
    /// The model the query was embedded with for retrieval (v3).
    pub embedding: Option<EmbeddingModel>,
    /// The precedents put into the prompt, best first, each with its score and the log
    /// position of the event its indexed text came from (v3).
    pub precedents: Option<Vec<PrecedentSource>>,
    /// Every attachment of the session and what became of it, in the session's order (v3).
    pub attachments: Option<Vec<AttachmentRead>>,
}

impl Provenance {
    /// What is wrong with this provenance for a new proposal, if anything: since v3 every
    /// proposal records its stop reason, embedding model, precedents and attachments, and
    /// its precedents are its retrieved judgments, in order (the ids for older readers, the
    /// sources since v3).
    pub fn defect(&self) -> Option<ProvenanceDefect> {
        let recorded =
            self.stop_reason.is_some() && self.embedding.is_some() && self.attachments.is_some();
        match &self.precedents {
            Some(precedents) if recorded => {
                let same = precedents
                    .iter()
                    .map(|p| p.judgment_id)
                    .eq(self.retrieved_judgment_ids.iter().copied());
                (!same).then_some(ProvenanceDefect::PrecedentsDisagree)
            }
            _ => Some(ProvenanceDefect::Incomplete),
        }
    }
}

/// Why a [`Provenance`] cannot go into a new proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvenanceDefect {
    /// A field added in v3 is missing (`None` is for events recorded before v3 only).
    Incomplete,
    /// The precedents are not the retrieved judgments, in order.
    PrecedentsDisagree,
}

impl std::fmt::Display for ProvenanceDefect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Incomplete => "stop reason, embedding model, precedents or attachments missing",
            Self::PrecedentsDisagree => "the precedents are not the retrieved judgments",
        })
    }
}

/// An embedding model, as recorded beside what it embedded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingModel {
    /// The provider's model id.
    pub model_id: String,
    /// The length of its vectors.
    pub dimension: u32,
}

/// A precedent of a proposal and where its text came from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrecedentSource {
    /// The judgment.
    pub judgment_id: JudgmentId,
    /// Its similarity to the query (higher is closer).
    pub score: f32,
    /// The global position of the event whose content the judgment index held.
    pub source_position: i64,
}

/// At most this many bytes of an attachment's text go into a diagnosis' context.
pub const ATTACHMENT_TEXT_LIMIT: u64 = 64 * 1024;

/// At most this many bytes of all attachments' text together go into one diagnosis' context:
/// the model's work per query stays bounded however many files a session carries. Earlier
/// attachments come first; the one that reaches the budget is cut, later ones are skipped.
pub const ATTACHMENTS_TEXT_BUDGET: u64 = 4 * ATTACHMENT_TEXT_LIMIT;

/// At most this many characters are embedded for retrieval (the query first, then the
/// attachments' text): embedding models take a bounded input (Titan v2: 50,000 characters),
/// and the query, which retrieval must match above all, is never cut.
pub const RETRIEVAL_TEXT_LIMIT: usize = QueryText::MAX_CHARS;

/// An attachment of the session and what became of it when a diagnosis' context was built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRead {
    /// Its key.
    pub key: UploadKey,
    /// Its content type, when the store knew it.
    pub content_type: Option<String>,
    /// Used or skipped.
    pub outcome: AttachmentOutcome,
}

/// Whether an attachment's text went into the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AttachmentOutcome {
    /// Its text was embedded with the query and put into the prompt.
    Included {
        /// Bytes of its text used.
        bytes: u64,
        /// Whether it was longer than [`ATTACHMENT_TEXT_LIMIT`] (or the rest of
        /// [`ATTACHMENTS_TEXT_BUDGET`]) and cut (on a character boundary).
        truncated: bool,
    },
    /// Left out.
    Skipped {
        /// Why.
        reason: SkipReason,
    },
}

/// Why an attachment was left out of a diagnosis' context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Its content type is not text (`text/*` or `application/json`).
    NotText,
    /// It is empty.
    Empty,
    /// Nothing is stored under its key (the upload never happened).
    Missing,
    /// Its key lies outside the tenant's prefix: refused unread.
    OutsideTenant,
    /// No attachment store is configured (a local setup without an object store).
    NoStore,
    /// Earlier attachments used the whole [`ATTACHMENTS_TEXT_BUDGET`].
    OverBudget,
}

/// An attachment's text, as put into a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentText {
    /// Its key.
    pub key: UploadKey,
    /// Its text, at most [`ATTACHMENT_TEXT_LIMIT`] bytes.
    pub text: String,
}

impl AttachmentText {
    /// The file name the customer uploaded: the key's last segment.
    pub fn file_name(&self) -> &str {
        let key = self.key.as_str();
        key.rsplit('/').next().unwrap_or(key)
    }
}

/// Whether an attachment of `content_type` is read as text: `text/*` and `application/json`,
/// whatever their parameters (`text/plain; charset=utf-8`).
pub fn is_text(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/") || essence == "application/json"
}

/// Why an attachment of `content_type` (if the store knows one) and `size` bytes is left
/// out of a diagnosis' context without being read, or `None` to read it.
pub fn skip_reason(content_type: Option<&str>, size: u64) -> Option<SkipReason> {
    if !content_type.is_some_and(is_text) {
        Some(SkipReason::NotText)
    } else if size == 0 {
        Some(SkipReason::Empty)
    } else {
        None
    }
}

/// The text of an attachment's first bytes: when `truncated` (the object is longer than
/// `bytes`), a character cut at the end is dropped, so the text ends on a character boundary.
/// Bytes that are not UTF-8 become U+FFFD rather than fail the diagnosis.
pub fn attachment_text(bytes: &[u8], truncated: bool) -> String {
    let whole = if truncated {
        without_cut_character(bytes)
    } else {
        bytes
    };
    String::from_utf8_lossy(whole).into_owned()
}

/// `bytes` without a trailing incomplete UTF-8 sequence.
fn without_cut_character(bytes: &[u8]) -> &[u8] {
    // A UTF-8 character is at most 4 bytes: its lead byte is among the last 4.
    let tail = bytes.len().saturating_sub(4);
    let Some(lead) = bytes[tail..]
        .iter()
        .rposition(|byte| byte & 0xC0 != 0x80)
        .map(|i| tail + i)
    else {
        return bytes;
    };
    let length = match bytes[lead] {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    };
    if bytes.len() - lead < length {
        &bytes[..lead]
    } else {
        bytes
    }
}

/// The text embedded to retrieve precedents: the query, then each attachment's text, at most
/// [`RETRIEVAL_TEXT_LIMIT`] characters.
pub fn retrieval_text(query: &QueryText, attachments: &[AttachmentText]) -> String {
    let mut text = query.as_str().to_owned();
    for attachment in attachments {
        text.push_str("\n\n");
        text.push_str(&attachment.text);
    }
    match text.char_indices().nth(RETRIEVAL_TEXT_LIMIT) {
        Some((end, _)) => {
            text.truncate(end);
            text
        }
        None => text,
    }
}

/// A command to the [`Diagnosis`] aggregate, whose id is the [`DiagnosisId`].
#[derive(Debug, Clone, PartialEq)]
pub enum DiagnosisCommand {
    /// Ask for a diagnosis of a submitted query.
    Request {
        /// A customer; the diagnosis belongs to their tenant.
        actor: Actor,
        /// The new diagnosis' id, chosen by the caller.
        diagnosis_id: DiagnosisId,
        /// The session the query was submitted in.
        session_id: SessionId,
        /// The query.
        query_id: QueryId,
        /// The query's text.
        query: QueryText,
        /// Whether the tenant is active, as read by the application.
        tenant_active: bool,
    },
    /// Record the precedents retrieved for an attempt (starting a new attempt after a retryable failure).
    RecordContext {
        /// The system.
        actor: Actor,
        /// Nearest captured judgments, best first; may be empty.
        judgments: Vec<RetrievedJudgment>,
    },
    /// Record the model's proposal.
    Propose {
        /// The system.
        actor: Actor,
        /// The proposed diagnosis.
        text: DiagnosisText,
        /// Its structured findings.
        findings: Vec<Finding>,
        /// The model's confidence.
        confidence: Confidence,
        /// Where it came from.
        provenance: Provenance,
    },
    /// Record that the current attempt failed.
    Fail {
        /// The system.
        actor: Actor,
        /// What went wrong.
        reason: Reason,
        /// Whether another attempt may succeed; ignored once the attempts are spent.
        retryable: bool,
    },
    /// Put the diagnosis aside until it may be worked on again.
    Defer {
        /// The system.
        actor: Actor,
        /// Why, with what the worker read.
        deferral: Deferral,
    },
    /// Take a deferred diagnosis up again, where it was put aside.
    Resume {
        /// The system.
        actor: Actor,
    },
    /// Close the diagnosis with the decision made on it.
    Resolve {
        /// The system.
        actor: Actor,
        /// The decision; must be [`DecisionId::for_diagnosis`] of this diagnosis.
        decision_id: DecisionId,
        /// What was decided.
        outcome: Outcome,
    },
}

impl DiagnosisCommand {
    /// Who issues the command (for the events' metadata).
    pub fn actor(&self) -> &Actor {
        match self {
            Self::Request { actor, .. }
            | Self::RecordContext { actor, .. }
            | Self::Propose { actor, .. }
            | Self::Fail { actor, .. }
            | Self::Defer { actor, .. }
            | Self::Resume { actor }
            | Self::Resolve { actor, .. } => actor,
        }
    }
}

/// Something that happened to a [`Diagnosis`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum DiagnosisEvent {
    /// A diagnosis was asked for.
    DiagnosisRequested {
        /// The diagnosis.
        diagnosis_id: DiagnosisId,
        /// Its tenant.
        tenant_id: TenantId,
        /// The session of the query.
        session_id: SessionId,
        /// The query.
        query_id: QueryId,
        /// The query's text.
        query: QueryText,
        /// The customer who asked.
        requested_by: UserId,
    },
    /// Precedents were retrieved for an attempt.
    ContextRetrieved {
        /// The attempt, from 1.
        attempt: u32,
        /// Nearest captured judgments, best first.
        judgments: Vec<RetrievedJudgment>,
    },
    /// The model proposed a diagnosis (version 3: with cost since v2; stop reason, embedding
    /// model, precedents' sources and attachments since v3).
    DiagnosisProposed {
        /// The proposed diagnosis.
        text: DiagnosisText,
        /// Its structured findings.
        findings: Vec<Finding>,
        /// The model's confidence.
        confidence: Confidence,
        /// Where it came from.
        provenance: Provenance,
    },
    /// An attempt failed.
    DiagnosisFailed {
        /// The attempt, from 1.
        attempt: u32,
        /// What went wrong.
        reason: Reason,
        /// Whether it will be retried; `false` is final.
        retryable: bool,
    },
    /// The diagnosis was put aside before an attempt; nothing was asked of a model.
    DiagnosisDeferred {
        /// Why.
        deferral: Deferral,
    },
    /// A deferred diagnosis was taken up again (the worker is asked to diagnose it anew).
    DiagnosisResumed {
        /// The status it was deferred in, and is back in.
        to: DiagnosisStatus,
    },
    /// A decision closed the diagnosis.
    DiagnosisResolved {
        /// The decision.
        decision_id: DecisionId,
        /// What was decided.
        outcome: Outcome,
    },
}

impl DomainEvent for DiagnosisEvent {
    fn event_type(&self) -> String {
        match self {
            Self::DiagnosisRequested { .. } => "DiagnosisRequested",
            Self::ContextRetrieved { .. } => "ContextRetrieved",
            Self::DiagnosisProposed { .. } => "DiagnosisProposed",
            Self::DiagnosisFailed { .. } => "DiagnosisFailed",
            Self::DiagnosisDeferred { .. } => "DiagnosisDeferred",
            Self::DiagnosisResumed { .. } => "DiagnosisResumed",
            Self::DiagnosisResolved { .. } => "DiagnosisResolved",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            Self::DiagnosisProposed { .. } => "3",
            _ => "1",
        }
        .to_owned()
    }
}

/// Why a diagnosis was deferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Deferral {
    /// The tenant's monthly token budget is spent; it resumes when the budget renews or the
    /// plan grows.
    Budget {
        /// The month's budget and what was spent of it when the worker looked.
        #[serde(flatten)]
        budget: BudgetUse,
    },
}

/// Where a diagnosis is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DiagnosisStatus {
    /// Waiting for the worker.
    Requested,
    /// Precedents retrieved; waiting for the model.
    ContextRetrieved,
    /// Waiting for a decision.
    Proposed,
    /// Put aside until the tenant's monthly token budget renews or its plan grows.
    DeferredBudget,
    /// The last attempt failed; `retryable: false` is terminal.
    Failed {
        /// Whether another attempt may start.
        retryable: bool,
    },
    /// Decided; terminal.
    Resolved {
        /// What was decided.
        outcome: Outcome,
    },
}

impl DiagnosisStatus {
    /// Whether the worker has an attempt to make in this status: requested, context
    /// retrieved (a crash before the proposal), or failed and to be retried.
    pub fn awaits_an_attempt(self) -> bool {
        matches!(
            self,
            Self::Requested | Self::ContextRetrieved | Self::Failed { retryable: true }
        )
    }
}

/// The facts about a diagnosis a [`ConsultantDecision`](crate::decision::ConsultantDecision)
/// command needs, read by the application before dispatch.
#[derive(Debug, Clone, PartialEq)]
pub struct DiagnosisSnapshot {
    /// The diagnosis.
    pub diagnosis_id: DiagnosisId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// The proposal's confidence while the diagnosis is [`DiagnosisStatus::Proposed`], else `None`.
    pub proposed_confidence: Option<Confidence>,
    /// The customer who asked, once known.
    pub customer: Option<UserId>,
}

/// Why a [`DiagnosisCommand`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiagnosisError {
    /// Not found, or the actor's role may not run the command.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The tenant is suspended.
    #[error("the tenant is suspended")]
    TenantSuspended,
    /// `Request` on a diagnosis that exists.
    #[error("the diagnosis was already requested")]
    AlreadyRequested,
    /// The command isn't allowed in the current status.
    #[error("cannot {command} a diagnosis in status {status:?}")]
    IllegalTransition {
        /// The command, e.g. `"propose"`.
        command: &'static str,
        /// The status it was refused in.
        status: DiagnosisStatus,
    },
    /// `Propose` with provenance that is incomplete or contradicts itself.
    #[error("invalid provenance: {0}")]
    InvalidProvenance(ProvenanceDefect),
    /// `Resolve` with another diagnosis' decision.
    #[error("decision {decision_id} is not this diagnosis' decision")]
    ForeignDecision {
        /// The offending decision.
        decision_id: DecisionId,
    },
}

impl DomainError for DiagnosisError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Access(e) => e.kind(),
            Self::ForeignDecision { .. } | Self::InvalidProvenance(_) => ErrorKind::Invalid,
            Self::TenantSuspended | Self::AlreadyRequested | Self::IllegalTransition { .. } => {
                ErrorKind::Conflict
            }
        }
    }
}

/// The AI's answer to one query: requested, context retrieved, proposed (or failed and
/// retried), resolved by a decision.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    state: Option<DiagnosisState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DiagnosisState {
    diagnosis_id: DiagnosisId,
    tenant_id: TenantId,
    status: DiagnosisStatus,
    attempt: u32,
    confidence: Option<Confidence>,
    /// Where a deferred diagnosis resumes. Snapshots taken before deferrals existed lack it.
    #[serde(default)]
    resumes_at: Option<DiagnosisStatus>,
    /// The customer who asked. Snapshots taken before it was kept lack it; the store then
    /// seals nothing new for the stream until it replays it.
    #[serde(default)]
    requested_by: Option<UserId>,
}

impl Owned for DiagnosisState {
    fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
}

impl DiagnosisState {
    /// `IllegalTransition` for `command` in the current status.
    fn illegal(&self, command: &'static str) -> DiagnosisError {
        DiagnosisError::IllegalTransition {
            command,
            status: self.status,
        }
    }
}

impl Diagnosis {
    /// The status, once requested.
    pub fn status(&self) -> Option<DiagnosisStatus> {
        self.state.as_ref().map(|s| s.status)
    }

    /// What a decision command needs to know about this diagnosis, once requested.
    pub fn snapshot(&self) -> Option<DiagnosisSnapshot> {
        self.state.as_ref().map(|s| DiagnosisSnapshot {
            diagnosis_id: s.diagnosis_id,
            tenant_id: s.tenant_id,
            proposed_confidence: s
                .confidence
                .filter(|_| s.status == DiagnosisStatus::Proposed),
            customer: s.requested_by.clone(),
        })
    }

    fn decide(&self, command: DiagnosisCommand) -> Result<DiagnosisEvent, DiagnosisError> {
        let state = self.state.as_ref();
        let event = match command {
            DiagnosisCommand::Request {
                actor,
                diagnosis_id,
                session_id,
                query_id,
                query,
                tenant_active,
            } => {
                actor.authorize_creation(CUSTOMERS, state, DiagnosisError::AlreadyRequested)?;
                ensure(tenant_active, DiagnosisError::TenantSuspended)?;
                DiagnosisEvent::DiagnosisRequested {
                    diagnosis_id,
                    tenant_id: actor.tenant_id,
                    session_id,
                    query_id,
                    query,
                    requested_by: actor.user_id,
                }
            }
            DiagnosisCommand::RecordContext { actor, judgments } => {
                let state = actor.authorize(SYSTEM, state)?;
                let attempt = match state.status {
                    DiagnosisStatus::Requested => state.attempt,
                    DiagnosisStatus::Failed { retryable: true } => state.attempt + 1,
                    _ => return Err(state.illegal("record context for")),
                };
                DiagnosisEvent::ContextRetrieved { attempt, judgments }
            }
            DiagnosisCommand::Propose {
                actor,
                text,
                findings,
                confidence,
                provenance,
            } => {
                let state = actor.authorize(SYSTEM, state)?;
                ensure(
                    state.status == DiagnosisStatus::ContextRetrieved,
                    state.illegal("propose"),
                )?;
                if let Some(defect) = provenance.defect() {
                    return Err(DiagnosisError::InvalidProvenance(defect));
                }
                DiagnosisEvent::DiagnosisProposed {
                    text,
                    findings,
                    confidence,
                    provenance,
                }
            }
            DiagnosisCommand::Fail {
                actor,
                reason,
                retryable,
            } => {
                let state = actor.authorize(SYSTEM, state)?;
                ensure(
                    matches!(
                        state.status,
                        DiagnosisStatus::Requested | DiagnosisStatus::ContextRetrieved
                    ),
                    state.illegal("fail"),
                )?;
                DiagnosisEvent::DiagnosisFailed {
                    attempt: state.attempt,
                    reason,
                    // Once the attempts are spent a failure is final, whatever its cause.
                    retryable: retryable && state.attempt < MAX_DIAGNOSIS_ATTEMPTS,
                }
            }
            DiagnosisCommand::Defer { actor, deferral } => {
                let state = actor.authorize(SYSTEM, state)?;
                ensure(state.status.awaits_an_attempt(), state.illegal("defer"))?;
                DiagnosisEvent::DiagnosisDeferred { deferral }
            }
            DiagnosisCommand::Resume { actor } => {
                let state = actor.authorize(SYSTEM, state)?;
                ensure(
                    state.status == DiagnosisStatus::DeferredBudget,
                    state.illegal("resume"),
                )?;
                DiagnosisEvent::DiagnosisResumed {
                    to: state.resumes_at.unwrap_or(DiagnosisStatus::Requested),
                }
            }
            DiagnosisCommand::Resolve {
                actor,
                decision_id,
                outcome,
            } => {
                let state = actor.authorize(SYSTEM, state)?;
                ensure(
                    state.status == DiagnosisStatus::Proposed,
                    state.illegal("resolve"),
                )?;
                ensure(
                    decision_id == DecisionId::for_diagnosis(state.diagnosis_id),
                    DiagnosisError::ForeignDecision { decision_id },
                )?;
                DiagnosisEvent::DiagnosisResolved {
                    decision_id,
                    outcome,
                }
            }
        };
        Ok(event)
    }
}

impl DataSubject for Diagnosis {
    fn data_subject(&self) -> Option<UserId> {
        self.state.as_ref().and_then(|s| s.requested_by.clone())
    }
}

impl Aggregate for Diagnosis {
    const TYPE: &'static str = "Diagnosis";
    type Command = DiagnosisCommand;
    type Event = DiagnosisEvent;
    type Error = DiagnosisError;
    type Services = ();

    async fn handle(
        &mut self,
        command: DiagnosisCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DiagnosisError> {
        let event = self.decide(command)?;
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: DiagnosisEvent) {
        match (event, self.state.as_mut()) {
            (
                DiagnosisEvent::DiagnosisRequested {
                    diagnosis_id,
                    tenant_id,
                    requested_by,
                    ..
                },
                _,
            ) => {
                self.state = Some(DiagnosisState {
                    diagnosis_id,
                    tenant_id,
                    status: DiagnosisStatus::Requested,
                    attempt: 1,
                    confidence: None,
                    resumes_at: None,
                    requested_by: Some(requested_by),
                });
            }
            (DiagnosisEvent::ContextRetrieved { attempt, .. }, Some(state)) => {
                state.status = DiagnosisStatus::ContextRetrieved;
                state.attempt = attempt;
            }
            (DiagnosisEvent::DiagnosisProposed { confidence, .. }, Some(state)) => {
                state.status = DiagnosisStatus::Proposed;
                state.confidence = Some(confidence);
            }
            (DiagnosisEvent::DiagnosisFailed { retryable, .. }, Some(state)) => {
                state.status = DiagnosisStatus::Failed { retryable };
            }
            (DiagnosisEvent::DiagnosisDeferred { deferral }, Some(state)) => {
                state.resumes_at = Some(state.status);
                state.status = match deferral {
                    Deferral::Budget { .. } => DiagnosisStatus::DeferredBudget,
                };
            }
            (DiagnosisEvent::DiagnosisResumed { to }, Some(state)) => {
                state.status = to;
                state.resumes_at = None;
            }
            (DiagnosisEvent::DiagnosisResolved { outcome, .. }, Some(state)) => {
                state.status = DiagnosisStatus::Resolved { outcome };
            }
            // `decide` emits nothing else before the request, so a sound stream never gets here.
            (_, None) => {}
        }
    }
}
