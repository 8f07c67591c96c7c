//! The event store with a vault (decision 0027), against the real Postgres: personal fields
//! are stored sealed and load in the clear; once the subject's key is destroyed they load as
//! redactions, and nothing more of theirs is recorded.

use std::collections::BTreeSet;
use std::sync::Arc;

use casebook_adapters::event_store::EventStore;
use casebook_adapters::postgres::{begin_for_tenants, Access, DbRole};
use casebook_application::ports::CommandError;
use casebook_domain::actor::{Actor, Role};
use casebook_domain::ids::{QueryId, SessionId, TenantId, UserId};
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::session::{SessionCommand, SessionError, SessionEvent, TenantSession};
use casebook_domain::values::{QueryText, Subject};
use casebook_tests::TestDb;
use casebook_vault::root::LocalRootKey;
use casebook_vault::{keys, Vault};
use sqlx::PgPool;
use uuid::Uuid;

const SUBJECT_LINE: &str = "Ann Smith's lease on 4 Elm Row";
const QUERY: &str = "May my landlord Ann Smith keep the deposit?";

struct Scene {
    db: TestDb,
    store: EventStore<TenantSession>,
    tenant: TenantId,
    customer: Actor,
}

impl Scene {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let pool = db.pool(DbRole::App, 4).await;
        let vault = Arc::new(Vault::new(Arc::new(
            LocalRootKey::generate().expect("a key"),
        )));
        let tenant = TenantId::from_uuid(Uuid::new_v4());
        let customer = Actor {
            user_id: UserId::parse(format!("customer-{}", Uuid::new_v4())).expect("an id"),
            tenant_id: tenant,
            role: Role::Customer,
        };
        Self {
            store: EventStore::new(pool, vec![]).with_vault(vault),
            db,
            tenant,
            customer,
        }
    }

    async fn open_and_ask(
        &self,
        customer: &Actor,
        session: SessionId,
    ) -> Result<(), CommandError<SessionError>> {
        let metadata = EventMetadata::new(customer, "req-open", Source::Api).to_map();
        self.store
            .execute_new(
                &session.to_string(),
                SessionCommand::Open {
                    actor: customer.clone(),
                    session_id: session,
                    subject: Subject::parse(SUBJECT_LINE).expect("a subject"),
                    attachments: vec![],
                    uploads_issued_to_actor: BTreeSet::new(),
                    tenant_active: true,
                },
                &(),
                metadata,
            )
            .await?;
        let metadata = EventMetadata::new(customer, "req-ask", Source::Api).to_map();
        self.store
            .execute(
                &session.to_string(),
                SessionCommand::SubmitQuery {
                    actor: customer.clone(),
                    query_id: QueryId::new(),
                    text: QueryText::parse(QUERY).expect("a query"),
                    tenant_active: true,
                },
                &(),
                metadata,
            )
            .await?;
        Ok(())
    }

    async fn loaded(&self, session: SessionId) -> Vec<SessionEvent> {
        casebook_application::ports::EventRepository::load_events(
            &self.store,
            self.tenant,
            &session.to_string(),
        )
        .await
        .expect("the stream loads")
        .into_iter()
        .map(|envelope| envelope.payload)
        .collect()
    }

    /// Every stored payload, as the log holds it.
    async fn stored_payloads(&self) -> String {
        let log: PgPool = self.db.pool(DbRole::Projector, 1).await;
        let payloads: Vec<String> =
            sqlx::query_scalar("SELECT payload::text FROM events ORDER BY global_position")
                .fetch_all(&log)
                .await
                .expect("the log");
        payloads.join("\n")
    }

    /// Erases the customer as the request path does, in their tenant's scope.
    async fn erase(&self) {
        let pool = self.db.pool(DbRole::App, 1).await;
        let tenant = *self.tenant.as_uuid();
        let mut tx = begin_for_tenants(&pool, Access::ReadWrite, &[tenant])
            .await
            .expect("a transaction");
        assert!(
            keys::erase_subject(&mut tx, tenant, self.customer.user_id.as_str())
                .await
                .expect("erases")
        );
        tx.commit().await.expect("commits");
    }
}

fn texts(events: &[SessionEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            SessionEvent::SessionOpened { subject, .. } => Some(subject.to_string()),
            SessionEvent::QuerySubmitted { text, .. } => Some(text.to_string()),
            SessionEvent::SessionClosed { .. } => None,
        })
        .collect()
}

#[tokio::test]
async fn personal_fields_are_stored_sealed_and_load_in_the_clear() {
    let scene = Scene::new().await;
    let session = SessionId::new();
    scene
        .open_and_ask(&scene.customer, session)
        .await
        .expect("recorded");

    let stored = scene.stored_payloads().await;
    assert!(
        !stored.contains("Ann Smith"),
        "plaintext in the log: {stored}"
    );
    assert!(stored.contains("\"sealed\""));
    assert!(stored.contains(&scene.customer.user_id.to_string()));

    assert_eq!(texts(&scene.loaded(session).await), [SUBJECT_LINE, QUERY]);
}

#[tokio::test]
async fn an_erased_subjects_fields_load_as_redactions_and_nothing_more_of_theirs_is_recorded() {
    let scene = Scene::new().await;
    let session = SessionId::new();
    scene
        .open_and_ask(&scene.customer, session)
        .await
        .expect("recorded");

    scene.erase().await;

    assert_eq!(
        texts(&scene.loaded(session).await),
        ["[erased]", "[erased]"]
    );
    let refused = scene.open_and_ask(&scene.customer, SessionId::new()).await;
    assert!(
        matches!(&refused, Err(CommandError::Invalid(reason)) if reason.contains("erased")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn another_subjects_data_is_untouched_by_an_erasure() {
    let scene = Scene::new().await;
    let other = Actor {
        user_id: UserId::parse("customer-other").expect("an id"),
        ..scene.customer.clone()
    };
    let (erased, kept) = (SessionId::new(), SessionId::new());
    scene
        .open_and_ask(&scene.customer, erased)
        .await
        .expect("recorded");
    scene.open_and_ask(&other, kept).await.expect("recorded");

    scene.erase().await;

    assert_eq!(texts(&scene.loaded(kept).await), [SUBJECT_LINE, QUERY]);
    assert_eq!(texts(&scene.loaded(erased).await), ["[erased]", "[erased]"]);
}
