//! Monthly token budgets (docs/decisions/0021-token-budgets.md): what a tenant's plan allows
//! it to spend on models in a calendar month (UTC), and what happens around it.
//!
//! - The worker reads the month's use before an attempt ([`Budgets::this_month`]). While the
//!   budget is spent it defers the diagnosis (`DiagnosisDeferred`, status
//!   `deferred_budget`) instead of asking a model, and counts `DiagnosesDeferred`.
//! - Each threshold (80 %, 100 %) the use reaches is recorded on the tenant once a month
//!   (`TokenBudgetThresholdCrossed`; the tenant refuses a repeat), and only a recording
//!   counts `TokenBudgetThresholdCrossed` and logs the line alarms and people search for. The
//!   check is by level, not by crossing: whatever a failure or a race missed, the next
//!   diagnosis of the tenant records.
//! - [`Resumption`] takes deferred diagnoses up again (`DiagnosisResumed`, which the relay
//!   hands to the worker) once the budget allows: on a plan change ([`BudgetResumption`])
//!   and by the daily [`BudgetResume`] job, which at a month's start finds every budget
//!   renewed. The worker checks the budget again, so resuming too early defers again.
//!
//! The use is read from the usage read model, which counts a proposal shortly after it is
//! recorded: diagnoses running at the same time may overspend the budget by their own
//! tokens. A budget is a spending limit, not a hard quota.

use std::sync::Arc;

use async_trait::async_trait;
use casebook_domain::actor::Actor;
use casebook_domain::any_event::AnyEvent;
use casebook_domain::budget::{BudgetMonth, BudgetUse};
use casebook_domain::diagnosis::{Deferral, DiagnosisCommand};
use casebook_domain::ids::{DiagnosisId, TenantId};
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::tenant::{Tenant, TenantCommand, TenantEvent};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::jobs::{each_tenant, JobError, TenantDirectory};
use crate::ports::{BoxError, Clock, DeferredDiagnoses, TokenLedger};
use crate::reactions::{Delivered, Reaction, ReactionError};
use crate::service::{RequestContext, Service, ServiceError};

