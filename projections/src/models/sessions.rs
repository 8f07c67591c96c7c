//! The `sessions` and `session_queries` read models: customers' sessions with their queries.

use std::collections::HashMap;

use async_trait::async_trait;
use casebook_domain::any_event::AnyEvent;
use casebook_domain::ids::{QueryId, SessionId, TenantId, UserId};
use casebook_domain::personal::ERASED;
use casebook_domain::session::SessionEvent;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::decoded::{purge_erased_subjects, DecodedEvent};
use crate::error::ApplyError;
use crate::projection::{Naming, Projection, ProjectionId};
use crate::sql::{
    col, enum_value, get_enum, get_json, get_opt_user, get_user, insert_unnest, json_text,
    load_by_key, reserved, upsert_unnest, Column, Touched,
};

/// Whether a session accepts queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Accepting queries.
    Open,
    /// Closed for good.
    Closed,
}

/// A row of `sessions`.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The session.
    pub session_id: SessionId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// What it is about.
    pub subject: String,
    /// Upload keys.
    pub attachments: Vec<String>,
    /// Open or closed.
    pub status: SessionStatus,
    /// The customer who opened it.
    pub opened_by: UserId,
    /// When.
    pub opened_at: DateTime<Utc>,
    /// Who closed it, once closed.
    pub closed_by: Option<UserId>,
    /// When, once closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// Queries submitted.
    pub query_count: i32,
    /// The last event's time.
    pub last_activity_at: DateTime<Utc>,
    /// The sequence of the session stream's last event.
    pub version: i64,
    /// The global position of `SessionOpened`: the list order and cursor.
    pub position: i64,
}

/// A row of `session_queries`.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionQuery {
    /// The session.
    pub session_id: SessionId,
    /// The query.
    pub query_id: QueryId,
    /// Their tenant.
    pub tenant_id: TenantId,
    /// The question.
    pub text: String,
    /// The customer who asked.
    pub submitted_by: UserId,
    /// When.
    pub submitted_at: DateTime<Utc>,
    /// The global position of `QuerySubmitted`: the order within the session.
    pub position: i64,
}

pub(crate) const SESSION_COLUMNS: &[Column] = &[
    col("session_id", "uuid"),
    col("tenant_id", "uuid"),
    col("subject", "text"),
    col("attachments", "jsonb"),
    col("status", "text"),
    col("opened_by", "text"),
    col("opened_at", "timestamptz"),
    col("closed_by", "text"),
    col("closed_at", "timestamptz"),
    col("query_count", "int4"),
    col("last_activity_at", "timestamptz"),
    col("version", "int8"),
    col("position", "int8"),
];

pub(crate) const QUERY_COLUMNS: &[Column] = &[
    col("session_id", "uuid"),
    col("query_id", "uuid"),
    col("tenant_id", "uuid"),
    col("text", "text"),
    col("submitted_by", "text"),
    col("submitted_at", "timestamptz"),
    col("position", "int8"),
];

/// Reads a row selected with [`crate::sql::select_list`] of [`SESSION_COLUMNS`].
pub(crate) fn session_from_row(row: &PgRow) -> Result<Session, sqlx::Error> {
    Ok(Session {
        session_id: SessionId::from_uuid(row.try_get("session_id")?),
        tenant_id: TenantId::from_uuid(row.try_get("tenant_id")?),
        subject: row.try_get("subject")?,
        attachments: get_json(row, "attachments")?,
        status: get_enum(row, "status")?,
        opened_by: get_user(row, "opened_by")?,
        opened_at: row.try_get("opened_at")?,
        closed_by: get_opt_user(row, "closed_by")?,
        closed_at: row.try_get("closed_at")?,
        query_count: row.try_get("query_count")?,
        last_activity_at: row.try_get("last_activity_at")?,
        version: row.try_get("version")?,
        position: row.try_get("position")?,
    })
}

