//! The read models: one module per projection, each with its row types and its writer.
//!
//! Rows that change over their life (tenants, sessions, diagnoses) are written by
//! *load, fold, store*: a batch loads the rows it touches with one `= ANY($1)` query, folds
//! its events into them in Rust, and writes them back with one `INSERT … SELECT unnest($1),
//! unnest($2), … ON CONFLICT DO UPDATE` (every column bound as one array). Insert-only rows
//! (queries, decisions) are one such `INSERT`; usage is an additive upsert. So a batch costs
//! a few statements per projection, whatever its size, and the fold logic lives in one
//! place, in plain Rust.

mod decisions;
mod diagnoses;
mod judgments;
mod sessions;
mod tenants;
mod usage;

pub use decisions::{Decision, DecisionsProjection};
pub use diagnoses::{DiagnosesProjection, Diagnosis, DiagnosisDecision, Proposal};
pub use judgments::{
    JudgmentRevision, JudgmentSource, JudgmentStatus, JudgmentSummary, JudgmentsProjection,
    RevisionContent, RevisionKind,
};
pub use sessions::{Session, SessionQuery, SessionStatus, SessionsProjection};
pub use tenants::{Tenant, TenantStatus, TenantsProjection};
pub use usage::{Usage, UsageProjection};

pub(crate) use decisions::{from_row as decision_from_row, COLUMNS as DECISION_COLUMNS};
pub(crate) use diagnoses::{from_row as diagnosis_from_row, COLUMNS as DIAGNOSIS_COLUMNS};
pub(crate) use judgments::{
    from_row as judgment_from_row, revision_from_row, COLUMNS as JUDGMENT_COLUMNS, REVISION_COLUMNS,
};
pub(crate) use sessions::{query_from_row, session_from_row, QUERY_COLUMNS, SESSION_COLUMNS};
pub(crate) use tenants::{from_row as tenant_from_row, COLUMNS as TENANT_COLUMNS};
pub(crate) use usage::{from_row as usage_from_row, COLUMNS as USAGE_COLUMNS};
