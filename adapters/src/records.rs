//! The request path's records beside the events, in Postgres: upload grants, address claims
//! and sign-up attempts ([`PgRequestRecords`], the application's `RequestRecords`), and the
//! grants as an erasure's purge finds and revokes them (`UploadGrants`).
//!
//! Each statement runs in a transaction scoped to its tenant, as the application role:
//! row-level security keeps a tenant's grants its own. An address claim goes through
//! `casebook_claim_email` (a SECURITY DEFINER function), because checking that *no other*
//! tenant holds an address is exactly what row-level security hides from the role.

use std::collections::BTreeSet;

use async_trait::async_trait;
use casebook_application::ports::{RecordError, RequestRecords, SignUpAttemptRecord, UploadGrants};
use casebook_domain::actor::Actor;
use casebook_domain::ids::{TenantId, UserId};
use casebook_domain::values::{Email, UploadKey};
use sqlx::PgPool;

use crate::postgres::{begin_for_tenants, Access};

/// [`RequestRecords`] over the request path's pool (as `casebook_app`).
#[derive(Clone)]
pub struct PgRequestRecords {
    pool: PgPool,
}

impl PgRequestRecords {
    /// Records kept through `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn record_error(err: sqlx::Error) -> RecordError {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            RecordError::Unavailable(Box::new(err))
        }
        other => RecordError::Unexpected(Box::new(other)),
    }
}

fn vault_error(err: casebook_vault::VaultError) -> RecordError {
    match err {
        casebook_vault::VaultError::Database(err) => record_error(err),
        other => RecordError::Unexpected(Box::new(other)),
    }
}

#[async_trait]
impl RequestRecords for PgRequestRecords {
    async fn grant_upload(&self, actor: &Actor, key: &UploadKey) -> Result<(), RecordError> {
        let mut tx =
            begin_for_tenants(&self.pool, Access::ReadWrite, &[*actor.tenant_id.as_uuid()])
                .await
                .map_err(record_error)?;
        // An erased customer (or one of an erased tenant) is granted nothing: the key ends in
        // their file's name.
        let erased: bool = sqlx::query_scalar(
            "WITH erased AS (
                 SELECT EXISTS (SELECT 1 FROM vault.subject_keys
                                 WHERE tenant_id = $1 AND subject_id = $3
                                   AND erased_at IS NOT NULL)
                     OR EXISTS (SELECT 1 FROM vault.erased_tenants WHERE tenant_id = $1) AS yes
             ), granted AS (
                 INSERT INTO upload_grants (tenant_id, key, issued_to)
                 SELECT $1, $2, $3 FROM erased WHERE NOT yes
                 ON CONFLICT (tenant_id, key) DO NOTHING
             )
             SELECT yes FROM erased",
        )
        .bind(actor.tenant_id.as_uuid())
        .bind(key.as_str())
        .bind(actor.user_id.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(record_error)?;
        if erased {
            return Err(RecordError::Erased);
        }
        tx.commit().await.map_err(record_error)
    }

    async fn uploads_issued_to(
        &self,
        actor: &Actor,
        keys: &[UploadKey],
    ) -> Result<BTreeSet<UploadKey>, RecordError> {
        if keys.is_empty() {
            return Ok(BTreeSet::new());
        }
        let names: Vec<&str> = keys.iter().map(UploadKey::as_str).collect();
        let mut tx = begin_for_tenants(&self.pool, Access::ReadOnly, &[*actor.tenant_id.as_uuid()])
            .await
            .map_err(record_error)?;
        let issued: Vec<String> = sqlx::query_scalar(
            "SELECT key FROM upload_grants
              WHERE tenant_id = $1 AND issued_to = $2 AND key = ANY($3)",
        )
        .bind(actor.tenant_id.as_uuid())
        .bind(actor.user_id.as_str())
        .bind(names)
        .fetch_all(&mut *tx)
        .await
        .map_err(record_error)?;
        tx.commit().await.map_err(record_error)?;
        Ok(keys
            .iter()
            .filter(|key| issued.iter().any(|issued| issued == key.as_str()))
            .cloned()
            .collect())
    }