/// Reads a row of [`QUERY_COLUMNS`].
pub(crate) fn query_from_row(row: &PgRow) -> Result<SessionQuery, sqlx::Error> {
    Ok(SessionQuery {
        session_id: SessionId::from_uuid(row.try_get("session_id")?),
        query_id: QueryId::from_uuid(row.try_get("query_id")?),
        tenant_id: TenantId::from_uuid(row.try_get("tenant_id")?),
        text: row.try_get("text")?,
        submitted_by: get_user(row, "submitted_by")?,
        submitted_at: row.try_get("submitted_at")?,
        position: row.try_get("position")?,
    })
}

/// Folds one session event into the rows, collecting submitted queries.
fn fold(
    rows: &mut HashMap<Uuid, Session>,
    queries: &mut Vec<SessionQuery>,
    e: &DecodedEvent,
    event: &SessionEvent,
) -> Result<(), ApplyError> {
    let id = e.aggregate_uuid()?;
    if let SessionEvent::SessionOpened {
        session_id,
        tenant_id,
        subject,
        attachments,
        opened_by,
    } = event
    {
        if rows.contains_key(&id) {
            return Err(ApplyError::permanent(format!("session {id} opened twice")));
        }
        rows.insert(
            id,
            Session {
                session_id: *session_id,
                tenant_id: *tenant_id,
                subject: subject.to_string(),
                attachments: attachments.iter().map(ToString::to_string).collect(),
                status: SessionStatus::Open,
                opened_by: opened_by.clone(),
                opened_at: e.recorded_at,
                closed_by: None,
                closed_at: None,
                query_count: 0,
                last_activity_at: e.recorded_at,
                version: e.sequence,
                position: e.position(),
            },
        );
        return Ok(());
    }
    let row = rows.get_mut(&id).ok_or_else(|| {
        ApplyError::permanent(format!("{} for unknown session {id}", e.event_type))
    })?;
    match event {
        SessionEvent::SessionOpened { .. } => {}
        SessionEvent::QuerySubmitted {
            query_id,
            text,
            submitted_by,
        } => {
            row.query_count += 1;
            queries.push(SessionQuery {
                session_id: row.session_id,
                query_id: *query_id,
                tenant_id: row.tenant_id,
                text: text.to_string(),
                submitted_by: submitted_by.clone(),
                submitted_at: e.recorded_at,
                position: e.position(),
            });
        }
        SessionEvent::SessionClosed { closed_by } => {
            row.status = SessionStatus::Closed;
            row.closed_by = Some(closed_by.clone());
            row.closed_at = Some(e.recorded_at);
        }
    }
    row.last_activity_at = e.recorded_at;
    row.version = e.sequence;
    Ok(())
}

/// Writes `sessions` and `session_queries`.
pub struct SessionsProjection {
    load: String,
    store: String,
    insert_queries: String,
    purge_sessions: String,
    purge_queries: String,
}

impl SessionsProjection {
    /// The projection over the tables `naming` names.
    pub fn new(naming: &Naming) -> Self {
        let sessions = naming.table("sessions");
        Self {
            load: load_by_key(&sessions, SESSION_COLUMNS, "session_id", "uuid"),
            store: upsert_unnest(&sessions, SESSION_COLUMNS, &["session_id"]),
            insert_queries: insert_unnest(&naming.table("session_queries"), QUERY_COLUMNS),
            // What a rebuild reads once the subject's key is gone: the redactions of the
            // sealed fields (decision 0027).
            purge_sessions: format!(
                "UPDATE {sessions} SET subject = '{ERASED}', attachments = '[]'
                  WHERE tenant_id = $1 AND ($2::text IS NULL OR opened_by = $2)"
            ),
            purge_queries: format!(
                "UPDATE {} SET text = '{ERASED}' WHERE tenant_id = $1 AND ($2::text IS NULL OR submitted_by = $2)",
                naming.table("session_queries")
            ),
        }
    }

