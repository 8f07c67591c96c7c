//! The judgment index against a real Postgres with pgvector: partitions per tenant, the
//! apply path a subscription drives, and the tenant-scoped search.
//!
//! Vectors come from a small bag-of-words embedder, so the expected order of results is
//! known exactly; the real models are tested in `casebook-adapters`.

#[path = "judgment_index/words.rs"]
mod words;

use casebook_adapters::postgres::HNSW_EF_SEARCH;
use casebook_domain::ids::{JudgmentId, TenantId, UserId};
use casebook_domain::judgment::{JudgmentContent, JudgmentEvent, JudgmentOrigin};
use casebook_domain::ports::Embedder;
use casebook_domain::values::{JudgmentBody, JudgmentTitle, Reason, Tag};
use casebook_projections::judgment_index::{self, IndexError};
use casebook_projections::log::{Checkpoint, RecordedEvent};
use casebook_tests::{DbRole, TestDb};
use serde_json::value::RawValue;
use sqlx::{PgConnection, PgPool, Row};
use words::{words_vector, WordsEmbedder, DIMENSION, WORDS};

/// Builds events as the store records them (cqrs-es payloads, generated tenant column).
struct Log {
    position: i64,
}

impl Log {
    fn new() -> Self {
        Self { position: 0 }
    }

    fn record(
        &mut self,
        tenant: TenantId,
        judgment: JudgmentId,
        event: &JudgmentEvent,
    ) -> RecordedEvent {
        use cqrs_es::DomainEvent;
        self.position += 1;
        RecordedEvent {
            checkpoint: Checkpoint {
                transaction_id: 1_000 + self.position,
                global_position: self.position,
            },
            tenant_id: *tenant.as_uuid(),
            aggregate_type: "Judgment".to_owned(),
            aggregate_id: judgment.to_string(),
            sequence: self.position,
            event_type: event.event_type(),
            event_version: event.event_version(),
            payload: RawValue::from_string(serde_json::to_string(event).unwrap()).unwrap(),
            opened: None,
            redacted: false,
            metadata: RawValue::from_string(format!(r#"{{"tenant_id":"{tenant}"}}"#)).unwrap(),
            recorded_at: chrono::Utc::now(),
        }
    }

    fn captured(
        &mut self,
        tenant: TenantId,
        judgment: JudgmentId,
        title: &str,
        body: &str,
    ) -> RecordedEvent {
        let event = JudgmentEvent::JudgmentCaptured {
            judgment_id: judgment,
            tenant_id: tenant,
            origin: JudgmentOrigin::Authored,
            content: content(title, body),
            captured_by: consultant(),
        };
        self.record(tenant, judgment, &event)
    }
}

fn content(title: &str, body: &str) -> JudgmentContent {
    JudgmentContent {
        title: JudgmentTitle::parse(title).unwrap(),
        body: JudgmentBody::parse(body).unwrap(),
        tags: vec![Tag::parse("heating").unwrap()],
    }
}

fn consultant() -> UserId {
    UserId::parse("consultant-1").unwrap()
}

async fn apply(
    pool: &PgPool,
    events: &[RecordedEvent],
    embedder: &dyn Embedder,
) -> Result<judgment_index::Applied, IndexError> {
    let mut tx = pool.begin().await.unwrap();
    let applied = judgment_index::apply(&mut tx, events, embedder).await?;
    tx.commit().await.unwrap();
    Ok(applied)
}

async fn search(pool: &PgPool, tenant: TenantId, query: &str, k: u32) -> Vec<(JudgmentId, f32)> {
    let mut conn = pool.acquire().await.unwrap();
    judgment_index::search(&mut conn, tenant, WORDS.model_id, &words_vector(query), k)
        .await
        .expect("search")
        .into_iter()
        .map(|hit| (hit.judgment_id, hit.score))
        .collect()
}

#[tokio::test]
async fn a_query_returns_only_its_own_tenants_judgments_best_first() {
    let db = TestDb::new().await;
    let projector = db.pool(DbRole::Projector, 2).await;
    let searcher = db.pool(DbRole::Search, 2).await;
    let (tenant_a, tenant_b) = (TenantId::new(), TenantId::new());
    let (pressure_a, noise_a, invoice_a) =
        (JudgmentId::new(), JudgmentId::new(), JudgmentId::new());
    let (pressure_b, roof_b) = (JudgmentId::new(), JudgmentId::new());
    let mut log = Log::new();
    let events = vec![
        log.captured(
            tenant_a,
            pressure_a,
            "Boiler pressure drops",
            "Boiler pressure drops overnight: refill and check the expansion vessel",
        ),
        log.captured(
            tenant_b,
            pressure_b,
            "Boiler pressure drops",
            "Boiler pressure drops overnight after a repair: check the relief valve",
        ),
        log.captured(
            tenant_a,
            noise_a,
            "Boiler bangs",
            "Boiler makes a banging noise: kettling, descale the heat exchanger",
        ),
        log.captured(
            tenant_a,
            invoice_a,
            "Invoice overdue",
            "Customer invoice payment overdue: send a reminder",
        ),
        log.captured(
            tenant_b,
            roof_b,
            "Roof leak",
            "Roof leaks in heavy rain: replace the flashing",
        ),
    ];
    let applied = apply(&projector, &events, &WORDS).await.expect("apply");
    assert_eq!(applied.upserted, 5);
    assert_eq!(applied.partitions_created, 2);

    let hits = search(&searcher, tenant_a, "boiler pressure drops overnight", 10).await;
    let ids: Vec<JudgmentId> = hits.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        vec![pressure_a, noise_a, invoice_a],
        "own tenant only, best first"
    );
    assert!(hits.windows(2).all(|pair| pair[0].1 >= pair[1].1));
    assert!(hits[0].1 > 0.7, "the close judgment scores high: {hits:?}");

    let hits = search(&searcher, tenant_b, "boiler pressure drops overnight", 1).await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].0, pressure_b);
}

