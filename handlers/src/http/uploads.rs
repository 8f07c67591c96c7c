//! Presigned upload URLs: the customer's file goes straight to S3, under the tenant's prefix.
//!
//! The API chooses the key (`<tenant>/uploads/<uuid>/<file name>`), so a caller can never name
//! another tenant's object; the adapter checks the prefix again before signing. The key is
//! recorded as issued to the caller, the only customer who may attach it, and the size asked
//! for is signed into the URL, so S3 refuses a larger (or any other) body.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use casebook_adapters::aws::s3::TenantBucket;
use casebook_domain::values::UploadKey;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

use super::caller::Acting;
use super::json::Body;
use super::problem::ApiError;
use super::AppState;

/// Where uploads go and how long their URLs live.
#[derive(Debug, Clone)]
pub struct Uploads {
    bucket: TenantBucket,
    expires_in: Duration,
}

impl Uploads {
    /// Uploads to `bucket`, each URL valid for `expires_in`.
    pub fn new(bucket: TenantBucket, expires_in: Duration) -> Self {
        Self { bucket, expires_in }
    }
}

/// A file to upload.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// The file's name (the key's last part): no `/`, no control characters, 1..=200 chars.
    #[schema(example = "contract.pdf")]
    pub file_name: String,
    /// Its media type, e.g. `application/pdf`; the upload must send it as `Content-Type`.
    #[schema(example = "application/pdf")]
    pub content_type: String,
    /// Its size in bytes, 1..=26,214,400 (25 MiB): the upload must be exactly this long.
    #[schema(example = 1024)]
    pub size_bytes: u64,
}

/// The largest file a customer may upload. The signed `Content-Length` makes S3 itself hold
/// every upload to the size asked for here.
pub const MAX_UPLOAD_BYTES: u32 = 25 * 1024 * 1024;

fn size(bytes: u64) -> Result<u32, ApiError> {
    u32::try_from(bytes)
        .ok()
        .filter(|bytes| (1..=MAX_UPLOAD_BYTES).contains(bytes))
        .ok_or_else(|| invalid("size_bytes", "between 1 byte and 25 MiB"))
}

/// A presigned request that uploads the file.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadTicket {
    /// The object's key: pass it as a session's attachment.
    pub key: String,
    /// The HTTP method to use (`PUT`).
    pub method: String,
    /// The signed URL.
    pub url: String,
    /// Headers the upload must carry exactly.
    pub headers: BTreeMap<String, String>,
    /// When the URL stops working.
    pub expires_at: DateTime<Utc>,
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

fn content_type(value: &str) -> Result<&str, ApiError> {
    let token = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    match value.split_once('/') {
        Some((kind, subtype)) if value.len() <= 127 && token(kind) && token(subtype) => Ok(value),
        _ => Err(invalid(
            "content_type",
            "a media type such as application/pdf",
        )),
    }
}

/// A presigned URL to upload one file under the caller's tenant (customer). 503
/// `uploads_unavailable` when no bucket is configured.
#[utoipa::path(post, path = "/v1/uploads", request_body = UploadRequest,
    responses((status = 201, body = UploadTicket)), tag = "sessions")]
pub async fn request_upload(
    State(state): State<AppState>,
    Acting(caller): Acting,
    Body(body): Body<UploadRequest>,
) -> Result<(StatusCode, Json<UploadTicket>), ApiError> {
    let key = UploadKey::new_upload(caller.tenant_id, &body.file_name).ok_or_else(|| {
        invalid(
            "file_name",
            "1 to 200 characters, without `/` or control characters, not `.` or `..`",
        )
    })?;
    let media_type = content_type(&body.content_type)?;
    let size = size(body.size_bytes)?;
    let uploads = state.uploads.as_ref().ok_or(ApiError::UploadsUnavailable)?;
    // Recorded before the URL exists: only this customer may attach what it uploads.
    state.service.grant_upload(&caller, &key).await?;
    let signed = uploads
        .bucket
        .presign_put(
            caller.tenant_id,
            key.as_str(),
            media_type,
            size,
            uploads.expires_in,
        )
        .await
        .map_err(|err| ApiError::Unavailable(Box::new(err)))?;
    Ok((
        StatusCode::CREATED,
        Json(UploadTicket {
            key: key.as_str().to_owned(),
            method: signed.method,
            url: signed.url,
            headers: signed.headers.into_iter().collect(),
            expires_at: signed.expires_at,
        }),
    ))
}
