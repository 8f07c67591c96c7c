//! The relay: a checkpointed subscription that publishes every domain event to the
//! EventBridge bus and sends the events that start async work to SQS
//! (`DiagnosisRequested` and `DiagnosisResumed` → the `diagnosis` queue; `FinetuneExported`
//! → the `local-jobs` queue, with the export's S3 location, for the practice's own trainer).
//!
//! Delivery is at least once: the runner checkpoints after [`Relay::apply`] returns, so a
//! crash between publishing and checkpointing publishes the batch again. Every message
//! carries the stable [`event_id`] (`<Aggregate>/<id>/<sequence>`) and the tenant, and
//! consumers deduplicate on it (see [`crate::worker`]).
//!
//! Locally the relay wakes on the events table's `NOTIFY`. In Lambda nothing listens, so the
//! API nudges the projector function (which runs the relay) after each accepted command
//! through [`RelayNudge`] ([`ProjectorNudge`]: an asynchronous invoke), and the projector's
//! schedule is the safety net when a nudge is lost.
//!
//! Its settings ([`crate::settings`]): `EVENT_BUS_NAME`, `EVENT_SOURCE` (default `casebook`),
//! `DIAGNOSIS_QUEUE_URL` — the projector function's contract in infra/README.md — and
//! `LOCAL_JOBS_QUEUE_URL` ([`Relay::with_local_jobs_queue`]); against the emulator, the
//! resources [`crate::compose`] creates.

use std::sync::Arc;

use casebook_adapters::aws::eventbridge::{BusEntry, EventBus};
use casebook_adapters::aws::lambda::Function;
use casebook_adapters::aws::sqs::Queue;
use casebook_adapters::aws::AwsError;
use casebook_adapters::aws::SdkConfig;
use casebook_adapters::event_store::EventStore;
use casebook_domain::diagnosis::DiagnosisEvent;
use casebook_domain::policy::should_auto_approve;
use casebook_domain::tenant::{Tenant, TenantEvent};
use casebook_domain::upcast::upcasters;
use casebook_projections::error::ApplyError;
use casebook_projections::log::RecordedEvent;
use casebook_projections::subscription::Subscription;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The `type` message attribute of a diagnosis request on the `diagnosis` queue.
pub const DIAGNOSIS_REQUESTED: &str = "DiagnosisRequested";
/// The `type` message attribute of a deferred diagnosis taken up again, on the `diagnosis`
/// queue: the worker handles it as a request.
pub const DIAGNOSIS_RESUMED: &str = "DiagnosisResumed";
/// The `type` message attribute of a fine-tune job on the `local-jobs` queue.
pub const FINETUNE_EXPORTED: &str = "FinetuneExported";

/// The stable id of an event: `<Aggregate>/<id>/<sequence>`.
pub fn event_id(event: &RecordedEvent) -> String {
    format!(
        "{}/{}/{}",
        event.aggregate_type, event.aggregate_id, event.sequence
    )
}

/// Where the relay publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// `EVENT_BUS_NAME`.
    pub bus_name: String,
    /// `EVENT_SOURCE`, the entries' `Source` (`casebook`).
    pub source: String,
    /// `DIAGNOSIS_QUEUE_URL`.
    pub diagnosis_queue_url: String,
}

/// Wakes the relay after a commit where no process listens for `NOTIFY` (Lambda).
#[async_trait::async_trait]
pub trait RelayNudge: Send + Sync {
    /// Best effort: a failure is logged and the projector's schedule catches up, so a
    /// command that committed never fails because of its nudge.
    async fn nudge(&self);
}

/// Nudges by invoking the projector function asynchronously (`PROJECTOR_FUNCTION_NAME`);
/// the API answers without waiting for the projector to run.
pub struct ProjectorNudge {
    function: Function,
}

impl ProjectorNudge {
    /// Nudges the function `name`.
    pub fn new(shared: &SdkConfig, name: &str) -> Self {
        Self {
            function: Function::new(shared, name),
        }
    }
}

#[async_trait::async_trait]
impl RelayNudge for ProjectorNudge {
    async fn nudge(&self) {
        if let Err(err) = self.function.invoke_async(br#"{"source":"api"}"#).await {
            tracing::warn!(
                function = self.function.name(),
                error = ?err,
                "cannot nudge the projector; its schedule will catch up"
            );
        }
    }
}

