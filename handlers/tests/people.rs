//! Practices sign themselves up and manage their people, against the emulator's Cognito: the
//! public sign-up, the admin's first sign-in, invitations, roles that change and users who are
//! disabled (their existing tokens refused), password resets, two practices kept apart, and the
//! people subscription surviving a Cognito outage and a crash between event and effect.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_cognitoidentityprovider::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_cognitoidentityprovider::config::{ConfigBag, Intercept, RuntimeComponents};
use axum::http::StatusCode;
use casebook_adapters::aws::shared_config;
use casebook_adapters::cognito::{CognitoAdmin, CognitoError, SignIn, Tokens};
use casebook_adapters::people::CognitoPeople;
use casebook_application::in_memory::KeptMailbox;
use casebook_application::ports::{IdentityError, IdentityProvider, Provisioned};
use casebook_application::reactions::People as PeopleReaction;
use casebook_domain::ids::TenantId;
use casebook_domain::tenant::Member;
use casebook_domain::values::Email;
use casebook_handlers::reactions::ReactionSubscription;
use casebook_projections::runner::{DrainOutcome, Runner};
use serde_json::{json, Value};
use support::{spawn_app, TestApp, User};
use uuid::Uuid;

/// Every test user's own password, once chosen.
const PASSWORD: &str = "Own-password-42";

fn email(address: &str) -> Email {
    Email::parse(address).expect("a test address")
}

fn source(n: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, n], 40_000))
}

/// The emulator's Cognito as the people subscription and a browser use it, with the mailbox
/// its invitations land in.
struct People<'a> {
    app: &'a TestApp,
    cognito: CognitoAdmin,
    identity: Arc<CognitoPeople>,
    mailbox: Arc<KeptMailbox>,
}

impl<'a> People<'a> {
    async fn new(app: &'a TestApp) -> Self {
        let cognito = CognitoAdmin::from_env().await.expect("emulator configured");
        let identity = Arc::new(CognitoPeople::new(cognito.clone(), app.pool_info.clone()));
        Self {
            app,
            cognito,
            identity,
            mailbox: Arc::new(KeptMailbox::default()),
        }
    }

    /// The people subscription over `identity`.
    async fn runner(&self, identity: Arc<dyn IdentityProvider>) -> Runner {
        casebook_handlers::compose::runner(self.app.projector_pool().await).with_subscription(
            ReactionSubscription::new(PeopleReaction::new(
                self.app.state.service.clone(),
                identity,
                self.mailbox.clone(),
            )),
        )
    }

