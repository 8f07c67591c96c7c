//! Checkpoints: a tree's origin, size and root (C2SP `tlog-checkpoint`), signed as a C2SP
//! signed note with Ed25519.
//!
//! One key signs every tenant's trees; its name is the deployment's (say `casebook.example`)
//! and each tree's origin is that name, the log and the tenant:
//! `casebook.example/audit/<tenant>`. An auditor holds the key's verifier string
//! (`<name>+<id>+<public key>`), published by the operator, and accepts a checkpoint only if
//! that key signed it for the origin the auditor expects.

/// Whether `name` can name a key: not empty, no spaces, no `+` (C2SP signed-note).
pub use signed_note::is_key_name_valid as is_valid_key_name;
use signed_note::{Note, StandardSigner, StandardVerifier, VerifierList};
use tlog_tiles::{Checkpoint, Hash};

use casebook_domain::ids::TenantId;

/// Why a checkpoint was refused or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The key (private or verifier) does not parse.
    #[error("the log key does not parse: {0}")]
    Key(String),
    /// The note is not a well-formed signed checkpoint.
    #[error("not a well-formed checkpoint: {0}")]
    Malformed(String),
    /// No signature by the expected key verifies.
    #[error("the checkpoint is not signed by the log's key: {0}")]
    Signature(String),
    /// Signed, but for another log.
    #[error("the checkpoint is for {found}, not {expected}")]
    Origin {
        /// The origin the caller expects.
        expected: String,
        /// The origin the checkpoint names.
        found: String,
    },
}

/// Which of a tenant's chained logs a tree is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogName {
    /// `audit_log`: one row per event.
    Audit,
    /// `access_log`: one record per request.
    Access,
}

impl LogName {
    /// The name in origins and in the tables' `log` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audit => "audit",
            Self::Access => "access",
        }
    }
}

/// The origin of `tenant`'s tree of `log` under the key named `key_name`.
pub fn origin(key_name: &str, log: LogName, tenant: TenantId) -> String {
    format!("{key_name}/{}/{tenant}", log.as_str())
}

/// The key that signs checkpoints.
pub struct LogKey {
    signer: StandardSigner,
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogKey")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

impl LogKey {
    /// A new key named `name` (see [`is_valid_key_name`]): the private key and its verifier
    /// string.
    pub fn generate(name: &str) -> (String, String) {
        signed_note::generate_key(&mut rand::rngs::OsRng, name)
    }

    /// The key from its private form (`PRIVATE+KEY+<name>+<id>+<key>`).
    pub fn from_private(private: &str) -> Result<Self, CheckpointError> {
        StandardSigner::new(private.trim())
            .map(|signer| Self { signer })
            .map_err(|err| CheckpointError::Key(err.to_string()))
    }

    /// The key's name, which starts every origin it signs.
    pub fn name(&self) -> &str {
        signed_note::Signer::name(&self.signer)
    }

    /// The signed note of `tenant`'s tree of `log` at `size` with `root`.
    pub fn sign(
        &self,
        log: LogName,
        tenant: TenantId,
        size: u64,
        root: Hash,
    ) -> Result<String, CheckpointError> {
        let origin = origin(self.name(), log, tenant);
        let checkpoint = Checkpoint::new(&origin, size, root, "")
            .map_err(|err| CheckpointError::Malformed(err.to_string()))?;
        let mut note = Note::new(&checkpoint.to_bytes(), &[])
            .map_err(|err| CheckpointError::Malformed(err.to_string()))?;
        note.add_sigs(&[&self.signer])
            .map_err(|err| CheckpointError::Signature(err.to_string()))?;
        String::from_utf8(note.to_bytes())
            .map_err(|err| CheckpointError::Malformed(err.to_string()))
    }
}

/// A checkpoint whose signature verified.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedCheckpoint {
    /// The tree's origin.
    pub origin: String,
    /// How many leaves it has.
    pub size: u64,
    /// Its root.
    pub root: Hash,
}

/// Opens `note` with the verifier key `verifier` (`<name>+<id>+<key>`): refused unless that
/// key signed it and it names `expected_origin`.
pub fn open(
    note: &str,
    verifier: &str,
    expected_origin: &str,
) -> Result<SignedCheckpoint, CheckpointError> {
    let verifier = StandardVerifier::new(verifier.trim())
        .map_err(|err| CheckpointError::Key(err.to_string()))?;
    let note = Note::from_bytes(note.as_bytes())
        .map_err(|err| CheckpointError::Malformed(err.to_string()))?;
    note.verify(&VerifierList::new(vec![Box::new(verifier)]))
        .map_err(|err| CheckpointError::Signature(err.to_string()))?;
    let checkpoint = Checkpoint::from_bytes(note.text())
        .map_err(|err| CheckpointError::Malformed(err.to_string()))?;
    if checkpoint.origin() != expected_origin {
        return Err(CheckpointError::Origin {
            expected: expected_origin.to_owned(),
            found: checkpoint.origin().to_owned(),
        });
    }
    Ok(SignedCheckpoint {
        origin: checkpoint.origin().to_owned(),
        size: checkpoint.size(),
        root: *checkpoint.hash(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn tenant() -> TenantId {
        TenantId::from_uuid(Uuid::new_v4())
    }

    #[test]
    fn a_checkpoint_opens_with_its_key_for_its_origin_only() {
        let (private, verifier) = LogKey::generate("casebook.test");
        let key = LogKey::from_private(&private).unwrap();
        let tenant = tenant();
        let root = tlog_tiles::record_hash(b"a row");
        let note = key.sign(LogName::Audit, tenant, 7, root).unwrap();
        let origin = origin("casebook.test", LogName::Audit, tenant);

        let opened = open(&note, &verifier, &origin).unwrap();
        assert_eq!((opened.size, opened.root), (7, root));
        assert!(note.starts_with(&format!("{origin}\n7\n")), "{note}");

        let elsewhere = super::origin("casebook.test", LogName::Access, tenant);
        assert!(matches!(
            open(&note, &verifier, &elsewhere),
            Err(CheckpointError::Origin { .. })
        ));
        let (_, other_verifier) = LogKey::generate("casebook.test");
        assert!(matches!(
            open(&note, &other_verifier, &origin),
            Err(CheckpointError::Signature(_))
        ));
        let forged = note.replacen("\n7\n", "\n8\n", 1);
        assert!(matches!(
            open(&forged, &verifier, &origin),
            Err(CheckpointError::Signature(_))
        ));
    }
}
