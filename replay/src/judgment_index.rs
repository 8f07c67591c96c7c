//! `judgment-index rebuild | verify | swap | status | discard`: the judgment index's
//! blue/green rebuild (decision 0028), driving [`IndexRebuild`].
//!
//! The embedder is made from the server's own configuration (`CASEBOOK_AI_PROVIDER`,
//! `CASEBOOK_MODELS_DIR`, `CASEBOOK_BEDROCK_*`, …), with `--model` choosing another model
//! to build the green index with; `verify` and `swap` make the one the green index records.

use std::sync::Arc;

use casebook_adapters::ai::local::{MINILM_CANDLE_MODEL_ID, MINILM_ONNX_MODEL_ID};
use casebook_adapters::ai::{AiConfig, AiProviders};
use casebook_adapters::postgres::HNSW_EF_SEARCH;
use casebook_domain::ids::TenantId;
use casebook_domain::ports::Embedder;
use casebook_projections::judgment_index::{
    self, index_status, IndexRebuild, IndexVerdict, IndexedModel, RecallCheck,
};
use casebook_projections::rebuild::{RebuildError, RebuildScope};
use casebook_projections::status::status_of;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::cli::Output;
use crate::{db, progress, Error, Verdict};

/// `judgment-index …`.
#[derive(Debug, Subcommand)]
pub enum JudgmentIndexCommand {
    /// Build a new ("green") judgment index beside the live one, from the log (resumable);
    /// searches keep reading the live index.
    Rebuild(IndexRebuildArgs),
    /// Check the green index: its rows per tenant against the log, and its recall on a
    /// sample of its judgments, each searched by its own text. Exit 1 when it fails.
    Verify(CheckArgs),
    /// Catch the green index up with the log, verify it, and swap it in for the live one in
    /// one transaction. Exit 1, swapping nothing, when it fails its verification.
    Swap(CheckArgs),
    /// Both indexes: models, partitions, rows; the live subscription and the green build.
    Status,
    /// Drop the green index.
    Discard,
}

/// `judgment-index rebuild`.
#[derive(Debug, Args)]
pub struct IndexRebuildArgs {
    /// Only this tenant's partition (keeping the index's model).
    #[arg(long)]
    pub tenant: Option<Uuid>,
    /// The embedding model of the new index: the server's configured one, the local
    /// all-MiniLM-L6-v2 (int8 in onnxruntime, or F32 in candle), or Titan Text Embeddings
    /// on Bedrock (`CASEBOOK_BEDROCK_EMBEDDING_MODEL`, `…_DIMENSIONS`).
    #[arg(long, value_enum, default_value_t = ModelChoice::Configured)]
    pub model: ModelChoice,
    /// Continue the green index in place from its checkpoint (default: discard it and start
    /// over).
    #[arg(long)]
    pub resume: bool,
    /// Events per transaction: every judgment among them is embedded before it commits.
    #[arg(long, default_value_t = 2_000)]
    pub batch_size: usize,
    /// Parallel workers building each partition's graph besides the rebuild's own backend:
    /// none leaves the database's other cores to the live searches; more build faster on a
    /// database with cores to spare.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub graph_workers: u32,
}

/// `judgment-index verify` and `swap`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Judgments sampled for the recall check.
    #[arg(long, default_value_t = RecallCheck::new(HNSW_EF_SEARCH).sample)]
    pub sample: usize,
    /// The least share of them found among their own search's top 10.
    #[arg(long, default_value_t = RecallCheck::new(HNSW_EF_SEARCH).min_recall)]
    pub min_recall: f64,
}

impl CheckArgs {
    fn recall(&self) -> RecallCheck {
        RecallCheck {
            sample: self.sample,
            min_recall: self.min_recall,
            ..RecallCheck::new(HNSW_EF_SEARCH)
        }
    }
}

/// The embedding model to build with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelChoice {
    /// The server's (`CASEBOOK_AI_PROVIDER` and friends).
    Configured,
    /// all-MiniLM-L6-v2, int8 in onnxruntime (the local default).
    Minilm,
    /// all-MiniLM-L6-v2, F32 in candle.
    MinilmCandle,
    /// Titan Text Embeddings on Bedrock.
    Titan,
}

impl ModelChoice {
    /// The configuration variables it sets over the environment's.
    fn overrides(self) -> Vec<(&'static str, String)> {
        let local = |runtime: &str| {
            vec![
                ("CASEBOOK_AI_PROVIDER", "local".to_owned()),
                ("CASEBOOK_LOCAL_EMBEDDINGS", runtime.to_owned()),
            ]
        };
        match self {
            Self::Configured => Vec::new(),
            Self::Minilm => local("onnx"),
            Self::MinilmCandle => local("candle"),
            Self::Titan => vec![("CASEBOOK_AI_PROVIDER", "bedrock".to_owned())],
        }
    }
}