#[tokio::test]
async fn rows_record_tenant_position_model_dimension_and_content() {
    let db = TestDb::new().await;
    let projector = db.pool(DbRole::Projector, 2).await;
    let tenant = TenantId::new();
    let judgment = JudgmentId::new();
    let mut log = Log::new();
    apply(
        &projector,
        &[log.captured(tenant, judgment, "Boiler bangs", "Descale it")],
        &WORDS,
    )
    .await
    .expect("apply");
    let row = sqlx::query(
        "SELECT tenant_id, source_position, embedding_model, embedding_dim, title, body, tags,
                vector_dims(embedding) AS dims, tableoid::regclass::text AS partition
           FROM judgment_index WHERE judgment_id = $1",
    )
    .bind(judgment.as_uuid())
    .fetch_one(&projector)
    .await
    .unwrap();
    assert_eq!(row.get::<uuid::Uuid, _>("tenant_id"), *tenant.as_uuid());
    assert_eq!(row.get::<i64, _>("source_position"), 1);
    assert_eq!(row.get::<String, _>("embedding_model"), "test/words-v1");
    assert_eq!(row.get::<i32, _>("embedding_dim"), 64);
    assert_eq!(row.get::<i32, _>("dims"), 64);
    assert_eq!(row.get::<String, _>("title"), "Boiler bangs");
    assert_eq!(row.get::<String, _>("body"), "Descale it");
    assert_eq!(
        row.get::<Vec<String>, _>("tags"),
        vec!["heating".to_owned()]
    );
    assert_eq!(
        row.get::<String, _>("partition"),
        format!("judgment_index_{}", tenant.as_uuid().simple())
    );
}

