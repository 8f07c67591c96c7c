//! The read routes over the projections' read models and the audit table.
//!
//! Every read runs in its own read-only transaction as `casebook_app` with
//! `app.tenant_id` set to the caller's tenant (row-level security), and every query filters
//! by that tenant as well. Lists are pages `{ items, next_cursor }` whose cursor is opaque.
//! Another tenant's id is simply not found.
//!
//! Who reads what, as a practice would expect:
//!
//! | route | customer | consultant | auditor | admin |
//! |---|---|---|---|---|
//! | sessions | own | ✓ | ✓ | – |
//! | diagnoses | own, as released | ✓ | ✓ | – |
//! | review queue | – | ✓ | – | – |
//! | decisions | – | ✓ | ✓ | – |
//! | usage | – | – | ✓ | ✓ |
//! | audit rows | – | – | ✓ | – |
//! | tenant | – | – | ✓ | ✓ |

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use casebook_adapters::postgres::{begin_for_tenants, Access};
use casebook_domain::actor::{Actor, Role};
use casebook_domain::budget::{BudgetMonth, BudgetUse};
use casebook_domain::decision::{Outcome, Verdict};
use casebook_domain::diagnosis::{DiagnosisStatus, Finding, Provenance};
use casebook_domain::ids::{DecisionId, DiagnosisId, QueryId, SessionId, TenantId, UserId};
use casebook_domain::policy::{ModelPolicy, PlanTier};
use casebook_projections::audit::AuditRecord;
use casebook_projections::audit::{self, VerifyError};
use casebook_projections::models::{
    Decision, Diagnosis, Session, SessionQuery, SessionStatus, Tenant, TenantStatus, Usage,
};
use casebook_projections::read::audit::AuditFilter;
use casebook_projections::read::diagnoses::QueueItem;
use casebook_projections::read::{self, Page, PageRequest, Reach};
use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, Transaction};
use utoipa::{IntoParams, ToSchema};

use super::access_log::Returned;
use super::caller::Acting;
use super::commands::parse_id;
use super::cursor;
use super::json::Params;
use super::problem::ApiError;
use super::AppState;

const DEFAULT_PAGE: i64 = 20;
const MAX_PAGE: i64 = 100;

/// A read-only transaction that row-level security limits to `tenant`.
pub(crate) async fn tenant_read(
    pool: &PgPool,
    tenant: TenantId,
) -> Result<Transaction<'static, Postgres>, ApiError> {
    Ok(begin_for_tenants(pool, Access::ReadOnly, &[*tenant.as_uuid()]).await?)
}

/// What `actor` may see of the tenant's sessions and diagnoses: staff everything, a
/// customer their own.
fn reach(actor: &Actor) -> Reach<'_> {
    match actor.role {
        Role::Customer => Reach::OwnedBy(&actor.user_id),
        _ => Reach::Tenant,
    }
}

/// Which page of a list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// The `next_cursor` of the previous page; absent for the first page.
    pub after: Option<String>,
    /// Items per page, 1..=100 (default 20).
    pub limit: Option<i64>,
}

impl PageParams {
    pub(crate) fn request(&self) -> Result<PageRequest, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::Invalid {
                field: "limit".into(),
                message: format!("must be between 1 and {MAX_PAGE}"),
            });
        }
        Ok(PageRequest {
            limit,
            after: self.after.as_deref().map(cursor::decode).transpose()?,
        })
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Listing<T: ToSchema> {
    /// The items, in the list's order.
    pub items: Vec<T>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> Listing<T> {
    pub(crate) fn of<R>(page: Page<R>, view: impl Fn(R) -> T) -> Self {
        Self {
            items: page.items.into_iter().map(view).collect(),
            next_cursor: page.next.map(cursor::encode),
        }
    }
}

/// An item of a list, named in the access log by its id.
pub trait Identified {
    /// The id the access log records for it.
    fn resource_id(&self) -> String;
}

/// The page as JSON, telling the access log which items it returned ([`Returned`]).
impl<T: ToSchema + Serialize + Identified> IntoResponse for Listing<T> {
    fn into_response(self) -> Response {
        let returned = Returned(self.items.iter().map(Identified::resource_id).collect());
        (Extension(returned), Json(self)).into_response()
    }
}

/// A customer's session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// The session.
    #[schema(value_type = uuid::Uuid)]
    pub session_id: SessionId,
    /// What it is about.
    pub subject: String,
    /// Upload keys.
    pub attachments: Vec<String>,
    /// `open` or `closed`.
    #[schema(value_type = String)]
    pub status: SessionStatus,
    /// The customer who opened it.
    #[schema(value_type = String)]
    pub opened_by: UserId,
    /// When.
    pub opened_at: DateTime<Utc>,
    /// Who closed it.
    #[schema(value_type = Option<String>)]
    pub closed_by: Option<UserId>,
    /// When.
    pub closed_at: Option<DateTime<Utc>>,
    /// Queries submitted.
    pub query_count: i32,
    /// The last event's time.
    pub last_activity_at: DateTime<Utc>,
    /// The stream's version.
    pub version: i64,
}

