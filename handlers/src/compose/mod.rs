//! The composition root: the application's use cases over the real adapters, and each
//! process's parts wired from its [`Settings`]. `casebook serve`, every Lambda `main` and the
//! tests build them here and nowhere else: a process through one [`Composition`]; tests
//! assemble their own from [`service`], [`diagnoser`], [`search_pool`], [`projector`],
//! [`export_files`], [`erasure_purge`] and [`verifier`].

use std::sync::Arc;

use casebook_adapters::ai::prompt::DIAGNOSIS_V2;
use casebook_adapters::ai::AiProviders;
use casebook_adapters::aws::apigateway::UsagePlans;
use casebook_adapters::aws::s3::TenantBucket;
use casebook_adapters::aws::setup::{ensure_resources, ResourceNames};
use casebook_adapters::aws::sqs::Queue;
use casebook_adapters::aws::{shared_config, BoxError, SdkConfig};
use casebook_adapters::config::{AuthConfig, DatabaseConfig};
use casebook_adapters::event_store::{Appender, EventStore};
use casebook_adapters::postgres::{self, ConnectError, DbRole};
use casebook_adapters::records::PgRequestRecords;
use casebook_application::budget::{Budgets, Resumption};
use casebook_application::diagnosis::{Diagnoser, DiagnoserPorts};
use casebook_application::erasure::ErasurePurge;
use casebook_application::jobs::ExportFiles;
use casebook_application::judgments::JudgmentSearch;
use casebook_application::ports::{FoundPrecedent, PrecedentSearch, SystemClock};
use casebook_application::reactions::Reactions;
use casebook_application::service::{Service, Stores};
use casebook_domain::ids::TenantId;
use casebook_domain::ports::Embedder;
use casebook_domain::upcast::upcasters;
use casebook_projections::jobs::TenantDecisions;
use casebook_projections::judgment_index::{IndexSearch, JudgmentIndexSubscription};
use casebook_projections::projection::ProjectionId;
use casebook_projections::runner::Runner;
use cqrs_es::Aggregate;
use sqlx::PgPool;
use tokio::sync::OnceCell;

use crate::access_log::{AccessLog, AccessLogSettings};
use crate::auth::{InvalidVerifierConfig, TokenVerifier, VerifierConfig};
use crate::authorizer::Authorizer;
use crate::budget::ScopedBudgetReads;
use crate::http::caller::Authenticator;
use crate::http::rate_limit::TenantLimiter;
use crate::http::uploads::Uploads;
use crate::http::web::{CognitoEndpoint, WebApp, WebConfig};
use crate::http::AppState;
use crate::jobs::Jobs;
use crate::reactions::ReactionSubscription;
use crate::relay::{ProjectorNudge, Relay};
use crate::settings::{Process, Resource, Settings, SettingsError, LOCAL_USAGE_PLAN_PREFIX};
use crate::worker::Worker;

#[cfg(feature = "cognito")]
mod subscriptions;
pub mod vault;
#[cfg(feature = "cognito")]
pub use subscriptions::Subscriptions;

/// The emulator's resources are `casebook-local-…`.
const LOCAL_PREFIX: &str = "casebook-local";

/// The application service over the event store and records in `pool` (which should run as
/// `casebook_app`).
pub fn service(pool: PgPool) -> Service {
    // One appender for every store: concurrent commands on any aggregates share commits.
    let appender = Appender::new(pool.clone());
    let stores = Stores {
        tenants: store(&appender),
        sessions: store(&appender),
        diagnoses: store(&appender),
        decisions: store(&appender),
        judgments: store(&appender),
    };
    Service::new(stores, Arc::new(PgRequestRecords::new(pool)))
}

fn store<A: Aggregate>(appender: &Appender) -> Arc<EventStore<A>> {
    let store = EventStore::with_appender(appender.clone(), upcasters());
    Arc::new(match vault::installed() {
        Some(vault) => store.with_vault(vault),
        None => store,
    })
}

/// The tenants' fine-tune export files in `artifacts`: the decisions read from the log through
/// `log` (a projector pool) and opened with the process's vault, the diagnoses' texts and the
/// exports recorded through the application service over `pool` (as `casebook_app`).
pub fn export_files(pool: PgPool, log: PgPool, artifacts: TenantBucket) -> ExportFiles {
    ExportFiles::new(
        service(pool),
        Arc::new(TenantDecisions::new(log, vault::installed())),
        Arc::new(artifacts),
    )
}

/// The purge of an erased customer's uploads from `uploads` (their grants read and revoked
/// through `pool`, as `casebook_app`) and of their examples from `exports`.
pub fn erasure_purge(pool: PgPool, uploads: TenantBucket, exports: ExportFiles) -> ErasurePurge {
    ErasurePurge::new(
        Arc::new(PgRequestRecords::new(pool)),
        Arc::new(uploads),
        exports,
    )
}

