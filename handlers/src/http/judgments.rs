//! The practice's captured judgment for its consultants: browse it with filters, search it
//! by meaning (`?q=`, through the worker's embedder and the tenant's index), and read one
//! judgment with every version of its content.

use axum::extract::{Path, State};
use axum::Json;
use casebook_application::judgments::{SearchError, MAX_RESULTS};
use casebook_domain::ids::{DecisionId, DiagnosisId, JudgmentId};
use casebook_projections::models::{
    JudgmentRevision, JudgmentSource, JudgmentStatus, JudgmentSummary, RevisionKind,
};
use casebook_projections::read;
use casebook_projections::read::judgments::{JudgmentFilter, JudgmentWithHistory};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::caller::Acting;
use super::commands::parse_id;
use super::json::Params;
use super::problem::ApiError;
use super::reads::{tenant_read, Identified, Listing, PageParams};
use super::AppState;

/// Which of the practice's judgments to list, or what to search for.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JudgmentParams {
    /// Search by meaning: the judgments nearest to this text, best first, at most `limit`
    /// (one page: no cursor). The other filters apply to what the search finds.
    pub q: Option<String>,
    /// Comma-separated statuses: `active` (as captured), `revised`, `retired`.
    pub status: Option<String>,
    /// `decision` (captured from a consultant's decision) or `authored`.
    pub origin: Option<String>,
    /// Only the judgment captured from this decision.
    pub decision_id: Option<String>,
    /// Captured at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Captured before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// The `next_cursor` of the previous page (lists only).
    pub after: Option<String>,
    /// Items per page, 1..=100 (default 20); for a search, 1..=50 (default 10).
    pub limit: Option<i64>,
}

/// How many judgments a search returns unless asked.
const DEFAULT_SEARCH_RESULTS: i64 = 10;

impl JudgmentParams {
    fn filter(&self) -> Result<JudgmentFilter, ApiError> {
        let statuses = match &self.status {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|status| match status.trim() {
                    "active" => Ok(JudgmentStatus::Active),
                    "revised" => Ok(JudgmentStatus::Revised),
                    "retired" => Ok(JudgmentStatus::Retired),
                    _ => Err(invalid("status", "each must be active, revised or retired")),
                })
                .collect::<Result<_, _>>()?,
        };
        let from_decisions = match self.origin.as_deref() {
            None => None,
            Some("decision") => Some(true),
            Some("authored") => Some(false),
            Some(_) => return Err(invalid("origin", "must be decision or authored")),
        };
        if let (Some(from), Some(to)) = (self.from, self.to) {
            if from >= to {
                return Err(invalid("to", "must be after from"));
            }
        }
        Ok(JudgmentFilter {
            statuses,
            decision: self
                .decision_id
                .as_deref()
                .map(|id| parse_id::<DecisionId>("decision_id", id))
                .transpose()?,
            from_decisions,
            captured_from: self.from,
            captured_before: self.to,
            among: None,
        })
    }
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// A judgment of the practice.
#[derive(Debug, Serialize, ToSchema)]
pub struct JudgmentView {
    /// The judgment.
    #[schema(value_type = Uuid)]
    pub judgment_id: JudgmentId,
    /// `active` (as captured), `revised` or `retired` (no longer retrieved).
    #[schema(value_type = String)]
    pub status: JudgmentStatus,
    /// `decision` or `authored`.
    pub origin: &'static str,
    /// The decision it was captured from.
    #[schema(value_type = Option<Uuid>)]
    pub decision_id: Option<DecisionId>,
    /// The diagnosis that decision decided.
    #[schema(value_type = Option<Uuid>)]
    pub diagnosis_id: Option<DiagnosisId>,
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// Its labels.
    pub tags: Vec<String>,
    /// How many times its content was revised.
    pub revisions: i32,
    /// Why it was retired.
    pub retired_reason: Option<String>,
    /// `system` for a capture, or the authoring consultant.
    pub captured_by: String,
    /// When it was captured.
    pub captured_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// For a search: cosine similarity to the search text (1 is identical).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
}

impl From<JudgmentSummary> for JudgmentView {
    fn from(judgment: JudgmentSummary) -> Self {
        let (origin, decision_id, diagnosis_id) = match judgment.source {
            JudgmentSource::Decision {
                decision_id,
                diagnosis_id,
            } => ("decision", Some(decision_id), Some(diagnosis_id)),
            JudgmentSource::Authored => ("authored", None, None),
        };
        Self {
            judgment_id: judgment.judgment_id,
            status: judgment.status,
            origin,
            decision_id,
            diagnosis_id,
            title: judgment.title,
            body: judgment.body,
            tags: judgment.tags,
            revisions: judgment.revisions,
            retired_reason: judgment.retired_reason,
            captured_by: judgment.captured_by.to_string(),
            captured_at: judgment.captured_at,
            updated_at: judgment.updated_at,
            score: None,
        }
    }
}

impl Identified for JudgmentView {
    fn resource_id(&self) -> String {
        self.judgment_id.to_string()
    }
}

/// The practice's captured judgment (consultant): a list, the most recently changed first,
/// or with `q` a search by meaning, the nearest first.
#[utoipa::path(get, path = "/v1/judgments", params(JudgmentParams),
    responses((status = 200, body = Listing<JudgmentView>)), tag = "judgment")]
