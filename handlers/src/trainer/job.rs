//! A message of the `local-jobs` queue read as a job: checked against its contract
//! (`docs/schemas/local-jobs/v1.schema.json`) and the trainer's bucket, and the keys its
//! model goes to.

use std::collections::HashMap;

use casebook_domain::ids::TenantId;
use serde::Deserialize;

use super::{METRICS_FILE, MODEL_FILE};
use crate::relay::{FinetuneJobMessage, FINETUNE_EXPORTED};

/// Why a message is no job this trainer can take: it is left for the dead-letter queue.
#[derive(Debug, thiserror::Error)]
pub enum MalformedJob {
    /// The message's `type` attribute names something else.
    #[error("message type {0:?} is not {expected}", expected = FINETUNE_EXPORTED)]
    Type(String),
    /// The body does not parse as a job.
    #[error("the body is no fine-tune job: {0}")]
    Body(#[from] serde_json::Error),
    /// A version of the schema this trainer does not know (a newer trainer may).
    #[error("schema version {0} is not {known}", known = FinetuneJobMessage::SCHEMA_VERSION)]
    Version(u32),
    /// The tenant id is not a lowercase hyphenated UUID.
    #[error("tenant id {0} is not a lowercase hyphenated UUID")]
    TenantId(serde_json::Value),
    /// The event id is not `Tenant/<tenant_id>/<sequence>` of the job's tenant.
    #[error("event id {0:?} is not Tenant/<tenant_id>/<sequence>")]
    EventId(String),
    /// The export's key is not a JSONL file under the tenant's `finetune/` prefix.
    #[error("key {0:?} is not <tenant_id>/finetune/<name>.jsonl")]
    Key(String),
    /// The export is in another bucket than the trainer's.
    #[error("bucket {0:?} is not the trainer's")]
    Bucket(String),
    /// The export claims no example.
    #[error("a job of no example")]
    NoExamples,
}

/// A job as the trainer takes it: the message, checked against its contract and the
/// trainer's bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinetuneJob {
    message: FinetuneJobMessage,
    tenant: TenantId,
    sequence: i64,
}

impl FinetuneJob {
    /// Reads a message of the `local-jobs` queue: its `type` attribute (a message without one
    /// is taken as a job) and its body, which must be a job of schema version 1 whose export
    /// lies under its tenant's `finetune/` prefix in `bucket`. What the schema file rejects,
    /// this rejects too (a test holds them to it).
    pub fn parse(
        body: &str,
        attributes: &HashMap<String, String>,
        bucket: &str,
    ) -> Result<Self, MalformedJob> {
        if let Some(kind) = attributes.get("type") {
            if kind != FINETUNE_EXPORTED {
                return Err(MalformedJob::Type(kind.clone()));
            }
        }
        let raw: serde_json::Value = serde_json::from_str(body)?;
        let message = FinetuneJobMessage::deserialize(&raw)?;
        if message.schema_version != FinetuneJobMessage::SCHEMA_VERSION {
            return Err(MalformedJob::Version(message.schema_version));
        }
        let tenant = TenantId::from_uuid(message.tenant_id);
        // serde takes a UUID in any of its spellings; the keys and ids spell it one way.
        if raw["tenant_id"] != tenant.to_string().as_str() {
            return Err(MalformedJob::TenantId(raw["tenant_id"].clone()));
        }
        let sequence = message
            .event_id
            .strip_prefix(&format!("Tenant/{tenant}/"))
            .filter(|sequence| {
                !sequence.starts_with('0') && sequence.bytes().all(|byte| byte.is_ascii_digit())
            })
            .and_then(|sequence| sequence.parse::<i64>().ok())
            .ok_or_else(|| MalformedJob::EventId(message.event_id.clone()))?;
        let file = message
            .key
            .strip_prefix(&format!("{tenant}/finetune/"))
            .and_then(|file| file.strip_suffix(".jsonl"))
            .ok_or_else(|| MalformedJob::Key(message.key.clone()))?;
        if file.is_empty() || file.contains('/') {
            return Err(MalformedJob::Key(message.key.clone()));
        }
        if message.bucket != bucket {
            return Err(MalformedJob::Bucket(message.bucket.clone()));
        }
        if message.examples == 0 {
            return Err(MalformedJob::NoExamples);
        }
        Ok(Self {
            message,
            tenant,
            sequence,
        })
    }

    /// The message as sent.
    pub fn message(&self) -> &FinetuneJobMessage {
        &self.message
    }

    /// The job's tenant.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The job's id, `finetune-<sequence>` (the `FinetuneExported` event's sequence on its
    /// tenant's stream): the same on every delivery, unique within the tenant.
    pub fn id(&self) -> String {
        format!("finetune-{}", self.sequence)
    }

