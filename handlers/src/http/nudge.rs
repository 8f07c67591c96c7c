//! In Lambda no process listens for the log's `NOTIFY`, so after a command commits the API
//! nudges the relay (an asynchronous invoke of the projector function) to get its events to
//! EventBridge and SQS within a second instead of at the next scheduled run. Locally the
//! state has no nudge and the relay wakes on `NOTIFY`.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use super::idempotency::IDEMPOTENT_REPLAYED;
use super::AppState;

/// After a successful write (any method but GET/HEAD/OPTIONS answered 2xx, not an
/// idempotent replay, which committed nothing new), awaits the state's nudge before
/// answering: a task spawned instead could be frozen with the Lambda environment once the
/// response is out.
pub async fn nudge_relay_after_writes(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let writes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let response = next.run(request).await;
    let replayed = response.headers().contains_key(&IDEMPOTENT_REPLAYED);
    if writes && response.status().is_success() && !replayed {
        if let Some(nudge) = &state.nudge {
            nudge.nudge().await;
        }
    }
    response
}
