//! The root key, which wraps each tenant's key: AWS KMS deployed (feature `kms`), a raw
//! AES-256-GCM key in a file locally and in tests.

use std::path::Path;

use async_trait::async_trait;
use base64::Engine as _;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::cipher::Key;
use crate::VaultError;

/// Wraps and unwraps tenant keys, each bound to its tenant (the encryption context).
#[async_trait]
pub trait RootKey: Send + Sync + 'static {
    /// Wraps a tenant key's material.
    async fn wrap(&self, tenant: Uuid, material: &[u8]) -> Result<Vec<u8>, VaultError>;

    /// Unwraps what [`Self::wrap`] wrapped for the same tenant.
    async fn unwrap(&self, tenant: Uuid, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError>;
}

/// The additional data binding a wrapped tenant key to its tenant.
fn tenant_context(tenant: Uuid) -> Vec<u8> {
    format!("casebook/tenant-key/v1/{tenant}").into_bytes()
}

/// A raw AES-256 key read from a file (its 32 bytes in standard base64), for running without
/// KMS: `infra/local/stack.sh` makes one.
pub struct LocalRootKey(Key);

impl LocalRootKey {
    /// Reads the key file.
    pub fn from_file(path: &Path) -> Result<Self, VaultError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|err| {
            VaultError::Root(format!(
                "cannot read the vault key {}: {err}",
                path.display()
            ))
        })?);
        let material = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|err| {
                    VaultError::Root(format!(
                        "the vault key {} is not base64: {err}",
                        path.display()
                    ))
                })?,
        );
        Ok(Self(Key::from_bytes(&material)?))
    }

    /// A fresh key, never written anywhere (for tests).
    pub fn generate() -> Result<Self, VaultError> {
        Ok(Self(Key::from_bytes(&Key::generate_material()?)?))
    }
}

#[async_trait]
impl RootKey for LocalRootKey {
    async fn wrap(&self, tenant: Uuid, material: &[u8]) -> Result<Vec<u8>, VaultError> {
        self.0.seal(&tenant_context(tenant), material)
    }

    async fn unwrap(&self, tenant: Uuid, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        self.0.open(&tenant_context(tenant), wrapped)
    }
}

/// A KMS key (symmetric, `ENCRYPT_DECRYPT`): each tenant key is encrypted under it with the
/// encryption context `{"casebook:tenant": <id>}`, so a key policy can pin a tenant's
/// decryptions and CloudTrail names the tenant of each.
#[cfg(feature = "kms")]
pub struct KmsRootKey {
    client: aws_sdk_kms::Client,
    key_id: String,
}

#[cfg(feature = "kms")]
impl KmsRootKey {
    /// The key `key_id` (an id, ARN or alias) through `client`.
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
        }
    }
}

#[cfg(feature = "kms")]
const TENANT_CONTEXT_KEY: &str = "casebook:tenant";

#[cfg(feature = "kms")]
#[async_trait]
impl RootKey for KmsRootKey {
    async fn wrap(&self, tenant: Uuid, material: &[u8]) -> Result<Vec<u8>, VaultError> {
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(aws_sdk_kms::primitives::Blob::new(material))
            .encryption_context(TENANT_CONTEXT_KEY, tenant.to_string())
            .send()
            .await
            .map_err(|err| {
                VaultError::Root(format!(
                    "KMS Encrypt: {}",
                    aws_sdk_kms::error::DisplayErrorContext(err)
                ))
            })?;
        out.ciphertext_blob
            .map(|blob| blob.into_inner())
            .ok_or_else(|| VaultError::Root("KMS Encrypt returned no ciphertext".to_owned()))
    }

    async fn unwrap(&self, tenant: Uuid, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(wrapped))
            .encryption_context(TENANT_CONTEXT_KEY, tenant.to_string())
            .send()
            .await
            .map_err(|err| {
                VaultError::Root(format!(
                    "KMS Decrypt: {}",
                    aws_sdk_kms::error::DisplayErrorContext(err)
                ))
            })?;
        out.plaintext
            .map(|blob| Zeroizing::new(blob.into_inner()))
            .ok_or_else(|| VaultError::Root("KMS Decrypt returned no plaintext".to_owned()))
    }
}