/// Why a budget could not be read or acted on.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// A read model could not be read; a retry may succeed.
    #[error("reading {0} failed")]
    Read(&'static str, #[source] BoxError),
    /// A command failed for another reason than "already done".
    #[error("budget command failed")]
    Command(#[from] ServiceError),
}

/// The month's budget use of tenants, and the thresholds it reaches.
#[derive(Clone)]
pub struct Budgets {
    service: Service,
    ledger: Arc<dyn TokenLedger>,
    clock: Arc<dyn Clock>,
}

impl Budgets {
    /// Budgets counted by `ledger` in the months of `clock`, recorded through `service`.
    pub fn new(service: Service, ledger: Arc<dyn TokenLedger>, clock: Arc<dyn Clock>) -> Self {
        Self {
            service,
            ledger,
            clock,
        }
    }

    /// The month it is now.
    pub fn month(&self) -> BudgetMonth {
        BudgetMonth::of(self.clock.now())
    }

    /// `tenant`'s use of its plan's budget in `month`; `None` before it is onboarded.
    pub async fn use_in(
        &self,
        tenant_id: TenantId,
        tenant: &Tenant,
        month: BudgetMonth,
    ) -> Result<Option<BudgetUse>, BudgetError> {
        let Some(plan) = tenant.plan() else {
            return Ok(None);
        };
        let tokens_used = self
            .ledger
            .tokens_used(tenant_id, month)
            .await
            .map_err(|err| BudgetError::Read("the tokens used", err))?;
        Ok(Some(BudgetUse {
            month,
            tokens_used,
            tokens_budget: plan.monthly_token_budget(),
        }))
    }

    /// [`use_in`](Self::use_in) this month.
    pub async fn this_month(
        &self,
        tenant_id: TenantId,
        tenant: &Tenant,
    ) -> Result<Option<BudgetUse>, BudgetError> {
        self.use_in(tenant_id, tenant, self.month()).await
    }

    /// Records on the tenant (`ctx`'s) each threshold `budget` reaches that `tenant` has not
    /// recorded for its month. Each one recorded now counts `TokenBudgetThresholdCrossed`
    /// and logs the tenant; one recorded meanwhile by another worker is refused as a repeat
    /// and counted by none.
    pub async fn record_thresholds(
        &self,
        ctx: &RequestContext,
        tenant: &Tenant,
        budget: BudgetUse,
    ) -> Result<(), ServiceError> {
        for threshold in budget.thresholds_reached() {
            if tenant.budget_threshold_recorded(budget.month, threshold) {
                continue;
            }
            let command = TenantCommand::RecordBudgetThreshold {
                actor: ctx.actor.clone(),
                threshold,
                budget,
            };
            match self.service.administer_tenant(ctx, command).await {
                Ok(_) => {
                    let percent = threshold.percent();
                    metrics::counter!("TokenBudgetThresholdCrossed", "Threshold" => percent.to_string())
                        .increment(1);
                    tracing::warn!(
                        tenant = %ctx.actor.tenant_id,
                        threshold_percent = percent,
                        month = %budget.month,
                        tokens_used = budget.tokens_used,
                        tokens_budget = budget.tokens_budget,
                        "token budget threshold crossed"
                    );
                }
                Err(ServiceError::Conflict(reason)) => {
                    tracing::debug!(%reason, "budget threshold already recorded");
                }
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Defers `diagnosis_id` because `budget` is spent, counting `DiagnosesDeferred`; `false`
    /// when it was deferred (or moved on) meanwhile.
    pub async fn defer(
        &self,
        ctx: &RequestContext,
        diagnosis_id: DiagnosisId,
        budget: BudgetUse,
    ) -> Result<bool, ServiceError> {
        let command = DiagnosisCommand::Defer {
            actor: ctx.actor.clone(),
            deferral: Deferral::Budget { budget },
        };
        match self
            .service
            .advance_diagnosis(ctx, diagnosis_id, command)
            .await
        {
            Ok(_) => {
                metrics::counter!("DiagnosesDeferred", "Reason" => "budget").increment(1);
                tracing::info!(
                    tenant = %ctx.actor.tenant_id,
                    diagnosis = %diagnosis_id,
                    month = %budget.month,
                    tokens_used = budget.tokens_used,
                    tokens_budget = budget.tokens_budget,
                    "diagnosis deferred: the token budget is spent"
                );
                Ok(true)
            }
            Err(ServiceError::Conflict(reason)) => {
                tracing::info!(%reason, "diagnosis already deferred or moved on");
                Ok(false)
            }
            Err(err) => Err(err),
        }
    }
}

/// Takes a tenant's deferred diagnoses up again when its budget allows.
#[derive(Clone)]
pub struct Resumption {
    budgets: Budgets,
    deferred: Arc<dyn DeferredDiagnoses>,
}

impl Resumption {
    /// Resumes the diagnoses `deferred` lists when `budgets` allow.
    pub fn new(budgets: Budgets, deferred: Arc<dyn DeferredDiagnoses>) -> Self {
        Self { budgets, deferred }
    }

    /// Resumes the tenant's (`ctx`'s) deferred diagnoses unless its budget for `month` is
    /// spent; how many it resumed. One resumed meanwhile is skipped.
    pub async fn resume(
        &self,
        ctx: &RequestContext,
        month: BudgetMonth,
    ) -> Result<usize, BudgetError> {
        let tenant_id = ctx.actor.tenant_id;
        // Most tenants have nothing deferred: that is one read, and the job runs daily.
        let deferred = self
            .deferred
            .deferred_for_budget(tenant_id)
            .await
            .map_err(|err| BudgetError::Read("the deferred diagnoses", err))?;
        if deferred.is_empty() {
            return Ok(0);
        }
        let tenant = self.budgets.service.tenant_state(tenant_id).await?;
        let Some(budget) = self.budgets.use_in(tenant_id, &tenant, month).await? else {
            return Ok(0);
        };
        if budget.is_spent() {
            return Ok(0);
        }
        let mut resumed = 0;
        for diagnosis_id in deferred {
            let command = DiagnosisCommand::Resume {
                actor: ctx.actor.clone(),
            };
            match self
                .budgets
                .service
                .advance_diagnosis(ctx, diagnosis_id, command)
                .await
            {
                Ok(_) => resumed += 1,
                Err(ServiceError::Conflict(reason)) => {
                    tracing::info!(%reason, diagnosis = %diagnosis_id, "already resumed");
                }
                Err(err) => return Err(err.into()),
            }
        }
        if resumed > 0 {
            tracing::info!(
                tenant = %tenant_id,
                resumed,
                month = %month,
                tokens_remaining = budget.remaining(),
                "deferred diagnoses resumed"
            );
        }
        Ok(resumed)
    }
}

/// A tenant's deferred diagnoses resumed when its plan changes: a larger plan's budget may
/// not be spent yet. Repeats safely: a diagnosis resumes once, and the worker checks the
/// budget again.
pub struct BudgetResumption {
    resumption: Resumption,
}

impl BudgetResumption {
    /// Resumes through `resumption`.
    pub fn new(resumption: Resumption) -> Self {
        Self { resumption }
    }
}

#[async_trait]
impl Reaction for BudgetResumption {
    fn name(&self) -> &'static str {
        "budget_resumption"
    }

    fn wants(&self, aggregate_type: &str, event_type: &str) -> bool {
        aggregate_type == "Tenant" && event_type == "PlanChanged"
    }

    async fn react(&self, delivered: &Delivered) -> Result<(), ReactionError> {
        let AnyEvent::Tenant(TenantEvent::PlanChanged { .. }) = &delivered.event else {
            return Ok(());
        };
        // The budget as it is now: an old plan change delivered again resumes only what the
        // budget allows today.
        let month = self.resumption.budgets.month();
        match self
            .resumption
            .resume(&delivered.system_context(), month)
            .await
        {
            Ok(_) => Ok(()),
            Err(BudgetError::Command(err)) => Err(err.into()),
            Err(BudgetError::Read(what, err)) => Err(ReactionError::Outside(what, err)),
        }
    }
}

/// What the budget job resumed for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantResumed {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Diagnoses resumed.
    pub diagnoses: usize,
}

/// The daily budget job: every tenant's deferred diagnoses resumed where its budget for the
/// run's month allows, which on the first day of a month is every tenant's.
pub struct BudgetResume {
    tenants: Arc<dyn TenantDirectory>,
    resumption: Resumption,
}

impl BudgetResume {
    /// Resumes the diagnoses of the tenants `tenants` lists through `resumption`.
    pub fn new(tenants: Arc<dyn TenantDirectory>, resumption: Resumption) -> Self {
        Self {
            tenants,
            resumption,
        }
    }

    /// Resumes as of `now`, in a run named `run_id` (the correlation id of the events it
    /// records); the tenants it resumed diagnoses of.
    pub async fn run(
        &self,
        now: DateTime<Utc>,
        run_id: &str,
    ) -> Result<Vec<TenantResumed>, JobError> {
        let month = BudgetMonth::of(now);
        each_tenant(self.tenants.as_ref(), |tenant_id| async move {
            let actor = Actor::system(tenant_id);
            let metadata = EventMetadata::new(&actor, run_id, Source::Scheduler);
            let ctx = RequestContext { actor, metadata };
            let diagnoses = match self.resumption.resume(&ctx, month).await {
                Ok(diagnoses) => diagnoses,
                Err(BudgetError::Read(what, err)) => return Err(JobError::Port(what, err)),
                Err(BudgetError::Command(source)) => {
                    return Err(JobError::Command {
                        tenant: tenant_id,
                        source,
                    })
                }
            };
            Ok((diagnoses > 0).then_some(TenantResumed {
                tenant_id,
                diagnoses,
            }))
        })
        .await
    }
}
