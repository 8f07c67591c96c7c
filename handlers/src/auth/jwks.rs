//! The pool's signing keys: fetched from the JWKS URL, cached by `kid`, refetched when a token
//! names a key the cache lacks — at most once per interval, so a flood of made-up `kid`s costs
//! the key server one request per interval, not one per token.
//!
//! A refetch replaces the whole set, so a key the pool has dropped stops verifying. A failed
//! refetch keeps the previous set (tokens under known keys still verify) and reports the failure
//! to the request that triggered it; until the interval has passed, later unknown `kid`s get the
//! same failure rather than a misleading "unknown key".

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use super::{clip, AuthError};

/// A JWKS larger than this is refused: Cognito's holds two keys (≈ 1 KiB).
const MAX_JWKS_BYTES: usize = 64 * 1024;

/// Why the key set couldn't be had.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The request failed (connection, TLS, timeout).
    #[error("fetching the JWKS failed")]
    Fetch(#[source] reqwest::Error),
    /// The server answered with a non-success status.
    #[error("the JWKS server answered {0}")]
    Status(reqwest::StatusCode),
    /// The body exceeded the size limit (64 KiB; Cognito's set is about 1 KiB).
    #[error("the JWKS is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    /// The body isn't a JWKS.
    #[error("the JWKS is not valid JSON of the expected shape")]
    Parse(#[source] serde_json::Error),
    /// The set holds no RSA signing key this verifier can use.
    #[error("the JWKS holds no usable RS256 key")]
    NoUsableKeys,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

/// One key; every field optional so that keys of other types (EC, oct) parse and are skipped
/// rather than failing the whole set.
#[derive(Deserialize)]
struct Jwk {
    kty: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl Jwk {
    /// The key's id and verifying key, if it is an RSA signing key usable with RS256.
    fn into_rs256_key(self) -> Option<(String, DecodingKey)> {
        let usable = self.kty.as_deref() == Some("RSA")
            && matches!(self.alg.as_deref(), None | Some("RS256"))
            && matches!(self.usage.as_deref(), None | Some("sig"));
        if !usable {
            return None;
        }
        let key = DecodingKey::from_rsa_components(self.n.as_deref()?, self.e.as_deref()?).ok()?;
        Some((self.kid?, key))
    }
}

type Keys = HashMap<String, Arc<DecodingKey>>;

/// When the set was last fetched, and how that went.
#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    last_failure: Option<Arc<JwksError>>,
}

/// The cached key set of one JWKS URL.
pub(crate) struct KeyCache {
    url: reqwest::Url,
    http: reqwest::Client,
    refetch_interval: Duration,
    keys: RwLock<Arc<Keys>>,
    // Held across a fetch, so concurrent misses wait for one fetch instead of starting their own.
    fetch: Mutex<FetchState>,
}

impl KeyCache {
    pub(crate) fn new(
        url: reqwest::Url,
        http: reqwest::Client,
        refetch_interval: Duration,
    ) -> Self {
        Self {
            url,
            http,
            refetch_interval,
            keys: RwLock::new(Arc::new(Keys::new())),
            fetch: Mutex::new(FetchState::default()),
        }
    }

    /// The key named `kid`: from the cache, else from a refetch if one is allowed now.
    pub(crate) async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, AuthError> {
        if let Some(key) = self.cached(kid).await {
            return Ok(key);
        }
        let mut state = self.fetch.lock().await;
        // Another request may have refetched while this one waited for the lock.
        if let Some(key) = self.cached(kid).await {
            return Ok(key);
        }
        let now = Instant::now();
        if let Some(last) = state.last_attempt {
            if now.duration_since(last) < self.refetch_interval {
                return Err(match &state.last_failure {
                    Some(failure) => AuthError::JwksUnavailable(Arc::clone(failure)),
                    None => AuthError::UnknownKey { kid: clip(kid) },
                });
            }
        }
        self.refetch(&mut state, now)
            .await
            .map_err(AuthError::JwksUnavailable)?;
        self.cached(kid)
            .await
            .ok_or_else(|| AuthError::UnknownKey { kid: clip(kid) })
    }

    /// Fetches the set before any token needs it (a Lambda function's init), so the first
    /// request doesn't pay the TLS handshake and the round trip. A failure is only logged:
    /// the first request that needs a key tries again.
    pub(crate) async fn warm(&self) {
        let mut state = self.fetch.lock().await;
        if self.refetch(&mut state, Instant::now()).await.is_err() {
            state.last_attempt = None;
        }
    }

    /// Replaces the cached set with a fresh fetch, recording the attempt in `state` (whose
    /// lock the caller holds).
    async fn refetch(&self, state: &mut FetchState, now: Instant) -> Result<(), Arc<JwksError>> {
        state.last_attempt = Some(now);
        match self.fetch_keys().await {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "fetched the JWKS");
                state.last_failure = None;
                *self.keys.write().await = Arc::new(keys);
                Ok(())
            }
            Err(err) => {
                let err = Arc::new(err);
                tracing::warn!(url = %self.url, error = %err, "fetching the JWKS failed");
                state.last_failure = Some(Arc::clone(&err));
                Err(err)
            }
        }
    }

    /// The key named `kid` in the set as last fetched, without fetching.
    pub(crate) async fn cached(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        self.keys.read().await.get(kid).cloned()
    }

    async fn fetch_keys(&self) -> Result<Keys, JwksError> {
        let mut response = self
            .http
            .get(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(JwksError::Fetch)?;
        if !response.status().is_success() {
            return Err(JwksError::Status(response.status()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_JWKS_BYTES as u64)
        {
            return Err(JwksError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(JwksError::Fetch)? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(JwksError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        parse(&body)
    }
}

/// The usable RS256 keys of a JWKS document.
fn parse(body: &[u8]) -> Result<Keys, JwksError> {
    let set: JwkSet = serde_json::from_slice(body).map_err(JwksError::Parse)?;
    let keys: Keys = set
        .keys
        .into_iter()
        .filter_map(Jwk::into_rs256_key)
        .map(|(kid, key)| (kid, Arc::new(key)))
        .collect();
    if keys.is_empty() {
        return Err(JwksError::NoUsableKeys);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Cognito's shape; `n` is any base64url string here (keys are only parsed, not used).
    const RSA_KEY: &str = r#"{"alg":"RS256","e":"AQAB","kid":"k1","kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","use":"sig"}"#;

    #[test]
    fn rsa_signing_keys_are_kept_and_other_keys_skipped() {
        let body = format!(
            r#"{{"keys":[{RSA_KEY},
                {{"kty":"EC","kid":"ec","crv":"P-256","x":"AA","y":"AA"}},
                {{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"}},
                {{"kty":"RSA","kid":"ps","alg":"PS256","n":"AQAB","e":"AQAB"}},
                {{"kty":"RSA","n":"AQAB","e":"AQAB"}}]}}"#
        );
        let keys = parse(body.as_bytes()).expect("a usable set");
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["k1"]);
    }

    #[test]
    fn a_set_without_usable_keys_is_an_error() {
        assert!(matches!(
            parse(br#"{"keys":[]}"#),
            Err(JwksError::NoUsableKeys)
        ));
        assert!(matches!(parse(b"<html>"), Err(JwksError::Parse(_))));
    }
}
