//! The expected read models: a straightforward fold over the whole log, one event at a time,
//! written independently of the projections, and a comparison with what the read functions
//! return.

use std::collections::BTreeMap;

use casebook_domain::any_event::AnyEvent;
use casebook_domain::decision::DecisionEvent;
use casebook_domain::diagnosis::{Deferral, DiagnosisEvent, DiagnosisStatus};
use casebook_domain::ids::{TenantId, UserId};
use casebook_domain::metadata::EventMetadata;
use casebook_domain::policy::ModelPolicy;
use casebook_domain::session::SessionEvent;
use casebook_domain::tenant::TenantEvent;
use casebook_projections::models::{
    Decision, Diagnosis, DiagnosisDecision, Proposal, Session, SessionQuery, SessionStatus, Tenant,
    TenantStatus, Usage,
};
use casebook_projections::read::{self, Page, PageRequest, Reach};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{Executor, PgPool, Row};
use uuid::Uuid;

use crate::support::as_tenant;

/// Every read model's expected rows.
#[derive(Debug, Default)]
pub struct Expected {
    pub tenants: BTreeMap<Uuid, Tenant>,
    pub sessions: BTreeMap<Uuid, Session>,
    pub queries: Vec<SessionQuery>,
    pub diagnoses: BTreeMap<Uuid, Diagnosis>,
    pub decisions: BTreeMap<Uuid, Decision>,
    pub usage: BTreeMap<(Uuid, NaiveDate, String), Usage>,
    /// Each tenant's events: global position and type, in reading order.
    pub events: BTreeMap<Uuid, Vec<(i64, String)>>,
}