/// The embedder of the server's configuration with `overrides` set over the environment.
async fn embedder_with(overrides: &[(&str, String)]) -> Result<Arc<dyn Embedder>, Error> {
    let config = AiConfig::from_lookup(|name| {
        overrides
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
            .or_else(|| std::env::var(name).ok())
    })?;
    Ok(AiProviders::from_config(&config).await.embedder)
}

/// The embedder making `model`'s vectors: the local MiniLM by its ids, any other model on
/// Bedrock with its recorded dimension.
async fn embedder_of(model: &IndexedModel) -> Result<Arc<dyn Embedder>, Error> {
    let overrides = match model.model.as_str() {
        MINILM_ONNX_MODEL_ID => ModelChoice::Minilm.overrides(),
        MINILM_CANDLE_MODEL_ID => ModelChoice::MinilmCandle.overrides(),
        other => vec![
            ("CASEBOOK_AI_PROVIDER", "bedrock".to_owned()),
            ("CASEBOOK_BEDROCK_EMBEDDING_MODEL", other.to_owned()),
            (
                "CASEBOOK_BEDROCK_EMBEDDING_DIMENSIONS",
                model.dimension.to_string(),
            ),
        ],
    };
    let embedder = embedder_with(&overrides).await?;
    if IndexedModel::of(embedder.as_ref()) != *model {
        return Err(Error::Usage(format!(
            "cannot make an embedder of {} ({} dimensions) from this configuration",
            model.model, model.dimension
        )));
    }
    Ok(embedder)
}

/// The maintainer's pool a rebuild runs on: its session, its writer and the log reader.
async fn pool() -> Result<PgPool, Error> {
    db::maintainer(4).await
}

fn scope_of(tenant: Option<Uuid>) -> RebuildScope {
    match tenant {
        Some(tenant) => RebuildScope::Tenant(TenantId::from_uuid(tenant)),
        None => RebuildScope::All,
    }
}

fn scope_json(scope: RebuildScope) -> Option<Uuid> {
    match scope {
        RebuildScope::All => None,
        RebuildScope::Tenant(tenant) => Some(*tenant.as_uuid()),
    }
}

/// The green index in place, as a rebuild to verify or swap: its scope and its model's
/// embedder.
async fn in_place(pool: &PgPool, check: &CheckArgs) -> Result<IndexRebuild, Error> {
    let found = IndexRebuild::in_place(pool).await?.ok_or_else(|| {
        Error::Usage("there is no green judgment index: run `judgment-index rebuild` first".into())
    })?;
    let embedder = embedder_of(&found.model).await?;
    Ok(
        IndexRebuild::new(pool.clone(), embedder, found.scope, check.recall())
            .with_vault(db::vault()?),
    )
}

/// How `rebuild` ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexRebuildReport {
    /// The tenant, for a one-tenant rebuild.
    pub tenant_id: Option<Uuid>,
    /// The green index's model.
    pub model: String,
    /// Its dimension.
    pub dimension: usize,
    /// Where this run started (0 for a fresh rebuild).
    pub resumed_from: i64,
    /// The last event applied.
    pub global_position: i64,
    /// Events applied by this run.
    pub applied: u64,
    /// Whether the green index caught up with the log (and its graphs are built).
    pub caught_up: bool,
}

