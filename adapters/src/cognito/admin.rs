//! The administrator's and a user's side of a Cognito user pool (see the [parent](super)).

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_cognitoidentityprovider::error::SdkError;
use aws_sdk_cognitoidentityprovider::types::{
    AccountRecoverySettingType, AdminCreateUserConfigType, AttributeDataType, AttributeType,
    AuthFlowType, AuthenticationResultType, ChallengeNameType, DeliveryMediumType,
    ExplicitAuthFlowsType, MessageActionType, PasswordPolicyType, PreventUserExistenceErrorTypes,
    RecoveryOptionNameType, RecoveryOptionType, SchemaAttributeType,
    StringAttributeConstraintsType, UserPoolPolicyType, UsernameAttributeType,
    VerifiedAttributeType,
};
use aws_sdk_cognitoidentityprovider::Client;
use casebook_domain::actor::Role;
use casebook_domain::ids::TenantId;
use rand::distributions::{Alphanumeric, DistString};
use std::time::Duration;

use super::{group_for_role, APP_CLIENT_NAME, GROUPS, TENANT_ATTRIBUTE, TENANT_CLAIM};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a Cognito operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CognitoError {
    /// Neither the environment nor the shared configuration names a region.
    #[error("no AWS region configured (set AWS_REGION)")]
    MissingRegion,
    /// The service (or the network) failed the call; the cause chain has the details.
    #[error("Cognito {operation} failed")]
    Service {
        /// The API operation, e.g. `CreateUserPool`.
        operation: &'static str,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
    /// The service answered without a field it always sends.
    #[error("Cognito {operation} answered without {field}")]
    IncompleteResponse {
        /// The API operation.
        operation: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// [`Role::System`] was asked for: no group grants it.
    #[error("role {0:?} is not granted by any Cognito group")]
    NotAGroup(Role),
    /// The user exists with another tenant; `tenant_id` is immutable, so it can't be changed.
    #[error("user {username} already exists for another tenant")]
    TenantConflict {
        /// The user.
        username: String,
    },
    /// Cognito rejected the username or password (or the user is disabled, or the refresh or
    /// access token was revoked).
    #[error("Cognito rejected the credentials of {username}")]
    NotAuthorized {
        /// The user (empty for a token).
        username: String,
    },
    /// A confirmation code that is wrong or expired.
    #[error("the confirmation code of {username} is wrong or expired")]
    InvalidCode {
        /// The user.
        username: String,
    },
    /// The sign-in stopped at a challenge (e.g. a new password or MFA) this client doesn't answer.
    #[error("sign-in of {username} stopped at the {challenge} challenge")]
    Challenge {
        /// The user.
        username: String,
        /// Cognito's challenge name.
        challenge: String,
    },
}

impl CognitoError {
    fn service<E>(operation: &'static str) -> impl FnOnce(E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |source| Self::Service {
            operation,
            source: Box::new(source),
        }
    }
}

/// A pool ready for Casebook, with everything a token verifier needs to trust its ID tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolInfo {
    /// The pool's id, e.g. `us-east-1_AbC123`.
    pub pool_id: String,
    /// The pool's name.
    pub name: String,
    /// The app client's id: the `aud` of the pool's ID tokens.
    pub client_id: String,
    /// The region the pool lives in.
    pub region: String,
    /// The `iss` of the pool's tokens: always the AWS URL, even in the emulator.
    pub issuer: String,
    /// Where the pool's signing keys are served: under the issuer in AWS, under the endpoint
    /// in the emulator.
    pub jwks_url: String,
}

/// A user as [`CognitoAdmin::ensure_user`] left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The sign-in name.
    pub username: String,
    /// The user's subject: the `sub` claim of their tokens, Casebook's user id.
    pub sub: String,
    /// The user's tenant.
    pub tenant_id: TenantId,
}