/// The body of a message on the `diagnosis` queue (its message attributes repeat
/// `event_id`, `tenant_id` and `type`, and add the event's `request_id` and `correlation_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosisMessage {
    /// The id of the event that asks for the diagnosis (`DiagnosisRequested`, or
    /// `DiagnosisResumed` after a deferral).
    pub event_id: String,
    /// The tenant.
    pub tenant_id: Uuid,
    /// The diagnosis (the event's aggregate id).
    pub diagnosis_id: Uuid,
}

/// The body of a fine-tune job on the `local-jobs` queue (its message attributes repeat
/// `event_id`, `tenant_id` and `type`): the exported file for the practice's trainer.
///
/// Its contract is `docs/schemas/local-jobs/v<N>.schema.json` for `schema_version` N; a test
/// checks this type's messages against the file. Fields may be added within a version
/// (consumers ignore what they do not know); anything else takes a new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinetuneJobMessage {
    /// The version of the body's schema: [`Self::SCHEMA_VERSION`] when sent. A body without
    /// one, sent before the field existed, is version 1.
    #[serde(default = "FinetuneJobMessage::first_version")]
    pub schema_version: u32,
    /// The `FinetuneExported` event's id.
    pub event_id: String,
    /// The tenant.
    pub tenant_id: Uuid,
    /// The artifacts bucket.
    pub bucket: String,
    /// The JSONL file's key, under `<tenant>/finetune/`.
    pub key: String,
    /// Chat examples in the file as it was written; an erasure since may have left fewer.
    pub examples: u32,
}

impl FinetuneJobMessage {
    /// The schema version the relay sends.
    pub const SCHEMA_VERSION: u32 = 1;

    fn first_version() -> u32 {
        1
    }

    /// The job of a recorded `FinetuneExported` event.
    pub fn for_event(event: &RecordedEvent) -> Result<Self, ApplyError> {
        let TenantEvent::FinetuneExported { export } = event
            .payload::<TenantEvent>()
            .map_err(|err| ApplyError::permanent_from("cannot decode FinetuneExported", err))?
        else {
            return Err(ApplyError::permanent(
                "FinetuneExported decodes as another event",
            ));
        };
        Ok(Self {
            schema_version: Self::SCHEMA_VERSION,
            event_id: event_id(event),
            tenant_id: event.tenant_id,
            bucket: export.bucket,
            key: export.key,
            examples: export.examples,
        })
    }
}

/// A hook run after publishing a batch and before the runner checkpoints it (tests
/// simulate a crash there by returning an error).
pub type AfterPublish = Arc<dyn Fn(&[RecordedEvent]) -> Result<(), ApplyError> + Send + Sync>;

/// The relay subscription; see the module documentation. Cheap to clone (SDK clients and a
/// pool handle).
#[derive(Clone)]
pub struct Relay {
    bus: EventBus,
    diagnosis_queue: Queue,
    local_jobs_queue: Option<Queue>,
    source: String,
    tenants: Option<EventStore<Tenant>>,
    after_publish: Option<AfterPublish>,
}

impl Relay {
    /// The subscription's name in `subscriptions`.
    pub const NAME: &'static str = "relay";

    /// A relay publishing per `config` with clients from `shared`. `app_pool` (the
    /// application role) is read for each proposal's tenant threshold (`auto_resolve`).
    pub fn new(shared: &SdkConfig, config: &RelayConfig, app_pool: PgPool) -> Self {
        Self {
            bus: EventBus::new(shared, &config.bus_name),
            diagnosis_queue: Queue::new(shared, &config.diagnosis_queue_url),
            local_jobs_queue: None,
            source: config.source.clone(),
            tenants: Some(EventStore::new(app_pool, upcasters())),
            after_publish: None,
        }
    }

    /// Sends fine-tune jobs to the queue at `url` (`LOCAL_JOBS_QUEUE_URL`). Without one, a
    /// `FinetuneExported` event stops the relay rather than being dropped.
    pub fn with_local_jobs_queue(mut self, shared: &SdkConfig, url: &str) -> Self {
        self.local_jobs_queue = Some(Queue::new(shared, url));
        self
    }

    /// Runs `hook` after each published batch, before the checkpoint.
    pub fn with_after_publish(mut self, hook: AfterPublish) -> Self {
        self.after_publish = Some(hook);
        self
    }

