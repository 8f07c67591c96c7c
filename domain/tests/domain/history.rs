//! Stored history past today's limits (issue 27): every event type and version the log may
//! hold, with values today's rules refuse (as it would after a limit is tightened), decodes
//! through the same upcasters and `Deserialize` the stores use and rebuilds its aggregate.
//!
//! The fixtures in `tests/fixtures/history/` are rows of the events table, grouped by
//! aggregate type, each stream's rows in order.

use std::any::type_name;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use casebook_domain::actor::{Actor, Role};
use casebook_domain::any_event::AnyEvent;
use casebook_domain::decision::{ConsultantDecision, DecisionEvent, Outcome, Verdict};
use casebook_domain::diagnosis::{Diagnosis, DiagnosisEvent, DiagnosisStatus};
use casebook_domain::ids::{DecisionId, DiagnosisId, JudgmentId, QueryId, UserId};
use casebook_domain::judgment::{
    Judgment, JudgmentCommand, JudgmentContent, JudgmentError, JudgmentEvent,
};
use casebook_domain::metadata::EventMetadata;
use casebook_domain::policy::{ModelPolicy, PlanTier};
use casebook_domain::session::{SessionEvent, TenantSession};
use casebook_domain::tenant::{Tenant, TenantEvent};
use casebook_domain::upcast::{upcast, upcasters};
use casebook_domain::values::{
    Confidence, DiagnosisText, Email, JudgmentBody, JudgmentTitle, PersonName, QueryText, Reason,
    Subject, Tag, TenantName, UploadKey,
};
use cqrs_es::persist::SerializedEvent;
use cqrs_es::test::TestFramework;
use cqrs_es::{Aggregate, DomainEvent, EventEnvelope};
use serde::de::value::MapDeserializer;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::support::v;

const PRACTICE: &str = "00000000-0000-0000-0000-00000000000a";
const SIGNED_UP: &str = "00000000-0000-0000-0000-00000000000c";
const SESSION: &str = "00000000-0000-0000-0000-0000000005e1";
const REJECTED: &str = "00000000-0000-0000-0000-0000000000d1";
const AUTO_APPROVED: &str = "00000000-0000-0000-0000-0000000000d2";
const AMENDED: &str = "00000000-0000-0000-0000-0000000000d3";
const AUTHORED: &str = "00000000-0000-0000-0000-000000000077";

/// One row of the events table.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct StoredRow {
    pub(crate) aggregate_type: String,
    aggregate_id: String,
    sequence: usize,
    pub(crate) event_type: String,
    pub(crate) event_version: String,
    pub(crate) payload: Value,
    metadata: Value,
}

impl StoredRow {
    fn serialized(&self) -> SerializedEvent {
        SerializedEvent::new(
            self.aggregate_id.clone(),
            self.sequence,
            self.aggregate_type.clone(),
            self.event_type.clone(),
            self.event_version.clone(),
            self.payload.clone(),
            self.metadata.clone(),
        )
    }

    pub(crate) fn at(&self) -> String {
        format!(
            "{} {} #{} ({} v{})",
            self.aggregate_type,
            self.aggregate_id,
            self.sequence,
            self.event_type,
            self.event_version
        )
    }

    /// Decodes the row as the projections do.
    fn decode(&self) -> AnyEvent {
        AnyEvent::decode(
            &self.aggregate_type,
            &self.event_type,
            &self.event_version,
            self.payload.clone(),
        )
        .unwrap_or_else(|err| panic!("{}: {err:?}", self.at()))
    }
}

/// Every row of every fixture file.
pub(crate) fn history() -> Vec<StoredRow> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/history");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|path| {
            let text = std::fs::read_to_string(path).expect("a readable fixture");
            serde_json::from_str::<Vec<StoredRow>>(&text)
                .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        })
        .collect()
}

/// The aggregate type of an event. Exhaustive on purpose: a new aggregate doesn't compile
/// until it is named here, next to [`event_types_by_aggregate`], which must list it too.
fn aggregate_of(event: &AnyEvent) -> &'static str {
    match event {
        AnyEvent::Tenant(_) => Tenant::TYPE,
        AnyEvent::Session(_) => TenantSession::TYPE,
        AnyEvent::Diagnosis(_) => Diagnosis::TYPE,
        AnyEvent::Decision(_) => ConsultantDecision::TYPE,
        AnyEvent::Judgment(_) => Judgment::TYPE,
    }
}

