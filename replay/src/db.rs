//! Connections. Auditors' commands run as `casebook_auditor` (SELECT only, row-level security
//! by `app.tenant_id`, which every connection of a command's pool names: the command's tenant)
//! with every transaction read-only as well, so the tool cannot change
//! anything even if a role grant is widened by mistake. Rebuilds need the owner of the
//! read-model tables and connect as the user of `DATABASE_URL` itself, its rows read and
//! written as `casebook_maintainer`.

use std::path::Path;
use std::sync::Arc;

use casebook_adapters::config::Config;
use casebook_adapters::postgres::{self, DbRole};
use casebook_vault::root::LocalRootKey;
use casebook_vault::Vault;
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;
use uuid::Uuid;

use crate::Error;

/// Connection options from `DATABASE_URL` (and the server's other variables).
pub fn options_from_env() -> Result<PgConnectOptions, Error> {
    Ok(Config::from_env()?.database.connect_options())
}

/// A read-only pool as `casebook_auditor` for the database of `DATABASE_URL`, seeing
/// `tenant`'s rows (none without one).
pub async fn auditor(tenant: Option<Uuid>) -> Result<PgPool, Error> {
    Ok(auditor_pool(options_from_env()?, tenant).await?)
}

/// A read-only pool as `casebook_auditor`: the role has SELECT only, the session's
/// transactions default to read-only, and row-level security shows `tenant`'s rows.
pub async fn auditor_pool(
    options: PgConnectOptions,
    tenant: Option<Uuid>,
) -> Result<PgPool, sqlx::Error> {
    let mut settings = vec![("default_transaction_read_only", "on".to_owned())];
    settings.extend(tenant.map(|tenant| ("app.tenant_id", tenant.to_string())));
    postgres::connect(options.options(settings), DbRole::Auditor, 4).await
}

/// A rebuild's pool: the connecting user (the tables' owner), reading and writing rows as
/// `casebook_maintainer`, with `connections` connections.
pub async fn maintainer(connections: u32) -> Result<PgPool, Error> {
    Ok(postgres::connect(options_from_env()?, DbRole::Maintainer, connections).await?)
}

/// The vault whose root key `CASEBOOK_VAULT_KEY_FILE` holds, as the server reads it: a rebuild
/// projects the sealed fields opened (or redacted, their subject erased). `None` without one.
pub fn vault() -> Result<Option<Arc<Vault>>, Error> {
    let Some(file) = std::env::var_os("CASEBOOK_VAULT_KEY_FILE").filter(|f| !f.is_empty()) else {
        return Ok(None);
    };
    let root = LocalRootKey::from_file(Path::new(&file))?;
    Ok(Some(Arc::new(Vault::new(Arc::new(root)))))
}
