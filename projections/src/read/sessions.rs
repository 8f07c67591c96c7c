//! The `sessions` and `session_queries` read models.

use casebook_domain::ids::{SessionId, TenantId};
use sqlx::PgConnection;

use super::{newest_first, one, Listed, Page, PageRequest, Reach};
use crate::models::{
    query_from_row, session_from_row, Session, SessionQuery, QUERY_COLUMNS, SESSION_COLUMNS,
};
use crate::sql::select_list;

fn sessions(columns: &str) -> Listed<'_> {
    Listed {
        table: "sessions",
        columns,
        owner_column: "opened_by",
    }
}

/// One session of `tenant`, if it is within `reach`.
pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    reach: Reach<'_>,
    session: SessionId,
) -> Result<Option<Session>, sqlx::Error> {
    let columns = select_list(SESSION_COLUMNS);
    one(
        conn,
        sessions(&columns),
        tenant,
        reach,
        ("session_id", *session.as_uuid()),
        session_from_row,
    )
    .await
}

/// `tenant`'s sessions within `reach`, newest first.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    reach: Reach<'_>,
    request: PageRequest,
) -> Result<Page<Session>, sqlx::Error> {
    let columns = select_list(SESSION_COLUMNS);
    newest_first(
        conn,
        sessions(&columns),
        tenant,
        reach,
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
