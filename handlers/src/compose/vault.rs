//! The process's vault (decision 0027): the one root key every event store and log reader of
//! the process seals and opens with, installed once at start-up from `CASEBOOK_VAULT_KEY_FILE`
//! ([`Composition::new`](super::Composition::new)). It is held process-wide, as the metrics
//! recorder is: one process has one root key, and the many places that build stores (the
//! service, the budgets, the diagnoser, the jobs, the subscriptions) need not carry it. It
//! keeps no data key, only the tenant keys it unwrapped (see [`Vault`]).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use casebook_vault::root::LocalRootKey;
use casebook_vault::{Vault, VaultError};

static VAULT: OnceLock<Arc<Vault>> = OnceLock::new();

/// Installs `vault` as the process's; a second install keeps the first.
pub fn install(vault: Arc<Vault>) {
    if VAULT.set(vault).is_err() {
        tracing::debug!("the process's vault was installed already");
    }
}

/// Installs the vault whose root key `key_file` holds.
pub fn install_from_file(key_file: &Path) -> Result<(), VaultError> {
    install(Arc::new(Vault::new(Arc::new(LocalRootKey::from_file(
        key_file,
    )?))));
    Ok(())
}

/// The process's vault; `None` stores personal fields in the clear.
pub fn installed() -> Option<Arc<Vault>> {
    VAULT.get().cloned()
}