/// The tokens of one sign-in.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    /// The ID token: what Casebook's API accepts as a bearer token.
    pub id_token: String,
    /// The access token (no custom attributes, no `aud`; the API refuses it). It signs the
    /// user out ([`CognitoAdmin::sign_out`]).
    pub access_token: String,
    /// Trades for fresh ID and access tokens ([`CognitoAdmin::refresh`]); `None` in the
    /// answer to a refresh itself.
    pub refresh_token: Option<String>,
    /// How long the ID and access tokens stay valid from issue.
    pub expires_in: Duration,
}

/// Where a password sign-in stopped.
#[derive(Debug)]
pub enum SignIn {
    /// Signed in.
    Tokens(Tokens),
    /// The user still has their invitation's temporary password: they must choose their own
    /// ([`CognitoAdmin::answer_new_password`]) with this session.
    NewPasswordRequired {
        /// Cognito's session for the answer.
        session: String,
    },
}

/// A user's account as Cognito holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Their subject: the `sub` of their tokens.
    pub sub: String,
    /// Their tenant (`custom:tenant_id`), if they have one.
    pub tenant_id: Option<String>,
    /// Whether Cognito lets them sign in.
    pub enabled: bool,
}

/// An account [`CognitoAdmin::invite`] created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invited {
    /// The new account's subject.
    pub sub: String,
    /// Against the emulator only, which sends no mail: the temporary password the invitation
    /// would have carried. `None` in AWS, where Cognito mails it and nobody else sees it.
    pub temporary_password: Option<String>,
}

impl std::fmt::Debug for Tokens {
    // Bearer tokens are credentials: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// An administrator's Cognito client.
#[derive(Debug, Clone)]
pub struct CognitoAdmin {
    client: Client,
    region: String,
    endpoint_url: Option<String>,
}

impl CognitoAdmin {
    /// A client from the SDK's environment: credentials chain, `AWS_REGION`, and
    /// `AWS_ENDPOINT_URL` (the emulator) when set.
    pub async fn from_env() -> Result<Self, CognitoError> {
        let shared = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let endpoint = shared.endpoint_url().map(str::to_owned);
        Self::new(&shared, endpoint)
    }

    /// A client from an already loaded `shared` configuration; `endpoint_url` overrides the
    /// service endpoint (the emulator), and also decides where the pools' JWKS are served.
    pub fn new(shared: &SdkConfig, endpoint_url: Option<String>) -> Result<Self, CognitoError> {
        let region = shared
            .region()
            .ok_or(CognitoError::MissingRegion)?
            .to_string();
        let mut builder = aws_sdk_cognitoidentityprovider::config::Builder::from(shared);
        if let Some(url) = &endpoint_url {
            builder = builder.endpoint_url(url);
        }
        Ok(Self {
            client: Client::from_conf(builder.build()),
            region,
            endpoint_url: endpoint_url.map(|url| url.trim_end_matches('/').to_owned()),
        })
    }

    /// The SDK client, for operations this type doesn't wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether this client talks to the local emulator (an endpoint was configured), which
    /// delivers no mail.
    pub fn is_emulator(&self) -> bool {
        self.endpoint_url.is_some()
    }

    /// The deployed pool `pool_id` with its app client `client_id` (what the template
    /// outputs), without calling Cognito.
    pub fn existing_pool(&self, pool_id: &str, client_id: &str) -> PoolInfo {
        self.pool_info(pool_id, pool_id.to_owned(), client_id.to_owned())
    }

    /// The pool named `name`, created if absent in the deployed shape: email addresses as
    /// sign-in names, the `tenant_id` attribute, the four groups, the password policy, recovery
    /// by verified email, and the public app client. Only administrators create users: with
    /// Cognito's self sign-up a user could choose their own tenant.
    pub async fn ensure_pool(&self, name: &str) -> Result<PoolInfo, CognitoError> {
        let pool_id = match self.find_pool(name).await? {
            Some(id) => id,
            None => self.create_pool(name).await?,
        };
        for group in GROUPS {
            self.ensure_group(&pool_id, group).await?;
        }
        let client_id = self.ensure_app_client(&pool_id).await?;
        Ok(self.pool_info(name, pool_id, client_id))
    }