#[tokio::test]
async fn a_revision_replaces_the_content_a_retirement_removes_it_and_replays_change_nothing() {
    let db = TestDb::new().await;
    let projector = db.pool(DbRole::Projector, 2).await;
    let searcher = db.pool(DbRole::Search, 2).await;
    let tenant = TenantId::new();
    let (kept, retired) = (JudgmentId::new(), JudgmentId::new());
    let mut log = Log::new();
    let first = vec![
        log.captured(tenant, kept, "Roof leak", "Roof leaks in rain"),
        log.captured(
            tenant,
            retired,
            "Gutter blocked",
            "Gutter blocked by leaves",
        ),
    ];
    apply(&projector, &first, &WORDS).await.expect("apply");
    let revised = JudgmentEvent::JudgmentRevised {
        content: content("Boiler pressure", "Boiler pressure drops overnight"),
        revised_by: consultant(),
    };
    let retirement = JudgmentEvent::JudgmentRetired {
        reason: Reason::parse("outdated").unwrap(),
        retired_by: consultant(),
    };
    let second = vec![
        log.record(tenant, kept, &revised),
        log.record(tenant, retired, &retirement),
    ];
    let applied = apply(&projector, &second, &WORDS).await.expect("apply");
    assert_eq!((applied.upserted, applied.retired), (1, 1));

    let hits = search(&searcher, tenant, "boiler pressure drops overnight", 10).await;
    assert_eq!(hits.len(), 1, "the retired judgment is gone");
    assert_eq!(hits[0].0, kept);
    assert!(hits[0].1 > 0.9, "searched by its revised content: {hits:?}");

    // The second batch again changes nothing; nor does the older capture of the revised
    // judgment: a row is only replaced by a later event.
    let applied = apply(&projector, &second, &WORDS).await.expect("replay");
    assert_eq!((applied.upserted, applied.retired), (0, 0));
    let applied = apply(&projector, &first[..1], &WORDS)
        .await
        .expect("replay");
    assert_eq!(applied.upserted, 0);
    let title: String =
        sqlx::query_scalar("SELECT title FROM judgment_index WHERE judgment_id = $1")
            .bind(kept.as_uuid())
            .fetch_one(&projector)
            .await
            .unwrap();
    assert_eq!(title, "Boiler pressure");
}

#[tokio::test]
async fn an_embedder_or_a_query_of_another_model_is_refused_and_may_be_retried() {
    let db = TestDb::new().await;
    let projector = db.pool(DbRole::Projector, 2).await;
    let searcher = db.pool(DbRole::Search, 1).await;
    let tenant = TenantId::new();
    let mut log = Log::new();
    let judgment = JudgmentId::new();
    apply(
        &projector,
        &[log.captured(tenant, judgment, "Boiler", "boiler pressure")],
        &WORDS,
    )
    .await
    .expect("apply");
    let same_dimension = WordsEmbedder {
        model_id: "test/words-v2",
        dimension: DIMENSION,
    };
    let event = log.captured(tenant, JudgmentId::new(), "B", "b");
    let err = apply(&projector, std::slice::from_ref(&event), &same_dimension)
        .await
        .unwrap_err();
    assert!(matches!(err, IndexError::ModelChanged { .. }), "{err:?}");
    // Retried, not failed: a deploy of the index's model, or the swap of a rebuild for this
    // one, resolves it (the live subscription waits meanwhile).
    assert!(err.is_retryable());

    // A query of another model is refused, whether its vectors happen to have the index's
    // dimension or not; the index's own model still finds the judgment.
    let mut conn = searcher.acquire().await.unwrap();
    for (model, dimension) in [("test/words-v2", DIMENSION), ("test/words-v3", 48)] {
        let query = words::words_vector_of("boiler pressure", dimension);
        let err = judgment_index::search(&mut conn, tenant, model, &query, 10)
            .await
            .unwrap_err();
        match &err {
            IndexError::QueryModel {
                indexed_model,
                query_model,
            } => assert_eq!(
                (indexed_model.as_str(), query_model.as_str()),
                (WORDS.model_id, model)
            ),
            other => panic!("{model}: {other:?}"),
        }
        assert!(err.is_retryable());
    }
    let hits = judgment_index::search(
        &mut conn,
        tenant,
        WORDS.model_id,
        &words_vector("boiler pressure"),
        10,
    )
    .await
    .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].judgment_id, judgment);
}

