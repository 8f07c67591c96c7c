//! The settings of a Casebook process: every environment variable it reads, in one typed
//! struct read once at start-up ([`Settings::from_env`]) and checked against what the starting
//! [`Process`] needs, so a half-configured process stops before it touches the network and
//! names every variable it lacks. Secrets never print: the database password is kept out of
//! `Debug`, and credentials are the AWS SDK's own (its chain: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, the Lambda role), never read into these settings.
//!
//! `CASEBOOK_ENV` says where the process runs:
//! - `local`: against the AWS emulator at `AWS_ENDPOINT_URL`, whose bus, queues, buckets and
//!   usage plans [`compose`](crate::compose) creates on the spot (prefix `casebook-local`); the
//!   people subscription keeps the accounts of the pool that issues the accepted tokens.
//! - `aws`: deployed; every resource the process uses is named by the environment, and each
//!   one it needs is required.
//!
//! Unset, it is `local` for the `casebook` binary (the local all-in-one binary, which the
//! template never deploys, and whose local mode only ever talks to the emulator it is given)
//! and an error for the Lambda functions, which must say `aws`.
//!
//! | variable | read by | default |
//! |---|---|---|
//! | `CASEBOOK_ENV` | all | `local` for `casebook`; required for the functions |
//! | `AWS_ENDPOINT_URL` | all but `casebook operator`, `local` only | required |
//! | `AWS_LAMBDA_RUNTIME_API` | `api`, `worker`, `scheduler` (Lambda or not); `authorizer`, `projector` (required) | set by Lambda |
//! | `DATABASE_URL` | all | required |
//! | `DATABASE_MAX_CONNECTIONS`, `DATABASE_IAM_AUTH` | all | 16, `false` |
//! | `CASEBOOK_LISTEN` | `casebook serve`, `api` outside Lambda | `127.0.0.1:8080` |
//! | `CASEBOOK_JWT_ISSUER`, `CASEBOOK_JWT_AUDIENCE` | `casebook serve`, `api`, `authorizer`; `projector` locally | required |
//! | `CASEBOOK_JWKS_URL` | the same | the issuer's `/.well-known/jwks.json` |
//! | `CASEBOOK_RATE_LIMIT_SCALE` | `casebook serve`, `api` | 1 |
//! | `CASEBOOK_WEB_DIR` | `casebook serve` | `web/dist` |
//! | `UPLOAD_URL_EXPIRY_SECONDS` | `casebook serve`, `api` | 900 (at most 604800) |
//! | `CASEBOOK_ACCESS_LOG`, `CASEBOOK_ACCESS_LOG_QUEUE` | `casebook serve`, `api` | `on`, 10000 (see [`AccessLogSettings`]) |
//! | `CASEBOOK_AI_PROVIDER`, `CASEBOOK_MODELS_DIR`, `CASEBOOK_BEDROCK_*`, … | `casebook serve`, `api`, `projector`, `worker` | see [`casebook_adapters::ai::config`] |
//! | `EVENT_SOURCE` | `casebook serve`, `projector` | `casebook` |
//! | `CASEBOOK_STAGE` | all: the metrics' `Stage` dimension | `local` locally; required deployed |
//! | `CASEBOOK_LOG_KEY_FILE`, `CASEBOOK_LOG_KEY_SECRET` | `casebook serve`, `projector`: the verifiable logs' signing key, from a file (local) or a Secrets Manager secret (deployed) | unset: nothing integrated |
//! | `CASEBOOK_VAULT_KMS_KEY`, `CASEBOOK_VAULT_KEY_FILE` | all that read or append events: the root key sealing personal data (decision 0027), a KMS key (deployed) or a file of 32 bytes in base64 (local; the stack script creates it) | required deployed; locally, unset stores personal data in the clear |
//! | `LAG_ALERT_SECONDS` | `casebook serve`, `scheduler` | 60 |
//! | `SCHEDULE_LAG_CHECK`, `SCHEDULE_FINETUNE_EXPORT`, `SCHEDULE_AUDIT_ARCHIVE`, `SCHEDULE_BUDGET_RESUME` | `casebook serve` | as the EventBridge schedules |
//! | the names of [`Resource`] | `aws` only, per [`Process::resources`] | required |
//!
//! The Lambda runtime reads its own `AWS_LAMBDA_*` variables, `lambda_http` reads
//! `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH`, the SDK its `AWS_*` (region, credentials) and the
//! logs `RUST_LOG` (see [`telemetry`](crate::telemetry)); `casebook operator --as` falls back on
//! `CASEBOOK_OPERATOR`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use casebook_adapters::ai::AiConfig;
use casebook_adapters::aws::setup::Resources;
use casebook_adapters::config::{AuthConfig, Config, ConfigError, DatabaseConfig};