    async fn claim_email(&self, tenant: TenantId, email: &Email) -> Result<bool, RecordError> {
        let tenant = *tenant.as_uuid();
        let mut tx = begin_for_tenants(&self.pool, Access::ReadWrite, &[tenant])
            .await
            .map_err(record_error)?;
        let claimed: bool = sqlx::query_scalar("SELECT casebook_claim_email($1, $2)")
            .bind(email.as_str())
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await
            .map_err(record_error)?;
        tx.commit().await.map_err(record_error)?;
        Ok(claimed)
    }

    async fn record_sign_up_attempt(
        &self,
        attempt: &SignUpAttemptRecord,
    ) -> Result<(), RecordError> {
        let mut tx = begin_for_tenants(&self.pool, Access::ReadWrite, &[])
            .await
            .map_err(record_error)?;
        sqlx::query(
            "INSERT INTO signup_attempts (source, email_sha256, outcome, tenant_id, request_id)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&attempt.source)
        .bind(&attempt.email_sha256)
        .bind(&attempt.outcome)
        .bind(attempt.tenant_id.map(|tenant| *tenant.as_uuid()))
        .bind(&attempt.request_id)
        .execute(&mut *tx)
        .await
        .map_err(record_error)?;
        tx.commit().await.map_err(record_error)
    }

    async fn destroy_subject_key(
        &self,
        tenant: TenantId,
        subject: &UserId,
    ) -> Result<bool, RecordError> {
        let tenant = *tenant.as_uuid();
        let mut tx = begin_for_tenants(&self.pool, Access::ReadWrite, &[tenant])
            .await
            .map_err(record_error)?;
        let destroyed = casebook_vault::keys::erase_subject(&mut tx, tenant, subject.as_str())
            .await
            .map_err(vault_error)?;
        tx.commit().await.map_err(record_error)?;
        Ok(destroyed)
    }

    async fn destroy_tenant_keys(&self, tenant: TenantId) -> Result<bool, RecordError> {
        let tenant = *tenant.as_uuid();
        let mut tx = begin_for_tenants(&self.pool, Access::ReadWrite, &[tenant])
            .await
            .map_err(record_error)?;
        let destroyed = casebook_vault::keys::erase_tenant(&mut tx, tenant)
            .await
            .map_err(vault_error)?;
        tx.commit().await.map_err(record_error)?;
        Ok(destroyed)
    }
}

#[async_trait]
impl UploadGrants for PgRequestRecords {
    async fn granted_to(
        &self,
        tenant: TenantId,
        subject: Option<&UserId>,
    ) -> Result<Vec<UploadKey>, RecordError> {
        let mut tx = begin_for_tenants(&self.pool, Access::ReadOnly, &[*tenant.as_uuid()])
            .await
            .map_err(record_error)?;
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT key FROM upload_grants
              WHERE tenant_id = $1 AND ($2::text IS NULL OR issued_to = $2) ORDER BY key",
        )
        .bind(tenant.as_uuid())
        .bind(subject.map(UserId::as_str))
        .fetch_all(&mut *tx)
        .await
        .map_err(record_error)?;
        tx.commit().await.map_err(record_error)?;
        keys.into_iter()
            .map(|key| UploadKey::parse(key).map_err(|err| RecordError::Unexpected(err.into())))
            .collect()
    }

    async fn revoke(&self, tenant: TenantId, keys: &[UploadKey]) -> Result<(), RecordError> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<&str> = keys.iter().map(UploadKey::as_str).collect();
        let mut tx = begin_for_tenants(&self.pool, Access::ReadWrite, &[*tenant.as_uuid()])
            .await
            .map_err(record_error)?;
        sqlx::query("DELETE FROM upload_grants WHERE tenant_id = $1 AND key = ANY($2)")
            .bind(tenant.as_uuid())
            .bind(keys)
            .execute(&mut *tx)
            .await
            .map_err(record_error)?;
        tx.commit().await.map_err(record_error)
    }
}
