//! The audit hash chain: the canonical encodings of an audit row, its hash, and a pure
//! verifier that needs nothing but the rows, and the events when they are at hand (an export
//! verifies offline).
//!
//! Each row records the encoding its hash covers (`encoding`, 1 or 2), and the verifier
//! hashes each row in its own: rows written before the event digest existed keep their
//! version-1 hash and verify as they always did; every row written since is version 2.
//!
//! # Canonical encoding (version 1)
//!
//! The canonical bytes of a row are the 17 ASCII bytes `casebook-audit-v1` followed by its
//! fields in this order (`prev_hash` and `hash` are not fields of the encoding):
//!
//! `tenant_id, seq, global_position, recorded_at, actor_id, actor_role, source, action,
//! aggregate_type, aggregate_id, event_sequence, session_id, query_id, diagnosis_id,
//! decision_id, judgment_id, outcome, reason, threshold, confidence, model_id, model_tier,
//! prompt_template_id, prompt_template_hash, retrieved_judgment_ids, input_tokens,
//! output_tokens, cost_usd_micros, request_id, correlation_id, causation_id`
//!
//! Each field is encoded as the single byte `0x00` when NULL, else as the byte `0x01`, the
//! length in bytes of its text as a 4-byte big-endian unsigned integer, and the text's UTF-8
//! bytes. The text of a value is:
//! - a UUID: lowercase, hyphenated (`6f1c2f4e-8a8e-4f53-9d0e-4c1f3b0b8a11`);
//! - an integer: base 10, `-` for negatives, no leading zeros;
//! - a timestamp: UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ` with exactly six fractional digits;
//! - a floating-point number: the shortest decimal that reads back as the same IEEE-754
//!   double, without exponent (Rust's `f64` `Display`: `0.85`, `1`, `0.1`);
//! - a list of UUIDs: the UUIDs joined by `,` (an empty list is the empty text, which is not
//!   NULL);
//! - a SHA-256 digest: 64 lowercase hexadecimal digits;
//! - text: itself.
//!
//! Version 1 covers only what the row extracted from its event: an event whose payload was
//! edited (a query's text, a proposal, an amended answer) still matched its row.
//!
//! # Canonical encoding (version 2)
//!
//! The 17 ASCII bytes `casebook-audit-v2`, then version 1's fields in version 1's order and
//! encoding, then one more field:
//!
//! `event_digest`: the SHA-256 of the row's event in its canonical JSON form (identity, event
//! type and version, payload and metadata, RFC 8785; see [`super::content`]).
//!
//! So a row's hash covers its event's full content: verifying recomputes each event's digest
//! from the event itself (the `events` table, or an export's event line) and compares it
//! with the row's.
//!
//! # The chain
//!
//! `hash = SHA-256(prev_hash ‖ canonical bytes)`, where `prev_hash` is the 32-byte hash of the
//! tenant's previous row, and 32 zero bytes for its first row (`seq` 1). Each tenant's rows
//! form one chain, numbered by `seq` from 1 without gaps, in which no row is of an older
//! encoding than the row before it.

use std::collections::HashMap;
use std::fmt;

use casebook_domain::ids::{DecisionId, DiagnosisId, JudgmentId, QueryId, SessionId, TenantId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::content::EventContent;
use crate::chain::{self, Break, Fields, Link, Links, Sink};
pub use crate::chain::{ChainHash, InvalidHash};

/// The canonical encoding a row's hash covers (see the module documentation).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(try_from = "i16", into = "i16")]
pub enum Encoding {
    /// The row's own fields. Exports written before rows named their encoding hold these.
    #[default]
    V1 = 1,
    /// The row's own fields and its event's digest.
    V2 = 2,
}

impl Encoding {
    /// The encoding of every row written now.
    pub const CURRENT: Encoding = Encoding::V2;

    /// The version tag the row's canonical bytes begin with.
    pub fn tag(self) -> &'static [u8] {
        match self {
            Self::V1 => b"casebook-audit-v1",
            Self::V2 => b"casebook-audit-v2",
        }
    }
}

impl From<Encoding> for i16 {
    fn from(encoding: Encoding) -> Self {
        encoding as i16
    }
}

