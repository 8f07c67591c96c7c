//! A tenant's people in the identity provider: every member's account is made what the
//! tenant's events say — it exists, holds their role's group and only that one, and is enabled
//! or disabled — by the `people` subscription.
//!
//! The order is **event first, account after**. The admin's command appends `UserInvited`
//! (`UserRoleChanged`, `UserDisabled`, …) and answers; the subscription then calls Cognito and,
//! for a new account, records its subject (`UserProvisioned`). So:
//! - a Cognito outage fails nothing the admin did: the subscription retries from its checkpoint
//!   until Cognito answers, and the invitation goes out then;
//! - a crash between the event and the Cognito call loses nothing: the checkpoint hadn't moved,
//!   the event is delivered again;
//! - every step repeats safely: the account is looked up before it is created, groups and the
//!   enabled flag are set to what the tenant says *now* (not what an old event said, so a
//!   replay never undoes a later change), and the tenant records a subject only once.
//!
//! The reverse order (Cognito first) could leave an account whose event never landed: a user
//! who can sign in to a tenant that never invited them.
//!
//! Against the emulator, which sends no mail, an invitation's temporary password goes to the
//! [`Mailbox`] instead: `casebook serve` prints it. In AWS Cognito mails it and nobody else
//! ever sees it.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use casebook_adapters::cognito::{CognitoAdmin, CognitoError, PoolInfo};
use casebook_domain::ids::{TenantId, UserId};
use casebook_domain::tenant::{Member, Tenant, TenantCommand, TenantEvent};
use casebook_domain::values::Email;
use casebook_projections::error::ApplyError;
use casebook_projections::log::RecordedEvent;
use casebook_projections::subscription::Subscription;
use cqrs_es::Aggregate;

use crate::reactions::{caused_by, ReactionError};
use crate::service::{Service, ServiceError};

/// What went wrong making an account what its tenant says.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The address belongs to an account of another tenant (one made outside Casebook: the
    /// product claims each address for one tenant before inviting it).
    #[error("{email} already has an account in another tenant")]
    OtherTenant {
        /// The address.
        email: Email,
    },
    /// The identity provider failed; trying again later may succeed.
    #[error("the identity provider failed")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// An account as [`IdentityProvider::converge`] left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The account's subject: the `sub` of its tokens.
    pub sub: String,
    /// The temporary password of an invitation sent now, where the provider hands it back
    /// (the emulator) instead of mailing it.
    pub temporary_password: Option<String>,
}

/// The identity provider, as the people subscription needs it.
#[async_trait]
pub trait IdentityProvider: Send + Sync {
    /// Makes the account of `email` in `tenant` what `member` says: created (and invited) if
    /// absent, in exactly their role's group, enabled or disabled. Safe to repeat.
    async fn converge(
        &self,
        tenant: TenantId,
        email: &Email,
        member: &Member,
    ) -> Result<Provisioned, IdentityError>;
}

/// A Cognito user pool as the [`IdentityProvider`].
pub struct CognitoPeople {
    cognito: CognitoAdmin,
    pool: PoolInfo,
}

impl CognitoPeople {
    /// People kept in `pool` through `cognito`.
    pub fn new(cognito: CognitoAdmin, pool: PoolInfo) -> Self {
        Self { cognito, pool }
    }
}

fn unavailable(err: CognitoError) -> IdentityError {
    IdentityError::Unavailable(Box::new(err))
}

#[async_trait]
impl IdentityProvider for CognitoPeople {
    async fn converge(
        &self,
        tenant: TenantId,
        email: &Email,
        member: &Member,
    ) -> Result<Provisioned, IdentityError> {
        let address = email.as_str();
        let (sub, temporary_password, enabled) = match self
            .cognito
            .find_account(&self.pool, address)
            .await
            .map_err(unavailable)?
        {
            Some(account) => {
                if account.tenant_id.as_deref() != Some(tenant.to_string().as_str()) {
                    return Err(IdentityError::OtherTenant {
                        email: email.clone(),
                    });
                }
                (account.sub, None, account.enabled)
            }
            None => {
                let invited = self
                    .cognito
                    .invite(&self.pool, address, member.name.as_str(), tenant)
                    .await
                    .map_err(unavailable)?;
                (invited.sub, invited.temporary_password, true)
            }
        };
        self.cognito
            .set_role_group(&self.pool, address, member.role)
            .await
            .map_err(unavailable)?;
        if enabled != member.enabled {
            self.cognito
                .set_enabled(&self.pool, address, member.enabled)
                .await
                .map_err(unavailable)?;
        }
        Ok(Provisioned {
            sub,
            temporary_password,
        })
    }
}

/// Where invitations go when the identity provider doesn't mail them (the emulator).
pub trait Mailbox: Send + Sync {
    /// `email` of `tenant` was invited with `temporary_password`.
    fn invitation(&self, tenant: TenantId, email: &Email, temporary_password: &str);
}

/// The local mailbox of `casebook serve`: the invitation is printed to its log.
pub struct PrintedMailbox;

impl Mailbox for PrintedMailbox {
    fn invitation(&self, tenant: TenantId, email: &Email, temporary_password: &str) {
        tracing::info!(
            %tenant,
            %email,
            temporary_password,
            "local invitation (the emulator mails nothing): sign in with this temporary password, then choose your own"
        );
    }
}

