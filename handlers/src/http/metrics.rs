//! Each API request, measured: `ApiLatency` (milliseconds) by `Operation`, and for every
//! write (`POST`, `PUT`, `DELETE`) `Commands` by `Operation` and `Outcome` (`accepted`, or
//! the problem code that refused it), and `RateLimitRefusals` by `Operation`. The operation
//! is the OpenAPI operation id of the matched route, so the dimensions stay as few as the
//! routes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use super::problem::ProblemCode;

/// The OpenAPI operation id of each route and method: a matched route's methods, found
/// without allocating, their names shared with the metrics' labels.
#[derive(Debug, Default)]
pub struct Operations(HashMap<String, Vec<(Method, Arc<str>)>>);

impl Operations {
    /// The operations `openapi` describes.
    pub fn of(openapi: &utoipa::openapi::OpenApi) -> Self {
        let mut operations: HashMap<String, Vec<(Method, Arc<str>)>> = HashMap::new();
        for (path, item) in &openapi.paths.paths {
            let methods = [
                (Method::GET, &item.get),
                (Method::PUT, &item.put),
                (Method::POST, &item.post),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
            ];
            for (method, operation) in methods {
                if let Some(id) = operation.as_ref().and_then(|op| op.operation_id.as_deref()) {
                    operations
                        .entry(path.clone())
                        .or_default()
                        .push((method, Arc::from(id)));
                }
            }
        }
        Self(operations)
    }

    fn name(&self, method: &Method, route: &str) -> Option<Arc<str>> {
        self.0
            .get(route)?
            .iter()
            .find(|(known, _)| known == method)
            .map(|(_, name)| name.clone())
    }
}

/// Middleware on the API's routes (where the matched route is known); see the module
/// documentation.
pub async fn measure(
    State(operations): State<Arc<Operations>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let operation = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|route| operations.name(&method, route.as_str()))
        .unwrap_or_else(|| Arc::from("unknown"));
    let response = next.run(request).await;
    let refusal = response
        .extensions()
        .get::<ProblemCode>()
        .map(|code| code.0);
    metrics::histogram!("ApiLatency", "Operation" => operation.clone())
        .record(started.elapsed().as_secs_f64() * 1000.0);
    if refusal == Some("rate_limited") {
        metrics::counter!("RateLimitRefusals", "Operation" => operation.clone()).increment(1);
    }
    if matches!(method, Method::POST | Method::PUT | Method::DELETE) {
        let outcome = match refusal {
            None if response.status().is_success() => "accepted",
            None => "failed",
            Some(code) => code,
        };
        metrics::counter!("Commands", "Operation" => operation, "Outcome" => outcome).increment(1);
    }
    response
}
