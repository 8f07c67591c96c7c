//! Cognito user pools, from the administrator's side: create a pool shaped the way Casebook
//! expects, put users in it, and sign them in.
//!
//! Casebook's identity contract lives here: the tenant is the immutable custom attribute
//! `tenant_id` (read from tokens as `custom:tenant_id`), and roles are the groups named by
//! [`group_for_role`]. The token verifier (`casebook_handlers::auth`) reads the same names back
//! with [`role_for_group`].
//!
//! The deployed pool is defined by the infrastructure template; [`CognitoAdmin::ensure_pool`]
//! makes the same shape in the local emulator and the tests (one pool per test): users sign in
//! with their email address, the app client is public (no secret) and allows
//! `USER_PASSWORD_AUTH`, SRP and refresh tokens. Its `ensure_*` operations are idempotent, so a
//! command can be run twice. Pools are found by name, and Cognito doesn't make names unique:
//! two processes ensuring the same new name at the same moment can create two pools. Give
//! concurrent callers distinct names.
//!
//! Two sides:
//! - the administrator's ([`CognitoAdmin::invite`], [`CognitoAdmin::set_role_group`],
//!   [`CognitoAdmin::set_enabled`], …), which the people subscription uses to make each
//!   member's account what their tenant says;
//! - a user's, through the public app client exactly as a browser calls it
//!   ([`CognitoAdmin::start_sign_in`], [`CognitoAdmin::answer_new_password`],
//!   [`CognitoAdmin::refresh`], [`CognitoAdmin::sign_out`], [`CognitoAdmin::forgot_password`],
//!   [`CognitoAdmin::confirm_forgot_password`]), for the tests and `casebook demo`.
//!
//! The contract is always built; the administrator's client (`admin`) comes with the
//! `cognito` feature, in the functions that manage users (the projector, `casebook`).

#[cfg(feature = "cognito")]
mod admin;

use casebook_domain::actor::Role;

#[cfg(feature = "cognito")]
pub use admin::{Account, CognitoAdmin, CognitoError, Invited, PoolInfo, SignIn, Tokens, UserInfo};

/// The custom attribute carrying a user's tenant, as named in the pool's schema.
pub const TENANT_ATTRIBUTE: &str = "tenant_id";

/// The same attribute as it appears in user attributes and ID-token claims.
pub const TENANT_CLAIM: &str = "custom:tenant_id";

/// The groups every Casebook pool has, one per user-facing [`Role`].
pub const GROUPS: [&str; 4] = ["customer", "consultant", "auditor", "admin"];

/// The name of the app client [`CognitoAdmin::ensure_pool`] creates.
pub const APP_CLIENT_NAME: &str = "casebook";

/// The Cognito group that grants `role`, or `None` for [`Role::System`] and [`Role::Operator`],
/// which no tenant's user holds.
pub fn group_for_role(role: Role) -> Option<&'static str> {
    match role {
        Role::Customer => Some("customer"),
        Role::Consultant => Some("consultant"),
        Role::Auditor => Some("auditor"),
        Role::Admin => Some("admin"),
        Role::System | Role::Operator => None,
    }
}

/// The role a Cognito group grants, or `None` for a group Casebook doesn't know. There is no
/// group for [`Role::System`] or [`Role::Operator`]: a token can never make its holder the
/// platform or its operator.
pub fn role_for_group(group: &str) -> Option<Role> {
    match group {
        "customer" => Some(Role::Customer),
        "consultant" => Some(Role::Consultant),
        "auditor" => Some(Role::Auditor),
        "admin" => Some(Role::Admin),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_maps_to_a_role_and_back() {
        for group in GROUPS {
            let role = role_for_group(group).expect("a known group");
            assert_eq!(group_for_role(role), Some(group));
        }
    }

    #[test]
    fn no_group_grants_the_system_role() {
        assert_eq!(group_for_role(Role::System), None);
        assert_eq!(role_for_group("system"), None);
        assert_eq!(role_for_group("System"), None);
    }
}