#[tokio::test]
async fn a_tenant_partition_can_be_created_ahead_of_its_first_judgment() {
    let db = TestDb::new().await;
    let projector = db.pool(DbRole::Projector, 2).await;
    let searcher = db.pool(DbRole::Search, 2).await;
    let tenant = TenantId::new();
    let mut conn = projector.acquire().await.unwrap();
    assert!(
        judgment_index::ensure_tenant_partition(&mut conn, tenant, &WORDS)
            .await
            .unwrap()
    );
    assert!(
        !judgment_index::ensure_tenant_partition(&mut conn, tenant, &WORDS)
            .await
            .unwrap()
    );
    drop(conn);
    assert!(search(&searcher, tenant, "anything", 10).await.is_empty());
    let index: String = sqlx::query_scalar("SELECT pg_get_indexdef($1::regclass)")
        .bind(format!("judgment_index_{}_hnsw", tenant.as_uuid().simple()))
        .fetch_one(&projector)
        .await
        .unwrap();
    assert!(
        index.contains("halfvec_cosine_ops) WITH (m='16', ef_construction='400')"),
        "{index}"
    );
}

/// The plan of the statement [`judgment_index::search`] prepares for `tenant`, under the
/// search role's session settings.
async fn explain_search(conn: &mut PgConnection, tenant: TenantId) -> String {
    sqlx::raw_sql(&format!(
        "PREPARE search(uuid, real[], integer) AS {}",
        judgment_index::search_statement(tenant, DIMENSION)
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    let query: Vec<String> = words_vector("boiler pressure")
        .iter()
        .map(f32::to_string)
        .collect();
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN EXECUTE search('{tenant}', '{{{}}}', 10)",
        query.join(",")
    ))
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    sqlx::raw_sql("DEALLOCATE search")
        .execute(&mut *conn)
        .await
        .unwrap();
    plan.join("\n")
}

#[tokio::test]
async fn the_prepared_search_walks_the_tenants_hnsw_index_also_on_a_small_partition() {
    let db = TestDb::new().await;
    let projector = db.pool(DbRole::Projector, 2).await;
    let (tenant_a, tenant_b) = (TenantId::new(), TenantId::new());
    let mut log = Log::new();
    let topics = [
        "boiler", "pressure", "roof", "invoice", "gutter", "radiator", "valve", "pump",
    ];
    let events: Vec<RecordedEvent> = (0..5_030)
        .map(|i| {
            let tenant = if i < 30 { tenant_b } else { tenant_a };
            let text = format!(
                "{} {} case {i}",
                topics[i % topics.len()],
                topics[(i / 8) % topics.len()]
            );
            log.captured(tenant, JudgmentId::new(), &text, &text)
        })
        .collect();
    apply(&projector, &events, &WORDS).await.expect("apply");
    // As autovacuum would (ANALYZE needs the tables' owner).
    sqlx::query("ANALYZE judgment_index")
        .execute(&mut db.superuser().await)
        .await
        .unwrap();

    let searcher = db.pool(DbRole::Search, 1).await;
    let mut conn = searcher.acquire().await.unwrap();
    // Tenant B's 30 rows are few enough for the planner to prefer an exact scan; the search
    // walks B's graph all the same.
    for (tenant, other) in [(tenant_a, tenant_b), (tenant_b, tenant_a)] {
        let own_index = format!("judgment_index_{}_hnsw", tenant.as_uuid().simple());
        let other_partition = format!("judgment_index_{}", other.as_uuid().simple());
        let plan = explain_search(&mut conn, tenant).await;
        assert!(
            plan.contains(&format!("Index Scan using {own_index}")),
            "{plan}"
        );
        assert!(
            !plan.contains(&other_partition) && !plan.contains("Sort"),
            "{plan}"
        );
    }

    // The statement the product prepares is planned once per connection, not per call.
    for _ in 0..3 {
        judgment_index::search(
            &mut conn,
            tenant_b,
            WORDS.model_id,
            &words_vector("pump valve"),
            10,
        )
        .await
        .unwrap();
    }
    let (generic, custom): (i64, i64) = sqlx::query_as(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
    )
    .bind(judgment_index::search_statement(tenant_b, DIMENSION))
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!((generic, custom), (3, 0));
}

