//! Shadow tables: a live table's copy — columns, constraints, indexes, row-level security
//! policies and grants — built beside it, then swapped in.
//!
//! A rebuild's connections read and write rows as `casebook_maintainer` (row-level security
//! is forced on the tables' owner too, with no policy for it); creating, altering, dropping
//! and renaming tables takes the owner's rights, which each DDL step here takes back for
//! itself ([`as_owner`]) and gives up again ([`as_maintainer`]).

use sqlx::{Executor, PgConnection, Row};
use uuid::Uuid;

/// The connection's own user: the tables' owner.
pub(crate) async fn as_owner(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    conn.execute("RESET ROLE").await.map(drop)
}

/// Back to the role the rebuild's rows are read and written as.
pub(crate) async fn as_maintainer(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    conn.execute("SET ROLE casebook_maintainer").await.map(drop)
}

/// Whether `table` exists (in the search path).
pub(crate) async fn exists(conn: &mut PgConnection, table: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT to_regclass(quote_ident($1)) IS NOT NULL")
        .bind(table)
        .fetch_one(conn)
        .await
}

/// Drops `table` if it exists.
pub(crate) async fn drop_if_exists(
    conn: &mut PgConnection,
    table: &str,
) -> Result<(), sqlx::Error> {
    as_owner(conn).await?;
    conn.execute(format!(r#"DROP TABLE IF EXISTS "{table}""#).as_str())
        .await?;
    as_maintainer(conn).await
}

/// Creates `shadow` as an empty copy of `live`: `LIKE … INCLUDING ALL` (columns, defaults,
/// constraints) but only the primary key and unique constraints of its indexes (the
/// projections' upserts need them; the others are built at the end, see
/// [`add_deferred_indexes`]), then row-level security, its policies and its grants, which
/// `LIKE` doesn't copy.
pub(crate) async fn create(
    conn: &mut PgConnection,
    live: &str,
    shadow: &str,
) -> Result<(), sqlx::Error> {
    as_owner(conn).await?;
    conn.execute(
        format!(r#"CREATE TABLE "{shadow}" (LIKE "{live}" INCLUDING ALL EXCLUDING INDEXES)"#)
            .as_str(),
    )
    .await?;
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint
          WHERE conrelid = quote_ident($1)::regclass AND contype IN ('p', 'u')
          ORDER BY conname",
    )
    .bind(live)
    .fetch_all(&mut *conn)
    .await?;
    for key in keys {
        conn.execute(format!(r#"ALTER TABLE "{shadow}" ADD {key}"#).as_str())
            .await?;
    }
    let (rls, force): (bool, bool) = sqlx::query_as(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = quote_ident($1)::regclass",
    )
    .bind(live)
    .fetch_one(&mut *conn)
    .await?;
    if rls {
        conn.execute(format!(r#"ALTER TABLE "{shadow}" ENABLE ROW LEVEL SECURITY"#).as_str())
            .await?;
    }
    if force {
        conn.execute(format!(r#"ALTER TABLE "{shadow}" FORCE ROW LEVEL SECURITY"#).as_str())
            .await?;
    }
    let policies = sqlx::query(
        "SELECT quote_ident(policyname) AS name, permissive, cmd, qual, with_check,
                array_to_string(ARRAY(SELECT CASE WHEN r = 'public' THEN 'PUBLIC' ELSE quote_ident(r) END
                                        FROM unnest(roles) AS r), ', ') AS roles
           FROM pg_policies WHERE schemaname = current_schema() AND tablename = $1",
    )
    .bind(live)
    .fetch_all(&mut *conn)
    .await?;
    for policy in policies {
        let name: String = policy.try_get("name")?;
        let permissive: String = policy.try_get("permissive")?;
        let cmd: String = policy.try_get("cmd")?;
        let roles: String = policy.try_get("roles")?;
        let mut sql =
            format!(r#"CREATE POLICY {name} ON "{shadow}" AS {permissive} FOR {cmd} TO {roles}"#);
        if let Some(qual) = policy.try_get::<Option<String>, _>("qual")? {
            sql.push_str(&format!(" USING ({qual})"));
        }
        if let Some(check) = policy.try_get::<Option<String>, _>("with_check")? {
            sql.push_str(&format!(" WITH CHECK ({check})"));
        }
        conn.execute(sql.as_str()).await?;
    }
    let grants = sqlx::query(
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS grantee,
                a.privilege_type
           FROM pg_class c
          CROSS JOIN LATERAL aclexplode(c.relacl) AS a
           LEFT JOIN pg_roles r ON r.oid = a.grantee
          WHERE c.oid = quote_ident($1)::regclass AND a.grantee <> c.relowner",
    )
    .bind(live)
    .fetch_all(&mut *conn)
    .await?;
    for grant in grants {
        let grantee: String = grant.try_get("grantee")?;
        let privilege: String = grant.try_get("privilege_type")?;
        conn.execute(format!(r#"GRANT {privilege} ON "{shadow}" TO {grantee}"#).as_str())
            .await?;
    }
    as_maintainer(conn).await
}

/// Each index of `table` with its definition, minus its own and its table's name.
async fn indexes(
    conn: &mut PgConnection,
    table: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        r"SELECT c.relname::text,
                 regexp_replace(pg_get_indexdef(i.indexrelid), ' INDEX \S+ ON \S+ ', ' INDEX ON ')
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           WHERE i.indrelid = quote_ident($1)::regclass
           ORDER BY c.relname",
    )
    .bind(table)
    .fetch_all(conn)
    .await
}

/// Creates the indexes of `live` that `shadow` lacks (those [`create`] left out), comparing
/// definitions; a no-op when they are all there.
pub(crate) async fn add_deferred_indexes(
    conn: &mut PgConnection,
    live: &str,
    shadow: &str,
) -> Result<(), sqlx::Error> {
    let mut present: Vec<String> = indexes(conn, shadow)
        .await?
        .into_iter()
        .map(|(_, definition)| definition)
        .collect();
    // Each live index's definition without names, and the statement creating it on the
    // shadow (named by Postgres; the swap renames it back).
    let wanted: Vec<(String, String)> = sqlx::query_as(
        r"SELECT regexp_replace(d, ' INDEX \S+ ON \S+ ', ' INDEX ON '),
                 regexp_replace(d, ' INDEX \S+ ON \S+ ', ' INDEX ON ' || quote_ident($2) || ' ')
            FROM (SELECT pg_get_indexdef(indexrelid) AS d FROM pg_index
                   WHERE indrelid = quote_ident($1)::regclass) AS i
           ORDER BY 1",
    )
    .bind(live)
    .bind(shadow)
    .fetch_all(&mut *conn)
    .await?;
    for (definition, create) in wanted {
        match present.iter().position(|d| *d == definition) {
            Some(i) => {
                present.swap_remove(i);
            }
            None => {
                as_owner(conn).await?;
                conn.execute(create.as_str()).await?;
                as_maintainer(conn).await?;
            }
        }
    }
    Ok(())
}

/// Replaces `live` by `shadow` (inside the caller's transaction): drops `live`, renames
/// `shadow` to it, and gives each of its indexes the name of the live index it matches, so
/// migrations keep finding indexes (and primary key constraints) by their names.
pub(crate) async fn swap_in(
    conn: &mut PgConnection,
    live: &str,
    shadow: &str,
) -> Result<(), sqlx::Error> {
    let old = indexes(conn, live).await?;
    let mut new = indexes(conn, shadow).await?;
    as_owner(conn).await?;
    conn.execute(format!(r#"DROP TABLE "{live}""#).as_str())
        .await?;
    conn.execute(format!(r#"ALTER TABLE "{shadow}" RENAME TO "{live}""#).as_str())
        .await?;
    for (name, definition) in old {
        if let Some(i) = new.iter().position(|(_, d)| *d == definition) {
            let (new_name, _) = new.swap_remove(i);
            if new_name != name {
                conn.execute(format!(r#"ALTER INDEX "{new_name}" RENAME TO "{name}""#).as_str())
                    .await?;
            }
        }
    }
    as_maintainer(conn).await
}

/// Replaces `tenant`'s rows of `live` by the rows of `shadow` (inside the caller's
/// transaction) and drops `shadow`.
pub(crate) async fn merge_tenant(
    conn: &mut PgConnection,
    live: &str,
    shadow: &str,
    tenant: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(r#"DELETE FROM "{live}" WHERE tenant_id = $1"#))
        .bind(tenant)
        .execute(&mut *conn)
        .await?;
    sqlx::query(&format!(
        r#"INSERT INTO "{live}" SELECT * FROM "{shadow}" WHERE tenant_id = $1"#
    ))
    .bind(tenant)
    .execute(&mut *conn)
    .await?;
    drop_if_exists(conn, shadow).await
}
