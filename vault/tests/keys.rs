//! The key tables against the real Postgres (decision 0027), in the roles that use them: the
//! request path (`casebook_app`) makes and reads its own tenant's keys, the projector erases
//! subjects and rotates tenant keys. Each test has a database of its own and a root key that
//! was never written anywhere.

use std::sync::Arc;

use casebook_tests::{DbRole, TestDb};
use casebook_vault::keys;
use casebook_vault::payload::{self, EventContext};
use casebook_vault::root::LocalRootKey;
use casebook_vault::{SubjectKeys, Vault, VaultError};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// The personal field of a `QuerySubmitted`: what must never be readable without its key.
const QUERY: &str = "May my landlord Ann Smith keep the deposit?";

fn query_submitted(tenant: Uuid) -> EventContext<'static> {
    EventContext {
        tenant,
        aggregate_type: "TenantSession",
        event_type: "QuerySubmitted",
    }
}

fn query_by(subject: &str) -> Value {
    json!({"type": "QuerySubmitted", "query_id": "q", "text": QUERY, "submitted_by": subject})
}

/// A request-path transaction: `casebook_app`, row-level security scoped to `tenant`.
async fn as_app(pool: &PgPool, tenant: Uuid) -> Transaction<'static, Postgres> {
    let mut tx = pool.begin().await.expect("a transaction");
    sqlx::query("SET LOCAL ROLE casebook_app")
        .execute(&mut *tx)
        .await
        .expect("the app's role");
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await
        .expect("the tenant scope");
    tx
}

/// A transaction as the projector, which sees every tenant and alone may erase and rotate.
async fn as_projector(conn: &mut PgConnection) -> Transaction<'_, Postgres> {
    let mut tx = conn.begin().await.expect("a transaction");
    sqlx::query("SET LOCAL ROLE casebook_projector")
        .execute(&mut *tx)
        .await
        .expect("the projector's role");
    tx
}

/// A subject's row as stored (read as the superuser, past row-level security).
#[derive(Debug, Clone, PartialEq, Eq)]
struct SubjectRow {
    tenant_key_version: Option<i32>,
    wrapped: Option<Vec<u8>>,
    erased_at: Option<String>,
}

/// The SQLSTATE of a refused statement.
fn sqlstate(err: &sqlx::Error) -> Option<String> {
    err.as_database_error()
        .and_then(|db| db.code())
        .map(|code| code.into_owned())
}

const INSUFFICIENT_PRIVILEGE: &str = "42501";

struct Scene {
    db: TestDb,
    app: PgPool,
    root: Arc<LocalRootKey>,
    vault: Vault,
}

