//! Folding judgment events into the index.

use std::collections::{BTreeSet, HashMap};

use casebook_domain::any_event::AnyEvent;
use casebook_domain::ids::TenantId;
use casebook_domain::judgment::{JudgmentContent, JudgmentEvent};
use casebook_domain::ports::{EmbedError, Embedder};
use casebook_domain::tenant::TenantEvent;
use pgvector::HalfVector;
use sqlx::PgConnection;
use uuid::Uuid;

use super::partition::{create_partition, ensure_model_of, Generation};
use super::IndexError;
use crate::decoded::DecodedEvent;
use crate::log::RecordedEvent;

/// What one [`apply`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Judgments inserted or replaced.
    pub upserted: usize,
    /// Judgments removed (retired).
    pub retired: usize,
    /// Tenant partitions created.
    pub partitions_created: usize,
}

/// The last word of a batch on one judgment.
enum Change {
    Upsert {
        tenant: Uuid,
        position: i64,
        content: JudgmentContent,
        /// The customer it was captured from; `None` on a revision (the row keeps its own).
        customer: Option<String>,
    },
    Retire {
        tenant: Uuid,
    },
}

/// What the index reads of an event: a stored one decoded for it alone (the live
/// subscription), or one a rebuild decoded for every part.
struct Seen<'a> {
    position: i64,
    tenant: Uuid,
    aggregate_id: &'a str,
    /// Its sealed content read as its redaction: its customer is erased.
    redacted: bool,
    event: &'a AnyEvent,
}

impl Seen<'_> {
    fn aggregate_uuid(&self) -> Result<Uuid, IndexError> {
        Uuid::parse_str(self.aggregate_id).map_err(|err| IndexError::MalformedEvent {
            position: self.position,
            reason: format!("aggregate id {:?}: {err}", self.aggregate_id),
        })
    }
}

/// Applies a batch of the log (in reading order) to the index through `conn`, inside the
/// caller's transaction:
///
/// - `TenantOnboarded` (or `TenantSignedUp`) creates the tenant's partition;
/// - `JudgmentCaptured` and `JudgmentRevised` embed `title + "\n" + body` with `embedder`
///   and insert or replace the row (creating the partition if need be);
/// - `JudgmentRetired` removes the row: a retired judgment is never retrieved again; so does
///   a capture or revision whose content reads as its redaction (its customer is erased);
/// - `SubjectErased` removes every row captured from the erased customer, `TenantErased`
///   every row of the tenant (decision 0027);
/// - every other event is skipped without being decoded.
///
/// Only a judgment's last change in the batch is written (and embedded). A row is only
/// replaced by a later event than the one it holds, so applying a batch twice changes
/// nothing. All texts are embedded before the first write, so the transaction isn't held
/// open across the embedder's work more than it must.
pub async fn apply(
    conn: &mut PgConnection,
    events: &[RecordedEvent],
    embedder: &dyn Embedder,
) -> Result<Applied, IndexError> {
    let mut decoded = Vec::new();
    for recorded in events {
        if let Some(event) = decode(recorded)? {
            decoded.push((recorded, event));
        }
    }
    let seen = decoded.iter().map(|(recorded, event)| Seen {
        position: recorded.global_position(),
        tenant: recorded.tenant_id,
        aggregate_id: &recorded.aggregate_id,
        redacted: recorded.redacted,
        event,
    });
    write(conn, seen, embedder, Generation::Live).await
}

/// [`apply`] to `generation`, for events a rebuild decoded already.
pub(crate) async fn apply_decoded(
    conn: &mut PgConnection,
    events: &[DecodedEvent],
    embedder: &dyn Embedder,
    generation: Generation,
) -> Result<Applied, IndexError> {
    let seen = events.iter().map(|event| Seen {
        position: event.position(),
        tenant: event.tenant_id,
        aggregate_id: &event.aggregate_id,
        redacted: event.redacted,
        event: &event.event,
    });
    write(conn, seen, embedder, generation).await
}

