//! The verifiable logs: per tenant, a Merkle tree over each hash-chained log's rows (the
//! audit trail, the access log), signed checkpoints of it, and the proofs an auditor checks
//! offline against them (decision 0026).
//!
//! - [`tree`]: the tree as C2SP tiles, appending and proving (pure);
//! - [`checkpoint`](mod@checkpoint): checkpoints as C2SP signed notes (pure);
//! - [`proof`]: what an auditor is handed and how it is checked offline (pure);
//! - here: the tables (`tlog_tiles`, `tlog_checkpoints`), the integrator, which appends each
//!   tenant's new rows and signs a checkpoint in one transaction, and the proofs read from them.
//!
//! Leaf `n` of a tenant's tree is the canonical bytes of its row with `seq` `n + 1`: the same
//! bytes the row's chain hash covers, which for the audit trail include the event's digest.

pub mod checkpoint;
pub mod proof;
pub mod tree;

use std::sync::Arc;

use casebook_application::jobs::TenantObjects;
use casebook_application::ports::BoxError;
use casebook_domain::ids::TenantId;
use sqlx::{PgConnection, PgPool, Row};
use tlog_tiles::Hash;
use uuid::Uuid;

pub use checkpoint::{LogKey, LogName, SignedCheckpoint};
pub use proof::{Consistency, Inclusion, ProofBundle};
pub use tree::{TileKey, Tiles, TreeError};

use crate::{access_log, audit};

/// Rows integrated per transaction: bounds a transaction's time and memory (about 64 bytes a
/// row in flight) when a tenant's whole history is integrated at once.
pub const INTEGRATION_BATCH: i64 = 10_000;

/// Why the verifiable log could not answer or grow.
#[derive(Debug, thiserror::Error)]
pub enum TlogError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The stored tiles or sizes do not make the tree they should.
    #[error("the stored tree is inconsistent: {0}")]
    Tree(#[from] TreeError),
    /// A checkpoint could not be signed.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// The rows to integrate skip a `seq`: the chain itself is broken.
    #[error("{log} row {found} of tenant {tenant} follows {expected_after}")]
    Gap {
        /// The log.
        log: &'static str,
        /// The tenant.
        tenant: TenantId,
        /// The `seq` the tree ends at.
        expected_after: i64,
        /// The `seq` found next.
        found: i64,
    },
    /// Asked about a row or size the tree does not have (yet).
    #[error("{field}: {message}")]
    OutOfRange {
        /// What the caller named: `seq` or `from`.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The stored tiles do not make the tree that was signed: they were altered or lost.
    #[error("the stored tree is damaged: {0}")]
    Damaged(String),
    /// A checkpoint could not be copied to the archive; the next pass tries again.
    #[error("archiving a checkpoint failed")]
    Archive(#[source] BoxError),
}

impl LogName {
    fn table(self) -> &'static str {
        match self {
            Self::Audit => "audit_log",
            Self::Access => "access_log",
        }
    }

    /// Both logs.
    pub const ALL: [LogName; 2] = [LogName::Audit, LogName::Access];
}

/// A checkpoint as stored.
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    /// The tree's size.
    pub size: u64,
    /// Its root.
    pub root: Hash,
    /// The signed note, as published.
    pub note: String,
}

/// `tenant`'s checkpoint of `log` signed at `size`, or its newest when `None`.
pub async fn checkpoint(
    conn: &mut PgConnection,
    log: LogName,
    tenant: TenantId,
    size: Option<u64>,
) -> Result<Option<StoredCheckpoint>, TlogError> {
    checkpoint_row(
        sqlx::query(
            "SELECT size, root, note FROM tlog_checkpoints
              WHERE log = $1 AND tenant_id = $2 AND ($3::bigint IS NULL OR size = $3)
              ORDER BY size DESC LIMIT 1",
        )
        .bind(log.as_str())
        .bind(tenant.as_uuid())
        .bind(size.map(|size| size as i64))
        .fetch_optional(conn)
        .await?,
    )
}

fn checkpoint_row(
    row: Option<sqlx::postgres::PgRow>,
) -> Result<Option<StoredCheckpoint>, TlogError> {
    let Some(row) = row else { return Ok(None) };
    let root: Vec<u8> = row.try_get("root")?;
    Ok(Some(StoredCheckpoint {
        size: row.try_get::<i64, _>("size")? as u64,
        root: Hash(
            root.as_slice()
                .try_into()
                .map_err(|_| TlogError::Damaged("a stored root is not 32 bytes".into()))?,
        ),
        note: row.try_get("note")?,
    }))
}

