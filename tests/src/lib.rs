//! Casebook's test harness: a fresh, migrated database per test on the shared local cluster.
//!
//! Migrating a database takes longer than copying one, so the first test of a run migrates a
//! *template* database named after the migrations' checksums, and every test then gets
//! `CREATE DATABASE … TEMPLATE` of it. Test processes (nextest runs one per test) coordinate
//! through an advisory lock, so the template is built once per migration set and never
//! copied while half-built. Each test's database is dropped when its [`TestDb`] goes away.
//!
//! The cluster comes from `CASEBOOK_PG_ADMIN_URL` (any database of the cluster, connected as
//! a superuser), as exported by `infra/local/stack.sh up`.

pub mod bench;

use std::str::FromStr;

pub use casebook_adapters::postgres::DbRole;
use casebook_adapters::postgres::{self, MIGRATOR};
use sqlx::migrate::Migrate;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, PgPool};

/// Arbitrary but fixed: serialises template creation across test processes.
const TEMPLATE_LOCK: i64 = 0x00ca_5eb0_0c7e_3a71;

/// The login the role pools connect as, shaped like the deployed `casebook` (infra/README.md):
/// a member of the application's roles that inherits none of their rights, so a statement that
/// does not assume a role reads nothing. Roles are cluster-wide: made once, by the first test
/// of the cluster, under the template lock.
const LOGIN: &str = "casebook_test_login";
const ENSURE_LOGIN: &str = "
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'casebook_test_login') THEN
        CREATE ROLE casebook_test_login LOGIN NOINHERIT;
        GRANT casebook_app, casebook_projector, casebook_auditor, casebook_search
           TO casebook_test_login;
    END IF;
END $$";

/// A database of its own for one test.
pub struct TestDb {
    name: String,
    admin: PgConnectOptions,
    options: PgConnectOptions,
}

impl TestDb {
    /// Creates a fresh database with every migration applied.
    pub async fn new() -> Self {
        let admin = admin_options();
        let template = ensure_template(&admin).await;
        Self::create(admin, &template).await
    }

    /// Creates a fresh database with only the migrations older than `version` applied: a
    /// deployment as it stood before that migration, for tests of the upgrade path (run
    /// [`MIGRATOR`] on it to upgrade).
    pub async fn migrated_before(version: i64) -> Self {
        let admin = admin_options();
        // The migrations create the cluster's roles unless they exist: the template, built
        // under its lock, creates them first, so this never races another test to it.
        ensure_template(&admin).await;
        let db = Self::create(admin, "template1").await;
        let mut conn = db.superuser().await;
        conn.ensure_migrations_table()
            .await
            .expect("create the migrations table");
        for migration in MIGRATOR
            .iter()
            .filter(|migration| migration.version < version)
        {
            conn.apply(migration)
                .await
                .unwrap_or_else(|err| panic!("migration {}: {err}", migration.version));
        }
        db
    }

    async fn create(admin: PgConnectOptions, template: &str) -> Self {
        let name = format!("casebook_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin.connect().await.expect("connect to the test cluster");
        conn.execute(format!(r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#).as_str())
            .await
            .expect("create the test database");
        let options = admin.clone().database(&name);
        Self {
            name,
            admin,
            options,
        }
    }

    /// Connection options for this database, as the cluster's superuser.
    pub fn options(&self) -> PgConnectOptions {
        self.options.clone()
    }

    /// Connection options for this database, as the application's login (a member of every
    /// role, inheriting none of their rights).
    pub fn login_options(&self) -> PgConnectOptions {
        self.options.clone().username(LOGIN)
    }

    /// A `postgres://` URL for this database (for subprocesses and config).
    pub fn url(&self) -> String {
        let host = self.options.get_host();
        let port = self.options.get_port();
        let user = self.options.get_username();
        format!("postgres://{user}@{host}:{port}/{}", self.name)
    }

    /// A pool running as `role`: the owner's and the maintainer's as the superuser (the
    /// tables' owner), the others' as the application's login (`casebook_test_login`).
    pub async fn pool(&self, role: DbRole, max_connections: u32) -> PgPool {
        let options = match role {
            DbRole::Owner | DbRole::Maintainer => self.options(),
            _ => self.login_options(),
        };
        postgres::connect(options, role, max_connections)
            .await
            .expect("connect to the test database")
    }

    /// A single connection as the superuser (for tests that need to bypass the roles).
    pub async fn superuser(&self) -> PgConnection {
        self.options()
            .connect()
            .await
            .expect("connect to the test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let statement = format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, self.name);
        // Drop runs inside the test's runtime, which cannot be blocked on; a short-lived
        // thread with its own runtime does the cleanup. A failure only leaves a database behind.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async move {
                if let Ok(mut conn) = admin.connect().await {
                    let _ = conn.execute(statement.as_str()).await;
                }
            });
        })
        .join();
    }
}

/// The superuser connection to the shared cluster.
pub fn admin_options() -> PgConnectOptions {
    let url = std::env::var("CASEBOOK_PG_ADMIN_URL").expect(
        "CASEBOOK_PG_ADMIN_URL is not set: start the stack with \
         `eval \"$(infra/local/stack.sh up)\"` (or run infra/local/test.sh)",
    );
    PgConnectOptions::from_str(&url).expect("CASEBOOK_PG_ADMIN_URL is a postgres URL")
}

async fn ensure_template(admin: &PgConnectOptions) -> String {
    let fingerprint: u64 = MIGRATOR.iter().fold(0xcbf2_9ce4_8422_2325, |hash, m| {
        m.checksum.iter().fold(hash, |h, byte| {
            (h ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3)
        })
    });
    let template = format!("casebook_template_{fingerprint:016x}");
    let mut conn = admin.connect().await.expect("connect to the test cluster");
    conn.execute(format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})").as_str())
        .await
        .expect("take the template lock");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut conn)
            .await
            .expect("look up the template");
    if !exists {
        build_template(&mut conn, admin, &template).await;
    }
    conn.execute(ENSURE_LOGIN)
        .await
        .expect("create the application's login");
    conn.execute(format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})").as_str())
        .await
        .expect("release the template lock");
    conn.close().await.ok();
    template
}

/// Builds under a scratch name and renames at the end, so a crash half way never leaves a
/// template that looks finished.
async fn build_template(conn: &mut PgConnection, admin: &PgConnectOptions, template: &str) {
    let scratch = format!("{template}_building");
    conn.execute(format!(r#"DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)"#).as_str())
        .await
        .expect("drop a stale half-built template");
    conn.execute(format!(r#"CREATE DATABASE "{scratch}""#).as_str())
        .await
        .expect("create the template database");
    {
        let mut scratch_conn = admin
            .clone()
            .database(&scratch)
            .connect()
            .await
            .expect("connect to the template database");
        MIGRATOR
            .run(&mut scratch_conn)
            .await
            .expect("migrate the template database");
        scratch_conn.close().await.ok();
    }
    conn.execute(format!(r#"ALTER DATABASE "{scratch}" RENAME TO "{template}""#).as_str())
        .await
        .expect("publish the template");
}