/// The body of [`apply`] and [`apply_decoded`]: `events` folded into `generation`.
async fn write<'a>(
    conn: &mut PgConnection,
    events: impl Iterator<Item = Seen<'a>>,
    embedder: &dyn Embedder,
    generation: Generation,
) -> Result<Applied, IndexError> {
    let mut onboarded = BTreeSet::new();
    let mut order: Vec<Uuid> = Vec::new();
    let mut changes: HashMap<Uuid, Change> = HashMap::new();
    let mut erased = Vec::new();
    for seen in events {
        let position = seen.position;
        let (judgment, change) = match seen.event {
            AnyEvent::Judgment(
                JudgmentEvent::JudgmentCaptured { .. } | JudgmentEvent::JudgmentRevised { .. },
            ) if seen.redacted => (
                seen.aggregate_uuid()?,
                Change::Retire {
                    tenant: seen.tenant,
                },
            ),
            AnyEvent::Tenant(TenantEvent::SubjectErased { subject, .. }) => {
                erased.push((seen.tenant, Some(subject.to_string())));
                continue;
            }
            AnyEvent::Tenant(TenantEvent::TenantErased { .. }) => {
                erased.push((seen.tenant, None));
                continue;
            }
            AnyEvent::Tenant(
                TenantEvent::TenantOnboarded { tenant_id, .. }
                | TenantEvent::TenantSignedUp { tenant_id, .. },
            ) => {
                onboarded.insert(*tenant_id.as_uuid());
                continue;
            }
            AnyEvent::Judgment(JudgmentEvent::JudgmentCaptured {
                judgment_id,
                tenant_id,
                content,
                origin,
                ..
            }) => (
                *judgment_id.as_uuid(),
                Change::Upsert {
                    tenant: *tenant_id.as_uuid(),
                    position,
                    content: content.clone(),
                    customer: origin.customer().map(ToString::to_string),
                },
            ),
            AnyEvent::Judgment(JudgmentEvent::JudgmentRevised { content, .. }) => (
                seen.aggregate_uuid()?,
                Change::Upsert {
                    tenant: seen.tenant,
                    position,
                    content: content.clone(),
                    customer: None,
                },
            ),
            AnyEvent::Judgment(JudgmentEvent::JudgmentRetired { .. }) => (
                seen.aggregate_uuid()?,
                Change::Retire {
                    tenant: seen.tenant,
                },
            ),
            _ => continue,
        };
        if changes.insert(judgment, change).is_none() {
            order.push(judgment);
        }
    }
    if onboarded.is_empty() && changes.is_empty() {
        return purge(conn, generation, &erased)
            .await
            .map(|retired| Applied {
                retired,
                ..Applied::default()
            });
    }

    ensure_model_of(conn, generation, embedder).await?;
    let mut upserts = Upserts::default();
    let mut retired = (Vec::new(), Vec::new());
    let mut tenants = onboarded;
    for judgment in &order {
        match &changes[judgment] {
            Change::Upsert {
                tenant,
                position,
                content,
                customer,
            } => {
                tenants.insert(*tenant);
                upserts.push(*tenant, *judgment, *position, content, customer.clone());
            }
            Change::Retire { tenant } => {
                retired.0.push(*tenant);
                retired.1.push(*judgment);
            }
        }
    }
    let vectors = embedder.embed(&upserts.texts).await?;
    if let Some(wrong) = vectors.iter().find(|v| v.len() != embedder.dimension()) {
        return Err(EmbedError::WrongDimension {
            expected: embedder.dimension(),
            actual: wrong.len(),
        }
        .into());
    }

    let mut applied = Applied::default();
    for tenant in tenants {
        if create_partition(conn, generation, TenantId::from_uuid(tenant)).await? {
            applied.partitions_created += 1;
        }
    }
    if !retired.1.is_empty() {
        applied.retired = usize::try_from(
            sqlx::query(&format!(
                "DELETE FROM {}
                  WHERE (tenant_id, judgment_id) IN (SELECT * FROM UNNEST($1::uuid[], $2::uuid[]))",
                generation.table()
            ))
            .bind(&retired.0)
            .bind(&retired.1)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
        )
        .unwrap_or(usize::MAX);
    }
    if !upserts.judgments.is_empty() {
        // Half precision on this side, as the column stores it: two bytes a component in
        // pgvector's binary form instead of up to a dozen as text, rounded as pgvector's own
        // cast rounds (to nearest, ties to even); non-finite values are still refused there.
        let embeddings: Vec<HalfVector> = vectors
            .iter()
            .map(|v| HalfVector::from_f32_slice(v))
            .collect();
        applied.upserted = usize::try_from(
            sqlx::query(&upsert(generation))
                .bind(&upserts.tenants)
                .bind(&upserts.judgments)
                .bind(&upserts.positions)
                .bind(embedder.model_id())
                .bind(i32::try_from(embedder.dimension()).unwrap_or(i32::MAX))
                .bind(&upserts.titles)
                .bind(&upserts.bodies)
                .bind(&upserts.tags)
                .bind(&embeddings)
                .bind(&upserts.customers)
                .execute(&mut *conn)
                .await?
                .rows_affected(),
        )
        .unwrap_or(usize::MAX);
    }
    applied.retired += purge(conn, generation, &erased).await?;
    Ok(applied)
}

