//! The archives written of each tenant's chain (`audit_archives`), and the chain's rows as the
//! archive job writes them. Under the app role, `app.tenant_id` must be set to the tenant.

use casebook_application::jobs::{AuditRow, ChainHead};
use casebook_domain::ids::TenantId;
use sqlx::PgConnection;

use super::records;

/// The last row `tenant`'s archives hold.
pub async fn last_archived(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT max(through_seq) FROM audit_archives WHERE tenant_id = $1")
        .bind(tenant.as_uuid())
        .fetch_one(conn)
        .await
}

/// Records that `head`'s rows are archived in `bucket` under `key`.
pub async fn record_archive(
    conn: &mut PgConnection,
    head: &ChainHead,
    bucket: &str,
    key: &str,
) -> Result<(), sqlx::Error> {
    let hash: crate::audit::ChainHash = head
        .hash
        .parse()
        .map_err(|err| sqlx::Error::Decode(Box::new(err)))?;
    sqlx::query(
        "INSERT INTO audit_archives (tenant_id, from_seq, through_seq, head_hash, bucket, key)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(head.tenant_id.as_uuid())
    .bind(head.from_seq)
    .bind(head.seq)
    .bind(hash.0.as_slice())
    .bind(bucket)
    .bind(key)
    .execute(conn)
    .await
    .map(drop)
}

/// Up to `limit` of `tenant`'s rows after `after_seq`, as the archive writes them.
pub async fn rows_after(
    conn: &mut PgConnection,
    tenant: TenantId,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    records(conn, tenant, after_seq, limit)
        .await?
        .into_iter()
        .map(|record| {
            Ok(AuditRow {
                seq: record.seq,
                recorded_at: record.recorded_at,
                hash: record.hash.to_string(),
                record: serde_json::to_value(&record)
                    .map_err(|err| sqlx::Error::Decode(Box::new(err)))?,
            })
        })
        .collect()
}