impl From<Session> for SessionView {
    fn from(s: Session) -> Self {
        Self {
            session_id: s.session_id,
            subject: s.subject,
            attachments: s.attachments,
            status: s.status,
            opened_by: s.opened_by,
            opened_at: s.opened_at,
            closed_by: s.closed_by,
            closed_at: s.closed_at,
            query_count: s.query_count,
            last_activity_at: s.last_activity_at,
            version: s.version,
        }
    }
}

/// A query of a session.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryView {
    /// The query.
    #[schema(value_type = uuid::Uuid)]
    pub query_id: QueryId,
    /// Its diagnosis.
    #[schema(value_type = uuid::Uuid)]
    pub diagnosis_id: DiagnosisId,
    /// The question.
    pub text: String,
    /// The customer who asked.
    #[schema(value_type = String)]
    pub submitted_by: UserId,
    /// When.
    pub submitted_at: DateTime<Utc>,
}

impl From<SessionQuery> for QueryView {
    fn from(q: SessionQuery) -> Self {
        Self {
            query_id: q.query_id,
            diagnosis_id: DiagnosisId::for_query(q.query_id),
            text: q.text,
            submitted_by: q.submitted_by,
            submitted_at: q.submitted_at,
        }
    }
}

/// A session with its queries.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDetail {
    /// The session.
    #[serde(flatten)]
    pub session: SessionView,
    /// Its queries, in the order they were submitted.
    pub queries: Vec<QueryView>,
}

/// A diagnosis' proposal.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProposalView {
    /// The proposed diagnosis.
    pub text: String,
    /// Structured findings.
    #[schema(value_type = Vec<Object>)]
    pub findings: Vec<Finding>,
    /// The model's confidence in 0..=1.
    pub confidence: f64,
    /// When.
    pub proposed_at: DateTime<Utc>,
    /// Model, prompt template, retrieved judgments, tokens and cost.
    #[schema(value_type = Object)]
    pub provenance: Provenance,
}

/// The decision on a diagnosis, in short.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionSummary {
    /// `approved`, `amended`, `rejected` or `auto_approved`.
    #[schema(value_type = String)]
    pub outcome: Outcome,
    /// The consultant, or `system`.
    #[schema(value_type = String)]
    pub decided_by: UserId,
    /// When.
    pub decided_at: DateTime<Utc>,
}

/// What a diagnosis answers: the same for every reader.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiagnosisQuestion {
    /// The diagnosis (and its decision's id).
    #[schema(value_type = uuid::Uuid)]
    pub diagnosis_id: DiagnosisId,
    /// The session of the query.
    #[schema(value_type = uuid::Uuid)]
    pub session_id: SessionId,
    /// The query.
    #[schema(value_type = uuid::Uuid)]
    pub query_id: QueryId,
    /// The query's text.
    pub query: String,
    /// When it was asked.
    pub requested_at: DateTime<Utc>,
}

impl From<&Diagnosis> for DiagnosisQuestion {
    fn from(d: &Diagnosis) -> Self {
        Self {
            diagnosis_id: d.diagnosis_id,
            session_id: d.session_id,
            query_id: d.query_id,
            query: d.query.clone(),
            requested_at: d.requested_at,
        }
    }
}