impl Scene {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let app = db.pool(DbRole::App, 4).await;
        let root = Arc::new(LocalRootKey::generate().expect("a root key"));
        Self {
            vault: Vault::new(root.clone()),
            db,
            app,
            root,
        }
    }

    /// Another process's vault: same root key, nothing cached.
    fn fresh_vault(&self) -> Vault {
        Vault::new(self.root.clone())
    }

    /// A `QuerySubmitted` by `subject`, sealed under their key as the request path would
    /// (making the key on first use), committed.
    async fn sealed_query(&self, tenant: Uuid, subject: &str) -> Value {
        let mut tx = as_app(&self.app, tenant).await;
        let key = self
            .vault
            .sealing_key(&mut tx, tenant, subject)
            .await
            .expect("a sealing key");
        tx.commit().await.expect("commits");
        let mut payload = query_by(subject);
        assert_eq!(
            payload::seal(&mut payload, query_submitted(tenant), subject, &key).expect("seals"),
            1
        );
        assert!(!payload.to_string().contains("Ann Smith"));
        payload
    }

    /// `payload` opened with the keys `vault` reads as the request path, and whether a field
    /// was redacted.
    async fn opened(&self, vault: &Vault, tenant: Uuid, sealed: &Value) -> (Value, bool) {
        let event = query_submitted(tenant);
        let subjects = payload::subjects(sealed, event);
        let mut tx = as_app(&self.app, tenant).await;
        let keys = vault
            .keys_for(&mut tx, tenant, &subjects)
            .await
            .expect("the keys");
        tx.commit().await.expect("commits");
        let mut payload = sealed.clone();
        let redacted = payload::open(&mut payload, event, &keys).expect("opens");
        (payload, redacted)
    }

    /// Erases as the request path does, for an admin of `tenant`.
    async fn erase(&self, tenant: Uuid, subject: &str) -> bool {
        let mut tx = as_app(&self.app, tenant).await;
        let erased = keys::erase_subject(&mut tx, tenant, subject)
            .await
            .expect("erases");
        tx.commit().await.expect("commits");
        erased
    }

    async fn row(&self, tenant: Uuid, subject: &str) -> SubjectRow {
        let mut conn = self.db.superuser().await;
        let (tenant_key_version, wrapped, erased_at) = sqlx::query_as(
            "SELECT tenant_key_version, wrapped, erased_at::text FROM vault.subject_keys
              WHERE tenant_id = $1 AND subject_id = $2",
        )
        .bind(tenant)
        .bind(subject)
        .fetch_one(&mut conn)
        .await
        .expect("the subject's row");
        SubjectRow {
            tenant_key_version,
            wrapped,
            erased_at,
        }
    }

    async fn subject_rows(&self, tenant: Uuid, subject: &str) -> i64 {
        let mut conn = self.db.superuser().await;
        sqlx::query_scalar(
            "SELECT count(*) FROM vault.subject_keys WHERE tenant_id = $1 AND subject_id = $2",
        )
        .bind(tenant)
        .bind(subject)
        .fetch_one(&mut conn)
        .await
        .expect("the count")
    }

    async fn tenant_key_versions(&self, tenant: Uuid) -> Vec<i32> {
        let mut conn = self.db.superuser().await;
        sqlx::query_scalar(
            "SELECT version FROM vault.tenant_keys WHERE tenant_id = $1 ORDER BY version",
        )
        .bind(tenant)
        .fetch_all(&mut conn)
        .await
        .expect("the tenant's keys")
    }
}

#[tokio::test]
async fn rotating_a_tenant_key_rewraps_every_live_subject_key_and_leaves_the_erased_erased() {
    // Given a tenant with two live subjects and an erased one, and another tenant with a
    // subject of the same name (the projector sees every tenant: rotation must not).
    let scene = Scene::new().await;
    let (tenant, other_tenant) = (Uuid::new_v4(), Uuid::new_v4());
    let kept = ["c-kept-1", "c-kept-2"];
    let mut sealed = Vec::new();
    for subject in kept {
        sealed.push(scene.sealed_query(tenant, subject).await);
    }
    let erased_query = scene.sealed_query(tenant, "c-erased").await;
    assert!(scene.erase(tenant, "c-erased").await);
    let other_query = scene.sealed_query(other_tenant, "c-kept-1").await;
    let mut before = Vec::new();
    for subject in kept {
        before.push(scene.row(tenant, subject).await);
    }
    let erased_before = scene.row(tenant, "c-erased").await;
    let other_before = scene.row(other_tenant, "c-kept-1").await;
    assert_eq!(scene.tenant_key_versions(tenant).await, [1]);

    // When the projector rotates the tenant's key.
    let mut conn = scene.db.superuser().await;
    let mut tx = as_projector(&mut conn).await;
    let version = scene
        .vault
        .rotate_tenant_key(&mut tx, tenant)
        .await
        .expect("rotates");
    tx.commit().await.expect("commits");

    // Then only the new tenant key is left, and every live subject key is wrapped under it:
    // new bytes, same key (the sealed values never change).
    assert_eq!(version, 2);
    assert_eq!(scene.tenant_key_versions(tenant).await, [2]);
    for (subject, before) in kept.into_iter().zip(&before) {
        let after = scene.row(tenant, subject).await;
        assert_eq!(after.tenant_key_version, Some(2), "{subject}");
        assert!(after.wrapped.is_some(), "{subject}");
        assert_ne!(after.wrapped, before.wrapped, "{subject} was not rewrapped");
        assert_eq!(after.erased_at, None, "{subject}");
    }
    // The tombstone is untouched: rotation gives no erased subject a key back.
    assert_eq!(scene.row(tenant, "c-erased").await, erased_before);
    // The other tenant's key and subject are not the rotated tenant's business.
    assert_eq!(scene.tenant_key_versions(other_tenant).await, [1]);
    assert_eq!(scene.row(other_tenant, "c-kept-1").await, other_before);

    // A vault with nothing cached (another process, after a restart) opens every value sealed
    // before the rotation from the stored rows alone; the erased subject's stays redacted.
    let fresh = scene.fresh_vault();
    for sealed in &sealed {
        assert_eq!(
            scene.opened(&fresh, tenant, sealed).await,
            (
                query_by(sealed["submitted_by"].as_str().expect("a subject")),
                false
            )
        );
    }
    let (erased, redacted) = scene.opened(&fresh, tenant, &erased_query).await;
    assert!(redacted);
    assert_eq!(erased["text"], "[erased]");
    assert_eq!(
        scene.opened(&fresh, other_tenant, &other_query).await,
        (query_by("c-kept-1"), false)
    );
    // So does the vault that rotated (it dropped the old key from its cache), and a subject
    // first seen after the rotation gets a key under the new tenant key.
    assert_eq!(
        scene.opened(&scene.vault, tenant, &sealed[0]).await,
        (query_by("c-kept-1"), false)
    );
    let new_query = scene.sealed_query(tenant, "c-new").await;
    assert_eq!(scene.row(tenant, "c-new").await.tenant_key_version, Some(2));
    assert_eq!(
        scene.opened(&fresh, tenant, &new_query).await,
        (query_by("c-new"), false)
    );
}

