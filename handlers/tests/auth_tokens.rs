//! Cognito ID tokens through `TokenVerifier`: real tokens from the AWS emulator's Cognito for
//! users of two tenants, and each attack the API must refuse. Attacks that need claims the
//! emulator won't issue (expired, not yet valid, no tenant…) are signed with a test RSA key
//! whose JWK a small JWKS server on 127.0.0.1:0 serves, counting its requests.
//!
//! Needs the local stack's emulator: `eval "$(infra/local/stack.sh up)"`. Every test that uses
//! it makes a user pool of its own (a random name) and deletes it at the end.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use casebook_adapters::cognito::{CognitoAdmin, CognitoError, PoolInfo, Tokens, UserInfo};
use casebook_domain::actor::Role;
use casebook_domain::ids::TenantId;
use casebook_handlers::auth::{AuthError, AuthErrorKind, Principal, TokenVerifier, VerifierConfig};
use futures::future::join_all;
use serde_json::{json, Value};
use uuid::Uuid;

const PASSWORD: &str = "Casebook-test-1!";
const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_casebooktest";
const AUDIENCE: &str = "casebook-test-client";

// ---------------------------------------------------------------- helpers ---

#[track_caller]
fn assert_refused(result: Result<Principal, AuthError>, code: &str) -> AuthError {
    match result {
        Ok(principal) => panic!("accepted {principal:?}; expected {code}"),
        Err(err) => {
            assert_eq!(err.code(), code, "refused for another reason: {err}");
            err
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("serialisable"))
}

fn decode_segment(segment: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).expect("base64url")).expect("JSON")
}

/// A token's three segments.
fn split(token: &str) -> (String, String, String) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS compact token");
    (parts[0].into(), parts[1].into(), parts[2].into())
}

fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64_json(header), b64_json(claims));
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// An RSA key of the test's own, with the `kid` it is served under.
struct TestKey {
    kid: String,
    pair: KeyPair,
}

impl TestKey {
    fn generate(kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            pair: KeyPair::generate(KeySize::Rsa2048).expect("an RSA key"),
        }
    }

    fn jwk(&self) -> Value {
        let components = PublicKeyComponents::<Vec<u8>>::from(self.pair.public_key());
        json!({
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&components.n),
            "e": URL_SAFE_NO_PAD.encode(&components.e),
        })
    }

    /// The public key as an attacker finds it: PKCS#1 DER, SPKI PEM, and the JWK's text.
    fn public_key_encodings(&self) -> Vec<Vec<u8>> {
        let pkcs1 = self.pair.public_key().as_ref().to_vec();
        let spki = self.pair.public_key().as_der().expect("SPKI DER");
        let body = STANDARD.encode(spki.as_ref());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|line| std::str::from_utf8(line).expect("base64 is ASCII"))
            .collect();
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        );
        vec![
            pkcs1,
            spki.as_ref().to_vec(),
            pem.into_bytes(),
            self.jwk().to_string().into_bytes(),
        ]
    }

    fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64_json(header), b64_json(claims));
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .expect("signing");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            &json!({"alg": "RS256", "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }
}

/// Valid ID-token claims for [`ISSUER`] and [`AUDIENCE`], Cognito's shape.
fn id_claims(tenant: TenantId, groups: &[&str]) -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": Uuid::new_v4().to_string(),
        "token_use": "id",
        "auth_time": now,
        "iat": now,
        "exp": now + 3600,
        "cognito:username": "someone",
        "custom:tenant_id": tenant.to_string(),
        "cognito:groups": groups,
    })
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().expect("an object").remove(name);
    claims
}

/// A JWKS server on 127.0.0.1:0 that counts its requests; its keys can be swapped and it can
/// be told to fail.
struct JwksServer {
    url: String,
    hits: Arc<AtomicUsize>,
    keys: Arc<Mutex<Vec<Value>>>,
    failing: Arc<AtomicBool>,
}