/// A number that names no encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no audit encoding is numbered {0}")]
pub struct UnknownEncoding(pub i16);

impl TryFrom<i16> for Encoding {
    type Error = UnknownEncoding;

    fn try_from(number: i16) -> Result<Self, Self::Error> {
        match number {
            1 => Ok(Self::V1),
            2 => Ok(Self::V2),
            other => Err(UnknownEncoding(other)),
        }
    }
}

/// One row of `audit_log`: who did what to which subject, with what outcome and provenance,
/// chained to the tenant's previous row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The tenant whose chain the row belongs to.
    pub tenant_id: TenantId,
    /// The row's number in the tenant's chain, from 1.
    pub seq: i64,
    /// The event's global position.
    pub global_position: i64,
    /// When the store accepted the event.
    pub recorded_at: DateTime<Utc>,
    /// The acting user (or `casebook:system`).
    pub actor_id: String,
    /// The role they acted in (`customer`, `consultant`, `admin`, `system`, …).
    pub actor_role: String,
    /// The issuing part of the system (`api`, `worker`, `reaction`, `scheduler`).
    pub source: String,
    /// The event type, e.g. `DecisionMade`.
    pub action: String,
    /// The stream's aggregate type.
    pub aggregate_type: String,
    /// The stream's aggregate id.
    pub aggregate_id: String,
    /// The event's sequence in its stream.
    pub event_sequence: i64,
    /// The session concerned.
    pub session_id: Option<SessionId>,
    /// The query concerned.
    pub query_id: Option<QueryId>,
    /// The diagnosis concerned.
    pub diagnosis_id: Option<DiagnosisId>,
    /// The decision concerned.
    pub decision_id: Option<DecisionId>,
    /// The judgment concerned.
    pub judgment_id: Option<JudgmentId>,
    /// A decision's or resolution's outcome (`approved`, `amended`, `rejected`,
    /// `auto_approved`); a failure's `retryable` or `final`.
    pub outcome: Option<String>,
    /// Why (a rejection, amendment, suspension, failure or retirement).
    pub reason: Option<String>,
    /// The auto-resolve threshold set (`AutoResolveThresholdSet`) or in force (auto-approval).
    pub threshold: Option<f64>,
    /// A proposal's confidence (`DiagnosisProposed`, auto-approval).
    pub confidence: Option<f64>,
    /// The model of an AI proposal.
    pub model_id: Option<String>,
    /// Its tier.
    pub model_tier: Option<String>,
    /// The prompt template's id.
    pub prompt_template_id: Option<String>,
    /// The prompt template's hash.
    pub prompt_template_hash: Option<String>,
    /// The judgments put into the prompt.
    pub retrieved_judgment_ids: Option<Vec<JudgmentId>>,
    /// Tokens in.
    pub input_tokens: Option<i64>,
    /// Tokens out.
    pub output_tokens: Option<i64>,
    /// Cost in millionths of a US dollar.
    pub cost_usd_micros: Option<i64>,
    /// The request that issued the command.
    pub request_id: String,
    /// The chain of requests it belongs to.
    pub correlation_id: String,
    /// The event or request that caused it.
    pub causation_id: String,
    /// `SHA-256` of the event's canonical JSON ([`EventContent::digest`]); `None` in rows of
    /// encoding 1.
    #[serde(default)]
    pub event_digest: Option<ChainHash>,
    /// The canonical encoding the `hash` field covers.
    #[serde(default)]
    pub encoding: Encoding,
    /// The hash of the tenant's previous row ([`ChainHash::ZERO`] for `seq` 1).
    pub prev_hash: ChainHash,
    /// `SHA-256(prev_hash ‖ canonical bytes)`.
    pub hash: ChainHash,
}

/// Displays UUIDs joined by commas, without building the joined text.
struct Joined<'a>(&'a [JudgmentId]);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, id) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{id}")?;
        }
        Ok(())
    }
}

impl AuditRecord {
    /// The row's canonical bytes in its [`encoding`](Self::encoding) (see the module
    /// documentation).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        chain::canonical_bytes(self)
    }

    /// `SHA-256(prev_hash ‖ canonical bytes)` for this row's content and `prev_hash`.
    pub fn compute_hash(&self) -> ChainHash {
        chain::compute_hash(self)
    }
}

