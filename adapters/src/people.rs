//! A tenant's people in Cognito: [`CognitoPeople`] is the application's `IdentityProvider`
//! over a user pool; [`PrintedMailbox`] its `Mailbox` where the emulator, which sends no mail,
//! hands an invitation's temporary password back (`casebook serve` prints it; in AWS Cognito
//! mails it and nobody else ever sees it).

use async_trait::async_trait;
use casebook_application::ports::{IdentityError, IdentityProvider, Mailbox, Provisioned};
use casebook_domain::ids::TenantId;
use casebook_domain::tenant::Member;
use casebook_domain::values::Email;

use crate::cognito::{CognitoAdmin, CognitoError, PoolInfo};

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