/// A diagnosis with its status, proposal and provenance.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiagnosisView {
    /// What it answers.
    #[serde(flatten)]
    pub question: DiagnosisQuestion,
    /// The customer who asked.
    #[schema(value_type = String)]
    pub requested_by: UserId,
    /// `{"status": "requested" | "context_retrieved" | "proposed" | "deferred_budget"}`,
    /// `{"status": "failed", "retryable": bool}` or `{"status": "resolved", "outcome": …}`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub status: DiagnosisStatus,
    /// The current attempt, from 1.
    pub attempt: i32,
    /// The latest failure's reason.
    pub failure_reason: Option<String>,
    /// While `deferred_budget`: the day the tenant's token budget renews (it resumes then at
    /// the latest, sooner if the plan grows).
    pub budget_renews_on: Option<NaiveDate>,
    /// The proposal, once proposed.
    pub proposal: Option<ProposalView>,
    /// The decision, once decided.
    pub decision: Option<DecisionSummary>,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The stream's version.
    pub version: i64,
}

impl From<Diagnosis> for DiagnosisView {
    fn from(d: Diagnosis) -> Self {
        Self {
            question: (&d).into(),
            requested_by: d.requested_by,
            status: d.status,
            attempt: d.attempt,
            failure_reason: d.failure_reason,
            budget_renews_on: d.budget_renews_on,
            proposal: d.proposal.map(|p| ProposalView {
                text: p.text,
                findings: p.findings,
                confidence: p.confidence.value(),
                proposed_at: p.proposed_at,
                provenance: p.provenance,
            }),
            decision: d.decision.map(|decision| DecisionSummary {
                outcome: decision.outcome,
                decided_by: decision.decided_by,
                decided_at: decision.decided_at,
            }),
            resolved_at: d.resolved_at,
            updated_at: d.updated_at,
            version: d.version,
        }
    }
}

/// A diagnosis as its reader may see it: staff the whole record; the customer who asked, what
/// was released to them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum DiagnosisRead {
    /// Consultants and auditors: status, proposal, provenance, decision.
    Staff(Box<DiagnosisView>),
    /// The customer: status, and the answer once released.
    Customer(ReleasedDiagnosisView),
}

/// Where a customer's diagnosis stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseStatus {
    /// Not decided yet: the practice is working on it.
    InReview,
    /// Approved (as proposed, amended, or by the practice's auto-approval policy): the answer
    /// is released.
    Answered,
    /// A consultant rejected the draft; the reason is released.
    Declined,
    /// It could not be diagnosed and will not be retried.
    Failed,
    /// Waiting: the practice's monthly AI budget is spent. It is worked on when the budget
    /// renews or the practice's plan grows.
    DeferredBudget,
}

/// A diagnosis as the customer who asked sees it. Nothing the model wrote reaches them before a
/// consultant — or the auto-approval policy the practice set — released it, and the provenance
/// (models, tiers, prompts, tokens, cost, precedents) never does.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReleasedDiagnosisView {
    /// What it answers.
    #[serde(flatten)]
    pub question: DiagnosisQuestion,
    /// Where it stands.
    pub status: ReleaseStatus,
    /// The released answer, once answered.
    pub answer: Option<ReleasedAnswer>,
    /// The consultant's reason, once declined.
    pub declined_reason: Option<String>,
    /// When it was answered or declined.
    pub decided_at: Option<DateTime<Utc>>,
    /// While `deferred_budget`: the day the practice's budget renews.
    pub budget_renews_on: Option<NaiveDate>,
}

/// An answer released to the customer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReleasedAnswer {
    /// The answer: the consultant's text where they amended the draft.
    pub text: String,
    /// The findings of an answer released as drafted; empty when a consultant rewrote it.
    #[schema(value_type = Vec<Object>)]
    pub findings: Vec<Finding>,
    /// Whether a consultant corrected the draft before releasing it.
    pub amended: bool,
}