    /// Deletes the pool and everything in it.
    pub async fn delete_pool(&self, pool: &PoolInfo) -> Result<(), CognitoError> {
        self.client
            .delete_user_pool()
            .user_pool_id(&pool.pool_id)
            .send()
            .await
            .map_err(CognitoError::service("DeleteUserPool"))?;
        Ok(())
    }

    /// The user `username` (an email address) in `pool`, created if absent with `tenant_id`,
    /// without an invitation, with `password` set as
    /// their permanent password and membership of `role`'s group (other groups are kept, so
    /// calling this with two roles gives the user both). Fails with
    /// [`CognitoError::TenantConflict`] if the user exists for another tenant.
    pub async fn ensure_user(
        &self,
        pool: &PoolInfo,
        username: &str,
        password: &str,
        tenant_id: TenantId,
        role: Role,
    ) -> Result<UserInfo, CognitoError> {
        let group = group_for_role(role).ok_or(CognitoError::NotAGroup(role))?;
        let created = self
            .client
            .admin_create_user()
            .user_pool_id(&pool.pool_id)
            .username(username)
            .set_user_attributes(Some(account_attributes(username, None, tenant_id)?))
            .message_action(MessageActionType::Suppress)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(SdkError::ServiceError(err)) if err.err().is_username_exists_exception() => {}
            Err(err) => return Err(CognitoError::service("AdminCreateUser")(err)),
        }

        let user = self
            .client
            .admin_get_user()
            .user_pool_id(&pool.pool_id)
            .username(username)
            .send()
            .await
            .map_err(CognitoError::service("AdminGetUser"))?;
        let attribute = |name: &str| {
            user.user_attributes()
                .iter()
                .find(|attribute| attribute.name() == name)
                .and_then(AttributeType::value)
        };
        if attribute(TENANT_CLAIM) != Some(tenant_id.to_string().as_str()) {
            return Err(CognitoError::TenantConflict {
                username: username.to_owned(),
            });
        }
        let sub = attribute("sub")
            .ok_or(CognitoError::IncompleteResponse {
                operation: "AdminGetUser",
                field: "the sub attribute",
            })?
            .to_owned();

        self.client
            .admin_set_user_password()
            .user_pool_id(&pool.pool_id)
            .username(username)
            .password(password)
            .permanent(true)
            .send()
            .await
            .map_err(CognitoError::service("AdminSetUserPassword"))?;
        // Adding a member twice is a no-op in Cognito.
        self.client
            .admin_add_user_to_group()
            .user_pool_id(&pool.pool_id)
            .username(username)
            .group_name(group)
            .send()
            .await
            .map_err(CognitoError::service("AdminAddUserToGroup"))?;

        Ok(UserInfo {
            username: username.to_owned(),
            sub,
            tenant_id,
        })
    }

    /// Signs `username` in with `USER_PASSWORD_AUTH` through the pool's app client; a
    /// challenge (a new password, MFA) is an error.
    pub async fn sign_in(
        &self,
        pool: &PoolInfo,
        username: &str,
        password: &str,
    ) -> Result<Tokens, CognitoError> {
        match self.start_sign_in(pool, username, password).await? {
            SignIn::Tokens(tokens) => Ok(tokens),
            SignIn::NewPasswordRequired { .. } => Err(CognitoError::Challenge {
                username: username.to_owned(),
                challenge: ChallengeNameType::NewPasswordRequired.as_str().to_owned(),
            }),
        }
    }

    /// The ID token of a fresh sign-in: what a client sends as `Authorization: Bearer …`.
    pub async fn id_token(
        &self,
        pool: &PoolInfo,
        username: &str,
        password: &str,
    ) -> Result<String, CognitoError> {
        Ok(self.sign_in(pool, username, password).await?.id_token)
    }

