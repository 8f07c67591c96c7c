//! [`TokenVerifier`]: a Cognito ID token in, a [`Principal`] out.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use casebook_adapters::cognito::role_for_group;
use casebook_domain::actor::Role;
use casebook_domain::ids::{TenantId, UserId};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use moka::sync::Cache;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::jwks::KeyCache;
use super::{clip, AuthError, Principal};

/// Longer tokens are refused unread. Cognito ID tokens are 1–2 KiB; groups add a little each.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Longer `kid`s are refused before any key lookup (Cognito's are 44 characters).
const MAX_KID_CHARS: usize = 256;

/// Tokens whose verification is remembered at once: clients send one ID token with every
/// request for up to an hour, and the RSA check was the costliest step of a small command
/// (≈ 10 % of the server's CPU under the HTTP load; `jsonwebtoken` parses the key and runs the
/// RSA operation on every call). A few hundred bytes each.
const VERIFIED_CAPACITY: u64 = 10_000;

/// How long a verification is remembered, at most: the token's own expiry still applies, and a
/// refetched key set (a key withdrawn or replaced) voids it at once.
const VERIFIED_FOR: Duration = Duration::from_secs(300);

/// Roles in the order a [`Principal`] lists them.
const ROLE_ORDER: [Role; 4] = [Role::Customer, Role::Consultant, Role::Auditor, Role::Admin];

