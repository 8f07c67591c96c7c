//! The read models' queries, for the API.
//!
//! Every function takes the caller's connection or transaction, on which the caller has run
//! `SET LOCAL app.tenant_id = '<tenant>'` as the app (or auditor) role: row-level security
//! then hides every other tenant's rows, and each query filters by the tenant it is given as
//! well. Lists page by keyset on a row's `position` (the global position of the event that
//! created it): a [`Page`] returns the cursor of the next page, which the API can hand out
//! opaquely and pass back as [`PageRequest::after`].

pub mod audit;
pub mod decisions;
pub mod diagnoses;
pub mod judgments;
pub mod sessions;
pub mod tenants;
pub mod usage;

use casebook_domain::ids::{TenantId, UserId};
use sqlx::postgres::PgRow;
use sqlx::PgConnection;

/// Which of the tenant's sessions and diagnoses a reader may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach<'a> {
    /// All of them: the practice's consultants and auditors.
    Tenant,
    /// Only those the user opened or requested: a customer of the practice never sees
    /// another customer's matters.
    OwnedBy(&'a UserId),
}

impl<'a> Reach<'a> {
    /// `AND <owner column> = $<param>` when only the owner's rows are visible, and the value
    /// to bind for it.
    fn condition(self, owner_column: &str, param: usize) -> (String, Option<&'a str>) {
        match self {
            Reach::Tenant => (String::new(), None),
            Reach::OwnedBy(user) => (
                format!(" AND {owner_column} = ${param}"),
                Some(user.as_str()),
            ),
        }
    }
}

/// Which page of a list to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// The most rows to return (at least 1).
    pub limit: i64,
    /// The previous page's [`Page::next`]; `None` for the first page.
    pub after: Option<i64>,
}

impl PageRequest {
    /// The first page of at most `limit` rows.
    pub fn first(limit: i64) -> Self {
        Self { limit, after: None }
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The rows, in list order.
    pub items: Vec<T>,
    /// The cursor of the next page; `None` on the last page.
    pub next: Option<i64>,
}

/// Builds a page from up to `limit + 1` rows (the extra one only says there is more).
pub(crate) fn page<T>(
    rows: Vec<PgRow>,
    request: PageRequest,
    from_row: impl Fn(&PgRow) -> Result<T, sqlx::Error>,
    cursor: impl Fn(&T) -> i64,
) -> Result<Page<T>, sqlx::Error> {
    let limit = usize::try_from(request.limit.max(1)).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    let items = rows
        .iter()
        .take(limit)
        .map(from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let next = if more { items.last().map(cursor) } else { None };
    Ok(Page { items, next })
}

/// `limit + 1` for the query, so [`page`] can tell whether there is more.
pub(crate) fn fetch_limit(request: PageRequest) -> i64 {
    request.limit.max(1).saturating_add(1)
}

/// A position-keyed list's table, and the column naming who created each row (for [`Reach`]).
pub(crate) struct Listed<'a> {
    pub table: &'a str,
    pub columns: &'a str,
    pub owner_column: &'a str,
}

/// One page of the listed table's rows of `tenant` within `reach`, newest first by
/// `position`: the list every position-keyed read model offers.
pub(crate) async fn newest_first<T>(
    conn: &mut PgConnection,
    listed: Listed<'_>,
    tenant: TenantId,
    reach: Reach<'_>,
    request: PageRequest,
    from_row: impl Fn(&PgRow) -> Result<T, sqlx::Error>,
    cursor: impl Fn(&T) -> i64,
) -> Result<Page<T>, sqlx::Error> {
    let Listed {
        table,
        columns,
        owner_column,
    } = listed;
    let (owned, owner) = reach.condition(owner_column, 4);
    let sql = format!(
        "SELECT {columns} FROM {table}
          WHERE tenant_id = $1 AND ($2::bigint IS NULL OR position < $2){owned}
          ORDER BY position DESC LIMIT $3"
    );
    let query = sqlx::query(&sql)
        .bind(tenant.as_uuid())
        .bind(request.after)
        .bind(fetch_limit(request));
    let query = match owner {
        Some(owner) => query.bind(owner),
        None => query,
    };
    let rows = query.fetch_all(conn).await?;
    page(rows, request, from_row, cursor)
}

/// The one row of `table` whose `id_column` is `id`, if it is `tenant`'s and within `reach`.
pub(crate) async fn one<T>(
    conn: &mut PgConnection,
    listed: Listed<'_>,
    tenant: TenantId,
    reach: Reach<'_>,
    (id_column, id): (&str, uuid::Uuid),
    from_row: impl Fn(&PgRow) -> Result<T, sqlx::Error>,
) -> Result<Option<T>, sqlx::Error> {
    let Listed {
        table,
        columns,
        owner_column,
    } = listed;
    let (owned, owner) = reach.condition(owner_column, 3);
    let sql =
        format!("SELECT {columns} FROM {table} WHERE tenant_id = $1 AND {id_column} = $2{owned}");
    let query = sqlx::query(&sql).bind(tenant.as_uuid()).bind(id);
    let query = match owner {
        Some(owner) => query.bind(owner),
        None => query,
    };
    query
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}