    /// A password sign-in through the app client (`InitiateAuth`, `USER_PASSWORD_AUTH`), as
    /// the browser makes it: tokens, or the new-password challenge of a first sign-in.
    pub async fn start_sign_in(
        &self,
        pool: &PoolInfo,
        username: &str,
        password: &str,
    ) -> Result<SignIn, CognitoError> {
        const OPERATION: &str = "InitiateAuth";
        let output = self
            .client
            .initiate_auth()
            .client_id(&pool.client_id)
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .auth_parameters("USERNAME", username)
            .auth_parameters("PASSWORD", password)
            .send()
            .await
            .map_err(|err| refused(OPERATION, username, err))?;
        match output.challenge_name() {
            None => Ok(SignIn::Tokens(tokens(
                OPERATION,
                output.authentication_result(),
            )?)),
            Some(ChallengeNameType::NewPasswordRequired) => Ok(SignIn::NewPasswordRequired {
                session: output
                    .session()
                    .ok_or(CognitoError::IncompleteResponse {
                        operation: OPERATION,
                        field: "Session",
                    })?
                    .to_owned(),
            }),
            Some(challenge) => Err(CognitoError::Challenge {
                username: username.to_owned(),
                challenge: challenge.as_str().to_owned(),
            }),
        }
    }

    /// Answers the new-password challenge of a first sign-in (`RespondToAuthChallenge`):
    /// the user's own password replaces the temporary one, and they are signed in.
    pub async fn answer_new_password(
        &self,
        pool: &PoolInfo,
        username: &str,
        session: &str,
        new_password: &str,
    ) -> Result<Tokens, CognitoError> {
        const OPERATION: &str = "RespondToAuthChallenge";
        let output = self
            .client
            .respond_to_auth_challenge()
            .client_id(&pool.client_id)
            .challenge_name(ChallengeNameType::NewPasswordRequired)
            .session(session)
            .challenge_responses("USERNAME", username)
            .challenge_responses("NEW_PASSWORD", new_password)
            .send()
            .await
            .map_err(|err| refused(OPERATION, username, err))?;
        tokens(OPERATION, output.authentication_result())
    }

    /// Fresh ID and access tokens for a refresh token (`REFRESH_TOKEN_AUTH`): they carry the
    /// user's groups as they are now.
    pub async fn refresh(
        &self,
        pool: &PoolInfo,
        refresh_token: &str,
    ) -> Result<Tokens, CognitoError> {
        const OPERATION: &str = "InitiateAuth";
        let output = self
            .client
            .initiate_auth()
            .client_id(&pool.client_id)
            .auth_flow(AuthFlowType::RefreshTokenAuth)
            .auth_parameters("REFRESH_TOKEN", refresh_token)
            .send()
            .await
            .map_err(|err| refused(OPERATION, "", err))?;
        tokens(OPERATION, output.authentication_result())
    }

    /// Signs the user of `access_token` out everywhere (`GlobalSignOut`): their refresh
    /// tokens stop working. (ID tokens already issued live until they expire; Casebook's API
    /// refuses disabled users' whatever their expiry.)
    pub async fn sign_out(&self, access_token: &str) -> Result<(), CognitoError> {
        self.client
            .global_sign_out()
            .access_token(access_token)
            .send()
            .await
            .map_err(|err| refused("GlobalSignOut", "", err))?;
        Ok(())
    }

    /// Starts a password reset (`ForgotPassword`): Cognito mails the user a code.
    pub async fn forgot_password(
        &self,
        pool: &PoolInfo,
        username: &str,
    ) -> Result<(), CognitoError> {
        self.client
            .forgot_password()
            .client_id(&pool.client_id)
            .username(username)
            .send()
            .await
            .map_err(|err| refused("ForgotPassword", username, err))?;
        Ok(())
    }

    /// Finishes a password reset with the mailed `code` (`ConfirmForgotPassword`).
    pub async fn confirm_forgot_password(
        &self,
        pool: &PoolInfo,
        username: &str,
        code: &str,
        new_password: &str,
    ) -> Result<(), CognitoError> {
        self.client
            .confirm_forgot_password()
            .client_id(&pool.client_id)
            .username(username)
            .confirmation_code(code)
            .password(new_password)
            .send()
            .await
            .map_err(|err| refused("ConfirmForgotPassword", username, err))?;
        Ok(())
    }

