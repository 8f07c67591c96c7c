//! Per-tenant hash chains, as the audit trail ([`crate::audit`]) and the access log
//! ([`crate::access_log`]) keep them: one chain per tenant, numbered by `seq` from 1 without
//! gaps, each row's `hash = SHA-256(prev_hash ‖ canonical bytes)` where `prev_hash` is the hash
//! of the tenant's previous row (32 zero bytes for the first).
//!
//! The canonical bytes of a row are a version tag naming its kind and encoding, then its
//! fields in a fixed order, each encoded as the single byte `0x00` when NULL, else as the byte
//! `0x01`, the length in bytes of its text as a 4-byte big-endian unsigned integer, and the
//! text's UTF-8 bytes. What a field's text is (UUIDs, integers, timestamps, numbers, lists)
//! is stated by each kind of row, in [`crate::audit::chain`] and [`crate::access_log`].
//!
//! Here are what every chain shares: the hash, the field encoder, the links' checks (sequence,
//! previous hash, own hash), numbering new rows onto a chain's head, and reading the heads.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::str::FromStr;

use casebook_domain::ids::TenantId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::sql::decode_error;

/// A SHA-256 hash in a chain: a row's hash, or the digest of an audit row's event.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// The `prev_hash` of a tenant's first row.
    pub const ZERO: ChainHash = ChainHash([0; 32]);
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({self})")
    }
}

/// Text that isn't 64 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a chain hash is 64 hexadecimal digits")]
pub struct InvalidHash;

impl FromStr for ChainHash {
    type Err = InvalidHash;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.as_bytes();
        if digits.len() != 64 {
            return Err(InvalidHash);
        }
        let mut bytes = [0; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            let text = std::str::from_utf8(pair).map_err(|_| InvalidHash)?;
            *byte = u8::from_str_radix(text, 16).map_err(|_| InvalidHash)?;
        }
        Ok(Self(bytes))
    }
}

impl TryFrom<&[u8]> for ChainHash {
    type Error = InvalidHash;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        bytes.try_into().map(Self).map_err(|_| InvalidHash)
    }
}

impl Serialize for ChainHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ChainHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where canonical bytes go: a buffer, or straight into a hasher.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

/// Writes fields in the canonical encoding, formatting values in one reused buffer.
pub(crate) struct Fields<'a, S: Sink> {
    sink: &'a mut S,
    scratch: String,
}

impl<S: Sink> Fields<'_, S> {
    pub(crate) fn text(&mut self, text: &str) {
        put_text(self.sink, text);
    }

    pub(crate) fn opt_text(&mut self, text: Option<&str>) {
        match text {
            Some(text) => self.text(text),
            None => self.sink.put(&[0]),
        }
    }

    pub(crate) fn value(&mut self, value: impl fmt::Display) {
        self.scratch.clear();
        // Writing to a String cannot fail.
        let _ = write!(self.scratch, "{value}");
        put_text(self.sink, &self.scratch);
    }

    pub(crate) fn opt<T: fmt::Display>(&mut self, value: Option<T>) {
        match value {
            Some(value) => self.value(value),
            None => self.sink.put(&[0]),
        }
    }

    /// A list of texts: the byte `0x01`, the number of items as a 4-byte big-endian unsigned
    /// integer, then each item as a field. Items may hold any character, commas included.
    pub(crate) fn list(&mut self, items: &[String]) {
        // A list is a page of ids or a request's path parameters: far below 4 billion items.
        let len = u32::try_from(items.len()).unwrap_or(u32::MAX);
        self.sink.put(&[1]);
        self.sink.put(&len.to_be_bytes());
        for item in items {
            self.text(item);
        }
    }
}

fn put_text(sink: &mut impl Sink, text: &str) {
    // Chained fields are far below 4 GiB: Postgres caps a value at 1 GB.
    let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
    sink.put(&[1]);
    sink.put(&len.to_be_bytes());
    sink.put(text.as_bytes());
}

/// A row of a per-tenant chain.
pub(crate) trait Link {
    /// The tenant whose chain it belongs to.
    fn tenant(&self) -> TenantId;
    /// Its number in that chain, from 1.
    fn seq(&self) -> i64;
    /// The hash of the tenant's previous row.
    fn prev_hash(&self) -> ChainHash;
    /// Its own hash, as stored.
    fn hash(&self) -> ChainHash;
    /// The version tag its canonical bytes begin with.
    fn tag(&self) -> &'static [u8];
    /// Its fields, in its kind's canonical order.
    fn fields<S: Sink>(&self, fields: &mut Fields<'_, S>);
    /// Numbers it as `seq`, after the row whose hash is `prev_hash`.
    fn number(&mut self, seq: i64, prev_hash: ChainHash);
    /// Sets its hash.
    fn seal(&mut self, hash: ChainHash);
}

fn encode(link: &impl Link, sink: &mut impl Sink) {
    sink.put(link.tag());
    link.fields(&mut Fields {
        sink,
        scratch: String::with_capacity(64),
    });
}

/// The row's canonical bytes: its tag, then its fields.
pub(crate) fn canonical_bytes(link: &impl Link) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(512);
    encode(link, &mut bytes);
    bytes
}

/// `SHA-256(prev_hash ‖ canonical bytes)` for the row's content and `prev_hash`.
pub(crate) fn compute_hash(link: &impl Link) -> ChainHash {
    let mut hasher = Sha256::new();
    hasher.update(link.prev_hash().0);
    encode(link, &mut hasher);
    ChainHash(hasher.finalize().into())
}

