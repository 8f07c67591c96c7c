//! The process's vault (decision 0027): the one root key every event store and log reader of
//! the process seals and opens with, installed once at start-up from `CASEBOOK_VAULT_KMS_KEY`
//! or `CASEBOOK_VAULT_KEY_FILE` ([`Composition::new`](super::Composition::new)). It is held process-wide, as the metrics
//! recorder is: one process has one root key, and the many places that build stores (the
//! service, the budgets, the diagnoser, the jobs, the subscriptions) need not carry it. It
//! keeps no data key, only the tenant keys it unwrapped (see [`Vault`]).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use casebook_adapters::aws::SdkConfig;
use casebook_vault::root::{KmsRootKey, LocalRootKey, RootKey};
use casebook_vault::{Vault, VaultError};

use crate::settings::VaultKeySource;

static VAULT: OnceLock<Arc<Vault>> = OnceLock::new();

/// Installs `vault` as the process's; a second install keeps the first.
pub fn install(vault: Arc<Vault>) {
    if VAULT.set(vault).is_err() {
        tracing::debug!("the process's vault was installed already");
    }
}

/// Installs the vault whose root key `key_file` holds.
pub fn install_from_file(key_file: &Path) -> Result<(), VaultError> {
    install_root(Arc::new(LocalRootKey::from_file(key_file)?));
    Ok(())
}

/// Installs the vault whose root key `source` names, a KMS key reached through `aws`.
pub fn install_from(source: &VaultKeySource, aws: &SdkConfig) -> Result<(), VaultError> {
    match source {
        VaultKeySource::File(key_file) => install_from_file(key_file),
        VaultKeySource::Kms(key_id) => {
            install_root(Arc::new(KmsRootKey::new(
                aws_sdk_kms::Client::new(aws),
                key_id.clone(),
            )));
            Ok(())
        }
    }
}

fn install_root(root: Arc<dyn RootKey>) {
    install(Arc::new(Vault::new(root)));
}

/// The process's vault; `None` stores personal fields in the clear.
pub fn installed() -> Option<Arc<Vault>> {
    VAULT.get().cloned()
}

#[cfg(test)]
mod tests {
    use aws_sdk_kms::primitives::Blob;
    use casebook_adapters::aws::shared_config;
    use casebook_adapters::postgres::{begin_for_tenants, Access};
    use casebook_tests::{DbRole, TestDb};
    use uuid::Uuid;

    use super::*;

    /// Deployed (`CASEBOOK_VAULT_KMS_KEY`), the process's vault has KMS wrap each tenant's key
    /// under that tenant's encryption context: KMS opens it for the tenant and for no other.
    #[tokio::test]
    async fn a_kms_key_installs_a_vault_whose_tenant_keys_kms_wraps_for_their_tenant_only() {
        let aws = shared_config().await;
        let kms = aws_sdk_kms::Client::new(&aws);
        let key_id = kms
            .create_key()
            .description(format!("casebook-test/compose-{}", Uuid::new_v4().simple()))
            .send()
            .await
            .expect("the emulator creates a key")
            .key_metadata
            .expect("the key's metadata")
            .key_id;
        install_from(&VaultKeySource::Kms(key_id), &aws).expect("installed");
        let vault = installed().expect("the process's vault");

        let db = TestDb::new().await;
        let pool = db.pool(DbRole::App, 1).await;
        let tenant = Uuid::new_v4();
        let mut tx = begin_for_tenants(&pool, Access::ReadWrite, &[tenant])
            .await
            .expect("a transaction");
        vault
            .sealing_key(&mut tx, tenant, "customer-1")
            .await
            .expect("a subject key, made under a new tenant key");
        let wrapped: Vec<u8> =
            sqlx::query_scalar("SELECT wrapped FROM vault.tenant_keys WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_one(&mut *tx)
                .await
                .expect("the tenant key");
        tx.commit().await.expect("committed");

        let decrypt = |context: Uuid| {
            kms.decrypt()
                .ciphertext_blob(Blob::new(wrapped.clone()))
                .encryption_context("casebook:tenant", context.to_string())
                .send()
        };
        let opened = decrypt(tenant).await.expect("KMS opens it for its tenant");
        assert_eq!(opened.plaintext.expect("the key").as_ref().len(), 32);
        assert!(decrypt(Uuid::new_v4()).await.is_err());
    }
}