/// Removes every row captured from each erased `(tenant, customer)`, every row of the tenant
/// without a customer (the tenant erased); returns how many.
async fn purge(
    conn: &mut PgConnection,
    generation: Generation,
    erased: &[(Uuid, Option<String>)],
) -> Result<usize, IndexError> {
    let mut removed = 0;
    for (tenant, customer) in erased {
        let rows = sqlx::query(&format!(
            "DELETE FROM {}
              WHERE tenant_id = $1 AND ($2::text IS NULL OR customer = $2)",
            generation.table()
        ))
        .bind(tenant)
        .bind(customer)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        removed += usize::try_from(rows).unwrap_or(usize::MAX);
    }
    Ok(removed)
}

/// Inserts or replaces a batch of rows of `generation` given as parallel arrays; a row is
/// only replaced by a later event. Tags travel as JSON arrays (a `text[][]` must be
/// rectangular), vectors as `halfvec[]`.
fn upsert(generation: Generation) -> String {
    format!(
        "
    INSERT INTO {} AS j
           (tenant_id, judgment_id, source_position, embedding_model, embedding_dim,
            title, body, tags, embedding, customer)
    SELECT u.tenant_id, u.judgment_id, u.source_position, $4, $5, u.title, u.body,
           ARRAY(SELECT jsonb_array_elements_text(u.tags::jsonb)), u.embedding, u.customer
      FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $6::text[], $7::text[], $8::text[], $9::halfvec[],
                  $10::text[])
           AS u(tenant_id, judgment_id, source_position, title, body, tags, embedding, customer)
    ON CONFLICT (tenant_id, judgment_id) DO UPDATE
       SET source_position = EXCLUDED.source_position,
           customer = COALESCE(EXCLUDED.customer, j.customer),
           embedding_model = EXCLUDED.embedding_model,
           embedding_dim = EXCLUDED.embedding_dim,
           title = EXCLUDED.title,
           body = EXCLUDED.body,
           tags = EXCLUDED.tags,
           embedding = EXCLUDED.embedding,
           indexed_at = now()
     WHERE j.source_position < EXCLUDED.source_position",
        generation.table()
    )
}

/// Rows to upsert as parallel arrays, plus the texts to embed.
#[derive(Default)]
struct Upserts {
    tenants: Vec<Uuid>,
    judgments: Vec<Uuid>,
    positions: Vec<i64>,
    titles: Vec<String>,
    bodies: Vec<String>,
    tags: Vec<String>,
    customers: Vec<Option<String>>,
    texts: Vec<String>,
}

impl Upserts {
    fn push(
        &mut self,
        tenant: Uuid,
        judgment: Uuid,
        position: i64,
        content: &JudgmentContent,
        customer: Option<String>,
    ) {
        let tags: Vec<&str> = content.tags.iter().map(|tag| tag.as_str()).collect();
        self.customers.push(customer);
        self.tenants.push(tenant);
        self.judgments.push(judgment);
        self.positions.push(position);
        self.titles.push(content.title.as_str().to_owned());
        self.bodies.push(content.body.as_str().to_owned());
        self.tags.push(serde_json::Value::from(tags).to_string());
        self.texts
            .push(embedded_text(content.title.as_str(), content.body.as_str()));
    }
}

/// The text a judgment is embedded as: its title, a line break, its body.
pub(super) fn embedded_text(title: &str, body: &str) -> String {
    format!("{title}\n{body}")
}

/// The event in domain terms, if the index cares about it (decoding only those).
fn decode(recorded: &RecordedEvent) -> Result<Option<AnyEvent>, IndexError> {
    // The aggregates' cqrs-es type names (`Aggregate::TYPE`).
    let relevant = recorded.aggregate_type == "Judgment"
        || (recorded.aggregate_type == "Tenant"
            && matches!(
                recorded.event_type.as_str(),
                "TenantOnboarded" | "TenantSignedUp" | "SubjectErased" | "TenantErased"
            ));
    if !relevant {
        return Ok(None);
    }
    let position = recorded.global_position();
    let payload = recorded
        .payload()
        .map_err(|err| IndexError::MalformedEvent {
            position,
            reason: err.to_string(),
        })?;
    AnyEvent::decode(
        &recorded.aggregate_type,
        &recorded.event_type,
        &recorded.event_version,
        payload,
    )
    .map(Some)
    .map_err(|source| IndexError::Decode { position, source })
}
