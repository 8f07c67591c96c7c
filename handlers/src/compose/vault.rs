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
    use casebook_adapters::aws::shared_config;
    use casebook_adapters::postgres::{begin_for_tenants, Access};
    use casebook_tests::{DbRole, TestDb};
    use casebook_vault::root::KmsRootKey;
    use uuid::Uuid;

    use super::*;

    /// A fresh symmetric key in the emulator.
    async fn kms_key(kms: &aws_sdk_kms::Client) -> String {
        kms.create_key()
            .description(format!("casebook-test/compose-{}", Uuid::new_v4().simple()))
            .send()
            .await
            .expect("the emulator creates a key")
            .key_metadata
            .expect("the key's metadata")
            .key_id
    }

    /// Deployed (`CASEBOOK_VAULT_KMS_KEY`), the process's vault has KMS wrap each tenant's key:
    /// another process on the same KMS key (nothing cached) opens what it sealed, and one on
    /// another KMS key cannot.
    #[tokio::test]
    async fn a_kms_key_installs_a_vault_whose_tenant_keys_only_that_kms_key_opens() {
        let aws = shared_config().await;
        let kms = aws_sdk_kms::Client::new(&aws);
        let key_id = kms_key(&kms).await;
        install_from(&VaultKeySource::Kms(key_id.clone()), &aws).expect("installed");
        let vault = installed().expect("the process's vault");

        let db = TestDb::new().await;
        let pool = db.pool(DbRole::App, 1).await;
        let tenant = Uuid::new_v4();
        let mut tx = begin_for_tenants(&pool, Access::ReadWrite, &[tenant])
            .await
            .expect("a transaction");
        let sealed = vault
            .sealing_key(&mut tx, tenant, "customer-1")
            .await
            .expect("a subject key, made under a new tenant key")
            .seal(b"context", b"Ann Smith")
            .expect("sealed");
        tx.commit().await.expect("committed");

        let opened_by = |root_key: String| {
            let vault = Vault::new(Arc::new(KmsRootKey::new(kms.clone(), root_key)));
            let pool = pool.clone();
            let sealed = sealed.clone();
            async move {
                let mut tx = begin_for_tenants(&pool, Access::ReadOnly, &[tenant])
                    .await
                    .expect("a transaction");
                let keys = vault.keys_for(&mut tx, tenant, &["customer-1"]).await?;
                let key = keys.get("customer-1")?.expect("a live key");
                key.open(b"context", &sealed)
                    .map(|plaintext| plaintext.to_vec())
            }
        };
        assert_eq!(
            opened_by(key_id).await.expect("opens"),
            b"Ann Smith".to_vec()
        );
        assert!(opened_by(kms_key(&kms).await).await.is_err());
    }
}
