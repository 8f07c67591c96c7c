//! S3 buckets partitioned by tenant: every object key starts with `<tenant_id>/`.
//!
//! The prefix is checked before any AWS call, so a caller can neither read nor write (nor
//! get a presigned URL for) another tenant's object, whatever key it passes. Presigned
//! URLs let clients move large bodies straight to and from S3 without the API in the path.
//!
//! A [`TenantBucket`] of uploads is also the diagnosis worker's
//! [`AttachmentStore`]: it describes an attachment (HEAD) before reading at most a bounded
//! prefix of it (a ranged GET), so a binary or huge upload is never downloaded whole.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use casebook_domain::ids::TenantId;
use casebook_domain::ports::{AttachmentError, AttachmentInfo, AttachmentStore};
use casebook_domain::values::UploadKey;

use super::BoxError;

/// Why an S3 operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The key does not lie under the caller's `<tenant>/` prefix.
    #[error("key {key:?} is outside the tenant's prefix")]
    OutsideTenantPrefix {
        /// The refused key.
        key: String,
    },
    /// The key is malformed (empty part, `..`, `//`, leading `/`, control character).
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The refused key.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The AWS call failed (network, missing object, access, an invalid expiry).
    #[error("S3 {operation} failed")]
    Aws {
        /// The API operation.
        operation: &'static str,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
}

impl S3Error {
    fn aws(
        operation: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Aws {
            operation,
            source: Box::new(source),
        }
    }
}

/// A presigned HTTP request: send `method` to `url` with every one of `headers` before
/// `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedRequest {
    /// `PUT` or `GET`.
    pub method: String,
    /// The signed URL.
    pub url: String,
    /// Headers the signature covers (e.g. `content-type` for a PUT): the client must send them.
    pub headers: Vec<(String, String)>,
    /// When the signature stops being accepted.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// One bucket whose objects are partitioned by tenant: every key starts with `<tenant_id>/`.
#[derive(Debug, Clone)]
pub struct TenantBucket {
    client: Client,
    bucket: String,
}

impl TenantBucket {
    /// A client for `bucket`.
    pub fn new(config: &SdkConfig, bucket: impl Into<String>) -> Self {
        Self {
            client: client(config),
            bucket: bucket.into(),
        }
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.bucket
    }

    /// The full key `<tenant>/<relative>`; refuses empty parts, `..`, `//`, a leading `/` and
    /// control characters.
    pub fn tenant_key(tenant: TenantId, relative: &str) -> Result<String, S3Error> {
        let key = format!("{tenant}/{relative}");
        validate(&key)?;
        Ok(key)
    }

    /// A presigned PUT of exactly `size` bytes to `key` with `content_type`: both headers are
    /// signed, so S3 itself refuses a body of any other length (the uploader must send them).
    pub async fn presign_put(
        &self,
        tenant: TenantId,
        key: &str,
        content_type: &str,
        size: u32,
        expires_in: Duration,
    ) -> Result<PresignedRequest, S3Error> {
        check(tenant, key)?;
        let signed = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(i64::from(size))
            .presigned(presigning(expires_in)?)
            .await
            .map_err(|err| S3Error::aws("PutObject (presign)", err))?;
        Ok(presigned(&signed, expires_in))
    }

    /// A presigned GET of `key`.
    pub async fn presign_get(
        &self,
        tenant: TenantId,
        key: &str,
        expires_in: Duration,
    ) -> Result<PresignedRequest, S3Error> {
        check(tenant, key)?;
        let signed = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning(expires_in)?)
            .await
            .map_err(|err| S3Error::aws("GetObject (presign)", err))?;
        Ok(presigned(&signed, expires_in))
    }

    /// Writes `body` to `key`.
    pub async fn put(
        &self,
        tenant: TenantId,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), S3Error> {
        check(tenant, key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|err| S3Error::aws("PutObject", err))?;
        Ok(())
    }

    /// Deletes the object at `key`; a key that holds nothing is no error (S3 answers both
    /// alike), so a purge repeats safely.
    pub async fn delete(&self, tenant: TenantId, key: &str) -> Result<(), S3Error> {
        check(tenant, key)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| S3Error::aws("DeleteObject", err))?;
        Ok(())
    }

    /// Reads the object at `key`.
    pub async fn get(&self, tenant: TenantId, key: &str) -> Result<Vec<u8>, S3Error> {
        check(tenant, key)?;
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| S3Error::aws("GetObject", err))?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|err| S3Error::aws("GetObject (body)", err))?;
        Ok(bytes.into_bytes().to_vec())
    }
}

