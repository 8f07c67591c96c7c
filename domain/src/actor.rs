//! Who issues a command, and the role rules every aggregate applies.

use serde::{Deserialize, Serialize};

use crate::error::AccessError;
use crate::ids::{TenantId, UserId};

/// What a user may do. Users get one role per tenant (an identity-provider group); the platform
/// itself acts as [`Role::System`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Opens sessions, submits queries, requests diagnoses.
    Customer,
    /// Decides on proposed diagnoses and authors captured judgment.
    Consultant,
    /// Reads the record; issues no commands.
    Auditor,
    /// Administers the tenant: onboarding, AI settings.
    Admin,
    /// The platform: the worker, process managers and schedules.
    System,
    /// The platform's operator: plan tiers and suspensions. Acts through the operator command
    /// line, never through a tenant user's token.
    Operator,
}

/// The user behind a command, with the tenant they act for. Every command carries one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Who.
    pub user_id: UserId,
    /// For which tenant.
    pub tenant_id: TenantId,
    /// In which role.
    pub role: Role,
}

impl Actor {
    /// The platform acting on behalf of `tenant_id`.
    pub fn system(tenant_id: TenantId) -> Self {
        Self {
            user_id: UserId::system(),
            tenant_id,
            role: Role::System,
        }
    }

    /// [`AccessError::Forbidden`] unless the actor has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), AccessError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(AccessError::Forbidden { role: self.role })
        }
    }

    /// [`AccessError::NotFound`] unless the actor acts for `tenant_id`.
    pub fn require_tenant(&self, tenant_id: TenantId) -> Result<(), AccessError> {
        if self.tenant_id == tenant_id {
            Ok(())
        } else {
            Err(AccessError::NotFound)
        }
    }

    /// Checks a command on an existing aggregate: the role, then that the aggregate exists and
    /// belongs to the actor's tenant. Returns the aggregate's state.
    pub(crate) fn authorize<'a, T: Owned>(
        &self,
        roles: &[Role],
        state: Option<&'a T>,
    ) -> Result<&'a T, AccessError> {
        self.require(roles)?;
        let state = state.ok_or(AccessError::NotFound)?;
        self.require_tenant(state.tenant_id())?;
        Ok(state)
    }

    /// Checks a command that creates an aggregate: the role, then that the aggregate doesn't
    /// exist yet. A repeat by the same tenant gets `already_exists`; an id taken by another
    /// tenant is [`AccessError::NotFound`].
    pub(crate) fn authorize_creation<T: Owned, E: From<AccessError>>(
        &self,
        roles: &[Role],
        existing: Option<&T>,
        already_exists: E,
    ) -> Result<(), E> {
        self.require(roles)?;
        match existing {
            None => Ok(()),
            Some(state) => {
                self.require_tenant(state.tenant_id())?;
                Err(already_exists)
            }
        }
    }
}

/// An aggregate state that belongs to a tenant.
pub(crate) trait Owned {
    /// The owning tenant.
    fn tenant_id(&self) -> TenantId;
}
