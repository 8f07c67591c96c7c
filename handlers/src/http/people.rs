//! A practice's people, for its admins: invite someone with a role, list everyone with their
//! role and status, change a role, disable and enable. Each command is an event on the tenant
//! (so the audit table answers who gave whom access, when); the Cognito side follows in the
//! people reaction ([`People`](casebook_application::reactions::People)). People are addressed by their email address.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use casebook_adapters::postgres::{begin_for_tenants, Access};
use casebook_domain::actor::{Actor, Role};
use casebook_domain::tenant::{Invitee, TenantCommand};
use casebook_domain::values::{Email, PersonName};
use casebook_projections::read;
use casebook_projections::read::tenants::TenantUser;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::access_log::Returned;
use super::caller::Acting;
use super::commands::{answer, context, parse_enum, Answer, CommandAccepted};
use super::json::Body;
use super::problem::ApiError;
use super::request_id::RequestId;
use super::AppState;

/// Inviting someone into the caller's practice.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteUser {
    /// Their email address: their sign-in name, where the invitation goes.
    pub email: String,
    /// Their name.
    pub name: String,
    /// `customer`, `consultant`, `auditor` or `admin`.
    pub role: String,
}

/// A new role for a member.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    /// `customer`, `consultant`, `auditor` or `admin`.
    pub role: String,
}

/// Whether a member may work, and whether their account exists yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// Invited; their account is being created (the invitation goes out with it).
    Pending,
    /// Their account exists and they may sign in.
    Active,
    /// Refused everywhere until enabled again.
    Disabled,
}

/// A member of the practice.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Their email address.
    pub email: String,
    /// Their name.
    pub name: String,
    /// Their role.
    #[schema(value_type = String)]
    pub role: Role,
    /// Pending, active or disabled.
    pub status: UserStatus,
    /// When they were invited.
    pub invited_at: DateTime<Utc>,
    /// When their role or status last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<TenantUser> for UserView {
    fn from(user: TenantUser) -> Self {
        let status = match (user.enabled, &user.user_id) {
            (false, _) => UserStatus::Disabled,
            (true, None) => UserStatus::Pending,
            (true, Some(_)) => UserStatus::Active,
        };
        Self {
            email: user.email,
            name: user.name,
            role: user.role,
            status,
            invited_at: user.invited_at,
            updated_at: user.updated_at,
        }
    }
}

/// A tenant role from its name: 422 `validation_failed` for anything else, the platform's own
/// roles included.
fn tenant_role(name: &str) -> Result<Role, ApiError> {
    match parse_enum::<Role>("role", name)? {
        role @ (Role::Customer | Role::Consultant | Role::Auditor | Role::Admin) => Ok(role),
        Role::System | Role::Operator => Err(ApiError::Invalid {
            field: "role".into(),
            message: format!("unknown value {name:?}"),
        }),
    }
}

/// The member addressed by the path.
fn member(email: String) -> Result<Email, ApiError> {
    Ok(Email::parse(email)?)
}

/// Invites someone into the caller's practice with a role (admin). Their Cognito account is
/// created right after, and Cognito mails them a temporary password.
#[utoipa::path(post, path = "/v1/users", request_body = InviteUser,
    responses(
        (status = 201, body = CommandAccepted),
        (status = 409, description = "`user_exists` (already a member) or `email_taken` (a user of another practice)"),
        (status = 422, description = "`validation_failed`"),
    ),
    tag = "people")]
pub async fn invite_user(
    State(state): State<AppState>,
    Acting(actor): Acting,
    request_id: RequestId,
    Body(body): Body<InviteUser>,
) -> Answer {
    let ctx = context(actor, &request_id);
    let invitee = Invitee {
        email: Email::parse(body.email)?,
        name: PersonName::parse(body.name)?,
    };
    let email = invitee.email.clone();
    let accepted = state
        .service
        .invite_user(&ctx, invitee, tenant_role(&body.role)?)
        .await?;
    answer(StatusCode::CREATED, json!({ "email": email }), accepted)
}