use crate::access_log::AccessLogSettings;
use crate::jobs::{InvalidSetting, JobsConfig, Schedule, ScheduleError};

/// The usage plans' name prefix against the local emulator (deployed: `casebook-<stage>-`).
pub const LOCAL_USAGE_PLAN_PREFIX: &str = "casebook-local-";

/// The longest a presigned upload URL may live (S3's limit: seven days).
const MAX_UPLOAD_URL_EXPIRY: u64 = 7 * 24 * 3600;

/// Where the verifiable logs' signing key is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogKeySource {
    /// `CASEBOOK_LOG_KEY_SECRET`: a Secrets Manager secret's name or ARN (deployed; readable by
    /// the projector's role only). Wins over a file.
    Secret(String),
    /// `CASEBOOK_LOG_KEY_FILE`: a file (local; the stack script creates it).
    File(PathBuf),
}

/// Where the vault's root key is (decision 0027).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultKeySource {
    /// `CASEBOOK_VAULT_KMS_KEY`: a KMS key's id, ARN or alias (deployed), which wraps each
    /// tenant's key under the encryption context of its tenant. Wins over a file.
    Kms(String),
    /// `CASEBOOK_VAULT_KEY_FILE`: a file of 32 bytes in base64 (local; the stack script
    /// creates it).
    File(PathBuf),
}

/// Where a process runs: `CASEBOOK_ENV`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// `local`: the AWS emulator at `AWS_ENDPOINT_URL`, resources created on the spot.
    Local,
    /// `aws`: deployed, every resource named by the environment.
    Aws,
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Environment::Local => "local",
            Environment::Aws => "aws",
        })
    }
}

/// The process starting: each binary (and each `casebook` subcommand) needs its own part of
/// the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// `casebook serve`: the API, every subscription, the worker and the jobs.
    Serve,
    /// `casebook serve --api-only`: the API alone.
    ServeApiOnly,
    /// `casebook operator`: one operator command on a tenant, over the database alone.
    Operator,
    /// `casebook demo`: the demo practice in the emulator's Cognito.
    Demo,
    /// The `api` function.
    Api,
    /// The `authorizer` function.
    Authorizer,
    /// The `projector` function.
    Projector,
    /// The `worker` function.
    Worker,
    /// The `scheduler` function.
    Scheduler,
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Process::Serve => "casebook serve",
            Process::ServeApiOnly => "casebook serve --api-only",
            Process::Operator => "casebook operator",
            Process::Demo => "casebook demo",
            Process::Api => "api",
            Process::Authorizer => "authorizer",
            Process::Projector => "projector",
            Process::Worker => "worker",
            Process::Scheduler => "scheduler",
        })
    }
}

impl Process {
    /// Whether it embeds or asks a model (the worker, the projector's judgment index, the
    /// API's judgment search, and `casebook serve`, which runs them all).
    pub fn uses_models(self) -> bool {
        matches!(
            self,
            Process::Serve
                | Process::ServeApiOnly
                | Process::Api
                | Process::Projector
                | Process::Worker
        )
    }

    /// The environment when `CASEBOOK_ENV` is unset: `local` for the `casebook` binary, none
    /// for the Lambda functions (see the [module documentation](self)).
    pub fn default_environment(self) -> Option<Environment> {
        match self {
            Process::Serve | Process::ServeApiOnly | Process::Operator | Process::Demo => {
                Some(Environment::Local)
            }
            Process::Api
            | Process::Authorizer
            | Process::Projector
            | Process::Worker
            | Process::Scheduler => None,
        }
    }

    /// Whether it opens or seals personal data: all that read or append the events of
    /// customers' streams; not the authorizer (it reads usage keys) nor the operator's
    /// command line (its commands are the tenant's, which holds nothing sealed).
    pub fn seals_personal_data(self) -> bool {
        !matches!(self, Process::Authorizer | Process::Operator)
    }

    /// Whether it calls AWS (and so, locally, needs the emulator).
    pub fn uses_aws(self) -> bool {
        self != Process::Operator
    }

    /// Whether it runs only as a Lambda function (it has no loop of its own outside one).
    pub fn lambda_only(self) -> bool {
        matches!(self, Process::Authorizer | Process::Projector)
    }

    /// Whether it needs the token settings in `environment`: those that verify tokens, and
    /// locally the projector, whose people subscription keeps the issuing pool's accounts.
    pub fn needs_tokens(self, environment: Environment) -> bool {
        match self {
            Process::Serve | Process::ServeApiOnly | Process::Api | Process::Authorizer => true,
            Process::Projector => environment == Environment::Local,
            Process::Operator | Process::Demo | Process::Worker | Process::Scheduler => false,
        }
    }