    /// The account signing in as `email`, if there is one.
    pub async fn find_account(
        &self,
        pool: &PoolInfo,
        email: &str,
    ) -> Result<Option<Account>, CognitoError> {
        const OPERATION: &str = "AdminGetUser";
        let user = match self
            .client
            .admin_get_user()
            .user_pool_id(&pool.pool_id)
            .username(email)
            .send()
            .await
        {
            Ok(user) => user,
            Err(SdkError::ServiceError(err)) if err.err().is_user_not_found_exception() => {
                return Ok(None)
            }
            Err(err) => return Err(CognitoError::service(OPERATION)(err)),
        };
        let attribute = |name: &str| {
            user.user_attributes()
                .iter()
                .find(|attribute| attribute.name() == name)
                .and_then(AttributeType::value)
                .map(str::to_owned)
        };
        Ok(Some(Account {
            sub: attribute("sub").ok_or(CognitoError::IncompleteResponse {
                operation: OPERATION,
                field: "the sub attribute",
            })?,
            tenant_id: attribute(TENANT_CLAIM),
            enabled: user.enabled(),
        }))
    }

    /// Creates the account of `email` (called `name`) in `tenant_id` and invites them: in AWS
    /// Cognito mails a temporary password; against the emulator, which mails nothing, a
    /// generated one is returned instead. Their first sign-in must choose a new password.
    pub async fn invite(
        &self,
        pool: &PoolInfo,
        email: &str,
        name: &str,
        tenant_id: TenantId,
    ) -> Result<Invited, CognitoError> {
        const OPERATION: &str = "AdminCreateUser";
        let temporary_password = self.is_emulator().then(temporary_password);
        let output = self
            .client
            .admin_create_user()
            .user_pool_id(&pool.pool_id)
            .username(email)
            .set_user_attributes(Some(account_attributes(email, Some(name), tenant_id)?))
            .desired_delivery_mediums(DeliveryMediumType::Email)
            .set_temporary_password(temporary_password.clone())
            .set_message_action(self.is_emulator().then_some(MessageActionType::Suppress))
            .send()
            .await
            .map_err(CognitoError::service(OPERATION))?;
        let sub = output
            .user()
            .and_then(|user| {
                user.attributes()
                    .iter()
                    .find(|attribute| attribute.name() == "sub")
                    .and_then(AttributeType::value)
            })
            .ok_or(CognitoError::IncompleteResponse {
                operation: OPERATION,
                field: "User.Attributes.sub",
            })?
            .to_owned();
        Ok(Invited {
            sub,
            temporary_password,
        })
    }

    /// Puts `email` in `role`'s group and takes them out of every other Casebook group: one
    /// role per user, as their tenant says.
    pub async fn set_role_group(
        &self,
        pool: &PoolInfo,
        email: &str,
        role: Role,
    ) -> Result<(), CognitoError> {
        let wanted = group_for_role(role).ok_or(CognitoError::NotAGroup(role))?;
        let groups = self
            .client
            .admin_list_groups_for_user()
            .user_pool_id(&pool.pool_id)
            .username(email)
            .limit(60)
            .send()
            .await
            .map_err(CognitoError::service("AdminListGroupsForUser"))?;
        let held: Vec<&str> = groups
            .groups()
            .iter()
            .filter_map(|group| group.group_name())
            .collect();
        for group in held
            .iter()
            .filter(|group| **group != wanted && GROUPS.contains(group))
        {
            self.client
                .admin_remove_user_from_group()
                .user_pool_id(&pool.pool_id)
                .username(email)
                .group_name(*group)
                .send()
                .await
                .map_err(CognitoError::service("AdminRemoveUserFromGroup"))?;
        }
        if !held.contains(&wanted) {
            self.client
                .admin_add_user_to_group()
                .user_pool_id(&pool.pool_id)
                .username(email)
                .group_name(wanted)
                .send()
                .await
                .map_err(CognitoError::service("AdminAddUserToGroup"))?;
        }
        Ok(())
    }

