//! The verifiable logs, as auditors fetch them (`casebook_projections::tlog`, decision 0026):
//! each tenant's signed checkpoints of its audit trail and of its access log, and proofs
//! against them.
//!
//! | route | answers |
//! |---|---|
//! | `GET /v1/audit/checkpoint`, `GET /v1/access-log/checkpoint` | the newest checkpoint, or the one signed at `?size=`, as the C2SP signed note itself (`text/plain`) |
//! | `GET /v1/audit/proofs`, `GET /v1/access-log/proofs` | a [`tlog::ProofBundle`] against that checkpoint: `?seq=5,9,12` proves those rows are in its tree, `?from=M` that it extends the tree of size `M` |
//!
//! Nothing here checks a proof: the server is what the auditor does not trust. The auditor
//! keeps each checkpoint, and checks the next bundle offline against it, their own copy of the
//! rows and the operator's published key (`tlog::proof::verify`). Both logs are served by the
//! same code, named by [`LogName`]; each route is a one-line entry point for the route table
//! and the OpenAPI document.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use casebook_domain::ids::TenantId;
use casebook_projections::tlog::{self, LogName, ProofRequest, TlogError};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::access_log::Returned;
use super::caller::Acting;
use super::json::Params;
use super::problem::ApiError;
use super::reads::tenant_read;
use super::AppState;

/// The problem code of a checkpoint that was not signed (yet, or at that size).
pub const NO_CHECKPOINT: &str = "no_checkpoint";

/// Rows proven per request: each proof reads its own tiles, so this bounds one request's
/// reads; an auditor checking more rows asks again, or verifies an export whole.
pub const MAX_ROWS: usize = 100;

/// Which checkpoint. Numbers arrive as text so that a bad one is a 422 naming its own
/// parameter, not the whole query string.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckpointParams {
    /// The size an earlier checkpoint was signed at; the newest checkpoint when absent.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub size: Option<String>,
}

/// What to prove, against which checkpoint; numbers as text, as in [`CheckpointParams`].
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProofParams {
    /// Rows to prove in the checkpoint's tree, by `seq`: comma-separated, at most 100, each
    /// from 1 to the checkpoint's size.
    #[param(example = "5,9,12")]
    pub seq: Option<String>,
    /// The size of the auditor's last checkpoint, at most this one's: proves this checkpoint's
    /// tree extends it.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub from: Option<String>,
    /// Prove against the checkpoint signed at this size; the newest when absent.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub size: Option<String>,
}

/// The tenant's newest checkpoint of its audit trail, or the one at `size`, as the signed note
/// (auditor). Keep it: the next one must extend it (`/v1/audit/proofs?from=`).
#[utoipa::path(get, path = "/v1/audit/checkpoint", params(CheckpointParams),
    responses(
        (status = 200, content_type = "text/plain", body = String,
            description = "A C2SP checkpoint as a signed note; origin `<key name>/audit/<tenant>`"),
        (status = 404, description = "No checkpoint yet, or none at `size`: `no_checkpoint`"),
        (status = 422, description = "`size` is not a whole number from 1: `validation_failed`"),
    ), tag = "audit")]
pub async fn audit_checkpoint(
    state: State<AppState>,
    reader: Acting,
    params: Params<CheckpointParams>,
) -> Result<Response, ApiError> {
    checkpoint(LogName::Audit, state, reader, params).await
}

/// The tenant's newest checkpoint of its access log, or the one at `size`, as the signed note
/// (auditor).
#[utoipa::path(get, path = "/v1/access-log/checkpoint", params(CheckpointParams),
    responses(
        (status = 200, content_type = "text/plain", body = String,
            description = "A C2SP checkpoint as a signed note; origin `<key name>/access/<tenant>`"),
        (status = 404, description = "No checkpoint yet, or none at `size`: `no_checkpoint`"),
        (status = 422, description = "`size` is not a whole number from 1: `validation_failed`"),
    ), tag = "audit")]
pub async fn access_checkpoint(
    state: State<AppState>,
    reader: Acting,
    params: Params<CheckpointParams>,
) -> Result<Response, ApiError> {
    checkpoint(LogName::Access, state, reader, params).await
}

