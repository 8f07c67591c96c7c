//! `casebook serve`: the whole product in one local process.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;

use std::sync::Arc;
use std::time::Duration;

use crate::auth::{InvalidVerifierConfig, TokenVerifier, VerifierConfig};
use casebook_adapters::config::{AuthConfig, Config, DatabaseConfig};
use casebook_adapters::postgres::{self, DbRole};
use sqlx::PgPool;
use tokio::net::TcpListener;

use casebook_projections::judgment_index::JudgmentIndexSubscription;
use casebook_projections::projection::ProjectionId;
use casebook_projections::runner::{RunError, Runner};

use crate::http::caller::Authenticator;
use crate::http::rate_limit::TenantLimiter;
use crate::http::uploads::Uploads;
use crate::http::web::{CognitoEndpoint, WebApp, WebConfig};
use crate::http::{router, AppState};
use casebook_adapters::ai::{AiConfig, AiProviders};
use casebook_adapters::aws::apigateway::UsagePlans;
use casebook_adapters::aws::s3::TenantBucket;
use casebook_adapters::aws::setup::{ensure_bucket, ensure_resources, ResourceNames};
use casebook_adapters::aws::sqs::Queue;
use casebook_adapters::aws::{shared_config, SdkConfig};
use casebook_domain::ports::Embedder;
use std::path::PathBuf;