#[tokio::test]
async fn a_search_finds_nothing_while_the_tenant_has_no_partition() {
    let db = TestDb::new().await;
    let projector = db.pool(DbRole::Projector, 2).await;
    // One connection, so every search below reuses the statement the first one prepared.
    let searcher = db.pool(DbRole::Search, 1).await;
    let tenant = TenantId::new();
    let mut log = Log::new();
    let judgment = JudgmentId::new();
    let captured = log.captured(tenant, judgment, "boiler", "boiler pressure");
    assert!(
        search(&searcher, tenant, "boiler", 10).await.is_empty(),
        "before the index has a model"
    );
    apply(&projector, std::slice::from_ref(&captured), &WORDS)
        .await
        .expect("apply");
    let found: Vec<JudgmentId> = search(&searcher, tenant, "boiler", 10)
        .await
        .into_iter()
        .map(|hit| hit.0)
        .collect();
    assert_eq!(found, [judgment]);
}

#[tokio::test]
async fn the_search_role_reads_the_judgment_index_partitions_and_nothing_else() {
    let db = TestDb::new().await;
    let projector = db.pool(DbRole::Projector, 2).await;
    let tenant = TenantId::new();
    let mut log = Log::new();
    apply(
        &projector,
        &[log.captured(tenant, JudgmentId::new(), "boiler", "boiler pressure")],
        &WORDS,
    )
    .await
    .expect("apply");
    let searcher = db.pool(DbRole::Search, 1).await;
    let settings: Vec<String> = sqlx::query_scalar(
        "SELECT current_setting(name)
           FROM unnest(ARRAY['hnsw.ef_search', 'hnsw.iterative_scan', 'enable_sort', 'jit',
                             'plan_cache_mode']) WITH ORDINALITY AS s(name, i)
          ORDER BY i",
    )
    .fetch_all(&searcher)
    .await
    .unwrap();
    assert_eq!(
        settings,
        [
            HNSW_EF_SEARCH.to_string().as_str(),
            "off",
            "off",
            "off",
            "force_generic_plan"
        ]
    );
    // The search role reads partitions and nothing else; the request-path role, which
    // searched through a function before, reads nothing of the index (consultants list their
    // judgments from the `judgments` read model).
    let app = db.pool(DbRole::App, 1).await;
    let partition = format!("judgment_index_{}", tenant.as_uuid().simple());
    let as_app = |sql: &str| format!("BEGIN; SET LOCAL ROLE casebook_app; {sql}");
    let refusals = [
        (&searcher, "SELECT 1 FROM events".to_owned()),
        (&searcher, "SELECT 1 FROM sessions".to_owned()),
        (&searcher, "SELECT 1 FROM judgment_index".to_owned()),
        (&searcher, "SELECT 1 FROM judgment_index_model".to_owned()),
        (&app, as_app("SELECT embedding FROM judgment_index")),
        (&app, as_app("SELECT title, body, tags FROM judgment_index")),
        (&app, as_app("SELECT 1 FROM judgment_index_model")),
        (&app, as_app(&format!("SELECT title FROM {partition}"))),
    ];
    for (pool, sql) in refusals {
        let mut conn = pool.acquire().await.unwrap();
        let refused = sqlx::raw_sql(&sql)
            .execute(&mut *conn)
            .await
            .expect_err(&sql);
        assert_eq!(
            refused.as_database_error().and_then(|err| err.code()),
            Some("42501".into()),
            "{sql}: {refused}"
        );
        sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.ok();
    }
}

