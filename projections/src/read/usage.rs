//! The `tenant_usage` read model.

use casebook_domain::budget::BudgetMonth;
use casebook_domain::ids::TenantId;
use chrono::NaiveDate;
use sqlx::PgConnection;

use crate::models::{usage_from_row, Usage, USAGE_COLUMNS};
use crate::sql::select_list;

/// `tenant`'s proposals, tokens and cost per model and UTC day, for the days `from..=to`,
/// by day then model.
pub async fn daily(
    conn: &mut PgConnection,
    tenant: TenantId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Usage>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM tenant_usage WHERE tenant_id = $1 AND day BETWEEN $2 AND $3
          ORDER BY day, model_id",
        select_list(USAGE_COLUMNS)
    );
    sqlx::query(&sql)
        .bind(tenant.as_uuid())
        .bind(from)
        .bind(to)
        .fetch_all(conn)
        .await?
        .iter()
        .map(usage_from_row)
        .collect()
}

/// The model tokens (in and out) `tenant`'s proposals spent in `month`.
pub async fn tokens_in_month(
    conn: &mut PgConnection,
    tenant: TenantId,
    month: BudgetMonth,
) -> Result<u64, sqlx::Error> {
    let tokens: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(input_tokens + output_tokens), 0)::int8 FROM tenant_usage
          WHERE tenant_id = $1 AND day BETWEEN $2 AND $3",
    )
    .bind(tenant.as_uuid())
    .bind(month.first_day())
    .bind(month.last_day())
    .fetch_one(conn)
    .await?;
    u64::try_from(tokens).map_err(|err| crate::sql::decode_error("tokens", err))
}
