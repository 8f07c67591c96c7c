//! A practice's own models on its tenant: registered from an upload, promoted or rejected
//! by the evaluation gate, retired by an admin.

use std::collections::BTreeMap;

use casebook_domain::actor::Role;
use casebook_domain::error::AccessError;
use casebook_domain::own_model::{
    ModelArtifact, ModelEvaluation, ModelFormat, ModelId, ModelStatus, METRIC, MIN_HELD_OUT,
};
use casebook_domain::policy::ModelTier;
use casebook_domain::tenant::{Tenant, TenantCommand, TenantError, TenantEvent};
use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;

use crate::support::{actor, onboarded, v, OTHER_TENANT, TENANT};

fn tenant() -> TestFramework<Tenant> {
    TestFramework::with(())
}

fn system() -> casebook_domain::actor::Actor {
    actor(Role::System, TENANT)
}

fn artifact(job: &str) -> ModelArtifact {
    ModelArtifact {
        bucket: "artifacts".into(),
        key: format!("{TENANT}/models/{job}/model.gguf"),
        size_bytes: 1 << 20,
        etag: format!("etag-{job}"),
        format: ModelFormat::Gguf,
        base_model: Some("SmolLM2-135M-Instruct".into()),
        training_job: Some("evt-1".into()),
        metrics: BTreeMap::from([("loss".to_owned(), 1.5)]),
    }
}

fn model(job: &str) -> ModelId {
    ModelId::for_artifact(TENANT, &artifact(job).key)
}

fn registered(job: &str) -> TenantEvent {
    TenantEvent::ModelRegistered {
        model_id: model(job),
        artifact: artifact(job),
    }
}

fn evaluation(candidate: f64, baseline: f64) -> ModelEvaluation {
    ModelEvaluation {
        metric: METRIC.into(),
        tier: ModelTier::OpenWeights,
        baseline_model: "platform-open-weights".into(),
        held_out: MIN_HELD_OUT + 2,
        candidate_score: candidate,
        baseline_score: baseline,
    }
}

fn evaluate(job: &str, evaluation: ModelEvaluation) -> TenantCommand {
    TenantCommand::RecordModelEvaluation {
        actor: system(),
        model_id: model(job),
        evaluation,
    }
}

fn with(extra: Vec<TenantEvent>) -> Vec<TenantEvent> {
    let mut events = onboarded();
    events.extend(extra);
    events
}

fn replay(events: Vec<TenantEvent>) -> Tenant {
    let mut tenant = Tenant::default();
    events.into_iter().for_each(|e| tenant.apply(e));
    tenant
}

#[test]
fn an_upload_under_the_tenants_models_prefix_registers_a_candidate_once() {
    tenant()
        .given(onboarded())
        .when(TenantCommand::RegisterModel {
            actor: system(),
            artifact: artifact("job-1"),
        })
        .then_expect_events(vec![registered("job-1")]);
    tenant()
        .given(with(vec![registered("job-1")]))
        .when(TenantCommand::RegisterModel {
            actor: system(),
            artifact: artifact("job-1"),
        })
        .then_expect_error(TenantError::ModelAlreadyRegistered(model("job-1")));
    let foreign = ModelArtifact {
        key: format!("{OTHER_TENANT}/models/job-1/model.gguf"),
        ..artifact("job-1")
    };
    tenant()
        .given(onboarded())
        .when(TenantCommand::RegisterModel {
            actor: system(),
            artifact: foreign.clone(),
        })
        .then_expect_error(TenantError::ForeignArtifact(foreign.key));
    assert_eq!(
        replay(with(vec![registered("job-1")])).model_status(model("job-1")),
        Some(ModelStatus::Candidate)
    );
}

#[test]
fn a_candidate_scoring_at_least_the_current_route_is_promoted_to_serve_its_tier() {
    tenant()
        .given(with(vec![registered("job-1")]))
        .when(evaluate("job-1", evaluation(0.8, 0.8)))
        .then_expect_events(vec![TenantEvent::ModelPromoted {
            model_id: model("job-1"),
            evaluation: evaluation(0.8, 0.8),
            replaces: None,
        }]);
    let promoted = replay(with(vec![
        registered("job-1"),
        TenantEvent::ModelPromoted {
            model_id: model("job-1"),
            evaluation: evaluation(0.8, 0.8),
            replaces: None,
        },
    ]));
    let serving = promoted
        .promoted_model(ModelTier::OpenWeights)
        .expect("serving");
    assert_eq!(serving.model_id, model("job-1"));
    assert_eq!(serving.key, artifact("job-1").key);
    assert_eq!(promoted.promoted_model(ModelTier::Standard), None);
}

