//! The command routes: each extracts, calls one service function, maps the result.
//!
//! Creations take the new resource's id from the client (so a retried POST lands on the same
//! stream) and answer 201; other commands answer 202. Both return the ids affected and where
//! the events landed in the log.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use casebook_application::ports::Committed;
use casebook_domain::actor::Actor;
use casebook_domain::ids::{DiagnosisId, JudgmentId, QueryId, SessionId};
use casebook_domain::judgment::{JudgmentCommand, JudgmentContent};
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::policy::{ModelPolicy, PlanTier};
use casebook_domain::tenant::TenantCommand;
use casebook_domain::values::{
    Confidence, DiagnosisText, JudgmentBody, JudgmentTitle, QueryText, Reason, Subject, Tag,
    TenantName, UploadKey,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::caller::Acting;
use super::json::Body;
use super::problem::ApiError;
use super::request_id::RequestId;
use super::AppState;
use casebook_application::service::{Accepted, ConsultantVerdict, RequestContext};

/// Where one event landed.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPosition {
    /// e.g. `TenantSession`.
    pub aggregate_type: String,
    /// The aggregate's id.
    pub aggregate_id: String,
    /// The event's type.
    pub event_type: String,
    /// Its position in the aggregate's stream (the aggregate's version after it).
    pub sequence: u64,
    /// Its position in the global log.
    pub global_position: i64,
}

/// The answer to an accepted command.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommandAccepted {
    /// The ids of the resources the command created or changed.
    #[schema(value_type = Object)]
    pub ids: Value,
    /// The events it appended.
    pub events: Vec<EventPosition>,
}

pub(super) type Answer = Result<(StatusCode, Json<CommandAccepted>), ApiError>;

pub(super) fn answer(status: StatusCode, ids: Value, accepted: Accepted) -> Answer {
    let events = accepted
        .events
        .into_iter()
        .map(|event: Committed| EventPosition {
            aggregate_type: event.aggregate_type.to_owned(),
            aggregate_id: event.aggregate_id,
            event_type: event.event_type,
            sequence: event.sequence as u64,
            global_position: event.global_position,
        })
        .collect();
    Ok((status, Json(CommandAccepted { ids, events })))
}

pub(super) fn context(actor: Actor, request_id: &RequestId) -> RequestContext {
    let metadata = EventMetadata::new(&actor, request_id.as_str(), Source::Api)
        .with_client_request_id(request_id.client().map(str::to_owned));
    RequestContext { actor, metadata }
}

pub(super) fn parse_enum<T: serde::de::DeserializeOwned>(
    field: &str,
    value: &str,
) -> Result<T, ApiError> {
    serde_json::from_value(Value::String(value.to_owned())).map_err(|_| ApiError::Invalid {
        field: field.into(),
        message: format!("unknown value {value:?}"),
    })
}

/// A path id; 422 naming `field` when it is not a UUID.
pub(super) fn parse_id<T: std::str::FromStr>(field: &str, raw: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::Invalid {
        field: field.into(),
        message: "must be a UUID".into(),
    })
}

/// Onboarding the caller's tenant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnboardTenant {
    /// The practice's name.
    pub name: String,
    /// `starter`, `professional`, `enterprise` or `cost_sensitive`.
    #[schema(example = "starter")]
    pub plan: String,
}

/// Onboards the caller's tenant (admin).
#[utoipa::path(post, path = "/v1/tenant", request_body = OnboardTenant,
    responses((status = 201, body = CommandAccepted)), tag = "tenant")]
pub async fn onboard_tenant(
    State(state): State<AppState>,
    Acting(actor): Acting,
    request_id: RequestId,
    Body(body): Body<OnboardTenant>,
) -> Answer {
    let ctx = context(actor, &request_id);
    let command = TenantCommand::Onboard {
        actor: ctx.actor.clone(),
        name: TenantName::parse(body.name)?,
        plan: parse_enum::<PlanTier>("plan", &body.plan)?,
    };
    let accepted = state.service.onboard_tenant(&ctx, command).await?;
    answer(
        StatusCode::CREATED,
        json!({ "tenant_id": ctx.actor.tenant_id }),
        accepted,
    )
}

