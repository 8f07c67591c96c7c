//! `casebook serve`: the whole product in one local process.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;

use std::sync::Arc;

use crate::auth::{InvalidVerifierConfig, TokenVerifier, VerifierConfig};
use casebook_adapters::config::{AuthConfig, Config};
use casebook_adapters::postgres::{self, DbRole};
use sqlx::PgPool;
use tokio::net::TcpListener;

use casebook_projections::projection::ProjectionId;
use casebook_projections::runner::{RunError, Runner};

use crate::http::caller::Authenticator;
use crate::http::rate_limit::TenantLimiter;
use crate::http::{router, AppState};
use crate::reactions::{ReactionSubscription, Reactions};
use crate::service::Service;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database could not be reached.
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    /// A migration failed.
    #[error("cannot migrate the database")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The listening socket failed.
    #[error("cannot serve HTTP")]
    Io(#[source] std::io::Error),
    /// The subscriptions runner failed.
    #[error("the projections runner failed")]
    Projector(#[source] RunError),
}

/// A started, not yet serving, application: bound to its port, database migrated.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    projector: Runner,
}

impl Application {
    /// Migrates the database (as the connecting user) and binds `config.listen`
    /// (port 0 picks a free one; see [`Application::local_addr`]); requests are
    /// authenticated by `auth`.
    pub async fn build(config: &Config, auth: Authenticator) -> Result<Self, ServeError> {
        let options = config.database.connect_options();
        let owner = postgres::connect(options, DbRole::Owner, 1)
            .await
            .map_err(ServeError::Connect)?;
        postgres::migrate(&owner)
            .await
            .map_err(ServeError::Migrate)?;
        owner.close().await;
        let state = api_state(config, auth).await?;
        let projector = projector(projector_pool(config).await?, state.service.clone());
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(ServeError::Io)?;
        Ok(Self {
            listener,
            state,
            projector,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves the API and runs every subscription (read models, audit chain, reactions)
    /// until `shutdown` completes, then lets in-flight requests and batches finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        tracing::info!(addr = ?self.listener.local_addr().ok(), "casebook serving");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stopped_for = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let server = axum::serve(self.listener, router(self.state.clone()))
            .with_graceful_shutdown(stopped_for(stopped.clone()))
            .into_future();
        let projector = self.projector.run_until(stopped_for(stopped));
        let signal = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        let (served, projected, ()) = tokio::join!(server, projector, signal);
        served.map_err(ServeError::Io)?;
        projected.map_err(ServeError::Projector)?;
        self.state.pool.close().await;
        tracing::info!("casebook stopped");
        Ok(())
    }
}

/// The API's state for `config`: the request-path pool (as `casebook_app`) and the limits.
/// The `api` Lambda builds exactly this (without migrating: deployments migrate once).
pub async fn api_state(config: &Config, auth: Authenticator) -> Result<AppState, ServeError> {
    let pool = postgres::connect(
        config.database.connect_options(),
        DbRole::App,
        config.database.max_connections,
    )
    .await
    .map_err(ServeError::Connect)?;
    Ok(AppState::new(
        pool,
        auth,
        TenantLimiter::new(config.rate_limit_scale),
    ))
}

/// The verifier of the user pool `config` names.
pub fn verifier(config: &AuthConfig) -> Result<Authenticator, InvalidVerifierConfig> {
    let verifier = TokenVerifier::new(VerifierConfig::new(
        &config.issuer,
        &config.audience,
        &config.jwks_url,
    ))?;
    Ok(Arc::new(verifier))
}

/// The pool the subscriptions run on (as `casebook_projector`), sized for all of them.
pub async fn projector_pool(config: &Config) -> Result<PgPool, ServeError> {
    let subscriptions = ProjectionId::ALL.len() + 1;
    postgres::connect(
        config.database.connect_options(),
        DbRole::Projector,
        (2 * subscriptions + 2) as u32,
    )
    .await
    .map_err(ServeError::Connect)
}

/// The runner of every subscription: the projections and the reactions (issuing commands
/// through `service`).
pub fn projector(pool: PgPool, service: Service) -> Runner {
    Runner::new(pool)
        .with_projections(ProjectionId::ALL)
        .with_subscription(ReactionSubscription::new(Reactions::new(service)))
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
