//! Projections: subscriptions that fold the log into tables of their own.
//!
//! A [`Projection`] applies decoded events with set-based SQL to tables named by a
//! [`Naming`]: the live tables, or a rebuild's shadow copies. [`ProjectionId`] lists
//! Casebook's projections with their tables; [`ProjectionSubscription`] runs one live under
//! the [`Runner`](crate::runner::Runner).

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::audit::AuditProjection;
use crate::decoded::{decode_all, DecodedEvent};
use crate::error::ApplyError;
use crate::log::RecordedEvent;
use crate::models::{
    DecisionsProjection, DiagnosesProjection, JudgmentsProjection, SessionsProjection,
    TenantsProjection, UsageProjection,
};
use crate::subscription::Subscription;

/// A fold of the log into tables.
#[async_trait]
pub trait Projection: Send + Sync {
    /// Which projection this is.
    fn id(&self) -> ProjectionId;

    /// Applies `events` (in reading order) to the projection's tables through `conn`, inside
    /// the caller's transaction. Events the projection doesn't care about are ignored.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[DecodedEvent],
    ) -> Result<(), ApplyError>;
}

/// A table of a projection, with the primary key that orders it for digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    /// The live table's name.
    pub name: &'static str,
    /// Its primary key columns, in order.
    pub key: &'static [&'static str],
}

/// Casebook's projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProjectionId {
    /// `tenants`: status, plan, auto-resolve threshold, model policy; `tenant_users`: people.
    Tenants,
    /// `sessions` and `session_queries`.
    Sessions,
    /// `diagnoses`: status, proposal, provenance, decision; the review queue.
    Diagnoses,
    /// `decisions`.
    Decisions,
    /// `tenant_usage`: tokens and cost per tenant, model and day.
    Usage,
    /// `judgments` and `judgment_revisions`: captured judgment as consultants browse it.
    Judgments,
    /// `audit_log`: one hash-chained row per event.
    Audit,
}

impl ProjectionId {
    /// Every projection.
    pub const ALL: [ProjectionId; 7] = [
        Self::Tenants,
        Self::Sessions,
        Self::Diagnoses,
        Self::Decisions,
        Self::Usage,
        Self::Judgments,
        Self::Audit,
    ];

    /// The subscription name (the row in `subscriptions`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Tenants => "tenants",
            Self::Sessions => "sessions",
            Self::Diagnoses => "diagnoses",
            Self::Decisions => "decisions",
            Self::Usage => "tenant_usage",
            Self::Judgments => "judgments",
            Self::Audit => "audit",
        }
    }

    /// The tables the projection writes.
    pub fn tables(self) -> &'static [TableSpec] {
        const TENANTS: &[TableSpec] = &[
            TableSpec {
                name: "tenants",
                key: &["tenant_id"],
            },
            TableSpec {
                name: "tenant_users",
                key: &["tenant_id", "email"],
            },
        ];
        const SESSIONS: &[TableSpec] = &[
            TableSpec {
                name: "sessions",
                key: &["session_id"],
            },
            TableSpec {
                name: "session_queries",
                key: &["session_id", "query_id"],
            },
        ];
        const DIAGNOSES: &[TableSpec] = &[TableSpec {
            name: "diagnoses",
            key: &["diagnosis_id"],
        }];
        const DECISIONS: &[TableSpec] = &[TableSpec {
            name: "decisions",
            key: &["decision_id"],
        }];
        const USAGE: &[TableSpec] = &[TableSpec {
            name: "tenant_usage",
            key: &["tenant_id", "day", "model_id"],
        }];
        const JUDGMENTS: &[TableSpec] = &[
            TableSpec {
                name: "judgments",
                key: &["judgment_id"],
            },
            TableSpec {
                name: "judgment_revisions",
                key: &["judgment_id", "revision"],
            },
        ];
        const AUDIT: &[TableSpec] = &[TableSpec {
            name: "audit_log",
            key: &["tenant_id", "seq"],
        }];
        match self {
            Self::Tenants => TENANTS,
            Self::Sessions => SESSIONS,
            Self::Diagnoses => DIAGNOSES,
            Self::Decisions => DECISIONS,
            Self::Usage => USAGE,
            Self::Judgments => JUDGMENTS,
            Self::Audit => AUDIT,
        }
    }

    /// The projection writing to the tables `naming` names.
    pub fn build(self, naming: &Naming) -> Box<dyn Projection> {
        match self {
            Self::Tenants => Box::new(TenantsProjection::new(naming)),
            Self::Sessions => Box::new(SessionsProjection::new(naming)),
            Self::Diagnoses => Box::new(DiagnosesProjection::new(naming)),
            Self::Decisions => Box::new(DecisionsProjection::new(naming)),
            Self::Usage => Box::new(UsageProjection::new(naming)),
            Self::Judgments => Box::new(JudgmentsProjection::new(naming)),
            Self::Audit => Box::new(AuditProjection::new(naming)),
        }
    }

    /// The live projection as a subscription, for the runner.
    pub fn subscription(self) -> ProjectionSubscription {
        ProjectionSubscription {
            projection: self.build(&Naming::Live),
        }
    }
}

impl fmt::Display for ProjectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that isn't one of [`ProjectionId::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown projection {0:?}")]
pub struct UnknownProjection(pub String);

impl FromStr for ProjectionId {
    type Err = UnknownProjection;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|id| id.name() == s)
            .ok_or_else(|| UnknownProjection(s.to_owned()))
    }
}

/// Which physical tables a projection writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Naming {
    /// The live tables the application reads.
    Live,
    /// A whole rebuild's shadow tables: `<table>__rebuild`.
    Shadow,
    /// A one-tenant rebuild's shadow tables: `<table>__rebuild_<tenant, 32 hex digits>`.
    TenantShadow(Uuid),
}

impl Naming {
    /// The physical name of the live table `table`.
    pub fn table(&self, table: &str) -> String {
        match self {
            Self::Live => table.to_owned(),
            Self::Shadow => format!("{table}__rebuild"),
            Self::TenantShadow(tenant) => format!("{table}__rebuild_{}", tenant.simple()),
        }
    }
}

/// A live projection run as a [`Subscription`]: decodes each batch, then applies it.
pub struct ProjectionSubscription {
    projection: Box<dyn Projection>,
}

#[async_trait]
impl Subscription for ProjectionSubscription {
    fn name(&self) -> &str {
        self.projection.id().name()
    }

    async fn apply(
        &mut self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ApplyError> {
        let decoded = decode_all(events)?;
        self.projection.apply(conn, &decoded).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_projection_is_found_by_its_name() {
        for id in ProjectionId::ALL {
            assert_eq!(id.name().parse::<ProjectionId>(), Ok(id));
        }
        assert!("nope".parse::<ProjectionId>().is_err());
    }

    #[test]
    fn shadow_names_fit_postgres_identifiers() {
        let naming = Naming::TenantShadow(Uuid::new_v4());
        for id in ProjectionId::ALL {
            for table in id.tables() {
                assert!(naming.table(table.name).len() <= 63);
            }
        }
    }
}