/// Runs `operation` over `tenant`'s tiles of `log`, reading from the database the tiles it
/// asks for until it has them all.
async fn with_tiles<T>(
    conn: &mut PgConnection,
    log: LogName,
    tenant: TenantId,
    tiles: &mut Tiles,
    operation: impl Fn(&Tiles) -> Result<T, TreeError>,
) -> Result<T, TlogError> {
    loop {
        match operation(tiles) {
            Err(TreeError::Missing(_)) => {
                let wanted = tiles.missing();
                let found = read_tiles(conn, log, tenant, &wanted, tiles).await?;
                if found < wanted.len() {
                    return Err(TlogError::Damaged(format!(
                        "{} of the tiles the tree needs are not stored",
                        wanted.len() - found
                    )));
                }
            }
            answer => return Ok(answer?),
        }
    }
}

/// Reads the tiles at `keys` into `tiles`; returns how many were stored.
///
/// Both coordinates are index conditions (`= ANY`), which may match a few tiles not asked
/// for (the levels × the indexes), dropped here: joined to the keys instead, the planner
/// flattened the join when the table had no statistics yet and read the tenant's every tile
/// (6 ms a proof at a million rows).
async fn read_tiles(
    conn: &mut PgConnection,
    log: LogName,
    tenant: TenantId,
    keys: &[TileKey],
    tiles: &mut Tiles,
) -> Result<usize, TlogError> {
    let levels: Vec<i16> = keys.iter().map(|(level, _)| i16::from(*level)).collect();
    let indexes: Vec<i64> = keys.iter().map(|(_, index)| *index as i64).collect();
    let rows = sqlx::query(
        "SELECT level, level_index, hashes FROM tlog_tiles
          WHERE log = $1 AND tenant_id = $2 AND level = ANY($3) AND level_index = ANY($4)",
    )
    .bind(log.as_str())
    .bind(tenant.as_uuid())
    .bind(&levels)
    .bind(&indexes)
    .fetch_all(conn)
    .await?;
    let mut found = 0;
    for row in &rows {
        let level: i16 = row.try_get("level")?;
        let index: i64 = row.try_get("level_index")?;
        let key = (level as u8, index as u64);
        if keys.contains(&key) {
            tiles.insert(key, row.try_get("hashes")?);
            found += 1;
        }
    }
    Ok(found)
}

/// Writes each of `changed` over the stored tile at its position.
async fn write_tiles(
    conn: &mut PgConnection,
    log: LogName,
    tenant: TenantId,
    changed: &[(TileKey, Vec<u8>)],
) -> Result<(), sqlx::Error> {
    let levels: Vec<i16> = changed.iter().map(|((l, _), _)| i16::from(*l)).collect();
    let indexes: Vec<i64> = changed.iter().map(|((_, n), _)| *n as i64).collect();
    let hashes: Vec<&[u8]> = changed.iter().map(|(_, data)| data.as_slice()).collect();
    sqlx::query(
        "INSERT INTO tlog_tiles (log, tenant_id, level, level_index, hashes)
         SELECT $1, $2, level, level_index, hashes
           FROM UNNEST($3::int2[], $4::int8[], $5::bytea[]) AS t(level, level_index, hashes)
         ON CONFLICT (log, tenant_id, level, level_index) DO UPDATE SET hashes = EXCLUDED.hashes",
    )
    .bind(log.as_str())
    .bind(tenant.as_uuid())
    .bind(&levels)
    .bind(&indexes)
    .bind(&hashes)
    .execute(conn)
    .await?;
    Ok(())
}

/// The leaves after `size`: each row's `seq` and canonical bytes, at most `limit`.
async fn rows_after(
    conn: &mut PgConnection,
    log: LogName,
    tenant: TenantId,
    size: u64,
    limit: i64,
) -> Result<Vec<(i64, Vec<u8>)>, sqlx::Error> {
    let after = size as i64;
    Ok(match log {
        LogName::Audit => audit::records(conn, tenant, after, limit)
            .await?
            .into_iter()
            .map(|row| (row.seq, row.canonical_bytes()))
            .collect(),
        LogName::Access => access_log::records(conn, tenant, after, limit)
            .await?
            .into_iter()
            .map(|row| (row.seq, row.canonical_bytes()))
            .collect(),
    })
}

/// What one integration signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integrated {
    /// The log.
    pub log: LogName,
    /// The tenant.
    pub tenant: TenantId,
    /// The tree's size before.
    pub from: u64,
    /// Its size now, which the new checkpoint signs.
    pub to: u64,
}

/// Appends each tenant's new rows to its trees and signs a checkpoint of each tree it grew.
/// Runs as the projector, any number at once: each tenant's tree grows under a transaction
/// lock of its own.
#[derive(Clone)]
pub struct Integrator {
    key: Arc<LogKey>,
    batch: i64,
    archive: Option<Arc<dyn TenantObjects>>,
}

