//! The subscriptions' parts, and the Cognito administrator they keep members' accounts with:
//! built with the `cognito` feature (the projector function, `casebook serve`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use casebook_adapters::aws::apigateway::UsagePlans;
use casebook_adapters::aws::s3::TenantBucket;
use casebook_adapters::cognito::CognitoAdmin;
use casebook_adapters::people::{CognitoPeople, PrintedMailbox};
use casebook_adapters::postgres::DbRole;
use casebook_application::budget::{BudgetResumption, Resumption};
use casebook_application::business::{BusinessEvents, BusinessLog};
use casebook_application::erasure::ErasurePurge;
use casebook_application::reactions::{People, UsageKeyAssignment};
use casebook_application::service::Service;
use casebook_domain::ports::Embedder;
use casebook_projections::projection::ProjectionId;
use casebook_projections::runner::Runner;
use casebook_projections::tlog::{Integrator, LogKey};
use sqlx::PgPool;

use crate::metrics::EmfBusinessLog;
use crate::reactions::ReactionSubscription;
use crate::relay::{Relay, RelayConfig};
use crate::settings::{LogKeySource, Resource};

use super::{
    aws_error, erasure_purge, export_files, projector, resumption, service, BuildError, Composition,
};

impl Composition {
    /// An administrator's Cognito client: the emulator's locally.
    pub fn cognito(&self) -> Result<CognitoAdmin, BuildError> {
        CognitoAdmin::new(&self.aws, self.settings.emulator_endpoint.clone()).map_err(aws_error)
    }

    /// Every subscription's parts: the projections, the reactions, the judgment index (with
    /// the worker's embedder), the relay to the bus and queues, each tenant's usage key,
    /// each member's account in the user pool, and an erased customer's uploads and exports.
    pub async fn subscriptions(&self) -> Result<Subscriptions, BuildError> {
        let app_pool = self.app_pool().await?;
        let relay = Relay::new(
            &self.aws,
            &RelayConfig {
                bus_name: self.settings.require(Resource::EventBus)?.to_owned(),
                source: self.settings.event_source.clone(),
                diagnosis_queue_url: self.settings.require(Resource::DiagnosisQueue)?.to_owned(),
            },
            app_pool.clone(),
        )
        .with_local_jobs_queue(&self.aws, self.settings.require(Resource::LocalJobsQueue)?);
        let cognito = self.cognito()?;
        let pool = cognito.existing_pool(
            self.settings.require(Resource::UserPool)?,
            self.settings.require(Resource::UserPoolClient)?,
        );
        // The projections, the reactions, the judgment index, the relay, the usage keys, the
        // people, the business events, the budget resumption and the erasure purge, each with
        // a connection to read and one to commit, and two spare (the purge reads the log's
        // decisions on one of them).
        let subscriptions = ProjectionId::ALL.len() + 8;
        let projector_pool = self
            .connect(DbRole::Projector, (2 * subscriptions + 2) as u32)
            .await?;
        let erasure_purge = erasure_purge(
            app_pool.clone(),
            self.bucket(Resource::UploadsBucket)?,
            export_files(
                app_pool.clone(),
                projector_pool.clone(),
                self.bucket(Resource::ArtifactsBucket)?,
            ),
        );
        Ok(Subscriptions {
            integrator: self.integrator().await?,
            pool: projector_pool,
            service: service(app_pool.clone()),
            resumption: resumption(app_pool),
            erasure_purge,
            embedder: self.providers().await.embedder.clone(),
            relay,
            usage_plans: self.usage_plans()?,
            people: Arc::new(CognitoPeople::new(cognito, pool)),
            business_log: Arc::new(EmfBusinessLog::stdout(&self.settings.stage)),
        })
    }

    /// The verifiable logs' integrator, signing with the key `CASEBOOK_LOG_KEY_SECRET` or
    /// `CASEBOOK_LOG_KEY_FILE` holds and copying each checkpoint to the audit-archive bucket;
    /// `None` without a key (and said so, once).
    async fn integrator(&self) -> Result<Option<Integrator>, BuildError> {
        let Some(source) = &self.settings.log_key else {
            tracing::warn!("no CASEBOOK_LOG_KEY_FILE or _SECRET: the verifiable logs sign nothing");
            return Ok(None);
        };
        let (place, private) = match source {
            LogKeySource::File(file) => (
                file.display().to_string(),
                std::fs::read_to_string(file).map_err(|err| err.to_string()),
            ),
            LogKeySource::Secret(secret) => (secret.clone(), self.secret(secret).await),
        };
        let private = private.map_err(|reason| BuildError::LogKey {
            place: place.clone(),
            reason,
        })?;
        if private.trim() == UNSET_LOG_KEY {
            tracing::warn!(
                secret = place,
                "the log key is not set yet: the verifiable logs sign nothing"
            );
            return Ok(None);
        }
        let key = LogKey::from_private(&private).map_err(|err| BuildError::LogKey {
            place,
            reason: err.to_string(),
        })?;
        tracing::info!(key = key.name(), "the verifiable logs sign with this key");
        let archive = TenantBucket::new(
            &self.aws,
            self.settings.require(Resource::AuditArchiveBucket)?,
        );
        Ok(Some(
            Integrator::new(Arc::new(key)).with_archive(Arc::new(archive)),
        ))
    }

