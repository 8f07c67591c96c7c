//! Row-level security on every table holding tenants' rows: the read models, the audit
//! table, the log, snapshots and the request path's own tables.

use casebook_projections::read::{self, Reach};
use casebook_tests::DbRole;
use sqlx::{Executor, PgConnection, PgPool};

use crate::oracle::fold_log;
use crate::support::{as_tenant, Driver, Stack};

const TABLES: [&str; 7] = [
    "tenants",
    "sessions",
    "session_queries",
    "diagnoses",
    "decisions",
    "tenant_usage",
    "audit_log",
];

async fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(conn).await.unwrap()
}

async fn owner_count(owner: &PgPool, table: &str, tenant: uuid::Uuid) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {table} WHERE tenant_id = $1"
    ))
    .bind(tenant)
    .fetch_one(owner)
    .await
    .unwrap()
}

#[tokio::test]
async fn with_the_tenant_set_to_a_no_query_sees_bs_rows_even_without_a_tenant_filter() {
    let stack = Stack::new().await;
    let mut driver = Driver::new(stack.app.clone(), 81);
    driver.onboard(3).await;
    driver.run(200).await;
    stack.drain_all(100).await;
    let (a, b) = (driver.tenants[0], driver.tenants[1]);
    let expected = fold_log(&stack.owner).await;
    let b_session = expected
        .sessions
        .values()
        .find(|s| s.tenant_id == b)
        .expect("B has a session")
        .session_id;

    let auditor = stack.db.pool(DbRole::Auditor, 2).await;
    for (pool, role) in [(&stack.app, "casebook_app"), (&auditor, "casebook_auditor")] {
        let mut conn = pool.acquire().await.unwrap();
        as_tenant(&mut conn, role, Some(a)).await;
        for table in TABLES {
            let all = count(&mut conn, &format!("SELECT count(*) FROM {table}")).await;
            let mine = owner_count(&stack.owner, table, *a.as_uuid()).await;
            assert!(mine > 0, "{table} has rows of A");
            assert_eq!(all, mine, "{table}: an unfiltered query sees only A's rows");
            let theirs = count(
                &mut conn,
                &format!("SELECT count(*) FROM {table} WHERE tenant_id = '{b}'"),
            )
            .await;
            assert_eq!(theirs, 0, "{table}: B's rows are invisible");
            assert!(owner_count(&stack.owner, table, *b.as_uuid()).await > 0);
        }
        assert_eq!(
            read::sessions::get(&mut conn, b, Reach::Tenant, b_session)
                .await
                .unwrap(),
            None
        );
        assert_eq!(read::tenants::get(&mut conn, b).await.unwrap(), None);
        conn.execute("COMMIT").await.unwrap();

        // Once that transaction is over the setting reads as '': no rows, and no error.
        as_tenant(&mut conn, role, None).await;
        for table in TABLES {
            let all = count(&mut conn, &format!("SELECT count(*) FROM {table}")).await;
            assert_eq!(all, 0, "{table} without a tenant");
        }
        conn.execute("COMMIT").await.unwrap();
    }

    // Request-path roles cannot write the read models.
    let mut conn = stack.app.acquire().await.unwrap();
    as_tenant(&mut conn, "casebook_app", Some(a)).await;
    let denied = conn
        .execute("UPDATE sessions SET subject = 'x'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&denied), Some("42501".to_owned()));
}

fn sqlstate(err: &sqlx::Error) -> Option<String> {
    err.as_database_error()
        .and_then(|e| e.code())
        .map(|code| code.into_owned())
}

/// Every table with a `tenant_id` column, as the catalog lists them.
async fn tenant_tables(owner: &PgPool) -> Vec<(String, bool, bool, i64)> {
    sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity,
                (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)
           FROM pg_class c
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
          WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
            AND NOT c.relispartition
          ORDER BY 1",
    )
    .fetch_all(owner)
    .await
    .unwrap()
}

