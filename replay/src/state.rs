//! `state TYPE/ID --as-of TIME|POS`: an aggregate's state as it was, by replaying its stored
//! events through the domain's own `apply` (after the domain's upcasters, via
//! [`AnyEvent::decode`]), exactly as the event store rebuilds it for a command.

use std::str::FromStr;

use casebook_domain::any_event::AnyEvent;
use casebook_domain::decision::ConsultantDecision;
use casebook_domain::diagnosis::Diagnosis;
use casebook_domain::judgment::Judgment;
use casebook_domain::session::TenantSession;
use casebook_domain::tenant::Tenant;
use casebook_vault::payload::{self, EventContext};
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::bound::{checkpoint_of, Bound};
use crate::cli::StateArgs;
use crate::Error;

/// The aggregate types `state` knows.
pub const AGGREGATE_TYPES: [&str; 5] = [
    Tenant::TYPE,
    TenantSession::TYPE,
    Diagnosis::TYPE,
    ConsultantDecision::TYPE,
    Judgment::TYPE,
];

/// `TYPE/ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateRef {
    /// One of [`AGGREGATE_TYPES`].
    pub aggregate_type: String,
    /// The aggregate's id.
    pub aggregate_id: String,
}

/// Not `TYPE/ID` with a known type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected TYPE/ID with TYPE one of {AGGREGATE_TYPES:?}, got {0:?}")]
pub struct InvalidAggregateRef(String);

impl FromStr for AggregateRef {
    type Err = InvalidAggregateRef;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((kind, id)) if AGGREGATE_TYPES.contains(&kind) && !id.is_empty() => Ok(Self {
                aggregate_type: kind.to_owned(),
                aggregate_id: id.to_owned(),
            }),
            _ => Err(InvalidAggregateRef(s.to_owned())),
        }
    }
}

/// What `state` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateReport {
    /// The aggregate type.
    pub aggregate_type: String,
    /// The aggregate id.
    pub aggregate_id: String,
    /// The tenant.
    pub tenant_id: Uuid,
    /// The `--as-of` argument: a position (number) or a time; `null` for the latest state.
    pub as_of: Option<Value>,
    /// How many events were replayed.
    pub events: u64,
    /// The last replayed event's sequence in the aggregate's stream.
    pub sequence: i64,
    /// The last replayed event's global position.
    pub global_position: i64,
    /// When the last replayed event was recorded.
    pub recorded_at: DateTime<Utc>,
    /// The aggregate, serialized as the domain defines it.
    pub state: Value,
}

/// Runs `state`: prints the [`StateReport`] as JSON.
pub async fn run(pool: &PgPool, args: StateArgs) -> Result<(), Error> {
    let report = state_as_of(pool, args.tenant, &args.aggregate, args.as_of).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// `aggregate`'s state after its events up to `as_of` (all of them when `None`); a usage
/// error when it has none (another tenant's aggregate has none for this tenant).
pub async fn state_as_of(
    pool: &PgPool,
    tenant: Uuid,
    aggregate: &AggregateRef,
    as_of: Option<Bound>,
) -> Result<StateReport, Error> {
    let (position, time) = match as_of {
        Some(Bound::Position(p)) => (Some(checkpoint_of(pool, p).await?), None),
        Some(Bound::Time(t)) => (None, Some(t)),
        None => (None, None),
    };
    let rows = sqlx::query(
        "SELECT sequence, global_position, event_type, event_version, payload, recorded_at
           FROM events
          WHERE aggregate_type = $1 AND aggregate_id = $2 AND tenant_id = $3
            AND ($4::bigint IS NULL OR (transaction_id, global_position) <= ($4::bigint::text::xid8, $5))
            AND ($6::timestamptz IS NULL OR recorded_at <= $6)
          ORDER BY sequence",
    )
    .bind(&aggregate.aggregate_type)
    .bind(&aggregate.aggregate_id)
    .bind(tenant)
    .bind(position.map(|c| c.transaction_id))
    .bind(position.map(|c| c.global_position))
    .bind(time)
    .fetch_all(pool)
    .await?;
    let Some(last) = rows.last() else {
        return Err(Error::Usage(format!(
            "{}/{} has no events in tenant {tenant}{}",
            aggregate.aggregate_type,
            aggregate.aggregate_id,
            if as_of.is_some() {
                " at that point"
            } else {
                ""
            }
        )));
    };
    let (sequence, global_position, recorded_at) = (
        last.try_get("sequence")?,
        last.try_get("global_position")?,
        last.try_get("recorded_at")?,
    );
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        let event_type: String = row.try_get("event_type")?;
        let event_version: String = row.try_get("event_version")?;
        // States hold nothing personal, so sealed fields are read as their redactions, with
        // no key needed (decision 0027).
        let mut payload: Value = row.try_get("payload")?;
        let context = EventContext {
            tenant,
            aggregate_type: &aggregate.aggregate_type,
            event_type: &event_type,
        };
        payload::redact(&mut payload, context)
            .map_err(|err| Error::Inconsistent(err.to_string()))?;
        let decoded = AnyEvent::decode(
            &aggregate.aggregate_type,
            &event_type,
            &event_version,
            payload,
        )
        .map_err(|source| Error::Decode {
            event: format!(
                "{}/{}#{}",
                aggregate.aggregate_type,
                aggregate.aggregate_id,
                row.try_get::<i64, _>("sequence").unwrap_or_default()
            ),
            source,
        })?;
        events.push(decoded);
    }
    let state = replay(&aggregate.aggregate_type, events)?;
    Ok(StateReport {
        aggregate_type: aggregate.aggregate_type.clone(),
        aggregate_id: aggregate.aggregate_id.clone(),
        tenant_id: tenant,
        as_of: as_of.map(|bound| match bound {
            Bound::Position(p) => Value::from(p),
            Bound::Time(t) => Value::from(t.to_rfc3339()),
        }),
        events: rows.len() as u64,
        sequence,
        global_position,
        recorded_at,
        state,
    })
}

/// Applies `events` to a fresh aggregate of `aggregate_type` and serializes it.
fn replay(aggregate_type: &str, events: Vec<AnyEvent>) -> Result<Value, Error> {
    /// Folds the events of one aggregate type; `AnyEvent::decode` decoded them by that type,
    /// so another variant cannot occur.
    macro_rules! fold {
        ($aggregate:ty, $variant:ident) => {{
            let mut aggregate = <$aggregate>::default();
            for event in events {
                if let AnyEvent::$variant(event) = event {
                    aggregate.apply(event);
                }
            }
            serde_json::to_value(&aggregate)?
        }};
    }
    Ok(match aggregate_type {
        Tenant::TYPE => fold!(Tenant, Tenant),
        TenantSession::TYPE => fold!(TenantSession, Session),
        Diagnosis::TYPE => fold!(Diagnosis, Diagnosis),
        ConsultantDecision::TYPE => fold!(ConsultantDecision, Decision),
        Judgment::TYPE => fold!(Judgment, Judgment),
        other => return Err(Error::Usage(format!("unknown aggregate type {other:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aggregate_is_a_known_type_and_an_id() {
        assert_eq!(
            "Diagnosis/6f1c".parse(),
            Ok(AggregateRef {
                aggregate_type: "Diagnosis".into(),
                aggregate_id: "6f1c".into()
            })
        );
        assert!("Diagnosis".parse::<AggregateRef>().is_err());
        assert!("Invoice/1".parse::<AggregateRef>().is_err());
    }
}