impl std::fmt::Debug for Integrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Integrator")
            .field("key", &self.key)
            .field("batch", &self.batch)
            .field(
                "archive",
                &self.archive.as_ref().map(|archive| archive.bucket()),
            )
            .finish()
    }
}

impl Integrator {
    /// An integrator signing with `key`.
    pub fn new(key: Arc<LogKey>) -> Self {
        Self {
            key,
            batch: INTEGRATION_BATCH,
            archive: None,
        }
    }

    /// The same, copying every checkpoint it signs to `archive` (the audit-archive bucket,
    /// whose Object Lock keeps each copy for its retention whatever happens to the database).
    pub fn with_archive(self, archive: Arc<dyn TenantObjects>) -> Self {
        Self {
            archive: Some(archive),
            ..self
        }
    }

    /// The same, integrating at most `batch` rows per transaction.
    pub fn with_batch(self, batch: i64) -> Self {
        Self { batch, ..self }
    }

    /// Integrates every tenant's rows of both logs that no checkpoint covers yet, then
    /// archives the checkpoints not archived yet (those just signed, and any a failed pass
    /// left).
    pub async fn integrate_all(&self, pool: &PgPool) -> Result<Vec<Integrated>, TlogError> {
        let mut integrated = Vec::new();
        for log in LogName::ALL {
            let mut conn = pool.acquire().await?;
            let behind = tenants_behind(&mut conn, log).await?;
            drop(conn);
            for tenant in behind {
                while let Some(step) = self.integrate(pool, log, tenant).await? {
                    integrated.push(step);
                }
            }
        }
        self.archive_pending(pool).await?;
        Ok(integrated)
    }

    /// Copies each checkpoint not archived yet to the archive, oldest first, as
    /// `<tenant>/checkpoints/<log>/<size, 20 digits>.note`, and records where; returns how
    /// many. A crash between the copy and the record copies it again, to the same key.
    pub async fn archive_pending(&self, pool: &PgPool) -> Result<usize, TlogError> {
        let Some(archive) = &self.archive else {
            return Ok(0);
        };
        let pending: Vec<(String, Uuid, i64, String)> = sqlx::query_as(
            "SELECT log, tenant_id, size, note FROM tlog_checkpoints
              WHERE archived_key IS NULL ORDER BY signed_at LIMIT 1000",
        )
        .fetch_all(pool)
        .await?;
        for (log, tenant, size, note) in &pending {
            let tenant_id = TenantId::from_uuid(*tenant);
            let key = archive
                .key(tenant_id, &format!("checkpoints/{log}/{size:020}.note"))
                .map_err(TlogError::Archive)?;
            archive
                .put(
                    tenant_id,
                    &key,
                    note.clone().into_bytes(),
                    "text/plain; charset=utf-8",
                )
                .await
                .map_err(TlogError::Archive)?;
            sqlx::query(
                "UPDATE tlog_checkpoints SET archived_key = $4
                  WHERE log = $1 AND tenant_id = $2 AND size = $3",
            )
            .bind(log)
            .bind(tenant)
            .bind(size)
            .bind(&key)
            .execute(pool)
            .await?;
        }
        Ok(pending.len())
    }

    /// Integrates up to one batch of `tenant`'s rows of `log` and signs the tree's new size;
    /// `None` when there was nothing to integrate.
    pub async fn integrate(
        &self,
        pool: &PgPool,
        log: LogName,
        tenant: TenantId,
    ) -> Result<Option<Integrated>, TlogError> {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("tlog/{}/{tenant}", log.as_str()))
            .execute(&mut *tx)
            .await?;
        let (size, root) = match checkpoint(&mut tx, log, tenant, None).await? {
            Some(checkpoint) => (checkpoint.size, checkpoint.root),
            None => (0, tree::EMPTY_ROOT),
        };
        let rows = rows_after(&mut tx, log, tenant, size, self.batch).await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut leaves = Vec::with_capacity(rows.len());
        for (expected, (seq, bytes)) in (size as i64 + 1..).zip(&rows) {
            if *seq != expected {
                return Err(TlogError::Gap {
                    log: log.as_str(),
                    tenant,
                    expected_after: expected - 1,
                    found: *seq,
                });
            }
            leaves.push(tree::leaf_hash(bytes));
        }
        let to = size + leaves.len() as u64;