    /// Lets `email` sign in again, or stops them: disabling also signs them out everywhere,
    /// so their refresh tokens stop working at once.
    pub async fn set_enabled(
        &self,
        pool: &PoolInfo,
        email: &str,
        enabled: bool,
    ) -> Result<(), CognitoError> {
        if enabled {
            self.client
                .admin_enable_user()
                .user_pool_id(&pool.pool_id)
                .username(email)
                .send()
                .await
                .map_err(CognitoError::service("AdminEnableUser"))?;
            return Ok(());
        }
        self.client
            .admin_disable_user()
            .user_pool_id(&pool.pool_id)
            .username(email)
            .send()
            .await
            .map_err(CognitoError::service("AdminDisableUser"))?;
        self.client
            .admin_user_global_sign_out()
            .user_pool_id(&pool.pool_id)
            .username(email)
            .send()
            .await
            .map_err(CognitoError::service("AdminUserGlobalSignOut"))?;
        Ok(())
    }

    fn pool_info(&self, name: &str, pool_id: String, client_id: String) -> PoolInfo {
        let issuer = format!(
            "https://cognito-idp.{}.amazonaws.com/{pool_id}",
            self.region
        );
        // The emulator names the AWS issuer in its tokens but serves the keys itself.
        let jwks_url = match &self.endpoint_url {
            Some(endpoint) => format!("{endpoint}/{pool_id}/.well-known/jwks.json"),
            None => format!("{issuer}/.well-known/jwks.json"),
        };
        PoolInfo {
            pool_id,
            name: name.to_owned(),
            client_id,
            region: self.region.clone(),
            issuer,
            jwks_url,
        }
    }

    async fn find_pool(&self, name: &str) -> Result<Option<String>, CognitoError> {
        let mut pages = self
            .client
            .list_user_pools()
            .max_results(60)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(CognitoError::service("ListUserPools"))?;
            if let Some(pool) = page.user_pools().iter().find(|p| p.name() == Some(name)) {
                let id = pool.id().ok_or(CognitoError::IncompleteResponse {
                    operation: "ListUserPools",
                    field: "Id",
                })?;
                return Ok(Some(id.to_owned()));
            }
        }
        Ok(None)
    }

    async fn create_pool(&self, name: &str) -> Result<String, CognitoError> {
        let tenant_attribute = SchemaAttributeType::builder()
            .name(TENANT_ATTRIBUTE)
            .attribute_data_type(AttributeDataType::String)
            .mutable(false)
            .developer_only_attribute(false)
            .string_attribute_constraints(
                // A hyphenated UUID, exactly.
                StringAttributeConstraintsType::builder()
                    .min_length("36")
                    .max_length("36")
                    .build(),
            )
            .build();
        let recovery = RecoveryOptionType::builder()
            .name(RecoveryOptionNameType::VerifiedEmail)
            .priority(1)
            .build()
            .map_err(CognitoError::service("CreateUserPool"))?;
        // As `infra/template.yaml` has it.
        let password_policy = PasswordPolicyType::builder()
            .minimum_length(12)
            .require_lowercase(true)
            .require_uppercase(true)
            .require_numbers(true)
            .require_symbols(true)
            .temporary_password_validity_days(3)
            .build();
        let output = self
            .client
            .create_user_pool()
            .pool_name(name)
            .schema(tenant_attribute)
            .username_attributes(UsernameAttributeType::Email)
            .auto_verified_attributes(VerifiedAttributeType::Email)
            .policies(
                UserPoolPolicyType::builder()
                    .password_policy(password_policy)
                    .build(),
            )
            .account_recovery_setting(
                AccountRecoverySettingType::builder()
                    .recovery_mechanisms(recovery)
                    .build(),
            )
            .admin_create_user_config(
                AdminCreateUserConfigType::builder()
                    .allow_admin_create_user_only(true)
                    .build(),
            )
            .send()
            .await
            .map_err(CognitoError::service("CreateUserPool"))?;
        output
            .user_pool()
            .and_then(|pool| pool.id())
            .map(str::to_owned)
            .ok_or(CognitoError::IncompleteResponse {
                operation: "CreateUserPool",
                field: "UserPool.Id",
            })
    }

    async fn ensure_group(&self, pool_id: &str, group: &str) -> Result<(), CognitoError> {
        let created = self
            .client
            .create_group()
            .user_pool_id(pool_id)
            .group_name(group)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(err)) if err.err().is_group_exists_exception() => Ok(()),
            Err(err) => Err(CognitoError::service("CreateGroup")(err)),
        }
    }

    async fn ensure_app_client(&self, pool_id: &str) -> Result<String, CognitoError> {
        let mut pages = self
            .client
            .list_user_pool_clients()
            .user_pool_id(pool_id)
            .max_results(60)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(CognitoError::service("ListUserPoolClients"))?;
            let existing = page
                .user_pool_clients()
                .iter()
                .find(|c| c.client_name() == Some(APP_CLIENT_NAME));
            if let Some(client) = existing {
                let id = client.client_id().ok_or(CognitoError::IncompleteResponse {
                    operation: "ListUserPoolClients",
                    field: "ClientId",
                })?;
                return Ok(id.to_owned());
            }
        }
        let output = self
            .client
            .create_user_pool_client()
            .user_pool_id(pool_id)
            .client_name(APP_CLIENT_NAME)
            // A public client: the browser holds no secret (with one, every call would need a
            // SECRET_HASH).
            .generate_secret(false)
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserSrpAuth)
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
            .prevent_user_existence_errors(PreventUserExistenceErrorTypes::Enabled)
            .enable_token_revocation(true)
            .send()
            .await
            .map_err(CognitoError::service("CreateUserPoolClient"))?;
        output
            .user_pool_client()
            .and_then(|client| client.client_id())
            .map(str::to_owned)
            .ok_or(CognitoError::IncompleteResponse {
                operation: "CreateUserPoolClient",
                field: "UserPoolClient.ClientId",
            })
    }
}

