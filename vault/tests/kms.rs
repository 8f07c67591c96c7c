//! The root key in KMS (feature `kms`), against the AWS emulator: a tenant key wraps and
//! unwraps under the tenant's encryption context only, and a vault on it seals and opens
//! through the real key tables.

#![cfg(feature = "kms")]

use std::sync::Arc;

use aws_sdk_kms::Client;
use casebook_tests::{DbRole, TestDb};
use casebook_vault::cipher::{Key, KEY_LEN};
use casebook_vault::payload::{self, EventContext};
use casebook_vault::root::{KmsRootKey, RootKey};
use casebook_vault::{Vault, VaultError};
use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

/// The KMS client as the deployed processes build it (adapters' `aws::shared_config`): the
/// environment's endpoint (the emulator here) and credentials.
async fn kms() -> Client {
    Client::new(
        &aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await,
    )
}

/// A fresh symmetric key in the emulator, so no test shares one.
async fn root_key_id(client: &Client) -> String {
    client
        .create_key()
        .description(format!(
            "casebook-test/vault-root-{}",
            Uuid::new_v4().simple()
        ))
        .send()
        .await
        .expect("the emulator creates a key")
        .key_metadata
        .expect("the key's metadata")
        .key_id
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

#[tokio::test]
async fn a_tenant_key_unwraps_for_its_own_tenant_only() {
    // Given a KMS root key and a tenant key's material.
    let client = kms().await;
    let root = KmsRootKey::new(client.clone(), root_key_id(&client).await);
    let material = Key::generate_material().expect("material");
    let (tenant, other_tenant) = (Uuid::new_v4(), Uuid::new_v4());

    // When it is wrapped for the tenant.
    let wrapped = root.wrap(tenant, &material).await.expect("KMS encrypts");

    // Then the wrapped key is KMS's ciphertext, not the material...
    assert!(!wrapped
        .windows(KEY_LEN)
        .any(|window| window == &material[..]));
    // ...which unwraps to the material for that tenant...
    let unwrapped = root.unwrap(tenant, &wrapped).await.expect("KMS decrypts");
    assert_eq!(&unwrapped[..], &material[..]);
    // ...and for no other: the encryption context names the tenant, so one tenant's
    // wrapped key copied into another's rows does not open.
    let refused = root.unwrap(other_tenant, &wrapped).await;
    assert!(
        matches!(&refused, Err(VaultError::Root(message)) if message.contains("KMS Decrypt")),
        "{:?}",
        refused.map(|_| "unwrapped")
    );
}

#[tokio::test]
async fn a_vault_on_kms_opens_what_it_sealed_from_the_stored_keys() {
    // Given a vault whose root key is in KMS, and a database of its own.
    let db = TestDb::new().await;
    let app = db.pool(DbRole::App, 2).await;
    let client = kms().await;
    let key_id = root_key_id(&client).await;
    let vault = Vault::new(Arc::new(KmsRootKey::new(client.clone(), key_id.clone())));
    let tenant = Uuid::new_v4();
    let event = EventContext {
        tenant,
        aggregate_type: "TenantSession",
        event_type: "QuerySubmitted",
    };
    let original = json!({
        "type": "QuerySubmitted",
        "query_id": "q",
        "text": "May my landlord Ann Smith keep the deposit?",
        "submitted_by": "c-1",
    });

    // When the request path seals a query under its subject's first key (making the
    // tenant's key, wrapped by KMS, on the way).
    let mut tx = as_app(&app, tenant).await;
    let key = vault
        .sealing_key(&mut tx, tenant, "c-1")
        .await
        .expect("a sealing key");
    tx.commit().await.expect("commits");
    let mut sealed = original.clone();
    assert_eq!(
        payload::seal(&mut sealed, event, "c-1", &key).expect("seals"),
        1
    );
    assert!(!sealed.to_string().contains("Ann Smith"));

    // Then another process's vault (nothing cached: it unwraps the tenant key through KMS)
    // reads the subject's key and opens the query.
    let reader = Vault::new(Arc::new(KmsRootKey::new(client, key_id)));
    let mut tx = as_app(&app, tenant).await;
    let keys = reader
        .keys_for(&mut tx, tenant, &payload::subjects(&sealed, event))
        .await
        .expect("the keys");
    tx.commit().await.expect("commits");
    let mut opened = sealed.clone();
    assert!(!payload::open(&mut opened, event, &keys).expect("opens"));
    assert_eq!(opened, original);
}
