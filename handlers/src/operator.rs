//! The operator's commands: a tenant's plan tier, its suspension and its erasure.
//!
//! They are the platform's decisions (what a practice pays for, whether it may work, when it
//! leaves for good), so no
//! route exposes them and no tenant token can reach them: the operator runs them from the
//! command line (`casebook operator …`) with the database's credentials. Each is an ordinary
//! command on the tenant, recorded like every other one — actor `operator:<name>`, role
//! `operator`, source `operator` — so the audit table answers who changed which plan when.

use casebook_domain::actor::{Actor, Role};
use casebook_domain::ids::{TenantId, UserId};
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::policy::PlanTier;
use casebook_domain::tenant::TenantCommand;
use casebook_domain::values::{Reason, ValidationError};

use casebook_application::service::{Accepted, RequestContext, Service, ServiceError};

/// What the operator does to a tenant.
#[derive(Debug, Clone, PartialEq)]
pub enum OperatorAction {
    /// Move the tenant to `plan`.
    ChangePlan(PlanTier),
    /// Stop the tenant's work, for `reason`.
    Suspend(Reason),
    /// Lift a suspension.
    Reactivate,
    /// Erase the tenant for good (decision 0027): every data key of its customers destroyed,
    /// what was derived from their data purged, and no command taken from then on.
    Erase,
}

/// The operator acting on one tenant.
#[derive(Debug, Clone)]
pub struct Operator {
    ctx: RequestContext,
}

impl Operator {
    /// `name` (who is at the keyboard, recorded as `operator:<name>`) acting on `tenant`
    /// for the run `run_id`.
    pub fn new(name: &str, tenant: TenantId, run_id: &str) -> Result<Self, ValidationError> {
        let actor = Actor {
            user_id: UserId::parse(format!("operator:{name}"))?,
            tenant_id: tenant,
            role: Role::Operator,
        };
        let metadata = EventMetadata::new(&actor, run_id, Source::Operator);
        Ok(Self {
            ctx: RequestContext { actor, metadata },
        })
    }

    /// Carries out `action` on the tenant.
    pub async fn apply(
        &self,
        service: &Service,
        action: OperatorAction,
    ) -> Result<Accepted, ServiceError> {
        let actor = self.ctx.actor.clone();
        let command = match action {
            OperatorAction::ChangePlan(plan) => TenantCommand::ChangePlan { actor, plan },
            OperatorAction::Suspend(reason) => TenantCommand::Suspend { actor, reason },
            OperatorAction::Reactivate => TenantCommand::Reactivate { actor },
            // The keys go first, which only the service's erasure does.
            OperatorAction::Erase => return service.erase_tenant(&self.ctx).await,
        };
        service.administer_tenant(&self.ctx, command).await
    }
}
