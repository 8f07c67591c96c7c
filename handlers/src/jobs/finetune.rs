//! The weekly fine-tune export: per tenant, the approved and amended decisions after the
//! tenant's last recorded export, as chat examples (`{"messages": [user, assistant]}`, one
//! per line) to `<tenant>/finetune/<date>.jsonl` in the artifacts bucket, then recorded on
//! the tenant as `FinetuneExported`.
//!
//! The range comes from history: the export starts where the tenant's last
//! `FinetuneExported` ended, and the tenant refuses a record that does not (a concurrent
//! run) or a second one the same day (which would overwrite the file). The file is written
//! before the event: a crash between the two leaves a file the next run overwrites with the
//! same decisions and more, never a recorded export without its file.

use casebook_adapters::aws::s3::TenantBucket;
use casebook_adapters::event_store::EventStore;
use casebook_domain::actor::Actor;
use casebook_domain::decision::{DecisionEvent, Verdict};
use casebook_domain::finetune::{FinetuneExport, LogPosition};
use casebook_domain::ids::{DiagnosisId, TenantId};
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::tenant::{Tenant, TenantCommand};
use casebook_domain::upcast::upcasters;
use casebook_projections::log::{Checkpoint, LogReader, Scope};
use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::{push_line, tenants, JobError};
use casebook_application::service::{RequestContext, Service};

/// One tenant's export file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantExport {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The object key.
    pub key: String,
    /// Examples written.
    pub examples: u32,
}

/// One line of the file: a chat example in the common fine-tuning shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatExample {
    /// The customer's query, then the approved (or amended) diagnosis.
    pub messages: Vec<ChatMessage>,
}

/// One message of a [`ChatExample`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatExample {
    fn new(query: String, answer: String) -> Self {
        Self {
            messages: vec![
                ChatMessage {
                    role: "user".to_owned(),
                    content: query,
                },
                ChatMessage {
                    role: "assistant".to_owned(),
                    content: answer,
                },
            ],
        }
    }
}

/// The key of `tenant`'s export on `date`.
pub fn export_key(tenant: TenantId, date: NaiveDate) -> Result<String, JobError> {
    Ok(TenantBucket::tenant_key(
        tenant,
        &format!("finetune/{}.jsonl", date.format("%Y-%m-%d")),
    )?)
}

/// Exports every tenant with new approved or amended decisions.
pub async fn export_all(
    pool: &PgPool,
    service: &Service,
    bucket: &TenantBucket,
    now: DateTime<Utc>,
    run_id: &str,
) -> Result<Vec<TenantExport>, JobError> {
    let store = EventStore::<Tenant>::new(pool.clone(), upcasters());
    let mut exports = Vec::new();
    for tenant in tenants(pool).await? {
        if let Some(export) =
            export_tenant(pool, &store, service, bucket, tenant, now, run_id).await?
        {
            exports.push(export);
        }
    }
    Ok(exports)
}

async fn export_tenant(
    pool: &PgPool,
    store: &EventStore<Tenant>,
    service: &Service,
    bucket: &TenantBucket,
    tenant: TenantId,
    now: DateTime<Utc>,
    run_id: &str,
) -> Result<Option<TenantExport>, JobError> {
    let today = now.date_naive();
    let state = cqrs_es::EventStore::load_aggregate(
        &store.for_tenant(*tenant.as_uuid()),
        &tenant.to_string(),
    )
    .await
    .map_err(|err| JobError::Decode {
        what: format!("tenant {tenant}"),
        source: Box::new(err),
    })?
    .into_state();
    let last = state.last_finetune_export();
    if last.is_some_and(|l| l.exported_on == today) {
        return Ok(None);
    }
    let after = last.map(|l| l.up_to);
    let (lines, up_to) = examples_after(pool, service, tenant, after).await?;
    let Some(up_to) = up_to else {
        return Ok(None);
    };
    let key = export_key(tenant, today)?;
    let mut body = Vec::new();
    for line in &lines {
        push_line(&mut body, line)?;
    }
    bucket
        .put(tenant, &key, body, "application/x-ndjson")
        .await?;
    let examples = u32::try_from(lines.len()).unwrap_or(u32::MAX);
    let actor = Actor::system(tenant);
    let metadata = EventMetadata::new(&actor, run_id, Source::Scheduler);
    let command = TenantCommand::RecordFinetuneExport {
        actor: actor.clone(),
        export: FinetuneExport {
            bucket: bucket.name().to_owned(),
            key: key.clone(),
            exported_on: today,
            examples,
            after,
            up_to,
        },
    };
    service
        .administer_tenant(&RequestContext { actor, metadata }, command)
        .await
        .map_err(|source| JobError::Command { tenant, source })?;
    tracing::info!(%tenant, %key, examples, "fine-tune export written");
    Ok(Some(TenantExport {
        tenant_id: tenant,
        key,
        examples,
    }))
}

/// `tenant`'s approved and amended decisions after `after`, as examples, with the position
/// of the last one.
async fn examples_after(
    pool: &PgPool,
    service: &Service,
    tenant: TenantId,
    after: Option<LogPosition>,
) -> Result<(Vec<ChatExample>, Option<LogPosition>), JobError> {
    let from = after.map_or(Checkpoint::START, |p| Checkpoint {
        transaction_id: p.transaction_id,
        global_position: p.global_position,
    });
    let mut events = std::pin::pin!(
        LogReader::new(pool.clone()).catch_up(from, Scope::Tenant(*tenant.as_uuid()))
    );
    let mut examples = Vec::new();
    let mut up_to = None;
    while let Some(event) = events.try_next().await? {
        if event.event_type != "DecisionMade" {
            continue;
        }
        let DecisionEvent::DecisionMade {
            diagnosis_id,
            verdict,
            ..
        } = event
            .payload::<DecisionEvent>()
            .map_err(|err| JobError::Decode {
                what: format!("DecisionMade at {}", event.global_position()),
                source: Box::new(err),
            })?;
        let amended = match verdict {
            Verdict::Approved => None,
            Verdict::Amended { text, .. } => Some(text.as_str().to_owned()),
            Verdict::Rejected { .. } | Verdict::AutoApproved { .. } => continue,
        };
        let (query, proposal) = diagnosis_texts(service, tenant, diagnosis_id).await?;
        examples.push(ChatExample::new(query, amended.unwrap_or(proposal)));
        up_to = Some(LogPosition {
            transaction_id: event.checkpoint.transaction_id,
            global_position: event.checkpoint.global_position,
        });
    }
    Ok((examples, up_to))
}

async fn diagnosis_texts(
    service: &Service,
    tenant: TenantId,
    diagnosis: DiagnosisId,
) -> Result<(String, String), JobError> {
    service
        .diagnosis_texts(tenant, diagnosis)
        .await
        .map_err(|err| JobError::Decode {
            what: format!("the texts of diagnosis {diagnosis}"),
            source: Box::new(err),
        })
}
