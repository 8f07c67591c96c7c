//! The core of a process's configuration — the database, where to listen, the accepted tokens,
//! the rate limits — read from the environment at start-up: the handlers' processes as part of
//! their settings (`casebook_handlers::settings`, which also checks what each binary needs),
//! the replay tool alone.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

/// Why the environment could not be turned into a [`Config`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is absent.
    #[error("missing environment variable {0}")]
    Missing(&'static str),
    /// A variable is present but unusable.
    #[error("invalid value for {name}: {reason}")]
    Invalid {
        /// The variable's name.
        name: &'static str,
        /// What is wrong with it (never the value itself: it may be a secret).
        reason: String,
    },
}

/// Where the database is. Prints without its password.
#[derive(Clone)]
pub struct DatabaseConfig {
    options: PgConnectOptions,
    /// Upper bound of the request-path pool.
    pub max_connections: u32,
    /// Sign the password as an IAM auth token (RDS Proxy deployed) instead of taking it from
    /// the URL.
    pub iam_auth: bool,
}

impl DatabaseConfig {
    /// Connection options (host, port, user, password, database).
    pub fn connect_options(&self) -> PgConnectOptions {
        self.options.clone()
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("host", &self.options.get_host())
            .field("port", &self.options.get_port())
            .field("database", &self.options.get_database())
            .field("max_connections", &self.max_connections)
            .field("iam_auth", &self.iam_auth)
            .finish_non_exhaustive()
    }
}

/// Which ID tokens the API trusts (a Cognito user pool's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The tokens' `iss`: `https://cognito-idp.<region>.amazonaws.com/<pool id>`.
    pub issuer: String,
    /// The app client id: the tokens' `aud`.
    pub audience: String,
    /// Where the signing keys are served (the issuer's `/.well-known/jwks.json` in AWS; the
    /// emulator serves them under its own address).
    pub jwks_url: String,
}

/// Everything a Casebook process needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Postgres cluster.
    pub database: DatabaseConfig,
    /// Where `casebook serve` listens; loopback unless told otherwise.
    pub listen: SocketAddr,
    /// Token verification; `None` when not configured (the API then refuses every request).
    pub auth: Option<AuthConfig>,
    /// Multiplies every tier's rate limit (1 in production; load tests raise it).
    pub rate_limit_scale: u32,
}

impl Config {
    /// Reads `DATABASE_URL` (required), `DATABASE_MAX_CONNECTIONS` (default 16),
    /// `DATABASE_IAM_AUTH` (`true` to sign the password with IAM; default `false`),
    /// `CASEBOOK_LISTEN` (default `127.0.0.1:8080`), `CASEBOOK_JWT_ISSUER`,
    /// `CASEBOOK_JWT_AUDIENCE` and `CASEBOOK_JWKS_URL` (all three or none; the JWKS URL
    /// defaults to the issuer's well-known path) and `CASEBOOK_RATE_LIMIT_SCALE` (default 1).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Config::from_env`], over any source of variables (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let url = lookup("DATABASE_URL").ok_or(ConfigError::Missing("DATABASE_URL"))?;
        let options = PgConnectOptions::from_str(&url).map_err(|err| ConfigError::Invalid {
            name: "DATABASE_URL",
            reason: err.to_string(),
        })?;
        let max_connections = parse_or(&lookup, "DATABASE_MAX_CONNECTIONS", 16)?;
        let iam_auth = parse_or(&lookup, "DATABASE_IAM_AUTH", false)?;
        let listen = parse_or(
            &lookup,
            "CASEBOOK_LISTEN",
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
        )?;
        let auth = match (
            lookup("CASEBOOK_JWT_ISSUER"),
            lookup("CASEBOOK_JWT_AUDIENCE"),
        ) {
            (Some(issuer), Some(audience)) => Some(AuthConfig {
                jwks_url: lookup("CASEBOOK_JWKS_URL")
                    .unwrap_or_else(|| format!("{issuer}/.well-known/jwks.json")),
                issuer,
                audience,
            }),
            (None, None) => None,
            (Some(_), None) => return Err(ConfigError::Missing("CASEBOOK_JWT_AUDIENCE")),
            (None, Some(_)) => return Err(ConfigError::Missing("CASEBOOK_JWT_ISSUER")),
        };
        let rate_limit_scale = parse_or(&lookup, "CASEBOOK_RATE_LIMIT_SCALE", 1)?;
        Ok(Self {
            database: DatabaseConfig {
                options,
                max_connections,
                iam_auth,
            },
            listen,
            auth,
            rate_limit_scale,
        })
    }
}

impl Config {
    /// The token settings, which every process that serves requests needs.
    pub fn require_auth(&self) -> Result<&AuthConfig, ConfigError> {
        self.auth.as_ref().ok_or(ConfigError::Missing(
            "CASEBOOK_JWT_ISSUER and CASEBOOK_JWT_AUDIENCE",
        ))
    }
}

/// The variable `name` parsed, or `default` when unset; an unparsable value is an error naming
/// the variable (never its value: it may be a secret).
pub(crate) fn parse_or<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match lookup(name) {
        None => Ok(default),
        Some(raw) => raw.parse().map_err(|err: T::Err| ConfigError::Invalid {
            name,
            reason: err.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config_from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn a_missing_database_url_is_named() {
        let err = config_from(&[]).unwrap_err();
        assert!(matches!(err, ConfigError::Missing("DATABASE_URL")));
    }

    #[test]
    fn defaults_listen_on_loopback() {
        let config = config_from(&[("DATABASE_URL", "postgres://u:secret@127.0.0.1:5432/db")])
            .expect("valid config");
        assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.database.max_connections, 16);
        assert!(!config.database.iam_auth);
    }

    #[test]
    fn deployed_functions_sign_their_database_password_with_iam() {
        let config = config_from(&[
            (
                "DATABASE_URL",
                "postgres://casebook@proxy.example:5432/casebook",
            ),
            ("DATABASE_IAM_AUTH", "true"),
        ])
        .expect("valid config");
        assert!(config.database.iam_auth);
        let err = config_from(&[
            (
                "DATABASE_URL",
                "postgres://casebook@proxy.example:5432/casebook",
            ),
            ("DATABASE_IAM_AUTH", "yes"),
        ])
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "DATABASE_IAM_AUTH",
                ..
            }
        ));
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let config = config_from(&[("DATABASE_URL", "postgres://u:hunter2@127.0.0.1:5432/db")])
            .expect("valid config");
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn an_unparsable_port_is_reported_by_name() {
        let err = config_from(&[
            ("DATABASE_URL", "postgres://127.0.0.1/db"),
            ("CASEBOOK_LISTEN", "not-an-address"),
        ])
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "CASEBOOK_LISTEN",
                ..
            }
        ));
    }
}