#[tokio::test]
async fn an_erased_subject_keeps_a_tombstone_and_never_gets_a_key_again() {
    // Given a subject with a key and a value sealed under it.
    let scene = Scene::new().await;
    let tenant = Uuid::new_v4();
    let sealed = scene.sealed_query(tenant, "c-1").await;

    // When the projector erases them.
    assert!(scene.erase(tenant, "c-1").await);

    // Then the request path reads a tombstone: the subject is known, their key is gone...
    let mut tx = as_app(&scene.app, tenant).await;
    let keys = scene
        .vault
        .keys_for(&mut tx, tenant, &["c-1"])
        .await
        .expect("the keys");
    assert!(matches!(keys.get("c-1"), Ok(None)), "{keys:?}");
    // ...and refuses to make them a new one, which would seal their data again.
    let refused = scene.vault.sealing_key(&mut tx, tenant, "c-1").await;
    assert!(
        matches!(&refused, Err(VaultError::Erased(subject)) if subject == "c-1"),
        "{refused:?}"
    );
    tx.rollback().await.expect("rolls back");
    // What was sealed opens as the redaction.
    let (opened, redacted) = scene.opened(&scene.vault, tenant, &sealed).await;
    assert!(redacted);
    assert_eq!(opened["text"], "[erased]");
    assert_eq!(opened["query_id"], "q");
    // The row holds no key at all, only the time of the erasure.
    let tombstone = scene.row(tenant, "c-1").await;
    assert_eq!(tombstone.wrapped, None);
    assert_eq!(tombstone.tenant_key_version, None);
    assert!(tombstone.erased_at.is_some());

    // And erasing again does nothing (the first erasure's time stands).
    assert!(!scene.erase(tenant, "c-1").await);
    assert_eq!(scene.row(tenant, "c-1").await, tombstone);
}

#[tokio::test]
async fn erasing_a_subject_who_never_had_a_key_forbids_one_later() {
    // Given a subject of whom nothing was ever sealed (an erasure can come first).
    let scene = Scene::new().await;
    let tenant = Uuid::new_v4();

    // When they are erased.
    assert!(scene.erase(tenant, "c-1").await);

    // Then a tombstone is left, and a first command of theirs gets no key.
    assert_eq!(scene.row(tenant, "c-1").await.wrapped, None);
    let mut tx = as_app(&scene.app, tenant).await;
    let refused = scene.vault.sealing_key(&mut tx, tenant, "c-1").await;
    assert!(matches!(refused, Err(VaultError::Erased(_))), "{refused:?}");
    assert!(!scene.erase(tenant, "c-1").await);
}

