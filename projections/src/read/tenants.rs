//! The `tenants` and `tenant_users` read models.

use casebook_domain::actor::Role;
use casebook_domain::ids::{TenantId, UserId};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::models::{tenant_from_row, Tenant, TENANT_COLUMNS};
use crate::sql::{get_enum, get_opt_user, select_list};

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

/// One person of a tenant, as `tenant_users` holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantUser {
    /// Their sign-in address.
    pub email: String,
    /// How the practice addresses them.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// Disabled users are refused everywhere.
    pub enabled: bool,
    /// Their identity provider's subject, once their account exists.
    pub user_id: Option<UserId>,
    /// When they were invited.
    pub invited_at: DateTime<Utc>,
    /// When their row last changed.
    pub updated_at: DateTime<Utc>,
}

const USER_COLUMNS: &str = "email, name, role, enabled, user_id, invited_at, updated_at";

fn user_from_row(row: &PgRow) -> Result<TenantUser, sqlx::Error> {
    Ok(TenantUser {
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: get_enum(row, "role")?,
        enabled: row.try_get("enabled")?,
        user_id: get_opt_user(row, "user_id")?,
        invited_at: row.try_get("invited_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The tenant's people, by address. Not paged: a practice has tens of people, not thousands.
pub async fn users(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Vec<TenantUser>, sqlx::Error> {
    let sql =
        format!("SELECT {USER_COLUMNS} FROM tenant_users WHERE tenant_id = $1 ORDER BY email");
    sqlx::query(&sql)
        .bind(tenant.as_uuid())
        .fetch_all(conn)
        .await?
        .iter()
        .map(user_from_row)
        .collect()
}

/// The member whose identity-provider subject is `user_id`; `None` for a user the tenant
/// never invited (one an operator created) or whose account isn't recorded yet.
pub async fn user_by_subject(
    conn: &mut PgConnection,
    tenant: TenantId,
    user_id: &UserId,
) -> Result<Option<TenantUser>, sqlx::Error> {
    let sql =
        format!("SELECT {USER_COLUMNS} FROM tenant_users WHERE tenant_id = $1 AND user_id = $2");
    sqlx::query(&sql)
        .bind(tenant.as_uuid())
        .bind(user_id.as_str())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
}
