//! Fixed ids, actors and value shorthands shared by the tests.

use std::fmt::Debug;

use casebook_domain::actor::{Actor, Role};
use casebook_domain::ids::{DiagnosisId, TenantId, UserId};
use casebook_domain::policy::PlanTier;
use casebook_domain::tenant::TenantEvent;
use casebook_domain::values::Confidence;
use uuid::Uuid;

/// The tenant the tests act for.
pub const TENANT: TenantId = TenantId::from_uuid(Uuid::from_u128(0xA));
/// Another tenant, whose users must never see `TENANT`'s aggregates.
pub const OTHER_TENANT: TenantId = TenantId::from_uuid(Uuid::from_u128(0xB));
/// A diagnosis of `TENANT`.
pub const DIAGNOSIS: DiagnosisId = DiagnosisId::from_uuid(Uuid::from_u128(0xD1));

/// A user of `tenant` in `role`, with a stable id per role.
pub fn actor(role: Role, tenant_id: TenantId) -> Actor {
    Actor {
        user_id: v(&format!("{role:?}-user").to_lowercase()),
        tenant_id,
        role,
    }
}

/// The user id `actor(role, _)` carries.
pub fn user(role: Role) -> UserId {
    actor(role, TENANT).user_id
}

/// Parses a valid value, e.g. `v::<Reason>("too vague")`.
pub fn v<T>(text: &str) -> T
where
    T: TryFrom<String>,
    T::Error: Debug,
{
    T::try_from(text.to_owned()).expect("test value is valid")
}

/// A valid confidence.
pub fn conf(value: f64) -> Confidence {
    Confidence::new(value).expect("test confidence is valid")
}

/// `TENANT` onboarded by its admin on the professional plan.
pub fn onboarded() -> Vec<TenantEvent> {
    vec![TenantEvent::TenantOnboarded {
        tenant_id: TENANT,
        name: v("Acme Audit"),
        plan: PlanTier::Professional,
        onboarded_by: user(Role::Admin),
    }]
}
