//! The `tenant_usage` read model: proposals, tokens and cost per tenant, model and UTC day.
//!
//! Additive: a batch sums its proposals per key and adds the sums to the stored row, so no
//! row is read back.

use std::collections::BTreeMap;

use async_trait::async_trait;
use casebook_domain::any_event::AnyEvent;
use casebook_domain::diagnosis::DiagnosisEvent;
use casebook_domain::ids::TenantId;
use chrono::NaiveDate;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::decoded::DecodedEvent;
use crate::error::ApplyError;
use crate::projection::{Naming, Projection, ProjectionId};
use crate::sql::{col, insert_unnest, to_i64, Column};

/// A row of `tenant_usage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The UTC day of the proposals.
    pub day: NaiveDate,
    /// The model that made them.
    pub model_id: String,
    /// How many proposals.
    pub proposals: i64,
    /// Tokens in.
    pub input_tokens: i64,
    /// Tokens out.
    pub output_tokens: i64,
    /// Cost in millionths of a US dollar.
    pub cost_usd_micros: i64,
}

pub(crate) const COLUMNS: &[Column] = &[
    col("tenant_id", "uuid"),
    col("day", "date"),
    col("model_id", "text"),
    col("proposals", "int8"),
    col("input_tokens", "int8"),
    col("output_tokens", "int8"),
    col("cost_usd_micros", "int8"),
];

/// Reads a row of [`COLUMNS`].
pub(crate) fn from_row(row: &PgRow) -> Result<Usage, sqlx::Error> {
    Ok(Usage {
        tenant_id: TenantId::from_uuid(row.try_get("tenant_id")?),
        day: row.try_get("day")?,
        model_id: row.try_get("model_id")?,
        proposals: row.try_get("proposals")?,
        input_tokens: row.try_get("input_tokens")?,
        output_tokens: row.try_get("output_tokens")?,
        cost_usd_micros: row.try_get("cost_usd_micros")?,
    })
}

/// Writes `tenant_usage`.
pub struct UsageProjection {
    add: String,
}

impl UsageProjection {
    /// The projection over the tables `naming` names.
    pub fn new(naming: &Naming) -> Self {
        let table = naming.table("tenant_usage");
        Self {
            add: format!(
                "{} ON CONFLICT (tenant_id, day, model_id) DO UPDATE SET
                    proposals = {table}.proposals + EXCLUDED.proposals,
                    input_tokens = {table}.input_tokens + EXCLUDED.input_tokens,
                    output_tokens = {table}.output_tokens + EXCLUDED.output_tokens,
                    cost_usd_micros = {table}.cost_usd_micros + EXCLUDED.cost_usd_micros",
                insert_unnest(&table, COLUMNS)
            ),
        }
    }
}

#[async_trait]
impl Projection for UsageProjection {
    fn id(&self) -> ProjectionId {
        ProjectionId::Usage
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[DecodedEvent],
    ) -> Result<(), ApplyError> {
        // Sorted keys: one row per key per statement, in a stable order.
        let mut sums: BTreeMap<(Uuid, NaiveDate, &str), [i64; 4]> = BTreeMap::new();
        for e in events {
            let AnyEvent::Diagnosis(DiagnosisEvent::DiagnosisProposed { provenance, .. }) =
                &e.event
            else {
                continue;
            };
            let key = (
                e.tenant_id,
                e.recorded_at.date_naive(),
                provenance.model_id.as_str(),
            );
            let sum = sums.entry(key).or_default();
            sum[0] += 1;
            sum[1] += i64::from(provenance.input_tokens);
            sum[2] += i64::from(provenance.output_tokens);
            sum[3] += to_i64(provenance.cost_usd_micros, "cost_usd_micros")?;
        }
        if sums.is_empty() {
            return Ok(());
        }
        let mut tenants = Vec::with_capacity(sums.len());
        let mut days = Vec::with_capacity(sums.len());
        let mut models = Vec::with_capacity(sums.len());
        let mut columns: [Vec<i64>; 4] = Default::default();
        for ((tenant, day, model), sum) in sums {
            tenants.push(tenant);
            days.push(day);
            models.push(model.to_owned());
            for (column, value) in columns.iter_mut().zip(sum) {
                column.push(value);
            }
        }
        let [proposals, input, output, cost] = columns;
        sqlx::query(&self.add)
            .bind(tenants)
            .bind(days)
            .bind(models)
            .bind(proposals)
            .bind(input)
            .bind(output)
            .bind(cost)
            .execute(conn)
            .await?;
        Ok(())
    }
}
