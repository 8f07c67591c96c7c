//! The key tables (schema `vault`): each tenant's keys, wrapped by the root key, and each data
//! subject's key, wrapped by its tenant's. Erasing a subject keeps a tombstone in place of
//! its key, so nothing seals under a new key for them afterwards.
//!
//! Every function runs on the caller's connection, in the caller's role and tenant scope
//! (row-level security decides what it sees), so a command reads its keys in its own
//! transaction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::cipher::Key;
use crate::root::RootKey;
use crate::VaultError;

/// The keys of the subjects a batch of payloads names: `None` for one erased.
#[derive(Debug, Default)]
pub struct SubjectKeys(HashMap<String, Option<Key>>);

impl SubjectKeys {
    /// The key of `subject`, `Ok(None)` if erased; an error if it was not fetched.
    pub fn get(&self, subject: &str) -> Result<Option<&Key>, VaultError> {
        self.0
            .get(subject)
            .map(Option::as_ref)
            .ok_or_else(|| VaultError::Damaged(format!("no key was fetched for {subject:?}")))
    }

    /// Takes `subject`'s entry out: `None` if it was not fetched, `Some(None)` if erased.
    pub fn take(&mut self, subject: &str) -> Option<Option<Key>> {
        self.0.remove(subject)
    }

    /// Keys holding only `subject`'s.
    pub fn single(subject: &str, key: Key) -> Self {
        Self(HashMap::from([(subject.to_owned(), Some(key))]))
    }

    #[cfg(test)]
    pub(crate) fn erased(subject: &str) -> Self {
        Self(HashMap::from([(subject.to_owned(), None)]))
    }
}

/// A subject's key as the key tables hold it: wrapped by its tenant's key, which the root key
/// wraps; no key when the subject is erased.
#[derive(Debug)]
pub struct WrappedSubjectKey {
    subject: String,
    wrapped: Option<Vec<u8>>,
    tenant_key_version: Option<i32>,
    tenant_wrapped: Option<Vec<u8>>,
}

impl WrappedSubjectKey {
    /// The key a row of [`subject_keys_query`] holds.
    pub fn from_row(row: &PgRow) -> Result<Self, VaultError> {
        Ok(Self {
            subject: row.try_get("subject_id")?,
            wrapped: row.try_get("wrapped")?,
            tenant_key_version: row.try_get("tenant_key_version")?,
            tenant_wrapped: row.try_get("tenant_wrapped")?,
        })
    }
}

/// The statement reading the stored keys of the subjects whose ids satisfy `subject_id
/// {subjects}` (e.g. `= ANY($2)`, or `IN (SELECT …)`), in the tenant bound at
/// `$tenant_param`; [`WrappedSubjectKey::from_row`] reads its rows. Another statement may
/// embed it, so that a stream's keys come back with its events in one round trip.
pub fn subject_keys_query(tenant_param: usize, subjects: &str) -> String {
    format!(
        "SELECT s.subject_id, s.wrapped, s.tenant_key_version, t.wrapped AS tenant_wrapped
           FROM vault.subject_keys s
           LEFT JOIN vault.tenant_keys t
             ON t.tenant_id = s.tenant_id AND t.version = s.tenant_key_version
          WHERE s.tenant_id = ${tenant_param} AND s.subject_id {subjects}"
    )
}

/// The root key and the tenant keys it unwrapped.
///
/// Only tenant keys are kept in memory: a data key lives as long as the call that fetched it,
/// so once a subject's row is a tombstone no process can open their values. A tenant key kept
/// elsewhere opens nothing without the subject keys' rows.
pub struct Vault {
    root: Arc<dyn RootKey>,
    /// Each unwrapped tenant key with the wrapped bytes it came from: a key made in a
    /// transaction that rolled back may come back under the same version with other bytes.
    tenant_keys: Mutex<HashMap<(Uuid, i32), UnwrappedTenantKey>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").finish_non_exhaustive()
    }
}

/// A tenant key and the wrapped bytes it was unwrapped from.
type UnwrappedTenantKey = (Vec<u8>, Arc<Key>);

fn subject_context(tenant: Uuid, subject: &str) -> Vec<u8> {
    format!("casebook/subject-key/v1/{tenant}/{subject}").into_bytes()
}

impl Vault {
    /// A vault whose tenant keys `root` wraps.
    pub fn new(root: Arc<dyn RootKey>) -> Self {
        Self {
            root,
            tenant_keys: Mutex::new(HashMap::new()),
        }
    }