impl Link for AuditRecord {
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
        self.encoding.tag()
    }

    fn fields<S: Sink>(&self, e: &mut Fields<'_, S>) {
        e.value(self.tenant_id);
        e.value(self.seq);
        e.value(self.global_position);
        e.value(self.recorded_at.format("%Y-%m-%dT%H:%M:%S%.6fZ"));
        e.text(&self.actor_id);
        e.text(&self.actor_role);
        e.text(&self.source);
        e.text(&self.action);
        e.text(&self.aggregate_type);
        e.text(&self.aggregate_id);
        e.value(self.event_sequence);
        e.opt(self.session_id);
        e.opt(self.query_id);
        e.opt(self.diagnosis_id);
        e.opt(self.decision_id);
        e.opt(self.judgment_id);
        e.opt_text(self.outcome.as_deref());
        e.opt_text(self.reason.as_deref());
        e.opt(self.threshold);
        e.opt(self.confidence);
        e.opt_text(self.model_id.as_deref());
        e.opt_text(self.model_tier.as_deref());
        e.opt_text(self.prompt_template_id.as_deref());
        e.opt_text(self.prompt_template_hash.as_deref());
        e.opt(self.retrieved_judgment_ids.as_deref().map(Joined));
        e.opt(self.input_tokens);
        e.opt(self.output_tokens);
        e.opt(self.cost_usd_micros);
        e.text(&self.request_id);
        e.text(&self.correlation_id);
        e.text(&self.causation_id);
        match self.encoding {
            Encoding::V1 => {}
            Encoding::V2 => e.opt(self.event_digest),
        }
    }

    fn number(&mut self, seq: i64, prev_hash: ChainHash) {
        self.seq = seq;
        self.prev_hash = prev_hash;
    }

    fn seal(&mut self, hash: ChainHash) {
        self.hash = hash;
    }
}

/// What is wrong at a broken link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkProblem {
    /// The chain itself: a row missing, out of order, or altered.
    Chain(Break),
    /// The row is of an older encoding than the row before it: rows are only ever written
    /// in the current encoding, so this one was rewritten.
    Downgrade {
        /// The previous row's encoding.
        previous: Encoding,
    },
    /// The row's event doesn't hash to the row's `event_digest`: the event's payload,
    /// metadata or identity was altered, or the event is not this row's.
    EventDigest {
        /// The digest of the event as given.
        computed: ChainHash,
    },
    /// There is no event where the row says (the events table has none at its position).
    EventMissing,
    /// The row's event has no canonical form (its payload or metadata is not JSON).
    EventUnreadable {
        /// Why.
        reason: String,
    },
}

/// What the verifier is given of a row's event.
#[derive(Debug, Clone, Copy)]
pub enum EventAtHand<'a> {
    /// The event: its digest is recomputed and compared with the row's (rows of encoding 2).
    Content(EventContent<'a>),
    /// Nothing, as the source holds audit rows only (a nightly archive): the chain verifies,
    /// the events' content is not checked.
    NotGiven,
    /// The source should hold the event but doesn't.
    Missing,
}

/// The first row at which a tenant's chain doesn't verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain of tenant {tenant_id} broken at seq {seq} (global position {global_position}): {problem:?}")]
pub struct BrokenLink {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The offending row's `seq`, as stored.
    pub seq: i64,
    /// The offending row's global position, as stored.
    pub global_position: i64,
    /// What is wrong.
    pub problem: LinkProblem,
}

/// Checks rows one at a time, each tenant's in `seq` order (tenants may interleave): the
/// sequence has no gaps, every row names its predecessor's hash, every hash matches its row's
/// content in the row's encoding, no row is of an older encoding than its predecessor, and
/// every row of encoding 2 whose event is at hand has that event's digest.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    links: Links,
    encodings: HashMap<TenantId, Encoding>,
    content_checked: u64,
}

impl From<Break> for LinkProblem {
    fn from(problem: Break) -> Self {
        Self::Chain(problem)
    }
}

