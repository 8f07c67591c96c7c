//! The `tenants` read model.

use casebook_domain::ids::TenantId;
use sqlx::PgConnection;

use crate::models::{tenant_from_row, Tenant, TENANT_COLUMNS};
use crate::sql::select_list;

/// The tenant's status, plan, model policy and auto-resolve threshold; `None` before it is
/// onboarded (or while the projection hasn't caught up with its onboarding).
pub async fn get(conn: &mut PgConnection, tenant: TenantId) -> Result<Option<Tenant>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM tenants WHERE tenant_id = $1",
        select_list(TENANT_COLUMNS)
    );
    sqlx::query(&sql)
        .bind(tenant.as_uuid())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(tenant_from_row)
        .transpose()
}