impl ReleasedDiagnosisView {
    /// What of `diagnosis` its `decision` (if any) released.
    fn of(diagnosis: Diagnosis, decision: Option<Decision>) -> Self {
        let question = DiagnosisQuestion::from(&diagnosis);
        let decided_at = decision.as_ref().map(|d| d.decided_at);
        let budget_renews_on = diagnosis.budget_renews_on;
        let proposal = diagnosis.proposal;
        let (status, answer, declined_reason) = match (decision.map(|d| d.verdict), proposal) {
            (Some(Verdict::Approved | Verdict::AutoApproved { .. }), Some(proposal)) => (
                ReleaseStatus::Answered,
                Some(ReleasedAnswer {
                    text: proposal.text,
                    findings: proposal.findings,
                    amended: false,
                }),
                None,
            ),
            (Some(Verdict::Amended { text, .. }), _) => (
                ReleaseStatus::Answered,
                Some(ReleasedAnswer {
                    text: text.as_str().to_owned(),
                    findings: Vec::new(),
                    amended: true,
                }),
                None,
            ),
            (Some(Verdict::Rejected { reason }), _) => (
                ReleaseStatus::Declined,
                None,
                Some(reason.as_str().to_owned()),
            ),
            _ if diagnosis.status == (DiagnosisStatus::Failed { retryable: false }) => {
                (ReleaseStatus::Failed, None, None)
            }
            _ if diagnosis.status == DiagnosisStatus::DeferredBudget => {
                (ReleaseStatus::DeferredBudget, None, None)
            }
            // Undecided, or decided but not yet projected into `decisions`: nothing released.
            _ => (ReleaseStatus::InReview, None, None),
        };
        Self {
            question,
            status,
            answer,
            declined_reason,
            decided_at: decided_at.filter(|_| status != ReleaseStatus::InReview),
            budget_renews_on,
        }
    }
}

/// `diagnoses` as `reader` may see them; a customer's with their decisions, read in one
/// statement.
async fn as_read(
    tx: &mut Transaction<'static, Postgres>,
    reader: &Actor,
    diagnoses: Vec<Diagnosis>,
) -> Result<Vec<DiagnosisRead>, ApiError> {
    if reader.role != Role::Customer {
        return Ok(diagnoses
            .into_iter()
            .map(|d| DiagnosisRead::Staff(Box::new(d.into())))
            .collect());
    }
    let ids: Vec<DiagnosisId> = diagnoses.iter().map(|d| d.diagnosis_id).collect();
    let mut decisions: HashMap<DiagnosisId, Decision> =
        read::decisions::of_diagnoses(tx, reader.tenant_id, &ids)
            .await?
            .into_iter()
            .map(|decision| (decision.diagnosis_id, decision))
            .collect();
    Ok(diagnoses
        .into_iter()
        .map(|d| {
            let decision = decisions.remove(&d.diagnosis_id);
            DiagnosisRead::Customer(ReleasedDiagnosisView::of(d, decision))
        })
        .collect())
}

/// A diagnosis waiting for review.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueEntry {
    /// The diagnosis with its proposal.
    #[serde(flatten)]
    pub diagnosis: DiagnosisView,
    /// Seconds since it was proposed.
    pub age_seconds: u64,
}

impl From<QueueItem> for QueueEntry {
    fn from(item: QueueItem) -> Self {
        Self {
            age_seconds: item.age.as_secs(),
            diagnosis: item.diagnosis.into(),
        }
    }
}

/// A decision on a diagnosis.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionView {
    /// The decision.
    #[schema(value_type = uuid::Uuid)]
    pub decision_id: DecisionId,
    /// The diagnosis it decides.
    #[schema(value_type = uuid::Uuid)]
    pub diagnosis_id: DiagnosisId,
    /// `{"kind": "Approved" | "Amended" | "Rejected" | "AutoApproved", …details}`.
    #[schema(value_type = Object)]
    pub verdict: Verdict,
    /// The consultant, or `system`.
    #[schema(value_type = String)]
    pub decided_by: UserId,
    /// The role they acted in.
    #[schema(value_type = String)]
    pub decided_by_role: Role,
    /// When.
    pub decided_at: DateTime<Utc>,
}

impl From<Decision> for DecisionView {
    fn from(d: Decision) -> Self {
        Self {
            decision_id: d.decision_id,
            diagnosis_id: d.diagnosis_id,
            verdict: d.verdict,
            decided_by: d.decided_by,
            decided_by_role: d.decided_by_role,
            decided_at: d.decided_at,
        }
    }
}

/// The caller's tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    /// The tenant.
    #[schema(value_type = uuid::Uuid)]
    pub tenant_id: TenantId,
    /// Display name.
    pub name: String,
    /// `active` or `suspended`.
    #[schema(value_type = String)]
    pub status: TenantStatus,
    /// The plan tier.
    #[schema(value_type = String)]
    pub plan: PlanTier,
    /// Which models may see the tenant's data.
    #[schema(value_type = String)]
    pub model_policy: ModelPolicy,
    /// Proposals at or above it are approved without review; null: never.
    pub auto_resolve_threshold: Option<f64>,
    /// Why it is suspended, while it is.
    pub suspended_reason: Option<String>,
    /// When it was onboarded.
    pub onboarded_at: DateTime<Utc>,
    /// The stream's version.
    pub version: i64,
}

