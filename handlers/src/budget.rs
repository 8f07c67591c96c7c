//! The budget ports over the read models: each tenant's tokens and deferred diagnoses read in
//! a read-only transaction of the request path's role scoped to it (row-level security), as
//! the API reads them.

use casebook_adapters::postgres::{begin_for_tenants, Access};
use casebook_application::ports::{BoxError, DeferredDiagnoses, TokenLedger};
use casebook_domain::budget::BudgetMonth;
use casebook_domain::ids::{DiagnosisId, TenantId};
use casebook_projections::read;
use sqlx::PgPool;

/// The usage and diagnoses read models, read as `casebook_app`.
#[derive(Clone)]
pub struct ScopedBudgetReads {
    pool: PgPool,
}

impl ScopedBudgetReads {
    /// Reads through `pool` (a [`DbRole::App`](casebook_adapters::postgres::DbRole) pool).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl TokenLedger for ScopedBudgetReads {
    async fn tokens_used(&self, tenant: TenantId, month: BudgetMonth) -> Result<u64, BoxError> {
        let mut tx = begin_for_tenants(&self.pool, Access::ReadOnly, &[*tenant.as_uuid()]).await?;
        let tokens = read::usage::tokens_in_month(&mut tx, tenant, month).await?;
        tx.commit().await?;
        Ok(tokens)
    }
}

#[async_trait::async_trait]
impl DeferredDiagnoses for ScopedBudgetReads {
    async fn deferred_for_budget(&self, tenant: TenantId) -> Result<Vec<DiagnosisId>, BoxError> {
        let mut tx = begin_for_tenants(&self.pool, Access::ReadOnly, &[*tenant.as_uuid()]).await?;
        let deferred = read::diagnoses::deferred_for_budget(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(deferred)
    }
}
