//! Casebook's projections: everything built *from* the event log.
//!
//! - [`log`]: the gap-safe reader of the global log — pages in `(transaction_id,
//!   global_position)` order below the oldest running transaction, so an event whose
//!   transaction commits late is never skipped; as a finite catch-up stream or a tailing one
//!   woken by `NOTIFY`.
//!
//! Subscriptions (checkpointed readers), read models, the audit chain and the judgment index
//! are built on it.

pub mod log;
