//! `spawn_app`: a database, a Cognito user pool with two tenants' users, and the real router.

#![allow(dead_code)] // each test binary uses its own part of the harness

pub mod scenario;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use casebook_adapters::cognito::{CognitoAdmin, PoolInfo};
use casebook_adapters::config::AuthConfig;
use casebook_domain::actor::Role;
use casebook_domain::ids::{DiagnosisId, TenantId};
use casebook_handlers::access_log::{AccessLog, AccessLogSettings};
use casebook_handlers::http::rate_limit::TenantLimiter;
use casebook_handlers::http::{router, AppState};
use casebook_handlers::settings::{Process, Settings};
use casebook_tests::{DbRole, TestDb};
use http_body_util::BodyExt;
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt;

/// A signed-in user.
pub struct User {
    pub token: String,
}

/// One tenant's users, one per role.
pub struct TenantUsers {
    pub tenant: TenantId,
    pub admin: User,
    pub customer: User,
    pub consultant: User,
    pub auditor: User,
}

pub struct TestApp {
    pub router: Router,
    pub pool: PgPool,
    pub state: AppState,
    pub acme: TenantUsers,
    pub globex: TenantUsers,
    pub pool_info: PoolInfo,
    _db: TestDb,
}

const PASSWORD: &str = "Correct-Horse-9-battery";

async fn sign_in(
    cognito: &CognitoAdmin,
    pool: &PoolInfo,
    username: &str,
    tenant: TenantId,
    role: Role,
) -> User {
    // The pool signs users in by address, as deployed.
    let email = format!("{username}@casebook.test");
    cognito
        .ensure_user(pool, &email, PASSWORD, tenant, role)
        .await
        .expect("user created");
    let token = cognito
        .id_token(pool, &email, PASSWORD)
        .await
        .expect("signed in");
    User { token }
}