        let mut tiles = Tiles::default();
        read_tiles(
            &mut tx,
            log,
            tenant,
            &Tiles::read_by_append(size, to),
            &mut tiles,
        )
        .await?;
        // The tree grows from what was signed, or not at all.
        let stored_root = with_tiles(&mut tx, log, tenant, &mut tiles, |t| t.root(size)).await?;
        if stored_root != root {
            return Err(TlogError::Damaged(format!(
                "the tiles of {} for tenant {tenant} do not give the root signed at size {size}",
                log.as_str()
            )));
        }
        let appended = with_tiles(&mut tx, log, tenant, &mut tiles, |t| {
            t.append(size, &leaves)
        })
        .await?;
        write_tiles(&mut tx, log, tenant, &appended.tiles).await?;
        let note = self.key.sign(log, tenant, appended.size, appended.root)?;
        sqlx::query(
            "INSERT INTO tlog_checkpoints (log, tenant_id, size, root, note) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(log.as_str())
        .bind(tenant.as_uuid())
        .bind(appended.size as i64)
        .bind(appended.root.0.as_slice())
        .bind(&note)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(Integrated {
            log,
            tenant,
            from: size,
            to,
        }))
    }
}

/// The tenants with rows of `log` beyond their newest checkpoint: one index probe per tenant
/// (a loose scan of the log's `(tenant_id, seq)` key), not a scan of the rows.
async fn tenants_behind(
    conn: &mut PgConnection,
    log: LogName,
) -> Result<Vec<TenantId>, sqlx::Error> {
    let table = log.table();
    let tenants: Vec<Uuid> = sqlx::query_scalar(&format!(
        "WITH RECURSIVE tenants AS (
             (SELECT tenant_id FROM {table} ORDER BY tenant_id LIMIT 1)
           UNION ALL
             SELECT (SELECT r.tenant_id FROM {table} r WHERE r.tenant_id > t.tenant_id
                      ORDER BY r.tenant_id LIMIT 1)
               FROM tenants t WHERE t.tenant_id IS NOT NULL
         )
         SELECT t.tenant_id FROM tenants t
          WHERE t.tenant_id IS NOT NULL
            AND (SELECT max(seq) FROM {table} r WHERE r.tenant_id = t.tenant_id)
                > COALESCE((SELECT max(size) FROM tlog_checkpoints c
                             WHERE c.log = $1 AND c.tenant_id = t.tenant_id), 0)"
    ))
    .bind(log.as_str())
    .fetch_all(conn)
    .await?;
    Ok(tenants.into_iter().map(TenantId::from_uuid).collect())
}

/// What an auditor asks to have proven.
#[derive(Debug, Clone, Default)]
pub struct ProofRequest {
    /// Rows (`seq`) to prove in the tree.
    pub seqs: Vec<i64>,
    /// An earlier size the tree must be shown to extend.
    pub from: Option<u64>,
    /// The checkpoint to prove against, by size; the newest when `None`.
    pub size: Option<u64>,
}

/// The bundle `request` asks for from `tenant`'s tree of `log`; `None` when no checkpoint
/// was signed (at the size asked). The checkpoint is read once and every proof is against
/// it, so one signed meanwhile cannot split the bundle; the proofs share the tiles they read
/// (neighbouring rows' paths meet, and the top tiles are every path's).
pub async fn prove(
    conn: &mut PgConnection,
    log: LogName,
    tenant: TenantId,
    request: &ProofRequest,
) -> Result<Option<ProofBundle>, TlogError> {
    let Some(checkpoint) = checkpoint(conn, log, tenant, request.size).await? else {
        return Ok(None);
    };
    let size = checkpoint.size;
    if let Some(seq) = request
        .seqs
        .iter()
        .find(|seq| **seq < 1 || **seq as u64 > size)
    {
        return Err(TlogError::OutOfRange {
            field: "seq",
            message: format!("row {seq} is not in the tree of size {size}"),
        });
    }
    if let Some(from) = request.from.filter(|from| *from > size) {
        return Err(TlogError::OutOfRange {
            field: "from",
            message: format!("size {from} is beyond the checkpoint's size {size}"),
        });
    }
    let mut tiles = Tiles::default();
    let mut inclusions = Vec::with_capacity(request.seqs.len());
    for &seq in &request.seqs {
        let index = seq as u64 - 1;
        let proof = with_tiles(conn, log, tenant, &mut tiles, |t| {
            t.inclusion_proof(size, index)
        })
        .await?;
        inclusions.push(Inclusion { seq, proof });
    }
    let consistency = match request.from {
        Some(old_size) if old_size > 0 => Some(Consistency {
            old_size,
            proof: with_tiles(conn, log, tenant, &mut tiles, |t| {
                t.consistency_proof(size, old_size)
            })
            .await?,
        }),
        Some(old_size) => Some(Consistency {
            old_size,
            proof: Vec::new(),
        }),
        None => None,
    };
    Ok(Some(ProofBundle {
        checkpoint: checkpoint.note,
        inclusions,
        consistency,
    }))
}
