//! `casebook serve`: the whole product in one process — the API (and the web app), every
//! subscription, the diagnosis worker polling its queue and the jobs on their schedule — or,
//! with `--api-only`, the API alone. Its parts come from [`Composition`], as the Lambda
//! functions' do.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;

use casebook_adapters::aws::sqs::Queue;
use casebook_projections::runner::{RunError, Runner};
use tokio::net::TcpListener;

use crate::compose::{BuildError, Composition, Subscriptions};
use crate::http::{router, AppState};
use crate::jobs::{run_scheduler_until, Jobs, Schedule};
use crate::settings::{Process, Settings};
use crate::worker::{run_worker_until, Worker};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Its parts could not be built.
    #[error("cannot start casebook serve")]
    Build(#[from] BuildError),
    /// The listening socket failed.
    #[error("cannot serve HTTP")]
    Io(#[source] std::io::Error),
    /// The subscriptions runner failed.
    #[error("the projections runner failed")]
    Projector(#[source] RunError),
}

/// What runs beside the API unless it is served alone.
struct Background {
    projector: Runner,
    subscriptions: Subscriptions,
    worker: Worker,
    queue: Queue,
    jobs: Jobs,
    schedule: Schedule,
}

/// A started, not yet serving, application: bound to its port, database migrated.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    background: Option<Background>,
}

impl Application {
    /// `casebook serve` from `settings` (read for [`Process::Serve`] or
    /// [`Process::ServeApiOnly`]): migrates the database (as its owner), builds the API's state
    /// with the web app when it is built, binds `CASEBOOK_LISTEN` (port 0 picks a free one; see
    /// [`Application::local_addr`]) and, unless API-only, builds every subscription, the worker
    /// on the diagnosis queue and the jobs on their schedule.
    pub async fn build(settings: Settings) -> Result<Self, ServeError> {
        let api_only = settings.process == Process::ServeApiOnly;
        let compose = Composition::new(settings).await?;
        compose.migrate().await?;
        let mut state = compose.api_state().await?;
        match compose.web_app() {
            Some(web) => {
                tracing::info!(dir = %web.dir().display(), "serving the web app at /");
                state = state.with_web(web);
            }
            None => tracing::warn!(
                "no web app: build it (npm run build in web/) or set CASEBOOK_WEB_DIR"
            ),
        }
        let listener = TcpListener::bind(compose.settings().listen)
            .await
            .map_err(ServeError::Io)?;
        let background = if api_only {
            None
        } else {
            let subscriptions = compose.subscriptions().await?;
            Some(Background {
                projector: subscriptions.runner(),
                subscriptions,
                worker: compose.worker().await?,
                queue: compose.diagnosis_queue()?,
                jobs: compose.jobs().await?,
                schedule: compose.settings().schedule.clone(),
            })
        };
        Ok(Self {
            listener,
            state,
            background,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves the API and, unless built API-only, runs every subscription (read models, audit
    /// chain, reactions, the judgment index, the relay, usage keys, people), the worker and
    /// the jobs until `shutdown` completes, then lets in-flight requests and batches finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        tracing::info!(addr = ?self.listener.local_addr().ok(), "casebook serving");
        let (projector, subscriptions, worker, jobs) = match self.background {
            Some(background) => (
                Some(background.projector),
                Some(background.subscriptions),
                Some((background.worker, background.queue)),
                Some((background.jobs, background.schedule)),
            ),
            None => (None, None, None, None),
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stopped_for = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        // The peer's address is the public sign-up's source, for its per-source limit.
        let server = axum::serve(
            self.listener,
            router(self.state.clone()).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stopped_for(stopped.clone()))
        .into_future();
        let projector = {
            let stopped = stopped.clone();
            async move {
                match projector {
                    Some(projector) => projector.run_until(stopped_for(stopped)).await,
                    None => Ok(()),
                }
            }
        };
        let integration = {
            let stopped = stopped.clone();
            async move {
                if let Some(subscriptions) = subscriptions {
                    subscriptions.integrate_until(stopped_for(stopped)).await;
                }
            }
        };
        let scheduler = {
            let stopped = stopped.clone();
            async move {
                if let Some((jobs, schedule)) = jobs {
                    run_scheduler_until(jobs, schedule, stopped_for(stopped)).await;
                }
            }
        };
        let worker = async move {
            if let Some((worker, queue)) = worker {
                run_worker_until(worker, queue, stopped_for(stopped)).await;
            }
        };
        let signal = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        let (served, projected, (), (), (), ()) =
            tokio::join!(server, projector, integration, worker, scheduler, signal);
        // Every request has been answered, so every access record is queued.
        if let Some(log) = &self.state.access_log {
            log.drain().await;
        }
        served.map_err(ServeError::Io)?;
        projected.map_err(ServeError::Projector)?;
        self.state.pool.close().await;
        tracing::info!("casebook stopped");
        Ok(())
    }
}