#[test]
fn a_candidate_below_the_gate_is_rejected_and_serves_nothing() {
    tenant()
        .given(with(vec![registered("job-1")]))
        .when(evaluate("job-1", evaluation(0.5, 0.8)))
        .then_expect_events(vec![TenantEvent::ModelRejected {
            model_id: model("job-1"),
            evaluation: evaluation(0.5, 0.8),
        }]);
    let too_few = ModelEvaluation {
        held_out: MIN_HELD_OUT - 1,
        ..evaluation(0.9, 0.1)
    };
    tenant()
        .given(with(vec![registered("job-1")]))
        .when(evaluate("job-1", too_few.clone()))
        .then_expect_events(vec![TenantEvent::ModelRejected {
            model_id: model("job-1"),
            evaluation: too_few,
        }]);
    let rejected = replay(with(vec![
        registered("job-1"),
        TenantEvent::ModelRejected {
            model_id: model("job-1"),
            evaluation: evaluation(0.5, 0.8),
        },
    ]));
    assert_eq!(rejected.promoted_model(ModelTier::OpenWeights), None);
    assert_eq!(
        rejected.model_status(model("job-1")),
        Some(ModelStatus::Rejected)
    );
}

#[test]
fn a_promotion_replaces_the_model_serving_the_tier() {
    let first_promoted = vec![
        registered("job-1"),
        TenantEvent::ModelPromoted {
            model_id: model("job-1"),
            evaluation: evaluation(0.7, 0.6),
            replaces: None,
        },
        registered("job-2"),
    ];
    tenant()
        .given(with(first_promoted.clone()))
        .when(evaluate("job-2", evaluation(0.75, 0.7)))
        .then_expect_events(vec![TenantEvent::ModelPromoted {
            model_id: model("job-2"),
            evaluation: evaluation(0.75, 0.7),
            replaces: Some(model("job-1")),
        }]);
    let mut events = with(first_promoted);
    events.push(TenantEvent::ModelPromoted {
        model_id: model("job-2"),
        evaluation: evaluation(0.75, 0.7),
        replaces: Some(model("job-1")),
    });
    let tenant = replay(events);
    assert_eq!(
        tenant
            .promoted_model(ModelTier::OpenWeights)
            .map(|m| m.model_id),
        Some(model("job-2"))
    );
    assert_eq!(
        tenant.model_status(model("job-1")),
        Some(ModelStatus::Retired)
    );
}

#[test]
fn a_model_is_evaluated_once_and_only_by_the_gates_metric() {
    let promoted = with(vec![
        registered("job-1"),
        TenantEvent::ModelPromoted {
            model_id: model("job-1"),
            evaluation: evaluation(0.8, 0.8),
            replaces: None,
        },
    ]);
    tenant()
        .given(promoted)
        .when(evaluate("job-1", evaluation(0.9, 0.8)))
        .then_expect_error(TenantError::ModelNotCandidate {
            model_id: model("job-1"),
            status: ModelStatus::Promoted,
        });
    tenant()
        .given(onboarded())
        .when(evaluate("job-1", evaluation(0.9, 0.8)))
        .then_expect_error(TenantError::NoSuchModel(model("job-1")));
    tenant()
        .given(with(vec![registered("job-1")]))
        .when(evaluate(
            "job-1",
            ModelEvaluation {
                metric: "bleu".into(),
                ..evaluation(0.9, 0.8)
            },
        ))
        .then_expect_error(TenantError::UnknownMetric("bleu".into()));
}

#[test]
fn an_admin_retires_a_promoted_model_and_its_tier_returns_to_the_platform() {
    let promoted = with(vec![
        registered("job-1"),
        TenantEvent::ModelPromoted {
            model_id: model("job-1"),
            evaluation: evaluation(0.8, 0.8),
            replaces: None,
        },
    ]);
    let retire = |role| TenantCommand::RetireModel {
        actor: actor(role, TENANT),
        model_id: model("job-1"),
        reason: v("drifted on leases"),
    };
    let retired = TenantEvent::ModelRetired {
        model_id: model("job-1"),
        reason: v("drifted on leases"),
        retired_by: actor(Role::Admin, TENANT).user_id,
    };
    tenant()
        .given(promoted.clone())
        .when(retire(Role::Admin))
        .then_expect_events(vec![retired.clone()]);
    tenant()
        .given(promoted.clone())
        .when(retire(Role::Consultant))
        .then_expect_error(TenantError::Access(AccessError::Forbidden {
            role: Role::Consultant,
        }));
    let mut events = promoted;
    events.push(retired);
    tenant()
        .given(events.clone())
        .when(retire(Role::Admin))
        .then_expect_error(TenantError::ModelNotCandidate {
            model_id: model("job-1"),
            status: ModelStatus::Retired,
        });
    assert_eq!(replay(events).promoted_model(ModelTier::OpenWeights), None);
}

#[test]
fn only_the_system_registers_and_evaluates_models() {
    for role in [Role::Admin, Role::Consultant, Role::Operator] {
        tenant()
            .given(onboarded())
            .when(TenantCommand::RegisterModel {
                actor: actor(role, TENANT),
                artifact: artifact("job-1"),
            })
            .then_expect_error(TenantError::Access(AccessError::Forbidden { role }));
        tenant()
            .given(with(vec![registered("job-1")]))
            .when(TenantCommand::RecordModelEvaluation {
                actor: actor(role, TENANT),
                model_id: model("job-1"),
                evaluation: evaluation(0.9, 0.1),
            })
            .then_expect_error(TenantError::Access(AccessError::Forbidden { role }));
    }
}
