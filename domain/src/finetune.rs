//! Fine-tune exports: the weekly file of a tenant's approved and amended decisions, recorded
//! on the [`Tenant`](crate::tenant::Tenant) as `FinetuneExported`.
//!
//! Each export covers the decisions in a range of the global log, `after` (exclusive) to
//! `up_to` (inclusive). The next export starts where the last recorded one ended, so "since
//! the last export" is read from the tenant's history rather than kept in a counter that
//! could drift from it; the tenant refuses an export that does not start there.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// A point in the global log in reading order: the appending transaction, then the position.
///
/// Ordered like the gap-safe reader orders events, so a range of positions is a range of
/// the log as readers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LogPosition {
    /// The appending transaction's id (`xid8`).
    pub transaction_id: i64,
    /// The event's identity value.
    pub global_position: i64,
}

/// One export file: where it was written and which decisions it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinetuneExport {
    /// The artifacts bucket.
    pub bucket: String,
    /// The object key, `<tenant>/finetune/<date>.jsonl`.
    pub key: String,
    /// The day of the export (serialized `YYYY-MM-DD`).
    pub exported_on: NaiveDate,
    /// Chat examples the file held when it was written (one per decision). An erasure
    /// rewrites the file without the erased customer's examples and leaves this as it was
    /// recorded (the log is never rewritten): the file's lines are the count that holds.
    pub examples: u32,
    /// Where the previous export ended (exclusive); `None` for the tenant's first.
    pub after: Option<LogPosition>,
    /// The last decision in the file (inclusive).
    pub up_to: LogPosition,
}

/// Where the tenant's last export ended and when it ran: the start of the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastExport {
    /// The last decision exported.
    pub up_to: LogPosition,
    /// The day it was exported.
    pub exported_on: NaiveDate,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_positions_order_by_transaction_first() {
        let a = LogPosition {
            transaction_id: 5,
            global_position: 90,
        };
        let b = LogPosition {
            transaction_id: 6,
            global_position: 10,
        };
        assert!(a < b);
    }
}