impl From<Tenant> for TenantView {
    fn from(t: Tenant) -> Self {
        Self {
            tenant_id: t.tenant_id,
            name: t.name,
            status: t.status,
            plan: t.plan,
            model_policy: t.model_policy,
            auto_resolve_threshold: t.auto_resolve_threshold.map(|c| c.value()),
            suspended_reason: t.suspended_reason,
            onboarded_at: t.onboarded_at,
            version: t.version,
        }
    }
}

/// The caller's tenant's sessions, newest first (customer, consultant, auditor).
#[utoipa::path(get, path = "/v1/sessions", params(PageParams),
    responses((status = 200, body = Listing<SessionView>)), tag = "sessions")]
pub async fn list_sessions(
    State(state): State<AppState>,
    Acting(reader): Acting,
    Params(params): Params<PageParams>,
) -> Result<Listing<SessionView>, ApiError> {
    let request = params.request()?;
    let mut tx = tenant_read(&state.pool, reader.tenant_id).await?;
    let page = read::sessions::list(&mut tx, reader.tenant_id, reach(&reader), request).await?;
    tx.commit().await?;
    Ok(Listing::of(page, SessionView::from))
}

/// One session with its queries (customer, consultant, auditor).
#[utoipa::path(get, path = "/v1/sessions/{session_id}",
    params(("session_id" = Uuid, Path, description = "The session")),
    responses((status = 200, body = SessionDetail)), tag = "sessions")]
pub async fn get_session(
    State(state): State<AppState>,
    Acting(reader): Acting,
    Path(session_id): Path<String>,
) -> Result<Json<SessionDetail>, ApiError> {
    let session_id: SessionId = parse_id("session_id", &session_id)?;
    let mut tx = tenant_read(&state.pool, reader.tenant_id).await?;
    let session = read::sessions::get(&mut tx, reader.tenant_id, reach(&reader), session_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let queries = read::sessions::queries(&mut tx, reader.tenant_id, session_id).await?;
    tx.commit().await?;
    Ok(Json(SessionDetail {
        session: session.into(),
        queries: queries.into_iter().map(QueryView::from).collect(),
    }))
}

/// The caller's tenant's diagnoses, newest first (customer, consultant, auditor). A customer
/// sees their own, as released to them ([`ReleasedDiagnosisView`]).
#[utoipa::path(get, path = "/v1/diagnoses", params(PageParams),
    responses((status = 200, body = Listing<DiagnosisRead>)), tag = "diagnoses")]
pub async fn list_diagnoses(
    State(state): State<AppState>,
    Acting(reader): Acting,
    Params(params): Params<PageParams>,
) -> Result<Listing<DiagnosisRead>, ApiError> {
    let request = params.request()?;
    let mut tx = tenant_read(&state.pool, reader.tenant_id).await?;
    let page = read::diagnoses::list(&mut tx, reader.tenant_id, reach(&reader), request).await?;
    let items = as_read(&mut tx, &reader, page.items).await?;
    tx.commit().await?;
    Ok(Listing {
        items,
        next_cursor: page.next.map(cursor::encode),
    })
}

/// One diagnosis (customer, consultant, auditor): staff see its status, proposal, provenance
/// and decision; the customer who asked, what was released to them.
#[utoipa::path(get, path = "/v1/diagnoses/{diagnosis_id}",
    params(("diagnosis_id" = Uuid, Path, description = "The diagnosis")),
    responses((status = 200, body = DiagnosisRead)), tag = "diagnoses")]
pub async fn get_diagnosis(
    State(state): State<AppState>,
    Acting(reader): Acting,
    Path(diagnosis_id): Path<String>,
) -> Result<Json<DiagnosisRead>, ApiError> {
    let diagnosis_id: DiagnosisId = parse_id("diagnosis_id", &diagnosis_id)?;
    let mut tx = tenant_read(&state.pool, reader.tenant_id).await?;
    let diagnosis = read::diagnoses::get(&mut tx, reader.tenant_id, reach(&reader), diagnosis_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let read = as_read(&mut tx, &reader, vec![diagnosis]).await?.pop();
    tx.commit().await?;
    read.map(Json).ok_or(ApiError::NotFound)
}

/// The review queue: proposed, undecided diagnoses, oldest first, with their age
/// (consultant).
#[utoipa::path(get, path = "/v1/review-queue", params(PageParams),
    responses((status = 200, body = Listing<QueueEntry>)), tag = "review")]
