//! The web app (`web/`, built to `web/dist`), served at `/` by `casebook serve`. Deployed,
//! CloudFront serves the same files from the site bucket with the same headers; the API is
//! the same public one either way, so the app has no endpoint of its own beyond its runtime
//! settings (`/config.json`).
//!
//! - Hashed assets (`/assets/…`) are cached for a year: a new build has new names.
//! - Everything else — `index.html`, and any path that isn't a file (the app's own routes,
//!   which the app resolves) — is revalidated on every load, so a deployment shows at once.
//! - Every answer carries a strict Content-Security-Policy: scripts, styles and everything
//!   else from this origin only; network calls to this origin, Cognito and the uploads bucket.
//! - `/v1/…` is never the app's: an unknown API path stays a problem document.
//! - Against the AWS emulator only, the browser's Cognito calls go through `/local/cognito`:
//!   the emulator answers no CORS preflight, so the page could not call it across origins as
//!   it calls Cognito when deployed. The relay passes each call on unchanged (it holds no
//!   credentials: the app client is public); deployed, there is no relay.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use super::problem::ApiError;

/// What the app reads at start (`GET /config.json`): where to sign users in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebConfig {
    /// Cognito, as the browser calls it.
    pub cognito: CognitoEndpoint,
}

/// The user pool's public side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CognitoEndpoint {
    /// Cognito's API: `https://cognito-idp.<region>.amazonaws.com/`, or the emulator's.
    pub endpoint: String,
    /// The pool's region.
    pub region: String,
    /// The public app client (no secret).
    pub client_id: String,
}

/// The built app and how to serve it.
#[derive(Debug, Clone)]
pub struct WebApp {
    dir: PathBuf,
    config: WebConfig,
    csp: HeaderValue,
    emulator: Option<Emulator>,
}

/// The AWS emulator's Cognito, relayed for the browser.
#[derive(Debug, Clone)]
struct Emulator {
    endpoint: String,
    client: reqwest::Client,
}

/// Where the relay listens, and what `/config.json` names as Cognito's endpoint then.
pub const LOCAL_COGNITO: &str = "/local/cognito";

impl WebApp {
    /// The app built into `dir` (its `index.html` and `assets/`), signing users in with
    /// `config`'s Cognito; network calls may also go to `uploads_origin` (the bucket the
    /// presigned upload URLs name).
    pub fn new(dir: impl Into<PathBuf>, config: WebConfig, uploads_origin: &str) -> Self {
        // A relative endpoint (the emulator's relay) is this origin's.
        let cognito_origin = config
            .cognito
            .endpoint
            .contains("://")
            .then(|| origin(&config.cognito.endpoint));
        let connect: Vec<&str> = ["'self'"]
            .into_iter()
            .chain(cognito_origin.as_deref())
            .chain(Some(uploads_origin).filter(|origin| !origin.is_empty()))
            .collect();
        let connect = connect.join(" ");
        let csp = format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             font-src 'self'; connect-src {connect}; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
        );
        Self {
            dir: dir.into(),
            config,
            csp: HeaderValue::from_str(&csp).expect("origins are header-safe"),
            emulator: None,
        }
    }

    /// The app signing users in through the emulator at `endpoint`, relayed same-origin at
    /// [`LOCAL_COGNITO`] (see the module documentation).
    pub fn against_emulator(
        dir: impl Into<PathBuf>,
        region: &str,
        client_id: &str,
        endpoint: &str,
    ) -> Self {
        let config = WebConfig {
            cognito: CognitoEndpoint {
                endpoint: format!("{LOCAL_COGNITO}/"),
                region: region.to_owned(),
                client_id: client_id.to_owned(),
            },
        };
        // The presigned upload URLs name the emulator's origin.
        let mut web = Self::new(dir, config, &origin(endpoint));
        web.emulator = Some(Emulator {
            endpoint: endpoint.to_owned(),
            client: reqwest::Client::new(),
        });
        web
    }

    /// The directory it is served from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Answers a request the API's routes didn't: the app's files and routes, its settings,
    /// or a problem document for an unknown `/v1/…` path.
    pub async fn serve(&self, request: Request) -> Response {
        let path = request.uri().path().to_owned();
        if path == "/v1" || path.starts_with("/v1/") {
            return ApiError::NotFound.into_response();
        }
        if path.trim_end_matches('/') == LOCAL_COGNITO {
            if let Some(emulator) = &self.emulator {
                return emulator.relay(request).await;
            }
        }
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            return StatusCode::METHOD_NOT_ALLOWED.into_response();
        }
        let mut response = if path == "/config.json" {
            Json(self.config.clone()).into_response()
        } else {
            let index = self.dir.join("index.html");
            let files = ServeDir::new(&self.dir).fallback(ServeFile::new(index));
            match files.oneshot(request).await {
                Ok(response) => response.map(Body::new),
                Err(infallible) => match infallible {},
            }
        };
        let cache = if path.starts_with("/assets/") && response.status().is_success() {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
        headers.insert(CONTENT_SECURITY_POLICY, self.csp.clone());
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        response
    }
}

impl Emulator {
    /// Passes a Cognito call (`POST`, `X-Amz-Target`, JSON) to the emulator and its answer back.
    async fn relay(&self, request: Request) -> Response {
        const TARGET: &str = "x-amz-target";
        // The emulator hands a password reset's code back in this header instead of mailing it.
        const RESET_CODE: &str = "x-moto-forgot-password-confirmation-code";
        if request.method() != Method::POST {
            return StatusCode::METHOD_NOT_ALLOWED.into_response();
        }
        let target = request.headers().get(TARGET).cloned();
        let content_type = request.headers().get(CONTENT_TYPE).cloned();
        let Ok(body) = axum::body::to_bytes(request.into_body(), 64 * 1024).await else {
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        };
        let mut call = self.client.post(&self.endpoint).body(body);
        if let Some(target) = target {
            call = call.header(TARGET, target.as_bytes());
        }
        if let Some(content_type) = content_type {
            call = call.header(CONTENT_TYPE.as_str(), content_type.as_bytes());
        }
        let answer = match call.send().await {
            Ok(answer) => answer,
            Err(err) => {
                tracing::warn!(error = %err, "the emulator's Cognito is unreachable");
                return StatusCode::BAD_GATEWAY.into_response();
            }
        };
        let status =
            StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        // Cognito's own content type (the emulator says `application/json`): its error bodies
        // pass the API's problem layer untouched.
        let mut response = Response::builder()
            .status(status)
            .header(CONTENT_TYPE, "application/x-amz-json-1.1");
        if let Some(code) = answer.headers().get(RESET_CODE) {
            response = response.header(RESET_CODE, code.as_bytes());
        }
        match answer.bytes().await {
            Ok(bytes) => response
                .body(Body::from(bytes))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response()),
            Err(_) => StatusCode::BAD_GATEWAY.into_response(),
        }
    }
}

/// `scheme://host[:port]` of `url`.
fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let host = rest.split('/').next().unwrap_or_default();
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_is_scheme_and_authority() {
        assert_eq!(origin("http://127.0.0.1:5000/"), "http://127.0.0.1:5000");
        assert_eq!(
            origin("https://cognito-idp.eu-west-1.amazonaws.com/"),
            "https://cognito-idp.eu-west-1.amazonaws.com"
        );
    }
}