impl ChainVerifier {
    /// A verifier expecting every tenant's chain from `seq` 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next row of its tenant's chain, and its event's content against the row's
    /// digest when `event` holds it.
    pub fn push(&mut self, record: &AuditRecord, event: EventAtHand<'_>) -> Result<(), BrokenLink> {
        let broken = |problem| BrokenLink {
            tenant_id: record.tenant_id,
            seq: record.seq,
            global_position: record.global_position,
            problem,
        };
        self.links
            .check(record)
            .map_err(|problem| broken(problem.into()))?;
        if let Some(&previous) = self.encodings.get(&record.tenant_id) {
            if record.encoding < previous {
                return Err(broken(LinkProblem::Downgrade { previous }));
            }
        }
        // Rows of encoding 1 carry no digest: there is nothing to compare their event with.
        if record.encoding >= Encoding::V2 {
            match event {
                EventAtHand::Content(content) => {
                    let computed = content.digest().map_err(|err| {
                        broken(LinkProblem::EventUnreadable {
                            reason: crate::error::report(&err),
                        })
                    })?;
                    if record.event_digest != Some(computed) {
                        return Err(broken(LinkProblem::EventDigest { computed }));
                    }
                    self.content_checked += 1;
                }
                EventAtHand::Missing => return Err(broken(LinkProblem::EventMissing)),
                EventAtHand::NotGiven => {}
            }
        }
        self.links.advance(record);
        self.encodings.insert(record.tenant_id, record.encoding);
        Ok(())
    }

    /// How many rows verified so far.
    pub fn verified(&self) -> u64 {
        self.links.verified()
    }

    /// How many of them had their event's content checked against their digest.
    pub fn content_checked(&self) -> u64 {
        self.content_checked
    }

    /// Each tenant's last verified `seq` and hash: the chain heads to anchor elsewhere.
    pub fn heads(&self) -> &HashMap<TenantId, (i64, ChainHash)> {
        self.links.heads()
    }
}