#[async_trait]
impl AttachmentStore for TenantBucket {
    async fn describe(
        &self,
        tenant: TenantId,
        key: &UploadKey,
    ) -> Result<AttachmentInfo, AttachmentError> {
        check_attachment(tenant, key)?;
        let head = match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
        {
            Ok(head) => head,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(HeadObjectError::is_not_found) =>
            {
                // A HEAD answer has no body, so a missing bucket (a misconfiguration, which
                // must not pass for a missing upload) is a 404 too: tell the two apart.
                self.client
                    .head_bucket()
                    .bucket(&self.bucket)
                    .send()
                    .await
                    .map_err(|err| {
                        AttachmentError::Unavailable(Box::new(S3Error::aws("HeadBucket", err)))
                    })?;
                return Err(AttachmentError::Missing { key: key.clone() });
            }
            Err(err) => {
                return Err(AttachmentError::Unavailable(Box::new(S3Error::aws(
                    "HeadObject",
                    err,
                ))))
            }
        };
        Ok(AttachmentInfo {
            content_type: head.content_type().map(str::to_owned),
            size: head
                .content_length()
                .and_then(|length| u64::try_from(length).ok())
                .unwrap_or(0),
        })
    }

    async fn read_prefix(
        &self,
        tenant: TenantId,
        key: &UploadKey,
        max_bytes: u64,
    ) -> Result<Vec<u8>, AttachmentError> {
        check_attachment(tenant, key)?;
        if max_bytes == 0 {
            return Ok(Vec::new());
        }
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .range(format!("bytes=0-{}", max_bytes - 1))
            .send()
            .await
            .map_err(|err| {
                if err
                    .as_service_error()
                    .is_some_and(GetObjectError::is_no_such_key)
                {
                    AttachmentError::Missing { key: key.clone() }
                } else {
                    AttachmentError::Unavailable(Box::new(S3Error::aws("GetObject", err)))
                }
            })?;
        // Read no further than asked even if a server ignored the range.
        let limit = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        let mut body = object.body;
        let mut bytes = Vec::new();
        while bytes.len() < limit {
            let Some(chunk) = body.try_next().await.map_err(|err| {
                AttachmentError::Unavailable(Box::new(S3Error::aws("GetObject (body)", err)))
            })?
            else {
                break;
            };
            let room = limit - bytes.len();
            bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        Ok(bytes)
    }
}

/// [`check`] for an attachment: a malformed key is as foreign as another tenant's.
fn check_attachment(tenant: TenantId, key: &UploadKey) -> Result<(), AttachmentError> {
    check(tenant, key.as_str()).map_err(|_| AttachmentError::OutsideTenant { key: key.clone() })
}

/// An S3 client. With an explicit endpoint (the local emulator) requests use path-style
/// addressing, since `<bucket>.127.0.0.1` does not resolve.
pub fn client(config: &SdkConfig) -> Client {
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some())
        .build();
    Client::from_conf(s3)
}

fn presigning(expires_in: Duration) -> Result<PresigningConfig, S3Error> {
    PresigningConfig::expires_in(expires_in).map_err(|err| S3Error::aws("presign", err))
}

fn presigned(
    signed: &aws_sdk_s3::presigning::PresignedRequest,
    expires_in: Duration,
) -> PresignedRequest {
    let expires_at = chrono::DateTime::<chrono::Utc>::from(SystemTime::now() + expires_in);
    PresignedRequest {
        method: signed.method().to_owned(),
        url: signed.uri().to_owned(),
        headers: signed
            .headers()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect(),
        expires_at,
    }
}

