//! The access log: one record per API request that touched a tenant's data — reads included,
//! refusals too — saying who (actor, role), what (method, route, the resources named or
//! returned, how many), with what status, under which request id. Each tenant's records form a
//! hash chain ([`crate::chain`]); requests refused before any tenant is known (no or a bad
//! token) go to the platform chain, [`PLATFORM`], which no tenant's scope ever names.
//!
//! Unlike the audit trail this is not a projection of the log: the API writes it, in batches
//! ([`append`], in a transaction the caller scoped to the batch's tenants).
//!
//! # Canonical encoding (version 1)
//!
//! The 18 ASCII bytes `casebook-access-v1`, then the fields in this order, each encoded as
//! [`crate::chain`] says:
//!
//! `tenant_id, seq, requested_at, actor_id, actor_role, method, route, resource_ids,
//! result_count, status, request_id`
//!
//! with the audit chain's texts for UUIDs, integers and timestamps
//! (`YYYY-MM-DDTHH:MM:SS.ffffffZ`), and `resource_ids` as a list of texts (the byte `0x01`, the
//! number of ids as a 4-byte big-endian unsigned integer, then each id as a field; an empty
//! list is `0x01 00 00 00 00`).

use std::collections::HashMap;

use casebook_domain::ids::TenantId;
use chrono::{DateTime, SubsecRound, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::chain::{self, BrokenChain, ChainHash, Fields, Link, Links, Sink};
use crate::read::{fetch_limit, page, Page, PageRequest};
use crate::sql::{col, insert_unnest, json_text, reserved, Column};

/// The platform's chain: requests refused before a tenant was known. No tenant has the nil id,
/// so no tenant's scope reads it; an operator reads it with `casebook-replay` as that tenant.
pub const PLATFORM: TenantId = TenantId::from_uuid(Uuid::nil());

/// One request's access record, chained to its tenant's previous one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    /// The tenant whose data the request touched ([`PLATFORM`] when none was known).
    pub tenant_id: TenantId,
    /// The record's number in the tenant's chain, from 1 (0 until it is chained).
    pub seq: i64,
    /// When the request arrived (microseconds, as stored).
    pub requested_at: DateTime<Utc>,
    /// The caller, once their token was verified.
    pub actor_id: Option<String>,
    /// The role the route admitted them in; `None` when it did not (refused before the
    /// route's roles were checked, or by them).
    pub actor_role: Option<String>,
    /// The HTTP method.
    pub method: String,
    /// The route as registered, e.g. `/v1/sessions/{session_id}`.
    pub route: String,
    /// The ids the request named in its path, then those a list returned, in its order.
    pub resource_ids: Vec<String>,
    /// How many items a list returned; `None` for anything but a list.
    pub result_count: Option<i64>,
    /// The response's status.
    pub status: u16,
    /// The server's request id.
    pub request_id: String,
    /// The hash of the tenant's previous record ([`ChainHash::ZERO`] for `seq` 1).
    pub prev_hash: ChainHash,
    /// `SHA-256(prev_hash ‖ canonical bytes)`.
    pub hash: ChainHash,
}

impl AccessRecord {
    /// A record not yet chained (`seq` 0, zero hashes), its time cut to the microseconds
    /// Postgres keeps, so the hash computed before storing is the one computed after.
    #[allow(clippy::too_many_arguments)]
    pub fn unchained(
        tenant_id: TenantId,
        requested_at: DateTime<Utc>,
        actor_id: Option<String>,
        actor_role: Option<String>,
        method: String,
        route: String,
        resource_ids: Vec<String>,
        result_count: Option<i64>,
        status: u16,
        request_id: String,
    ) -> Self {
        Self {
            tenant_id,
            seq: 0,
            requested_at: requested_at.trunc_subsecs(6),
            actor_id,
            actor_role,
            method,
            route,
            resource_ids,
            result_count,
            status,
            request_id,
            prev_hash: ChainHash::ZERO,
            hash: ChainHash::ZERO,
        }
    }

    /// The record's canonical bytes (see the module documentation).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        chain::canonical_bytes(self)
    }

    /// `SHA-256(prev_hash ‖ canonical bytes)` for this record's content and `prev_hash`.
    pub fn compute_hash(&self) -> ChainHash {
        chain::compute_hash(self)
    }
}

impl Link for AccessRecord {
    fn tenant(&self) -> TenantId {
        self.tenant_id
    }

    fn seq(&self) -> i64 {
        self.seq
    }

    fn prev_hash(&self) -> ChainHash {
        self.prev_hash
    }

    fn hash(&self) -> ChainHash {
        self.hash
    }