pub async fn review_queue(
    State(state): State<AppState>,
    Acting(reader): Acting,
    Params(params): Params<PageParams>,
) -> Result<Listing<QueueEntry>, ApiError> {
    let request = params.request()?;
    let mut tx = tenant_read(&state.pool, reader.tenant_id).await?;
    let page = read::diagnoses::review_queue(&mut tx, reader.tenant_id, request).await?;
    tx.commit().await?;
    Ok(Listing::of(page, QueueEntry::from))
}

/// Filters of the decisions list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DecisionParams {
    /// Only this consultant's decisions (`system` for auto-approvals).
    pub decided_by: Option<String>,
    /// The `next_cursor` of the previous page.
    pub after: Option<String>,
    /// Items per page, 1..=100 (default 20).
    pub limit: Option<i64>,
}

/// The caller's tenant's decisions, newest first (consultant, auditor).
#[utoipa::path(get, path = "/v1/decisions", params(DecisionParams),
    responses((status = 200, body = Listing<DecisionView>)), tag = "review")]
pub async fn list_decisions(
    State(state): State<AppState>,
    Acting(reader): Acting,
    Params(params): Params<DecisionParams>,
) -> Result<Listing<DecisionView>, ApiError> {
    let request = PageParams {
        after: params.after,
        limit: params.limit,
    }
    .request()?;
    let decided_by = params.decided_by.map(UserId::parse).transpose()?;
    let mut tx = tenant_read(&state.pool, reader.tenant_id).await?;
    let page =
        read::decisions::list(&mut tx, reader.tenant_id, decided_by.as_ref(), request).await?;
    tx.commit().await?;
    Ok(Listing::of(page, DecisionView::from))
}

/// One decision (consultant, auditor).
#[utoipa::path(get, path = "/v1/decisions/{decision_id}",
    params(("decision_id" = Uuid, Path, description = "The decision (the diagnosis' id)")),
    responses((status = 200, body = DecisionView)), tag = "review")]
pub async fn get_decision(
    State(state): State<AppState>,
    Acting(reader): Acting,
    Path(decision_id): Path<String>,
) -> Result<Json<DecisionView>, ApiError> {
    let decision_id: DecisionId = parse_id("decision_id", &decision_id)?;
    let mut tx = tenant_read(&state.pool, reader.tenant_id).await?;
    let decision = read::decisions::get(&mut tx, reader.tenant_id, decision_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(Json(decision.into()))
}

/// The days of a usage report.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// First UTC day (default: 30 days before `to`).
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<NaiveDate>,
    /// Last UTC day, inclusive (default: today).
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<NaiveDate>,
}

/// The longest report: a year and a day, so a whole leap year fits.
const MAX_USAGE_DAYS: u64 = 366;

/// The tenant's usage for some days.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    /// First day.
    pub from: NaiveDate,
    /// Last day, inclusive.
    pub to: NaiveDate,
    /// Per UTC day and model, by day then model.
    pub days: Vec<UsageDay>,
    /// Proposals in the period.
    pub total_proposals: i64,
    /// Cost in the period, in millionths of a US dollar.
    pub total_cost_usd_micros: i64,
    /// This month's token budget and what is left of it; null until the tenant is projected.
    pub budget: Option<BudgetView>,
}

/// The tenant's token budget for the current calendar month (UTC), by its plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetView {
    /// The plan that sets it.
    #[schema(value_type = String)]
    pub plan: PlanTier,
    /// The month, `YYYY-MM`.
    #[schema(value_type = String, example = "2026-12")]
    pub month: BudgetMonth,
    /// Model tokens (in and out) the plan allows per month.
    pub tokens_budget: u64,
    /// Tokens spent this month, as far as the usage read model has counted.
    pub tokens_used: u64,
    /// Tokens left; at 0 new diagnoses are deferred until the budget renews.
    pub tokens_remaining: u64,
    /// The day the budget renews.
    pub renews_on: NaiveDate,
}