    /// The deployed resources it needs with `CASEBOOK_ENV=aws`; `in_lambda` matters to the
    /// worker, which outside Lambda polls the diagnosis queue itself.
    pub fn resources(self, in_lambda: bool) -> Vec<Resource> {
        use Resource::*;
        match self {
            Process::Serve => vec![
                UploadsBucket,
                EventBus,
                DiagnosisQueue,
                LocalJobsQueue,
                ArtifactsBucket,
                AuditArchiveBucket,
                UsagePlanPrefix,
                UserPool,
                UserPoolClient,
            ],
            Process::ServeApiOnly => vec![UploadsBucket],
            // Nothing listens for NOTIFY in Lambda: each commit nudges the projector function.
            Process::Api => vec![UploadsBucket, ProjectorFunction],
            Process::Authorizer => vec![UsagePlanPrefix],
            // The erasure purge deletes uploads and rewrites the fine-tune exports.
            Process::Projector => vec![
                UploadsBucket,
                EventBus,
                DiagnosisQueue,
                LocalJobsQueue,
                ArtifactsBucket,
                AuditArchiveBucket,
                UsagePlanPrefix,
                UserPool,
                UserPoolClient,
            ],
            Process::Worker if in_lambda => vec![UploadsBucket],
            Process::Worker => vec![UploadsBucket, DiagnosisQueue],
            Process::Scheduler => vec![ArtifactsBucket, AuditArchiveBucket],
            Process::Operator | Process::Demo => vec![],
        }
    }
}

/// A deployed resource a process may need, named by one environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    /// `UPLOADS_BUCKET`: customers' uploads (presigned URLs, the worker's attachments, the
    /// erasure purge).
    UploadsBucket,
    /// `EVENT_BUS_NAME`: where the relay publishes every event.
    EventBus,
    /// `DIAGNOSIS_QUEUE_URL`: diagnosis requests, from the relay to the worker.
    DiagnosisQueue,
    /// `LOCAL_JOBS_QUEUE_URL`: fine-tune exports, from the relay to the practice's trainer.
    LocalJobsQueue,
    /// `ARTIFACTS_BUCKET`: the fine-tune exports.
    ArtifactsBucket,
    /// `AUDIT_ARCHIVE_BUCKET`: the nightly audit archive.
    AuditArchiveBucket,
    /// `CASEBOOK_USAGE_PLAN_PREFIX`: the gateway's usage plans are `<prefix><plan>`.
    UsagePlanPrefix,
    /// `PROJECTOR_FUNCTION_NAME`: the function the API nudges after each commit.
    ProjectorFunction,
    /// `CASEBOOK_USER_POOL_ID`: the pool whose accounts the people subscription keeps.
    UserPool,
    /// `CASEBOOK_USER_POOL_CLIENT_ID`: that pool's app client.
    UserPoolClient,
}

impl Resource {
    /// Every resource.
    pub const ALL: [Resource; 10] = [
        Resource::UploadsBucket,
        Resource::EventBus,
        Resource::DiagnosisQueue,
        Resource::LocalJobsQueue,
        Resource::ArtifactsBucket,
        Resource::AuditArchiveBucket,
        Resource::UsagePlanPrefix,
        Resource::ProjectorFunction,
        Resource::UserPool,
        Resource::UserPoolClient,
    ];

    /// The variable naming it.
    pub fn variable(self) -> &'static str {
        match self {
            Resource::UploadsBucket => "UPLOADS_BUCKET",
            Resource::EventBus => "EVENT_BUS_NAME",
            Resource::DiagnosisQueue => "DIAGNOSIS_QUEUE_URL",
            Resource::LocalJobsQueue => "LOCAL_JOBS_QUEUE_URL",
            Resource::ArtifactsBucket => "ARTIFACTS_BUCKET",
            Resource::AuditArchiveBucket => "AUDIT_ARCHIVE_BUCKET",
            Resource::UsagePlanPrefix => "CASEBOOK_USAGE_PLAN_PREFIX",
            Resource::ProjectorFunction => "PROJECTOR_FUNCTION_NAME",
            Resource::UserPool => "CASEBOOK_USER_POOL_ID",
            Resource::UserPoolClient => "CASEBOOK_USER_POOL_CLIENT_ID",
        }
    }
}