    fn tag(&self) -> &'static [u8] {
        b"casebook-access-v1"
    }

    fn fields<S: Sink>(&self, e: &mut Fields<'_, S>) {
        e.value(self.tenant_id);
        e.value(self.seq);
        e.value(self.requested_at.format("%Y-%m-%dT%H:%M:%S%.6fZ"));
        e.opt_text(self.actor_id.as_deref());
        e.opt_text(self.actor_role.as_deref());
        e.text(&self.method);
        e.text(&self.route);
        e.list(&self.resource_ids);
        e.opt(self.result_count);
        e.value(self.status);
        e.text(&self.request_id);
    }

    fn number(&mut self, seq: i64, prev_hash: ChainHash) {
        self.seq = seq;
        self.prev_hash = prev_hash;
    }

    fn seal(&mut self, hash: ChainHash) {
        self.hash = hash;
    }
}

/// `access_log`'s columns, in the canonical encoding's order, then the two hashes.
const COLUMNS: &[Column] = &[
    col("tenant_id", "uuid"),
    col("seq", "int8"),
    col("requested_at", "timestamptz"),
    col("actor_id", "text"),
    col("actor_role", "text"),
    col("method", "text"),
    col("route", "text"),
    col("resource_ids", "jsonb"),
    col("result_count", "int8"),
    col("status", "int2"),
    col("request_id", "text"),
    col("prev_hash", "bytea"),
    col("hash", "bytea"),
];

/// The advisory lock class of the access log's chains (`pg_advisory_xact_lock(class, key)`):
/// "ACLG", apart from the single-key locks the subscriptions take.
const LOCK_CLASS: i32 = 0x4143_4c47;

/// The advisory lock key of `tenant`'s chain: two tenants may share one, which only makes
/// their writers take turns.
fn lock_key(tenant: &Uuid) -> i32 {
    let bytes = tenant.as_bytes();
    i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Chains `records` onto their tenants' chains (numbering and hashing them in place) and
/// inserts them, in order, on `conn`: a transaction whose scope (`app.tenant_id`) names every
/// tenant of the batch. Each tenant's chain stays locked until the transaction ends, so
/// writers in other processes take turns; a batch tried again is numbered again.
pub async fn append(
    conn: &mut PgConnection,
    records: &mut [AccessRecord],
) -> Result<(), sqlx::Error> {
    if records.is_empty() {
        return Ok(());
    }
    let mut tenants: Vec<Uuid> = records.iter().map(|r| *r.tenant_id.as_uuid()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    // Locks in one order everywhere, so two writers never wait on each other's.
    let mut keys: Vec<i32> = tenants.iter().map(lock_key).collect();
    keys.sort_unstable();
    keys.dedup();
    sqlx::query("SELECT pg_advisory_xact_lock($1, key) FROM UNNEST($2::int4[]) AS key")
        .bind(LOCK_CLASS)
        .bind(&keys)
        .execute(&mut *conn)
        .await?;
    let mut heads = chain::read_heads(conn, &chain::heads_query("access_log"), &tenants).await?;
    chain::extend(&mut heads, records.iter_mut());
    let mut a = Arrays::default();
    for record in records.iter() {
        a.push(record)?;
    }
    sqlx::query_with(
        &insert_unnest("access_log", COLUMNS),
        reserved(records.len() * 256),
    )
    .bind(a.tenant_id)
    .bind(a.seq)
    .bind(a.requested_at)
    .bind(a.actor_id)
    .bind(a.actor_role)
    .bind(a.method)
    .bind(a.route)
    .bind(a.resource_ids)
    .bind(a.result_count)
    .bind(a.status)
    .bind(a.request_id)
    .bind(a.prev_hash)
    .bind(a.hash)
    .execute(conn)
    .await?;
    Ok(())
}

/// The column arrays of one insert, in [`COLUMNS`] order.
#[derive(Default)]
struct Arrays {
    tenant_id: Vec<Uuid>,
    seq: Vec<i64>,
    requested_at: Vec<DateTime<Utc>>,
    actor_id: Vec<Option<String>>,
    actor_role: Vec<Option<String>>,
    method: Vec<String>,
    route: Vec<String>,
    resource_ids: Vec<String>,
    result_count: Vec<Option<i64>>,
    status: Vec<i16>,
    request_id: Vec<String>,
    prev_hash: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
}

impl Arrays {
    fn push(&mut self, r: &AccessRecord) -> Result<(), sqlx::Error> {
        let status = i16::try_from(r.status).map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
        let resource_ids =
            json_text(&r.resource_ids).map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
        self.tenant_id.push(*r.tenant_id.as_uuid());
        self.seq.push(r.seq);
        self.requested_at.push(r.requested_at);
        self.actor_id.push(r.actor_id.clone());
        self.actor_role.push(r.actor_role.clone());
        self.method.push(r.method.clone());
        self.route.push(r.route.clone());
        self.resource_ids.push(resource_ids);
        self.result_count.push(r.result_count);
        self.status.push(status);
        self.request_id.push(r.request_id.clone());
        self.prev_hash.push(r.prev_hash.0.to_vec());
        self.hash.push(r.hash.0.to_vec());
        Ok(())
    }
}

/// A record as JSON, hashes as hex: decoded by [`AccessRecord`]'s own `Deserialize`, so the
/// auditors' view, the export and the verifier read a record the same way.
const RECORD: &str = "to_jsonb(a) || jsonb_build_object('prev_hash', encode(a.prev_hash, 'hex'),
                                                      'hash', encode(a.hash, 'hex')) AS record";

fn from_row(row: &PgRow) -> Result<AccessRecord, sqlx::Error> {
    let sqlx::types::Json(record) = row.try_get::<sqlx::types::Json<AccessRecord>, _>("record")?;
    Ok(record)
}

/// Which records an auditor asks for; every filter given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessFilter {
    /// Requests at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Requests before this instant.
    pub to: Option<DateTime<Utc>>,
    /// The caller's id.
    pub actor_id: Option<String>,
    /// The route as registered, e.g. `/v1/sessions/{session_id}`.
    pub route: Option<String>,
    /// The response's status.
    pub status: Option<u16>,
}

