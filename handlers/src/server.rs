//! `casebook serve`: the whole product in one local process.

use std::future::Future;
use std::net::SocketAddr;

use casebook_adapters::config::Config;
use casebook_adapters::postgres::{self, DbRole};
use tokio::net::TcpListener;

use crate::http::{router, AppState};

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
}

/// A started, not yet serving, application: bound to its port, database migrated.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Migrates the database (as the connecting user) and binds `config.listen`
    /// (port 0 picks a free one; see [`Application::local_addr`]).
    pub async fn build(config: &Config) -> Result<Self, ServeError> {
        let options = config.database.connect_options();
        let owner = postgres::connect(options.clone(), DbRole::Owner, 1)
            .await
            .map_err(ServeError::Connect)?;
        postgres::migrate(&owner)
            .await
            .map_err(ServeError::Migrate)?;
        owner.close().await;
        let pool = postgres::connect(options, DbRole::App, config.database.max_connections)
            .await
            .map_err(ServeError::Connect)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(ServeError::Io)?;
        Ok(Self {
            listener,
            state: AppState { pool },
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        tracing::info!(addr = ?self.listener.local_addr().ok(), "casebook serving");
        axum::serve(self.listener, router(self.state.clone()))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServeError::Io)?;
        self.state.pool.close().await;
        tracing::info!("casebook stopped");
        Ok(())
    }
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
