//! The `tenants` read model: each tenant's status, plan, model policy and auto-resolve
//! threshold, as the API checks them before dispatching a command; and `tenant_users`, its
//! people: role, enabled, identity-provider subject.

use std::collections::HashMap;

use async_trait::async_trait;
use casebook_domain::actor::Role;
use casebook_domain::any_event::AnyEvent;
use casebook_domain::ids::{TenantId, UserId};
use casebook_domain::policy::{ModelPolicy, PlanTier};
use casebook_domain::tenant::{Invitee, TenantEvent};
use casebook_domain::values::Confidence;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::decoded::DecodedEvent;
use crate::error::ApplyError;
use crate::projection::{Naming, Projection, ProjectionId};
use crate::sql::{
    col, decode_error, enum_value, get_enum, get_user, load_by_key, upsert_unnest, Column, Touched,
};

/// Whether a tenant may work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    /// Onboarded or reactivated.
    Active,
    /// Suspended: its sessions, diagnoses and auto-approvals refuse work.
    Suspended,
    /// Erased (decision 0027): it takes no command any more.
    Erased,
}

/// A row of `tenants`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Display name.
    pub name: String,
    /// Active or suspended.
    pub status: TenantStatus,
    /// The plan.
    pub plan: PlanTier,
    /// Which models may see the tenant's data.
    pub model_policy: ModelPolicy,
    /// Proposals at or above it are approved without review; `None`: never.
    pub auto_resolve_threshold: Option<Confidence>,
    /// Why it is suspended, while it is.
    pub suspended_reason: Option<String>,
    /// The admin who onboarded it.
    pub onboarded_by: UserId,
    /// When.
    pub onboarded_at: DateTime<Utc>,
    /// When the last event changed it.
    pub updated_at: DateTime<Utc>,
    /// The sequence of the tenant stream's last event.
    pub version: i64,
}

pub(crate) const COLUMNS: &[Column] = &[
    col("tenant_id", "uuid"),
    col("name", "text"),
    col("status", "text"),
    col("plan", "text"),
    col("model_policy", "text"),
    col("auto_resolve_threshold", "float8"),
    col("suspended_reason", "text"),
    col("onboarded_by", "text"),
    col("onboarded_at", "timestamptz"),
    col("updated_at", "timestamptz"),
    col("version", "int8"),
];