    /// `subject`'s data key, made on first use. [`VaultError::Erased`] once the subject is.
    pub async fn sealing_key(
        &self,
        conn: &mut PgConnection,
        tenant: Uuid,
        subject: &str,
    ) -> Result<Key, VaultError> {
        let mut keys = self.keys_for(conn, tenant, &[subject]).await?;
        match keys.0.remove(subject) {
            Some(Some(key)) => return Ok(key),
            Some(None) => return Err(VaultError::Erased(subject.to_owned())),
            None => {}
        }
        let (version, tenant_key) = self.current_tenant_key(conn, tenant).await?;
        let material = Key::generate_material()?;
        let wrapped = tenant_key.seal(&subject_context(tenant, subject), &material)?;
        // Two first commands of one subject race here: one key wins, both use it.
        sqlx::query(
            "INSERT INTO vault.subject_keys (tenant_id, subject_id, tenant_key_version, wrapped)
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, subject_id) DO NOTHING",
        )
        .bind(tenant)
        .bind(subject)
        .bind(version)
        .bind(&wrapped)
        .execute(&mut *conn)
        .await?;
        match self
            .keys_for(conn, tenant, &[subject])
            .await?
            .0
            .remove(subject)
        {
            Some(Some(key)) => Ok(key),
            Some(None) => Err(VaultError::Erased(subject.to_owned())),
            None => Err(VaultError::Damaged(format!(
                "the key made for {subject:?} is not there"
            ))),
        }
    }

    /// The keys of `subjects` that have one: `None` for an erased subject, absent for one
    /// that never had a key.
    pub async fn keys_for(
        &self,
        conn: &mut PgConnection,
        tenant: Uuid,
        subjects: &[&str],
    ) -> Result<SubjectKeys, VaultError> {
        let rows = self.wrapped_keys(conn, tenant, subjects, false).await?;
        self.open_keys(tenant, rows).await
    }

    /// Unwraps keys read from the key tables (by [`subject_keys_query`] inside another
    /// statement): `None` for an erased subject.
    pub async fn open_keys(
        &self,
        tenant: Uuid,
        rows: Vec<WrappedSubjectKey>,
    ) -> Result<SubjectKeys, VaultError> {
        let mut keys = HashMap::with_capacity(rows.len());
        for row in rows {
            let key = self
                .material(tenant, &row)
                .await?
                .map(|m| Key::from_bytes(&m))
                .transpose()?;
            keys.insert(row.subject, key);
        }
        Ok(SubjectKeys(keys))
    }

    /// `subjects`' keys as stored, the rows locked for update if `lock`.
    async fn wrapped_keys(
        &self,
        conn: &mut PgConnection,
        tenant: Uuid,
        subjects: &[&str],
        lock: bool,
    ) -> Result<Vec<WrappedSubjectKey>, VaultError> {
        let statement = format!(
            "{}{}",
            subject_keys_query(1, "= ANY($2)"),
            if lock { " FOR UPDATE OF s" } else { "" }
        );
        sqlx::query(&statement)
            .bind(tenant)
            .bind(subjects)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(WrappedSubjectKey::from_row)
            .collect()
    }

    /// The unwrapped material of a stored subject key, `None` if erased.
    async fn material(
        &self,
        tenant: Uuid,
        row: &WrappedSubjectKey,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, VaultError> {
        let WrappedSubjectKey {
            subject,
            wrapped,
            tenant_key_version,
            tenant_wrapped,
        } = row;
        match (wrapped, tenant_key_version, tenant_wrapped) {
            (Some(wrapped), Some(version), Some(tenant_wrapped)) => {
                let tenant_key = self.tenant_key(tenant, *version, tenant_wrapped).await?;
                Ok(Some(
                    tenant_key.open(&subject_context(tenant, subject), wrapped)?,
                ))
            }
            (None, _, _) => Ok(None),
            // The foreign key keeps a live subject key's tenant key in place.
            (Some(_), _, _) => Err(VaultError::Damaged(format!(
                "the tenant key of {subject:?} is missing"
            ))),
        }
    }

    /// Makes a new tenant key, rewraps every live subject key under it and destroys the old
    /// ones; the sealed values never change. Returns the new version.
    pub async fn rotate_tenant_key(
        &self,
        conn: &mut PgConnection,
        tenant: Uuid,
    ) -> Result<i32, VaultError> {
        let (old_version, _) = self.current_tenant_key(conn, tenant).await?;
        let version = old_version + 1;
        let material = Key::generate_material()?;
        let wrapped = self.root.wrap(tenant, &material).await?;
        let new_key = Key::from_bytes(&material)?;
        sqlx::query(
            "INSERT INTO vault.tenant_keys (tenant_id, version, wrapped) VALUES ($1, $2, $3)",
        )
        .bind(tenant)
        .bind(version)
        .bind(&wrapped)
        .execute(&mut *conn)
        .await?;
        let subjects: Vec<String> = sqlx::query_scalar(
            "SELECT subject_id FROM vault.subject_keys
              WHERE tenant_id = $1 AND wrapped IS NOT NULL AND tenant_key_version < $2",
        )
        .bind(tenant)
        .bind(version)
        .fetch_all(&mut *conn)
        .await?;
        let refs: Vec<&str> = subjects.iter().map(String::as_str).collect();
        for row in self.wrapped_keys(conn, tenant, &refs, true).await? {
            // Erased since it was listed: nothing to rewrap.
            let Some(material) = self.material(tenant, &row).await? else {
                continue;
            };
            let subject = row.subject;
            let rewrapped = new_key.seal(&subject_context(tenant, &subject), &material)?;
            sqlx::query(
                "UPDATE vault.subject_keys SET wrapped = $3, tenant_key_version = $4
                  WHERE tenant_id = $1 AND subject_id = $2",
            )
            .bind(tenant)
            .bind(&subject)
            .bind(&rewrapped)
            .bind(version)
            .execute(&mut *conn)
            .await?;
        }
        sqlx::query("DELETE FROM vault.tenant_keys WHERE tenant_id = $1 AND version < $2")
            .bind(tenant)
            .bind(version)
            .execute(&mut *conn)
            .await?;
        self.forget_tenant_keys(tenant);
        Ok(version)
    }

    /// The tenant's newest key, made on first use.
    async fn current_tenant_key(
        &self,
        conn: &mut PgConnection,
        tenant: Uuid,
    ) -> Result<(i32, Arc<Key>), VaultError> {
        let newest = || {
            sqlx::query(
                "SELECT version, wrapped FROM vault.tenant_keys
                  WHERE tenant_id = $1 ORDER BY version DESC LIMIT 1",
            )
            .bind(tenant)
        };
        let row = match newest().fetch_optional(&mut *conn).await? {
            Some(row) => row,
            None => {
                let material = Key::generate_material()?;
                let wrapped = self.root.wrap(tenant, &material).await?;
                // An erased tenant gets no key again, so nothing of it is sealed anew.
                sqlx::query(
                    "INSERT INTO vault.tenant_keys (tenant_id, version, wrapped)
                     SELECT $1, 1, $2
                      WHERE NOT EXISTS (SELECT 1 FROM vault.erased_tenants WHERE tenant_id = $1)
                     ON CONFLICT DO NOTHING",
                )
                .bind(tenant)
                .bind(&wrapped)
                .execute(&mut *conn)
                .await?;
                newest()
                    .fetch_optional(&mut *conn)
                    .await?
                    .ok_or(VaultError::TenantErased(tenant))?
            }
        };
        let version: i32 = row.try_get("version")?;
        let wrapped: Vec<u8> = row.try_get("wrapped")?;
        Ok((version, self.tenant_key(tenant, version, &wrapped).await?))
    }

    async fn tenant_key(
        &self,
        tenant: Uuid,
        version: i32,
        wrapped: &[u8],
    ) -> Result<Arc<Key>, VaultError> {
        if let Some(key) = self.cached(tenant, version, wrapped) {
            return Ok(key);
        }
        let material = self.root.unwrap(tenant, wrapped).await?;
        let key = Arc::new(Key::from_bytes(&material)?);
        self.tenant_keys
            .lock()
            .expect("tenant key cache poisoned")
            .insert((tenant, version), (wrapped.to_vec(), key.clone()));
        Ok(key)
    }

    fn cached(&self, tenant: Uuid, version: i32, wrapped: &[u8]) -> Option<Arc<Key>> {
        self.tenant_keys
            .lock()
            .expect("tenant key cache poisoned")
            .get(&(tenant, version))
            .filter(|(cached_from, _)| cached_from.as_slice() == wrapped)
            .map(|(_, key)| key.clone())
    }

    fn forget_tenant_keys(&self, tenant: Uuid) {
        self.tenant_keys
            .lock()
            .expect("tenant key cache poisoned")
            .retain(|(cached, _), _| *cached != tenant);
    }
}

/// Destroys every data key of `tenant` and its tenant keys, and marks it so that no key is
/// made for it again; `false` if it already was. The caller's scope must hold the tenant (the
/// operator's command runs it as the request path does).
pub async fn erase_tenant(conn: &mut PgConnection, tenant: Uuid) -> Result<bool, VaultError> {
    Ok(sqlx::query_scalar("SELECT vault.erase_tenant($1)")
        .bind(tenant)
        .fetch_one(conn)
        .await?)
}

/// Destroys `subject`'s data key, leaving a tombstone; `false` if it already was. The caller's
/// scope must hold the tenant (the request path runs it for an admin of the tenant).
pub async fn erase_subject(
    conn: &mut PgConnection,
    tenant: Uuid,
    subject: &str,
) -> Result<bool, VaultError> {
    Ok(sqlx::query_scalar("SELECT vault.erase_subject($1, $2)")
        .bind(tenant)
        .bind(subject)
        .fetch_one(conn)
        .await?)
}
