//! The composition root's parts: the application's use cases over the real adapters.
//! `casebook serve`, every Lambda `main` and the tests build them here and nowhere else.

use std::sync::Arc;

use casebook_adapters::ai::prompt::DIAGNOSIS_V2;
use casebook_adapters::ai::AiProviders;
use casebook_adapters::config::DatabaseConfig;
use casebook_adapters::event_store::{Appender, EventStore};
use casebook_adapters::postgres::{self, ConnectError, DbRole};
use casebook_adapters::records::PgRequestRecords;
use casebook_application::diagnosis::{Diagnoser, DiagnoserPorts};
use casebook_application::service::{Service, Stores};
use casebook_domain::upcast::upcasters;
use casebook_projections::judgment_index::IndexSearch;
use cqrs_es::Aggregate;
use sqlx::PgPool;

/// The application service over the event store and records in `pool` (which should run as
/// `casebook_app`).
pub fn service(pool: PgPool) -> Service {
    // One appender for every store: concurrent commands on any aggregates share commits.
    let appender = Appender::new(pool.clone());
    let stores = Stores {
        tenants: store(&appender),
        sessions: store(&appender),
        diagnoses: store(&appender),
        decisions: store(&appender),
        judgments: store(&appender),
    };
    Service::new(stores, Arc::new(PgRequestRecords::new(pool)))
}

fn store<A: Aggregate>(appender: &Appender) -> Arc<EventStore<A>> {
    Arc::new(EventStore::with_appender(appender.clone(), upcasters()))
}

/// The pool the diagnosis searches the judgment index on (as `casebook_search`): a worker
/// handles one message at a time, so one connection, which keeps the tenants' search plans.
pub async fn search_pool(config: &DatabaseConfig) -> Result<PgPool, ConnectError> {
    postgres::connect_database(config, DbRole::Search, 1).await
}

/// The diagnosis use case: commands through `service`, precedents from the index through
/// `search_pool` (see [`search_pool`]), the process's AI providers and their prices, and the
/// current system prompt.
pub fn diagnoser(service: Service, search_pool: PgPool, providers: &AiProviders) -> Diagnoser {
    Diagnoser::new(DiagnoserPorts {
        service,
        search: Arc::new(IndexSearch::new(search_pool)),
        embedder: providers.embedder.clone(),
        llm: providers.llm.clone(),
        pricing: Arc::new(providers.prices.clone()),
        prompt: (&DIAGNOSIS_V2).into(),
    })
}