/// What a [`TokenVerifier`] trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierConfig {
    /// The exact `iss` of accepted tokens: `https://cognito-idp.<region>.amazonaws.com/<pool>`,
    /// also for the emulator's tokens.
    pub issuer: String,
    /// The exact `aud` of accepted tokens: the app client id.
    pub audience: String,
    /// Where the signing keys are served: HTTPS, or plain HTTP to a loopback host (the emulator).
    pub jwks_url: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`; at most five minutes.
    pub leeway: Duration,
    /// The least time between two JWKS fetches; an unknown `kid` within it is refused without
    /// a fetch.
    pub jwks_refetch_interval: Duration,
    /// How long one JWKS fetch may take.
    pub jwks_timeout: Duration,
}

impl VerifierConfig {
    /// The default [`leeway`](Self::leeway).
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
    /// The default [`jwks_refetch_interval`](Self::jwks_refetch_interval).
    pub const DEFAULT_JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
    /// The default [`jwks_timeout`](Self::jwks_timeout).
    pub const DEFAULT_JWKS_TIMEOUT: Duration = Duration::from_secs(5);
    /// The largest accepted [`leeway`](Self::leeway).
    pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

    /// Trust tokens from `issuer` for `audience`, signed by keys from `jwks_url`, with the
    /// default leeway and JWKS timings.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks_url: impl Into<String>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_url: jwks_url.into(),
            leeway: Self::DEFAULT_LEEWAY,
            jwks_refetch_interval: Self::DEFAULT_JWKS_REFETCH_INTERVAL,
            jwks_timeout: Self::DEFAULT_JWKS_TIMEOUT,
        }
    }

    /// The configuration for a user pool in AWS: issuer and JWKS URL both under
    /// `cognito-idp.<region>.amazonaws.com`.
    pub fn for_aws_pool(region: &str, pool_id: &str, client_id: &str) -> Self {
        let issuer = format!("https://cognito-idp.{region}.amazonaws.com/{pool_id}");
        let jwks_url = format!("{issuer}/.well-known/jwks.json");
        Self::new(issuer, client_id, jwks_url)
    }
}

/// A [`VerifierConfig`] that can't be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid token verifier setting {setting}: {reason}")]
pub struct InvalidVerifierConfig {
    /// The offending field of [`VerifierConfig`].
    pub setting: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> InvalidVerifierConfig {
    InvalidVerifierConfig {
        setting,
        reason: reason.into(),
    }
}

/// Verifies Cognito ID tokens. Cheap to clone: clones share the key cache.
#[derive(Clone)]
pub struct TokenVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audience: String,
    leeway: u64,
    validation: Validation,
    keys: KeyCache,
    /// By the SHA-256 of the whole token, so a copy with any byte changed is verified afresh.
    verified: Cache<[u8; 32], Verified>,
}

/// A token that passed every check.
#[derive(Clone)]
struct Verified {
    principal: Principal,
    expires_at: u64,
    /// The key it was verified with, as held in the key set then.
    key: Arc<DecodingKey>,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .finish_non_exhaustive()
    }
}

/// The header fields the verifier reads. `jwk`, `jku`, `x5u` and `x5c` are ignored on purpose:
/// keys come only from the configured JWKS.
#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
    crit: Option<serde_json::Value>,
}

/// The claims the verifier reads beyond those `jsonwebtoken` checks (`exp`, `nbf`).
#[derive(Deserialize)]
struct IdClaims {
    /// Checked by `jsonwebtoken` (which refuses a token without a numeric `exp`); read here as
    /// any value so that refusal, not a shape error, is what the caller sees.
    #[serde(default)]
    exp: serde_json::Value,
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    token_use: Option<String>,
    iat: Option<u64>,
    #[serde(rename = "custom:tenant_id")]
    tenant_id: Option<String>,
    #[serde(rename = "cognito:groups")]
    groups: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(aud) => aud == audience,
            Self::Many(auds) => auds.iter().any(|aud| aud == audience),
        }
    }
}

impl TokenVerifier {
    /// A verifier for `config`; checks the settings, fetches nothing yet (the keys are fetched
    /// on first use).
    pub fn new(config: VerifierConfig) -> Result<Self, InvalidVerifierConfig> {
        if config.issuer.trim().is_empty() {
            return Err(invalid("issuer", "empty"));
        }
        if config.audience.trim().is_empty() {
            return Err(invalid("audience", "empty"));
        }
        if config.leeway > VerifierConfig::MAX_LEEWAY {
            return Err(invalid("leeway", "more than five minutes"));
        }
        let jwks_url = jwks_url(&config.jwks_url)?;
        let http = reqwest::Client::builder()
            .timeout(config.jwks_timeout)
            // The key server is configured, not discovered: never follow it elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| invalid("jwks_url", format!("no HTTP client: {err}")))?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = config.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.set_issuer(&[&config.issuer]);
        // The audience is checked after `token_use`, so an access token (no `aud`) is reported
        // as what it is.
        validation.validate_aud = false;

        Ok(Self {
            inner: Arc::new(Inner {
                leeway: validation.leeway,
                issuer: config.issuer,
                audience: config.audience,
                validation,
                keys: KeyCache::new(jwks_url, http, config.jwks_refetch_interval),
                verified: Cache::builder()
                    .max_capacity(VERIFIED_CAPACITY)
                    .time_to_live(VERIFIED_FOR)
                    .build(),
            }),
        })
    }

    /// The issuer this verifier trusts.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The audience (app client id) this verifier trusts.
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// Fetches the signing keys now rather than on the first token: a Lambda function's init
    /// pays the round trip once. A failure is logged, and the first token fetches again.
    pub async fn warm(&self) {
        self.inner.keys.warm().await;
    }

    /// Verifies `token` (the bearer token, without `Bearer `) as an ID token of the configured
    /// pool and app client, and returns its user, tenant and roles.
    /// A token verified in the last five minutes, with a key the set still holds, is not
    /// checked again, but still expires.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let kid = rs256_kid(token)?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(verified) = self.inner.verified.get(&digest) {
            let key_held = self
                .inner
                .keys
                .cached(&kid)
                .await
                .is_some_and(|key| Arc::ptr_eq(&key, &verified.key));
            let unexpired = now_secs() <= verified.expires_at.saturating_add(self.inner.leeway);
            if key_held && unexpired {
                return Ok(verified.principal);
            }
            // Verified afresh below, which refuses it as expired or signed by an unknown key.
            self.inner.verified.invalidate(&digest);
        }
        let key = self.inner.keys.key(&kid).await?;
        let claims = jsonwebtoken::decode::<IdClaims>(token, &key, &self.inner.validation)
            .map_err(rejection)?
            .claims;
        let expires_at = claims.exp.as_u64();
        let principal = self.principal(claims)?;
        if let Some(expires_at) = expires_at {
            self.inner.verified.insert(
                digest,
                Verified {
                    principal: principal.clone(),
                    expires_at,
                    key,
                },
            );
        }
        Ok(principal)
    }

    /// Like [`verify`](Self::verify), for a request that API Gateway's authorizer has already
    /// let through: the token is verified all the same, and the tenant in the authorizer's
    /// context, when there is one, must be the token's.
    pub async fn verify_with_authorizer_tenant(
        &self,
        token: &str,
        authorizer_tenant: Option<&str>,
    ) -> Result<Principal, AuthError> {
        let principal = self.verify(token).await?;
        if let Some(claimed) = authorizer_tenant {
            if parse_tenant(claimed) != Some(principal.tenant_id) {
                tracing::warn!(
                    user_id = %principal.user_id,
                    "the authorizer context's tenant disagrees with the token's"
                );
                return Err(AuthError::TenantMismatch);
            }
        }
        Ok(principal)
    }

    /// The checks `jsonwebtoken` doesn't make, then the principal.
    fn principal(&self, claims: IdClaims) -> Result<Principal, AuthError> {
        // Already checked by `jsonwebtoken`; checked again as a plain string comparison so an
        // array-valued `iss` can't slip through.
        if claims.iss.as_deref() != Some(self.inner.issuer.as_str()) {
            return Err(AuthError::WrongIssuer);
        }
        match claims.token_use.as_deref() {
            Some("id") => {}
            Some(other) => return Err(AuthError::WrongTokenUse { found: clip(other) }),
            None => return Err(missing("token_use")),
        }
        match &claims.aud {
            Some(aud) if aud.contains(&self.inner.audience) => {}
            Some(_) => return Err(AuthError::WrongAudience),
            None => return Err(missing("aud")),
        }
        if claims
            .iat
            .is_some_and(|iat| iat > now_secs().saturating_add(self.inner.leeway))
        {
            return Err(AuthError::NotYetValid);
        }
        let tenant_id = claims
            .tenant_id
            .as_deref()
            .ok_or_else(|| missing("custom:tenant_id"))?;
        let tenant_id = parse_tenant(tenant_id).ok_or_else(|| invalid_claim("custom:tenant_id"))?;
        let sub = claims.sub.ok_or_else(|| missing("sub"))?;
        let user_id = UserId::parse(sub).map_err(|_| invalid_claim("sub"))?;
        let groups = claims.groups.unwrap_or_default();
        let held: Vec<Role> = groups.iter().filter_map(|g| role_for_group(g)).collect();
        let roles: Vec<Role> = ROLE_ORDER
            .into_iter()
            .filter(|role| held.contains(role))
            .collect();
        if roles.is_empty() {
            return Err(AuthError::NoRole);
        }
        Ok(Principal {
            user_id,
            tenant_id,
            roles,
        })
    }
}

/// The `kid` of a token whose header is readable and names RS256 — decided before any key is
/// looked up, so `none`, HMAC and other algorithms never reach a key.
fn rs256_kid(token: &str) -> Result<String, AuthError> {
    let malformed = |reason| AuthError::MalformedToken { reason };
    if token.len() > MAX_TOKEN_BYTES {
        return Err(malformed("longer than any ID token"));
    }
    let mut parts = token.split('.');
    let (header, payload, signature) =
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(header), Some(payload), Some(signature), None) => (header, payload, signature),
            _ => return Err(malformed("not three dot-separated parts")),
        };
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| malformed("header is not base64url"))?;
    let header: Header =
        serde_json::from_slice(&header).map_err(|_| malformed("header is not a JWT header"))?;
    match header.alg.as_deref() {
        Some("RS256") => {}
        Some(other) => return Err(AuthError::UnsupportedAlgorithm { alg: clip(other) }),
        None => return Err(malformed("header has no alg")),
    }
    if header.crit.is_some() {
        return Err(malformed("critical header extensions are not supported"));
    }
    // Checked after `alg`, so an unsigned (`none`) token is reported as such.
    if !is_base64url(payload) || !is_base64url(signature) {
        return Err(malformed("payload or signature is empty or not base64url"));
    }
    match header.kid {
        Some(kid) if !kid.is_empty() && kid.chars().count() <= MAX_KID_CHARS => Ok(kid),
        Some(_) => Err(malformed("kid is empty or too long")),
        None => Err(malformed("header has no kid")),
    }
}

/// Whether `segment` is non-empty unpadded base64url.
fn is_base64url(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `jsonwebtoken`'s refusal as an [`AuthError`].
fn rejection(err: jsonwebtoken::errors::Error) -> AuthError {
    match err.kind() {
        ErrorKind::InvalidSignature => AuthError::InvalidSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => missing(claim),
        ErrorKind::InvalidClaimFormat(claim) => AuthError::InvalidClaim { claim: clip(claim) },
        ErrorKind::Base64(_) | ErrorKind::Utf8(_) => AuthError::MalformedToken {
            reason: "payload or signature is not base64url",
        },
        ErrorKind::Json(_) => AuthError::MalformedToken {
            reason: "claims are not JSON of the expected shape",
        },
        _ => AuthError::InvalidToken(err),
    }
}

fn missing(claim: &str) -> AuthError {
    AuthError::MissingClaim {
        claim: claim.to_owned(),
    }
}

fn invalid_claim(claim: &str) -> AuthError {
    AuthError::InvalidClaim {
        claim: claim.to_owned(),
    }
}

/// A tenant id written as a hyphenated UUID (the attribute's only form; the braced, URN and
/// unhyphenated forms `Uuid::parse_str` also takes are refused).
fn parse_tenant(value: &str) -> Option<TenantId> {
    if value.len() != 36 {
        return None;
    }
    value.parse().ok()
}

fn now_secs() -> u64 {
    // A clock before 1970 makes every token look issued in the future: refused, not accepted.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The JWKS URL, if it is HTTPS or plain HTTP to a loopback host.
fn jwks_url(raw: &str) -> Result<reqwest::Url, InvalidVerifierConfig> {
    let url = reqwest::Url::parse(raw).map_err(|err| invalid("jwks_url", err.to_string()))?;
    let loopback = url.host_str().is_some_and(|host| {
        host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(invalid(
            "jwks_url",
            "plain HTTP is only accepted for a loopback host",
        )),
        other => Err(invalid("jwks_url", format!("unsupported scheme {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn only_https_or_loopback_http_key_servers_are_accepted() {
        for ok in [
            "https://cognito-idp.eu-west-1.amazonaws.com/p/.well-known/jwks.json",
            "http://127.0.0.1:5000/p/.well-known/jwks.json",
            "http://localhost:5000/jwks.json",
            "http://[::1]:5000/jwks.json",
        ] {
            assert!(jwks_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://cognito-idp.eu-west-1.amazonaws.com/p/.well-known/jwks.json",
            "http://10.0.0.1/jwks.json",
            "file:///etc/jwks.json",
            "not a url",
        ] {
            assert_eq!(jwks_url(bad).unwrap_err().setting, "jwks_url", "{bad}");
        }
    }

    #[test]
    fn empty_issuer_audience_or_huge_leeway_are_refused() {
        let good = VerifierConfig::new("https://issuer", "client", "https://keys/jwks.json");
        assert!(TokenVerifier::new(good.clone()).is_ok());
        let cases = [
            (
                VerifierConfig {
                    issuer: " ".into(),
                    ..good.clone()
                },
                "issuer",
            ),
            (
                VerifierConfig {
                    audience: String::new(),
                    ..good.clone()
                },
                "audience",
            ),
            (
                VerifierConfig {
                    leeway: Duration::from_secs(3600),
                    ..good
                },
                "leeway",
            ),
        ];
        for (config, setting) in cases {
            assert_eq!(TokenVerifier::new(config).unwrap_err().setting, setting);
        }
    }

    #[test]
    fn the_aws_pool_config_puts_the_keys_under_the_issuer() {
        let config = VerifierConfig::for_aws_pool("eu-west-1", "eu-west-1_Abc", "client");
        assert_eq!(
            config.issuer,
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc"
        );
        assert_eq!(
            config.jwks_url,
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc/.well-known/jwks.json"
        );
        assert_eq!(config.audience, "client");
    }

    #[test]
    fn headers_are_judged_before_any_key_is_used() {
        let token = |header: &str| format!("{}.{}.c2ln", segment(header), segment("{}"));
        assert_eq!(
            rs256_kid(&token(r#"{"alg":"RS256","kid":"k1"}"#)).unwrap(),
            "k1"
        );
        let code = |header: &str| rs256_kid(&token(header)).unwrap_err().code();
        assert_eq!(
            code(r#"{"alg":"none","kid":"k1"}"#),
            "unsupported_algorithm"
        );
        assert_eq!(
            code(r#"{"alg":"HS256","kid":"k1"}"#),
            "unsupported_algorithm"
        );
        assert_eq!(
            code(r#"{"alg":"rs256","kid":"k1"}"#),
            "unsupported_algorithm"
        );
        assert_eq!(code(r#"{"alg":"RS256"}"#), "malformed_token");
        assert_eq!(code(r#"{"alg":"RS256","kid":""}"#), "malformed_token");
        assert_eq!(code(r#"{"kid":"k1"}"#), "malformed_token");
        assert_eq!(
            code(r#"{"alg":"RS256","kid":"k1","crit":["exp"]}"#),
            "malformed_token"
        );
        assert_eq!(code(r#"{"alg":["RS256"],"kid":"k1"}"#), "malformed_token");
    }

    #[test]
    fn tenants_must_be_hyphenated_uuids() {
        let id = "0b6f0b1e-4a7c-4f4e-9d0e-3c1f6a2b5d77";
        assert_eq!(parse_tenant(id).map(|t| t.to_string()), Some(id.to_owned()));
        for bad in [
            "0b6f0b1e4a7c4f4e9d0e3c1f6a2b5d77",
            "{0b6f0b1e-4a7c-4f4e-9d0e-3c1f6a2b5d77}",
            "urn:uuid:0b6f0b1e-4a7c-4f4e-9d0e-3c1f6a2b5d77",
            "acme",
            "",
        ] {
            assert_eq!(parse_tenant(bad), None, "{bad}");
        }
    }
}