/// Proofs that audit rows are in the tenant's signed tree and that it extends an earlier one
/// (auditor). Rows are those of `GET /v1/audit`; each leaf is a row's canonical bytes.
#[utoipa::path(get, path = "/v1/audit/proofs", params(ProofParams),
    responses(
        (status = 200, body = ProofBundleSchema,
            description = "The checkpoint and the proofs asked for, to check with `tlog::proof::verify`"),
        (status = 404, description = "No checkpoint yet, or none at `size`: `no_checkpoint`"),
        (status = 422, description = "`seq`, `from` or `size` malformed or beyond the checkpoint: `validation_failed` with the `field`"),
    ), tag = "audit")]
pub async fn audit_proofs(
    state: State<AppState>,
    reader: Acting,
    params: Params<ProofParams>,
) -> Result<Response, ApiError> {
    proofs(LogName::Audit, state, reader, params).await
}

/// Proofs that access records are in the tenant's signed tree and that it extends an earlier
/// one (auditor). Records are those of `GET /v1/access-log`.
#[utoipa::path(get, path = "/v1/access-log/proofs", params(ProofParams),
    responses(
        (status = 200, body = ProofBundleSchema,
            description = "The checkpoint and the proofs asked for, to check with `tlog::proof::verify`"),
        (status = 404, description = "No checkpoint yet, or none at `size`: `no_checkpoint`"),
        (status = 422, description = "`seq`, `from` or `size` malformed or beyond the checkpoint: `validation_failed` with the `field`"),
    ), tag = "audit")]
pub async fn access_proofs(
    state: State<AppState>,
    reader: Acting,
    params: Params<ProofParams>,
) -> Result<Response, ApiError> {
    proofs(LogName::Access, state, reader, params).await
}

/// `GET …/checkpoint` of `log`.
async fn checkpoint(
    log: LogName,
    State(state): State<AppState>,
    Acting(reader): Acting,
    Params(params): Params<CheckpointParams>,
) -> Result<Response, ApiError> {
    let size = optional("size", params.size.as_deref(), 1)?;
    let tenant = reader.tenant_id;
    let mut tx = tenant_read(&state.pool, tenant).await?;
    let checkpoint = tlog::checkpoint(&mut tx, log, tenant, size)
        .await
        .map_err(|err| failed(err, log, tenant))?
        .ok_or_else(|| no_checkpoint(size))?;
    tx.commit().await?;
    // The note byte for byte: its signature covers its text, so it is served as it was signed.
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        checkpoint.note,
    )
        .into_response())
}

/// `GET …/proofs` of `log`. The access record names the rows proven (`audit:<seq>`,
/// `access:<seq>`, as the lists name them).
async fn proofs(
    log: LogName,
    State(state): State<AppState>,
    Acting(reader): Acting,
    Params(params): Params<ProofParams>,
) -> Result<Response, ApiError> {
    let seqs = match params.seq.as_deref() {
        Some(list) => rows(list)?,
        None => BTreeSet::new(),
    };
    let request = ProofRequest {
        seqs: seqs.iter().map(|seq| *seq as i64).collect(),
        from: optional("from", params.from.as_deref(), 0)?,
        size: optional("size", params.size.as_deref(), 1)?,
    };
    let tenant = reader.tenant_id;
    let mut tx = tenant_read(&state.pool, tenant).await?;
    let bundle = tlog::prove(&mut tx, log, tenant, &request)
        .await
        .map_err(|err| failed(err, log, tenant))?
        .ok_or_else(|| no_checkpoint(request.size))?;
    tx.commit().await?;
    let proven = seqs.iter().map(|seq| format!("{}:{seq}", log.as_str()));
    Ok((Extension(Returned(proven.collect())), Json(bundle)).into_response())
}

/// `404 no_checkpoint`: none was signed (yet, or at `size`).
fn no_checkpoint(size: Option<u64>) -> ApiError {
    ApiError::Refused {
        status: StatusCode::NOT_FOUND,
        code: NO_CHECKPOINT,
        message: match size {
            Some(size) => format!("no checkpoint was signed at size {size}"),
            None => "no checkpoint has been signed yet".into(),
        },
    }
}

