use casebook_domain::actor::{Actor, Role};
use casebook_domain::error::AccessError;
use std::collections::BTreeSet;

use casebook_domain::ids::{QueryId, SessionId, TenantId};
use casebook_domain::session::{
    SessionCommand, SessionError, SessionEvent, TenantSession, MAX_ATTACHMENTS,
};
use casebook_domain::values::UploadKey;
use cqrs_es::test::TestFramework;
use uuid::Uuid;

use crate::support::{actor, user, v, OTHER_TENANT, TENANT};

const SESSION: SessionId = SessionId::from_uuid(Uuid::from_u128(0x5E));
const QUERY: QueryId = QueryId::from_uuid(Uuid::from_u128(0x01));

fn session() -> TestFramework<TenantSession> {
    TestFramework::with(())
}

fn customer() -> Actor {
    actor(Role::Customer, TENANT)
}

fn key(path: &str) -> UploadKey {
    v(path)
}

/// An upload's key as `POST /v1/uploads` issues it to a customer of `tenant`.
fn upload(tenant: TenantId, n: u128, name: &str) -> UploadKey {
    key(&format!("{tenant}/uploads/{}/{name}", Uuid::from_u128(n)))
}

/// Opening with `attachments`, every one of them issued to the actor.
fn open(actor: Actor, attachments: Vec<UploadKey>, tenant_active: bool) -> SessionCommand {
    let issued = attachments.iter().cloned().collect();
    open_with_issued(actor, attachments, issued, tenant_active)
}

fn open_with_issued(
    actor: Actor,
    attachments: Vec<UploadKey>,
    uploads_issued_to_actor: BTreeSet<UploadKey>,
    tenant_active: bool,
) -> SessionCommand {
    SessionCommand::Open {
        actor,
        session_id: SESSION,
        subject: v("Q3 revenue recognition"),
        attachments,
        uploads_issued_to_actor,
        tenant_active,
    }
}

fn submit(actor: Actor, query_id: QueryId, tenant_active: bool) -> SessionCommand {
    SessionCommand::SubmitQuery {
        actor,
        query_id,
        text: v("Is this lease a finance lease?"),
        tenant_active,
    }
}

fn opened() -> Vec<SessionEvent> {
    vec![SessionEvent::SessionOpened {
        session_id: SESSION,
        tenant_id: TENANT,
        subject: v("Q3 revenue recognition"),
        attachments: vec![],
        opened_by: user(Role::Customer),
    }]
}

fn submitted(query_id: QueryId) -> SessionEvent {
    SessionEvent::QuerySubmitted {
        query_id,
        text: v("Is this lease a finance lease?"),
        submitted_by: user(Role::Customer),
    }
}

fn closed() -> Vec<SessionEvent> {
    let mut events = opened();
    events.push(SessionEvent::SessionClosed {
        closed_by: user(Role::Customer),
    });
    events
}

#[test]
fn a_customer_opens_a_session_with_their_tenants_attachments() {
    let attachment = upload(TENANT, 1, "lease.pdf");
    session()
        .given_no_previous_events()
        .when(open(customer(), vec![attachment.clone()], true))
        .then_expect_events(vec![SessionEvent::SessionOpened {
            session_id: SESSION,
            tenant_id: TENANT,
            subject: v("Q3 revenue recognition"),
            attachments: vec![attachment],
            opened_by: user(Role::Customer),
        }]);
}

#[test]
fn an_attachment_outside_the_tenants_prefix_is_refused() {
    let foreign = upload(OTHER_TENANT, 2, "secret.pdf");
    session()
        .given_no_previous_events()
        .when(open(
            customer(),
            vec![upload(TENANT, 1, "ok.pdf"), foreign.clone()],
            true,
        ))
        .then_expect_error(SessionError::ForeignAttachment { key: foreign });
}

#[test]
fn an_attachment_not_in_the_form_the_api_issues_is_refused() {
    let id = Uuid::from_u128(0xabcd_ef01);
    for odd in [
        format!("{TENANT}/uploads/{id}/../{id}/lease.pdf"),
        format!("{TENANT}//uploads/{id}/lease.pdf"),
        format!("{TENANT}/uploads/{id}//lease.pdf"),
        format!("{TENANT}/uploads/{id}/.."),
        format!("{TENANT}/uploads/{id}/"),
        format!("{TENANT}/finetune/{id}/lease.pdf"),
        format!("{TENANT}/uploads/{}/lease.pdf", id.simple()),
        format!(
            "{TENANT}/uploads/{}/lease.pdf",
            id.hyphenated().to_string().to_uppercase()
        ),
        format!("{TENANT}/lease.pdf"),
    ] {
        let odd = key(&odd);
        session()
            .given_no_previous_events()
            .when(open(customer(), vec![odd.clone()], true))
            .then_expect_error(SessionError::ForeignAttachment { key: odd });
    }
}

#[test]
fn an_upload_issued_to_another_customer_is_refused() {
    let theirs = upload(TENANT, 4, "their-lease.pdf");
    let mine = upload(TENANT, 5, "lease.pdf");
    session()
        .given_no_previous_events()
        .when(open_with_issued(
            customer(),
            vec![mine.clone(), theirs.clone()],
            BTreeSet::from([mine]),
            true,
        ))
        .then_expect_error(SessionError::ForeignAttachment { key: theirs });
}