#[tokio::test]
async fn every_table_holding_tenants_rows_forces_row_level_security_on_its_owner_too() {
    let stack = Stack::new().await;
    let tables = tenant_tables(&stack.owner).await;
    let names: Vec<&str> = tables.iter().map(|(name, ..)| name.as_str()).collect();
    for expected in [
        "events",
        "snapshots",
        "idempotency_keys",
        "upload_grants",
        "audit_log",
    ] {
        assert!(names.contains(&expected), "{expected} holds tenants' rows");
    }
    for (table, enabled, forced, policies) in tables {
        assert!(
            enabled && forced,
            "{table}: row-level security enabled and forced"
        );
        assert!(policies > 0, "{table} has policies");
    }
}

#[tokio::test]
async fn the_request_path_reads_and_appends_only_its_tenants_events_and_snapshots() {
    let stack = Stack::new().await;
    let mut driver = Driver::new(stack.app.clone(), 82);
    driver.onboard(2).await;
    driver.run(200).await;
    let (a, b) = (driver.tenants[0], driver.tenants[1]);
    // A short workload snapshots no stream: one snapshot of each tenant's own stream.
    sqlx::query(
        "INSERT INTO snapshots (tenant_id, aggregate_type, aggregate_id, last_sequence,
                                current_snapshot, payload)
         SELECT tenant_id, aggregate_type, aggregate_id, 1, 1, '{}'
           FROM events WHERE aggregate_type = 'Tenant' AND sequence = 1",
    )
    .execute(&stack.owner)
    .await
    .unwrap();

    let mut conn = stack.app.acquire().await.unwrap();
    as_tenant(&mut conn, "casebook_app", Some(a)).await;
    for table in ["events", "snapshots"] {
        let mine = owner_count(&stack.owner, table, *a.as_uuid()).await;
        assert!(mine > 0, "{table} has rows of A");
        assert!(owner_count(&stack.owner, table, *b.as_uuid()).await > 0);
        let all = count(&mut conn, &format!("SELECT count(*) FROM {table}")).await;
        assert_eq!(all, mine, "{table}: an unfiltered query sees only A's rows");
    }
    // An event of B's, appended in A's transaction, is refused by the policy.
    let refused = sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                             payload, metadata)
         VALUES ('Probe', 'probe', 1, 'Probed', '1', '{}', jsonb_build_object('tenant_id', $1::text))",
    )
    .bind(b.to_string())
    .execute(&mut *conn)
    .await
    .unwrap_err();
    assert_eq!(sqlstate(&refused), Some("42501".to_owned()));
    conn.execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn the_login_reads_nothing_without_assuming_a_role_nor_does_the_tables_owner() {
    let stack = Stack::new().await;
    let mut driver = Driver::new(stack.app.clone(), 83);
    driver.onboard(2).await;
    driver.run(50).await;

    // The application's login inherits no role's rights: outside a transaction that assumes
    // one, every tenant table refuses it.
    let tables: Vec<String> = tenant_tables(&stack.owner)
        .await
        .into_iter()
        .map(|(table, ..)| table)
        .collect();
    let mut conn = stack.app.acquire().await.unwrap();
    for table in &tables {
        let denied = conn
            .execute(format!("SELECT count(*) FROM {table}").as_str())
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&denied), Some("42501".to_owned()), "{table}");
    }

    // An owner that is not a superuser (as on RDS) sees no row: no policy names it.
    let mut su = stack.db.superuser().await;
    su.execute(
        "DO $$ BEGIN
             IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'casebook_test_owner') THEN
                 CREATE ROLE casebook_test_owner NOLOGIN;
             END IF;
         EXCEPTION WHEN unique_violation OR duplicate_object THEN NULL;
         END $$",
    )
    .await
    .unwrap();
    su.execute("BEGIN").await.unwrap();
    for table in &tables {
        su.execute(format!("ALTER TABLE {table} OWNER TO casebook_test_owner").as_str())
            .await
            .unwrap();
    }
    su.execute("SET LOCAL ROLE casebook_test_owner")
        .await
        .unwrap();
    for table in &tables {
        let seen = count(&mut su, &format!("SELECT count(*) FROM {table}")).await;
        assert_eq!(seen, 0, "{table}: the owner sees nothing");
    }
    su.execute("ROLLBACK").await.unwrap();
}