/// A change to the caller's tenant's settings: exactly one field. The plan tier and a
/// suspension are not among them: those are the operator's (`casebook operator`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum TenantSettings {
    /// The auto-resolve confidence threshold in 0..=1, or null to disable auto-resolution.
    AutoResolveThreshold(Option<f64>),
    /// `by_plan` or `open_weights_only`.
    ModelPolicy(String),
}

/// Changes one setting of the caller's tenant (admin).
#[utoipa::path(post, path = "/v1/tenant/settings", request_body = TenantSettings,
    responses((status = 202, body = CommandAccepted)), tag = "tenant")]
pub async fn change_tenant_settings(
    State(state): State<AppState>,
    Acting(actor): Acting,
    request_id: RequestId,
    Body(body): Body<TenantSettings>,
) -> Answer {
    let ctx = context(actor, &request_id);
    let actor = ctx.actor.clone();
    let command = match body {
        TenantSettings::AutoResolveThreshold(threshold) => TenantCommand::SetAutoResolveThreshold {
            actor,
            threshold: threshold.map(Confidence::new).transpose()?,
        },
        TenantSettings::ModelPolicy(policy) => TenantCommand::SetModelPolicy {
            actor,
            policy: parse_enum::<ModelPolicy>("model_policy", &policy)?,
        },
    };
    let accepted = state.service.administer_tenant(&ctx, command).await?;
    answer(
        StatusCode::ACCEPTED,
        json!({ "tenant_id": ctx.actor.tenant_id }),
        accepted,
    )
}

/// Opening a session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenSession {
    /// The new session's id (a UUID the client chooses).
    pub session_id: Uuid,
    /// What the session is about.
    pub subject: String,
    /// Upload keys (from `POST /v1/uploads`), each under the tenant's prefix.
    #[serde(default)]
    pub attachments: Vec<String>,
}

/// Opens a session (customer).
#[utoipa::path(post, path = "/v1/sessions", request_body = OpenSession,
    responses((status = 201, body = CommandAccepted)), tag = "sessions")]
pub async fn open_session(
    State(state): State<AppState>,
    Acting(actor): Acting,
    request_id: RequestId,
    Body(body): Body<OpenSession>,
) -> Answer {
    let fields = SessionFields {
        subject: body.subject,
        attachments: body.attachments,
    };
    open(
        &state,
        actor,
        &request_id,
        SessionId::from_uuid(body.session_id),
        fields,
    )
    .await
}

/// A session to open at its own URL.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionFields {
    /// What the session is about.
    pub subject: String,
    /// Upload keys (from `POST /v1/uploads`), each under the tenant's prefix.
    #[serde(default)]
    pub attachments: Vec<String>,
}

/// Opens a session at the id its URL names, like `POST /v1/sessions` (customer). Load
/// generators that can vary only the URL use it.
#[utoipa::path(put, path = "/v1/sessions/{session_id}", request_body = SessionFields,
    params(("session_id" = Uuid, Path, description = "The new session's id")),
    responses((status = 201, body = CommandAccepted)), tag = "sessions")]
pub async fn put_session(
    State(state): State<AppState>,
    Acting(actor): Acting,
    request_id: RequestId,
    Path(session_id): Path<String>,
    Body(body): Body<SessionFields>,
) -> Answer {
    let session_id: SessionId = parse_id("session_id", &session_id)?;
    open(&state, actor, &request_id, session_id, body).await
}

async fn open(
    state: &AppState,
    actor: Actor,
    request_id: &RequestId,
    session_id: SessionId,
    fields: SessionFields,
) -> Answer {
    let ctx = context(actor, request_id);
    let attachments = fields
        .attachments
        .into_iter()
        .map(UploadKey::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let accepted = state
        .service
        .open_session(
            &ctx,
            session_id,
            Subject::parse(fields.subject)?,
            attachments,
        )
        .await?;
    answer(
        StatusCode::CREATED,
        json!({ "session_id": session_id }),
        accepted,
    )
}

/// Submitting a query.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitQuery {
    /// The new query's id (a UUID the client chooses); its diagnosis gets the same id.
    pub query_id: Uuid,
    /// The question (up to 20,000 characters).
    pub text: String,
}