use crate::compose::{diagnoser, search_pool};
use crate::jobs::{run_scheduler_until, Jobs, JobsConfig, Schedule};
use crate::reactions::ReactionSubscription;
use crate::relay::{Relay, RelayConfig};
use crate::worker::{run_worker_until, Worker};
use casebook_adapters::cognito::CognitoAdmin;
use casebook_adapters::people::{CognitoPeople, PrintedMailbox};
use casebook_application::ports::{IdentityProvider, Mailbox};
use casebook_application::reactions::{People, Reactions, UsageKeyAssignment};
use casebook_application::service::Service;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database could not be reached.
    #[error("cannot connect to the database")]
    Connect(#[source] postgres::ConnectError),
    /// A migration failed.
    #[error("cannot migrate the database")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The listening socket failed.
    #[error("cannot serve HTTP")]
    Io(#[source] std::io::Error),
    /// The AWS side could not be set up.
    #[error("cannot set up the AWS resources")]
    Aws(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A setting is invalid.
    #[error("invalid configuration")]
    Config(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The subscriptions runner failed.
    #[error("the projections runner failed")]
    Projector(#[source] RunError),
}

/// What one `casebook serve` process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeMode {
    /// The API and everything behind it: the subscriptions and, when AWS is reachable, the
    /// relay, the diagnosis worker and the scheduled jobs.
    Everything,
    /// The API alone, as the `api` Lambda runs it: more processes beside one that runs
    /// everything (whose subscriptions pick up their commits), or the command path measured
    /// without the projections on the same cores.
    ApiOnly,
}

/// A started, not yet serving, application: bound to its port, database migrated.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    projector: Option<Runner>,
    worker: Option<(Worker, Queue)>,
    jobs: Option<(Jobs, Schedule)>,
}

impl Application {
    /// Migrates the database (as the connecting user) and binds `config.listen`
    /// (port 0 picks a free one; see [`Application::local_addr`]); requests are
    /// authenticated by `auth`; `mode` says whether the subscriptions and workers run too.
    pub async fn build(
        config: &Config,
        auth: Authenticator,
        mode: ServeMode,
    ) -> Result<Self, ServeError> {
        let owner = postgres::connect_database(&config.database, DbRole::Owner, 1)
            .await
            .map_err(ServeError::Connect)?;
        postgres::migrate(&owner)
            .await
            .map_err(ServeError::Migrate)?;
        owner.close().await;
        let mut state = api_state(config, auth).await?;
        match web_app(config) {
            Some(web) => {
                tracing::info!(dir = %web.dir().display(), "serving the web app at /");
                state = state.with_web(web);
            }
            None => tracing::warn!(
                "no web app: build it (npm run build in web/) or set CASEBOOK_WEB_DIR"
            ),
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(ServeError::Io)?;
        let mut app = Self {
            listener,
            state,
            projector: None,
            worker: None,
            jobs: None,
        };
        if mode == ServeMode::ApiOnly {
            return Ok(app);
        }
        let ai = AiConfig::from_env().map_err(|err| ServeError::Aws(Box::new(err)))?;
        let providers = AiProviders::from_config(&ai).await;
        let wiring = async_wiring(
            &app.state.pool,
            &app.state.service,
            &config.database,
            &providers,
        )
        .await?;
        let (relay, usage_plans) = match wiring {
            Some(wiring) => {
                let schedule =
                    Schedule::from_env().map_err(|err| ServeError::Config(Box::new(err)))?;
                let log = postgres::connect_database(&config.database, DbRole::Projector, 2)
                    .await
                    .map_err(ServeError::Connect)?;
                let jobs = Jobs::new(
                    app.state.pool.clone(),
                    log,
                    &shared_config().await,
                    &wiring.jobs,
                );
                app.worker = Some((wiring.worker, wiring.queue));
                app.jobs = Some((jobs, schedule));
                (Some(wiring.relay), wiring.usage_plans)
            }
            None => {
                tracing::warn!(
                        "no AWS configured: events are not relayed, diagnoses not worked, jobs not scheduled"
                    );
                (None, None)
            }
        };
        let mut runner = projector(
            projector_pool(config).await?,
            app.state.service.clone(),
            providers.embedder.clone(),
            relay,
        );
        if let Some(plans) = usage_plans {
            runner = with_usage_keys(runner, app.state.service.clone(), plans);
        }
        if app.jobs.is_some() {
            match people_from_config(config).await? {
                Some(people) => {
                    runner = with_people(
                        runner,
                        app.state.service.clone(),
                        Arc::new(people),
                        Arc::new(PrintedMailbox),
                    );
                }
                None => {
                    tracing::warn!("no user pool configured: invited people get no Cognito account")
                }
            }
        }
        app.projector = Some(runner);
        Ok(app)
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves the API and, unless built [`ServeMode::ApiOnly`], runs every subscription (read
    /// models, audit chain, reactions, the judgment index) until `shutdown` completes, then lets
    /// in-flight requests and batches finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        tracing::info!(addr = ?self.listener.local_addr().ok(), "casebook serving");
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
                match self.projector {
                    Some(projector) => projector.run_until(stopped_for(stopped)).await,
                    None => Ok(()),
                }
            }
        };
        let scheduler = {
            let stopped = stopped.clone();
            async move {
                if let Some((jobs, schedule)) = self.jobs {
                    run_scheduler_until(jobs, schedule, stopped_for(stopped)).await;
                }
            }
        };
        let worker = async move {
            if let Some((worker, queue)) = self.worker {
                run_worker_until(worker, queue, stopped_for(stopped)).await;
            }
        };
        let signal = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        let (served, projected, (), (), ()) =
            tokio::join!(server, projector, worker, scheduler, signal);
        served.map_err(ServeError::Io)?;
        projected.map_err(ServeError::Projector)?;
        self.state.pool.close().await;
        tracing::info!("casebook stopped");
        Ok(())
    }
}

/// The API's state for `config`: the request-path pool (as `casebook_app`), the limits and
/// the uploads bucket if there is one. The `api` Lambda builds exactly this (without
/// migrating: deployments migrate once).
pub async fn api_state(config: &Config, auth: Authenticator) -> Result<AppState, ServeError> {
    let pool = postgres::connect_database(
        &config.database,
        DbRole::App,
        config.database.max_connections,
    )
    .await
    .map_err(ServeError::Connect)?;
    let state = AppState::new(pool, auth, TenantLimiter::new(config.rate_limit_scale));
    Ok(match uploads().await? {
        Some(uploads) => state.with_uploads(uploads),
        None => {
            tracing::warn!("no uploads bucket configured: POST /v1/uploads answers 503");
            state
        }
    })
}

/// The uploads bucket: `UPLOADS_BUCKET` when deployed; against the local emulator
/// (`AWS_ENDPOINT_URL`) the local stack's, created on the spot; `None` otherwise. URLs live
/// `UPLOAD_URL_EXPIRY_SECONDS` (default 900).
pub async fn uploads() -> Result<Option<Uploads>, ServeError> {
    let expiry = match std::env::var("UPLOAD_URL_EXPIRY_SECONDS") {
        Ok(text) => text.parse().map_err(|err| {
            ServeError::Aws(format!("UPLOAD_URL_EXPIRY_SECONDS {text:?}: {err}").into())
        })?,
        Err(_) => 900,
    };
    let aws = shared_config().await;
    let bucket = match std::env::var("UPLOADS_BUCKET") {
        Ok(name) => name,
        Err(_) if std::env::var_os("AWS_ENDPOINT_URL").is_some() => {
            let name = ResourceNames::with_prefix("casebook-local").uploads_bucket;
            ensure_bucket(&aws, &name)
                .await
                .map_err(|err| ServeError::Aws(Box::new(err)))?;
            name
        }
        Err(_) => return Ok(None),
    };
    Ok(Some(Uploads::new(
        TenantBucket::new(&aws, bucket),
        Duration::from_secs(expiry),
    )))
}

/// The web app built into `CASEBOOK_WEB_DIR` (default `web/dist` under the working
/// directory), signing users in with the pool whose tokens `config` accepts; `None` when it
/// isn't built or no pool is configured.
pub fn web_app(config: &Config) -> Option<WebApp> {
    let dir = std::env::var_os("CASEBOOK_WEB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("web/dist"));
    if !dir.join("index.html").is_file() {
        return None;
    }
    let auth = config.auth.as_ref()?;
    // `https://cognito-idp.<region>.amazonaws.com/<pool>`, in AWS and in the emulator alike.
    let region = auth
        .issuer
        .strip_prefix("https://cognito-idp.")?
        .split('.')
        .next()?
        .to_owned();
    if let Some(emulator) = endpoint_from_env() {
        return Some(WebApp::against_emulator(
            dir,
            &region,
            &auth.audience,
            &emulator,
        ));
    }
    // No uploads bucket: the API refuses uploads, so none is reached.
    let uploads_origin = std::env::var("UPLOADS_BUCKET")
        .map(|bucket| format!("https://{bucket}.s3.{region}.amazonaws.com"))
        .unwrap_or_default();
    let config = WebConfig {
        cognito: CognitoEndpoint {
            endpoint: format!("https://cognito-idp.{region}.amazonaws.com/"),
            region,
            client_id: auth.audience.clone(),
        },
    };
    Some(WebApp::new(dir, config, &uploads_origin))
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
    // The projections, the reactions, the judgment index, the relay (see `projector`), the
    // usage keys and the people.
    let subscriptions = ProjectionId::ALL.len() + 5;
    postgres::connect_database(
        &config.database,
        DbRole::Projector,
        (2 * subscriptions + 2) as u32,
    )
    .await
    .map_err(ServeError::Connect)
}

/// The runner of every subscription, as `casebook serve` and the projector Lambda both run
/// it: the projections, the reactions (issuing commands through `service`), the judgment
/// index (embedding with `embedder`, the worker's) and, when AWS is reachable, the relay.
pub fn projector(
    pool: PgPool,
    service: Service,
    embedder: Arc<dyn Embedder>,
    relay: Option<Relay>,
) -> Runner {
    let runner = Runner::new(pool)
        .with_projections(ProjectionId::ALL)
        .with_subscription(ReactionSubscription::new(Reactions::new(service)))
        .with_subscription(JudgmentIndexSubscription::new(embedder));
    match relay {
        Some(relay) => runner.with_subscription(relay),
        None => runner,
    }
}

/// `runner` also keeping each tenant's own API key on its plan's usage plan.
pub fn with_usage_keys(runner: Runner, service: Service, plans: UsagePlans) -> Runner {
    runner.with_subscription(ReactionSubscription::new(UsageKeyAssignment::new(
        service,
        Arc::new(plans),
    )))
}

/// `runner` also keeping each member's account in the identity provider as their tenant says,
/// invitations the provider hands back put in `mailbox`.
pub fn with_people(
    runner: Runner,
    service: Service,
    identity: Arc<dyn IdentityProvider>,
    mailbox: Arc<dyn Mailbox>,
) -> Runner {
    runner.with_subscription(ReactionSubscription::new(People::new(
        service, identity, mailbox,
    )))
}

/// The user pool whose accounts the people subscription keeps: `CASEBOOK_USER_POOL_ID` and
/// `CASEBOOK_USER_POOL_CLIENT_ID` when set (deployed), else the pool that issues the tokens
/// `config` accepts (its issuer ends with the pool's id; locally, the demo's); `None` without
/// either.
pub async fn people_from_config(config: &Config) -> Result<Option<CognitoPeople>, ServeError> {
    let from_env = std::env::var("CASEBOOK_USER_POOL_ID")
        .ok()
        .zip(std::env::var("CASEBOOK_USER_POOL_CLIENT_ID").ok());
    let from_tokens = || {
        let auth = config.auth.as_ref()?;
        let pool_id = auth.issuer.trim_end_matches('/').rsplit('/').next()?;
        Some((pool_id.to_owned(), auth.audience.clone()))
    };
    let Some((pool_id, client_id)) = from_env.or_else(from_tokens) else {
        return Ok(None);
    };
    let cognito = CognitoAdmin::new(&shared_config().await, endpoint_from_env())
        .map_err(|err| ServeError::Aws(Box::new(err)))?;
    let pool = cognito.existing_pool(&pool_id, &client_id);
    Ok(Some(CognitoPeople::new(cognito, pool)))
}

/// The emulator's endpoint (`AWS_ENDPOINT_URL`), when there is one.
fn endpoint_from_env() -> Option<String> {
    std::env::var("AWS_ENDPOINT_URL").ok()
}

/// What runs beside the API when AWS is reachable.
pub struct AsyncWiring {
    /// Publishes the log to EventBridge, `diagnosis` and `local-jobs`.
    pub relay: Relay,
    /// Works the `diagnosis` queue.
    pub worker: Worker,
    /// The `diagnosis` queue.
    pub queue: Queue,
    /// Where the scheduled jobs write.
    pub jobs: JobsConfig,
    /// The gateway's usage plans, on which each tenant's own key is put.
    pub usage_plans: Option<UsagePlans>,
}

/// The relay, the diagnosis worker and the jobs' settings, when AWS is reachable: against
/// the local emulator (`AWS_ENDPOINT_URL`) the bus, queues and buckets are created on the
/// spot; deployed, their names come from the environment (`EVENT_BUS_NAME`,
/// `DIAGNOSIS_QUEUE_URL`, `LOCAL_JOBS_QUEUE_URL`, `ARTIFACTS_BUCKET`, `AUDIT_ARCHIVE_BUCKET`,
/// `UPLOADS_BUCKET`). The worker embeds and diagnoses with `providers` (the embedded local
/// models unless Bedrock is configured), the same embedder the judgment index is built with,
/// searches the judgment index on a pool of its own (see [`search_pool`]) and reads sessions'
/// attachments from the uploads bucket.
pub async fn async_wiring(
    app_pool: &PgPool,
    service: &Service,
    database: &DatabaseConfig,
    providers: &AiProviders,
) -> Result<Option<AsyncWiring>, ServeError> {
    let aws = shared_config().await;
    let jobs_config = JobsConfig::from_env().map_err(|err| ServeError::Config(Box::new(err)))?;
    let (relay_config, local_jobs_queue_url, jobs, uploads_bucket, usage_plans) =
        if std::env::var_os("AWS_ENDPOINT_URL").is_some() {
            let resources = ensure_resources(&aws, &ResourceNames::with_prefix("casebook-local"))
                .await
                .map_err(|err| ServeError::Aws(Box::new(err)))?;
            let relay_config = RelayConfig {
                bus_name: resources.bus_name,
                source: "casebook".to_owned(),
                diagnosis_queue_url: resources.diagnosis_queue_url,
            };
            let jobs = JobsConfig {
                artifacts_bucket: Some(resources.artifacts_bucket),
                audit_archive_bucket: Some(resources.audit_archive_bucket),
                ..jobs_config
            };
            let usage_plans = UsagePlans::new(&aws, LOCAL_USAGE_PLAN_PREFIX);
            usage_plans
                .ensure_plans()
                .await
                .map_err(|err| ServeError::Aws(Box::new(err)))?;
            (
                relay_config,
                Some(resources.local_jobs_queue_url),
                jobs,
                Some(resources.uploads_bucket),
                Some(usage_plans),
            )
        } else {
            match RelayConfig::from_env() {
                Ok(config) => (
                    config,
                    std::env::var("LOCAL_JOBS_QUEUE_URL").ok(),
                    jobs_config,
                    std::env::var("UPLOADS_BUCKET").ok(),
                    usage_plans_from_env(&aws),
                ),
                Err(_) => return Ok(None),
            }
        };
    let mut relay = Relay::new(&aws, &relay_config, app_pool.clone());
    if let Some(url) = local_jobs_queue_url {
        relay = relay.with_local_jobs_queue(&aws, &url);
    }
    let search_pool = search_pool(database).await.map_err(ServeError::Connect)?;
    let mut diagnoser = diagnoser(service.clone(), search_pool, providers);
    if let Some(bucket) = uploads_bucket {
        diagnoser = diagnoser.with_attachments(Arc::new(TenantBucket::new(&aws, bucket)));
    }
    Ok(Some(AsyncWiring {
        relay,
        worker: Worker::new(diagnoser),
        queue: Queue::new(&aws, &relay_config.diagnosis_queue_url),
        jobs,
        usage_plans,
    }))
}

/// The usage plans' name prefix against the local emulator.
pub const LOCAL_USAGE_PLAN_PREFIX: &str = "casebook-local-";

/// The gateway's usage plans named `<CASEBOOK_USAGE_PLAN_PREFIX><plan>`, when the prefix is
/// set (deployed: `casebook-<stage>-`).
pub fn usage_plans_from_env(aws: &SdkConfig) -> Option<UsagePlans> {
    let prefix = std::env::var("CASEBOOK_USAGE_PLAN_PREFIX").ok()?;
    Some(UsagePlans::new(aws, prefix))
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