/// The attributes of a new account: its address (verified: an admin vouches for it, and
/// password resets go there), its display name, its tenant.
fn account_attributes(
    email: &str,
    name: Option<&str>,
    tenant_id: TenantId,
) -> Result<Vec<AttributeType>, CognitoError> {
    let attribute = |name: &str, value: &str| {
        AttributeType::builder()
            .name(name)
            .value(value)
            .build()
            .map_err(CognitoError::service("AdminCreateUser"))
    };
    let mut attributes = vec![
        attribute("email", email)?,
        attribute("email_verified", "true")?,
        attribute(TENANT_CLAIM, &tenant_id.to_string())?,
    ];
    if let Some(name) = name {
        attributes.push(attribute("name", name)?);
    }
    Ok(attributes)
}

/// A temporary password meeting the pool's policy (12+ characters, upper, lower, digit,
/// symbol), for the emulator's invitations.
fn temporary_password() -> String {
    format!(
        "Tmp-{}-7a",
        Alphanumeric.sample_string(&mut rand::thread_rng(), 16)
    )
}

/// A user-side call's failure: the credentials (or a token, or a code) refused, or the
/// service failing.
fn refused<E, R>(operation: &'static str, username: &str, err: SdkError<E, R>) -> CognitoError
where
    E: aws_sdk_cognitoidentityprovider::error::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = match &err {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    };
    match code {
        Some(
            "NotAuthorizedException" | "UserNotFoundException" | "PasswordResetRequiredException",
        ) => CognitoError::NotAuthorized {
            username: username.to_owned(),
        },
        Some("CodeMismatchException" | "ExpiredCodeException") => CognitoError::InvalidCode {
            username: username.to_owned(),
        },
        _ => CognitoError::service(operation)(err),
    }
}

/// The tokens of an `AuthenticationResult`.
fn tokens(
    operation: &'static str,
    result: Option<&AuthenticationResultType>,
) -> Result<Tokens, CognitoError> {
    let missing = |field| CognitoError::IncompleteResponse { operation, field };
    let result = result.ok_or_else(|| missing("AuthenticationResult"))?;
    Ok(Tokens {
        id_token: result
            .id_token()
            .ok_or_else(|| missing("IdToken"))?
            .to_owned(),
        access_token: result
            .access_token()
            .ok_or_else(|| missing("AccessToken"))?
            .to_owned(),
        refresh_token: result.refresh_token().map(str::to_owned),
        expires_in: Duration::from_secs(u64::from(result.expires_in().max(0).unsigned_abs())),
    })
}