    /// Whether a `DiagnosisProposed` event is at or above its tenant's auto-resolve threshold.
    async fn auto_resolve(&self, event: &RecordedEvent) -> Result<Option<bool>, ApplyError> {
        if event.event_type != "DiagnosisProposed" {
            return Ok(None);
        }
        let Ok(DiagnosisEvent::DiagnosisProposed { confidence, .. }) =
            event.payload::<DiagnosisEvent>()
        else {
            // Another version's shape: let the rule not fire rather than stop the relay.
            return Ok(Some(false));
        };
        let Some(tenants) = &self.tenants else {
            return Ok(Some(false));
        };
        let tenant = cqrs_es::EventStore::load_aggregate(
            &tenants.for_tenant(event.tenant_id),
            &event.tenant_id.to_string(),
        )
        .await
        .map_err(|err| ApplyError::Transient(Box::new(err)))?
        .into_state();
        Ok(Some(should_auto_approve(
            tenant.auto_resolve_threshold(),
            confidence,
            tenant.is_active(),
        )))
    }

    /// The bus entry for `event`.
    pub fn bus_entry(&self, event: &RecordedEvent, auto_resolve: Option<bool>) -> BusEntry {
        bus_entry(&self.source, event, auto_resolve)
    }
}

#[derive(Serialize)]
struct Detail<'a> {
    event_id: String,
    tenant_id: Uuid,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    sequence: i64,
    event_type: &'a str,
    event_version: &'a str,
    global_position: i64,
    recorded_at: chrono::DateTime<chrono::Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auto_resolve: Option<bool>,
    payload: &'a RawValue,
    metadata: &'a RawValue,
}

/// The bus entry for `event`: `Source` = `source`, `DetailType` = the event type, and a
/// detail with the event id, tenant, ids, payload and metadata (and `auto_resolve` for a
/// proposal).
pub fn bus_entry(source: &str, event: &RecordedEvent, auto_resolve: Option<bool>) -> BusEntry {
    let detail = Detail {
        event_id: event_id(event),
        tenant_id: event.tenant_id,
        aggregate_type: &event.aggregate_type,
        aggregate_id: &event.aggregate_id,
        sequence: event.sequence,
        event_type: &event.event_type,
        event_version: &event.event_version,
        global_position: event.global_position(),
        recorded_at: event.recorded_at,
        auto_resolve,
        payload: &event.payload,
        metadata: &event.metadata,
    };
    BusEntry {
        source: source.to_owned(),
        detail_type: event.event_type.clone(),
        // Serializing plain fields and valid raw JSON cannot fail.
        detail: serde_json::to_string(&detail).unwrap_or_default(),
    }
}

/// Sends `message` with the event's id, tenant and `kind` as message attributes.
async fn send(
    queue: &Queue,
    event: &RecordedEvent,
    kind: &str,
    message: &impl Serialize,
) -> Result<(), ApplyError> {
    let body = serde_json::to_string(message)
        .map_err(|err| ApplyError::permanent_from("cannot encode", err))?;
    let id = event_id(event);
    let tenant = event.tenant_id.to_string();
    let chain = Chain::of(event);
    queue
        .send(
            &body,
            &[
                ("event_id", id.as_str()),
                ("tenant_id", tenant.as_str()),
                ("type", kind),
                ("request_id", chain.request_id.as_str()),
                ("correlation_id", chain.correlation_id.as_str()),
            ],
        )
        .await
        .map_err(|err| publish_failed("queue", err))?;
    Ok(())
}

/// The request and the chain an event belongs to, from its metadata: a message carries them
/// so the consumer's log lines join the request's.
#[derive(Debug, Default, Deserialize)]
struct Chain {
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    correlation_id: String,
}

impl Chain {
    fn of(event: &RecordedEvent) -> Self {
        // Metadata without them (none is written so) leaves the attributes empty rather
        // than holding the event back.
        serde_json::from_str(event.metadata.get()).unwrap_or_default()
    }
}

/// A publish `target` refused: counted (`RelayPublishFailures`), then retried or fatal.
fn publish_failed(target: &'static str, err: AwsError) -> ApplyError {
    metrics::counter!("RelayPublishFailures", "Target" => target).increment(1);
    if err.is_retryable() {
        ApplyError::Transient(Box::new(err))
    } else {
        ApplyError::permanent_from("cannot publish", err)
    }
}