/// Submits a query in an open session and requests its diagnosis (customer).
#[utoipa::path(post, path = "/v1/sessions/{session_id}/queries", request_body = SubmitQuery,
    params(("session_id" = Uuid, Path, description = "The session")),
    responses((status = 202, body = CommandAccepted)), tag = "sessions")]
pub async fn submit_query(
    State(state): State<AppState>,
    Acting(actor): Acting,
    request_id: RequestId,
    Path(session_id): Path<String>,
    Body(body): Body<SubmitQuery>,
) -> Answer {
    let ctx = context(actor, &request_id);
    let session_id: SessionId = parse_id("session_id", &session_id)?;
    let query_id = QueryId::from_uuid(body.query_id);
    let accepted = state
        .service
        .submit_query(&ctx, session_id, query_id, QueryText::parse(body.text)?)
        .await?;
    let diagnosis_id = DiagnosisId::for_query(query_id);
    answer(
        StatusCode::ACCEPTED,
        json!({ "session_id": session_id, "query_id": query_id, "diagnosis_id": diagnosis_id }),
        accepted,
    )
}

/// Closes a session (customer).
#[utoipa::path(post, path = "/v1/sessions/{session_id}/close",
    params(("session_id" = Uuid, Path, description = "The session")),
    responses((status = 202, body = CommandAccepted)), tag = "sessions")]
pub async fn close_session(
    State(state): State<AppState>,
    Acting(actor): Acting,
    request_id: RequestId,
    Path(session_id): Path<String>,
) -> Answer {
    let ctx = context(actor, &request_id);
    let session_id: SessionId = parse_id("session_id", &session_id)?;
    let accepted = state.service.close_session(&ctx, session_id).await?;
    answer(
        StatusCode::ACCEPTED,
        json!({ "session_id": session_id }),
        accepted,
    )
}

/// A consultant's decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decide {
    /// `approve`, `amend` or `reject`.
    #[schema(example = "approve")]
    pub verdict: String,
    /// The corrected text (required to amend).
    pub amended_text: Option<String>,
    /// Why (required to reject, optional to amend).
    pub reason: Option<String>,
}

/// Decides on a proposed diagnosis: exactly one decision per diagnosis (consultant).
#[utoipa::path(post, path = "/v1/diagnoses/{diagnosis_id}/decision", request_body = Decide,
    params(("diagnosis_id" = Uuid, Path, description = "The diagnosis")),
    responses((status = 201, body = CommandAccepted)), tag = "review")]
pub async fn decide(
    State(state): State<AppState>,
    Acting(actor): Acting,
    request_id: RequestId,
    Path(diagnosis_id): Path<String>,
    Body(body): Body<Decide>,
) -> Answer {
    let ctx = context(actor, &request_id);
    let diagnosis_id: DiagnosisId = parse_id("diagnosis_id", &diagnosis_id)?;
    let verdict = match body.verdict.as_str() {
        "approve" => ConsultantVerdict::Approve,
        "amend" => ConsultantVerdict::Amend {
            amended_text: DiagnosisText::parse(body.amended_text.unwrap_or_default())?,
            reason: body.reason.map(Reason::parse).transpose()?,
        },
        "reject" => ConsultantVerdict::Reject {
            reason: Reason::parse(body.reason.unwrap_or_default())?,
        },
        other => {
            return Err(ApiError::Invalid {
                field: "verdict".into(),
                message: format!("must be approve, amend or reject, not {other:?}"),
            })
        }
    };
    let accepted = state.service.decide(&ctx, diagnosis_id, verdict).await?;
    answer(
        StatusCode::CREATED,
        json!({ "diagnosis_id": diagnosis_id, "decision_id": diagnosis_id }),
        accepted,
    )
}

