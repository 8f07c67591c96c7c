//! The tenant's event stream for auditors, as NDJSON with a position cursor.

use axum::body::Body as HttpBody;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use casebook_adapters::postgres::{begin_for_tenants, Access};
use casebook_projections::log::{self, Checkpoint, Scope};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::IntoParams;

use super::caller::Acting;
use super::json::Params;
use super::problem::ApiError;
use super::AppState;

/// Paging through the stream.
#[derive(Debug, Deserialize, IntoParams)]
pub struct EventsPage {
    /// The `next_cursor` of the previous page; absent for the beginning.
    pub after: Option<String>,
    /// Events per page, 1..=1000 (default 100).
    pub limit: Option<u32>,
}

#[derive(Serialize)]
struct EventLine<'a> {
    cursor: String,
    global_position: i64,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    sequence: i64,
    event_type: &'a str,
    event_version: &'a str,
    recorded_at: chrono::DateTime<chrono::Utc>,
    payload: &'a RawValue,
    metadata: &'a RawValue,
}

/// An opaque cursor: the reader's checkpoint, so paging is gap-safe too.
pub fn encode_cursor(checkpoint: Checkpoint) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{}:{}",
        checkpoint.transaction_id, checkpoint.global_position
    ))
}

/// Reads a cursor made by [`encode_cursor`]; 422 on `after` for anything else.
pub fn decode_cursor(cursor: &str) -> Result<Checkpoint, ApiError> {
    let invalid = || ApiError::Invalid {
        field: "after".into(),
        message: "not a cursor this API issued".into(),
    };
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?)
        .map_err(|_| invalid())?;
    let (tx, position) = text.split_once(':').ok_or_else(invalid)?;
    // Transaction ids and positions are never negative; one that is was not issued here and
    // must not reach the database.
    let non_negative = |text: &str| {
        text.parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(invalid)
    };
    Ok(Checkpoint {
        transaction_id: non_negative(tx)?,
        global_position: non_negative(position)?,
    })
}

/// The caller's tenant's events in log order, one JSON object per line; the
/// `Casebook-Next-Cursor` header continues after the last line (auditor).
#[utoipa::path(get, path = "/v1/events", params(EventsPage),
    responses((status = 200, content_type = "application/x-ndjson", body = String)), tag = "audit")]
pub async fn stream_events(
    State(state): State<AppState>,
    Acting(reader): Acting,
    Params(page): Params<EventsPage>,
) -> Result<Response, ApiError> {
    let after = page
        .after
        .as_deref()
        .map(decode_cursor)
        .transpose()?
        .unwrap_or(Checkpoint::START);
    let limit = page.limit.unwrap_or(100).clamp(1, 1_000);
    let tenant = *reader.tenant_id.as_uuid();
    let mut tx = begin_for_tenants(&state.pool, Access::ReadOnly, &[tenant]).await?;
    let events = log::read_page(&mut *tx, after, Scope::Tenant(tenant), limit)
        .await
        .map_err(|err| ApiError::Unavailable(Box::new(err)))?;
    tx.commit().await?;
    let mut body = Vec::new();
    for event in &events {
        let line = EventLine {
            cursor: encode_cursor(event.checkpoint),
            global_position: event.global_position(),
            aggregate_type: &event.aggregate_type,
            aggregate_id: &event.aggregate_id,
            sequence: event.sequence,
            event_type: &event.event_type,
            event_version: &event.event_version,
            recorded_at: event.recorded_at,
            payload: &event.payload,
            metadata: &event.metadata,
        };
        serde_json::to_writer(&mut body, &line).map_err(|err| ApiError::Internal(Box::new(err)))?;
        body.push(b'\n');
    }
    let next = events.last().map(|e| e.checkpoint).unwrap_or(after);
    let mut response = HttpBody::from(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    if let Ok(cursor) = HeaderValue::from_str(&encode_cursor(next)) {
        headers.insert("casebook-next-cursor", cursor);
    }
    Ok(response)
}