/// A well-formed key under `<tenant>/`, else the reason; no AWS call is made before this.
fn check(tenant: TenantId, key: &str) -> Result<(), S3Error> {
    validate(key)?;
    let prefix = format!("{tenant}/");
    if !key.starts_with(&prefix) {
        return Err(S3Error::OutsideTenantPrefix {
            key: key.to_owned(),
        });
    }
    Ok(())
}

fn validate(key: &str) -> Result<(), S3Error> {
    let invalid = |reason| {
        Err(S3Error::InvalidKey {
            key: key.to_owned(),
            reason,
        })
    };
    if key.starts_with('/') {
        return invalid("leading '/'");
    }
    if key.chars().any(char::is_control) {
        return invalid("control character");
    }
    // S3's own limit; longer keys fail at AWS anyway, later and less clearly.
    if key.len() > 1024 {
        return invalid("longer than 1024 bytes");
    }
    for part in key.split('/') {
        match part {
            "" => return invalid("empty path segment ('//' or trailing '/')"),
            "." | ".." => return invalid("'.' or '..' segment"),
            _ => {}
        }
    }
    Ok(())
}

/// The scheduled jobs' buckets (artifacts, audit archive), and the uploads an erasure purges.
#[async_trait]
impl casebook_application::jobs::TenantObjects for TenantBucket {
    fn bucket(&self) -> &str {
        self.name()
    }

    fn key(&self, tenant: TenantId, relative: &str) -> Result<String, BoxError> {
        Ok(Self::tenant_key(tenant, relative)?)
    }

    async fn put(
        &self,
        tenant: TenantId,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), BoxError> {
        Ok(TenantBucket::put(self, tenant, key, body, content_type).await?)
    }

    async fn delete(&self, tenant: TenantId, key: &str) -> Result<(), BoxError> {
        Ok(TenantBucket::delete(self, tenant, key).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_keys_join_the_tenant_and_a_clean_relative_path() {
        let tenant = TenantId::new();
        assert_eq!(
            TenantBucket::tenant_key(tenant, "uploads/a b.pdf").unwrap(),
            format!("{tenant}/uploads/a b.pdf")
        );
        for bad in [
            "",
            "/abs",
            "a//b",
            "a/",
            "../other/x",
            "a/../../x",
            "./x",
            "a\u{0}b",
            "a\nb",
        ] {
            assert!(
                matches!(
                    TenantBucket::tenant_key(tenant, bad),
                    Err(S3Error::InvalidKey { .. })
                ),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn a_key_under_another_tenant_or_no_tenant_is_outside_the_prefix() {
        let tenant = TenantId::new();
        let other = TenantId::new();
        assert!(check(tenant, &format!("{tenant}/x")).is_ok());
        for key in [
            format!("{other}/x"),
            "x".to_owned(),
            // The prefix match is on the whole segment, not a string prefix of the id.
            format!("{tenant}x/y"),
        ] {
            assert!(
                matches!(
                    check(tenant, &key),
                    Err(S3Error::OutsideTenantPrefix { .. })
                ),
                "{key:?} accepted"
            );
        }
        // A traversal back out of the prefix is malformed before it is foreign.
        assert!(matches!(
            check(tenant, &format!("{tenant}/../{other}/x")),
            Err(S3Error::InvalidKey { .. })
        ));
    }

    #[test]
    fn an_attachment_key_of_another_tenant_or_malformed_is_refused_as_foreign() {
        let tenant = TenantId::new();
        let other = TenantId::new();
        let key = |text: String| UploadKey::parse(text).unwrap();
        assert!(check_attachment(tenant, &key(format!("{tenant}/uploads/1/a.txt"))).is_ok());
        for foreign in [
            format!("{other}/uploads/1/a.txt"),
            format!("{tenant}/../{other}/uploads/1/a.txt"),
        ] {
            assert!(
                matches!(
                    check_attachment(tenant, &key(foreign.clone())),
                    Err(AttachmentError::OutsideTenant { .. })
                ),
                "{foreign:?} accepted"
            );
        }
    }
}