impl BudgetView {
    fn of(plan: PlanTier, budget: BudgetUse) -> Self {
        Self {
            plan,
            month: budget.month,
            tokens_budget: budget.tokens_budget,
            tokens_used: budget.tokens_used,
            tokens_remaining: budget.remaining(),
            renews_on: budget.month.renews_on(),
        }
    }
}

/// Proposals, tokens and cost of one model on one day.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageDay {
    /// The UTC day.
    pub day: NaiveDate,
    /// The model.
    pub model_id: String,
    /// Proposals made.
    pub proposals: i64,
    /// Tokens in.
    pub input_tokens: i64,
    /// Tokens out.
    pub output_tokens: i64,
    /// Cost in millionths of a US dollar.
    pub cost_usd_micros: i64,
}

impl From<Usage> for UsageDay {
    fn from(u: Usage) -> Self {
        Self {
            day: u.day,
            model_id: u.model_id,
            proposals: u.proposals,
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cost_usd_micros: u.cost_usd_micros,
        }
    }
}

/// The tenant's proposals, tokens and cost per UTC day and model (auditor, admin).
#[utoipa::path(get, path = "/v1/usage", params(UsageParams),
    responses((status = 200, body = UsageReport)), tag = "tenant")]
pub async fn usage(
    State(state): State<AppState>,
    Acting(reader): Acting,
    Params(params): Params<UsageParams>,
) -> Result<Json<UsageReport>, ApiError> {
    let to = params.to.unwrap_or_else(|| Utc::now().date_naive());
    let from = match params.from {
        Some(from) => from,
        None => to.checked_sub_days(Days::new(30)).unwrap_or(NaiveDate::MIN),
    };
    let span = (to - from).num_days();
    if span < 0 || span >= MAX_USAGE_DAYS as i64 {
        return Err(ApiError::Invalid {
            field: "from".into(),
            message: format!("must be on or before `to`, at most {MAX_USAGE_DAYS} days before"),
        });
    }
    let mut tx = tenant_read(&state.pool, reader.tenant_id).await?;
    let rows = read::usage::daily(&mut tx, reader.tenant_id, from, to).await?;
    let month = BudgetMonth::of(Utc::now());
    let budget = match read::tenants::get(&mut tx, reader.tenant_id).await? {
        Some(tenant) => Some(BudgetView::of(
            tenant.plan,
            BudgetUse {
                month,
                tokens_used: read::usage::tokens_in_month(&mut tx, reader.tenant_id, month).await?,
                tokens_budget: tenant.plan.monthly_token_budget(),
            },
        )),
        None => None,
    };
    tx.commit().await?;
    Ok(Json(UsageReport {
        budget,
        from,
        to,
        total_proposals: rows.iter().map(|u| u.proposals).sum(),
        total_cost_usd_micros: rows.iter().map(|u| u.cost_usd_micros).sum(),
        days: rows.into_iter().map(UsageDay::from).collect(),
    }))
}

/// Filters of the audit rows; every filter given must match.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// The event type, e.g. `DecisionMade`.
    pub action: Option<String>,
    /// The acting user's id (`system` for the platform).
    pub actor: Option<String>,
    /// The role acted in: `customer`, `consultant`, `auditor`, `admin` or `system`.
    pub role: Option<String>,
    /// The outcome, e.g. `approved`, `auto_approved`, `rejected`.
    pub outcome: Option<String>,
    /// The model of a proposal.
    pub model: Option<String>,
    /// Recorded at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Recorded before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// The `next_cursor` of the previous page.
    pub after: Option<String>,
    /// Rows per page, 1..=100 (default 20).
    pub limit: Option<i64>,
}

/// A `from`–`to` filter: 422 on `from` when it is after `to`.
pub(crate) fn time_range(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<(), ApiError> {
    match (from, to) {
        (Some(from), Some(to)) if from > to => Err(ApiError::Invalid {
            field: "from".into(),
            message: "must not be after `to`".into(),
        }),
        _ => Ok(()),
    }
}

/// The tenant's audit rows in chain order, with their hashes, filtered (auditor).
#[utoipa::path(get, path = "/v1/audit", params(AuditParams),
    responses((status = 200, body = Listing<AuditRow>)), tag = "audit")]