#[derive(Clone)]
struct JwksState {
    hits: Arc<AtomicUsize>,
    keys: Arc<Mutex<Vec<Value>>>,
    failing: Arc<AtomicBool>,
}

async fn serve_jwks(State(state): State<JwksState>) -> Result<Json<Value>, StatusCode> {
    state.hits.fetch_add(1, Ordering::SeqCst);
    if state.failing.load(Ordering::SeqCst) {
        return Err(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let keys = state.keys.lock().expect("keys lock").clone();
    Ok(Json(json!({ "keys": keys })))
}

impl JwksServer {
    async fn start(keys: Vec<Value>) -> Self {
        let state = JwksState {
            hits: Arc::new(AtomicUsize::new(0)),
            keys: Arc::new(Mutex::new(keys)),
            failing: Arc::new(AtomicBool::new(false)),
        };
        let app = Router::new()
            .route("/.well-known/jwks.json", get(serve_jwks))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://{addr}/.well-known/jwks.json"),
            hits: state.hits,
            keys: state.keys,
            failing: state.failing,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn serve(&self, keys: Vec<Value>) {
        *self.keys.lock().expect("keys lock") = keys;
    }
}

/// A test key, the server serving it, and a verifier trusting that server.
struct Local {
    key: TestKey,
    server: JwksServer,
    verifier: TokenVerifier,
}

impl Local {
    async fn start() -> Self {
        Self::with_refetch_interval(VerifierConfig::DEFAULT_JWKS_REFETCH_INTERVAL).await
    }

    async fn with_refetch_interval(interval: Duration) -> Self {
        let key = TestKey::generate("test-key-1");
        let server = JwksServer::start(vec![key.jwk()]).await;
        let config = VerifierConfig {
            jwks_refetch_interval: interval,
            ..VerifierConfig::new(ISSUER, AUDIENCE, &server.url)
        };
        let verifier = TokenVerifier::new(config).expect("a valid config");
        Self {
            key,
            server,
            verifier,
        }
    }
}

/// A user pool of the test's own in the emulator.
struct Emulator {
    admin: CognitoAdmin,
    pool: PoolInfo,
}

impl Emulator {
    async fn start() -> Self {
        // Without an endpoint the SDK would talk to AWS itself: refuse rather than guess.
        assert!(
            std::env::var_os("AWS_ENDPOINT_URL").is_some(),
            "AWS_ENDPOINT_URL is not set: run `eval \"$(infra/local/stack.sh up)\"` first"
        );
        let admin = CognitoAdmin::from_env().await.expect("a Cognito client");
        let name = format!("casebook-auth-{}", Uuid::new_v4().simple());
        let pool = admin.ensure_pool(&name).await.expect("a user pool");
        Self { admin, pool }
    }

    fn verifier(&self) -> TokenVerifier {
        self.verifier_for(VerifierConfig::new(
            &self.pool.issuer,
            &self.pool.client_id,
            &self.pool.jwks_url,
        ))
    }

    fn verifier_for(&self, config: VerifierConfig) -> TokenVerifier {
        TokenVerifier::new(config).expect("a valid config")
    }

    /// A user of `tenant` in every group of `roles`, signed in.
    async fn user(&self, username: &str, tenant: TenantId, roles: &[Role]) -> (UserInfo, Tokens) {
        let mut user = None;
        for &role in roles {
            user = Some(
                self.admin
                    .ensure_user(&self.pool, username, PASSWORD, tenant, role)
                    .await
                    .expect("a user"),
            );
        }
        let tokens = self
            .admin
            .sign_in(&self.pool, username, PASSWORD)
            .await
            .expect("a sign-in");
        (user.expect("at least one role"), tokens)
    }

    async fn delete(self) {
        self.admin
            .delete_pool(&self.pool)
            .await
            .expect("delete the pool");
    }
}

// ------------------------------------------------- the emulator's tokens ---

#[tokio::test]
async fn id_tokens_of_two_tenants_verify_with_their_own_tenant_and_roles() {
    let cognito = Emulator::start().await;
    let (tenant_a, tenant_b) = (TenantId::new(), TenantId::new());
    let (alice, alice_tokens) = cognito
        .user("alice@casebook.test", tenant_a, &[Role::Customer])
        .await;
    let (bob, bob_tokens) = cognito
        .user(
            "bob@casebook.test",
            tenant_b,
            &[Role::Auditor, Role::Consultant],
        )
        .await;
    let verifier = cognito.verifier();

    let a = verifier
        .verify(&alice_tokens.id_token)
        .await
        .expect("alice@casebook.test");
    assert_eq!(a.tenant_id, tenant_a);
    assert_eq!(a.user_id.as_str(), alice.sub);
    assert_eq!(a.roles, vec![Role::Customer]);
    assert_eq!(
        a.actor(Role::Customer).map(|actor| actor.tenant_id),
        Some(tenant_a)
    );
    assert!(a.actor(Role::Consultant).is_none());

    let b = verifier
        .verify(&bob_tokens.id_token)
        .await
        .expect("bob@casebook.test");
    assert_eq!(b.tenant_id, tenant_b);
    assert_eq!(b.user_id.as_str(), bob.sub);
    assert_eq!(b.roles, vec![Role::Consultant, Role::Auditor]);
    assert!(b.actor(Role::Customer).is_none());

    cognito.delete().await;
}

#[tokio::test]
async fn ensuring_pools_and_users_again_changes_nothing() {
    let cognito = Emulator::start().await;
    let again = cognito
        .admin
        .ensure_pool(&cognito.pool.name)
        .await
        .expect("the same pool");
    assert_eq!(again, cognito.pool);
    assert!(
        cognito
            .pool
            .jwks_url
            .ends_with(&format!("/{}/.well-known/jwks.json", cognito.pool.pool_id)),
        "{}",
        cognito.pool.jwks_url
    );

    let tenant = TenantId::new();
    let (first, _) = cognito
        .user("carol@casebook.test", tenant, &[Role::Admin])
        .await;
    let (second, tokens) = cognito
        .user("carol@casebook.test", tenant, &[Role::Admin])
        .await;
    assert_eq!(first, second);
    let carol = cognito
        .verifier()
        .verify(&tokens.id_token)
        .await
        .expect("carol@casebook.test");
    assert_eq!(carol.roles, vec![Role::Admin]);

    let conflict = cognito
        .admin
        .ensure_user(
            &cognito.pool,
            "carol@casebook.test",
            PASSWORD,
            TenantId::new(),
            Role::Admin,
        )
        .await;
    assert!(
        matches!(conflict, Err(CognitoError::TenantConflict { .. })),
        "{conflict:?}"
    );
    let system = cognito
        .admin
        .ensure_user(
            &cognito.pool,
            "dave@casebook.test",
            PASSWORD,
            tenant,
            Role::System,
        )
        .await;
    assert!(
        matches!(system, Err(CognitoError::NotAGroup(Role::System))),
        "{system:?}"
    );
    let wrong_password = cognito
        .admin
        .id_token(&cognito.pool, "carol@casebook.test", "Not-the-password-1!")
        .await;
    assert!(
        matches!(wrong_password, Err(CognitoError::NotAuthorized { .. })),
        "{wrong_password:?}"
    );

    cognito.delete().await;
}

#[tokio::test]
async fn an_access_token_is_refused_where_an_id_token_is_required() {
    let cognito = Emulator::start().await;
    let (_, tokens) = cognito
        .user("erin@casebook.test", TenantId::new(), &[Role::Customer])
        .await;

    assert_refused(
        cognito.verifier().verify(&tokens.access_token).await,
        "wrong_token_use",
    );

    cognito.delete().await;
}

#[tokio::test]
async fn emulator_tokens_are_refused_for_another_audience_or_issuer() {
    let cognito = Emulator::start().await;
    let other = Emulator::start().await;
    let (_, tokens) = cognito
        .user("frank@casebook.test", TenantId::new(), &[Role::Customer])
        .await;
    let (_, other_tokens) = other
        .user("frank@casebook.test", TenantId::new(), &[Role::Customer])
        .await;
    let pool = &cognito.pool;

    let wrong_audience = cognito.verifier_for(VerifierConfig::new(
        &pool.issuer,
        "another-client",
        &pool.jwks_url,
    ));
    assert_refused(
        wrong_audience.verify(&tokens.id_token).await,
        "invalid_audience",
    );

    let wrong_issuer = cognito.verifier_for(VerifierConfig::new(
        &other.pool.issuer,
        &pool.client_id,
        &pool.jwks_url,
    ));
    assert_refused(
        wrong_issuer.verify(&tokens.id_token).await,
        "invalid_issuer",
    );

    // The emulator signs every pool's tokens with one key, so only `iss` (and `aud`) keep
    // another pool's users out.
    assert_refused(
        cognito.verifier().verify(&other_tokens.id_token).await,
        "invalid_issuer",
    );

    other.delete().await;
    cognito.delete().await;
}

#[tokio::test]
async fn a_tampered_signature_or_payload_is_refused() {
    let cognito = Emulator::start().await;
    let tenant = TenantId::new();
    let (_, tokens) = cognito
        .user("grace@casebook.test", tenant, &[Role::Customer])
        .await;
    let verifier = cognito.verifier();
    let (header, payload, signature) = split(&tokens.id_token);

    let mut bytes = URL_SAFE_NO_PAD.decode(&signature).expect("base64url");
    bytes[10] ^= 0x01;
    let flipped = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(&bytes));
    assert_refused(verifier.verify(&flipped).await, "invalid_signature");

    let truncated = format!(
        "{header}.{payload}.{}",
        URL_SAFE_NO_PAD.encode(&bytes[..128])
    );
    assert_refused(verifier.verify(&truncated).await, "invalid_signature");

    // Another tenant's id in otherwise genuine claims, under the genuine signature.
    let claims = with(
        decode_segment(&payload),
        "custom:tenant_id",
        json!(TenantId::new().to_string()),
    );
    let moved = format!("{header}.{}.{signature}", b64_json(&claims));
    assert_refused(verifier.verify(&moved).await, "invalid_signature");

    // The genuine token still passes: the refusals above are the tampering's doing.
    assert_eq!(
        verifier
            .verify(&tokens.id_token)
            .await
            .expect("genuine")
            .tenant_id,
        tenant
    );

    cognito.delete().await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    let cognito = Emulator::start().await;
    let (_, tokens) = cognito
        .user("heidi@casebook.test", TenantId::new(), &[Role::Admin])
        .await;
    let verifier = cognito.verifier();
    let (_, payload, signature) = split(&tokens.id_token);

    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64_json(&json!({"alg": alg, "typ": "JWT", "kid": "dummy"}));
        for sig in ["", signature.as_str()] {
            let token = format!("{header}.{payload}.{sig}");
            assert_refused(verifier.verify(&token).await, "unsupported_algorithm");
        }
    }

    cognito.delete().await;
}

#[tokio::test]
async fn the_authorizer_context_tenant_must_agree_with_the_token() {
    let cognito = Emulator::start().await;
    let tenant = TenantId::new();
    let (_, tokens) = cognito
        .user("ivan@casebook.test", tenant, &[Role::Consultant])
        .await;
    let verifier = cognito.verifier();
    let token = tokens.id_token.as_str();

    let agreed = verifier
        .verify_with_authorizer_tenant(token, Some(&tenant.to_string()))
        .await
        .expect("the same tenant");
    assert_eq!(agreed.tenant_id, tenant);
    let absent = verifier
        .verify_with_authorizer_tenant(token, None)
        .await
        .expect("no authorizer context");
    assert_eq!(absent.tenant_id, tenant);

    let other = TenantId::new().to_string();
    for claimed in [other.as_str(), "", "not-a-uuid"] {
        assert_refused(
            verifier
                .verify_with_authorizer_tenant(token, Some(claimed))
                .await,
            "tenant_mismatch",
        );
    }

    // The authorizer's word doesn't excuse a bad token.
    let (header, payload, _) = split(token);
    let unsigned = format!("{header}.{payload}.");
    assert_refused(
        verifier
            .verify_with_authorizer_tenant(&unsigned, Some(&tenant.to_string()))
            .await,
        "malformed_token",
    );

    cognito.delete().await;
}

// ------------------------------------------------------- crafted tokens ---

#[tokio::test]
async fn a_token_signed_by_the_test_key_verifies() {
    let local = Local::start().await;
    let tenant = TenantId::new();
    let claims = id_claims(
        tenant,
        &["consultant", "beta-testers", "customer", "consultant"],
    );

    let principal = local
        .verifier
        .verify(&local.key.sign(&claims))
        .await
        .expect("valid");

    assert_eq!(principal.tenant_id, tenant);
    assert_eq!(principal.user_id.as_str(), claims["sub"].as_str().unwrap());
    // Unknown groups ignored, repeats removed, in the role order.
    assert_eq!(principal.roles, vec![Role::Customer, Role::Consultant]);
}

#[tokio::test]
async fn a_verified_token_is_not_trusted_for_its_tampered_copies() {
    let local = Local::start().await;
    let tenant = TenantId::new();
    let token = local.key.sign(&id_claims(tenant, &["customer"]));
    local.verifier.verify(&token).await.expect("genuine");
    let (header, payload, signature) = split(&token);

    let moved = with(
        decode_segment(&payload),
        "custom:tenant_id",
        json!(TenantId::new().to_string()),
    );
    let moved = format!("{header}.{}.{signature}", b64_json(&moved));
    assert_refused(local.verifier.verify(&moved).await, "invalid_signature");
    let mut bytes = URL_SAFE_NO_PAD.decode(&signature).expect("base64url");
    bytes[10] ^= 0x01;
    let flipped = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(&bytes));
    assert_refused(local.verifier.verify(&flipped).await, "invalid_signature");

    let again = local.verifier.verify(&token).await.expect("still genuine");
    assert_eq!(again.tenant_id, tenant);
}

