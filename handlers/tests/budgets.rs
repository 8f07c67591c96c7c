//! Monthly token budgets end to end: real Postgres (the usage and diagnoses read models
//! written by the real projections), real tokens from the AWS emulator, the real router and
//! the real budget job. A proposal that spends a starter tenant's budget records both
//! thresholds; the next diagnosis is deferred, which its customer, the consultant and the
//! admin see; the month's first run of the budget job resumes it.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use casebook_adapters::aws::shared_config;
use casebook_domain::budget::BudgetMonth;
use casebook_domain::ids::{DiagnosisId, TenantId};
use casebook_domain::policy::PlanTier;
use casebook_handlers::jobs::{Job, JobReport, Jobs, JobsConfig};
use chrono::Utc;
use serde_json::{json, Value};
use support::scenario::{diagnoser, request, FixedEmbedder, Spendthrift};
use support::{spawn_app, TestApp, User};
use uuid::Uuid;

/// `customer` asks `text` in a new session; the diagnosis' id.
async fn ask(app: &TestApp, customer: &User, text: &str) -> DiagnosisId {
    let (session, query) = (Uuid::new_v4(), Uuid::new_v4());
    let (status, body) = app
        .post(
            customer,
            "/v1/sessions",
            json!({ "session_id": session, "subject": "Budget" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .post(
            customer,
            &format!("/v1/sessions/{session}/queries"),
            json!({ "query_id": query, "text": text }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    DiagnosisId::from_uuid(query)
}

async fn diagnose(app: &TestApp, tenant: TenantId, diagnosis: DiagnosisId) {
    diagnoser(
        &app.pool,
        Arc::new(FixedEmbedder),
        Arc::new(Spendthrift(PlanTier::Starter)),
    )
    .await
    .diagnose(&request(tenant, diagnosis))
    .await
    .expect("handled");
}

async fn tenant_event_types(app: &TestApp, tenant: TenantId) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_type = 'Tenant' AND aggregate_id = $1
          ORDER BY sequence",
    )
    .bind(tenant.to_string())
    .fetch_all(&mut app.superuser().await)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_spent_budget_defers_the_next_diagnosis_visibly_until_the_month_start_job_resumes_it() {
    let app = spawn_app().await;
    app.onboard_both("starter").await;
    let acme = &app.acme;
    let spender = ask(&app, &acme.customer, "Is the indemnity cap enforceable?").await;
    diagnose(&app, acme.tenant, spender).await;

    let thresholds: Vec<String> = tenant_event_types(&app, acme.tenant)
        .await
        .into_iter()
        .filter(|t| t == "TokenBudgetThresholdCrossed")
        .collect();
    assert_eq!(thresholds.len(), 2, "80 % and 100 %, once each");

    let waiting = ask(&app, &acme.customer, "And the liability carve-outs?").await;
    let budget = PlanTier::Starter.monthly_token_budget();
    let usage = app
        .read_when(&acme.admin, "/v1/usage", |b| {
            b["budget"]["tokens_used"].as_u64() >= Some(budget)
        })
        .await;
    let month = BudgetMonth::of(Utc::now());
    let renews_on = month.renews_on().to_string();
    assert_eq!(
        usage["budget"],
        json!({
            "plan": "starter",
            "month": month.to_string(),
            "tokens_budget": budget,
            "tokens_used": usage["budget"]["tokens_used"],
            "tokens_remaining": 0,
            "renews_on": renews_on,
        })
    );
    diagnose(&app, acme.tenant, waiting).await;

    let path = format!("/v1/diagnoses/{waiting}");
    let seen = app
        .read_when(&acme.customer, &path, |b| b["status"] == "deferred_budget")
        .await;
    assert_eq!(seen["budget_renews_on"], renews_on.as_str());
    assert_eq!(seen["answer"], Value::Null);
    let (_, staff) = app.get(&acme.consultant, &path).await;
    assert_eq!(staff["status"], "deferred_budget");
    assert_eq!(staff["budget_renews_on"], renews_on.as_str());
    assert_eq!(staff["proposal"], Value::Null);
    // Another tenant's budget is its own: globex has spent nothing.
    let (_, globex) = app.get(&app.globex.admin, "/v1/usage").await;
    assert_eq!(globex["budget"]["tokens_used"], 0);

    let jobs = Jobs::new(
        app.pool.clone(),
        app.projector_pool().await,
        &shared_config().await,
        &JobsConfig {
            artifacts_bucket: None,
            audit_archive_bucket: None,
            lag_alert: Duration::from_secs(60),
        },
    );
    let this_month = jobs.run(Job::BudgetResume, Utc::now()).await.unwrap();
    assert_eq!(this_month, JobReport::BudgetResume { resumed: vec![] });
    let next_month = month.renews_on().and_hms_opt(0, 10, 0).unwrap().and_utc();
    let JobReport::BudgetResume { resumed } =
        jobs.run(Job::BudgetResume, next_month).await.unwrap()
    else {
        panic!("the budget job's report");
    };
    assert_eq!(
        resumed
            .iter()
            .map(|r| (r.tenant_id, r.diagnoses))
            .collect::<Vec<_>>(),
        [(acme.tenant, 1)]
    );
    let resumed = app
        .read_when(&acme.customer, &path, |b| b["status"] == "in_review")
        .await;
    assert_eq!(resumed["budget_renews_on"], Value::Null);
}
