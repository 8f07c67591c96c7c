//! Every route of the served OpenAPI document, walked with every role of two tenants: without
//! a token (401), in a role the route does not admit (403), with the other tenant's ids (404),
//! and — for customers — with another customer's ids of the same tenant (404). No answer may
//! carry the other party's ids. The routes, their parameters, bodies and roles
//! (`x-casebook-roles`) come from the document, so a new route is walked without editing this
//! test.

mod support;

use std::cell::Cell;
use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use casebook_adapters::aws::s3::TenantBucket;
use casebook_adapters::aws::setup::ensure_bucket;
use casebook_adapters::aws::shared_config;
use casebook_domain::actor::Role;
use casebook_domain::ids::{DiagnosisId, TenantId};
use casebook_handlers::http::uploads::Uploads;
use casebook_handlers::http::{router, PUBLIC_EXTENSION, ROLES_EXTENSION};
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};
use support::{spawn_app, TenantUsers, TestApp, User};
use uuid::Uuid;

const ROLES: [Role; 4] = [Role::Customer, Role::Consultant, Role::Auditor, Role::Admin];

/// One tenant's resources: a customer's decided query, a colleague's pending one, a judgment.
struct Resources {
    tenant: TenantId,
    session: Uuid,
    diagnosis: Uuid,
    judgment: Uuid,
    colleague: User,
    colleague_session: Uuid,
    colleague_diagnosis: Uuid,
}

impl Resources {
    /// Every id of this tenant a stranger must never see.
    fn ids(&self) -> Vec<String> {
        [
            self.tenant.to_string(),
            self.session.to_string(),
            self.diagnosis.to_string(),
            self.judgment.to_string(),
            self.colleague_session.to_string(),
            self.colleague_diagnosis.to_string(),
        ]
        .into()
    }

    /// The colleague's ids, which the tenant's first customer must never see.
    fn colleague_ids(&self) -> Vec<String> {
        vec![
            self.colleague_session.to_string(),
            self.colleague_diagnosis.to_string(),
        ]
    }

    /// This tenant's resource a parameter or body field named `name` refers to; `colleague`
    /// picks the second customer's.
    fn id_for(&self, name: &str, colleague: bool) -> Option<Uuid> {
        match (name, colleague) {
            ("session_id", false) => Some(self.session),
            ("session_id", true) => Some(self.colleague_session),
            ("diagnosis_id" | "decision_id", false) => Some(self.diagnosis),
            ("diagnosis_id" | "decision_id", true) => Some(self.colleague_diagnosis),
            ("judgment_id", false) => Some(self.judgment),
            _ => None,
        }
    }
}

fn user(users: &TenantUsers, role: Role) -> &User {
    match role {
        Role::Customer => &users.customer,
        Role::Consultant => &users.consultant,
        Role::Auditor => &users.auditor,
        Role::Admin => &users.admin,
        Role::System | Role::Operator => unreachable!("no token carries {role:?}"),
    }
}

async fn post(app: &TestApp, user: &User, path: &str, body: Value) -> Value {
    let (status, answer) = app.post(user, path, body).await;
    assert!(status.is_success(), "{path}: {status} {answer}");
    answer
}

/// Sessions, queries, a decision and a judgment in `users`' tenant.
async fn seed(app: &TestApp, users: &TenantUsers, name: &str) -> Resources {
    let colleague = app
        .another_user(users.tenant, &format!("{name}-colleague"), Role::Customer)
        .await;
    let mut sessions = Vec::new();
    for customer in [&users.customer, &colleague] {
        let session = Uuid::new_v4();
        let query = Uuid::new_v4();
        post(
            app,
            customer,
            "/v1/sessions",
            json!({ "session_id": session, "subject": "Lease" }),
        )
        .await;
        post(
            app,
            customer,
            &format!("/v1/sessions/{session}/queries"),
            json!({ "query_id": query, "text": "Is the break clause valid?" }),
        )
        .await;
        app.propose(users.tenant, DiagnosisId::from_uuid(query), 0.6)
            .await;
        sessions.push((session, query));
    }
    let (session, diagnosis) = sessions[0];
    let (colleague_session, colleague_diagnosis) = sessions[1];
    post(
        app,
        &users.consultant,
        &format!("/v1/diagnoses/{diagnosis}/decision"),
        json!({ "verdict": "approve" }),
    )
    .await;
    let judgment = Uuid::new_v4();
    post(
        app,
        &users.consultant,
        "/v1/judgments",
        json!({ "judgment_id": judgment, "title": "Break clauses", "body": "Six months' notice." }),
    )
    .await;
    app.read_when(&users.auditor, "/v1/decisions", |page| {
        page["items"]
            .as_array()
            .is_some_and(|items| items.len() == 1)
    })
    .await;
    app.read_when(&users.consultant, "/v1/diagnoses", |page| {
        page["items"]
            .as_array()
            .is_some_and(|items| items.len() == 2)
    })
    .await;
    Resources {
        tenant: users.tenant,
        session,
        diagnosis,
        judgment,
        colleague,
        colleague_session,
        colleague_diagnosis,
    }
}