    /// Where the job's model goes: `<tenant>/models/<job id>/model.gguf`. Stable, so a retry
    /// overwrites rather than adds a model.
    pub fn artifact_key(&self) -> String {
        self.object_key(MODEL_FILE)
    }

    /// Where the command's metrics go, beside the model.
    pub fn metrics_key(&self) -> String {
        self.object_key(METRICS_FILE)
    }

    fn object_key(&self, file: &str) -> String {
        format!("{}/models/{}/{file}", self.tenant, self.id())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};
    use uuid::Uuid;

    use super::*;
    use crate::relay::local_jobs_v1_schema;

    const BUCKET: &str = "casebook-dev-artifacts";

    fn job(tenant: Uuid) -> Value {
        json!({
            "schema_version": 1,
            "event_id": format!("Tenant/{tenant}/12"),
            "tenant_id": tenant,
            "bucket": BUCKET,
            "key": format!("{tenant}/finetune/2026-11-23.jsonl"),
            "examples": 7,
        })
    }

    fn parse(body: &Value) -> Result<FinetuneJob, MalformedJob> {
        FinetuneJob::parse(&body.to_string(), &HashMap::new(), BUCKET)
    }

    #[test]
    fn the_trainer_takes_what_the_schema_accepts_and_refuses_what_it_rejects() {
        let schema = local_jobs_v1_schema();
        let tenant = Uuid::new_v4();
        let other = Uuid::new_v4();
        let accepted = [
            job(tenant),
            // Sent before the version existed.
            {
                let mut body = job(tenant);
                body.as_object_mut().unwrap().remove("schema_version");
                body
            },
            // A field added within version 1 is ignored.
            {
                let mut body = job(tenant);
                body["priority"] = json!("low");
                body
            },
        ];
        for body in &accepted {
            assert!(schema.is_valid(body), "schema rejects {body}");
            assert!(parse(body).is_ok(), "trainer rejects {body}");
        }
        let change = |field: &str, value: Value| {
            let mut body = job(tenant);
            body[field] = value;
            body
        };
        let without = |field: &str| {
            let mut body = job(tenant);
            body.as_object_mut().unwrap().remove(field);
            body
        };
        let rejected = [
            json!("not an object"),
            without("event_id"),
            without("tenant_id"),
            without("bucket"),
            without("key"),
            without("examples"),
            change("schema_version", json!(2)),
            change("schema_version", json!("1")),
            change("tenant_id", json!("acme")),
            change("tenant_id", json!(tenant.to_string().to_uppercase())),
            change("tenant_id", json!(tenant.simple().to_string())),
            change("event_id", json!(format!("Diagnosis/{tenant}/12"))),
            change("event_id", json!(format!("Tenant/{tenant}/0"))),
            change("event_id", json!(format!("Tenant/{tenant}/twelve"))),
            change("key", json!(format!("{tenant}/uploads/contract.pdf"))),
            change("key", json!(format!("{tenant}/finetune/2026-11-23.csv"))),
            change("key", json!(format!("{tenant}/finetune/a/b.jsonl"))),
            change("key", json!(format!("../{tenant}/finetune/x.jsonl"))),
            change("examples", json!(0)),
            change("examples", json!(-1)),
            change("examples", json!(4_294_967_296_u64)),
            change("examples", json!("7")),
        ];
        for body in &rejected {
            assert!(!schema.is_valid(body), "schema accepts {body}");
            assert!(parse(body).is_err(), "trainer accepts {body}");
        }
        // Beyond the schema: the job's own tenant and the trainer's bucket.
        for body in [
            change("event_id", json!(format!("Tenant/{other}/12"))),
            change("key", json!(format!("{other}/finetune/2026-11-23.jsonl"))),
            change("bucket", json!("someone-elses-bucket")),
        ] {
            assert!(schema.is_valid(&body), "{body}");
            assert!(parse(&body).is_err(), "trainer accepts {body}");
        }
    }

    #[test]
    fn a_message_of_another_type_is_not_a_job() {
        let body = job(Uuid::new_v4()).to_string();
        let typed = |kind: &str| HashMap::from([("type".to_owned(), kind.to_owned())]);
        assert!(FinetuneJob::parse(&body, &typed(FINETUNE_EXPORTED), BUCKET).is_ok());
        assert!(matches!(
            FinetuneJob::parse(&body, &typed("DiagnosisRequested"), BUCKET),
            Err(MalformedJob::Type(_))
        ));
    }

    #[test]
    fn a_jobs_model_goes_under_its_tenants_models_prefix_by_its_events_sequence() {
        let tenant = Uuid::new_v4();
        let job = parse(&job(tenant)).unwrap();
        assert_eq!(job.id(), "finetune-12");
        assert_eq!(
            job.artifact_key(),
            format!("{tenant}/models/finetune-12/model.gguf")
        );
        assert_eq!(
            job.metrics_key(),
            format!("{tenant}/models/finetune-12/metrics.json")
        );
    }
}
