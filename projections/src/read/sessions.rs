//! The `sessions` and `session_queries` read models.

use casebook_domain::ids::{SessionId, TenantId};
use sqlx::PgConnection;

use super::{newest_first, Page, PageRequest};
use crate::models::{
    query_from_row, session_from_row, Session, SessionQuery, QUERY_COLUMNS, SESSION_COLUMNS,
};
use crate::sql::select_list;

/// One session of `tenant`.
pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    session: SessionId,
) -> Result<Option<Session>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM sessions WHERE tenant_id = $1 AND session_id = $2",
        select_list(SESSION_COLUMNS)
    );
    sqlx::query(&sql)
        .bind(tenant.as_uuid())
        .bind(session.as_uuid())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(session_from_row)
        .transpose()
}

/// `tenant`'s sessions, newest first.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    request: PageRequest,
) -> Result<Page<Session>, sqlx::Error> {
    newest_first(
        conn,
        "sessions",
        &select_list(SESSION_COLUMNS),
        tenant,
        request,
        session_from_row,
        |s| s.position,
    )
    .await
}

/// The queries of one session of `tenant`, in the order they were submitted.
pub async fn queries(
    conn: &mut PgConnection,
    tenant: TenantId,
    session: SessionId,
) -> Result<Vec<SessionQuery>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM session_queries WHERE tenant_id = $1 AND session_id = $2 ORDER BY position",
        select_list(QUERY_COLUMNS)
    );
    sqlx::query(&sql)
        .bind(tenant.as_uuid())
        .bind(session.as_uuid())
        .fetch_all(conn)
        .await?
        .iter()
        .map(query_from_row)
        .collect()
}