/// Verifies complete chains of audit rows alone (an archive: no events, so no content
/// checks): every tenant's rows from `seq` 1, in order. Returns how many rows verified.
pub fn verify_records<'a>(
    records: impl IntoIterator<Item = &'a AuditRecord>,
) -> Result<u64, BrokenLink> {
    let mut verifier = ChainVerifier::new();
    for record in records {
        verifier.push(record, EventAtHand::NotGiven)?;
    }
    Ok(verifier.verified())
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;
    use uuid::Uuid;

    use super::*;

    fn record(tenant: TenantId, seq: i64, prev_hash: ChainHash) -> AuditRecord {
        let mut record = AuditRecord {
            tenant_id: tenant,
            seq,
            global_position: seq * 10,
            recorded_at: DateTime::from_timestamp(1_764_000_000, 123_456_000).unwrap(),
            actor_id: "consultant-1".into(),
            actor_role: "consultant".into(),
            source: "api".into(),
            action: "DecisionMade".into(),
            aggregate_type: "ConsultantDecision".into(),
            aggregate_id: Uuid::from_u128(7).to_string(),
            event_sequence: 1,
            session_id: None,
            query_id: None,
            diagnosis_id: Some(DiagnosisId::from_uuid(Uuid::from_u128(7))),
            decision_id: Some(DecisionId::from_uuid(Uuid::from_u128(7))),
            judgment_id: None,
            outcome: Some("approved".into()),
            reason: None,
            threshold: None,
            confidence: Some(0.85),
            model_id: None,
            model_tier: None,
            prompt_template_id: None,
            prompt_template_hash: None,
            retrieved_judgment_ids: Some(vec![]),
            input_tokens: None,
            output_tokens: None,
            cost_usd_micros: None,
            request_id: "req-1".into(),
            correlation_id: "req-1".into(),
            causation_id: "req-1".into(),
            event_digest: None,
            encoding: Encoding::V1,
            prev_hash,
            hash: ChainHash::ZERO,
        };
        record.hash = record.compute_hash();
        record
    }

    fn chain(tenant: TenantId, n: i64) -> Vec<AuditRecord> {
        let mut prev = ChainHash::ZERO;
        (1..=n)
            .map(|seq| {
                let r = record(tenant, seq, prev);
                prev = r.hash;
                r
            })
            .collect()
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    /// The event of a test row, with `payload`.
    fn event<'a>(
        row: &'a AuditRecord,
        payload: &'a RawValue,
        metadata: &'a RawValue,
    ) -> EventAtHand<'a> {
        EventAtHand::Content(EventContent {
            global_position: row.global_position,
            aggregate_type: &row.aggregate_type,
            aggregate_id: &row.aggregate_id,
            sequence: row.event_sequence,
            event_type: &row.action,
            event_version: "1",
            payload,
            metadata,
        })
    }

    /// `v1` rows of encoding 1, then `v2` of encoding 2 whose events have `payload`.
    fn mixed_chain(
        tenant: TenantId,
        v1: i64,
        v2: i64,
        payload: &RawValue,
        metadata: &RawValue,
    ) -> Vec<AuditRecord> {
        let mut rows = chain(tenant, v1);
        let mut prev = rows.last().map_or(ChainHash::ZERO, |r| r.hash);
        for seq in v1 + 1..=v1 + v2 {
            let mut r = record(tenant, seq, prev);
            let EventAtHand::Content(content) = event(&r, payload, metadata) else {
                unreachable!()
            };
            r.event_digest = Some(content.digest().unwrap());
            r.encoding = Encoding::V2;
            r.hash = r.compute_hash();
            prev = r.hash;
            rows.push(r);
        }
        rows
    }

    #[test]
    fn the_canonical_bytes_follow_the_documented_layout() {
        let r = record(TenantId::from_uuid(Uuid::from_u128(1)), 1, ChainHash::ZERO);
        let bytes = r.canonical_bytes();
        assert!(bytes.starts_with(b"casebook-audit-v1"));
        let tenant = b"00000000-0000-0000-0000-000000000001";
        let mut expected = vec![1, 0, 0, 0, 36];
        expected.extend_from_slice(tenant);
        assert_eq!(&bytes[17..17 + 41], expected.as_slice());
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("2025-11-24T16:00:00.123456Z"), "{text}");
        assert!(text.contains("0.85"));
    }

    #[test]
    fn the_version_2_bytes_are_version_1_fields_under_the_v2_tag_then_the_event_digest() {
        let mut r = record(TenantId::from_uuid(Uuid::from_u128(1)), 1, ChainHash::ZERO);
        let v1 = r.canonical_bytes();
        r.encoding = Encoding::V2;
        r.event_digest = Some(ChainHash([0xab; 32]));
        let v2 = r.canonical_bytes();
        assert!(v2.starts_with(b"casebook-audit-v2"));
        assert_eq!(v2[17..v1.len()], v1[17..]);
        let mut digest = vec![1, 0, 0, 0, 64];
        digest.extend_from_slice("ab".repeat(32).as_bytes());
        assert_eq!(v2[v1.len()..], digest[..]);
    }

    #[test]
    fn null_and_empty_encode_differently() {
        let tenant = TenantId::from_uuid(Uuid::from_u128(1));
        let mut a = record(tenant, 1, ChainHash::ZERO);
        let mut b = a.clone();
        a.retrieved_judgment_ids = None;
        b.retrieved_judgment_ids = Some(vec![]);
        assert_ne!(a.canonical_bytes(), b.canonical_bytes());
    }

    #[test]
    fn an_intact_chain_verifies_and_interleaved_tenants_too() {
        let (a, b) = (TenantId::new(), TenantId::new());
        let (chain_a, chain_b) = (chain(a, 3), chain(b, 2));
        let interleaved = [
            &chain_a[0],
            &chain_b[0],
            &chain_a[1],
            &chain_a[2],
            &chain_b[1],
        ];
        assert_eq!(verify_records(interleaved), Ok(5));
    }

    #[test]
    fn an_altered_row_breaks_the_chain_at_that_row() {
        let tenant = TenantId::new();
        let mut rows = chain(tenant, 4);
        rows[2].reason = Some("edited".into());
        let broken = verify_records(&rows).unwrap_err();
        assert_eq!(broken.seq, 3);
        assert!(matches!(
            broken.problem,
            LinkProblem::Chain(Break::Hash { .. })
        ));
    }

    #[test]
    fn a_missing_row_breaks_the_chain_at_its_successor() {
        let tenant = TenantId::new();
        let mut rows = chain(tenant, 4);
        rows.remove(1);
        let broken = verify_records(&rows).unwrap_err();
        assert_eq!(broken.seq, 3);
        assert_eq!(
            broken.problem,
            LinkProblem::Chain(Break::Sequence { expected: 2 })
        );
    }

    #[test]
    fn a_rehashed_row_breaks_the_link_to_its_successor() {
        let tenant = TenantId::new();
        let mut rows = chain(tenant, 3);
        rows[1].actor_id = "someone-else".into();
        rows[1].hash = rows[1].compute_hash();
        let broken = verify_records(&rows).unwrap_err();
        assert_eq!(broken.seq, 3);
        assert!(matches!(
            broken.problem,
            LinkProblem::Chain(Break::PrevHash { .. })
        ));
    }

    #[test]
    fn a_chain_of_version_1_rows_then_version_2_rows_verifies_each_row_in_its_encoding() {
        let tenant = TenantId::new();
        let (payload, metadata) = (raw(r#"{"text":"Is clause 4 valid?"}"#), raw("{}"));
        let rows = mixed_chain(tenant, 3, 2, &payload, &metadata);
        let mut verifier = ChainVerifier::new();
        for row in &rows {
            verifier.push(row, event(row, &payload, &metadata)).unwrap();
        }
        assert_eq!((verifier.verified(), verifier.content_checked()), (5, 2));
        assert_eq!(verify_records(&rows), Ok(5));
    }

    #[test]
    fn an_edited_event_breaks_the_chain_at_its_row() {
        let tenant = TenantId::new();
        let (payload, metadata) = (raw(r#"{"text":"Is clause 4 valid?"}"#), raw("{}"));
        let rows = mixed_chain(tenant, 1, 3, &payload, &metadata);
        let edited = raw(r#"{"text":"Is clause 5 valid?"}"#);
        let mut verifier = ChainVerifier::new();
        verifier
            .push(&rows[0], event(&rows[0], &edited, &metadata))
            .unwrap();
        verifier
            .push(&rows[1], event(&rows[1], &payload, &metadata))
            .unwrap();
        let broken = verifier
            .push(&rows[2], event(&rows[2], &edited, &metadata))
            .unwrap_err();
        assert_eq!(broken.seq, 3);
        assert!(matches!(broken.problem, LinkProblem::EventDigest { .. }));
        let mut without_events = ChainVerifier::new();
        without_events.push(&rows[0], EventAtHand::Missing).unwrap();
        let broken = without_events
            .push(&rows[1], EventAtHand::Missing)
            .unwrap_err();
        assert_eq!((broken.seq, broken.problem), (2, LinkProblem::EventMissing));
    }

    #[test]
    fn a_version_1_row_after_a_version_2_row_is_a_rewritten_row() {
        let tenant = TenantId::new();
        let (payload, metadata) = (raw("{}"), raw("{}"));
        let mut rows = mixed_chain(tenant, 0, 3, &payload, &metadata);
        rows[2].encoding = Encoding::V1;
        rows[2].event_digest = None;
        rows[2].hash = rows[2].compute_hash();
        let broken = verify_records(&rows).unwrap_err();
        assert_eq!(
            (broken.seq, broken.problem),
            (
                3,
                LinkProblem::Downgrade {
                    previous: Encoding::V2
                }
            )
        );
    }

    #[test]
    fn rows_exported_before_the_encoding_was_recorded_read_as_version_1() {
        let rows = chain(TenantId::new(), 2);
        let mut value = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(value["encoding"], 1);
        let object = value.as_object_mut().unwrap();
        object.remove("encoding");
        object.remove("event_digest");
        let back: AuditRecord = serde_json::from_value(value).unwrap();
        assert_eq!(back, rows[0]);
    }

    #[test]
    fn records_and_hashes_round_trip_through_json() {
        let rows = chain(TenantId::new(), 2);
        let text = serde_json::to_string(&rows).unwrap();
        let back: Vec<AuditRecord> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, rows);
        assert_eq!(verify_records(&back), Ok(2));
        assert_eq!(
            rows[0].hash.to_string().parse::<ChainHash>(),
            Ok(rows[0].hash)
        );
    }
}