/// Every aggregate's event types, read from its event enum.
fn event_types_by_aggregate() -> [(&'static str, Vec<&'static str>); 5] {
    [
        (Tenant::TYPE, event_types::<TenantEvent>()),
        (TenantSession::TYPE, event_types::<SessionEvent>()),
        (Diagnosis::TYPE, event_types::<DiagnosisEvent>()),
        (ConsultantDecision::TYPE, event_types::<DecisionEvent>()),
        (Judgment::TYPE, event_types::<JudgmentEvent>()),
    ]
}

/// The event types `E` decodes: the variants its derived `Deserialize` knows, which it hands
/// to [`serde::de::Error::unknown_variant`] for a `type` tag that is none of them. Read from
/// the enum itself, so a new variant is listed without anyone having to list it.
fn event_types<E: DeserializeOwned + fmt::Debug>() -> Vec<&'static str> {
    let unknown_tag = MapDeserializer::<_, Probe>::new(std::iter::once(("type", "")));
    match E::deserialize(unknown_tag) {
        Err(Probe::Variants(names)) => names.to_vec(),
        other => panic!(
            "expected the list of {}'s variants, got {other:?}",
            type_name::<E>()
        ),
    }
}

/// The error [`event_types`] provokes.
#[derive(Debug)]
enum Probe {
    Variants(&'static [&'static str]),
    Other(String),
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Variants(names) => write!(f, "one of {names:?} expected"),
            Self::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Probe {}

impl serde::de::Error for Probe {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self::Other(message.to_string())
    }

    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        Self::Variants(expected)
    }
}