/// `tenant`'s access records matching `filter`, in chain order (`seq`); the cursor is the last
/// record's `seq`.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &AccessFilter,
    request: PageRequest,
) -> Result<Page<AccessRecord>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {RECORD}
           FROM access_log a
          WHERE a.tenant_id = $1
            AND ($2::timestamptz IS NULL OR a.requested_at >= $2)
            AND ($3::timestamptz IS NULL OR a.requested_at < $3)
            AND ($4::text IS NULL OR a.actor_id = $4)
            AND ($5::text IS NULL OR a.route = $5)
            AND ($6::int2 IS NULL OR a.status = $6)
            AND ($7::bigint IS NULL OR a.seq > $7)
          ORDER BY a.seq LIMIT $8"
    ))
    .bind(tenant.as_uuid())
    .bind(filter.from)
    .bind(filter.to)
    .bind(filter.actor_id.as_deref())
    .bind(filter.route.as_deref())
    .bind(filter.status.and_then(|status| i16::try_from(status).ok()))
    .bind(request.after)
    .bind(fetch_limit(request))
    .fetch_all(conn)
    .await?;
    page(rows, request, from_row, |record| record.seq)
}

/// `tenant`'s records after `after_seq` (0 for the start), at most `limit`, in chain order: a
/// page of an export. Pass the last record's `seq` to get the next page.
pub async fn records(
    conn: &mut PgConnection,
    tenant: TenantId,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<AccessRecord>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {RECORD} FROM access_log a WHERE a.tenant_id = $1 AND a.seq > $2
          ORDER BY a.seq LIMIT $3"
    ))
    .bind(tenant.as_uuid())
    .bind(after_seq)
    .bind(limit)
    .fetch_all(conn)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Checks records one at a time, each tenant's in `seq` order (tenants may interleave): no
/// gap in the sequence, every record names its predecessor's hash, every hash matches its
/// record's content.
#[derive(Debug, Default)]
pub struct AccessVerifier {
    links: Links,
}

impl AccessVerifier {
    /// A verifier expecting every tenant's chain from `seq` 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next record of its tenant's chain.
    pub fn push(&mut self, record: &AccessRecord) -> Result<(), BrokenChain> {
        self.links.check(record).map_err(|problem| BrokenChain {
            tenant_id: record.tenant_id,
            seq: record.seq,
            problem,
        })?;
        self.links.advance(record);
        Ok(())
    }

    /// How many records verified so far.
    pub fn verified(&self) -> u64 {
        self.links.verified()
    }

    /// Each tenant's last verified `seq` and hash: the chain heads to anchor elsewhere.
    pub fn heads(&self) -> &HashMap<TenantId, (i64, ChainHash)> {
        self.links.heads()
    }
}

/// Why an access chain could not be verified.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The chain is broken at a record.
    #[error("{link} (after {verified} records verified)")]
    Broken {
        /// Where, and why.
        link: BrokenChain,
        /// The records verified before it.
        verified: u64,
    },
    /// The records could not be read.
    #[error("reading the access log failed")]
    Database(#[from] sqlx::Error),
}