/// Runs `rebuild`; Ctrl-C stops after the batch in flight (exit 3, `--resume` later).
pub async fn run_rebuild(args: IndexRebuildArgs, output: Output) -> Result<Verdict, Error> {
    let pool = pool().await?;
    let embedder = embedder_with(&args.model.overrides()).await?;
    let model = IndexedModel::of(embedder.as_ref());
    let rebuild = IndexRebuild::new(
        pool,
        embedder,
        scope_of(args.tenant),
        RecallCheck::new(HNSW_EF_SEARCH),
    )
    .with_vault(db::vault()?)
    .with_batch_size(args.batch_size)
    .with_graph_workers(args.graph_workers);
    if !args.resume {
        rebuild.discard().await?;
    }
    let bar = progress::bar(output, None, "events");
    let outcome = rebuild
        .build(progress::interrupted(), |p| {
            bar.set_length(p.total);
            bar.set_position(p.applied);
            if p.applied == p.total {
                // The graphs come next, a pass over each partition's rows: most of the time.
                bar.println("caught up with the log; building each tenant's graph");
            }
        })
        .await;
    bar.finish_and_clear();
    let outcome = outcome?;
    let report = IndexRebuildReport {
        tenant_id: args.tenant,
        model: model.model,
        dimension: model.dimension,
        resumed_from: outcome.resumed_from.global_position,
        global_position: outcome.checkpoint.global_position,
        applied: outcome.applied,
        caught_up: outcome.caught_up,
    };
    if output.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} the green judgment index ({}, {} dimensions): {} events applied (from position {} to {}){}",
            if report.caught_up { "built" } else { "stopped" },
            report.model,
            report.dimension,
            report.applied,
            report.resumed_from,
            report.global_position,
            if report.caught_up {
                "; next: `judgment-index verify`, then `judgment-index swap`"
            } else {
                ""
            }
        );
    }
    if !outcome.caught_up {
        return Err(Error::Interrupted);
    }
    Ok(Verdict::Passed)
}

/// A verdict as printed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerdictReport {
    /// Whether it passed.
    pub passes: bool,
    /// The tenant, for a one-tenant rebuild.
    pub tenant_id: Option<Uuid>,
    /// The green index's model.
    pub model: String,
    /// The point of the log it was verified at.
    pub global_position: i64,
    /// Rows per tenant.
    pub tenants: Vec<TenantReport>,
    /// Judgments searched for the recall.
    pub sampled: usize,
    /// Of them, found.
    pub found: usize,
    /// The share found.
    pub recall: f64,
    /// The least share wanted.
    pub min_recall: f64,
}

/// One tenant's rows as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantReport {
    /// The tenant.
    pub tenant_id: Uuid,
    /// Its active judgments by the log.
    pub expected: u64,
    /// Its rows in the green index.
    pub green: u64,
    /// Its rows in the live index.
    pub live: u64,
}

fn report_of(verdict: &IndexVerdict, scope: RebuildScope) -> VerdictReport {
    VerdictReport {
        passes: verdict.passes(),
        tenant_id: scope_json(scope),
        model: verdict.model.model.clone(),
        global_position: verdict.checkpoint.global_position,
        tenants: verdict
            .tenants
            .iter()
            .map(|t| TenantReport {
                tenant_id: *t.tenant.as_uuid(),
                expected: t.expected,
                green: t.green,
                live: t.live,
            })
            .collect(),
        sampled: verdict.recall.sampled,
        found: verdict.recall.found,
        recall: verdict.recall.recall(),
        min_recall: verdict.recall.check.min_recall,
    }
}

fn print_verdict(report: &VerdictReport, output: Output) -> Result<(), Error> {
    if output.json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    println!(
        "green judgment index ({}) at position {}:",
        report.model, report.global_position
    );
    for t in &report.tenants {
        println!(
            "{}  tenant {}: {} rows, {} active judgments in the log (live index: {} rows)",
            if t.expected == t.green {
                "equal  "
            } else {
                "DIFFERS"
            },
            t.tenant_id,
            t.green,
            t.expected,
            t.live
        );
    }
    println!(
        "{}  recall {:.3}: {} of {} sampled judgments found by their own text (at least {} wanted)",
        if report.recall >= report.min_recall {
            "passes "
        } else {
            "FAILS  "
        },
        report.recall,
        report.found,
        report.sampled,
        report.min_recall
    );
    Ok(())
}

/// Runs `verify`: 0 when the green index passes, 1 otherwise.
pub async fn run_verify(args: CheckArgs, output: Output) -> Result<Verdict, Error> {
    let pool = pool().await?;
    let rebuild = in_place(&pool, &args).await?;
    let verdict = rebuild.verify().await?;
    print_verdict(&report_of(&verdict, rebuild.scope()), output)?;
    Ok(if verdict.passes() {
        Verdict::Passed
    } else {
        Verdict::Failed
    })
}