#[tokio::test]
async fn a_search_for_more_judgments_than_the_graph_walk_holds_returns_them_all_in_order() {
    let db = TestDb::new().await;
    let projector = db.pool(DbRole::Projector, 2).await;
    let tenant = TenantId::new();
    let mut log = Log::new();
    let wanted = HNSW_EF_SEARCH + 20;
    let events: Vec<RecordedEvent> = (0..wanted + 10)
        .map(|i| {
            let text = format!("boiler pressure valve {i}");
            log.captured(tenant, JudgmentId::new(), &text, &text)
        })
        .collect();
    apply(&projector, &events, &WORDS).await.expect("apply");

    let searcher = db.pool(DbRole::Search, 1).await;
    let mut conn = searcher.acquire().await.unwrap();
    let hits = judgment_index::search(
        &mut conn,
        tenant,
        WORDS.model_id,
        &words_vector("boiler valve"),
        wanted,
    )
    .await
    .unwrap();
    assert_eq!(hits.len(), wanted as usize);
    assert!(
        hits.windows(2).all(|pair| pair[0].score >= pair[1].score),
        "best first: {:?}",
        hits.iter().map(|hit| hit.score).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn retired_judgments_nearest_the_query_do_not_crowd_out_the_live_ones() {
    let db = TestDb::new().await;
    let projector = db.pool(DbRole::Projector, 2).await;
    let tenant = TenantId::new();
    let mut log = Log::new();
    // More retired judgments right at the query than one walk holds candidates: their rows
    // stay in the graph until vacuum, and the walk meets them first.
    let near: Vec<JudgmentId> = (0..HNSW_EF_SEARCH + 10)
        .map(|_| JudgmentId::new())
        .collect();
    let far: Vec<JudgmentId> = (0..10).map(|_| JudgmentId::new()).collect();
    let mut events: Vec<RecordedEvent> = near
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let text = format!("boiler valve pressure {i}");
            log.captured(tenant, id, &text, &text)
        })
        .collect();
    events.extend(far.iter().enumerate().map(|(i, &id)| {
        let text = format!("roof gutter boiler {i}");
        log.captured(tenant, id, &text, &text)
    }));
    apply(&projector, &events, &WORDS).await.expect("apply");
    let retirement = JudgmentEvent::JudgmentRetired {
        reason: Reason::parse("superseded").unwrap(),
        retired_by: consultant(),
    };
    let retirements: Vec<RecordedEvent> = near
        .iter()
        .map(|&id| log.record(tenant, id, &retirement))
        .collect();
    apply(&projector, &retirements, &WORDS)
        .await
        .expect("apply");

    let searcher = db.pool(DbRole::Search, 1).await;
    let mut conn = searcher.acquire().await.unwrap();
    let hits = judgment_index::search(
        &mut conn,
        tenant,
        WORDS.model_id,
        &words_vector("boiler valve pressure"),
        10,
    )
    .await
    .unwrap();
    let mut found: Vec<JudgmentId> = hits.iter().map(|hit| hit.judgment_id).collect();
    let mut live = far.clone();
    found.sort_by_key(ToString::to_string);
    live.sort_by_key(ToString::to_string);
    assert_eq!(found, live, "all ten live judgments, none of the retired");
    // The walk that found them scanned iteratively; the connection's next searches do not.
    let iterative: String = sqlx::query_scalar("SHOW hnsw.iterative_scan")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(iterative, "off");
}