#[test]
fn the_same_upload_attached_twice_is_refused() {
    let lease = upload(TENANT, 6, "lease.pdf");
    session()
        .given_no_previous_events()
        .when(open(customer(), vec![lease.clone(), lease.clone()], true))
        .then_expect_error(SessionError::DuplicateAttachment { key: lease });
}

#[test]
fn a_session_carries_at_most_twenty_attachments() {
    let many = |n: u128| {
        (0..n)
            .map(|i| upload(TENANT, 100 + i, "page.pdf"))
            .collect()
    };
    session()
        .given_no_previous_events()
        .when(open(customer(), many(MAX_ATTACHMENTS as u128), true))
        .then_expect_events(vec![SessionEvent::SessionOpened {
            session_id: SESSION,
            tenant_id: TENANT,
            subject: v("Q3 revenue recognition"),
            attachments: many(MAX_ATTACHMENTS as u128),
            opened_by: user(Role::Customer),
        }]);
    session()
        .given_no_previous_events()
        .when(open(customer(), many(MAX_ATTACHMENTS as u128 + 1), true))
        .then_expect_error(SessionError::TooManyAttachments {
            max: MAX_ATTACHMENTS,
        });
}

#[test]
fn a_suspended_tenant_cannot_open_a_session() {
    session()
        .given_no_previous_events()
        .when(open(customer(), vec![], false))
        .then_expect_error(SessionError::TenantSuspended);
}

#[test]
fn only_customers_open_sessions() {
    session()
        .given_no_previous_events()
        .when(open(actor(Role::Consultant, TENANT), vec![], true))
        .then_expect_error(SessionError::Access(AccessError::Forbidden {
            role: Role::Consultant,
        }));
}

#[test]
fn opening_an_open_session_again_is_refused() {
    session()
        .given(opened())
        .when(open(customer(), vec![], true))
        .then_expect_error(SessionError::AlreadyOpened);
}

#[test]
fn opening_over_another_tenants_session_is_not_found() {
    session()
        .given(opened())
        .when(open(actor(Role::Customer, OTHER_TENANT), vec![], true))
        .then_expect_error(SessionError::Access(AccessError::NotFound));
}

#[test]
fn a_customer_submits_a_query() {
    session()
        .given(opened())
        .when(submit(customer(), QUERY, true))
        .then_expect_events(vec![submitted(QUERY)]);
}

#[test]
fn a_closed_session_refuses_queries() {
    session()
        .given(closed())
        .when(submit(customer(), QUERY, true))
        .then_expect_error(SessionError::Closed);
}

#[test]
fn a_query_id_is_used_once() {
    let mut events = opened();
    events.push(submitted(QUERY));
    session()
        .given(events)
        .when(submit(customer(), QUERY, true))
        .then_expect_error(SessionError::DuplicateQuery { query_id: QUERY });
}

#[test]
fn a_suspended_tenant_cannot_submit_queries() {
    session()
        .given(opened())
        .when(submit(customer(), QUERY, false))
        .then_expect_error(SessionError::TenantSuspended);
}

#[test]
fn another_tenants_customer_cannot_submit() {
    session()
        .given(opened())
        .when(submit(actor(Role::Customer, OTHER_TENANT), QUERY, true))
        .then_expect_error(SessionError::Access(AccessError::NotFound));
}

#[test]
fn submitting_to_a_session_never_opened_is_not_found() {
    session()
        .given_no_previous_events()
        .when(submit(customer(), QUERY, true))
        .then_expect_error(SessionError::Access(AccessError::NotFound));
}

#[test]
fn an_admin_cannot_submit_queries() {
    session()
        .given(opened())
        .when(submit(actor(Role::Admin, TENANT), QUERY, true))
        .then_expect_error(SessionError::Access(AccessError::Forbidden {
            role: Role::Admin,
        }));
}

#[test]
fn a_customer_closes_their_session() {
    session()
        .given(opened())
        .when(SessionCommand::Close { actor: customer() })
        .then_expect_events(vec![SessionEvent::SessionClosed {
            closed_by: user(Role::Customer),
        }]);
}

#[test]
fn closing_twice_is_refused() {
    session()
        .given(closed())
        .when(SessionCommand::Close { actor: customer() })
        .then_expect_error(SessionError::Closed);
}

#[test]
fn another_tenants_customer_cannot_close() {
    session()
        .given(opened())
        .when(SessionCommand::Close {
            actor: actor(Role::Customer, OTHER_TENANT),
        })
        .then_expect_error(SessionError::Access(AccessError::NotFound));
}

/// A customer of the same tenant who did not open the session.
fn colleague() -> Actor {
    Actor {
        user_id: v("another-customer"),
        ..customer()
    }
}

#[test]
fn another_customer_of_the_tenant_cannot_learn_the_session_exists_by_opening_it() {
    session()
        .given(opened())
        .when(open(colleague(), vec![], true))
        .then_expect_error(SessionError::Access(AccessError::NotFound));
}

#[test]
fn another_customer_of_the_tenant_cannot_submit_to_the_session() {
    session()
        .given(opened())
        .when(submit(colleague(), QUERY, true))
        .then_expect_error(SessionError::Access(AccessError::NotFound));
}

#[test]
fn another_customer_of_the_tenant_cannot_close_the_session() {
    session()
        .given(opened())
        .when(SessionCommand::Close { actor: colleague() })
        .then_expect_error(SessionError::Access(AccessError::NotFound));
}
