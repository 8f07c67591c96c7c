//! Erasing a data subject (decision 0027), for a practice's admins: a customer's key is
//! destroyed, `SubjectErased` recorded, and what the projections derived from their data
//! purged. The request names the subject by their id (the `sub` of their tokens, as the
//! sessions' `opened_by` shows it), never by anything personal.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use casebook_adapters::postgres::{begin_for_tenants, Access};
use casebook_domain::ids::{TenantId, UserId};
use casebook_projections::audit::AuditRecord;
use casebook_projections::read;
use casebook_projections::tlog::{self, LogName, ProofBundle, ProofRequest, TlogError};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use utoipa::ToSchema;

use super::caller::Acting;
use super::commands::{answer, context, Answer, CommandAccepted};
use super::problem::ApiError;
use super::request_id::RequestId;
use super::AppState;

/// The problem code of an erasure whose row no signed checkpoint covers yet.
pub const RECEIPT_PENDING: &str = "receipt_pending";

/// An erasure's receipt: its audit row, which names the subject and nothing personal, proven
/// in the tenant's verifiable audit log. `casebook-replay erasure verify --receipt --key`
/// checks it offline against the operator's published key.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureReceipt {
    /// The erased subject's id; absent for the erasure of the whole tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The `SubjectErased` audit row, as the audit routes return rows.
    #[schema(value_type = Object)]
    pub row: AuditRecord,
    /// A signed checkpoint of the tenant's audit log and the row's inclusion proof in it.
    #[schema(value_type = Object)]
    pub proofs: ProofBundle,
}

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

/// The receipt of a customer's erasure (admin, auditor): the `SubjectErased` audit row proven
/// in a signed checkpoint of the tenant's audit log, for the record of the request.
#[utoipa::path(get, path = "/v1/subjects/{subject}/erasure/receipt",
    params(("subject" = String, Path, description = "The customer's user id")),
    responses(
        (status = 200, body = ErasureReceipt),
        (status = 404, description = "`erasure_not_found`: not erased, or not projected yet"),
        (status = 409, description = "`receipt_pending`: no signed checkpoint covers the row yet"),
        (status = 422, description = "`validation_failed`: not a user id"),
    ),
    tag = "people")]
pub async fn erasure_receipt(
    State(state): State<AppState>,
    Acting(actor): Acting,
    Path(subject): Path<String>,
) -> Result<Json<ErasureReceipt>, ApiError> {
    let subject = UserId::parse(subject)?;
    receipt(&state.pool, actor.tenant_id, Some(&subject))
        .await
        .map(Json)
}

/// The receipt of `subject`'s erasure in `tenant`, or without a subject of the tenant's own
/// (which the operator asks for from the command line, the tenant's people being gone).
pub async fn receipt(
    pool: &PgPool,
    tenant: TenantId,
    subject: Option<&UserId>,
) -> Result<ErasureReceipt, ApiError> {
    let mut tx = begin_for_tenants(pool, Access::ReadOnly, &[*tenant.as_uuid()]).await?;
    let row = read::audit::erasure(&mut tx, tenant, subject.map(UserId::as_str))
        .await?
        .ok_or_else(|| ApiError::Refused {
            status: StatusCode::NOT_FOUND,
            code: "erasure_not_found",
            message: match subject {
                Some(subject) => format!("no erasure of {subject} is recorded"),
                None => "no erasure of the tenant is recorded".to_owned(),
            },
        })?;
    let request = ProofRequest {
        seqs: vec![row.seq],
        ..ProofRequest::default()
    };
    let pending = || ApiError::Refused {
        status: StatusCode::CONFLICT,
        code: RECEIPT_PENDING,
        message: "the erasure is recorded; no signed checkpoint covers it yet".into(),
    };
    let proofs = match tlog::prove(&mut tx, LogName::Audit, tenant, &request).await {
        Ok(Some(proofs)) => proofs,
        Ok(None) | Err(TlogError::OutOfRange { .. }) => return Err(pending()),
        Err(TlogError::Database(err)) => return Err(err.into()),
        Err(err) => return Err(ApiError::Internal(Box::new(err))),
    };
    tx.commit().await?;
    Ok(ErasureReceipt {
        subject: subject.map(ToString::to_string),
        row,
        proofs,
    })
}
