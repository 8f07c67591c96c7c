//! Who is calling: Cognito ID tokens verified into a [`Principal`].
//!
//! The API and the Lambda authorizer share this module, so a request is judged the same way
//! wherever it lands:
//!
//! - [`TokenVerifier`] checks an ID token — RS256 only, the key found by `kid` in the pool's
//!   JWKS, issuer, audience (the app client id), `token_use`, expiry and not-before with a small
//!   leeway — and reads the tenant (`custom:tenant_id`) and the roles (`cognito:groups`).
//! - [`VerifierConfig`] keeps the issuer and the JWKS URL apart: the emulator's tokens name the
//!   AWS issuer but its keys are served locally.
//! - The pool's keys are cached, and refetched on an unknown `kid` at most once per interval
//!   ([`VerifierConfig::jwks_refetch_interval`]).
//! - [`AuthError`] says why a token was refused, with a stable [`code`](AuthError::code) and a
//!   [`kind`](AuthError::kind) the HTTP layer maps to 401, 403 or 503.
//!
//! Behind API Gateway's authorizer the token is verified again and the authorizer's tenant must
//! agree with it ([`TokenVerifier::verify_with_authorizer_tenant`]): defence in depth, and the
//! local server is exactly as strict as the deployed one.

mod jwks;
mod verifier;

use casebook_domain::actor::{Actor, Role};
use casebook_domain::ids::{TenantId, UserId};

pub use jwks::JwksError;
pub use verifier::{InvalidVerifierConfig, TokenVerifier, VerifierConfig};

/// The verified caller: a user of one tenant, holding one or more roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's subject.
    pub user_id: UserId,
    /// The tenant the user belongs to (`custom:tenant_id`).
    pub tenant_id: TenantId,
    /// The roles the user's groups grant, in [`Role`]'s declaration order, without repeats;
    /// never empty, never [`Role::System`].
    pub roles: Vec<Role>,
}

impl Principal {
    /// Whether the user holds `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The user acting in `role`, or `None` if they don't hold it.
    pub fn actor(&self, role: Role) -> Option<Actor> {
        self.has_role(role).then(|| Actor {
            user_id: self.user_id.clone(),
            tenant_id: self.tenant_id,
            role,
        })
    }

    /// The user acting in the first of `allowed` they hold (a route lists the roles that may
    /// call it, in order of preference), or `None` if they hold none of them.
    pub fn actor_for(&self, allowed: &[Role]) -> Option<Actor> {
        allowed.iter().find_map(|&role| self.actor(role))
    }
}

/// How the HTTP layer should answer an [`AuthError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthErrorKind {
    /// No acceptable credentials: 401 with `WWW-Authenticate`.
    Unauthenticated,
    /// A genuine user of the tenant whose token grants no Casebook role: 403.
    Forbidden,
    /// The keys couldn't be fetched, so nothing can be verified: 503, worth retrying.
    Unavailable,
}

