//! `POS|TIME` arguments: a global position, or a moment.
//!
//! A position bound is a point of the log's reading order (`(transaction_id,
//! global_position)`), so "up to position P" means exactly what a subscription had seen
//! after applying P. A time bound compares the events' `recorded_at` (when the store accepted
//! them); times are UTC unless they carry an offset.

use std::str::FromStr;

use casebook_projections::log::Checkpoint;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use sqlx::PgPool;

use crate::Error;

/// A point to start or stop at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A global position (an event's identity value).
    Position(i64),
    /// A moment, compared with `recorded_at`.
    Time(DateTime<Utc>),
}

/// Text that is neither a position nor a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a global position (e.g. 1200) or a time (RFC 3339, or YYYY-MM-DD[ HH:MM[:SS]] in UTC), got {0:?}")]
pub struct InvalidBound(String);

impl FromStr for Bound {
    type Err = InvalidBound;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(position) = s.parse::<i64>() {
            return Ok(Bound::Position(position));
        }
        if let Ok(time) = DateTime::parse_from_rfc3339(s) {
            return Ok(Bound::Time(time.with_timezone(&Utc)));
        }
        for format in [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M",
        ] {
            if let Ok(time) = NaiveDateTime::parse_from_str(s, format) {
                return Ok(Bound::Time(time.and_utc()));
            }
        }
        if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Ok(Bound::Time(date.and_time(chrono::NaiveTime::MIN).and_utc()));
        }
        Err(InvalidBound(s.to_owned()))
    }
}

/// Where the event at global position `position` sits in reading order, whichever tenant's
/// event it is (`casebook_log_point`, the only thing an auditor learns of another tenant's
/// row); a usage error when no event has that position.
pub async fn checkpoint_of(pool: &PgPool, position: i64) -> Result<Checkpoint, Error> {
    let transaction_id: Option<i64> =
        sqlx::query_scalar("SELECT casebook_log_point($1)::text::bigint")
            .bind(position)
            .fetch_one(pool)
            .await?;
    let transaction_id = transaction_id
        .ok_or_else(|| Error::Usage(format!("no event at global position {position}")))?;
    Ok(Checkpoint {
        transaction_id,
        global_position: position,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_is_a_position() {
        assert_eq!("1200".parse::<Bound>(), Ok(Bound::Position(1200)));
    }

    #[test]
    fn times_read_as_utc_unless_they_carry_an_offset() {
        let expected = DateTime::parse_from_rfc3339("2026-05-03T14:02:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for text in [
            "2026-05-03T14:02:00Z",
            "2026-05-03T16:02:00+02:00",
            "2026-05-03 14:02",
            "2026-05-03T14:02",
            "2026-05-03 14:02:00",
        ] {
            assert_eq!(text.parse::<Bound>(), Ok(Bound::Time(expected)), "{text}");
        }
        assert_eq!(
            "2026-05-03".parse::<Bound>(),
            Ok(Bound::Time(
                expected - chrono::Duration::minutes(14 * 60 + 2)
            ))
        );
    }

    #[test]
    fn anything_else_is_refused_with_the_accepted_forms() {
        let err = "yesterday".parse::<Bound>().unwrap_err();
        assert!(err.to_string().contains("RFC 3339"));
    }
}