/// Why the environment does not make settings for the starting process.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// `CASEBOOK_ENV` is unset and the process has no default.
    #[error(
        "{process}: CASEBOOK_ENV is not set (`aws` deployed, `local` against the AWS emulator)"
    )]
    MissingEnvironment {
        /// The process.
        process: Process,
    },
    /// `CASEBOOK_ENV` is neither `local` nor `aws`.
    #[error("CASEBOOK_ENV={0:?} is neither `local` nor `aws`")]
    UnknownEnvironment(String),
    /// A variable is missing or unusable (the database, the tokens, the AI providers, …).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A jobs' setting does not parse.
    #[error(transparent)]
    Jobs(#[from] InvalidSetting),
    /// A local schedule does not parse.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// Variables the process needs are not set (every one of them is named).
    #[error("{process} with CASEBOOK_ENV={environment} is missing {}", .missing.join(", "))]
    Missing {
        /// The process.
        process: Process,
        /// Its environment.
        environment: Environment,
        /// The variables.
        missing: Vec<&'static str>,
    },
    /// The process exists only against the emulator.
    #[error("{0} runs against the AWS emulator only: set CASEBOOK_ENV=local")]
    LocalOnly(Process),
}

/// Everything a process reads from its environment; see the [module documentation](self).
/// `Debug` shows no secret: the database's password stays out of it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The process these settings were checked for.
    pub process: Process,
    /// `CASEBOOK_ENV`.
    pub environment: Environment,
    /// `AWS_ENDPOINT_URL`, the emulator: `Some` locally for every process that calls AWS, and
    /// never read deployed (where the SDK alone would honour it).
    pub emulator_endpoint: Option<String>,
    /// Whether the process runs inside Lambda (`AWS_LAMBDA_RUNTIME_API` is set).
    pub in_lambda: bool,
    /// The Postgres cluster (`DATABASE_URL`, `DATABASE_MAX_CONNECTIONS`, `DATABASE_IAM_AUTH`).
    pub database: DatabaseConfig,
    /// `CASEBOOK_LISTEN`.
    pub listen: SocketAddr,
    /// The accepted tokens (`CASEBOOK_JWT_*`, `CASEBOOK_JWKS_URL`); `Some` for every process
    /// that [needs them](Process::needs_tokens).
    pub auth: Option<AuthConfig>,
    /// `CASEBOOK_RATE_LIMIT_SCALE`.
    pub rate_limit_scale: u32,
    /// The AI providers' settings.
    pub ai: AiConfig,
    /// The jobs' buckets (`ARTIFACTS_BUCKET`, `AUDIT_ARCHIVE_BUCKET`) and `LAG_ALERT_SECONDS`.
    pub jobs: JobsConfig,
    /// When `casebook serve` runs each job (`SCHEDULE_*`).
    pub schedule: Schedule,
    /// `CASEBOOK_WEB_DIR`: the built web app `casebook serve` serves at `/`.
    pub web_dir: PathBuf,
    /// `UPLOAD_URL_EXPIRY_SECONDS`: how long a presigned upload URL lives.
    pub upload_url_expiry: Duration,
    /// `EVENT_SOURCE`: the relay's entries' `Source`.
    pub event_source: String,
    /// `CASEBOOK_ACCESS_LOG`, `CASEBOOK_ACCESS_LOG_QUEUE`: the API's access log.
    pub access_log: AccessLogSettings,
    /// `CASEBOOK_STAGE`: the deployment, every metric's `Stage` dimension.
    pub stage: String,
    /// Where the verifiable logs' signing key is, a C2SP signed-note private key
    /// (`PRIVATE+KEY+<name>+<id>+<key>`); without one no checkpoint is signed.
    pub log_key: Option<LogKeySource>,
    /// The vault's root key; without one, personal data is stored in the clear.
    pub vault_key: Option<VaultKeySource>,
    /// The other deployed resources' names (the jobs' buckets are in `jobs`).
    names: BTreeMap<Resource, String>,
}

impl Settings {
    /// Reads the process's environment and checks it has everything `process` needs.
    pub fn from_env(process: Process) -> Result<Self, SettingsError> {
        Self::from_lookup(process, |name| std::env::var(name).ok())
    }