#[tokio::test]
async fn the_request_path_sees_only_its_tenants_keys_and_cannot_alter_or_destroy_any() {
    // Given a subject with a key in each of two tenants.
    let scene = Scene::new().await;
    let (tenant_a, tenant_b) = (Uuid::new_v4(), Uuid::new_v4());
    scene.sealed_query(tenant_a, "c-a").await;
    let sealed_b = scene.sealed_query(tenant_b, "c-b").await;

    // When the request path, scoped to tenant A, asks for tenant B's subject...
    let mut tx = as_app(&scene.app, tenant_a).await;
    let keys = scene
        .vault
        .keys_for(&mut tx, tenant_b, &["c-b"])
        .await
        .expect("a read, however empty");
    // Then it gets nothing: not even a tombstone (`Ok(None)`), the subject is simply absent.
    assert!(keys.get("c-b").is_err(), "{keys:?}");
    // Nor does a plain SELECT show B's rows, of either table.
    let visible: Vec<Uuid> =
        sqlx::query_scalar("SELECT DISTINCT tenant_id FROM vault.subject_keys")
            .fetch_all(&mut *tx)
            .await
            .expect("a select");
    assert_eq!(visible, [tenant_a]);
    let visible: Vec<Uuid> = sqlx::query_scalar("SELECT DISTINCT tenant_id FROM vault.tenant_keys")
        .fetch_all(&mut *tx)
        .await
        .expect("a select");
    assert_eq!(visible, [tenant_a]);
    tx.rollback().await.expect("rolls back");

    // Nor can it make keys for tenant B (row-level security refuses the tenant key's row).
    let mut tx = as_app(&scene.app, tenant_a).await;
    let refused = scene.vault.sealing_key(&mut tx, tenant_b, "c-new").await;
    assert!(
        matches!(refused, Err(VaultError::Database(_))),
        "{refused:?}"
    );
    tx.rollback().await.expect("rolls back");

    // And it may change no key, even its own tenant's: no UPDATE, no DELETE; it erases only
    // through `vault.erase_subject`, and only its own tenant's subjects.
    for statement in [
        "UPDATE vault.subject_keys SET wrapped = NULL, tenant_key_version = NULL, erased_at = now()",
        "DELETE FROM vault.subject_keys",
        "DELETE FROM vault.tenant_keys",
    ] {
        let mut tx = as_app(&scene.app, tenant_a).await;
        let refused = sqlx::query(statement)
            .execute(&mut *tx)
            .await
            .expect_err(statement);
        assert_eq!(
            sqlstate(&refused).as_deref(),
            Some(INSUFFICIENT_PRIVILEGE),
            "{statement}: {refused}"
        );
        tx.rollback().await.expect("rolls back");
    }
    let mut tx = as_app(&scene.app, tenant_a).await;
    let refused = keys::erase_subject(&mut tx, tenant_b, "c-b").await;
    assert!(
        matches!(&refused, Err(VaultError::Database(err))
            if sqlstate(err).as_deref() == Some(INSUFFICIENT_PRIVILEGE)),
        "{refused:?}"
    );
    tx.rollback().await.expect("rolls back");

    // Tenant B's key still opens B's value, in B's scope.
    assert_eq!(
        scene.opened(&scene.vault, tenant_b, &sealed_b).await,
        (query_by("c-b"), false)
    );
    assert_eq!(scene.row(tenant_a, "c-a").await.erased_at, None);
}