/// `$ref` resolved against the document's components.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            resolve(document, &document["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// A body the schema accepts: each required property, and every UUID property (ids), from
/// its example or its type; `ids` chooses the UUIDs by property name.
fn body_for(document: &Value, schema: &Value, ids: &dyn Fn(&str) -> Uuid) -> Value {
    let schema = resolve(document, schema);
    if let Some(first) = schema["oneOf"].as_array().and_then(|all| all.first()) {
        return body_for(document, first, ids);
    }
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut body = Map::new();
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        let property = resolve(document, property);
        let is_uuid = property["format"] == "uuid";
        if !required.contains(name.as_str()) && !is_uuid {
            continue;
        }
        let types = property["type"].to_string();
        let value = if let Some(example) = property.get("example") {
            example.clone()
        } else if is_uuid {
            json!(ids(name))
        } else if types.contains("string") {
            json!("walked")
        } else if types.contains("integer") {
            json!(1)
        } else if types.contains("number") {
            json!(0.5)
        } else if types.contains("boolean") {
            json!(true)
        } else if types.contains("array") {
            json!([])
        } else {
            json!({})
        };
        body.insert(name.clone(), value);
    }
    Value::Object(body)
}

/// One operation of the document.
struct Operation {
    method: Method,
    template: String,
    path_params: Vec<String>,
    body_schema: Option<Value>,
    roles: Vec<Role>,
}

/// The operations that need a token, after checking that the public ones are exactly the
/// sign-up's.
fn operations(document: &Value) -> Vec<Operation> {
    let mut all = Vec::new();
    let mut public = Vec::new();
    for (template, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let method = match method.as_str() {
                "get" => Method::GET,
                "put" => Method::PUT,
                "post" => Method::POST,
                "patch" => Method::PATCH,
                "delete" => Method::DELETE,
                _ => continue,
            };
            if operation[PUBLIC_EXTENSION] == json!(true) {
                public.push(format!("{method} {template}"));
                continue;
            }
            let roles = operation[ROLES_EXTENSION]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {template} lists no roles"))
                .iter()
                .map(|role| serde_json::from_value(role.clone()).expect("a role"))
                .collect();
            let path_params = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().expect("a name").to_owned())
                .collect();
            all.push(Operation {
                method,
                template: template.clone(),
                path_params,
                body_schema: operation["requestBody"]["content"]["application/json"]["schema"]
                    .is_object()
                    .then(|| {
                        operation["requestBody"]["content"]["application/json"]["schema"].clone()
                    }),
                roles,
            });
        }
    }
    assert!(all.len() >= 20, "the document lists every route");
    public.sort();
    assert_eq!(
        public,
        ["GET /v1/plans", "POST /v1/signup"],
        "only the sign-up's routes are public"
    );
    all
}