/// Why a request's credentials were refused.
///
/// Messages name what failed, never the token; attacker-chosen header values are clipped.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No bearer token in the request.
    #[error("no bearer token")]
    MissingToken,
    /// Not a JWT this verifier can read.
    #[error("malformed token: {reason}")]
    MalformedToken {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The header names an algorithm other than RS256 (`none`, HS256, …).
    #[error("unsupported algorithm {alg:?}")]
    UnsupportedAlgorithm {
        /// The header's `alg`, clipped.
        alg: String,
    },
    /// No key with the token's `kid` in the JWKS, even after a refetch (or refetching is
    /// rate-limited right now).
    #[error("unknown signing key {kid:?}")]
    UnknownKey {
        /// The header's `kid`, clipped.
        kid: String,
    },
    /// The signature doesn't verify with the key the token names.
    #[error("invalid signature")]
    InvalidSignature,
    /// `exp` is past, beyond the leeway.
    #[error("token expired")]
    Expired,
    /// `nbf` (or `iat`) is in the future, beyond the leeway.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` isn't the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` isn't the configured app client.
    #[error("wrong audience")]
    WrongAudience,
    /// Not an ID token (e.g. an access token).
    #[error("token_use is {found:?}, not \"id\"")]
    WrongTokenUse {
        /// The token's `token_use`, clipped.
        found: String,
    },
    /// A required claim is absent.
    #[error("missing claim {claim}")]
    MissingClaim {
        /// The claim's name.
        claim: String,
    },
    /// A claim is present but unusable (e.g. a tenant id that isn't a UUID).
    #[error("invalid claim {claim}")]
    InvalidClaim {
        /// The claim's name.
        claim: String,
    },
    /// The token is valid but none of its groups is a Casebook role.
    #[error("no Casebook role among the token's groups")]
    NoRole,
    /// API Gateway's authorizer context names another tenant than the token.
    #[error("the authorizer's tenant disagrees with the token's")]
    TenantMismatch,
    /// Refused by the JWT library for a reason without a variant of its own.
    #[error("invalid token")]
    InvalidToken(#[source] jsonwebtoken::errors::Error),
    /// The JWKS couldn't be fetched or read.
    #[error("signing keys unavailable")]
    JwksUnavailable(#[source] std::sync::Arc<JwksError>),
}

impl AuthError {
    /// A stable, machine-readable code for clients and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::MalformedToken { .. } => "malformed_token",
            Self::UnsupportedAlgorithm { .. } => "unsupported_algorithm",
            Self::UnknownKey { .. } => "unknown_key",
            Self::InvalidSignature => "invalid_signature",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            Self::WrongIssuer => "invalid_issuer",
            Self::WrongAudience => "invalid_audience",
            Self::WrongTokenUse { .. } => "wrong_token_use",
            Self::MissingClaim { .. } => "missing_claim",
            Self::InvalidClaim { .. } => "invalid_claim",
            Self::NoRole => "no_role",
            Self::TenantMismatch => "tenant_mismatch",
            Self::InvalidToken(_) => "invalid_token",
            Self::JwksUnavailable(_) => "jwks_unavailable",
        }
    }

    /// Whether to answer 401, 403 or 503.
    pub fn kind(&self) -> AuthErrorKind {
        match self {
            Self::NoRole => AuthErrorKind::Forbidden,
            Self::JwksUnavailable(_) => AuthErrorKind::Unavailable,
            _ => AuthErrorKind::Unauthenticated,
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header value (the scheme is
/// case-insensitive, as RFC 9110 says).
pub fn bearer_token(authorization: &str) -> Result<&str, AuthError> {
    let (scheme, token) = authorization
        .trim()
        .split_once(' ')
        .ok_or(AuthError::MissingToken)?;
    let token = token.trim_start();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    if token.contains(char::is_whitespace) {
        return Err(AuthError::MalformedToken {
            reason: "whitespace inside the token",
        });
    }
    Ok(token)
}

/// At most this many characters of an attacker-chosen value go into an error.
const CLIP: usize = 64;

fn clip(value: &str) -> String {
    value.chars().take(CLIP).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(roles: Vec<Role>) -> Principal {
        Principal {
            user_id: UserId::parse("3f1c2a9e-0000-4000-8000-000000000001").unwrap(),
            tenant_id: TenantId::new(),
            roles,
        }
    }

    #[test]
    fn a_principal_acts_only_in_roles_it_holds() {
        let p = principal(vec![Role::Consultant, Role::Auditor]);
        let actor = p.actor(Role::Auditor).expect("holds auditor");
        assert_eq!(actor.role, Role::Auditor);
        assert_eq!(actor.tenant_id, p.tenant_id);
        assert_eq!(actor.user_id, p.user_id);
        assert!(p.actor(Role::Admin).is_none());
        assert!(p.actor(Role::System).is_none());
    }

    #[test]
    fn actor_for_picks_the_first_allowed_role_held() {
        let p = principal(vec![Role::Consultant, Role::Auditor]);
        let actor = p.actor_for(&[Role::Admin, Role::Auditor, Role::Consultant]);
        assert_eq!(actor.map(|a| a.role), Some(Role::Auditor));
        assert!(p.actor_for(&[Role::Customer]).is_none());
    }

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        assert_eq!(bearer_token("Bearer abc.def.ghi").unwrap(), "abc.def.ghi");
        assert_eq!(bearer_token("bearer  abc.def.ghi ").unwrap(), "abc.def.ghi");
        for value in ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "abc.def.ghi"] {
            assert!(
                matches!(bearer_token(value), Err(AuthError::MissingToken)),
                "{value:?}"
            );
        }
        assert_eq!(
            bearer_token("Bearer abc def").unwrap_err().code(),
            "malformed_token"
        );
    }

    #[test]
    fn only_a_missing_role_is_forbidden_and_only_missing_keys_are_unavailable() {
        assert_eq!(AuthError::NoRole.kind(), AuthErrorKind::Forbidden);
        assert_eq!(AuthError::Expired.kind(), AuthErrorKind::Unauthenticated);
        assert_eq!(
            AuthError::TenantMismatch.kind(),
            AuthErrorKind::Unauthenticated
        );
    }

    #[test]
    fn clipped_values_stay_short() {
        assert_eq!(clip(&"x".repeat(10_000)).len(), CLIP);
    }
}