/// Waits, without a clock, until the backend `pid` is blocked on a lock or has finished its
/// transaction (`idle`): the one thing that lets a race be staged rather than hoped for.
async fn blocked_or_done(observer: &mut PgConnection, pid: i32) {
    loop {
        let (blocked, idle): (bool, bool) = sqlx::query_as(
            "SELECT cardinality(pg_blocking_pids(pid)) > 0, state = 'idle'
               FROM pg_stat_activity WHERE pid = $1",
        )
        .bind(pid)
        .fetch_one(&mut *observer)
        .await
        .expect("the backend's state");
        if blocked || idle {
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// Two processes (two vaults, two connections) make `subject`'s first key at once: the second
/// starts while the first's rows are uncommitted, so neither sees the other's; both must end
/// up with the one key that was stored.
async fn race_for_a_first_key(scene: &Scene, tenant: Uuid, subject: &str) {
    let (vault_one, vault_two) = (scene.fresh_vault(), scene.fresh_vault());
    let mut observer = scene.db.superuser().await;
    let event = query_submitted(tenant);

    let mut one = as_app(&scene.app, tenant).await;
    let mut two = as_app(&scene.app, tenant).await;
    let pid_two: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *two)
        .await
        .expect("a pid");
    // The first makes its key (and the tenant's, if the tenant has none) but has not
    // committed when the second starts.
    let key_one = vault_one
        .sealing_key(&mut one, tenant, subject)
        .await
        .expect("the first key");
    let (key_two, ()) = tokio::join!(
        async {
            let key = vault_two
                .sealing_key(&mut two, tenant, subject)
                .await
                .expect("the second key");
            two.commit().await.expect("the second commits");
            key
        },
        async {
            // The second's insert waits on the first's row; only then does the first commit.
            blocked_or_done(&mut observer, pid_two).await;
            one.commit().await.expect("the first commits");
        }
    );

    let mut sealed_one = query_by(subject);
    payload::seal(&mut sealed_one, event, subject, &key_one).expect("seals");
    let mut sealed_two = query_by(subject);
    payload::seal(&mut sealed_two, event, subject, &key_two).expect("seals");
    // Each key opens what the other sealed: they are one key.
    payload::open(
        &mut sealed_one,
        event,
        &SubjectKeys::single(subject, key_two),
    )
    .expect("the second key opens the first's value");
    payload::open(
        &mut sealed_two,
        event,
        &SubjectKeys::single(subject, key_one),
    )
    .expect("the first key opens the second's value");
    assert_eq!(sealed_one, query_by(subject));
    assert_eq!(sealed_two, query_by(subject));
    assert_eq!(scene.subject_rows(tenant, subject).await, 1);
}

#[tokio::test]
async fn two_first_sealing_keys_for_one_new_subject_end_with_one_key() {
    // Given a tenant with no keys at all: both calls race for the tenant key, then for the
    // subject's.
    let scene = Scene::new().await;
    let tenant = Uuid::new_v4();

    race_for_a_first_key(&scene, tenant, "c-1").await;
    assert_eq!(scene.tenant_key_versions(tenant).await, [1]);

    // Given a tenant key already there: they race for the subject's key alone.
    race_for_a_first_key(&scene, tenant, "c-2").await;
    assert_eq!(scene.tenant_key_versions(tenant).await, [1]);
}

// A key cached by a transaction that then rolled back must not shadow the different key later
// stored under the same version, or this process would wrap subject keys with a tenant key
// nobody else has.
#[tokio::test]
async fn a_tenant_key_made_in_a_rolled_back_transaction_is_not_used_afterwards() {
    // Given a tenant's first command, which made the tenant's key and then failed (an append
    // conflict, say): its transaction rolled back, taking the tenant key's row with it.
    let scene = Scene::new().await;
    let tenant = Uuid::new_v4();
    let mut tx = as_app(&scene.app, tenant).await;
    scene
        .vault
        .sealing_key(&mut tx, tenant, "c-1")
        .await
        .expect("a key, never committed");
    tx.rollback().await.expect("rolls back");
    assert_eq!(scene.tenant_key_versions(tenant).await, Vec::<i32>::new());

    // When the same process's next command makes the tenant's key again (a new one, stored
    // under the same version) and seals under a subject key wrapped by it.
    let sealed = scene.sealed_query(tenant, "c-2").await;

    // Then any other process opens it from the stored rows.
    let (opened, redacted) = scene.opened(&scene.fresh_vault(), tenant, &sealed).await;
    assert!(!redacted);
    assert_eq!(opened, query_by("c-2"));
}

// The rotation lists the live subject keys, then deletes the old tenant key; a subject key
// made in between (by a transaction that read the old key before the rotation committed) must
// not be left wrapped by a tenant key that no longer exists.
#[tokio::test]
async fn a_subject_key_made_while_the_tenant_key_rotates_survives_the_rotation() {
    // Given a tenant with a key, whose rotation has run but not yet committed.
    let scene = Scene::new().await;
    let tenant = Uuid::new_v4();
    scene.sealed_query(tenant, "c-1").await;
    let mut conn = scene.db.superuser().await;
    let mut rotation = as_projector(&mut conn).await;
    scene
        .vault
        .rotate_tenant_key(&mut rotation, tenant)
        .await
        .expect("rotates");

    // When a new subject's first command, which sees only the old tenant key, makes their
    // key, and the rotation commits once that command has either committed or is waiting on
    // the rotation (a fix may make it wait; the test must not hang then).
    let mut observer = scene.db.superuser().await;
    let mut command = as_app(&scene.app, tenant).await;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *command)
        .await
        .expect("a pid");
    let (made, ()) = tokio::join!(
        async {
            let key = scene.vault.sealing_key(&mut command, tenant, "c-2").await?;
            command.commit().await?;
            Ok::<_, VaultError>(key)
        },
        async {
            blocked_or_done(&mut observer, pid).await;
            rotation.commit().await.expect("the rotation commits");
        }
    );

    // Then either the command failed (nothing of the subject's was stored: its retry starts
    // afresh) or the key it made opens what was sealed under it, from the stored rows: it
    // was not left wrapped by a tenant key that no longer exists, which reads as an erasure.
    let key = match made {
        Ok(key) => key,
        Err(refused) => {
            assert_eq!(scene.subject_rows(tenant, "c-2").await, 0, "{refused}");
            let mut retry = as_app(&scene.app, tenant).await;
            let key = scene
                .vault
                .sealing_key(&mut retry, tenant, "c-2")
                .await
                .expect("the retry's key");
            retry.commit().await.expect("commits");
            key
        }
    };
    let mut sealed = query_by("c-2");
    payload::seal(&mut sealed, query_submitted(tenant), "c-2", &key).expect("seals");
    let (opened, redacted) = scene.opened(&scene.fresh_vault(), tenant, &sealed).await;
    assert!(!redacted, "the subject reads as erased: {opened}");
    assert_eq!(opened, query_by("c-2"));
    assert_eq!(scene.tenant_key_versions(tenant).await, [2]);
}

#[tokio::test]
async fn an_erased_tenant_loses_every_key_and_never_gets_one_again_while_another_keeps_its_own() {
    // Given two customers with sealed values in one tenant, and one in another.
    let scene = Scene::new().await;
    let (tenant, other) = (Uuid::new_v4(), Uuid::new_v4());
    let sealed = scene.sealed_query(tenant, "c-1").await;
    scene.sealed_query(tenant, "c-2").await;
    let kept = scene.sealed_query(other, "c-1").await;

    // When the operator erases the first tenant (as the request path's role does it).
    let erase = || async {
        let mut tx = as_app(&scene.app, tenant).await;
        let erased = keys::erase_tenant(&mut tx, tenant).await.expect("erases");
        tx.commit().await.expect("commits");
        erased
    };
    assert!(erase().await);

    // Then every subject of it is a tombstone and its tenant keys are gone...
    for subject in ["c-1", "c-2"] {
        assert_eq!(scene.row(tenant, subject).await.wrapped, None, "{subject}");
    }
    assert!(scene.tenant_key_versions(tenant).await.is_empty());
    let (opened, redacted) = scene.opened(&scene.fresh_vault(), tenant, &sealed).await;
    assert!(redacted);
    assert_eq!(opened["text"], "[erased]");
    // ...no key is made for a new subject of it, nor a new tenant key...
    let mut tx = as_app(&scene.app, tenant).await;
    let refused = scene.vault.sealing_key(&mut tx, tenant, "c-3").await;
    assert!(
        matches!(refused, Err(VaultError::TenantErased(t)) if t == tenant),
        "{refused:?}"
    );
    tx.rollback().await.expect("rolls back");
    assert!(scene.tenant_key_versions(tenant).await.is_empty());
    // ...a repeat does nothing, and the other tenant's values still open.
    assert!(!erase().await);
    let (opened, redacted) = scene.opened(&scene.fresh_vault(), other, &kept).await;
    assert!(!redacted);
    assert_ne!(opened["text"], "[erased]");
}
