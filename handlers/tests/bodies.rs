//! Property tests over requests: arbitrary JSON, bytes, content types, huge and deeply nested
//! bodies to every POST route, arbitrary path ids and query strings to the GET routes. The
//! server never panics and never answers 5xx; bad input is always a 4xx problem document.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use support::{spawn_app_with_rate_scale, TestApp, User};
use tokio::runtime::Runtime;

/// Any JSON value, a few levels deep, with the keys the routes know among random ones.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("session_id".to_owned()),
        Just("query_id".to_owned()),
        Just("judgment_id".to_owned()),
        Just("subject".to_owned()),
        Just("text".to_owned()),
        Just("verdict".to_owned()),
        Just("plan".to_owned()),
        Just("status".to_owned()),
        Just("reason".to_owned()),
        Just("title".to_owned()),
        Just("body".to_owned()),
        Just("tags".to_owned()),
        Just("file_name".to_owned()),
        Just("content_type".to_owned()),
        "[a-z_]{0,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        Just(json!(uuid::Uuid::nil())),
        Just(json!("approve")),
        Just(json!("enterprise")),
    ];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

struct Route {
    path: &'static str,
    user: fn(&TestApp) -> &User,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.path)
    }
}

const POSTS: &[Route] = &[
    Route {
        path: "/v1/tenant",
        user: |a| &a.acme.admin,
    },
    Route {
        path: "/v1/tenant/settings",
        user: |a| &a.acme.admin,
    },
    Route {
        path: "/v1/sessions",
        user: |a| &a.acme.customer,
    },
    Route {
        path: "/v1/sessions/{id}/queries",
        user: |a| &a.acme.customer,
    },
    Route {
        path: "/v1/sessions/{id}/close",
        user: |a| &a.acme.customer,
    },
    Route {
        path: "/v1/diagnoses/{id}/decision",
        user: |a| &a.acme.consultant,
    },
    Route {
        path: "/v1/judgments",
        user: |a| &a.acme.consultant,
    },
    Route {
        path: "/v1/judgments/{id}/revise",
        user: |a| &a.acme.consultant,
    },
    Route {
        path: "/v1/judgments/{id}/retire",
        user: |a| &a.acme.consultant,
    },
    Route {
        path: "/v1/uploads",
        user: |a| &a.acme.customer,
    },
];

const GETS: &[Route] = &[
    Route {
        path: "/v1/sessions",
        user: |a| &a.acme.customer,
    },
    Route {
        path: "/v1/sessions/{id}",
        user: |a| &a.acme.customer,
    },
    Route {
        path: "/v1/diagnoses",
        user: |a| &a.acme.customer,
    },
    Route {
        path: "/v1/diagnoses/{id}",
        user: |a| &a.acme.customer,
    },
    Route {
        path: "/v1/review-queue",
        user: |a| &a.acme.consultant,
    },
    Route {
        path: "/v1/decisions",
        user: |a| &a.acme.consultant,
    },
    Route {
        path: "/v1/decisions/{id}",
        user: |a| &a.acme.consultant,
    },
    Route {
        path: "/v1/usage",
        user: |a| &a.acme.auditor,
    },
    Route {
        path: "/v1/audit",
        user: |a| &a.acme.auditor,
    },
    Route {
        path: "/v1/access-log",
        user: |a| &a.acme.auditor,
    },
    Route {
        path: "/v1/events",
        user: |a| &a.acme.auditor,
    },
    Route {
        path: "/v1/tenant",
        user: |a| &a.acme.auditor,
    },
];

/// What every answer must be: no server error, and an error is a problem document.
async fn check(app: &TestApp, request: Request<Body>) -> Result<(), TestCaseError> {
    let label = format!("{} {}", request.method(), request.uri());
    let response = app.send(request).await;
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    prop_assert!(!status.is_server_error(), "{label}: {status} {bytes:?}");
    if status.is_client_error() {
        prop_assert_eq!(&content_type, "application/problem+json", "{}", label);
        let problem: Value = serde_json::from_slice(&bytes)
            .map_err(|err| TestCaseError::fail(format!("{label}: {err}")))?;
        prop_assert!(problem["code"].is_string(), "{label}: {problem}");
        prop_assert_eq!(problem["status"].as_u64(), Some(u64::from(status.as_u16())));
    }
    Ok(())
}

