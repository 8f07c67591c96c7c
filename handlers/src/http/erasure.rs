//! Erasing a data subject (decision 0027), for a practice's admins: a customer's key is
//! destroyed, `SubjectErased` recorded, and what the projections derived from their data
//! purged. The request names the subject by their id (the `sub` of their tokens, as the
//! sessions' `opened_by` shows it), never by anything personal.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use casebook_domain::ids::UserId;
use serde_json::json;

use super::caller::Acting;
use super::commands::{answer, context, Answer, CommandAccepted};
use super::request_id::RequestId;
use super::AppState;

/// Erases a customer of the caller's practice (admin): every value of theirs in the log reads
/// as `[erased]` from now on, and their sessions, queries, diagnoses, decisions and the
/// judgment captured from them are purged from the read models and the judgment index.
#[utoipa::path(post, path = "/v1/subjects/{subject}/erasure",
    params(("subject" = String, Path, description = "The customer's user id")),
    responses(
        (status = 202, body = CommandAccepted),
        (status = 409, description = "`subject_already_erased`"),
        (status = 422, description = "`validation_failed`: not a user id"),
    ),
    tag = "people")]
pub async fn erase_subject(
    State(state): State<AppState>,
    Acting(actor): Acting,
    request_id: RequestId,
    Path(subject): Path<String>,
) -> Answer {
    let ctx = context(actor, &request_id);
    let subject = UserId::parse(subject)?;
    let accepted = state.service.erase_subject(&ctx, subject.clone()).await?;
    answer(
        StatusCode::ACCEPTED,
        json!({ "subject": subject }),
        accepted,
    )
}