/// The pool the diagnosis searches the judgment index on (as `casebook_search`): a worker
/// handles one message at a time, so one connection, which keeps the tenants' search plans.
pub async fn search_pool(config: &DatabaseConfig) -> Result<PgPool, ConnectError> {
    postgres::connect_database(config, DbRole::Search, 1).await
}

/// The tenants' monthly token budgets: commands through the application service over
/// `pool` (which should run as `casebook_app`), tokens counted by the usage read model, by the
/// system's clock.
pub fn budgets(pool: PgPool) -> Budgets {
    Budgets::new(
        service(pool.clone()),
        Arc::new(ScopedBudgetReads::new(pool)),
        Arc::new(SystemClock),
    )
}

/// Deferred diagnoses resumed through `pool` (as `casebook_app`) when their tenants' budgets
/// allow.
pub fn resumption(pool: PgPool) -> Resumption {
    Resumption::new(
        budgets(pool.clone()),
        Arc::new(ScopedBudgetReads::new(pool)),
    )
}

/// The diagnosis use case: commands through the application service over `pool` (which
/// should run as `casebook_app`) and the tenants' budgets read there, precedents from the
/// index through `search_pool` (see [`search_pool`]), the process's AI providers and their
/// prices, and the current system prompt.
pub fn diagnoser(pool: PgPool, search_pool: PgPool, providers: &AiProviders) -> Diagnoser {
    Diagnoser::new(DiagnoserPorts {
        service: service(pool.clone()),
        budgets: budgets(pool),
        search: Arc::new(IndexSearch::new(search_pool, providers.embedder.model_id())),
        embedder: providers.embedder.clone(),
        llm: providers.llm.clone(),
        pricing: Arc::new(providers.prices.clone()),
        prompt: (&DIAGNOSIS_V2).into(),
    })
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

/// The runner of the projections, the reactions (issuing commands through `service`), the
/// judgment index (embedding with `embedder`, the worker's) and, when given, the relay:
/// what every process that runs subscriptions starts from (see [`Subscriptions`]).
pub fn projector(
    pool: PgPool,
    service: Service,
    embedder: Arc<dyn Embedder>,
    relay: Option<Relay>,
) -> Runner {
    let runner = runner(pool)
        .with_projections(ProjectionId::ALL)
        .with_subscription(ReactionSubscription::new(Reactions::new(service)))
        .with_subscription(JudgmentIndexSubscription::new(embedder));
    match relay {
        Some(relay) => runner.with_subscription(relay),
        None => runner,
    }
}

/// A runner over `pool` (the projector role) whose subscriptions see the events' sealed
/// fields opened with the process's vault.
pub fn runner(pool: PgPool) -> Runner {
    Runner::new(pool).with_vault(vault::installed())
}

/// Why a process could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A setting the builder needs is missing.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The token settings can't make a verifier.
    #[error("invalid token settings")]
    Tokens(#[source] InvalidVerifierConfig),
    /// The database could not be reached.
    #[error("cannot connect to the database")]
    Connect(#[source] ConnectError),
    /// A migration failed.
    #[error("cannot migrate the database")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The emulator's resources could not be created, or a client could not be made.
    #[error("cannot set up the AWS side")]
    Aws(#[source] BoxError),
    /// The vault's root key could not be read.
    #[error("cannot read the vault key")]
    Vault(#[source] casebook_vault::VaultError),
    /// The verifiable logs' signing key could not be read.
    #[error("cannot read the log key from {place}: {reason}")]
    LogKey {
        /// The file or secret named.
        place: String,
        /// Why.
        reason: String,
    },
}

fn aws_error(err: impl std::error::Error + Send + Sync + 'static) -> BuildError {
    BuildError::Aws(Box::new(err))
}

/// One process's parts, built from its [`Settings`] on demand: the API's state, the
/// authorizer, the subscriptions, the diagnosis worker, the jobs. Parts share the request
/// path's pool and the AI providers, each made once.
pub struct Composition {
    settings: Settings,
    aws: SdkConfig,
    verifier: Option<Authenticator>,
    app_pool: OnceCell<PgPool>,
    providers: OnceCell<AiProviders>,
}

impl Composition {
    /// The composition of the process `settings` were read for. The token verifier is made
    /// first (it checks its settings and fetches nothing); then the AWS SDK's configuration is
    /// loaded — locally pointed at the emulator, where the resources the process uses (bus,
    /// queues, buckets; the usage plans for a process that keeps or reads keys) are created on
    /// the spot and their names put in the settings. Nothing else is reached yet.
    pub async fn new(settings: Settings) -> Result<Self, BuildError> {
        let verifier = settings
            .auth
            .as_ref()
            .map(verifier)
            .transpose()
            .map_err(BuildError::Tokens)?;
        let shared = shared_config().await;
        let (settings, aws) = match settings.emulator_endpoint.clone() {
            None => (settings, shared),
            Some(endpoint) => {
                let aws = shared.into_builder().endpoint_url(endpoint).build();
                let needs = settings.process.resources(settings.in_lambda);
                let settings = if needs.is_empty() {
                    settings
                } else {
                    let resources =
                        ensure_resources(&aws, &ResourceNames::with_prefix(LOCAL_PREFIX))
                            .await
                            .map_err(aws_error)?;
                    settings.with_local_resources(&resources)
                };
                if needs.contains(&Resource::UsagePlanPrefix) {
                    UsagePlans::new(&aws, LOCAL_USAGE_PLAN_PREFIX)
                        .ensure_plans()
                        .await
                        .map_err(aws_error)?;
                }
                (settings, aws)
            }
        };
        match &settings.vault_key {
            Some(source) => vault::install_from(source, &aws).map_err(BuildError::Vault)?,
            None => tracing::warn!(
                "no vault key (CASEBOOK_VAULT_KMS_KEY, CASEBOOK_VAULT_KEY_FILE): personal data \
                 is stored in the clear (decision 0027)"
            ),
        }
        Ok(Self {
            settings,
            aws,
            verifier,
            app_pool: OnceCell::new(),
            providers: OnceCell::new(),
        })
    }

    /// The settings, with the emulator's names filled in locally.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Migrates the database as its owner (`casebook serve`; deployments migrate once, apart).
    pub async fn migrate(&self) -> Result<(), BuildError> {
        let owner = self.connect(DbRole::Owner, 1).await?;
        postgres::migrate(&owner)
            .await
            .map_err(BuildError::Migrate)?;
        owner.close().await;
        Ok(())
    }

    async fn connect(&self, role: DbRole, connections: u32) -> Result<PgPool, BuildError> {
        postgres::connect_database(&self.settings.database, role, connections)
            .await
            .map_err(BuildError::Connect)
    }

    /// The request path's pool (as `casebook_app`), shared by every part of the process and
    /// sized for it: `DATABASE_MAX_CONNECTIONS` where requests or diagnoses come in, a few
    /// where one invocation at a time issues commands.
    async fn app_pool(&self) -> Result<PgPool, BuildError> {
        let connections = match self.settings.process {
            Process::Authorizer | Process::Scheduler => 2,
            Process::Projector => 4,
            _ => self.settings.database.max_connections,
        };
        self.app_pool
            .get_or_try_init(|| self.connect(DbRole::App, connections))
            .await
            .cloned()
    }

    async fn providers(&self) -> &AiProviders {
        self.providers
            .get_or_init(|| AiProviders::from_config(&self.settings.ai))
            .await
    }

    fn verifier(&self) -> Result<Authenticator, BuildError> {
        self.verifier.clone().ok_or_else(|| {
            self.settings
                .missing(&["CASEBOOK_JWT_ISSUER", "CASEBOOK_JWT_AUDIENCE"])
                .into()
        })
    }

    fn bucket(&self, resource: Resource) -> Result<TenantBucket, BuildError> {
        Ok(TenantBucket::new(
            &self.aws,
            self.settings.require(resource)?,
        ))
    }

    fn usage_plans(&self) -> Result<UsagePlans, BuildError> {
        Ok(UsagePlans::new(
            &self.aws,
            self.settings.require(Resource::UsagePlanPrefix)?,
        ))
    }

    /// The API's state: the request path's pool, the token verifier (its keys fetched now),
    /// the limits, presigned uploads to the uploads bucket and, where a projector function is
    /// named (the deployed `api`), a nudge to it after each commit.
    pub async fn api_state(&self) -> Result<AppState, BuildError> {
        let verifier = self.verifier()?;
        verifier.warm().await;
        let state = AppState::new(
            self.app_pool().await?,
            verifier,
            TenantLimiter::new(self.settings.rate_limit_scale),
        )
        .with_uploads(Uploads::new(
            self.bucket(Resource::UploadsBucket)?,
            self.settings.upload_url_expiry,
        ));
        let state = match self.settings.access_log {
            AccessLogSettings { enabled: false, .. } => state,
            AccessLogSettings { queue, .. } => {
                let log = AccessLog::start(state.pool.clone(), queue);
                // Lambda freezes the process once an answer is out.
                state.with_access_log(if self.settings.in_lambda {
                    log.draining_each_request()
                } else {
                    log
                })
            }
        };
        let state = match self.settings.name(Resource::ProjectorFunction) {
            Some(function) => state.with_nudge(Arc::new(ProjectorNudge::new(&self.aws, function))),
            None => state,
        };
        Ok(state.with_judgment_search(self.judgment_search().await?))
    }

    /// Consultants' search of their judgments: embedded by the worker's embedder, searched on
    /// a pool of the search role of its own (one connection in Lambda, which serves one
    /// request at a time; a few where requests come in together), opened by the first search.
    async fn judgment_search(&self) -> Result<JudgmentSearch, BuildError> {
        let embedder = self.providers().await.embedder.clone();
        let index = SearchOnFirstUse {
            database: self.settings.database.clone(),
            connections: if self.settings.in_lambda { 1 } else { 4 },
            model: embedder.model_id().to_owned(),
            index: OnceCell::new(),
        };
        Ok(JudgmentSearch::new(embedder, Arc::new(index)))
    }

    /// The web app built into `CASEBOOK_WEB_DIR`, signing users in with the pool whose tokens
    /// the process accepts (through the emulator's relay locally); `None` when it isn't built
    /// or no tokens are accepted.
    pub fn web_app(&self) -> Option<WebApp> {
        let dir = self.settings.web_dir.clone();
        if !dir.join("index.html").is_file() {
            return None;
        }
        let auth = self.settings.auth.as_ref()?;
        // `https://cognito-idp.<region>.amazonaws.com/<pool>`, in AWS and in the emulator alike.
        let region = auth
            .issuer
            .strip_prefix("https://cognito-idp.")?
            .split('.')
            .next()?
            .to_owned();
        if let Some(emulator) = &self.settings.emulator_endpoint {
            return Some(WebApp::against_emulator(
                dir,
                &region,
                &auth.audience,
                emulator,
            ));
        }
        let uploads_origin = self
            .settings
            .name(Resource::UploadsBucket)
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

    /// The TOKEN authorizer: the verifier (its keys fetched now), the tenants' plans through the
    /// application, and each tenant's own key from the usage plans.
    pub async fn authorizer(&self) -> Result<Authorizer, BuildError> {
        let verifier = self.verifier()?;
        verifier.warm().await;
        Ok(Authorizer::new(
            verifier,
            service(self.app_pool().await?),
            Some(Arc::new(self.usage_plans()?)),
        ))
    }

    /// The diagnosis worker: commands through the application, precedents from the judgment
    /// index on a pool of its own, the AI providers, and sessions' attachments from the
    /// uploads bucket.
    pub async fn worker(&self) -> Result<Worker, BuildError> {
        let search_pool = search_pool(&self.settings.database)
            .await
            .map_err(BuildError::Connect)?;
        let diagnoser = diagnoser(self.app_pool().await?, search_pool, self.providers().await)
            .with_attachments(Arc::new(self.bucket(Resource::UploadsBucket)?));
        Ok(Worker::new(diagnoser))
    }

    /// The `diagnosis` queue, for a worker polling it itself (outside Lambda).
    pub fn diagnosis_queue(&self) -> Result<Queue, BuildError> {
        Ok(Queue::new(
            &self.aws,
            self.settings.require(Resource::DiagnosisQueue)?,
        ))
    }

    /// The scheduled jobs, over the request path's pool and a projector pool to read the
    /// whole log, writing to the artifacts and audit-archive buckets.
    pub async fn jobs(&self) -> Result<Jobs, BuildError> {
        // Both buckets are required by now; asking names them if a builder forgot one.
        self.settings.require(Resource::ArtifactsBucket)?;
        self.settings.require(Resource::AuditArchiveBucket)?;
        Ok(Jobs::new(
            self.app_pool().await?,
            self.connect(DbRole::Projector, 2).await?,
            &self.aws,
            &self.settings.jobs,
        ))
    }
}

/// The judgment index on a search-role pool opened by the first search: an `api` cold start
/// that serves no search pays no second database connection.
struct SearchOnFirstUse {
    database: DatabaseConfig,
    connections: u32,
    model: String,
    index: OnceCell<IndexSearch>,
}

#[async_trait::async_trait]
impl PrecedentSearch for SearchOnFirstUse {
    async fn nearest(
        &self,
        tenant: TenantId,
        vector: &[f32],
        k: u32,
    ) -> Result<Vec<FoundPrecedent>, BoxError> {
        let index = self
            .index
            .get_or_try_init(|| async {
                let pool =
                    postgres::connect_database(&self.database, DbRole::Search, self.connections)
                        .await?;
                Ok::<_, BoxError>(IndexSearch::new(pool, self.model.clone()))
            })
            .await?;
        index.nearest(tenant, vector, k).await
    }
}