fn post(
    app: &TestApp,
    route: &Route,
    id: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Request<Body> {
    Request::post(route.path.replace("{id}", id))
        .header(
            "authorization",
            format!("Bearer {}", (route.user)(app).token),
        )
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap()
}

fn get(app: &TestApp, route: &Route, id: &str, query: &str) -> Request<Body> {
    Request::get(format!("{}?{query}", route.path.replace("{id}", id)))
        .header(
            "authorization",
            format!("Bearer {}", (route.user)(app).token),
        )
        .body(Body::empty())
        .unwrap()
}

fn setup() -> (Runtime, TestApp) {
    let runtime = Runtime::new().unwrap();
    // Many requests on purpose: the limits are raised so bodies, not 429s, are what's tested.
    let app = runtime.block_on(async {
        let app = spawn_app_with_rate_scale(1_000).await;
        let (status, body) = app
            .post(
                &app.acme.admin,
                "/v1/tenant",
                json!({ "name": "Acme", "plan": "enterprise" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        app
    });
    (runtime, app)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    })
}

fn route_index(routes: &'static [Route]) -> impl Strategy<Value = &'static Route> {
    (0..routes.len()).prop_map(move |i| &routes[i])
}

#[test]
fn arbitrary_json_bodies_never_cause_a_server_error() {
    let (runtime, app) = setup();
    let id = uuid::Uuid::new_v4().to_string();
    runner()
        .run(&(route_index(POSTS), any_json()), |(route, value)| {
            runtime.block_on(check(
                &app,
                post(
                    &app,
                    route,
                    &id,
                    "application/json",
                    value.to_string().into_bytes(),
                ),
            ))
        })
        .unwrap();
}

#[test]
fn arbitrary_bytes_and_content_types_are_refused_as_problems() {
    let (runtime, app) = setup();
    let content_type = prop_oneof![
        Just("application/json".to_owned()),
        Just("text/plain".to_owned()),
        Just("application/x-www-form-urlencoded".to_owned()),
        Just("application/json; charset=latin1".to_owned()),
        "[ -~]{0,40}",
    ];
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        any::<String>().prop_map(String::into_bytes),
    ];
    let id = prop_oneof![
        Just(uuid::Uuid::new_v4().to_string()),
        "[a-zA-Z0-9%._~-]{1,40}",
    ];
    runner()
        .run(
            &(route_index(POSTS), id, content_type, body),
            |(route, id, content_type, body)| {
                runtime.block_on(check(&app, post(&app, route, &id, &content_type, body)))
            },
        )
        .unwrap();
}

#[test]
fn a_nul_character_in_any_query_parameter_or_text_field_is_refused_not_a_server_error() {
    // Postgres text holds no U+0000: found by the property test below.
    let (runtime, app) = setup();
    runtime.block_on(async {
        for route in GETS {
            for param in ["decided_by", "action", "actor", "model", "after"] {
                let request = get(&app, route, &uuid::Uuid::new_v4().to_string(), &format!("{param}=a%00b"));
                check(&app, request).await.unwrap();
            }
        }
        for route in POSTS {
            let body = br#"{"subject":"a\u0000b","text":"a\u0000b","reason":"a\u0000b","title":"a\u0000b","body":"a\u0000b","name":"a\u0000b"}"#;
            let request = post(&app, route, &uuid::Uuid::new_v4().to_string(), "application/json", body.to_vec());
            check(&app, request).await.unwrap();
        }
    });
}

#[test]
fn arbitrary_query_strings_and_ids_never_cause_a_server_error() {
    let (runtime, app) = setup();
    let param = prop_oneof![
        Just("after".to_owned()),
        Just("limit".to_owned()),
        Just("from".to_owned()),
        Just("to".to_owned()),
        Just("decided_by".to_owned()),
        Just("action".to_owned()),
        Just("actor".to_owned()),
        Just("model".to_owned()),
        "[a-z_]{1,8}",
    ];
    let value = prop_oneof![
        "[ -~]{0,30}".prop_map(|v| urlencode(&v)),
        any::<i64>().prop_map(|v| v.to_string()),
        Just("2026-01-01".to_owned()),
        Just("2026-01-01T00:00:00Z".to_owned()),
        "(%[0-9A-F]{2}){1,8}",
    ];
    let query = prop::collection::vec((param, value), 0..5).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    });
    let id = prop_oneof![
        Just(uuid::Uuid::new_v4().to_string()),
        "[a-zA-Z0-9._~-]{1,40}",
        "(%[0-9A-F]{2}){1,8}",
    ];
    runner()
        .run(&(route_index(GETS), id, query), |(route, id, query)| {
            runtime.block_on(check(&app, get(&app, route, &id, &query)))
        })
        .unwrap();
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn huge_and_deeply_nested_bodies_are_refused_as_problems() {
    let (runtime, app) = setup();
    let id = uuid::Uuid::new_v4().to_string();
    let huge = format!(r#"{{"subject":"{}"}}"#, "x".repeat(3 * 1024 * 1024)).into_bytes();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
    let deep_object =
        format!("{}1{}", r#"{"subject":"#.repeat(5_000), "}".repeat(5_000)).into_bytes();
    runtime.block_on(async {
        for route in POSTS {
            for body in [&huge, &deep, &deep_object] {
                let request = post(&app, route, &id, "application/json", body.clone());
                check(&app, request).await.unwrap();
                let mut keyed = post(&app, route, &id, "application/json", body.clone());
                keyed.headers_mut().insert(
                    "idempotency-key",
                    uuid::Uuid::new_v4().to_string().parse().unwrap(),
                );
                check(&app, keyed).await.unwrap();
            }
        }
        // Unknown routes and methods are problems too.
        let request = Request::delete("/v1/sessions")
            .header(
                "authorization",
                format!("Bearer {}", app.acme.customer.token),
            )
            .body(Body::empty())
            .unwrap();
        let response = app.send(request).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let response = app.get_public("/v1/nothing-here").await;
        assert!(response.status().is_client_error());
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    });
}