/// A mailbox that keeps every invitation's temporary password: `casebook demo` signs its
/// users in for the first time with them, and so do the tests.
#[derive(Debug, Default)]
pub struct KeptMailbox(Mutex<Vec<(Email, String)>>);

impl KeptMailbox {
    /// The temporary password of `email`'s latest invitation, if one came.
    pub fn temporary_password(&self, email: &Email) -> Option<String> {
        let invitations = self.0.lock().expect("mailbox poisoned");
        invitations
            .iter()
            .rev()
            .find(|(to, _)| to == email)
            .map(|(_, password)| password.clone())
    }

    /// How many invitations `email` was sent.
    pub fn invitations_to(&self, email: &Email) -> usize {
        let invitations = self.0.lock().expect("mailbox poisoned");
        invitations.iter().filter(|(to, _)| to == email).count()
    }
}

impl Mailbox for KeptMailbox {
    fn invitation(&self, _tenant: TenantId, email: &Email, temporary_password: &str) {
        self.0
            .lock()
            .expect("mailbox poisoned")
            .push((email.clone(), temporary_password.to_owned()));
    }
}

/// The subscription that keeps every member's account as their tenant says.
pub struct PeopleSubscription {
    service: Service,
    identity: Arc<dyn IdentityProvider>,
    mailbox: Arc<dyn Mailbox>,
}

impl PeopleSubscription {
    /// The subscription's name in `subscriptions`.
    pub const NAME: &'static str = "people";

    /// Accounts kept through `identity`, subjects recorded through `service`, invitations the
    /// provider hands back put in `mailbox`.
    pub fn new(
        service: Service,
        identity: Arc<dyn IdentityProvider>,
        mailbox: Arc<dyn Mailbox>,
    ) -> Self {
        Self {
            service,
            identity,
            mailbox,
        }
    }

    /// Makes the account of the member `event` is about what the tenant says now.
    async fn converge(
        &self,
        event: &RecordedEvent,
        tenant_event: TenantEvent,
    ) -> Result<(), ApplyError> {
        let email = match tenant_event {
            TenantEvent::TenantSignedUp { admin, .. } => admin.email,
            TenantEvent::UserInvited { invitee, .. } => invitee.email,
            TenantEvent::UserRoleChanged { email, .. }
            | TenantEvent::UserDisabled { email }
            | TenantEvent::UserEnabled { email } => email,
            _ => return Ok(()),
        };
        let tenant_id: TenantId = event
            .aggregate_id
            .parse()
            .map_err(|_| ApplyError::permanent(format!("tenant id {}", event.aggregate_id)))?;
        let failed = |err: ServiceError| ReactionError::Command(err).into_apply_error(event);
        let tenant = self.service.tenant_state(tenant_id).await.map_err(failed)?;
        let Some(member) = tenant.member(&email) else {
            return Err(ApplyError::permanent(format!(
                "{} names {email}, whom tenant {tenant_id} doesn't know",
                event.event_type
            )));
        };
        let provisioned = match self.identity.converge(tenant_id, &email, member).await {
            Ok(provisioned) => provisioned,
            Err(IdentityError::Unavailable(err)) => return Err(ApplyError::Transient(err)),
            // Not Casebook's account to change: holding up every tenant's people for it would
            // be worse. The claim on each address makes this an operator's doing.
            Err(err @ IdentityError::OtherTenant { .. }) => {
                tracing::error!(error = %err, %tenant_id, "member not provisioned");
                return Ok(());
            }
        };
        if let Some(password) = &provisioned.temporary_password {
            self.mailbox.invitation(tenant_id, &email, password);
        }
        if member.user_id.is_some() {
            return Ok(());
        }
        let user_id = UserId::parse(provisioned.sub).map_err(|err| {
            ApplyError::permanent(format!("the provider's subject for {email}: {err}"))
        })?;
        let ctx = caused_by(event).map_err(|err| err.into_apply_error(event))?;
        let record = TenantCommand::RecordUserProvisioned {
            actor: ctx.actor.clone(),
            email,
            user_id,
        };
        match self.service.administer_tenant(&ctx, record).await {
            // Recorded by an earlier delivery.
            Ok(_) | Err(ServiceError::Conflict(_)) => Ok(()),
            Err(err) => Err(failed(err)),
        }
    }
}

#[async_trait]
impl Subscription for PeopleSubscription {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn apply(
        &mut self,
        _conn: &mut sqlx::PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ApplyError> {
        for event in events {
            if event.aggregate_type != Tenant::TYPE {
                continue;
            }
            let people_event = matches!(
                event.event_type.as_str(),
                "TenantSignedUp"
                    | "UserInvited"
                    | "UserRoleChanged"
                    | "UserDisabled"
                    | "UserEnabled"
            );
            if !people_event {
                continue;
            }
            let tenant_event: TenantEvent = event
                .payload()
                .map_err(|err| ApplyError::permanent_from("cannot decode the tenant event", err))?;
            self.converge(event, tenant_event).await?;
        }
        Ok(())
    }
}