pub async fn audit_rows(
    State(state): State<AppState>,
    Acting(reader): Acting,
    Params(params): Params<AuditParams>,
) -> Result<Listing<AuditRow>, ApiError> {
    let request = PageParams {
        after: params.after,
        limit: params.limit,
    }
    .request()?;
    time_range(params.from, params.to)?;
    let filter = AuditFilter {
        action: params.action,
        actor_id: params.actor,
        actor_role: params.role,
        outcome: params.outcome,
        model_id: params.model,
        from: params.from,
        to: params.to,
    };
    let mut tx = tenant_read(&state.pool, reader.tenant_id).await?;
    let page = read::audit::list(&mut tx, reader.tenant_id, &filter, request).await?;
    tx.commit().await?;
    Ok(Listing::of(page, AuditRow))
}

/// One audit row: who did what to which subject, with what outcome and model, and its place in
/// the tenant's hash chain (`seq`, `prev_hash`, `hash`, hex).
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct AuditRow(pub AuditRecord);

impl utoipa::PartialSchema for AuditRow {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .description(Some(
                "An audit row: the columns described in projections/AUDIT_QUERIES.md, hashes as hex",
            ))
            .into()
    }
}

impl ToSchema for AuditRow {}

/// The caller's tenant: status, plan, model policy, threshold (auditor, admin).
#[utoipa::path(get, path = "/v1/tenant",
    responses((status = 200, body = TenantView)), tag = "tenant")]
pub async fn get_tenant(
    State(state): State<AppState>,
    Acting(reader): Acting,
) -> Result<Json<TenantView>, ApiError> {
    let mut tx = tenant_read(&state.pool, reader.tenant_id).await?;
    let tenant = read::tenants::get(&mut tx, reader.tenant_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(Json(tenant.into()))
}

/// Whether the tenant's audit chain holds, checked now.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChainVerification {
    /// Every row's hash recomputed and linked, every event's digest matched.
    pub verified: bool,
    /// Rows checked.
    pub rows: u64,
    /// Rows whose event's content was checked against its digest.
    pub content_checked: u64,
    /// Where it broke, when it did: the row's `seq` and global position, and what is wrong.
    pub broken: Option<BrokenAt>,
}

/// The first broken link of a chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrokenAt {
    /// The row's `seq`.
    pub seq: i64,
    /// The row's global position.
    pub global_position: i64,
    /// What is wrong, in words.
    pub problem: String,
}

/// Verifies the tenant's whole audit chain against its event log, now (auditor): no row
/// altered, removed or inserted before the last, no event of a digested row altered.
#[utoipa::path(get, path = "/v1/audit/verification",
    responses((status = 200, body = ChainVerification)), tag = "audit")]
pub async fn verify_audit_chain(
    State(state): State<AppState>,
    Acting(reader): Acting,
) -> Result<Json<ChainVerification>, ApiError> {
    let mut tx = tenant_read(&state.pool, reader.tenant_id).await?;
    let verification = match audit::verify_chain(&mut tx, reader.tenant_id).await {
        Ok(verified) => ChainVerification {
            verified: true,
            rows: verified.rows,
            content_checked: verified.content_checked,
            broken: None,
        },
        Err(VerifyError::Broken(link)) => ChainVerification {
            verified: false,
            rows: 0,
            content_checked: 0,
            broken: Some(BrokenAt {
                seq: link.seq,
                global_position: link.global_position,
                problem: link.to_string(),
            }),
        },
        Err(VerifyError::Database(err)) => return Err(err.into()),
    };
    tx.commit().await?;
    Ok(Json(verification))
}

impl Identified for SessionView {
    fn resource_id(&self) -> String {
        self.session_id.to_string()
    }
}

impl Identified for DiagnosisRead {
    fn resource_id(&self) -> String {
        match self {
            DiagnosisRead::Staff(view) => view.question.diagnosis_id.to_string(),
            DiagnosisRead::Customer(view) => view.question.diagnosis_id.to_string(),
        }
    }
}

impl Identified for QueueEntry {
    fn resource_id(&self) -> String {
        self.diagnosis.question.diagnosis_id.to_string()
    }
}

impl Identified for DecisionView {
    fn resource_id(&self) -> String {
        self.decision_id.to_string()
    }
}

/// An audit row by its place in the tenant's chain.
impl Identified for AuditRow {
    fn resource_id(&self) -> String {
        format!("audit:{}", self.0.seq)
    }
}
