use casebook_domain::actor::{Actor, Role};
use casebook_domain::error::AccessError;
use casebook_domain::ids::{QueryId, SessionId};
use casebook_domain::session::{SessionCommand, SessionError, SessionEvent, TenantSession};
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

fn open(actor: Actor, attachments: Vec<UploadKey>, tenant_active: bool) -> SessionCommand {
    SessionCommand::Open {
        actor,
        session_id: SESSION,
        subject: v("Q3 revenue recognition"),
        attachments,
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
    let attachment = key(&format!("{TENANT}/uploads/lease.pdf"));
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
    let foreign = key(&format!("{OTHER_TENANT}/uploads/secret.pdf"));
    session()
        .given_no_previous_events()
        .when(open(
            customer(),
            vec![key(&format!("{TENANT}/ok.pdf")), foreign.clone()],
            true,
        ))
        .then_expect_error(SessionError::ForeignAttachment { key: foreign });
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
