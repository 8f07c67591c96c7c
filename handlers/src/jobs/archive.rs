//! The nightly audit archive: per tenant, the audit rows after its last archive and recorded
//! before the start of the run's day, to `<tenant>/<yyyy>/<mm>/<dd>.jsonl` (the day before
//! the run) in the audit-archive bucket.
//!
//! The file holds one [`AuditRecord`] per line (its own serde form, hashes in hex) and ends
//! with a [`ChainHead`] line: the last row's `seq` and `hash`, which an auditor compares with
//! the live table (or the next file's first `prev_hash`). Each file is recorded in
//! `audit_archives` after it is written, so the next run starts after it; a crash between
//! the two rewrites the same file with the same rows.

use casebook_adapters::aws::s3::TenantBucket;
use casebook_adapters::postgres::{begin_for_tenants, Access};
use casebook_domain::ids::TenantId;
use casebook_projections::audit::chain::{AuditRecord, ChainHash};
use chrono::{DateTime, Datelike, Days, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::{push_line, tenants, JobError};

/// Rows read per round trip.
const PAGE: i64 = 1_000;

/// The last line of an archive file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The first row in the file.
    pub from_seq: i64,
    /// The last row in the file: the head of the chain it archives.
    pub seq: i64,
    /// That row's hash.
    pub hash: ChainHash,
}

/// One line of an archive file: a row, or the closing head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ArchiveLine {
    /// The head (the last line).
    Head {
        /// The head.
        chain_head: ChainHead,
    },
    /// An audit row.
    Record(Box<AuditRecord>),
}

/// One tenant's archive file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantArchive {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The object key.
    pub key: String,
    /// The file's head.
    pub head: ChainHead,
}

/// Archives every tenant's new rows recorded before the start of `now`'s day: the tenants
/// come from the log (`log`, a projector pool), each one's rows through `pool`.
pub async fn archive_all(
    pool: &PgPool,
    log: &PgPool,
    bucket: &TenantBucket,
    now: DateTime<Utc>,
) -> Result<Vec<TenantArchive>, JobError> {
    let mut archives = Vec::new();
    for tenant in tenants(log).await? {
        if let Some(archive) = archive_tenant(pool, bucket, tenant, now).await? {
            archives.push(archive);
        }
    }
    Ok(archives)
}

async fn archive_tenant(
    pool: &PgPool,
    bucket: &TenantBucket,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> Result<Option<TenantArchive>, JobError> {
    let cutoff = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    let day = now
        .date_naive()
        .checked_sub_days(Days::new(1))
        .expect("a day before any run");
    let scope = [*tenant.as_uuid()];
    let mut tx = begin_for_tenants(pool, Access::ReadOnly, &scope).await?;
    let last: Option<i64> =
        sqlx::query_scalar("SELECT max(through_seq) FROM audit_archives WHERE tenant_id = $1")
            .bind(tenant.as_uuid())
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    let rows = rows_before(pool, tenant, last.unwrap_or(0), cutoff).await?;
    let (Some(first), Some(head)) = (rows.first(), rows.last()) else {
        return Ok(None);
    };
    let head = ChainHead {
        tenant_id: tenant,
        from_seq: first.seq,
        seq: head.seq,
        hash: head.hash,
    };
    let key = TenantBucket::tenant_key(
        tenant,
        &format!(
            "{:04}/{:02}/{:02}.jsonl",
            day.year(),
            day.month(),
            day.day()
        ),
    )?;
    let mut body = Vec::new();
    for row in &rows {
        push_line(&mut body, row)?;
    }
    push_line(
        &mut body,
        &ArchiveLine::Head {
            chain_head: head.clone(),
        },
    )?;
    bucket
        .put(tenant, &key, body, "application/x-ndjson")
        .await?;
    let mut tx = begin_for_tenants(pool, Access::ReadWrite, &scope).await?;
    sqlx::query(
        "INSERT INTO audit_archives (tenant_id, from_seq, through_seq, head_hash, bucket, key)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant.as_uuid())
    .bind(head.from_seq)
    .bind(head.seq)
    .bind(head.hash.0.as_slice())
    .bind(bucket.name())
    .bind(&key)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(%tenant, %key, from_seq = head.from_seq, seq = head.seq, "audit rows archived");
    Ok(Some(TenantArchive {
        tenant_id: tenant,
        key,
        head,
    }))
}

/// `tenant`'s rows after `after_seq`, in chain order, up to the first one recorded at or
/// after `cutoff` (so a file is always a contiguous run of the chain).
async fn rows_before(
    pool: &PgPool,
    tenant: TenantId,
    mut after_seq: i64,
    cutoff: DateTime<Utc>,
) -> Result<Vec<AuditRecord>, JobError> {
    let mut rows = Vec::new();
    loop {
        let mut tx = begin_for_tenants(pool, Access::ReadOnly, &[*tenant.as_uuid()]).await?;
        let page = casebook_projections::audit::records(&mut tx, tenant, after_seq, PAGE).await?;
        tx.commit().await?;
        let full = page.len() as i64 == PAGE;
        for row in page {
            if row.recorded_at >= cutoff {
                return Ok(rows);
            }
            after_seq = row.seq;
            rows.push(row);
        }
        if !full {
            return Ok(rows);
        }
    }
}