/// A tenant's chain head: its last `seq` (0 when empty) and that row's hash.
pub(crate) type Head = (i64, ChainHash);

/// Numbers `rows` onto their tenants' chains, in order, from `heads` (a tenant missing from it
/// starts at `seq` 1), and advances `heads` past them.
pub(crate) fn extend<'a, L: Link + 'a>(
    heads: &mut HashMap<Uuid, Head>,
    rows: impl IntoIterator<Item = &'a mut L>,
) {
    for row in rows {
        let head = heads
            .entry(*row.tenant().as_uuid())
            .or_insert((0, ChainHash::ZERO));
        row.number(head.0 + 1, head.1);
        let hash = compute_hash(row);
        row.seal(hash);
        *head = (head.0 + 1, hash);
    }
}

/// The statement reading each tenant's head in `table` for the tenants of the array `$1`
/// (tenants without rows are left out).
pub(crate) fn heads_query(table: &str) -> String {
    format!(
        "SELECT t.tenant_id, h.seq, h.hash
           FROM UNNEST($1::uuid[]) AS t(tenant_id)
           CROSS JOIN LATERAL (SELECT seq, hash FROM {table} a
                                WHERE a.tenant_id = t.tenant_id
                                ORDER BY seq DESC LIMIT 1) h"
    )
}

/// Each of `tenants`' heads, read by `query` (a [`heads_query`]).
pub(crate) async fn read_heads(
    conn: &mut PgConnection,
    query: &str,
    tenants: &[Uuid],
) -> Result<HashMap<Uuid, Head>, sqlx::Error> {
    let mut heads = HashMap::with_capacity(tenants.len());
    for row in sqlx::query(query).bind(tenants).fetch_all(conn).await? {
        let hash: Vec<u8> = row.try_get("hash")?;
        let hash = ChainHash::try_from(hash.as_slice()).map_err(|err| decode_error("hash", err))?;
        heads.insert(row.try_get("tenant_id")?, (row.try_get("seq")?, hash));
    }
    Ok(heads)
}

/// What is wrong with a link, as any chain sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    /// The row's `seq` is not the next one of its tenant's chain (a row is missing,
    /// duplicated or out of order).
    Sequence {
        /// The `seq` the chain expected.
        expected: i64,
    },
    /// The row's `prev_hash` is not the previous row's `hash`.
    PrevHash {
        /// The previous row's hash.
        expected: ChainHash,
    },
    /// The row's `hash` doesn't match its content: the row was altered.
    Hash {
        /// The hash of the content as stored.
        computed: ChainHash,
    },
}

impl Break {
    /// The problem in words, for the row numbered `seq`.
    pub fn describe(&self, seq: i64) -> String {
        match self {
            Break::Sequence { expected: 1 } => format!(
                "the chain starts at seq {seq} instead of 1: give the earlier archives or exports first (or verify against the database)"
            ),
            Break::Sequence { expected } => format!(
                "seq {seq} where {expected} was expected: a row is missing, duplicated or out of order"
            ),
            Break::PrevHash { expected } => format!(
                "prev_hash is not the previous row's hash ({expected}): a row before it is missing or was altered"
            ),
            Break::Hash { computed } => format!(
                "the row's hash does not match its content (which hashes to {computed}): the row was altered"
            ),
        }
    }
}

/// The first row at which a tenant's chain doesn't verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chain of tenant {tenant_id} broken at seq {seq}: {}", problem.describe(*seq))]
pub struct BrokenChain {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The offending row's `seq`, as stored.
    pub seq: i64,
    /// What is wrong.
    pub problem: Break,
}

/// The links verified so far: each tenant's head, and how many rows.
#[derive(Debug, Default)]
pub(crate) struct Links {
    heads: HashMap<TenantId, Head>,
    verified: u64,
}

impl Links {
    /// Whether `row` is the next link of its tenant's chain: the next `seq`, the head's hash
    /// as `prev_hash`, and a hash that matches its content.
    pub(crate) fn check(&self, row: &impl Link) -> Result<(), Break> {
        let (last_seq, last_hash) = self.head(row.tenant());
        if row.seq() != last_seq + 1 {
            return Err(Break::Sequence {
                expected: last_seq + 1,
            });
        }
        if row.prev_hash() != last_hash {
            return Err(Break::PrevHash {
                expected: last_hash,
            });
        }
        let computed = compute_hash(row);
        if computed != row.hash() {
            return Err(Break::Hash { computed });
        }
        Ok(())
    }

    /// Makes `row`, checked, its tenant's head.
    pub(crate) fn advance(&mut self, row: &impl Link) {
        self.heads.insert(row.tenant(), (row.seq(), row.hash()));
        self.verified += 1;
    }

    /// `tenant`'s head: `(0, ZERO)` before its first row.
    pub(crate) fn head(&self, tenant: TenantId) -> Head {
        self.heads
            .get(&tenant)
            .copied()
            .unwrap_or((0, ChainHash::ZERO))
    }

    /// Every tenant's head.
    pub(crate) fn heads(&self) -> &HashMap<TenantId, Head> {
        &self.heads
    }

    /// How many rows verified.
    pub(crate) fn verified(&self) -> u64 {
        self.verified
    }
}
