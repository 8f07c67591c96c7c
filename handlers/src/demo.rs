//! `casebook demo`: a newcomer's first minute, through the product's own paths. Creates
//! (idempotently) a local Cognito user pool in the AWS emulator; signs the demo practice up as
//! `POST /v1/signup` does; its admin invites a customer, a consultant and an auditor as
//! `POST /v1/users` does; the people subscription creates their accounts; each user's first
//! sign-in trades the invitation's temporary password for [`PASSWORD`]. Then it prints the
//! settings the server needs, the users' ID tokens and a curl command that works as pasted.

use std::sync::Arc;
use std::time::Duration;

use casebook_adapters::cognito::{CognitoAdmin, CognitoError, PoolInfo, SignIn};
use casebook_adapters::config::{AuthConfig, DatabaseConfig};
use casebook_adapters::postgres::{self, DbRole};
use casebook_domain::actor::{Actor, Role};
use casebook_domain::ids::TenantId;
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::policy::PlanTier;
use casebook_domain::tenant::{Invitee, Tenant};
use casebook_domain::values::{Email, PersonName, TenantName};
use casebook_projections::runner::{RunError, Runner};
use uuid::Uuid;

use crate::reactions::ReactionSubscription;
use casebook_adapters::people::CognitoPeople;
use casebook_application::in_memory::KeptMailbox;
use casebook_application::reactions::People;
use casebook_application::service::{RequestContext, Service, ServiceError, SignUp};

/// The local pool's name.
pub const POOL_NAME: &str = "casebook-local";
/// Every demo user's password once they have chosen it (local emulator only).
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
    /// Signing up or inviting failed.
    #[error("signing the demo practice up failed")]
    Command(#[from] ServiceError),
    /// The people subscription failed.
    #[error("creating the demo users' accounts failed")]
    People(#[from] RunError),
    /// A user's account never appeared, or its invitation never came.
    #[error("{0}")]
    Incomplete(String),
}

/// What the demo set up.
pub struct Demo {
    /// The pool (and so the server's token settings).
    pub pool: PoolInfo,
    /// The demo tenant.
    pub tenant: TenantId,
    /// `(role, email, ID token)` of each demo user.
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

/// The demo practice's fixed id, so reruns find the same practice. (Not the id of the demo
/// tenant onboarded before practices signed up: that one has no admin among its people, and
/// signing it up again would be another sign-up with the same key.)
pub fn demo_tenant() -> TenantId {
    TenantId::from_uuid(Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        b"casebook:demo-practice",
    ))
}

/// The demo user holding `role`.
fn demo_user(role: Role) -> Invitee {
    let role_name = format!("{role:?}").to_lowercase();
    Invitee {
        email: Email::parse(format!("{role_name}@demo.casebook.test")).expect("a valid address"),
        name: PersonName::parse(format!("Demo {role:?}")).expect("a valid name"),
    }
}

/// Sets everything up (safe to rerun) in `database`, with the emulator's Cognito through
/// `cognito`.
pub async fn set_up(database: &DatabaseConfig, cognito: CognitoAdmin) -> Result<Demo, DemoError> {
    let pool = cognito.ensure_pool(POOL_NAME).await?;
    let tenant = demo_tenant();

    let owner = postgres::connect_database(database, DbRole::Owner, 1).await?;
    postgres::migrate(&owner).await?;
    owner.close().await;
    let app = postgres::connect_database(database, DbRole::App, 2).await?;
    let projector = postgres::connect_database(database, DbRole::Projector, 2).await?;
    let service = crate::compose::service(app.clone());
    let mailbox = Arc::new(KeptMailbox::default());
    let identity = Arc::new(CognitoPeople::new(cognito.clone(), pool.clone()));
    let people = || {
        crate::compose::runner(projector.clone()).with_subscription(ReactionSubscription::new(
            People::new(service.clone(), identity.clone(), mailbox.clone()),
        ))
    };

    // A rerun finds the same sign-up (same tenant, same admin) and replays it.
    let admin = demo_user(Role::Admin);
    let sign_up = SignUp {
        name: TenantName::parse("Demo Practice").expect("a valid name"),
        plan: PlanTier::Professional,
        admin: admin.clone(),
    };
    service.sign_up(tenant, "casebook-demo", sign_up).await?;
    let state = provisioned(people, &service, tenant, &admin.email).await?;
    let admin_actor = Actor {
        user_id: state
            .member(&admin.email)
            .and_then(|member| member.user_id.clone())
            .expect("provisioned"),
        tenant_id: tenant,
        role: Role::Admin,
    };
    let ctx = RequestContext {
        metadata: EventMetadata::new(&admin_actor, "casebook-demo", Source::Api),
        actor: admin_actor,
    };
    for role in [Role::Customer, Role::Consultant, Role::Auditor] {
        match service.invite_user(&ctx, demo_user(role), role).await {
            Ok(_)
            | Err(ServiceError::Refused {
                code: "user_exists",
                ..
            }) => {}
            Err(err) => return Err(err.into()),
        }
    }

    let mut users = Vec::new();
    for role in [Role::Admin, Role::Customer, Role::Consultant, Role::Auditor] {
        let user = demo_user(role);
        provisioned(people, &service, tenant, &user.email).await?;
        let token = first_or_usual_sign_in(&cognito, &pool, &mailbox, &user.email).await?;
        users.push((role, user.email.to_string(), token));
    }
    app.close().await;
    projector.close().await;
    Ok(Demo {
        pool,
        tenant,
        users,
    })
}

/// Runs the people subscription until `email`'s account is recorded on the tenant (bounded:
/// an event becomes readable once every older transaction has ended).
async fn provisioned(
    people: impl Fn() -> Runner,
    service: &Service,
    tenant: TenantId,
    email: &Email,
) -> Result<Tenant, DemoError> {
    for _ in 0..100 {
        people().drain(Duration::from_secs(10)).await?;
        let state = service.tenant_state(tenant).await?;
        if state.member(email).is_some_and(|m| m.user_id.is_some()) {
            return Ok(state);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(DemoError::Incomplete(format!(
        "the account of {email} was never created"
    )))
}

/// The ID token of `email`: with [`PASSWORD`] if they chose it in an earlier run, else with
/// the invitation's temporary password, choosing [`PASSWORD`] as Cognito asks.
async fn first_or_usual_sign_in(
    cognito: &CognitoAdmin,
    pool: &PoolInfo,
    mailbox: &KeptMailbox,
    email: &Email,
) -> Result<String, DemoError> {
    let username = email.as_str();
    match cognito.start_sign_in(pool, username, PASSWORD).await {
        Ok(SignIn::Tokens(tokens)) => return Ok(tokens.id_token),
        Ok(SignIn::NewPasswordRequired { .. }) | Err(CognitoError::NotAuthorized { .. }) => {}
        Err(err) => return Err(err.into()),
    }
    let temporary = mailbox.temporary_password(email).ok_or_else(|| {
        DemoError::Incomplete(format!(
            "{email} has neither the demo password nor an invitation from this run"
        ))
    })?;
    match cognito.start_sign_in(pool, username, &temporary).await? {
        SignIn::Tokens(tokens) => Ok(tokens.id_token),
        SignIn::NewPasswordRequired { session } => Ok(cognito
            .answer_new_password(pool, username, &session, PASSWORD)
            .await?
            .id_token),
    }
}
