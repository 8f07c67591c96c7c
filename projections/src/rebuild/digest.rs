//! Canonical digests of a projection's tables, to compare a rebuild with the live tables.
//!
//! A table's digest is SHA-256 over its rows in primary-key order, each row contributing
//! the length (4 bytes, big-endian) and bytes of its key as JSON text
//! (`jsonb_build_array(key columns)::text`), then the length and bytes of the whole row as
//! JSON text (`to_jsonb(row)::text`), rendered with `TimeZone = UTC`,
//! `extra_float_digits = 1` (shortest exact floats) and `bytea_output = hex`. Two tables
//! with the same columns and the same rows have the same digest.

use std::fmt;

use futures::TryStreamExt;
use sha2::{Digest as _, Sha256};
use sqlx::{Executor, PgConnection, Row};
use uuid::Uuid;

use crate::projection::{Naming, ProjectionId, TableSpec};

/// A table's digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// A table's digest and row count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDigest {
    /// The digest of its rows.
    pub digest: Digest,
    /// How many rows.
    pub rows: u64,
}

/// Renders rows canonically for the rest of the caller's transaction.
pub(crate) async fn canonical_settings(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    conn.execute(
        "SET LOCAL TimeZone = 'UTC'; SET LOCAL extra_float_digits = 1; SET LOCAL bytea_output = 'hex'",
    )
    .await?;
    Ok(())
}

fn tenant_filter(alias: &str, tenant: Option<Uuid>) -> String {
    match tenant {
        Some(_) => format!(" WHERE {alias}.tenant_id = $1"),
        None => String::new(),
    }
}

/// The digest of `table` (only `tenant`'s rows when given), ordered by `key`. Call inside a
/// transaction after [`canonical_settings`].
pub(crate) async fn table_digest(
    conn: &mut PgConnection,
    table: &str,
    key: &[&str],
    tenant: Option<Uuid>,
) -> Result<TableDigest, sqlx::Error> {
    let key = key.join(", ");
    let sql = format!(
        r#"SELECT jsonb_build_array({key})::text AS key, to_jsonb(t)::text AS row
             FROM "{table}" t{} ORDER BY {key}"#,
        tenant_filter("t", tenant)
    );
    let mut query = sqlx::query(&sql);
    if let Some(tenant) = tenant {
        query = query.bind(tenant);
    }
    let mut hasher = Sha256::new();
    let mut rows = 0;
    let mut stream = query.fetch(conn);
    while let Some(row) = stream.try_next().await? {
        for column in ["key", "row"] {
            let text: &str = row.try_get(column)?;
            let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
            hasher.update(len.to_be_bytes());
            hasher.update(text.as_bytes());
        }
        rows += 1;
    }
    Ok(TableDigest {
        digest: Digest(hasher.finalize().into()),
        rows,
    })
}

/// The first key, in key order, whose row differs between `live` and `shadow` (or is in
/// only one of them), as JSON text. Call after [`canonical_settings`].
pub(crate) async fn first_difference(
    conn: &mut PgConnection,
    live: &str,
    shadow: &str,
    key: &[&str],
    tenant: Option<Uuid>,
) -> Result<Option<String>, sqlx::Error> {
    let key = key.join(", ");
    let sql = format!(
        r#"SELECT jsonb_build_array({key})::text
             FROM (SELECT {key}, to_jsonb(a) AS r FROM "{live}" a{}) l
             FULL JOIN (SELECT {key}, to_jsonb(b) AS r FROM "{shadow}" b{}) s USING ({key})
            WHERE l.r IS DISTINCT FROM s.r
            ORDER BY {key} LIMIT 1"#,
        tenant_filter("a", tenant),
        tenant_filter("b", tenant)
    );
    let mut query = sqlx::query_scalar(&sql);
    if let Some(tenant) = tenant {
        query = query.bind(tenant);
    }
    query.fetch_optional(conn).await
}

/// The digest of every table of projection `id` as `naming` names them (only `tenant`'s rows
/// when given), in [`ProjectionId::tables`] order, read in one repeatable-read snapshot.
pub async fn projection_digest(
    conn: &mut PgConnection,
    id: ProjectionId,
    naming: &Naming,
    tenant: Option<Uuid>,
) -> Result<Vec<(TableSpec, TableDigest)>, sqlx::Error> {
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let result = async {
        canonical_settings(conn).await?;
        let mut digests = Vec::new();
        for table in id.tables() {
            let digest = table_digest(conn, &naming.table(table.name), table.key, tenant).await?;
            digests.push((*table, digest));
        }
        Ok::<_, sqlx::Error>(digests)
    }
    .await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.execute(end).await?;
    result
}