pub async fn list_judgments(
    State(state): State<AppState>,
    Acting(reader): Acting,
    Params(params): Params<JudgmentParams>,
) -> Result<Listing<JudgmentView>, ApiError> {
    let filter = params.filter()?;
    let Some(query) = &params.q else {
        let request = PageParams {
            after: params.after,
            limit: params.limit,
        }
        .request()?;
        let mut tx = tenant_read(&state.pool, reader.tenant_id).await?;
        let page = read::judgments::list(&mut tx, reader.tenant_id, &filter, request).await?;
        tx.commit().await?;
        return Ok(Listing::of(page, JudgmentView::from));
    };
    if params.after.is_some() {
        return Err(invalid("after", "a search has one page"));
    }
    let k = u32::try_from(params.limit.unwrap_or(DEFAULT_SEARCH_RESULTS))
        .ok()
        .filter(|k| (1..=MAX_RESULTS).contains(k))
        .ok_or_else(|| {
            invalid(
                "limit",
                &format!("a search returns between 1 and {MAX_RESULTS} judgments"),
            )
        })?;
    let search = state.judgment_search.as_ref().ok_or(ApiError::Refused {
        status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
        code: "search_unavailable",
        message: "judgment search is not configured in this process".into(),
    })?;
    let hits = search
        .search(reader.tenant_id, query, k)
        .await
        .map_err(search_error)?;
    let filter = JudgmentFilter {
        among: Some(hits.iter().map(|hit| hit.precedent.judgment_id).collect()),
        ..filter
    };
    let mut tx = tenant_read(&state.pool, reader.tenant_id).await?;
    let found = read::judgments::list(
        &mut tx,
        reader.tenant_id,
        &filter,
        read::PageRequest::first(i64::from(k)),
    )
    .await?;
    tx.commit().await?;
    // Nearest first, as the index ranked them; a hit the read model does not hold yet (it
    // lags the index by a batch at most) is left out rather than shown without its status.
    let mut views: Vec<JudgmentView> = Vec::with_capacity(hits.len());
    for hit in &hits {
        if let Some(judgment) = found
            .items
            .iter()
            .find(|judgment| judgment.judgment_id == hit.precedent.judgment_id)
        {
            views.push(JudgmentView {
                score: Some(hit.precedent.score),
                ..judgment.clone().into()
            });
        }
    }
    Ok(Listing {
        items: views,
        next_cursor: None,
    })
}

fn search_error(err: SearchError) -> ApiError {
    match err {
        SearchError::Invalid(message) => ApiError::Invalid {
            field: "q".into(),
            message,
        },
        // The index out of reach, or swapped to another embedding model until this process
        // is deployed with it: either passes.
        err @ SearchError::Index(_) => ApiError::Unavailable(Box::new(err)),
        SearchError::Embed(err) if err.is_retryable() => ApiError::Unavailable(Box::new(err)),
        err @ (SearchError::Embed(_) | SearchError::Malformed(_)) => {
            ApiError::Internal(Box::new(err))
        }
    }
}

/// One version of a judgment's content, or its retirement.
#[derive(Debug, Serialize, ToSchema)]
pub struct JudgmentRevisionView {
    /// 1 for the capture, then one per change.
    pub revision: i64,
    /// `captured`, `revised` or `retired`.
    #[schema(value_type = String)]
    pub kind: RevisionKind,
    /// The title it set (captures and revisions).
    pub title: Option<String>,
    /// The text it set.
    pub body: Option<String>,
    /// The labels it set.
    pub tags: Option<Vec<String>>,
    /// Why (retirements).
    pub reason: Option<String>,
    /// Who.
    pub acted_by: String,
    /// When.
    pub recorded_at: DateTime<Utc>,
}

impl From<JudgmentRevision> for JudgmentRevisionView {
    fn from(revision: JudgmentRevision) -> Self {
        let (title, body, tags) = match revision.content {
            Some(content) => (Some(content.title), Some(content.body), Some(content.tags)),
            None => (None, None, None),
        };
        Self {
            revision: revision.revision,
            kind: revision.kind,
            title,
            body,
            tags,
            reason: revision.reason,
            acted_by: revision.acted_by.to_string(),
            recorded_at: revision.recorded_at,
        }
    }
}

/// A judgment with its history.
#[derive(Debug, Serialize, ToSchema)]
pub struct JudgmentDetail {
    /// The judgment as it stands.
    #[serde(flatten)]
    pub judgment: JudgmentView,
    /// Its capture, revisions and retirement, oldest first.
    pub history: Vec<JudgmentRevisionView>,
}

/// One judgment of the practice with every version of its content (consultant).
#[utoipa::path(get, path = "/v1/judgments/{judgment_id}",
    params(("judgment_id" = Uuid, Path, description = "The judgment")),
    responses((status = 200, body = JudgmentDetail)), tag = "judgment")]
pub async fn get_judgment(
    State(state): State<AppState>,
    Acting(reader): Acting,
    Path(judgment_id): Path<String>,
) -> Result<Json<JudgmentDetail>, ApiError> {
    let judgment_id: JudgmentId = parse_id("judgment_id", &judgment_id)?;
    let mut tx = tenant_read(&state.pool, reader.tenant_id).await?;
    let JudgmentWithHistory { judgment, history } =
        read::judgments::get(&mut tx, reader.tenant_id, judgment_id)
            .await?
            .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok(Json(JudgmentDetail {
        judgment: judgment.into(),
        history: history.into_iter().map(Into::into).collect(),
    }))
}