#[tokio::test]
async fn an_index_deployed_before_half_precision_and_the_search_role_upgrades_in_place() {
    // As a deployment stood before `20261203000001_judgment_index_halfvec.sql`: single
    // precision vectors, partitions the search role did not exist for.
    let db = TestDb::migrated_before(20261203000001).await;
    // Today's writer fills the column of the erasure's purge (added later, `IF NOT EXISTS`).
    sqlx::raw_sql("ALTER TABLE judgment_index ADD COLUMN customer text")
        .execute(&mut db.superuser().await)
        .await
        .unwrap();
    let projector = db.pool(DbRole::Projector, 2).await;
    let (tenant_a, tenant_b) = (TenantId::new(), TenantId::new());
    let (boiler, roof, other_boiler) = (JudgmentId::new(), JudgmentId::new(), JudgmentId::new());
    let mut log = Log::new();
    let before = [
        log.captured(
            tenant_a,
            boiler,
            "boiler",
            "boiler pressure drops overnight",
        ),
        log.captured(tenant_a, roof, "roof", "roof tiles slipped in the storm"),
        log.captured(
            tenant_b,
            other_boiler,
            "boiler",
            "boiler pressure drops overnight",
        ),
    ];
    apply(&projector, &before, &WORDS)
        .await
        .expect("apply to the old schema");

    // The deployment's login acts as the application; the upgrade lets it search too.
    let login = format!("casebook_upgrade_{}", uuid::Uuid::new_v4().simple());
    let mut superuser = db.superuser().await;
    sqlx::raw_sql(&format!(
        "CREATE ROLE {login} LOGIN; GRANT casebook_app TO {login}"
    ))
    .execute(&mut superuser)
    .await
    .unwrap();

    casebook_adapters::postgres::MIGRATOR
        .run(&mut superuser)
        .await
        .expect("upgrade");

    let may_search: bool =
        sqlx::query_scalar("SELECT pg_has_role($1, 'casebook_search', 'MEMBER')")
            .bind(&login)
            .fetch_one(&mut superuser)
            .await
            .unwrap();
    sqlx::raw_sql(&format!("DROP ROLE {login}"))
        .execute(&mut superuser)
        .await
        .unwrap();
    assert!(may_search, "{login} was not granted the search role");

    let column: String = sqlx::query_scalar(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
          WHERE attrelid = 'judgment_index'::regclass AND attname = 'embedding'",
    )
    .fetch_one(&projector)
    .await
    .unwrap();
    assert_eq!(column, "halfvec");
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT pg_get_indexdef(i.indexrelid)
           FROM pg_inherits p JOIN pg_index i ON i.indrelid = p.inhrelid
          WHERE p.inhparent = 'judgment_index'::regclass AND NOT i.indisprimary",
    )
    .fetch_all(&projector)
    .await
    .unwrap();
    assert_eq!(indexes.len(), 2, "{indexes:?}");
    for index in &indexes {
        assert!(
            index.contains("halfvec_cosine_ops") && index.contains("ef_construction='400'"),
            "{index}"
        );
    }

    // The rows written before the upgrade are found by the search role, tenant by tenant,
    // and the projector goes on writing to the upgraded partitions.
    let gutter = JudgmentId::new();
    apply(
        &projector,
        &[log.captured(tenant_a, gutter, "gutter", "boiler flue near the gutter")],
        &WORDS,
    )
    .await
    .expect("apply after the upgrade");
    let searcher = db.pool(DbRole::Search, 1).await;
    let found = |hits: Vec<(JudgmentId, f32)>| hits.into_iter().map(|hit| hit.0).collect();
    let hits_a: Vec<JudgmentId> = found(search(&searcher, tenant_a, "boiler pressure", 10).await);
    assert_eq!(hits_a.first(), Some(&boiler), "{hits_a:?}");
    assert!(
        hits_a.contains(&roof) && hits_a.contains(&gutter),
        "{hits_a:?}"
    );
    assert!(!hits_a.contains(&other_boiler), "{hits_a:?}");
    let hits_b: Vec<JudgmentId> = found(search(&searcher, tenant_b, "boiler pressure", 10).await);
    assert_eq!(hits_b, [other_boiler]);
}