/// Folds the whole log, read in reading order as the owner.
pub async fn fold_log(owner: &PgPool) -> Expected {
    let rows = sqlx::query(
        "SELECT tenant_id, aggregate_type, aggregate_id, sequence, event_type, event_version,
                payload, metadata, global_position, recorded_at
           FROM events ORDER BY transaction_id, global_position",
    )
    .fetch_all(owner)
    .await
    .expect("read the log");
    let mut x = Expected::default();
    for row in rows {
        let tenant: Uuid = row.get("tenant_id");
        let aggregate_type: String = row.get("aggregate_type");
        let aggregate_id: Uuid = row.get::<String, _>("aggregate_id").parse().unwrap();
        let sequence: i64 = row.get("sequence");
        let event_type: String = row.get("event_type");
        let position: i64 = row.get("global_position");
        let at: DateTime<Utc> = row.get("recorded_at");
        let metadata = EventMetadata::from_json(row.get("metadata")).unwrap();
        let event = AnyEvent::decode(
            &aggregate_type,
            &event_type,
            row.get("event_version"),
            row.get("payload"),
        )
        .unwrap();
        x.events
            .entry(tenant)
            .or_default()
            .push((position, event_type.clone()));
        match event {
            AnyEvent::Tenant(event) => {
                let created = match &event {
                    TenantEvent::TenantOnboarded {
                        tenant_id,
                        name,
                        plan,
                        onboarded_by,
                    } => Some((tenant_id, name, plan, onboarded_by.clone())),
                    // The platform signs a practice up.
                    TenantEvent::TenantSignedUp {
                        tenant_id,
                        name,
                        plan,
                        ..
                    } => Some((tenant_id, name, plan, UserId::system())),
                    _ => None,
                };
                if let Some((tenant_id, name, plan, onboarded_by)) = created {
                    x.tenants.insert(
                        aggregate_id,
                        Tenant {
                            tenant_id: *tenant_id,
                            name: name.to_string(),
                            status: TenantStatus::Active,
                            plan: *plan,
                            model_policy: ModelPolicy::ByPlan,
                            auto_resolve_threshold: None,
                            suspended_reason: None,
                            onboarded_by,
                            onboarded_at: at,
                            updated_at: at,
                            version: sequence,
                        },
                    );
                }
                let t = x.tenants.get_mut(&aggregate_id).unwrap();
                match event {
                    TenantEvent::PlanChanged { plan } => t.plan = plan,
                    TenantEvent::AutoResolveThresholdSet { threshold } => {
                        t.auto_resolve_threshold = threshold
                    }
                    TenantEvent::ModelPolicySet { policy } => t.model_policy = policy,
                    TenantEvent::TenantSuspended { reason } => {
                        t.status = TenantStatus::Suspended;
                        t.suspended_reason = Some(reason.to_string());
                    }
                    TenantEvent::TenantReactivated => {
                        t.status = TenantStatus::Active;
                        t.suspended_reason = None;
                    }
                    TenantEvent::TenantErased { .. } => t.status = TenantStatus::Erased,
                    // People are `tenant_users`', which the rebuild tests compare.
                    TenantEvent::TenantOnboarded { .. }
                    | TenantEvent::TenantSignedUp { .. }
                    | TenantEvent::UserInvited { .. }
                    | TenantEvent::UserRoleChanged { .. }
                    | TenantEvent::UserDisabled { .. }
                    | TenantEvent::UserEnabled { .. }
                    | TenantEvent::UserProvisioned { .. }
                    | TenantEvent::UsageKeyAssigned { .. }
                    | TenantEvent::FinetuneExported { .. }
                    | TenantEvent::TokenBudgetThresholdCrossed { .. }
                    | TenantEvent::SubjectErased { .. }
                    | TenantEvent::ModelRegistered { .. }
                    | TenantEvent::ModelPromoted { .. }
                    | TenantEvent::ModelRejected { .. }
                    | TenantEvent::ModelRetired { .. } => {}
                }
                t.updated_at = at;
                t.version = sequence;
            }
            AnyEvent::Session(event) => {
                if let SessionEvent::SessionOpened {
                    session_id,
                    tenant_id,
                    subject,
                    attachments,
                    opened_by,
                } = &event
                {
                    x.sessions.insert(
                        aggregate_id,
                        Session {
                            session_id: *session_id,
                            tenant_id: *tenant_id,
                            subject: subject.to_string(),
                            attachments: attachments.iter().map(|a| a.to_string()).collect(),
                            status: SessionStatus::Open,
                            opened_by: opened_by.clone(),
                            opened_at: at,
                            closed_by: None,
                            closed_at: None,
                            query_count: 0,
                            last_activity_at: at,
                            version: sequence,
                            position,
                        },
                    );
                }
                let s = x.sessions.get_mut(&aggregate_id).unwrap();
                match event {
                    SessionEvent::QuerySubmitted {
                        query_id,
                        text,
                        submitted_by,
                    } => {
                        s.query_count += 1;
                        x.queries.push(SessionQuery {
                            session_id: s.session_id,
                            query_id,
                            tenant_id: s.tenant_id,
                            text: text.to_string(),
                            submitted_by,
                            submitted_at: at,
                            position,
                        });
                    }
                    SessionEvent::SessionClosed { closed_by } => {
                        s.status = SessionStatus::Closed;
                        s.closed_by = Some(closed_by);
                        s.closed_at = Some(at);
                    }
                    SessionEvent::SessionOpened { .. } => {}
                }
                s.last_activity_at = at;
                s.version = sequence;
            }
            AnyEvent::Diagnosis(event) => {
                if let DiagnosisEvent::DiagnosisRequested {
                    diagnosis_id,
                    tenant_id,
                    session_id,
                    query_id,
                    query,
                    requested_by,
                } = &event
                {
                    x.diagnoses.insert(
                        aggregate_id,
                        Diagnosis {
                            diagnosis_id: *diagnosis_id,
                            tenant_id: *tenant_id,
                            session_id: *session_id,
                            query_id: *query_id,
                            query: query.to_string(),
                            requested_by: requested_by.clone(),
                            requested_at: at,
                            position,
                            status: DiagnosisStatus::Requested,
                            attempt: 1,
                            failure_reason: None,
                            budget_renews_on: None,
                            proposal: None,
                            decision: None,
                            resolved_at: None,
                            updated_at: at,
                            version: sequence,
                        },
                    );
                }
                let d = x.diagnoses.get_mut(&aggregate_id).unwrap();
                match event {
                    DiagnosisEvent::ContextRetrieved { attempt, .. } => {
                        d.status = DiagnosisStatus::ContextRetrieved;
                        d.attempt = attempt as i32;
                    }
                    DiagnosisEvent::DiagnosisProposed {
                        text,
                        findings,
                        confidence,
                        provenance,
                    } => {
                        let usage = x
                            .usage
                            .entry((tenant, at.date_naive(), provenance.model_id.clone()))
                            .or_insert_with(|| Usage {
                                tenant_id: TenantId::from_uuid(tenant),
                                day: at.date_naive(),
                                model_id: provenance.model_id.clone(),
                                proposals: 0,
                                input_tokens: 0,
                                output_tokens: 0,
                                cost_usd_micros: 0,
                            });
                        usage.proposals += 1;
                        usage.input_tokens += i64::from(provenance.input_tokens);
                        usage.output_tokens += i64::from(provenance.output_tokens);
                        usage.cost_usd_micros += provenance.cost_usd_micros as i64;
                        d.status = DiagnosisStatus::Proposed;
                        d.proposal = Some(Proposal {
                            text: text.to_string(),
                            findings,
                            confidence,
                            proposed_at: at,
                            position,
                            provenance,
                        });
                    }
                    DiagnosisEvent::DiagnosisFailed {
                        attempt,
                        reason,
                        retryable,
                    } => {
                        d.status = DiagnosisStatus::Failed { retryable };
                        d.attempt = attempt as i32;
                        d.failure_reason = Some(reason.to_string());
                    }
                    DiagnosisEvent::DiagnosisResolved { outcome, .. } => {
                        d.status = DiagnosisStatus::Resolved { outcome };
                        d.resolved_at = Some(at);
                    }
                    DiagnosisEvent::DiagnosisDeferred {
                        deferral: Deferral::Budget { budget },
                    } => {
                        d.status = DiagnosisStatus::DeferredBudget;
                        d.budget_renews_on = Some(budget.month.renews_on());
                    }
                    DiagnosisEvent::DiagnosisResumed { to } => {
                        d.status = to;
                        d.budget_renews_on = None;
                    }
                    DiagnosisEvent::DiagnosisRequested { .. } => {}
                }
                d.updated_at = at;
                d.version = sequence;
            }
            AnyEvent::Decision(DecisionEvent::DecisionMade {
                decision_id,
                diagnosis_id,
                tenant_id,
                verdict,
                decided_by,
                ..
            }) => {
                let d = x.diagnoses.get_mut(diagnosis_id.as_uuid()).unwrap();
                d.decision = Some(DiagnosisDecision {
                    outcome: verdict.outcome(),
                    decided_by: decided_by.clone(),
                    decided_at: at,
                });
                d.updated_at = at;
                x.decisions.insert(
                    *decision_id.as_uuid(),
                    Decision {
                        decision_id,
                        diagnosis_id,
                        tenant_id,
                        verdict,
                        decided_by,
                        decided_by_role: metadata.actor_role,
                        decided_at: at,
                        position,
                    },
                );
            }
            AnyEvent::Judgment(_) => {}
        }
    }
    x
}

