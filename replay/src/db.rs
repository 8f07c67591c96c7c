//! Connections. Auditors' commands run as `casebook_auditor` (SELECT only, row-level security
//! by `app.tenant_id`) with every transaction read-only as well, so the tool cannot change
//! anything even if a role grant is widened by mistake. Rebuilds need the owner of the
//! read-model tables and connect as the user of `DATABASE_URL` itself, its rows read and
//! written as `casebook_maintainer`.

use casebook_adapters::config::Config;
use casebook_adapters::postgres::{self, DbRole};
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgConnectOptions;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

use crate::Error;

/// Connection options from `DATABASE_URL` (and the server's other variables).
pub fn options_from_env() -> Result<PgConnectOptions, Error> {
    Ok(Config::from_env()?.database.connect_options())
}

/// A read-only pool as `casebook_auditor` for the database of `DATABASE_URL`.
pub async fn auditor() -> Result<PgPool, Error> {
    Ok(auditor_pool(options_from_env()?).await?)
}

/// A read-only pool as `casebook_auditor`: the role has SELECT only, and the session's
/// transactions default to read-only.
pub async fn auditor_pool(options: PgConnectOptions) -> Result<PgPool, sqlx::Error> {
    let options = options.options([("default_transaction_read_only", "on")]);
    postgres::connect(options, DbRole::Auditor, 4).await
}

/// A rebuild's pool: the connecting user (the tables' owner), reading and writing rows as
/// `casebook_maintainer`, with `connections` connections.
pub async fn maintainer(connections: u32) -> Result<PgPool, Error> {
    Ok(postgres::connect(options_from_env()?, DbRole::Maintainer, connections).await?)
}

/// A connection whose row-level security shows `tenant`'s rows (audit and read models).
pub async fn tenant_connection(
    pool: &PgPool,
    tenant: Uuid,
) -> Result<PoolConnection<Postgres>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT set_config('app.tenant_id', $1, false)")
        .bind(tenant.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(conn)
}