#[tokio::test]
async fn a_verified_token_is_refused_once_it_expires() {
    let local = Local::start().await;
    let strict = TokenVerifier::new(VerifierConfig {
        leeway: Duration::ZERO,
        ..VerifierConfig::new(ISSUER, AUDIENCE, &local.server.url)
    })
    .expect("a valid config");
    let expires_at = now() + 1;
    let token = local.key.sign(&with(
        id_claims(TenantId::new(), &["customer"]),
        "exp",
        json!(expires_at),
    ));
    strict.verify(&token).await.expect("valid until it expires");

    while now() <= expires_at {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_refused(strict.verify(&token).await, "token_expired");
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let local = Local::start().await;
    let claims = id_claims(TenantId::new(), &["admin"]);

    for secret in local.key.public_key_encodings() {
        for alg in ["HS256", "HS384", "HS512"] {
            let header = json!({"alg": alg, "typ": "JWT", "kid": local.key.kid});
            let token = hs256(&secret, &header, &claims);
            assert_refused(local.verifier.verify(&token).await, "unsupported_algorithm");
        }
    }
    // Refused on the header alone: no key was ever looked up.
    assert_eq!(local.server.hits(), 0);
}

#[tokio::test]
async fn other_asymmetric_algorithms_are_refused() {
    let local = Local::start().await;
    let claims = id_claims(TenantId::new(), &["admin"]);
    for alg in ["RS384", "RS512", "PS256", "ES256", "EdDSA"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": local.key.kid});
        let token = local.key.sign_with_header(&header, &claims);
        assert_refused(local.verifier.verify(&token).await, "unsupported_algorithm");
    }
}

#[tokio::test]
async fn keys_named_in_the_token_header_are_never_used() {
    let local = Local::start().await;
    let attacker = TestKey::generate(&local.key.kid);
    let attacker_server = JwksServer::start(vec![attacker.jwk()]).await;
    let header = json!({
        "alg": "RS256",
        "typ": "JWT",
        "kid": local.key.kid,
        "jwk": attacker.jwk(),
        "jku": attacker_server.url,
    });
    let token = attacker.sign_with_header(&header, &id_claims(TenantId::new(), &["admin"]));

    assert_refused(local.verifier.verify(&token).await, "invalid_signature");
    assert_eq!(attacker_server.hits(), 0);
}

#[tokio::test]
async fn expired_tokens_are_refused_beyond_the_leeway() {
    let local = Local::start().await;
    let claims = id_claims(TenantId::new(), &["customer"]);

    let long_expired = with(
        with(claims.clone(), "exp", json!(now() - 600)),
        "iat",
        json!(now() - 4200),
    );
    assert_refused(
        local.verifier.verify(&local.key.sign(&long_expired)).await,
        "token_expired",
    );

    // Within the 30 s leeway: a clock a little behind the issuer's is tolerated.
    let just_expired = with(claims, "exp", json!(now() - 5));
    local
        .verifier
        .verify(&local.key.sign(&just_expired))
        .await
        .expect("within the leeway");
}

#[tokio::test]
async fn tokens_not_yet_valid_are_refused_beyond_the_leeway() {
    let local = Local::start().await;
    let claims = id_claims(TenantId::new(), &["customer"]);

    let future_nbf = with(claims.clone(), "nbf", json!(now() + 600));
    assert_refused(
        local.verifier.verify(&local.key.sign(&future_nbf)).await,
        "token_not_yet_valid",
    );
    // Cognito sets no `nbf`; an `iat` in the future is refused the same way.
    let future_iat = with(claims.clone(), "iat", json!(now() + 600));
    assert_refused(
        local.verifier.verify(&local.key.sign(&future_iat)).await,
        "token_not_yet_valid",
    );

    let slightly_ahead = with(
        with(claims, "nbf", json!(now() + 5)),
        "iat",
        json!(now() + 5),
    );
    local
        .verifier
        .verify(&local.key.sign(&slightly_ahead))
        .await
        .expect("within the leeway");
}

#[tokio::test]
async fn crafted_tokens_for_another_issuer_or_audience_are_refused() {
    let local = Local::start().await;
    let claims = id_claims(TenantId::new(), &["customer"]);
    let sign = |claims: Value| local.key.sign(&claims);

    let cases = [
        (
            with(claims.clone(), "iss", json!("https://evil.example/pool")),
            "invalid_issuer",
        ),
        (
            with(claims.clone(), "iss", json!([ISSUER])),
            "malformed_token",
        ),
        (
            with(claims.clone(), "aud", json!("another-client")),
            "invalid_audience",
        ),
        (
            with(claims.clone(), "aud", json!(["another-client"])),
            "invalid_audience",
        ),
        (
            with(claims.clone(), "token_use", json!("access")),
            "wrong_token_use",
        ),
        (without(claims.clone(), "token_use"), "missing_claim"),
        (without(claims.clone(), "aud"), "missing_claim"),
        (without(claims.clone(), "iss"), "missing_claim"),
        (without(claims.clone(), "exp"), "missing_claim"),
        (without(claims.clone(), "sub"), "missing_claim"),
        // `jsonwebtoken` counts an unreadable `exp` as absent.
        (
            with(claims.clone(), "exp", json!("tomorrow")),
            "missing_claim",
        ),
    ];
    for (claims, code) in cases {
        assert_refused(local.verifier.verify(&sign(claims.clone())).await, code);
    }
}

#[tokio::test]
async fn tokens_without_a_usable_tenant_are_refused() {
    let local = Local::start().await;
    let claims = id_claims(TenantId::new(), &["customer"]);

    assert_refused(
        local
            .verifier
            .verify(&local.key.sign(&without(claims.clone(), "custom:tenant_id")))
            .await,
        "missing_claim",
    );
    let id = Uuid::new_v4();
    let cases = [
        (json!("acme"), "invalid_claim"),
        (json!(""), "invalid_claim"),
        (json!(id.simple().to_string()), "invalid_claim"),
        (json!(id.urn().to_string()), "invalid_claim"),
        (json!(42), "malformed_token"),
    ];
    for (bad, code) in cases {
        let token = local
            .key
            .sign(&with(claims.clone(), "custom:tenant_id", bad));
        assert_refused(local.verifier.verify(&token).await, code);
    }
}

#[tokio::test]
async fn tokens_without_a_casebook_group_are_forbidden() {
    let local = Local::start().await;
    let claims = id_claims(TenantId::new(), &[]);

    for groups in [json!([]), json!(["system"]), json!(["Admin", "superusers"])] {
        let token = local
            .key
            .sign(&with(claims.clone(), "cognito:groups", groups));
        let err = assert_refused(local.verifier.verify(&token).await, "no_role");
        assert_eq!(err.kind(), AuthErrorKind::Forbidden);
    }
    let token = local.key.sign(&without(claims, "cognito:groups"));
    assert_refused(local.verifier.verify(&token).await, "no_role");
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let local = Local::start().await;
    let good = local.key.sign(&id_claims(TenantId::new(), &["customer"]));
    let (header, payload, signature) = split(&good);
    let rs256 = |header: Value| b64_json(&header);

    let garbage = [
        String::new(),
        "garbage".into(),
        "a.b".into(),
        format!("{header}.{payload}.{signature}.extra"),
        format!("!!!.{payload}.{signature}"),
        format!(
            "{}.{payload}.{signature}",
            URL_SAFE_NO_PAD.encode("not json")
        ),
        format!("{}.{payload}.{signature}", rs256(json!({"alg": "RS256"}))),
        format!(
            "{}.{payload}.{signature}",
            rs256(json!({"kid": local.key.kid}))
        ),
        format!(
            "{}.{payload}.{signature}",
            rs256(json!({"alg": "RS256", "kid": local.key.kid, "crit": ["b64"]}))
        ),
        format!("{header}.!!!.{signature}"),
        format!("{header}.{payload}.!!!"),
        format!("{header}.{payload}."),
        format!("{header}..{signature}"),
        format!("{header}.{payload}.{signature}="),
        format!("{header}.{}.{signature}", "A".repeat(20_000)),
        local.key.sign_with_header(
            &json!({"alg": "RS256", "kid": local.key.kid}),
            &json!("a string, not claims"),
        ),
    ];
    for token in garbage {
        let err = local.verifier.verify(&token).await.expect_err("refused");
        assert_eq!(
            err.kind(),
            AuthErrorKind::Unauthenticated,
            "{token:.80}: {err}"
        );
        assert_eq!(err.code(), "malformed_token", "{token:.80}: {err}");
    }
    // The intact token still verifies: each refusal above is its damage's doing.
    local
        .verifier
        .verify(&good)
        .await
        .expect("the intact token");
}

// ------------------------------------------------------------ the key set ---

#[tokio::test]
async fn an_unknown_kid_triggers_one_refetch_and_a_rotated_key_verifies() {
    let local = Local::with_refetch_interval(Duration::ZERO).await;
    let claims = id_claims(TenantId::new(), &["customer"]);
    local
        .verifier
        .verify(&local.key.sign(&claims))
        .await
        .expect("first key");
    assert_eq!(local.server.hits(), 1);

    let rotated = TestKey::generate("test-key-2");
    local.server.serve(vec![local.key.jwk(), rotated.jwk()]);
    let token = rotated.sign(&claims);
    let results = join_all((0..8).map(|_| local.verifier.verify(&token))).await;
    for result in results {
        result.expect("the rotated key");
    }
    // Eight concurrent misses, one fetch.
    assert_eq!(local.server.hits(), 2);

    // A key the pool has dropped stops verifying once the set is refetched.
    local.server.serve(vec![rotated.jwk()]);
    assert_refused(
        local
            .verifier
            .verify(&TestKey::generate("test-key-3").sign(&claims))
            .await,
        "unknown_key",
    );
    assert_eq!(local.server.hits(), 3);
    assert_refused(
        local.verifier.verify(&local.key.sign(&claims)).await,
        "unknown_key",
    );
    local
        .verifier
        .verify(&token)
        .await
        .expect("the rotated key still");
}

#[tokio::test]
async fn a_warmed_verifier_checks_its_first_token_without_fetching() {
    let local = Local::with_refetch_interval(Duration::from_secs(3600)).await;
    local.verifier.warm().await;
    assert_eq!(local.server.hits(), 1, "the init fetched the keys");

    let claims = id_claims(TenantId::new(), &["customer"]);
    local
        .verifier
        .verify(&local.key.sign(&claims))
        .await
        .expect("a valid token");
    assert_eq!(local.server.hits(), 1, "the first request fetched nothing");
}

#[tokio::test]
async fn a_failed_warm_up_leaves_the_first_token_to_fetch_the_keys() {
    let local = Local::with_refetch_interval(Duration::from_secs(3600)).await;
    local.server.failing.store(true, Ordering::SeqCst);
    local.verifier.warm().await;
    assert_eq!(local.server.hits(), 1);

    // Within the refetch interval, yet the init's failure doesn't stand for the request.
    local.server.failing.store(false, Ordering::SeqCst);
    let claims = id_claims(TenantId::new(), &["customer"]);
    local
        .verifier
        .verify(&local.key.sign(&claims))
        .await
        .expect("keys fetched on the first token");
    assert_eq!(local.server.hits(), 2);
}

#[tokio::test]
async fn refetches_for_unknown_kids_are_rate_limited() {
    let local = Local::with_refetch_interval(Duration::from_secs(3600)).await;
    let claims = id_claims(TenantId::new(), &["customer"]);
    local
        .verifier
        .verify(&local.key.sign(&claims))
        .await
        .expect("first key");
    assert_eq!(local.server.hits(), 1);

    let rotated = TestKey::generate("test-key-2");
    local.server.serve(vec![local.key.jwk(), rotated.jwk()]);
    assert_refused(
        local.verifier.verify(&rotated.sign(&claims)).await,
        "unknown_key",
    );
    for i in 0..20 {
        let made_up = TestKey {
            kid: format!("made-up-{i}"),
            pair: KeyPair::generate(KeySize::Rsa2048).expect("an RSA key"),
        };
        assert_refused(
            local.verifier.verify(&made_up.sign(&claims)).await,
            "unknown_key",
        );
    }
    assert_eq!(local.server.hits(), 1, "no refetch within the interval");
    // Known keys are unaffected.
    local
        .verifier
        .verify(&local.key.sign(&claims))
        .await
        .expect("first key");
}

#[tokio::test]
async fn an_unreachable_key_server_is_reported_as_unavailable_not_as_a_bad_token() {
    let local = Local::with_refetch_interval(Duration::from_secs(3600)).await;
    local.server.failing.store(true, Ordering::SeqCst);
    let token = local.key.sign(&id_claims(TenantId::new(), &["customer"]));

    let err = assert_refused(local.verifier.verify(&token).await, "jwks_unavailable");
    assert_eq!(err.kind(), AuthErrorKind::Unavailable);
    // Within the interval the failure is repeated without another fetch.
    assert_refused(local.verifier.verify(&token).await, "jwks_unavailable");
    assert_eq!(local.server.hits(), 1);

    let recovering = Local::with_refetch_interval(Duration::ZERO).await;
    recovering.server.failing.store(true, Ordering::SeqCst);
    let token = recovering
        .key
        .sign(&id_claims(TenantId::new(), &["customer"]));
    assert_refused(recovering.verifier.verify(&token).await, "jwks_unavailable");
    recovering.server.failing.store(false, Ordering::SeqCst);
    recovering
        .verifier
        .verify(&token)
        .await
        .expect("after recovery");
}