/// The caller's practice's people, by address, with role and status (admin).
#[utoipa::path(get, path = "/v1/users",
    responses((status = 200, body = Vec<UserView>)), tag = "people")]
pub async fn list_users(
    State(state): State<AppState>,
    Acting(reader): Acting,
) -> Result<(Extension<Returned>, Json<Vec<UserView>>), ApiError> {
    let mut tx = begin_for_tenants(
        &state.pool,
        Access::ReadOnly,
        &[*reader.tenant_id.as_uuid()],
    )
    .await?;
    let users = read::tenants::users(&mut tx, reader.tenant_id).await?;
    tx.commit().await?;
    let users: Vec<UserView> = users.into_iter().map(UserView::from).collect();
    // A member is named by their address: a pending one has no user id yet.
    let returned = Returned(users.iter().map(|user| user.email.clone()).collect());
    Ok((Extension(returned), Json(users)))
}

/// Gives a member another role (admin). Their tokens issued before are refused from then on
/// (`token_revoked`); a refreshed token carries the new role.
#[utoipa::path(put, path = "/v1/users/{email}/role", request_body = ChangeRole,
    params(("email" = String, Path, description = "The member's address")),
    responses(
        (status = 202, body = CommandAccepted),
        (status = 404, description = "`user_not_found`"),
        (status = 409, description = "`role_unchanged`, or `last_admin`: the practice would have no enabled admin left"),
    ),
    tag = "people")]
pub async fn change_role(
    State(state): State<AppState>,
    Acting(actor): Acting,
    request_id: RequestId,
    Path(email): Path<String>,
    Body(body): Body<ChangeRole>,
) -> Answer {
    let ctx = context(actor, &request_id);
    let email = member(email)?;
    let command = TenantCommand::ChangeUserRole {
        actor: ctx.actor.clone(),
        email: email.clone(),
        role: tenant_role(&body.role)?,
    };
    let accepted = state.service.administer_tenant(&ctx, command).await?;
    answer(StatusCode::ACCEPTED, json!({ "email": email }), accepted)
}

/// Disables a member (admin): refused everywhere, their existing tokens included, until
/// enabled again.
#[utoipa::path(post, path = "/v1/users/{email}/disable",
    params(("email" = String, Path, description = "The member's address")),
    responses(
        (status = 202, body = CommandAccepted),
        (status = 404, description = "`user_not_found`"),
        (status = 409, description = "`user_already_disabled`, or `last_admin`"),
    ),
    tag = "people")]
pub async fn disable_user(
    State(state): State<AppState>,
    Acting(actor): Acting,
    request_id: RequestId,
    Path(email): Path<String>,
) -> Answer {
    set_enabled(&state, actor, &request_id, email, false).await
}

/// Lets a disabled member back in (admin).
#[utoipa::path(post, path = "/v1/users/{email}/enable",
    params(("email" = String, Path, description = "The member's address")),
    responses(
        (status = 202, body = CommandAccepted),
        (status = 404, description = "`user_not_found`"),
        (status = 409, description = "`user_not_disabled`"),
    ),
    tag = "people")]
pub async fn enable_user(
    State(state): State<AppState>,
    Acting(actor): Acting,
    request_id: RequestId,
    Path(email): Path<String>,
) -> Answer {
    set_enabled(&state, actor, &request_id, email, true).await
}

async fn set_enabled(
    state: &AppState,
    actor: Actor,
    request_id: &RequestId,
    email: String,
    enabled: bool,
) -> Answer {
    let ctx = context(actor, request_id);
    let email = member(email)?;
    let (actor, member) = (ctx.actor.clone(), email.clone());
    let command = if enabled {
        TenantCommand::EnableUser {
            actor,
            email: member,
        }
    } else {
        TenantCommand::DisableUser {
            actor,
            email: member,
        }
    };
    let accepted = state.service.administer_tenant(&ctx, command).await?;
    answer(StatusCode::ACCEPTED, json!({ "email": email }), accepted)
}
