//! Row-level security on the read models and the audit table.

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
    for pool in [&stack.app, &auditor] {
        let mut conn = pool.acquire().await.unwrap();
        as_tenant(&mut conn, Some(a)).await;
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
        for table in TABLES {
            let all = count(&mut conn, &format!("SELECT count(*) FROM {table}")).await;
            assert_eq!(all, 0, "{table} without a tenant");
        }
    }

    // Request-path roles cannot write the read models.
    let mut conn = stack.app.acquire().await.unwrap();
    let denied = conn
        .execute("UPDATE sessions SET subject = 'x'")
        .await
        .unwrap_err();
    assert_eq!(
        denied.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("42501")
    );
}