async fn users(cognito: &CognitoAdmin, pool: &PoolInfo, name: &str) -> TenantUsers {
    let tenant = TenantId::new();
    let mut signed_in = Vec::new();
    for role in [Role::Admin, Role::Customer, Role::Consultant, Role::Auditor] {
        let username = format!("{name}-{role:?}").to_lowercase();
        signed_in.push(sign_in(cognito, pool, &username, tenant, role).await);
    }
    let mut users = signed_in.into_iter();
    TenantUsers {
        tenant,
        admin: users.next().unwrap(),
        customer: users.next().unwrap(),
        consultant: users.next().unwrap(),
        auditor: users.next().unwrap(),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with_rate_scale(1).await
}

/// [`spawn_app`] with every tier's rate limits multiplied by `scale` (tests that send many
/// requests on purpose).
pub async fn spawn_app_with_rate_scale(scale: u32) -> TestApp {
    // As `casebook serve` does with the stack's key: personal data is sealed (decision 0027).
    if let Some(key_file) = std::env::var_os("CASEBOOK_VAULT_KEY_FILE") {
        casebook_handlers::compose::vault::install_from_file(std::path::Path::new(&key_file))
            .expect("the stack's vault key");
    }
    let db = TestDb::new().await;
    let pool = db.pool(DbRole::App, 8).await;
    let cognito = CognitoAdmin::from_env().await.expect("emulator configured");
    let pool_info = cognito
        .ensure_pool(&format!("casebook-test-{}", uuid::Uuid::new_v4().simple()))
        .await
        .expect("user pool");
    let acme = users(&cognito, &pool_info, "acme").await;
    let globex = users(&cognito, &pool_info, "globex").await;
    let auth = casebook_handlers::compose::verifier(&AuthConfig {
        issuer: pool_info.issuer.clone(),
        audience: pool_info.client_id.clone(),
        jwks_url: pool_info.jwks_url.clone(),
    })
    .expect("verifier");
    // Members' standing read on every request: a change shows as soon as it is projected.
    let state = AppState::new(pool.clone(), auth, TenantLimiter::new(scale))
        .with_access_ttl(std::time::Duration::ZERO)
        .with_access_log(AccessLog::start(
            pool.clone(),
            AccessLogSettings::DEFAULT_QUEUE,
        ));
    TestApp {
        router: router(state.clone()),
        pool,
        state,
        acme,
        globex,
        pool_info,
        _db: db,
    }
}

pub async fn json_body(response: Response) -> Value {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

impl TestApp {
    pub async fn send(&self, request: Request<Body>) -> Response {
        self.router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible")
    }

    pub fn post_request(
        user: Option<&User>,
        path: &str,
        body: String,
        key: Option<&str>,
    ) -> Request<Body> {
        let mut request = Request::post(path).header("content-type", "application/json");
        if let Some(user) = user {
            request = request.header("authorization", format!("Bearer {}", user.token));
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.body(Body::from(body)).unwrap()
    }

    pub async fn post(&self, user: &User, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .send(Self::post_request(Some(user), path, body.to_string(), None))
            .await;
        (response.status(), json_body(response).await)
    }

    pub async fn post_with_key(
        &self,
        user: &User,
        path: &str,
        body: Value,
        key: &str,
    ) -> (StatusCode, Value) {
        let response = self
            .send(Self::post_request(
                Some(user),
                path,
                body.to_string(),
                Some(key),
            ))
            .await;
        (response.status(), json_body(response).await)
    }

    pub async fn post_text(&self, user: &User, path: &str, body: &str) -> (StatusCode, Value) {
        let response = self
            .send(Self::post_request(Some(user), path, body.to_owned(), None))
            .await;
        (response.status(), json_body(response).await)
    }

    pub async fn post_anonymous(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .send(Self::post_request(None, path, body.to_string(), None))
            .await;
        (response.status(), json_body(response).await)
    }

    /// A request to a public route from `source` (the listener's peer), with an
    /// `Idempotency-Key` if given.
    pub async fn post_public(
        &self,
        path: &str,
        body: Value,
        key: Option<&str>,
        source: std::net::SocketAddr,
    ) -> (StatusCode, Value) {
        let mut request = Self::post_request(None, path, body.to_string(), key);
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(source));
        let response = self.send(request).await;
        (response.status(), json_body(response).await)
    }

    /// A `PUT` of `body` to `path` as `user`.
    pub async fn put(&self, user: &User, path: &str, body: Value) -> (StatusCode, Value) {
        let request = Request::put(path)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", user.token))
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = self.send(request).await;
        (response.status(), json_body(response).await)
    }

    pub async fn post_response(&self, user: &User, path: &str) -> Response {
        self.send(Self::post_request(Some(user), path, "{}".into(), None))
            .await
    }

    pub async fn get_raw(&self, user: &User, path: &str) -> (StatusCode, HeaderMap, String) {
        let request = Request::get(path)
            .header("authorization", format!("Bearer {}", user.token))
            .body(Body::empty())
            .unwrap();
        let response = self.send(request).await;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
    }

    pub async fn get_public(&self, path: &str) -> Response {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    /// Waits until the auditor's stream shows at least `count` events (a hang guard, not a
    /// speed assertion: events become readable when older transactions end).
    pub async fn wait_for_events(&self, auditor: &User, count: usize) {
        for _ in 0..600 {
            let (_, _, text) = self.get_raw(auditor, "/v1/events?limit=1000").await;
            if text.lines().count() >= count {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the event stream never showed {count} events");
    }

    /// Plan changes reach the limiter after its cache expires; tests don't wait for that.
    /// One more user of `tenant`, in `role`, signed in.
    pub async fn another_user(&self, tenant: TenantId, username: &str, role: Role) -> User {
        let cognito = CognitoAdmin::from_env().await.expect("emulator configured");
        sign_in(&cognito, &self.pool_info, username, tenant, role).await
    }

    pub fn forget_cached_tiers(&self) {
        self.state.limiter.forget_tiers();
    }

    /// `customer` uploads `bytes` as the web app would: a ticket from `POST /v1/uploads`, then
    /// a PUT to its presigned URL with the headers it names. Returns the upload's key. The
    /// router must have uploads configured.
    pub async fn upload(
        &self,
        customer: &User,
        file_name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> String {
        let (status, ticket) = self
            .post(
                customer,
                "/v1/uploads",
                serde_json::json!({
                    "file_name": file_name,
                    "content_type": content_type,
                    "size_bytes": bytes.len(),
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{ticket}");
        let mut upload = reqwest::Client::new()
            .put(ticket["url"].as_str().expect("a URL"))
            .body(bytes.to_vec());
        for (name, value) in ticket["headers"].as_object().expect("headers") {
            upload = upload.header(name, value.as_str().expect("a header value"));
        }
        let response = upload.send().await.expect("upload sent");
        assert!(response.status().is_success(), "{}", response.status());
        ticket["key"].as_str().expect("a key").to_owned()
    }

    /// `customer` opens a session about `subject`; its id.
    pub async fn open_session(&self, customer: &User, subject: &str) -> uuid::Uuid {
        let session = uuid::Uuid::new_v4();
        let (status, body) = self
            .post(
                customer,
                "/v1/sessions",
                serde_json::json!({ "session_id": session, "subject": subject }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        session
    }

    /// `customer` asks `text` in `session`; the query's id (also its diagnosis').
    pub async fn ask(&self, customer: &User, session: uuid::Uuid, text: &str) -> uuid::Uuid {
        let query = uuid::Uuid::new_v4();
        let (status, body) = self
            .post(
                customer,
                &format!("/v1/sessions/{session}/queries"),
                serde_json::json!({ "query_id": query, "text": text }),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        query
    }

    /// Both tenants onboarded through the API by their admins, on `plan`.
    pub async fn onboard_both(&self, plan: &str) {
        for admin in [&self.acme.admin, &self.globex.admin] {
            let (status, body) = self
                .post(
                    admin,
                    "/v1/tenant",
                    serde_json::json!({ "name": "A practice", "plan": plan }),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        // Until onboarded, a tenant is limited as the smallest tier; the cache would keep that.
        self.forget_cached_tiers();
    }
}

impl TestApp {
    /// A GET as `user`, with its JSON body (`Null` when the body isn't JSON).
    pub async fn get(&self, user: &User, path: &str) -> (StatusCode, Value) {
        let (status, _, text) = self.get_raw(user, path).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Applies what the log holds to every read model and the audit table.
    /// The test database's URL, for a server of its own (`casebook_handlers::server`).
    pub fn database_url(&self) -> String {
        self._db.url()
    }

    /// Settings for a `process` of its own over the test database, accepting this app's
    /// tokens, on a free port, against the emulator (`CASEBOOK_ENV=local`).
    pub fn local_settings(&self, process: Process) -> Settings {
        let emulator = std::env::var("AWS_ENDPOINT_URL").expect("the emulator (stack.sh up)");
        let vars = [
            ("CASEBOOK_ENV", "local".to_owned()),
            ("AWS_ENDPOINT_URL", emulator),
            ("DATABASE_URL", self.database_url()),
            ("CASEBOOK_LISTEN", "127.0.0.1:0".to_owned()),
            ("CASEBOOK_JWT_ISSUER", self.pool_info.issuer.clone()),
            ("CASEBOOK_JWT_AUDIENCE", self.pool_info.client_id.clone()),
            ("CASEBOOK_JWKS_URL", self.pool_info.jwks_url.clone()),
        ];
        Settings::from_lookup(process, |name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.clone())
        })
        .expect("settings")
    }

    /// `tenant`'s access records (the platform's: `casebook_projections::access_log::PLATFORM`)
    /// once every request answered so far is recorded.
    pub async fn access_records(
        &self,
        tenant: TenantId,
    ) -> Vec<casebook_projections::access_log::AccessRecord> {
        if let Some(log) = &self.state.access_log {
            log.drain().await;
        }
        let mut tx = casebook_adapters::postgres::begin_for_tenants(
            &self.pool,
            casebook_adapters::postgres::Access::ReadOnly,
            &[*tenant.as_uuid()],
        )
        .await
        .unwrap();
        casebook_projections::access_log::records(&mut tx, tenant, 0, 10_000)
            .await
            .unwrap()
    }

    /// A superuser connection to the test database (row-level security doesn't apply).
    pub async fn superuser(&self) -> sqlx::PgConnection {
        self._db.superuser().await
    }

    /// A pool of the test database's own, as the projector role.
    pub async fn projector_pool(&self) -> PgPool {
        self._db.pool(casebook_tests::DbRole::Projector, 4).await
    }

    pub async fn project(&self) {
        let pool = self._db.pool(casebook_tests::DbRole::Projector, 16).await;
        casebook_handlers::compose::runner(pool.clone())
            .with_projections(casebook_projections::projection::ProjectionId::ALL)
            .drain(std::time::Duration::from_secs(5))
            .await
            .expect("projections applied");
        pool.close().await;
    }

    /// Projects and reads `path` as `user` until `ready` holds for the 200 answer (bounded:
    /// events become readable only once every older transaction in the cluster has ended,
    /// so a resource may answer 404 at first).
    pub async fn read_when(
        &self,
        user: &User,
        path: &str,
        ready: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut last = Value::Null;
        for _ in 0..200 {
            self.project().await;
            let (status, body) = self.get(user, path).await;
            // A resource not projected yet is a 404 until it is.
            if status != StatusCode::NOT_FOUND {
                assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
                if ready(&body) {
                    return body;
                }
            }
            last = body;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("GET {path} never became ready; last answer: {last}");
    }

    /// The platform records a proposal for `diagnosis` of `tenant` (as the worker would).
    pub async fn propose(&self, tenant: TenantId, diagnosis: DiagnosisId, confidence: f64) {
        use casebook_application::service::RequestContext;
        use casebook_domain::actor::Actor;
        use casebook_domain::diagnosis::{DiagnosisCommand, EmbeddingModel, Provenance};
        use casebook_domain::metadata::{EventMetadata, Source};
        use casebook_domain::policy::ModelTier;
        use casebook_domain::ports::StopReason;
        use casebook_domain::values::{Confidence, DiagnosisText};

        let actor = Actor::system(tenant);
        let ctx = RequestContext {
            metadata: EventMetadata::new(&actor, "test-worker", Source::Worker),
            actor: actor.clone(),
        };
        let service = &self.state.service;
        service
            .advance_diagnosis(
                &ctx,
                diagnosis,
                DiagnosisCommand::RecordContext {
                    actor: actor.clone(),
                    judgments: vec![],
                },
            )
            .await
            .expect("context recorded");
        service
            .advance_diagnosis(
                &ctx,
                diagnosis,
                DiagnosisCommand::Propose {
                    actor,
                    text: DiagnosisText::parse("The cap is enforceable.").unwrap(),
                    findings: vec![],
                    confidence: Confidence::new(confidence).unwrap(),
                    provenance: Provenance {
                        model_id: "test-model".into(),
                        model_tier: ModelTier::Standard,
                        prompt_template_id: "diagnosis-v1".into(),
                        prompt_template_hash: "abc".into(),
                        retrieved_judgment_ids: vec![],
                        input_tokens: 10,
                        output_tokens: 5,
                        cost_usd_micros: 42,
                        stop_reason: Some(StopReason::EndTurn),
                        embedding: Some(EmbeddingModel {
                            model_id: "test-embedder".into(),
                            dimension: 4,
                        }),
                        precedents: Some(vec![]),
                        attachments: Some(vec![]),
                    },
                },
            )
            .await
            .expect("proposed");
    }
}

/// Lines written into memory, shared by every writer made of it: what a test captures of the
/// logs and the metrics.
#[derive(Clone, Default)]
pub struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    /// Every JSON line written so far.
    pub fn json(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("UTF-8 lines")
    }
}