/// A judgment's content.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JudgmentFields {
    /// The new judgment's id (a UUID the client chooses; ignored when revising).
    pub judgment_id: Option<Uuid>,
    /// A short title.
    pub title: String,
    /// The judgment itself.
    pub body: String,
    /// Labels.
    #[serde(default)]
    pub tags: Vec<String>,
}

fn content(fields: JudgmentFields) -> Result<JudgmentContent, ApiError> {
    Ok(JudgmentContent {
        title: JudgmentTitle::parse(fields.title)?,
        body: JudgmentBody::parse(fields.body)?,
        tags: fields
            .tags
            .into_iter()
            .map(Tag::parse)
            .collect::<Result<_, _>>()?,
    })
}

/// Captures a consultant's own judgment (consultant).
#[utoipa::path(post, path = "/v1/judgments", request_body = JudgmentFields,
    responses((status = 201, body = CommandAccepted)), tag = "judgments")]
pub async fn author_judgment(
    State(state): State<AppState>,
    Acting(actor): Acting,
    request_id: RequestId,
    Body(body): Body<JudgmentFields>,
) -> Answer {
    let ctx = context(actor, &request_id);
    let judgment_id = JudgmentId::from_uuid(body.judgment_id.ok_or_else(|| ApiError::Invalid {
        field: "judgment_id".into(),
        message: "required".into(),
    })?);
    let command = JudgmentCommand::Author {
        actor: ctx.actor.clone(),
        judgment_id,
        content: content(body)?,
    };
    let accepted = state
        .service
        .edit_judgment(&ctx, judgment_id, command)
        .await?;
    answer(
        StatusCode::CREATED,
        json!({ "judgment_id": judgment_id }),
        accepted,
    )
}

/// Revises a judgment (consultant).
#[utoipa::path(post, path = "/v1/judgments/{judgment_id}/revise", request_body = JudgmentFields,
    params(("judgment_id" = Uuid, Path, description = "The judgment")),
    responses((status = 202, body = CommandAccepted)), tag = "judgments")]
pub async fn revise_judgment(
    State(state): State<AppState>,
    Acting(actor): Acting,
    request_id: RequestId,
    Path(judgment_id): Path<String>,
    Body(body): Body<JudgmentFields>,
) -> Answer {
    let ctx = context(actor, &request_id);
    let judgment_id: JudgmentId = parse_id("judgment_id", &judgment_id)?;
    let command = JudgmentCommand::Revise {
        actor: ctx.actor.clone(),
        content: content(body)?,
    };
    let accepted = state
        .service
        .edit_judgment(&ctx, judgment_id, command)
        .await?;
    answer(
        StatusCode::ACCEPTED,
        json!({ "judgment_id": judgment_id }),
        accepted,
    )
}

/// Retiring a judgment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetireJudgment {
    /// Why it no longer holds.
    pub reason: String,
}

/// Retires a judgment: it is no longer retrieved (consultant).
#[utoipa::path(post, path = "/v1/judgments/{judgment_id}/retire", request_body = RetireJudgment,
    params(("judgment_id" = Uuid, Path, description = "The judgment")),
    responses((status = 202, body = CommandAccepted)), tag = "judgments")]
pub async fn retire_judgment(
    State(state): State<AppState>,
    Acting(actor): Acting,
    request_id: RequestId,
    Path(judgment_id): Path<String>,
    Body(body): Body<RetireJudgment>,
) -> Answer {
    let ctx = context(actor, &request_id);
    let judgment_id: JudgmentId = parse_id("judgment_id", &judgment_id)?;
    let command = JudgmentCommand::Retire {
        actor: ctx.actor.clone(),
        reason: Reason::parse(body.reason)?,
    };
    let accepted = state
        .service
        .edit_judgment(&ctx, judgment_id, command)
        .await?;
    answer(
        StatusCode::ACCEPTED,
        json!({ "judgment_id": judgment_id }),
        accepted,
    )
}