#[async_trait::async_trait]
impl Subscription for Relay {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn apply(
        &mut self,
        _conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ApplyError> {
        let mut entries = Vec::with_capacity(events.len());
        for event in events {
            let auto_resolve = self.auto_resolve(event).await?;
            entries.push(self.bus_entry(event, auto_resolve));
            let kind = event.event_type.as_str();
            if kind == DIAGNOSIS_REQUESTED || kind == DIAGNOSIS_RESUMED {
                let diagnosis_id: Uuid = event.aggregate_id.parse().map_err(|_| {
                    ApplyError::permanent(format!(
                        "diagnosis id {:?} is not a UUID",
                        event.aggregate_id
                    ))
                })?;
                let message = DiagnosisMessage {
                    event_id: event_id(event),
                    tenant_id: event.tenant_id,
                    diagnosis_id,
                };
                send(&self.diagnosis_queue, event, kind, &message).await?;
            }
            if event.event_type == FINETUNE_EXPORTED {
                let Some(queue) = &self.local_jobs_queue else {
                    return Err(ApplyError::permanent(
                        "FinetuneExported needs the local-jobs queue (LOCAL_JOBS_QUEUE_URL)",
                    ));
                };
                let message = FinetuneJobMessage::for_event(event)?;
                send(queue, event, FINETUNE_EXPORTED, &message).await?;
            }
        }
        self.bus
            .put(&entries)
            .await
            .map_err(|err| publish_failed("bus", err))?;
        if let Some(hook) = &self.after_publish {
            hook(events)?;
        }
        Ok(())
    }
}

/// The contract fine-tune jobs are published under (`docs/schemas/local-jobs/v1.schema.json`),
/// for the tests of what the relay sends and what the trainer takes.
#[cfg(test)]
pub(crate) fn local_jobs_v1_schema() -> jsonschema::Validator {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/schemas/local-jobs/v1.schema.json"))
            .expect("the schema is JSON");
    jsonschema::meta::validate(&schema).expect("a valid JSON Schema");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema compiles")
}

#[cfg(test)]
mod tests {
    use casebook_domain::finetune::{FinetuneExport, LogPosition};
    use casebook_projections::log::Checkpoint;
    use serde_json::json;

    use super::*;

    /// A `FinetuneExported` event as the log reader hands it to the relay.
    fn recorded_export(tenant: Uuid) -> RecordedEvent {
        let export = TenantEvent::FinetuneExported {
            export: FinetuneExport {
                bucket: "casebook-dev-artifacts".to_owned(),
                key: format!("{tenant}/finetune/2026-11-23.jsonl"),
                exported_on: chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
                examples: 7,
                after: None,
                up_to: LogPosition {
                    transaction_id: 1,
                    global_position: 1,
                },
            },
        };
        RecordedEvent {
            checkpoint: Checkpoint {
                transaction_id: 10,
                global_position: 42,
            },
            tenant_id: tenant,
            aggregate_type: "Tenant".to_owned(),
            aggregate_id: tenant.to_string(),
            sequence: 5,
            event_type: FINETUNE_EXPORTED.to_owned(),
            event_version: "1".to_owned(),
            payload: serde_json::value::to_raw_value(&export).unwrap(),
            opened: None,
            redacted: false,
            metadata: serde_json::value::to_raw_value(&json!({})).unwrap(),
            recorded_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn the_relays_fine_tune_job_validates_against_the_v1_schema_and_a_malformed_one_does_not() {
        let schema = local_jobs_v1_schema();
        let tenant = Uuid::new_v4();
        let job = FinetuneJobMessage::for_event(&recorded_export(tenant)).unwrap();
        let body = serde_json::to_value(&job).unwrap();
        let errors: Vec<String> = schema.iter_errors(&body).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{body}: {errors:?}");
        assert_eq!(body["schema_version"], 1);
        assert_eq!(body["event_id"], format!("Tenant/{tenant}/5"));

        let mut malformed = body.clone();
        malformed["key"] = json!(format!("{tenant}/uploads/secret.pdf"));
        assert!(!schema.is_valid(&malformed), "{malformed}");
    }

    #[test]
    fn a_job_sent_before_the_schema_version_existed_reads_as_version_1() {
        let tenant = Uuid::new_v4();
        let body = json!({
            "event_id": format!("Tenant/{tenant}/5"),
            "tenant_id": tenant,
            "bucket": "casebook-dev-artifacts",
            "key": format!("{tenant}/finetune/2026-11-23.jsonl"),
            "examples": 7,
        });
        assert!(local_jobs_v1_schema().is_valid(&body));
        let job: FinetuneJobMessage = serde_json::from_value(body).unwrap();
        assert_eq!(job.schema_version, 1);
    }
}
