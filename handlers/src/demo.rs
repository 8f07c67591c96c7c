//! `casebook demo`: a newcomer's first minute. Creates (idempotently) a local Cognito user
//! pool in the AWS emulator, a demo tenant with an admin, a customer, a consultant and an
//! auditor, onboards the tenant, and prints the settings the server needs, the users' ID
//! tokens and a curl command that works as pasted.

use casebook_adapters::cognito::{CognitoAdmin, CognitoError, PoolInfo};
use casebook_adapters::config::{AuthConfig, Config};
use casebook_adapters::postgres::{self, DbRole};
use casebook_domain::actor::{Actor, Role};
use casebook_domain::ids::{TenantId, UserId};
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::policy::PlanTier;
use casebook_domain::tenant::TenantCommand;
use casebook_domain::values::TenantName;
use uuid::Uuid;

use crate::service::{RequestContext, Service, ServiceError};

/// The local pool's name.
pub const POOL_NAME: &str = "casebook-local";
/// Every demo user's password (local emulator only).
pub const PASSWORD: &str = "Casebook-demo-1";

/// Why the demo could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The emulator's Cognito failed.
    #[error("local Cognito failed")]
    Cognito(#[from] CognitoError),
    /// The database could not be reached.
    #[error("cannot connect to the database")]
    Connect(#[from] casebook_adapters::postgres::ConnectError),
    /// Migrations failed.
    #[error("migrations failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Onboarding failed.
    #[error("onboarding the demo tenant failed")]
    Onboard(#[from] ServiceError),
}

/// What the demo set up.
pub struct Demo {
    /// The pool (and so the server's token settings).
    pub pool: PoolInfo,
    /// The demo tenant.
    pub tenant: TenantId,
    /// `(role, username, ID token)` of each demo user.
    pub users: Vec<(Role, String, String)>,
}

impl Demo {
    /// The token settings the server needs for this pool.
    pub fn auth_config(&self) -> AuthConfig {
        AuthConfig {
            issuer: self.pool.issuer.clone(),
            audience: self.pool.client_id.clone(),
            jwks_url: self.pool.jwks_url.clone(),
        }
    }
}

/// The demo tenant's fixed id, so reruns find the same tenant.
pub fn demo_tenant() -> TenantId {
    TenantId::from_uuid(Uuid::new_v5(&Uuid::NAMESPACE_URL, b"casebook:demo-tenant"))
}

/// Sets everything up (safe to rerun).
pub async fn set_up(config: &Config) -> Result<Demo, DemoError> {
    let cognito = CognitoAdmin::from_env().await?;
    let pool = cognito.ensure_pool(POOL_NAME).await?;
    let tenant = demo_tenant();
    let mut users = Vec::new();
    let mut admin_sub = None;
    for role in [Role::Admin, Role::Customer, Role::Consultant, Role::Auditor] {
        let username = format!("demo-{role:?}").to_lowercase();
        let user = cognito
            .ensure_user(&pool, &username, PASSWORD, tenant, role)
            .await?;
        if role == Role::Admin {
            admin_sub = Some(user.sub.clone());
        }
        let token = cognito.id_token(&pool, &username, PASSWORD).await?;
        users.push((role, username, token));
    }

    let owner = postgres::connect_database(&config.database, DbRole::Owner, 1).await?;
    postgres::migrate(&owner).await?;
    owner.close().await;
    let app = postgres::connect_database(&config.database, DbRole::App, 2).await?;
    let actor = Actor {
        user_id: UserId::parse(admin_sub.unwrap_or_default()).unwrap_or_else(|_| UserId::system()),
        tenant_id: tenant,
        role: Role::Admin,
    };
    let ctx = RequestContext {
        metadata: EventMetadata::new(&actor, "casebook-demo", Source::Api),
        actor: actor.clone(),
    };
    let onboard = TenantCommand::Onboard {
        actor,
        name: TenantName::parse("Demo Practice").expect("a valid name"),
        plan: PlanTier::Professional,
    };
    match Service::new(app.clone())
        .onboard_tenant(&ctx, onboard)
        .await
    {
        Ok(_) | Err(ServiceError::Conflict(_)) => {}
        Err(err) => return Err(err.into()),
    }
    app.close().await;
    Ok(Demo {
        pool,
        tenant,
        users,
    })
}