#[test]
fn every_stored_event_type_and_version_has_a_history_fixture() {
    let history = history();
    let held: BTreeSet<(&str, &str, u32)> = history
        .iter()
        .map(|row| {
            let version = row.event_version.parse().expect("a whole version");
            (
                row.aggregate_type.as_str(),
                row.event_type.as_str(),
                version,
            )
        })
        .collect();
    // The version each event type is written at today, from the fixtures decoded to it. A
    // type without a fixture needs one at version 1; each bump leaves the older versions in
    // the log (the upcasters read them), so every version up to the current one needs one.
    let current: BTreeMap<(&str, String), u32> = history
        .iter()
        .map(|row| {
            let event = row.decode();
            let version = match &event {
                AnyEvent::Tenant(e) => e.event_version(),
                AnyEvent::Session(e) => e.event_version(),
                AnyEvent::Diagnosis(e) => e.event_version(),
                AnyEvent::Decision(e) => e.event_version(),
                AnyEvent::Judgment(e) => e.event_version(),
            };
            let key = (aggregate_of(&event), row.event_type.clone());
            (key, version.parse().expect("a whole version"))
        })
        .collect();
    let mut missing = Vec::new();
    for (aggregate, event_types) in event_types_by_aggregate() {
        for event_type in event_types {
            let newest = current
                .get(&(aggregate, event_type.to_owned()))
                .copied()
                .unwrap_or(1);
            for version in 1..=newest {
                if !held.contains(&(aggregate, event_type, version)) {
                    missing.push(format!("{aggregate} {event_type} v{version}"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "tests/fixtures/history holds no stored row of {missing:#?}"
    );
}

/// An aggregate whose events [`AnyEvent`] wraps.
pub(crate) trait Wrapped: Aggregate + PartialEq + fmt::Debug {
    fn wrap(event: Self::Event) -> AnyEvent;
}

impl Wrapped for Tenant {
    fn wrap(event: TenantEvent) -> AnyEvent {
        AnyEvent::Tenant(event)
    }
}

impl Wrapped for TenantSession {
    fn wrap(event: SessionEvent) -> AnyEvent {
        AnyEvent::Session(event)
    }
}

impl Wrapped for Diagnosis {
    fn wrap(event: DiagnosisEvent) -> AnyEvent {
        AnyEvent::Diagnosis(event)
    }
}

impl Wrapped for ConsultantDecision {
    fn wrap(event: DecisionEvent) -> AnyEvent {
        AnyEvent::Decision(event)
    }
}

impl Wrapped for Judgment {
    fn wrap(event: JudgmentEvent) -> AnyEvent {
        AnyEvent::Judgment(event)
    }
}

/// One stream, rebuilt.
pub(crate) struct Rebuilt<A: Aggregate> {
    pub(crate) aggregate: A,
    events: Vec<A::Event>,
}

/// Rebuilds every stream of `A` in `history`, by aggregate id. Each row is decoded as the event
/// store does (the upcasters, then the event enum's `Deserialize`) and as the projections do
/// ([`AnyEvent::decode`]), which must agree, its metadata read as [`EventMetadata`], and the
/// event applied. The rebuilt aggregate must survive a snapshot, the store's other read.
pub(crate) fn rebuild<A: Wrapped>(history: &[StoredRow]) -> BTreeMap<String, Rebuilt<A>> {
    let upcasters = upcasters();
    let mut streams = BTreeMap::<String, Rebuilt<A>>::new();
    for row in history.iter().filter(|row| row.aggregate_type == A::TYPE) {
        let at = row.at();
        let envelope = EventEnvelope::<A>::try_from(upcast(row.serialized(), &upcasters))
            .unwrap_or_else(|err| panic!("{at}: {err}"));
        assert_eq!(row.decode(), A::wrap(envelope.payload.clone()), "{at}");
        EventMetadata::from_json(row.metadata.clone()).unwrap_or_else(|err| panic!("{at}: {err}"));
        let stream = streams
            .entry(row.aggregate_id.clone())
            .or_insert_with(|| Rebuilt {
                aggregate: A::default(),
                events: Vec::new(),
            });
        assert_eq!(row.sequence, stream.events.len() + 1, "{at} out of order");
        stream.aggregate.apply(envelope.payload.clone());
        stream.events.push(envelope.payload);
    }
    for (id, stream) in &streams {
        let snapshot = serde_json::to_value(&stream.aggregate).expect("serializes");
        let restored: A = serde_json::from_value(snapshot)
            .unwrap_or_else(|err| panic!("{} {id}'s snapshot: {err}", A::TYPE));
        assert_eq!(restored, stream.aggregate, "{} {id}'s snapshot", A::TYPE);
    }
    streams
}

#[test]
fn history_past_todays_limits_decodes_and_rebuilds_every_aggregate() {
    let history = history();

    let tenants = rebuild::<Tenant>(&history);
    let practice = &tenants[PRACTICE].aggregate;
    assert!(practice.is_active());
    assert_eq!(practice.plan(), Some(PlanTier::CostSensitive));
    assert_eq!(practice.model_policy(), Some(ModelPolicy::OpenWeightsOnly));
    assert_eq!(
        practice.auto_resolve_threshold().map(Confidence::value),
        Some(1.0)
    );
    assert!(practice.usage_key_on_current_plan());
    assert!(practice.last_finetune_export().is_some());
    let ann = practice
        .member(&Email::from_stored("ann@localhost"))
        .expect("a member under an address today's rules refuse");
    assert_eq!((ann.role, ann.enabled), (Role::Auditor, true));
    assert!(ann.user_id.is_some());
    let signed_up = &tenants[SIGNED_UP].aggregate;
    let [TenantEvent::TenantSignedUp { admin, .. }, TenantEvent::TenantErased { .. }] =
        tenants[SIGNED_UP].events.as_slice()
    else {
        panic!("expected a sign-up, then the tenant's erasure");
    };
    assert!(!signed_up.is_active());
    let first_admin = signed_up.member(&admin.email).expect("the first admin");
    assert_eq!(
        (first_admin.role, first_admin.name.as_str()),
        (Role::Admin, "")
    );

    let sessions = rebuild::<TenantSession>(&history);
    for query in [REJECTED, AUTO_APPROVED, AMENDED] {
        let query: QueryId = query.parse().expect("a query id");
        assert!(sessions[SESSION].aggregate.has_query(query), "{query}");
    }

    let diagnoses = rebuild::<Diagnosis>(&history);
    let decisions = rebuild::<ConsultantDecision>(&history);
    for (id, outcome) in [
        (REJECTED, Outcome::Rejected),
        (AUTO_APPROVED, Outcome::AutoApproved),
        (AMENDED, Outcome::Amended),
    ] {
        assert_eq!(
            diagnoses[id].aggregate.status(),
            Some(DiagnosisStatus::Resolved { outcome }),
            "{id}"
        );
        assert_eq!(decisions[id].aggregate.outcome(), Some(outcome), "{id}");
    }

    // A judgment rebuilt from history still applies today's rules to new commands.
    let judgments = rebuild::<Judgment>(&history);
    let amended: DiagnosisId = AMENDED.parse().expect("a diagnosis id");
    let captured = JudgmentId::for_decision(DecisionId::for_diagnosis(amended)).to_string();
    let consultant = Actor {
        user_id: v("consultant-1"),
        tenant_id: PRACTICE.parse().expect("a tenant id"),
        role: Role::Consultant,
    };
    let revise = JudgmentCommand::Revise {
        actor: consultant.clone(),
        content: JudgmentContent {
            title: v("Title transfer"),
            body: v("Ownership passing at term end makes it a finance lease."),
            tags: vec![],
        },
    };
    TestFramework::<Judgment>::with(())
        .given(judgments[&captured].events.clone())
        .when(revise)
        .then_expect_error(JudgmentError::Retired);
    TestFramework::<Judgment>::with(())
        .given(judgments[AUTHORED].events.clone())
        .when(JudgmentCommand::Retire {
            actor: consultant.clone(),
            reason: v("Superseded"),
        })
        .then_expect_events(vec![JudgmentEvent::JudgmentRetired {
            reason: v("Superseded"),
            retired_by: consultant.user_id,
        }]);
}

#[test]
fn the_history_fixtures_break_a_limit_of_every_bounded_value_type() {
    let mut refused = BTreeSet::new();
    for row in history() {
        note_refused(&row.decode(), &mut refused);
        let metadata = EventMetadata::from_json(row.metadata).expect("metadata");
        note::<UserId>(&mut refused, metadata.actor_id.as_str());
    }
    let unrefused: Vec<&str> = [
        type_name::<Reason>(),
        type_name::<QueryText>(),
        type_name::<Subject>(),
        type_name::<TenantName>(),
        type_name::<DiagnosisText>(),
        type_name::<JudgmentTitle>(),
        type_name::<JudgmentBody>(),
        type_name::<Tag>(),
        type_name::<UploadKey>(),
        type_name::<PersonName>(),
        type_name::<Email>(),
        type_name::<UserId>(),
    ]
    .into_iter()
    .filter(|name| !refused.contains(name))
    .collect();
    assert!(
        unrefused.is_empty(),
        "no fixture holds a value today's rules refuse for {unrefused:?}; decoding them proves \
         nothing: make one exceed the new limit"
    );
}

/// Notes `T` in `refused` if today's rules refuse `value` for it.
fn note<T: TryFrom<String>>(refused: &mut BTreeSet<&'static str>, value: &str) {
    if T::try_from(value.to_owned()).is_err() {
        refused.insert(type_name::<T>());
    }
}

/// Notes the type of every value in `event` that today's rules refuse.
fn note_refused(event: &AnyEvent, refused: &mut BTreeSet<&'static str>) {
    let mut content = |content: &JudgmentContent| {
        note::<JudgmentTitle>(refused, content.title.as_str());
        note::<JudgmentBody>(refused, content.body.as_str());
        for tag in &content.tags {
            note::<Tag>(refused, tag.as_str());
        }
    };
    match event {
        AnyEvent::Judgment(
            JudgmentEvent::JudgmentCaptured { content: c, .. }
            | JudgmentEvent::JudgmentRevised { content: c, .. },
        ) => content(c),
        AnyEvent::Judgment(JudgmentEvent::JudgmentRetired { reason, .. })
        | AnyEvent::Tenant(TenantEvent::TenantSuspended { reason })
        | AnyEvent::Diagnosis(DiagnosisEvent::DiagnosisFailed { reason, .. })
        | AnyEvent::Decision(DecisionEvent::DecisionMade {
            verdict: Verdict::Rejected { reason },
            ..
        }) => note::<Reason>(refused, reason.as_str()),
        AnyEvent::Decision(DecisionEvent::DecisionMade {
            verdict: Verdict::Amended { text, reason },
            ..
        }) => {
            note::<DiagnosisText>(refused, text.as_str());
            if let Some(reason) = reason {
                note::<Reason>(refused, reason.as_str());
            }
        }
        AnyEvent::Tenant(TenantEvent::TenantOnboarded { name, .. }) => {
            note::<TenantName>(refused, name.as_str());
        }
        AnyEvent::Tenant(TenantEvent::TenantSignedUp { name, admin, .. }) => {
            note::<TenantName>(refused, name.as_str());
            note::<Email>(refused, admin.email.as_str());
            note::<PersonName>(refused, admin.name.as_str());
        }
        AnyEvent::Tenant(TenantEvent::UserInvited { invitee, .. }) => {
            note::<Email>(refused, invitee.email.as_str());
            note::<PersonName>(refused, invitee.name.as_str());
        }
        AnyEvent::Session(SessionEvent::SessionOpened {
            subject,
            attachments,
            ..
        }) => {
            note::<Subject>(refused, subject.as_str());
            for key in attachments {
                note::<UploadKey>(refused, key.as_str());
            }
        }
        AnyEvent::Session(SessionEvent::QuerySubmitted { text: query, .. })
        | AnyEvent::Diagnosis(DiagnosisEvent::DiagnosisRequested { query, .. }) => {
            note::<QueryText>(refused, query.as_str());
        }
        AnyEvent::Diagnosis(DiagnosisEvent::DiagnosisProposed {
            text, provenance, ..
        }) => {
            note::<DiagnosisText>(refused, text.as_str());
            for read in provenance.attachments.iter().flatten() {
                note::<UploadKey>(refused, read.key.as_str());
            }
        }
        _ => {}
    }
}
