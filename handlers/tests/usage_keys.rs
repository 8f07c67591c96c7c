//! Each tenant's own API key at the gateway (the emulator's API Gateway): put on its plan's
//! usage plan when the tenant is onboarded, moved when the operator changes the plan, and
//! named by the authorizer for the tenant's requests — never another tenant's.

mod support;

use std::sync::Arc;
use std::time::Duration;

use casebook_adapters::aws::apigateway::UsagePlans;
use casebook_adapters::aws::shared_config;
use casebook_application::reactions::UsageKeyAssignment;
use casebook_domain::ids::TenantId;
use casebook_domain::policy::PlanTier;
use casebook_handlers::authorizer::{Authorizer, TokenAuthorizerEvent};
use casebook_handlers::operator::{Operator, OperatorAction};
use casebook_handlers::reactions::ReactionSubscription;
use serde_json::Value;
use support::{spawn_app, TestApp, User};
use uuid::Uuid;

/// Runs the usage-key subscription until `tenant`'s key sits on its current plan (bounded:
/// an event becomes readable once every older transaction has ended); the key's id.
async fn key_on_current_plan(app: &TestApp, plans: &UsagePlans, tenant: TenantId) -> String {
    let pool = app.projector_pool().await;
    for _ in 0..200 {
        casebook_handlers::compose::runner(pool.clone())
            .with_subscription(ReactionSubscription::new(UsageKeyAssignment::new(
                app.state.service.clone(),
                Arc::new(plans.clone()),
            )))
            .drain(Duration::from_secs(5))
            .await
            .expect("drained");
        let state = app.state.service.tenant_state(tenant).await.unwrap();
        if state.usage_key_on_current_plan() {
            return state.usage_key_id().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("tenant {tenant} never got its key on its plan");
}

async fn authorize(authorizer: &Authorizer, user: &User) -> Value {
    authorizer
        .authorize(&TokenAuthorizerEvent {
            authorization_token: format!("Bearer {}", user.token),
            method_arn: "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/GET/v1/sessions"
                .to_owned(),
        })
        .await
        .expect("authorized")
}

async fn assignments(app: &TestApp, tenant: TenantId) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'UsageKeyAssigned'",
    )
    .bind(tenant.to_string())
    .fetch_one(&app.projector_pool().await)
    .await
    .unwrap()
}

#[tokio::test]
async fn each_tenant_is_metered_on_its_own_key_which_follows_its_plan() {
    let app = spawn_app().await;
    let plans = UsagePlans::new(
        &shared_config().await,
        format!("casebook-test-{}-", Uuid::new_v4().simple()),
    );
    plans.ensure_plans().await.expect("usage plans");
    app.onboard_both("professional").await;

    let acme_key = key_on_current_plan(&app, &plans, app.acme.tenant).await;
    let globex_key = key_on_current_plan(&app, &plans, app.globex.tenant).await;
    assert_ne!(acme_key, globex_key, "one key per tenant, not per plan");
    let professional = vec![plans.plan_name(PlanTier::Professional)];
    assert_eq!(plans.plans_holding(&acme_key).await.unwrap(), professional);
    assert_eq!(
        plans.plans_holding(&globex_key).await.unwrap(),
        professional
    );

    // The authorizer names each tenant's own key, with its tenant, roles and plan.
    let authorizer = Authorizer::new(
        app.state.auth.clone(),
        app.state.service.clone(),
        Some(Arc::new(plans.clone())),
    );
    let acme_value = plans.key_value(&acme_key).await.unwrap();
    let globex_value = plans.key_value(&globex_key).await.unwrap();
    for (user, tenant, value, roles) in [
        (&app.acme.customer, app.acme.tenant, &acme_value, "customer"),
        (
            &app.acme.consultant,
            app.acme.tenant,
            &acme_value,
            "consultant",
        ),
        (
            &app.globex.auditor,
            app.globex.tenant,
            &globex_value,
            "auditor",
        ),
    ] {
        let answer = authorize(&authorizer, user).await;
        assert_eq!(answer["usageIdentifierKey"], value.as_str(), "{answer}");
        assert_eq!(answer["context"]["tenant_id"], tenant.to_string());
        assert_eq!(answer["context"]["roles"], roles);
        assert_eq!(answer["context"]["plan"], "professional");
        assert_eq!(
            answer["policyDocument"]["Statement"][0]["Resource"],
            "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/*/*"
        );
    }

    // The operator moves Acme to another plan: the same key follows it, and leaves the old plan.
    Operator::new("ops", app.acme.tenant, "ops-run")
        .unwrap()
        .apply(
            &app.state.service,
            OperatorAction::ChangePlan(PlanTier::Enterprise),
        )
        .await
        .expect("plan changed");
    let moved = key_on_current_plan(&app, &plans, app.acme.tenant).await;
    assert_eq!(moved, acme_key);
    assert_eq!(
        plans.plans_holding(&acme_key).await.unwrap(),
        vec![plans.plan_name(PlanTier::Enterprise)]
    );
    assert_eq!(
        authorize(&authorizer, &app.acme.admin).await["context"]["plan"],
        "enterprise"
    );
    assert_eq!(assignments(&app, app.acme.tenant).await, 2);

    // Delivered again (a rewound subscription), nothing is assigned twice.
    sqlx::query(
        "UPDATE subscriptions SET checkpoint_tx = '0', checkpoint_position = 0 WHERE name = $1",
    )
    .bind("usage_keys")
    .execute(&app.projector_pool().await)
    .await
    .unwrap();
    key_on_current_plan(&app, &plans, app.acme.tenant).await;
    key_on_current_plan(&app, &plans, app.globex.tenant).await;
    assert_eq!(assignments(&app, app.acme.tenant).await, 2);
    assert_eq!(assignments(&app, app.globex.tenant).await, 1);
}

#[tokio::test]
async fn a_tenant_without_a_key_yet_is_named_no_key_and_never_another_tenants() {
    let app = spawn_app().await;
    let plans = UsagePlans::new(
        &shared_config().await,
        format!("casebook-test-{}-", Uuid::new_v4().simple()),
    );
    plans.ensure_plans().await.expect("usage plans");
    app.onboard_both("starter").await;
    key_on_current_plan(&app, &plans, app.globex.tenant).await;
    let authorizer = Authorizer::new(
        app.state.auth.clone(),
        app.state.service.clone(),
        Some(Arc::new(plans.clone())),
    );
    // A tenant with no key (here: never onboarded) is named none — the gateway then refuses
    // it — and never falls back on a key of another tenant's.
    let stranger_tenant = TenantId::new();
    let stranger = app
        .another_user(
            stranger_tenant,
            "stranger-admin",
            casebook_domain::actor::Role::Admin,
        )
        .await;
    let answer = authorize(&authorizer, &stranger).await;
    assert!(answer.get("usageIdentifierKey").is_none(), "{answer}");
    assert_eq!(answer["context"]["tenant_id"], stranger_tenant.to_string());
}