    /// Runs the people subscription until `email`'s account is recorded on the tenant, then
    /// projects (bounded: an event becomes readable once every older transaction has ended).
    async fn provisioned(&self, tenant: TenantId, email: &Email) {
        for _ in 0..200 {
            self.runner(self.identity.clone())
                .await
                .drain(Duration::from_secs(10))
                .await
                .expect("drained");
            let state = self.app.state.service.tenant_state(tenant).await.unwrap();
            if state.member(email).is_some_and(|m| m.user_id.is_some()) {
                self.app.project().await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{email}'s account was never recorded");
    }

    /// Projects until `admin`'s people list shows `address` with `role` and `status`
    /// (bounded: an event becomes readable once every older transaction has ended).
    async fn listed(&self, admin: &User, address: &str, role: &str, status: &str) {
        let mut last = Value::Null;
        for _ in 0..200 {
            self.app.project().await;
            let (_, users) = self.app.get(admin, "/v1/users").await;
            let row = users
                .as_array()
                .and_then(|users| users.iter().find(|u| u["email"] == address))
                .cloned()
                .unwrap_or_default();
            if row["role"] == role && row["status"] == status {
                return;
            }
            last = users;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{address} never listed as {role}, {status}: {last}");
    }

    /// Applies every people event so far to Cognito, and projects.
    async fn settle(&self) {
        self.app.project().await;
        let reports = self
            .runner(self.identity.clone())
            .await
            .drain(Duration::from_secs(10))
            .await
            .expect("drained");
        assert!(
            reports
                .iter()
                .all(|report| report.outcome == DrainOutcome::CaughtUp),
            "{reports:?}"
        );
    }

    /// The first sign-in of `email`: their invitation's temporary password gets no tokens,
    /// only the challenge to choose their own, which signs them in.
    async fn first_sign_in(&self, email: &Email) -> Tokens {
        let pool = &self.app.pool_info;
        let temporary = self
            .mailbox
            .temporary_password(email)
            .expect("an invitation");
        let session = match self
            .cognito
            .start_sign_in(pool, email.as_str(), &temporary)
            .await
            .expect("the temporary password is accepted")
        {
            SignIn::NewPasswordRequired { session } => session,
            SignIn::Tokens(_) => panic!("{email} was signed in without choosing a password"),
        };
        self.cognito
            .answer_new_password(pool, email.as_str(), &session, PASSWORD)
            .await
            .expect("the new password is set")
    }

    /// Signs a practice up from `from`, its admin `admin` chooses their password; the tenant
    /// and the admin signed in.
    async fn practice(&self, name: &str, admin: &Email, from: SocketAddr) -> (TenantId, User) {
        let (status, body) = self
            .app
            .post_public(
                "/v1/signup",
                json!({
                    "practice_name": name,
                    "admin_email": admin.as_str(),
                    "admin_name": "Founder",
                    "plan": "professional",
                }),
                Some(&Uuid::new_v4().to_string()),
                from,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let tenant: TenantId = body["ids"]["tenant_id"].as_str().unwrap().parse().unwrap();
        self.provisioned(tenant, admin).await;
        let tokens = self.first_sign_in(admin).await;
        (tenant, user(&tokens))
    }

    /// `admin` invites `address` as `role`; their first sign-in's tokens.
    async fn invite(&self, tenant: TenantId, admin: &User, address: &str, role: &str) -> Tokens {
        let (status, body) = self
            .app
            .post(
                admin,
                "/v1/users",
                json!({ "email": address, "name": format!("A {role}"), "role": role }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let invited = email(address);
        self.provisioned(tenant, &invited).await;
        self.first_sign_in(&invited).await
    }
}

fn user(tokens: &Tokens) -> User {
    User {
        token: tokens.id_token.clone(),
    }
}

async fn status_of_get(app: &TestApp, user: &User, path: &str) -> (StatusCode, Value) {
    app.get(user, path).await
}

async fn events_of_type(app: &TestApp, tenant: TenantId, event_type: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = $2")
        .bind(tenant.to_string())
        .bind(event_type)
        .fetch_one(&app.projector_pool().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_signed_up_practices_admin_chooses_a_password_and_invites_people_who_get_their_roles_access(
) {
    let app = spawn_app().await;
    let people = People::new(&app).await;
    let key = Uuid::new_v4().to_string();
    let sign_up = json!({
        "practice_name": "Northwind Advisory",
        "admin_email": "Founder@Northwind.test",
        "admin_name": "Nora North",
        "plan": "starter",
    });
    let (status, body) = app
        .post_public("/v1/signup", sign_up.clone(), Some(&key), source(1))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["events"][0]["event_type"], "TenantSignedUp");
    assert_eq!(body["ids"]["admin_email"], "founder@northwind.test");
    let tenant: TenantId = body["ids"]["tenant_id"].as_str().unwrap().parse().unwrap();

    // A retry with the same key lands once: the same tenant, nothing appended.
    let (status, again) = app
        .post_public("/v1/signup", sign_up, Some(&key), source(1))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again["ids"]["tenant_id"], body["ids"]["tenant_id"]);
    assert_eq!(again["events"], json!([]));
    assert_eq!(events_of_type(&app, tenant, "TenantSignedUp").await, 1);

    // The admin's invitation: its temporary password must be replaced at the first sign-in.
    let founder = email("founder@northwind.test");
    people.provisioned(tenant, &founder).await;
    let admin = user(&people.first_sign_in(&founder).await);
    let signed_in = people
        .cognito
        .start_sign_in(&app.pool_info, founder.as_str(), PASSWORD)
        .await
        .unwrap();
    assert!(matches!(signed_in, SignIn::Tokens(_)), "{signed_in:?}");

    let customer = user(
        &people
            .invite(tenant, &admin, "casey@client.test", "customer")
            .await,
    );
    let consultant = user(
        &people
            .invite(tenant, &admin, "kim@northwind.test", "consultant")
            .await,
    );
    let auditor = user(
        &people
            .invite(tenant, &admin, "ada@audit.test", "auditor")
            .await,
    );

    let session = json!({ "session_id": Uuid::new_v4(), "subject": "Supplier contract" });
    let (status, body) = app.post(&customer, "/v1/sessions", session).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for (who, path, expected) in [
        (&customer, "/v1/review-queue", StatusCode::FORBIDDEN),
        (&consultant, "/v1/review-queue", StatusCode::OK),
        (&consultant, "/v1/users", StatusCode::FORBIDDEN),
        (&auditor, "/v1/events", StatusCode::OK),
        (&auditor, "/v1/users", StatusCode::FORBIDDEN),
        (&admin, "/v1/tenant", StatusCode::OK),
    ] {
        let (status, body) = status_of_get(&app, who, path).await;
        assert_eq!(status, expected, "GET {path}: {body}");
    }

    people
        .listed(&admin, "ada@audit.test", "auditor", "active")
        .await;
    let (status, users) = app.get(&admin, "/v1/users").await;
    assert_eq!(status, StatusCode::OK, "{users}");
    let listed: Vec<(&str, &str, &str)> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["email"].as_str().unwrap(),
                u["role"].as_str().unwrap(),
                u["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            ("ada@audit.test", "auditor", "active"),
            ("casey@client.test", "customer", "active"),
            ("founder@northwind.test", "admin", "active"),
            ("kim@northwind.test", "consultant", "active"),
        ]
    );
    for address in [
        "founder@northwind.test",
        "casey@client.test",
        "kim@northwind.test",
        "ada@audit.test",
    ] {
        assert_eq!(
            people.mailbox.invitations_to(&email(address)),
            1,
            "{address}"
        );
    }

    // The audit table answers who gave whom access.
    let (status, audit) = app.get(&auditor, "/v1/audit?action=UserInvited").await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let mut granted: Vec<(&str, &str, &str)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["reason"].as_str().unwrap(),
                row["outcome"].as_str().unwrap(),
                row["actor_role"].as_str().unwrap(),
            )
        })
        .collect();
    granted.sort();
    assert_eq!(
        granted,
        vec![
            ("ada@audit.test", "auditor", "admin"),
            ("casey@client.test", "customer", "admin"),
            ("kim@northwind.test", "consultant", "admin"),
        ]
    );
}

#[tokio::test]
async fn the_sign_up_refuses_a_taken_address_a_reused_key_and_floods_and_records_every_attempt() {
    let app = spawn_app().await;
    let body = |admin: &str, plan: &str| {
        json!({
            "practice_name": "Contoso Counsel",
            "admin_email": admin,
            "admin_name": "Cleo",
            "plan": plan,
        })
    };
    let first_key = Uuid::new_v4().to_string();
    let attempts = [
        (
            body("cleo@contoso.test", "professional"),
            first_key.clone(),
            201,
            None,
        ),
        (
            body("CLEO@contoso.test", "starter"),
            Uuid::new_v4().to_string(),
            409,
            Some("email_taken"),
        ),
        (
            body("other@contoso.test", "professional"),
            first_key,
            422,
            Some("idempotency_key_reused"),
        ),
        (
            body("new@contoso.test", "platinum"),
            Uuid::new_v4().to_string(),
            422,
            Some("validation_failed"),
        ),
        (
            body("not an address", "starter"),
            Uuid::new_v4().to_string(),
            422,
            Some("validation_failed"),
        ),
        // The source's sixth attempt: over its share.
        (
            body("late@contoso.test", "starter"),
            Uuid::new_v4().to_string(),
            429,
            Some("rate_limited"),
        ),
    ];
    for (body, key, status, code) in attempts {
        let (got, answer) = app
            .post_public("/v1/signup", body, Some(&key), source(7))
            .await;
        assert_eq!(got.as_u16(), status, "{answer}");
        if let Some(code) = code {
            assert_eq!(answer["code"], code, "{answer}");
        }
    }
    // Another address isn't held back by that one.
    let (status, answer) = app
        .post_public(
            "/v1/signup",
            body("dee@contoso.test", "starter"),
            None,
            source(8),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    // Nor is the whole process, until many sources have tried at once.
    let mut statuses = Vec::new();
    for n in 10..60 {
        let (status, answer) = app
            .post_public("/v1/signup", json!({}), None, source(n))
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(answer["code"], "rate_limited", "{answer}");
        }
        statuses.push(status);
    }
    assert_eq!(statuses[0], StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "the overall limit holds: {statuses:?}"
    );

    let mut su = app.superuser().await;
    let recorded: Vec<String> = sqlx::query_scalar(
        "SELECT outcome FROM signup_attempts WHERE source = '192.0.2.7' ORDER BY attempt_id",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert_eq!(
        recorded,
        [
            "created",
            "email_taken",
            "idempotency_key_reused",
            "validation_failed",
            "validation_failed",
            "rate_limited"
        ]
    );
    let hashed: Option<String> = sqlx::query_scalar(
        "SELECT email_sha256 FROM signup_attempts WHERE outcome = 'email_taken'",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(
        hashed.map(|h| h.len()),
        Some(64),
        "the address is kept hashed"
    );
    let (status, plans) = {
        let response = app.get_public("/v1/plans").await;
        (response.status(), support::json_body(response).await)
    };
    assert_eq!(status, StatusCode::OK);
    assert_eq!(plans.as_array().unwrap().len(), 4, "{plans}");
}

#[tokio::test]
async fn a_role_change_or_a_disable_refuses_existing_tokens_and_the_refreshed_token_carries_the_new_role(
) {
    let app = spawn_app().await;
    let people = People::new(&app).await;
    let founder = email("founder@fabrikam.test");
    let (tenant, admin) = people.practice("Fabrikam", &founder, source(1)).await;
    let kim_tokens = people
        .invite(tenant, &admin, "kim@fabrikam.test", "consultant")
        .await;
    let kim = user(&kim_tokens);
    let refresh_token = kim_tokens.refresh_token.clone().expect("a refresh token");
    assert_eq!(app.get(&kim, "/v1/review-queue").await.0, StatusCode::OK);

    // Made auditor: the consultant's token is refused as soon as the change is projected.
    let (status, body) = app
        .put(
            &admin,
            "/v1/users/kim@fabrikam.test/role",
            json!({ "role": "auditor" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    people
        .listed(&admin, "kim@fabrikam.test", "auditor", "active")
        .await;
    for path in ["/v1/review-queue", "/v1/events"] {
        let (status, body) = app.get(&kim, path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert_eq!(body["code"], "token_revoked");
    }
    // Once Cognito has the new group, a refreshed token carries it.
    people.settle().await;
    let refreshed = people
        .cognito
        .refresh(&app.pool_info, &refresh_token)
        .await
        .expect("refreshed");
    let kim = user(&refreshed);
    assert_eq!(app.get(&kim, "/v1/events").await.0, StatusCode::OK);
    assert_eq!(
        app.get(&kim, "/v1/review-queue").await.0,
        StatusCode::FORBIDDEN
    );

    // Disabled: the valid token is refused, and Cognito refuses them too.
    let (status, body) = app
        .post(&admin, "/v1/users/kim@fabrikam.test/disable", json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    people
        .listed(&admin, "kim@fabrikam.test", "auditor", "disabled")
        .await;
    let (status, body) = app.get(&kim, "/v1/events").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "token_revoked");
    people.settle().await;
    let refused = people.cognito.refresh(&app.pool_info, &refresh_token).await;
    assert!(
        matches!(refused, Err(CognitoError::NotAuthorized { .. })),
        "{refused:?}"
    );
    let refused = people
        .cognito
        .sign_in(&app.pool_info, "kim@fabrikam.test", PASSWORD)
        .await;
    assert!(
        matches!(refused, Err(CognitoError::NotAuthorized { .. })),
        "{refused:?}"
    );
    // Enabled again: they sign in and work.
    let (status, body) = app
        .post(&admin, "/v1/users/kim@fabrikam.test/enable", json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    people
        .listed(&admin, "kim@fabrikam.test", "auditor", "active")
        .await;
    people.settle().await;
    let kim = user(
        &people
            .cognito
            .sign_in(&app.pool_info, "kim@fabrikam.test", PASSWORD)
            .await
            .expect("signed in again"),
    );
    assert_eq!(app.get(&kim, "/v1/events").await.0, StatusCode::OK);

    // The practice keeps an admin.
    let (status, body) = app
        .post(&admin, "/v1/users/founder@fabrikam.test/disable", json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "last_admin");
    let (status, body) = app
        .put(
            &admin,
            "/v1/users/nobody@fabrikam.test/role",
            json!({ "role": "admin" }),
        )
        .await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::NOT_FOUND, &json!("user_not_found"))
    );
    let (status, body) = app
        .put(
            &admin,
            "/v1/users/kim@fabrikam.test/role",
            json!({ "role": "system" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

/// Catches the emulator's password-reset code, which it returns in a response header instead
/// of mailing it.
#[derive(Debug, Default, Clone)]
struct ResetCode(Arc<Mutex<Option<String>>>);

impl Intercept for ResetCode {
    fn name(&self) -> &'static str {
        "ResetCode"
    }

    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_cognitoidentityprovider::error::BoxError> {
        let code = context
            .response()
            .headers()
            .get("x-moto-forgot-password-confirmation-code")
            .map(str::to_owned);
        *self.0.lock().unwrap() = code;
        Ok(())
    }
}

#[tokio::test]
async fn a_forgotten_password_is_reset_with_the_mailed_code() {
    let app = spawn_app().await;
    let people = People::new(&app).await;
    let founder = email("founder@tailspin.test");
    people.practice("Tailspin", &founder, source(1)).await;

    let code = ResetCode::default();
    people
        .cognito
        .client()
        .forgot_password()
        .client_id(&app.pool_info.client_id)
        .username(founder.as_str())
        .customize()
        .interceptor(code.clone())
        .send()
        .await
        .expect("a reset started");
    let code = code.0.lock().unwrap().clone().expect("the emulator's code");

    let wrong = people
        .cognito
        .confirm_forgot_password(
            &app.pool_info,
            founder.as_str(),
            "moto-confirmation-code:000000",
            "Brand-new-pass-7",
        )
        .await;
    assert!(
        matches!(wrong, Err(CognitoError::InvalidCode { .. })),
        "{wrong:?}"
    );
    people
        .cognito
        .confirm_forgot_password(&app.pool_info, founder.as_str(), &code, "Brand-new-pass-7")
        .await
        .expect("the password is reset");
    let old = people
        .cognito
        .sign_in(&app.pool_info, founder.as_str(), PASSWORD)
        .await;
    assert!(
        matches!(old, Err(CognitoError::NotAuthorized { .. })),
        "{old:?}"
    );
    let tokens = people
        .cognito
        .sign_in(&app.pool_info, founder.as_str(), "Brand-new-pass-7")
        .await
        .expect("signed in with the new password");
    assert_eq!(app.get(&user(&tokens), "/v1/users").await.0, StatusCode::OK);

    // Signing out everywhere ends the refresh token.
    people
        .cognito
        .sign_out(&tokens.access_token)
        .await
        .expect("signed out");
    let refreshed = people
        .cognito
        .refresh(&app.pool_info, tokens.refresh_token.as_deref().unwrap())
        .await;
    assert!(
        matches!(refreshed, Err(CognitoError::NotAuthorized { .. })),
        "{refreshed:?}"
    );
}

#[tokio::test]
async fn two_practices_signed_up_this_way_never_see_each_others_people() {
    let app = spawn_app().await;
    let people = People::new(&app).await;
    let (a, admin_a) = people
        .practice("Alpine", &email("founder@alpine.test"), source(1))
        .await;
    let (b, admin_b) = people
        .practice("Bayside", &email("founder@bayside.test"), source(2))
        .await;
    assert_ne!(a, b);
    people
        .invite(a, &admin_a, "kim@alpine.test", "consultant")
        .await;

    let (_, listed) = app.get(&admin_b, "/v1/users").await;
    let emails: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["founder@bayside.test"]);

    // B can neither reach A's consultant nor take their address.
    let (status, body) = app
        .post(&admin_b, "/v1/users/kim@alpine.test/disable", json!({}))
        .await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::NOT_FOUND, &json!("user_not_found"))
    );
    let (status, body) = app
        .post(
            &admin_b,
            "/v1/users",
            json!({ "email": "kim@alpine.test", "name": "Kim", "role": "admin" }),
        )
        .await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::CONFLICT, &json!("email_taken"))
    );
    let (status, tenant_b) = app.get(&admin_b, "/v1/tenant").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tenant_b["tenant_id"], b.to_string());
}

/// An identity provider that fails every call while `down`, as Cognito unreachable does.
struct Outage {
    real: Arc<CognitoPeople>,
    down: Mutex<bool>,
}

#[async_trait]
impl IdentityProvider for Outage {
    async fn converge(
        &self,
        tenant: TenantId,
        email: &Email,
        member: &Member,
    ) -> Result<Provisioned, IdentityError> {
        if *self.down.lock().unwrap() {
            return Err(IdentityError::Unavailable("connection refused".into()));
        }
        self.real.converge(tenant, email, member).await
    }
}

#[tokio::test]
async fn an_invitation_made_while_cognito_is_down_completes_once_it_is_back_exactly_once() {
    let app = spawn_app().await;
    let people = People::new(&app).await;
    let (tenant, admin) = people
        .practice("Litware", &email("founder@litware.test"), source(1))
        .await;
    let outage = Arc::new(Outage {
        real: people.identity.clone(),
        down: Mutex::new(true),
    });

    let (status, body) = app
        .post(
            &admin,
            "/v1/users",
            json!({ "email": "kim@litware.test", "name": "Kim", "role": "consultant" }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the admin's command doesn't wait for Cognito: {body}"
    );
    let kim = email("kim@litware.test");
    // Until the invitation is readable the subscription catches up; then it is stuck on it,
    // retrying, for as long as Cognito is down.
    let mut outcome = DrainOutcome::CaughtUp;
    for _ in 0..200 {
        let reports = people
            .runner(outage.clone())
            .await
            .drain(Duration::from_secs(2))
            .await
            .unwrap();
        outcome = reports[0].outcome.clone();
        if outcome != DrainOutcome::CaughtUp {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(matches!(outcome, DrainOutcome::Error { .. }), "{outcome:?}");
    let account = people
        .cognito
        .find_account(&app.pool_info, kim.as_str())
        .await
        .unwrap();
    assert_eq!(account, None, "no account while Cognito is down");

    *outage.down.lock().unwrap() = false;
    for _ in 0..200 {
        people
            .runner(outage.clone())
            .await
            .drain(Duration::from_secs(10))
            .await
            .unwrap();
        let state = app.state.service.tenant_state(tenant).await.unwrap();
        if state.member(&kim).is_some_and(|m| m.user_id.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(people
        .cognito
        .find_account(&app.pool_info, kim.as_str())
        .await
        .unwrap()
        .is_some());
    assert_eq!(people.mailbox.invitations_to(&kim), 1);
    assert_eq!(events_of_type(&app, tenant, "UserProvisioned").await, 2);
    app.project().await;
    let kim_user = user(&people.first_sign_in(&kim).await);
    assert_eq!(
        app.get(&kim_user, "/v1/review-queue").await.0,
        StatusCode::OK
    );
}

/// An identity provider whose process dies right after Cognito created the account: the
/// account exists, nothing was recorded, the checkpoint didn't move.
struct CrashAfterEffect {
    real: Arc<CognitoPeople>,
}

#[async_trait]
impl IdentityProvider for CrashAfterEffect {
    async fn converge(
        &self,
        tenant: TenantId,
        email: &Email,
        member: &Member,
    ) -> Result<Provisioned, IdentityError> {
        self.real.converge(tenant, email, member).await?;
        Err(IdentityError::Unavailable("the process died".into()))
    }
}

#[tokio::test]
async fn a_crash_between_the_event_and_the_cognito_call_or_after_it_loses_nothing_and_doubles_nothing(
) {
    let app = spawn_app().await;
    let people = People::new(&app).await;
    let (tenant, admin) = people
        .practice("Proseware", &email("founder@proseware.test"), source(1))
        .await;

    // Two invitations committed; the process dies before the subscription reaches them.
    for address in ["kim@proseware.test", "lee@proseware.test"] {
        let (status, body) = app
            .post(
                &admin,
                "/v1/users",
                json!({ "email": address, "name": "Staff", "role": "consultant" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // The next process dies after Cognito's effect, before recording it.
    let crashing = Arc::new(CrashAfterEffect {
        real: people.identity.clone(),
    });
    for _ in 0..200 {
        let reports = people
            .runner(crashing.clone())
            .await
            .drain(Duration::from_secs(2))
            .await
            .unwrap();
        if reports[0].outcome != DrainOutcome::CaughtUp {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kim = email("kim@proseware.test");
    assert!(
        people
            .cognito
            .find_account(&app.pool_info, kim.as_str())
            .await
            .unwrap()
            .is_some(),
        "the effect happened"
    );

    // A healthy process picks up where the checkpoint was: both accounts, each recorded once.
    let lee = email("lee@proseware.test");
    people.provisioned(tenant, &kim).await;
    people.provisioned(tenant, &lee).await;
    people.settle().await;
    assert_eq!(events_of_type(&app, tenant, "UserProvisioned").await, 3);
    assert_eq!(events_of_type(&app, tenant, "UserInvited").await, 2);
    // Kim's account was made once, by the process that died (in AWS its invitation was mailed
    // then; the emulator handed it back to a process that didn't live to pass it on): nobody
    // was invited twice. Lee's came from the healthy process.
    assert_eq!(people.mailbox.invitations_to(&kim), 0);
    assert_eq!(people.mailbox.invitations_to(&lee), 1);
    let lee_account = people
        .cognito
        .find_account(&app.pool_info, lee.as_str())
        .await
        .unwrap()
        .expect("lee's account");
    let state = app.state.service.tenant_state(tenant).await.unwrap();
    assert_eq!(
        state
            .member(&lee)
            .and_then(|m| m.user_id.clone())
            .map(|id| id.to_string()),
        Some(lee_account.sub)
    );
}

/// The local pool stands in for the deployed one: its shape must not need a Casebook-only
/// client secret, so the browser's calls need nothing but the client id.
#[tokio::test]
async fn the_app_client_is_public_and_allows_the_browsers_flows() {
    let app = spawn_app().await;
    let client = app.pool_info.client_id.clone();
    let cognito = CognitoAdmin::new(
        &shared_config().await,
        std::env::var("AWS_ENDPOINT_URL").ok(),
    )
    .unwrap();
    let described = cognito
        .client()
        .describe_user_pool_client()
        .user_pool_id(&app.pool_info.pool_id)
        .client_id(&client)
        .send()
        .await
        .unwrap();
    let described = described.user_pool_client().unwrap();
    assert_eq!(described.client_secret(), None);
    let flows: Vec<&str> = described
        .explicit_auth_flows()
        .iter()
        .map(|flow| flow.as_str())
        .collect();
    for flow in [
        "ALLOW_USER_PASSWORD_AUTH",
        "ALLOW_USER_SRP_AUTH",
        "ALLOW_REFRESH_TOKEN_AUTH",
    ] {
        assert!(flows.contains(&flow), "{flow} in {flows:?}");
    }
}
