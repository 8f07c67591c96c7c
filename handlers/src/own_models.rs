//! The evaluation gate's held-out decisions over the read models, read in a read-only
//! transaction of the request path's role scoped to the tenant (row-level security).

use casebook_adapters::postgres::{begin_for_tenants, Access};
use casebook_application::own_models::{HeldOutDecisions, HeldOutExample};
use casebook_application::ports::BoxError;
use casebook_domain::ids::TenantId;
use casebook_domain::own_model::{is_held_out, HELD_OUT_ONE_IN};
use casebook_domain::values::QueryText;
use casebook_projections::read;
use sqlx::PgPool;

/// How many of the newest approved decisions are scanned for held-out ones, per one wanted:
/// one in [`HELD_OUT_ONE_IN`] is held out, and this leaves room for chance.
const SCAN_PER_EXAMPLE: i64 = 4 * HELD_OUT_ONE_IN as i64;

/// The decisions and diagnoses read models, read as `casebook_app`.
#[derive(Clone)]
pub struct ScopedHeldOut {
    pool: PgPool,
}

impl ScopedHeldOut {
    /// Reads through `pool` (a [`DbRole::App`](casebook_adapters::postgres::DbRole) pool).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl HeldOutDecisions for ScopedHeldOut {
    async fn held_out(
        &self,
        tenant: TenantId,
        limit: u32,
    ) -> Result<Vec<HeldOutExample>, BoxError> {
        let mut tx = begin_for_tenants(&self.pool, Access::ReadOnly, &[*tenant.as_uuid()]).await?;
        let scanned = read::decisions::approved_examples(
            &mut tx,
            tenant,
            i64::from(limit) * SCAN_PER_EXAMPLE,
        )
        .await?;
        tx.commit().await?;
        Ok(scanned
            .into_iter()
            .filter(|example| is_held_out(example.decision_id))
            .take(limit as usize)
            .map(|example| HeldOutExample {
                query: QueryText::from_stored(example.query),
                approved_text: example.approved_text,
                approved_findings: example.findings,
            })
            .collect())
    }
}