/// The request for `operation`, its ids taken from `ids` by name; whether any id named a
/// resource of `ids`' choosing (`Some`) rather than a fresh one.
fn build_request(
    document: &Value,
    operation: &Operation,
    token: Option<&User>,
    ids: &dyn Fn(&str) -> Option<Uuid>,
) -> (Request<Body>, bool) {
    let named = Cell::new(false);
    let mut path = operation.template.clone();
    for param in &operation.path_params {
        let id = ids(param)
            .inspect(|_| named.set(true))
            .unwrap_or_else(Uuid::new_v4);
        path = path.replace(&format!("{{{param}}}"), &id.to_string());
    }
    let body = operation.body_schema.as_ref().map(|schema| {
        // With ids in the path, the body's are fresh: the path decides whose resource it is.
        let in_path = !operation.path_params.is_empty();
        let pick = |name: &str| match ids(name) {
            Some(id) if !in_path => {
                named.set(true);
                id
            }
            _ => Uuid::new_v4(),
        };
        body_for(document, schema, &pick)
    });
    let mut builder = Request::builder()
        .method(operation.method.clone())
        .uri(path);
    if let Some(user) = token {
        builder = builder.header("authorization", format!("Bearer {}", user.token));
    }
    let request = match body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    };
    (request.expect("a request"), named.get())
}

async fn send(app: &TestApp, request: Request<Body>) -> (StatusCode, String) {
    let response = app.send(request).await;
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn assert_no_leak(what: &str, body: &str, strangers: &[String]) {
    for id in strangers {
        assert!(!body.contains(id.as_str()), "{what} leaked {id}: {body}");
    }
}

#[tokio::test]
async fn every_route_refuses_strangers_wrong_roles_and_other_customers_and_leaks_no_ids() {
    let mut app = spawn_app().await;
    let aws = shared_config().await;
    let bucket = format!("casebook-walk-{}", Uuid::new_v4().simple());
    ensure_bucket(&aws, &bucket).await.expect("bucket");
    let uploads = Uploads::new(TenantBucket::new(&aws, bucket), Duration::from_secs(60));
    app.router = router(app.state.clone().with_uploads(uploads));
    app.onboard_both("enterprise").await;
    let acme = seed(&app, &app.acme, "acme").await;
    let globex = seed(&app, &app.globex, "globex").await;
    let document: Value = support::json_body(app.get_public("/v1/openapi.json").await).await;
    let operations = operations(&document);

    for (us, ours, theirs) in [(&app.acme, &acme, &globex), (&app.globex, &globex, &acme)] {
        for operation in &operations {
            let what = |who: &str| format!("{} {} as {who}", operation.method, operation.template);
            let own = |name: &str| ours.id_for(name, false);

            let (request, _) = build_request(&document, operation, None, &own);
            let (status, body) = send(&app, request).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{}: {body}",
                what("nobody")
            );

            for role in ROLES {
                let caller = user(us, role);
                if !operation.roles.contains(&role) {
                    let (request, _) = build_request(&document, operation, Some(caller), &own);
                    let (status, body) = send(&app, request).await;
                    assert_eq!(
                        status,
                        StatusCode::FORBIDDEN,
                        "{}: {body}",
                        what(&format!("{role:?}"))
                    );
                    assert_no_leak(&what(&format!("{role:?}")), &body, &theirs.ids());
                    continue;
                }
                let foreign = |name: &str| theirs.id_for(name, false);
                let (request, named) = build_request(&document, operation, Some(caller), &foreign);
                let (status, body) = send(&app, request).await;
                let who = what(&format!("{role:?} with the other tenant's ids"));
                if named {
                    assert_eq!(status, StatusCode::NOT_FOUND, "{who}: {body}");
                } else {
                    assert!(!status.is_server_error(), "{who}: {status} {body}");
                }
                let mut strangers = theirs.ids();
                if role == Role::Customer {
                    strangers.extend(ours.colleague_ids());
                }
                assert_no_leak(&who, &body, &strangers);

                if role == Role::Customer {
                    let colleagues = |name: &str| ours.id_for(name, true);
                    let (request, named) =
                        build_request(&document, operation, Some(caller), &colleagues);
                    let (status, body) = send(&app, request).await;
                    let who = what("a customer with another customer's ids");
                    if named {
                        assert_eq!(status, StatusCode::NOT_FOUND, "{who}: {body}");
                    }
                    assert_no_leak(&who, &body, &strangers);
                }
            }
        }
        // The colleague, too, sees nothing of the first customer's.
        let first = [ours.session.to_string(), ours.diagnosis.to_string()];
        for list in ["/v1/sessions", "/v1/diagnoses"] {
            let (status, _, body) = app.get_raw(&ours.colleague, list).await;
            assert_eq!(status, StatusCode::OK);
            assert_no_leak(list, &body, &first);
        }
    }
}