/// Reads a row selected with [`crate::sql::select_list`] of [`COLUMNS`].
pub(crate) fn from_row(row: &PgRow) -> Result<Tenant, sqlx::Error> {
    let threshold: Option<f64> = row.try_get("auto_resolve_threshold")?;
    Ok(Tenant {
        tenant_id: TenantId::from_uuid(row.try_get("tenant_id")?),
        name: row.try_get("name")?,
        status: get_enum(row, "status")?,
        plan: get_enum(row, "plan")?,
        model_policy: get_enum(row, "model_policy")?,
        auto_resolve_threshold: threshold
            .map(Confidence::from_stored)
            .transpose()
            .map_err(|err| decode_error("auto_resolve_threshold", err))?,
        suspended_reason: row.try_get("suspended_reason")?,
        onboarded_by: get_user(row, "onboarded_by")?,
        onboarded_at: row.try_get("onboarded_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

/// Folds one tenant event into the rows.
fn fold(
    rows: &mut HashMap<Uuid, Tenant>,
    e: &DecodedEvent,
    event: &TenantEvent,
) -> Result<(), ApplyError> {
    let id = e.aggregate_uuid()?;
    let created = match event {
        TenantEvent::TenantOnboarded {
            tenant_id,
            name,
            plan,
            onboarded_by,
        } => Some((tenant_id, name, plan, onboarded_by.clone())),
        // Nobody is signed in at a sign-up: the platform onboards.
        TenantEvent::TenantSignedUp {
            tenant_id,
            name,
            plan,
            ..
        } => Some((tenant_id, name, plan, e.metadata.actor_id.clone())),
        _ => None,
    };
    if let Some((tenant_id, name, plan, onboarded_by)) = created {
        if rows.contains_key(&id) {
            return Err(ApplyError::permanent(format!(
                "tenant {id} onboarded twice"
            )));
        }
        rows.insert(
            id,
            Tenant {
                tenant_id: *tenant_id,
                name: name.to_string(),
                status: TenantStatus::Active,
                plan: *plan,
                model_policy: ModelPolicy::default(),
                auto_resolve_threshold: None,
                suspended_reason: None,
                onboarded_by,
                onboarded_at: e.recorded_at,
                updated_at: e.recorded_at,
                version: e.sequence,
            },
        );
        return Ok(());
    }
    let row = rows.get_mut(&id).ok_or_else(|| {
        ApplyError::permanent(format!("{} for unknown tenant {id}", e.event_type))
    })?;
    match event {
        // An export, a usage key, a budget threshold or a model changes nothing shown here; the row
        // still moves to the new version.
        TenantEvent::TenantOnboarded { .. }
        | TenantEvent::TenantSignedUp { .. }
        | TenantEvent::UsageKeyAssigned { .. }
        | TenantEvent::FinetuneExported { .. }
        | TenantEvent::TokenBudgetThresholdCrossed { .. }
        | TenantEvent::UserInvited { .. }
        | TenantEvent::UserRoleChanged { .. }
        | TenantEvent::UserDisabled { .. }
        | TenantEvent::UserEnabled { .. }
        | TenantEvent::UserProvisioned { .. }
        | TenantEvent::SubjectErased { .. }
        | TenantEvent::ModelRegistered { .. }
        | TenantEvent::ModelPromoted { .. }
        | TenantEvent::ModelRejected { .. }
        | TenantEvent::ModelRetired { .. } => {}
        TenantEvent::PlanChanged { plan } => row.plan = *plan,
        TenantEvent::AutoResolveThresholdSet { threshold } => {
            row.auto_resolve_threshold = *threshold;
        }
        TenantEvent::ModelPolicySet { policy } => row.model_policy = *policy,
        TenantEvent::TenantSuspended { reason } => {
            row.status = TenantStatus::Suspended;
            row.suspended_reason = Some(reason.to_string());
        }
        TenantEvent::TenantReactivated => {
            row.status = TenantStatus::Active;
            row.suspended_reason = None;
        }
        TenantEvent::TenantErased { .. } => row.status = TenantStatus::Erased,
    }
    row.updated_at = e.recorded_at;
    row.version = e.sequence;
    Ok(())
}

/// Writes `tenants` and `tenant_users`.
pub struct TenantsProjection {
    load: String,
    store: String,
    people: PeopleStatements,
}

impl TenantsProjection {
    /// The projection over the tables `naming` names.
    pub fn new(naming: &Naming) -> Self {
        let table = naming.table("tenants");
        Self {
            load: load_by_key(&table, COLUMNS, "tenant_id", "uuid"),
            store: upsert_unnest(&table, COLUMNS, &["tenant_id"]),
            people: PeopleStatements::new(&naming.table("tenant_users")),
        }
    }
}

/// The statements that keep `tenant_users`: one per people event, as they are rare beside
/// everything else a batch holds.
struct PeopleStatements {
    invite: String,
    change_role: String,
    set_enabled: String,
    provision: String,
}

impl PeopleStatements {
    fn new(table: &str) -> Self {
        let update = |set: &str| {
            format!(
                r#"UPDATE "{table}" SET {set}, updated_at = $4, version = $5
                    WHERE tenant_id = $1 AND email = $2"#
            )
        };
        Self {
            invite: format!(
                r#"INSERT INTO "{table}"
                       (tenant_id, email, name, role, enabled, user_id, invited_at, updated_at, version)
                   VALUES ($1, $2, $3, $4, true, NULL, $5, $5, $6)"#
            ),
            change_role: update("role = $3"),
            set_enabled: update("enabled = $3"),
            provision: update("user_id = $3"),
        }
    }

    /// Applies one tenant event to its member's row, if it is about a member.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        e: &DecodedEvent,
        event: &TenantEvent,
    ) -> Result<(), ApplyError> {
        let tenant = e.tenant_id;
        let (statement, email, value) = match event {
            TenantEvent::TenantSignedUp { admin, .. } => {
                return self.invite(conn, e, admin, Role::Admin).await;
            }
            TenantEvent::UserInvited { invitee, role } => {
                return self.invite(conn, e, invitee, *role).await;
            }
            TenantEvent::UserRoleChanged { email, role, .. } => (
                &self.change_role,
                email,
                PeopleValue::Text(enum_value(role)?),
            ),
            TenantEvent::UserDisabled { email } => {
                (&self.set_enabled, email, PeopleValue::Flag(false))
            }
            TenantEvent::UserEnabled { email } => {
                (&self.set_enabled, email, PeopleValue::Flag(true))
            }
            TenantEvent::UserProvisioned { email, user_id } => (
                &self.provision,
                email,
                PeopleValue::Text(user_id.to_string()),
            ),
            _ => return Ok(()),
        };
        let query = sqlx::query(statement).bind(tenant).bind(email.as_str());
        let query = match value {
            PeopleValue::Text(text) => query.bind(text),
            PeopleValue::Flag(flag) => query.bind(flag),
        };
        let updated = query
            .bind(e.recorded_at)
            .bind(e.sequence)
            .execute(conn)
            .await?;
        if updated.rows_affected() != 1 {
            return Err(ApplyError::permanent(format!(
                "{} for unknown member {email} of tenant {tenant}",
                e.event_type
            )));
        }
        Ok(())
    }

    async fn invite(
        &self,
        conn: &mut PgConnection,
        e: &DecodedEvent,
        invitee: &Invitee,
        role: Role,
    ) -> Result<(), ApplyError> {
        sqlx::query(&self.invite)
            .bind(e.tenant_id)
            .bind(invitee.email.as_str())
            .bind(invitee.name.as_str())
            .bind(enum_value(&role)?)
            .bind(e.recorded_at)
            .bind(e.sequence)
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// The one column a people event changes.
enum PeopleValue {
    Text(String),
    Flag(bool),
}

#[async_trait]
impl Projection for TenantsProjection {
    fn id(&self) -> ProjectionId {
        ProjectionId::Tenants
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[DecodedEvent],
    ) -> Result<(), ApplyError> {
        let mut touched = Touched::default();
        for e in events {
            if let AnyEvent::Tenant(event) = &e.event {
                let creates = matches!(
                    event,
                    TenantEvent::TenantOnboarded { .. } | TenantEvent::TenantSignedUp { .. }
                );
                touched.touch(e.aggregate_uuid()?, creates);
            }
        }
        if touched.is_empty() {
            return Ok(());
        }
        let mut rows = touched
            .load(conn, &self.load, "tenant_id", from_row)
            .await?;
        for e in events {
            if let AnyEvent::Tenant(event) = &e.event {
                fold(&mut rows, e, event)?;
            }
        }
        let n = rows.len();
        let (mut ids, mut names, mut statuses, mut plans, mut policies) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut thresholds, mut reasons, mut onboarded_by, mut onboarded_at, mut updated_at) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let mut versions = Vec::with_capacity(n);
        for row in rows.into_values() {
            ids.push(*row.tenant_id.as_uuid());
            names.push(row.name);
            statuses.push(enum_value(&row.status)?);
            plans.push(enum_value(&row.plan)?);
            policies.push(enum_value(&row.model_policy)?);
            thresholds.push(row.auto_resolve_threshold.map(Confidence::value));
            reasons.push(row.suspended_reason);
            onboarded_by.push(row.onboarded_by.to_string());
            onboarded_at.push(row.onboarded_at);
            updated_at.push(row.updated_at);
            versions.push(row.version);
        }
        sqlx::query(&self.store)
            .bind(ids)
            .bind(names)
            .bind(statuses)
            .bind(plans)
            .bind(policies)
            .bind(thresholds)
            .bind(reasons)
            .bind(onboarded_by)
            .bind(onboarded_at)
            .bind(updated_at)
            .bind(versions)
            .execute(&mut *conn)
            .await?;
        for e in events {
            if let AnyEvent::Tenant(event) = &e.event {
                self.people.apply(conn, e, event).await?;
            }
        }
        Ok(())
    }
}