    async fn store_sessions(
        &self,
        conn: &mut PgConnection,
        rows: HashMap<Uuid, Session>,
    ) -> Result<(), ApplyError> {
        let n = rows.len();
        let mut ids = Vec::with_capacity(n);
        let mut tenants = Vec::with_capacity(n);
        let mut subjects = Vec::with_capacity(n);
        let mut attachments = Vec::with_capacity(n);
        let mut statuses = Vec::with_capacity(n);
        let mut opened_by = Vec::with_capacity(n);
        let mut opened_at = Vec::with_capacity(n);
        let mut closed_by = Vec::with_capacity(n);
        let mut closed_at = Vec::with_capacity(n);
        let mut query_counts = Vec::with_capacity(n);
        let mut last_activity = Vec::with_capacity(n);
        let mut versions = Vec::with_capacity(n);
        let mut positions = Vec::with_capacity(n);
        for row in rows.into_values() {
            ids.push(*row.session_id.as_uuid());
            tenants.push(*row.tenant_id.as_uuid());
            subjects.push(row.subject);
            attachments.push(json_text(&row.attachments)?);
            statuses.push(enum_value(&row.status)?);
            opened_by.push(row.opened_by.to_string());
            opened_at.push(row.opened_at);
            closed_by.push(row.closed_by.map(|user| user.to_string()));
            closed_at.push(row.closed_at);
            query_counts.push(row.query_count);
            last_activity.push(row.last_activity_at);
            versions.push(row.version);
            positions.push(row.position);
        }
        sqlx::query_with(&self.store, reserved(n * 256))
            .bind(ids)
            .bind(tenants)
            .bind(subjects)
            .bind(attachments)
            .bind(statuses)
            .bind(opened_by)
            .bind(opened_at)
            .bind(closed_by)
            .bind(closed_at)
            .bind(query_counts)
            .bind(last_activity)
            .bind(versions)
            .bind(positions)
            .execute(conn)
            .await?;
        Ok(())
    }

    async fn insert_queries(
        &self,
        conn: &mut PgConnection,
        queries: Vec<SessionQuery>,
    ) -> Result<(), ApplyError> {
        if queries.is_empty() {
            return Ok(());
        }
        let n = queries.len();
        let mut sessions = Vec::with_capacity(n);
        let mut ids = Vec::with_capacity(n);
        let mut tenants = Vec::with_capacity(n);
        let mut texts = Vec::with_capacity(n);
        let mut submitted_by = Vec::with_capacity(n);
        let mut submitted_at = Vec::with_capacity(n);
        let mut positions = Vec::with_capacity(n);
        for query in queries {
            sessions.push(*query.session_id.as_uuid());
            ids.push(*query.query_id.as_uuid());
            tenants.push(*query.tenant_id.as_uuid());
            texts.push(query.text);
            submitted_by.push(query.submitted_by.to_string());
            submitted_at.push(query.submitted_at);
            positions.push(query.position);
        }
        sqlx::query_with(&self.insert_queries, reserved(n * 256))
            .bind(sessions)
            .bind(ids)
            .bind(tenants)
            .bind(texts)
            .bind(submitted_by)
            .bind(submitted_at)
            .bind(positions)
            .execute(conn)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Projection for SessionsProjection {
    fn id(&self) -> ProjectionId {
        ProjectionId::Sessions
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[DecodedEvent],
    ) -> Result<(), ApplyError> {
        let mut touched = Touched::default();
        for e in events {
            if let AnyEvent::Session(event) = &e.event {
                let creates = matches!(event, SessionEvent::SessionOpened { .. });
                touched.touch(e.aggregate_uuid()?, creates);
            }
        }
        if !touched.is_empty() {
            let mut rows = touched
                .load(conn, &self.load, "session_id", session_from_row)
                .await?;
            let mut queries = Vec::new();
            for e in events {
                if let AnyEvent::Session(event) = &e.event {
                    fold(&mut rows, &mut queries, e, event)?;
                }
            }
            self.store_sessions(conn, rows).await?;
            self.insert_queries(conn, queries).await?;
        }
        purge_erased_subjects(conn, events, &[&self.purge_sessions, &self.purge_queries]).await?;
        Ok(())
    }
}