    /// The secret's value, or why not.
    #[cfg(feature = "secrets")]
    async fn secret(&self, id: &str) -> Result<String, String> {
        use std::error::Error as _;
        casebook_adapters::aws::secrets::secret_string(&self.aws, id)
            .await
            .map_err(|err| match err.source() {
                Some(cause) => format!("{err}: {cause}"),
                None => err.to_string(),
            })
    }

    #[cfg(not(feature = "secrets"))]
    async fn secret(&self, _: &str) -> Result<String, String> {
        Err("this build lacks the `secrets` feature that reads Secrets Manager".into())
    }
}

/// The deployed secret's value until the operator puts a key in it (`infra/template.yaml`):
/// the projector then runs without signing, rather than not at all.
pub const UNSET_LOG_KEY: &str = "unset";

/// How often `casebook serve` signs the verifiable logs' new rows: an auditor's checkpoint is
/// at most this much behind the audit trail (deployed, the projector signs after each drain).
pub const INTEGRATION_INTERVAL: Duration = Duration::from_secs(1);

/// The parts of every subscription, cheap to clone: the projector function makes a runner of
/// them per invocation, `casebook serve` one for its life.
#[derive(Clone)]
pub struct Subscriptions {
    integrator: Option<Integrator>,
    pool: PgPool,
    service: Service,
    resumption: Resumption,
    embedder: Arc<dyn Embedder>,
    relay: Relay,
    usage_plans: UsagePlans,
    people: Arc<CognitoPeople>,
    business_log: Arc<dyn BusinessLog>,
    erasure_purge: ErasurePurge,
}

impl Subscriptions {
    /// A runner of them all.
    pub fn runner(&self) -> Runner {
        projector(
            self.pool.clone(),
            self.service.clone(),
            self.embedder.clone(),
            Some(self.relay.clone()),
        )
        .with_subscription(ReactionSubscription::new(UsageKeyAssignment::new(
            self.service.clone(),
            Arc::new(self.usage_plans.clone()),
        )))
        // Deployed, Cognito mails the invitations itself and nothing reaches this mailbox;
        // the emulator mails nothing, so locally the invitation is logged.
        .with_subscription(ReactionSubscription::new(People::new(
            self.service.clone(),
            self.people.clone(),
            Arc::new(PrintedMailbox),
        )))
        .with_subscription(ReactionSubscription::new(BusinessEvents::new(
            self.business_log.clone(),
            self.service.stores().diagnoses.clone(),
        )))
        .with_subscription(ReactionSubscription::new(BudgetResumption::new(
            self.resumption.clone(),
        )))
        .with_subscription(ReactionSubscription::new(self.erasure_purge.clone()))
    }

    /// Integrates every tenant's new audit and access rows into its verifiable logs and signs
    /// the trees that grew; a failure is logged, and the next pass starts over from the last
    /// checkpoint.
    pub async fn integrate(&self) {
        let Some(integrator) = &self.integrator else {
            return;
        };
        match integrator.integrate_all(&self.pool).await {
            Ok(signed) if !signed.is_empty() => {
                let rows: u64 = signed.iter().map(|step| step.to - step.from).sum();
                tracing::debug!(
                    checkpoints = signed.len(),
                    rows,
                    "verifiable logs integrated"
                );
            }
            Ok(_) => {}
            Err(err) => tracing::error!(error = %err, "integrating the verifiable logs failed"),
        }
    }

    /// [`integrate`](Self::integrate)s every `INTEGRATION_INTERVAL` until `stop` resolves:
    /// `casebook serve`'s checkpoints.
    pub async fn integrate_until(&self, stop: impl Future<Output = ()>) {
        if self.integrator.is_none() {
            return;
        }
        tokio::pin!(stop);
        let mut every = tokio::time::interval(INTEGRATION_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = every.tick() => self.integrate().await,
            }
        }
    }

    /// The same parts, telling business events to `log` (tests read them back).
    pub fn with_business_log(self, log: Arc<dyn BusinessLog>) -> Self {
        Self {
            business_log: log,
            ..self
        }
    }
}