/// Runs `swap`: 0 when swapped in, 1 when the verification refused it.
pub async fn run_swap(args: CheckArgs, output: Output) -> Result<Verdict, Error> {
    let pool = pool().await?;
    let rebuild = in_place(&pool, &args).await?;
    let bar = progress::bar(output, None, "events");
    let swapped = rebuild
        .swap(|p| {
            bar.set_length(p.total);
            bar.set_position(p.applied);
        })
        .await;
    bar.finish_and_clear();
    match swapped {
        Ok(verdict) => {
            let report = report_of(&verdict, rebuild.scope());
            if output.json {
                println!(
                    "{}",
                    serde_json::json!({ "swapped": true, "verdict": report })
                );
            } else {
                print_verdict(&report, output)?;
                println!(
                    "swapped in: the judgment index now holds {} vectors; deploy the processes with this model",
                    report.model
                );
            }
            Ok(Verdict::Passed)
        }
        Err(RebuildError::Unverified(why)) => {
            if output.json {
                println!(
                    "{}",
                    serde_json::json!({ "swapped": false, "refused": why })
                );
            } else {
                println!("not swapped: the green index failed its verification: {why}");
            }
            Ok(Verdict::Failed)
        }
        Err(err) => Err(err.into()),
    }
}

/// `status` as printed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    /// The live index's model.
    pub live_model: Option<String>,
    /// Its dimension.
    pub live_dimension: Option<usize>,
    /// Its partitions.
    pub live_partitions: u64,
    /// Its rows.
    pub live_rows: u64,
    /// The live subscription's state.
    pub live_state: Option<String>,
    /// Its checkpoint.
    pub live_position: Option<i64>,
    /// Events after it.
    pub live_lag_events: Option<i64>,
    /// Its last error (a process of another model waits with one).
    pub live_error: Option<String>,
    /// The green index, if any.
    pub green: Option<GreenReport>,
}

/// The green index as `status` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GreenReport {
    /// The tenant, for a one-tenant rebuild.
    pub tenant_id: Option<Uuid>,
    /// Its model.
    pub model: String,
    /// Its dimension.
    pub dimension: usize,
    /// Its checkpoint.
    pub global_position: i64,
    /// Events of its scope after it.
    pub lag_events: u64,
    /// Its partitions.
    pub partitions: u64,
    /// Of them, with their graph built.
    pub graphs: u64,
    /// Its rows.
    pub rows: u64,
}

/// Runs `status`.
pub async fn run_status(output: Output) -> Result<Verdict, Error> {
    let pool = db::maintainer(1).await?;
    let mut conn = pool.acquire().await?;
    let status = index_status(&mut conn).await?;
    let live = status_of(&mut conn, judgment_index::SUBSCRIPTION).await?;
    let report = StatusReport {
        live_model: status.live_model.as_ref().map(|m| m.model.clone()),
        live_dimension: status.live_model.as_ref().map(|m| m.dimension),
        live_partitions: status.live_partitions,
        live_rows: status.live_rows,
        live_state: live.as_ref().map(|s| s.state.to_string()),
        live_position: live.as_ref().map(|s| s.checkpoint.global_position),
        live_lag_events: live.as_ref().map(|s| s.lag_events),
        live_error: live.and_then(|s| s.last_error),
        green: status.green.map(|green| GreenReport {
            tenant_id: scope_json(green.in_place.scope),
            model: green.in_place.model.model,
            dimension: green.in_place.model.dimension,
            global_position: green.in_place.checkpoint.global_position,
            lag_events: green.lag_events,
            partitions: green.partitions,
            graphs: green.graphs,
            rows: green.rows,
        }),
    };
    if output.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(Verdict::Passed);
    }
    println!(
        "live   {} ({} dimensions): {} partitions, {} rows; subscription {} at position {}, {} events behind{}",
        report.live_model.as_deref().unwrap_or("no model yet"),
        report
            .live_dimension
            .map_or_else(|| "-".to_owned(), |d| d.to_string()),
        report.live_partitions,
        report.live_rows,
        report.live_state.as_deref().unwrap_or("not started"),
        report.live_position.unwrap_or(0),
        report.live_lag_events.unwrap_or(0),
        report
            .live_error
            .as_deref()
            .map(|e| format!("; last error: {e}"))
            .unwrap_or_default()
    );
    match &report.green {
        None => println!("green  none"),
        Some(green) => println!(
            "green  {} ({} dimensions) for {}: {} partitions ({} with their graph), {} rows; at position {}, {} events behind",
            green.model,
            green.dimension,
            green
                .tenant_id
                .map_or_else(|| "every tenant".to_owned(), |t| format!("tenant {t}")),
            green.partitions,
            green.graphs,
            green.rows,
            green.global_position,
            green.lag_events
        ),
    }
    Ok(Verdict::Passed)
}

/// Runs `discard`.
pub async fn run_discard(output: Output) -> Result<Verdict, Error> {
    IndexRebuild::discard_in_place(&pool().await?).await?;
    if output.json {
        println!("{}", serde_json::json!({ "discarded": true }));
    } else {
        println!("discarded the green judgment index");
    }
    Ok(Verdict::Passed)
}