/// Reads every page of a list, four rows at a time: `all_pages!(|r| list(conn, tenant, r))`.
macro_rules! all_pages {
    (|$r:ident| $call:expr) => {{
        let mut items = Vec::new();
        let mut $r = PageRequest::first(4);
        loop {
            let page: Page<_> = $call.await.unwrap();
            items.extend(page.items);
            match page.next {
                Some(after) => $r.after = Some(after),
                None => break items,
            }
        }
    }};
}

/// Compares every read model of every tenant, through the read functions as the app role.
pub async fn assert_read_models_match(app: &PgPool, x: &Expected) {
    assert!(!x.tenants.is_empty());
    let mut conn = app.acquire().await.unwrap();
    for (tenant_uuid, tenant) in &x.tenants {
        let t = tenant.tenant_id;
        as_tenant(&mut conn, "casebook_app", Some(t)).await;
        assert_eq!(
            read::tenants::get(&mut conn, t).await.unwrap().as_ref(),
            Some(tenant)
        );

        let mut sessions: Vec<&Session> =
            x.sessions.values().filter(|s| s.tenant_id == t).collect();
        sessions.sort_by_key(|s| std::cmp::Reverse(s.position));
        let listed = all_pages!(|r| read::sessions::list(&mut conn, t, Reach::Tenant, r));
        assert_eq!(
            listed.iter().collect::<Vec<_>>(),
            sessions,
            "sessions of {t}"
        );
        for session in &sessions {
            let mut queries: Vec<&SessionQuery> = x
                .queries
                .iter()
                .filter(|q| q.session_id == session.session_id)
                .collect();
            queries.sort_by_key(|q| q.position);
            let read = read::sessions::queries(&mut conn, t, session.session_id)
                .await
                .unwrap();
            assert_eq!(read.iter().collect::<Vec<_>>(), queries);
            assert_eq!(
                read::sessions::get(&mut conn, t, Reach::Tenant, session.session_id)
                    .await
                    .unwrap()
                    .as_ref(),
                Some(*session)
            );
        }

        let mut diagnoses: Vec<&Diagnosis> =
            x.diagnoses.values().filter(|d| d.tenant_id == t).collect();
        diagnoses.sort_by_key(|d| std::cmp::Reverse(d.position));
        let listed = all_pages!(|r| read::diagnoses::list(&mut conn, t, Reach::Tenant, r));
        assert_eq!(
            listed.iter().collect::<Vec<_>>(),
            diagnoses,
            "diagnoses of {t}"
        );

        let mut queue: Vec<&Diagnosis> = diagnoses
            .iter()
            .copied()
            .filter(|d| d.status == DiagnosisStatus::Proposed && d.decision.is_none())
            .collect();
        queue.sort_by_key(|d| d.proposal.as_ref().unwrap().position);
        let listed = all_pages!(|r| read::diagnoses::review_queue(&mut conn, t, r));
        assert_eq!(
            listed
                .iter()
                .map(|item| &item.diagnosis)
                .collect::<Vec<_>>(),
            queue,
            "review queue of {t}"
        );

        let mut decisions: Vec<&Decision> =
            x.decisions.values().filter(|d| d.tenant_id == t).collect();
        decisions.sort_by_key(|d| std::cmp::Reverse(d.position));
        let listed = all_pages!(|r| read::decisions::list(&mut conn, t, None, r));
        assert_eq!(
            listed.iter().collect::<Vec<_>>(),
            decisions,
            "decisions of {t}"
        );

        let usage: Vec<&Usage> = x
            .usage
            .iter()
            .filter(|((u, _, _), _)| u == tenant_uuid)
            .map(|(_, usage)| usage)
            .collect();
        let (from, to) = (
            NaiveDate::from_ymd_opt(2000, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(2100, 1, 1).unwrap(),
        );
        let read = read::usage::daily(&mut conn, t, from, to).await.unwrap();
        assert_eq!(read.iter().collect::<Vec<_>>(), usage, "usage of {t}");
        conn.execute("ROLLBACK").await.unwrap();
    }
}