    /// As [`from_env`](Self::from_env), over any source of variables (tests pass a map). An
    /// empty variable counts as unset.
    pub fn from_lookup(
        process: Process,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let lookup = |name: &str| lookup(name).filter(|value| !value.is_empty());
        let environment = match lookup("CASEBOOK_ENV").as_deref() {
            None => process
                .default_environment()
                .ok_or(SettingsError::MissingEnvironment { process })?,
            Some("local") => Environment::Local,
            Some("aws") => Environment::Aws,
            Some(other) => return Err(SettingsError::UnknownEnvironment(other.to_owned())),
        };
        if process == Process::Demo && environment == Environment::Aws {
            return Err(SettingsError::LocalOnly(process));
        }
        let Config {
            database,
            listen,
            auth,
            rate_limit_scale,
        } = Config::from_lookup(lookup)?;
        let in_lambda = lookup("AWS_LAMBDA_RUNTIME_API").is_some();
        let emulator_endpoint = (environment == Environment::Local && process.uses_aws())
            .then(|| lookup("AWS_ENDPOINT_URL"))
            .flatten();

        let mut missing = Vec::new();
        if process.lambda_only() && !in_lambda {
            missing.push("AWS_LAMBDA_RUNTIME_API");
        }
        if environment == Environment::Local && process.uses_aws() && emulator_endpoint.is_none() {
            missing.push("AWS_ENDPOINT_URL");
        }
        if process.needs_tokens(environment) && auth.is_none() {
            missing.extend(["CASEBOOK_JWT_ISSUER", "CASEBOOK_JWT_AUDIENCE"]);
        }
        // Deployed, a metric without its stage would land on another deployment's dashboard.
        let stage = match (lookup("CASEBOOK_STAGE"), environment) {
            (Some(stage), _) => stage,
            (None, Environment::Local) => "local".to_owned(),
            (None, Environment::Aws) => {
                missing.push("CASEBOOK_STAGE");
                String::new()
            }
        };
        let vault_key = match (
            lookup("CASEBOOK_VAULT_KMS_KEY"),
            lookup("CASEBOOK_VAULT_KEY_FILE"),
        ) {
            (Some(key), _) => Some(VaultKeySource::Kms(key)),
            (None, Some(file)) => Some(VaultKeySource::File(PathBuf::from(file))),
            (None, None) => None,
        };
        // Deployed, a process without the root key would store personal data in the clear,
        // beyond the reach of any erasure.
        if environment == Environment::Aws && process.seals_personal_data() && vault_key.is_none() {
            missing.push("CASEBOOK_VAULT_KMS_KEY");
        }
        let jobs = JobsConfig::from_lookup(lookup)?;
        // Deployed, a process reads the names it needs and nothing else; locally they are
        // the emulator's, filled in by `with_local_resources`.
        let mut names = BTreeMap::new();
        if environment == Environment::Aws {
            for resource in process.resources(in_lambda) {
                let value = match resource {
                    Resource::ArtifactsBucket => jobs.artifacts_bucket.clone(),
                    Resource::AuditArchiveBucket => jobs.audit_archive_bucket.clone(),
                    _ => lookup(resource.variable()),
                };
                match value {
                    Some(value) => {
                        names.insert(resource, value);
                    }
                    None => missing.push(resource.variable()),
                }
            }
        }
        if !missing.is_empty() {
            return Err(SettingsError::Missing {
                process,
                environment,
                missing,
            });
        }

        let ai = AiConfig::from_lookup(lookup)?;
        if process.uses_models() && !ai.provider.is_built() {
            return Err(ConfigError::Invalid {
                name: "CASEBOOK_AI_PROVIDER",
                reason: format!(
                    "this build lacks the `{}` feature that provider needs",
                    ai.provider.feature()
                ),
            }
            .into());
        }
        let upload_url_expiry = match lookup("UPLOAD_URL_EXPIRY_SECONDS") {
            None => 900,
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|seconds| (1..=MAX_UPLOAD_URL_EXPIRY).contains(seconds))
                .ok_or_else(|| ConfigError::Invalid {
                    name: "UPLOAD_URL_EXPIRY_SECONDS",
                    reason: format!(
                        "{text:?} is not a number of seconds from 1 to {MAX_UPLOAD_URL_EXPIRY}"
                    ),
                })?,
        };
        Ok(Self {
            process,
            environment,
            emulator_endpoint,
            in_lambda,
            database,
            listen,
            auth,
            rate_limit_scale,
            ai,
            jobs,
            schedule: Schedule::from_lookup(lookup)?,
            web_dir: lookup("CASEBOOK_WEB_DIR")
                .map_or_else(|| PathBuf::from("web/dist"), PathBuf::from),
            upload_url_expiry: Duration::from_secs(upload_url_expiry),
            event_source: lookup("EVENT_SOURCE").unwrap_or_else(|| "casebook".to_owned()),
            access_log: AccessLogSettings::from_lookup(lookup)?,
            stage,
            log_key: match (
                lookup("CASEBOOK_LOG_KEY_SECRET"),
                lookup("CASEBOOK_LOG_KEY_FILE"),
            ) {
                (Some(secret), _) => Some(LogKeySource::Secret(secret)),
                (None, Some(file)) => Some(LogKeySource::File(PathBuf::from(file))),
                (None, None) => None,
            },
            vault_key,
            names,
        })
    }

    /// The name of `resource`, if the process has one.
    pub fn name(&self, resource: Resource) -> Option<&str> {
        match resource {
            Resource::ArtifactsBucket => self.jobs.artifacts_bucket.as_deref(),
            Resource::AuditArchiveBucket => self.jobs.audit_archive_bucket.as_deref(),
            _ => self.names.get(&resource).map(String::as_str),
        }
    }

    /// The name of `resource`, which the process needs: [`from_lookup`](Self::from_lookup)
    /// already refused to start without it, so a `Missing` error here means a builder asked for
    /// more than [`Process::resources`] says, and still names the variable.
    pub fn require(&self, resource: Resource) -> Result<&str, SettingsError> {
        self.name(resource)
            .ok_or_else(|| self.missing(&[resource.variable()]))
    }

    /// The error naming `variables` as missing for this process.
    pub fn missing(&self, variables: &[&'static str]) -> SettingsError {
        SettingsError::Missing {
            process: self.process,
            environment: self.environment,
            missing: variables.to_vec(),
        }
    }

    /// The same settings naming the emulator's `resources` (created on the spot), its usage
    /// plans ([`LOCAL_USAGE_PLAN_PREFIX`]) and, as the people subscription's pool, the one
    /// that issues the accepted tokens (its id ends their issuer).
    pub fn with_local_resources(mut self, resources: &Resources) -> Self {
        let mut name = |resource, value: &str| {
            self.names.insert(resource, value.to_owned());
        };
        name(Resource::UploadsBucket, &resources.uploads_bucket);
        name(Resource::EventBus, &resources.bus_name);
        name(Resource::DiagnosisQueue, &resources.diagnosis_queue_url);
        name(Resource::LocalJobsQueue, &resources.local_jobs_queue_url);
        name(Resource::UsagePlanPrefix, LOCAL_USAGE_PLAN_PREFIX);
        if let Some(auth) = &self.auth {
            let pool = auth.issuer.trim_end_matches('/').rsplit('/').next();
            if let Some(pool) = pool {
                self.names.insert(Resource::UserPool, pool.to_owned());
            }
            self.names
                .insert(Resource::UserPoolClient, auth.audience.clone());
        }
        self.jobs.artifacts_bucket = Some(resources.artifacts_bucket.clone());
        self.jobs.audit_archive_bucket = Some(resources.audit_archive_bucket.clone());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const DATABASE_URL: &str = "postgres://casebook:hunter2@db.internal:5432/casebook";

    fn settings(process: Process, vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(process, |name| vars.get(name).cloned())
    }

    fn missing(err: SettingsError) -> Vec<&'static str> {
        match err {
            SettingsError::Missing { missing, .. } => missing,
            other => panic!("expected missing variables, got {other:?}"),
        }
    }

    const TOKENS: [(&str, &str); 2] = [
        (
            "CASEBOOK_JWT_ISSUER",
            "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_pool",
        ),
        ("CASEBOOK_JWT_AUDIENCE", "client"),
    ];

    /// Everything `process` needs deployed (`in_lambda` as given), plus the database and tokens.
    fn deployed(process: Process, in_lambda: bool) -> Vec<(&'static str, &'static str)> {
        let mut vars = vec![
            ("CASEBOOK_ENV", "aws"),
            ("DATABASE_URL", DATABASE_URL),
            ("CASEBOOK_STAGE", "prod"),
        ];
        vars.extend(TOKENS);
        if process.seals_personal_data() {
            vars.push(("CASEBOOK_VAULT_KMS_KEY", "alias/casebook-prod-vault"));
        }
        if in_lambda {
            vars.push(("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"));
        }
        for resource in process.resources(in_lambda) {
            vars.push((resource.variable(), "deployed-name"));
        }
        vars
    }

    const FUNCTIONS: [Process; 5] = [
        Process::Api,
        Process::Authorizer,
        Process::Projector,
        Process::Worker,
        Process::Scheduler,
    ];

    #[test]
    fn a_deployed_function_that_reads_events_is_refused_without_the_vault_key() {
        for process in FUNCTIONS.into_iter().filter(|p| p.seals_personal_data()) {
            let vars: Vec<_> = deployed(process, true)
                .into_iter()
                .filter(|(name, _)| *name != "CASEBOOK_VAULT_KMS_KEY")
                .collect();
            assert_eq!(
                missing(settings(process, &vars).unwrap_err()),
                vec!["CASEBOOK_VAULT_KMS_KEY"],
                "{process}"
            );
            let settings = settings(process, &deployed(process, true)).unwrap();
            assert_eq!(
                settings.vault_key,
                Some(VaultKeySource::Kms("alias/casebook-prod-vault".into()))
            );
        }
    }

    #[test]
    fn a_function_without_casebook_env_is_refused_by_name() {
        for process in FUNCTIONS {
            let err = settings(process, &[("DATABASE_URL", DATABASE_URL)]).unwrap_err();
            assert!(
                matches!(err, SettingsError::MissingEnvironment { .. }),
                "{process}: {err:?}"
            );
            assert!(err.to_string().contains("CASEBOOK_ENV"), "{err}");
        }
    }

    #[test]
    fn an_unknown_casebook_env_is_refused() {
        let err = settings(
            Process::Serve,
            &[
                ("CASEBOOK_ENV", "production"),
                ("DATABASE_URL", DATABASE_URL),
            ],
        )
        .unwrap_err();
        assert!(
            matches!(err, SettingsError::UnknownEnvironment(ref value) if value == "production")
        );
    }

    #[test]
    fn casebook_serve_is_local_by_default_and_then_needs_the_emulator() {
        let mut vars = vec![("DATABASE_URL", DATABASE_URL)];
        vars.extend(TOKENS);
        assert_eq!(
            missing(settings(Process::Serve, &vars).unwrap_err()),
            ["AWS_ENDPOINT_URL"]
        );
        vars.push(("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"));
        let local = settings(Process::Serve, &vars).expect("local settings");
        assert_eq!(local.environment, Environment::Local);
        assert_eq!(
            local.emulator_endpoint.as_deref(),
            Some("http://127.0.0.1:5000")
        );
        // Locally no name is read from the environment: the emulator's are filled in later.
        assert_eq!(local.name(Resource::UploadsBucket), None);
    }

    #[test]
    fn local_settings_take_the_emulators_resources_and_the_token_issuers_pool() {
        let mut vars = vec![
            ("CASEBOOK_ENV", "local"),
            ("DATABASE_URL", DATABASE_URL),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ];
        vars.extend(TOKENS);
        let resources = Resources {
            bus_name: "casebook-local-events".into(),
            bus_arn: "arn".into(),
            diagnosis_queue_url: "http://q/diagnosis".into(),
            diagnosis_dlq_url: "http://q/diagnosis-dlq".into(),
            local_jobs_queue_url: "http://q/local-jobs".into(),
            local_jobs_dlq_url: "http://q/local-jobs-dlq".into(),
            uploads_bucket: "casebook-local-uploads".into(),
            artifacts_bucket: "casebook-local-artifacts".into(),
            audit_archive_bucket: "casebook-local-audit-archive".into(),
        };
        let local = settings(Process::Serve, &vars)
            .expect("local settings")
            .with_local_resources(&resources);
        for resource in Process::Serve.resources(false) {
            assert!(local.require(resource).is_ok(), "{resource:?}");
        }
        assert_eq!(local.name(Resource::UserPool), Some("us-east-1_pool"));
        assert_eq!(local.name(Resource::UserPoolClient), Some("client"));
        assert_eq!(
            local.name(Resource::UsagePlanPrefix),
            Some(LOCAL_USAGE_PLAN_PREFIX)
        );
        assert_eq!(local.name(Resource::ProjectorFunction), None);
    }

    #[test]
    fn every_function_starts_deployed_with_exactly_its_resources() {
        for process in FUNCTIONS {
            let in_lambda = true;
            let vars = deployed(process, in_lambda);
            let ready = settings(process, &vars)
                .unwrap_or_else(|err| panic!("{process} with all it needs: {err}"));
            assert_eq!(ready.environment, Environment::Aws);
            assert_eq!(ready.emulator_endpoint, None);
            for resource in process.resources(in_lambda) {
                assert_eq!(ready.require(resource).ok(), Some("deployed-name"));
            }
            // Each resource it needs, left out, stops it with that variable's name.
            for resource in process.resources(in_lambda) {
                let without: Vec<_> = vars
                    .iter()
                    .copied()
                    .filter(|(name, _)| *name != resource.variable())
                    .collect();
                assert_eq!(
                    missing(settings(process, &without).unwrap_err()),
                    [resource.variable()],
                    "{process}"
                );
            }
        }
    }

    #[test]
    fn casebook_serve_deployed_needs_every_resource_but_the_projector_function() {
        let vars = deployed(Process::Serve, false);
        assert!(settings(Process::Serve, &vars).is_ok());
        let err = settings(
            Process::Serve,
            &[
                ("CASEBOOK_ENV", "aws"),
                ("DATABASE_URL", DATABASE_URL),
                ("CASEBOOK_STAGE", "prod"),
                TOKENS[0],
                TOKENS[1],
            ],
        )
        .unwrap_err();
        let resources = Resource::ALL
            .into_iter()
            .filter(|resource| *resource != Resource::ProjectorFunction)
            .map(Resource::variable);
        let expected: Vec<_> = std::iter::once("CASEBOOK_VAULT_KMS_KEY")
            .chain(resources)
            .collect();
        assert_eq!(missing(err), expected);
    }

    #[test]
    fn a_deployed_function_names_a_missing_stage_and_a_local_one_is_local() {
        for process in FUNCTIONS {
            let vars: Vec<_> = deployed(process, true)
                .into_iter()
                .filter(|(name, _)| *name != "CASEBOOK_STAGE")
                .collect();
            let err = settings(process, &vars).unwrap_err();
            assert_eq!(missing(err), ["CASEBOOK_STAGE"], "{process:?}");
        }
        let local = [
            ("CASEBOOK_ENV", "local"),
            ("DATABASE_URL", DATABASE_URL),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ];
        let local = settings(Process::Worker, &local).expect("local settings");
        assert_eq!(local.stage, "local");
    }

    #[test]
    fn the_authorizer_and_projector_run_only_in_lambda() {
        for process in [Process::Authorizer, Process::Projector] {
            let vars: Vec<_> = deployed(process, true)
                .into_iter()
                .filter(|(name, _)| *name != "AWS_LAMBDA_RUNTIME_API")
                .collect();
            assert_eq!(
                missing(settings(process, &vars).unwrap_err()),
                ["AWS_LAMBDA_RUNTIME_API"],
                "{process}"
            );
        }
    }

    #[test]
    fn the_worker_outside_lambda_also_needs_its_queue() {
        let vars = deployed(Process::Worker, true);
        let outside: Vec<_> = vars
            .into_iter()
            .filter(|(name, _)| *name != "AWS_LAMBDA_RUNTIME_API")
            .collect();
        assert_eq!(
            missing(settings(Process::Worker, &outside).unwrap_err()),
            ["DIAGNOSIS_QUEUE_URL"]
        );
    }

    #[test]
    fn processes_serving_requests_need_the_token_settings() {
        for process in [Process::Api, Process::Authorizer] {
            let vars: Vec<_> = deployed(process, true)
                .into_iter()
                .filter(|(name, _)| !name.starts_with("CASEBOOK_JWT_"))
                .collect();
            assert_eq!(
                missing(settings(process, &vars).unwrap_err()),
                ["CASEBOOK_JWT_ISSUER", "CASEBOOK_JWT_AUDIENCE"],
                "{process}"
            );
        }
        // The worker verifies no token.
        let vars: Vec<_> = deployed(Process::Worker, true)
            .into_iter()
            .filter(|(name, _)| !name.starts_with("CASEBOOK_JWT_"))
            .collect();
        assert!(settings(Process::Worker, &vars).is_ok());
    }

    #[test]
    fn the_operator_needs_only_the_database() {
        let operator =
            settings(Process::Operator, &[("DATABASE_URL", DATABASE_URL)]).expect("settings");
        assert_eq!(operator.emulator_endpoint, None);
        assert_eq!(
            settings(Process::Operator, &[]).unwrap_err().to_string(),
            "missing environment variable DATABASE_URL"
        );
    }

    #[test]
    fn the_demo_refuses_to_run_deployed() {
        let err = settings(
            Process::Demo,
            &[("CASEBOOK_ENV", "aws"), ("DATABASE_URL", DATABASE_URL)],
        )
        .unwrap_err();
        assert!(matches!(err, SettingsError::LocalOnly(Process::Demo)));
    }

    #[test]
    fn invalid_values_are_refused_by_name() {
        let mut vars = deployed(Process::Api, true);
        vars.push(("UPLOAD_URL_EXPIRY_SECONDS", "0"));
        let err = settings(Process::Api, &vars).unwrap_err();
        assert!(
            err.to_string().contains("UPLOAD_URL_EXPIRY_SECONDS"),
            "{err}"
        );
        let mut vars = deployed(Process::Worker, true);
        vars.push(("CASEBOOK_AI_PROVIDER", "openai"));
        let err = settings(Process::Worker, &vars).unwrap_err();
        assert!(err.to_string().contains("CASEBOOK_AI_PROVIDER"), "{err}");
        let mut vars = deployed(Process::Scheduler, true);
        vars.push(("LAG_ALERT_SECONDS", "soon"));
        let err = settings(Process::Scheduler, &vars).unwrap_err();
        assert!(err.to_string().contains("LAG_ALERT_SECONDS"), "{err}");
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let mut vars = deployed(Process::Projector, true);
        // Credentials are the SDK's, never read into the settings.
        vars.push(("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-secret"));
        vars.push(("AWS_SESSION_TOKEN", "session-secret"));
        let printed = format!(
            "{:?}",
            settings(Process::Projector, &vars).expect("settings")
        );
        assert!(printed.contains("db.internal"), "{printed}");
        for secret in ["hunter2", "wJalrXUtnFEMI-secret", "session-secret"] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }
}