/// Verifies `tenant`'s whole chain from `seq` 1, streaming its records; returns how many
/// verified. Under the app or auditor role the scope must name `tenant`, as for
/// [`crate::audit::verify_chain`], whose limits apply too: records cut from the end show only
/// against a head anchored elsewhere (an export's).
pub async fn verify_chain(conn: &mut PgConnection, tenant: TenantId) -> Result<u64, VerifyError> {
    let sql = format!("SELECT {RECORD} FROM access_log a WHERE a.tenant_id = $1 ORDER BY a.seq");
    let mut verifier = AccessVerifier::new();
    let mut rows = sqlx::query(&sql).bind(tenant.as_uuid()).fetch(conn);
    while let Some(row) = rows.try_next().await? {
        verifier
            .push(&from_row(&row)?)
            .map_err(|link| VerifyError::Broken {
                link,
                verified: verifier.verified(),
            })?;
    }
    Ok(verifier.verified())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tenant: TenantId, resource_ids: &[&str]) -> AccessRecord {
        AccessRecord::unchained(
            tenant,
            DateTime::from_timestamp(1_764_000_000, 123_456_789).unwrap(),
            Some("consultant-1".into()),
            Some("consultant".into()),
            "GET".into(),
            "/v1/sessions".into(),
            resource_ids.iter().map(|id| (*id).to_owned()).collect(),
            Some(resource_ids.len() as i64),
            200,
            "req-1".into(),
        )
    }

    fn chained(tenant: TenantId, n: usize) -> Vec<AccessRecord> {
        let mut records = vec![record(tenant, &["a", "b"]); n];
        chain::extend(&mut HashMap::new(), records.iter_mut());
        records
    }

    #[test]
    fn the_canonical_bytes_follow_the_documented_layout() {
        let tenant = TenantId::from_uuid(Uuid::from_u128(1));
        let mut r = record(tenant, &["a,b", "c"]);
        r.actor_role = None;
        let bytes = r.canonical_bytes();
        assert!(bytes.starts_with(b"casebook-access-v1"));
        let mut tenant_field = vec![1, 0, 0, 0, 36];
        tenant_field.extend_from_slice(b"00000000-0000-0000-0000-000000000001");
        assert_eq!(&bytes[18..18 + 41], tenant_field.as_slice());
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("2025-11-24T16:00:00.123456Z"), "{text}");
        // Two ids, the first with a comma in it: a count, then each as a field.
        let ids = [
            &[1, 0, 0, 0, 2][..],
            &[1, 0, 0, 0, 3],
            b"a,b",
            &[1, 0, 0, 0, 1],
            b"c",
        ]
        .concat();
        assert!(bytes.windows(ids.len()).any(|w| w == ids.as_slice()));
    }

    #[test]
    fn an_empty_list_and_a_missing_role_encode_apart_from_their_neighbours() {
        let tenant = TenantId::new();
        let a = record(tenant, &[]);
        let mut b = a.clone();
        b.resource_ids = vec![String::new()];
        assert_ne!(a.canonical_bytes(), b.canonical_bytes());
        let mut c = a.clone();
        c.actor_role = Some(String::new());
        let mut d = a.clone();
        d.actor_role = None;
        assert_ne!(c.canonical_bytes(), d.canonical_bytes());
    }

    #[test]
    fn an_intact_chain_verifies_and_an_altered_or_missing_record_does_not() {
        let tenant = TenantId::new();
        let records = chained(tenant, 4);
        let mut verifier = AccessVerifier::new();
        records.iter().try_for_each(|r| verifier.push(r)).unwrap();
        assert_eq!(verifier.verified(), 4);
        assert_eq!(verifier.heads()[&tenant], (4, records[3].hash));

        let mut altered = records.clone();
        altered[2].resource_ids.push("another".into());
        let mut verifier = AccessVerifier::new();
        let broken = altered
            .iter()
            .try_for_each(|r| verifier.push(r))
            .unwrap_err();
        assert_eq!(broken.seq, 3);
        assert!(matches!(broken.problem, chain::Break::Hash { .. }));

        let mut missing = records;
        missing.remove(1);
        let mut verifier = AccessVerifier::new();
        let broken = missing
            .iter()
            .try_for_each(|r| verifier.push(r))
            .unwrap_err();
        assert_eq!(
            (broken.seq, broken.problem),
            (3, chain::Break::Sequence { expected: 2 })
        );
    }

    #[test]
    fn records_round_trip_through_json_and_still_verify() {
        let records = chained(TenantId::new(), 2);
        let text = serde_json::to_string(&records).unwrap();
        let back: Vec<AccessRecord> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, records);
        let mut verifier = AccessVerifier::new();
        back.iter().try_for_each(|r| verifier.push(r)).unwrap();
    }
}