/// A failure of the verifiable log as the client sees it: a size or row it does not have is
/// the caller's (422 on the parameter that named it); anything else is ours, and a damaged
/// tree — stored tiles that no longer give what was signed — is logged as the integrity
/// alarm it is.
fn failed(err: TlogError, log: LogName, tenant: TenantId) -> ApiError {
    match err {
        TlogError::OutOfRange { field, message } => invalid(field, message),
        TlogError::Database(err) => err.into(),
        err @ TlogError::Damaged(_) => {
            tracing::error!(log = log.as_str(), %tenant, error = %err, "verifiable log damaged");
            ApiError::Internal(Box::new(err))
        }
        err => ApiError::Internal(Box::new(err)),
    }
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::Invalid {
        field: field.into(),
        message,
    }
}

/// `text` as a whole number of at least `min` (and at most what Postgres' `bigint` holds,
/// as sizes and `seq`s are stored).
fn number(field: &str, text: &str, min: u64) -> Result<u64, ApiError> {
    text.trim()
        .parse::<i64>()
        .ok()
        .and_then(|n| u64::try_from(n).ok())
        .filter(|n| *n >= min)
        .ok_or_else(|| invalid(field, format!("must be a whole number from {min}")))
}

/// An optional [`number`].
fn optional(field: &str, text: Option<&str>, min: u64) -> Result<Option<u64>, ApiError> {
    text.map(|text| number(field, text, min)).transpose()
}

/// The `seq` list: comma-separated, at most [`MAX_ROWS`], each from 1; proven in order, once
/// each.
fn rows(text: &str) -> Result<BTreeSet<u64>, ApiError> {
    let items: Vec<&str> = text.split(',').collect();
    if items.len() > MAX_ROWS {
        return Err(invalid(
            "seq",
            format!("at most {MAX_ROWS} rows per request"),
        ));
    }
    items
        .into_iter()
        .map(|item| number("seq", item, 1))
        .collect()
}

// The JSON of `tlog::ProofBundle`, for the OpenAPI document only: the type is the projections
// crate's, which knows nothing of schemas. These are never built; the bundle is served as is.

/// A checkpoint and the proofs asked for against it, as `tlog::proof::verify` reads it.
#[derive(ToSchema)]
#[schema(as = ProofBundle)]
#[allow(dead_code)]
struct ProofBundleSchema {
    /// The checkpoint (a C2SP signed note) every proof is against.
    checkpoint: String,
    /// The rows' inclusion proofs, by ascending `seq`.
    inclusions: Vec<InclusionSchema>,
    /// The proof that the checkpoint extends the tree of size `from`, when asked for.
    consistency: Option<ConsistencySchema>,
}

/// A row's inclusion proof.
#[derive(ToSchema)]
#[schema(as = InclusionProof)]
#[allow(dead_code)]
struct InclusionSchema {
    /// The row's `seq` (leaf `seq - 1`).
    seq: i64,
    /// The audit path, leaf to root: SHA-256 hashes, base64.
    proof: Vec<String>,
}

/// The proof that an earlier tree is a prefix of the checkpoint's.
#[derive(ToSchema)]
#[schema(as = ConsistencyProof)]
#[allow(dead_code)]
struct ConsistencySchema {
    /// The earlier tree's size (`from`).
    old_size: u64,
    /// The consistency proof: SHA-256 hashes, base64.
    proof: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_row_lists_are_whole_bounded_and_name_their_parameter() {
        assert_eq!(number("size", "7", 1).unwrap(), 7);
        for bad in ["0", "-1", "x", "", "1.5", "9223372036854775808"] {
            let err = number("size", bad, 1).unwrap_err();
            assert!(
                matches!(err, ApiError::Invalid { ref field, .. } if field == "size"),
                "{bad}"
            );
        }
        assert_eq!(number("from", "0", 0).unwrap(), 0);
        assert_eq!(
            rows("12,5,9,5").unwrap().into_iter().collect::<Vec<_>>(),
            [5, 9, 12]
        );
        let too_many = (1..=MAX_ROWS + 1)
            .map(|n| n.to_string())
            .collect::<Vec<_>>();
        assert!(rows(&too_many.join(",")).is_err());
        assert!(rows(&too_many[..MAX_ROWS].join(",")).is_ok());
        for bad in ["", "5,,9", "5,x", "0"] {
            assert!(
                matches!(rows(bad), Err(ApiError::Invalid { ref field, .. }) if field == "seq"),
                "{bad}"
            );
        }
    }
}
