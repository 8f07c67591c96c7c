//! The command line, and which module runs each subcommand.

use std::path::PathBuf;

use casebook_projections::tlog::LogName;
use clap::{Args, Parser, Subcommand, ValueEnum};
use uuid::Uuid;

use crate::bound::Bound;
use crate::erasure::ReceiptArgs;
use crate::judgment_index::JudgmentIndexCommand;
use crate::rebuild::Target;
use crate::sink::Destination;
use crate::state::AggregateRef;
use crate::stream::AggregateFilter;
use crate::verifiable::{self, LogCheckArgs, ProveArgs};
use crate::{
    access_log, audit, db, erasure, judgment_index, rebuild, state, stream, Error, Verdict,
};

/// Replay a tenant's event log: stream it, rebuild an aggregate's past state, verify the
/// audit chain, export and verify the access log, rebuild projections and the judgment index.
///
/// Reads `DATABASE_URL` like the server. Auditor commands (stream, state, audit, access-log,
/// status) connect as the read-only `casebook_auditor` role; rebuild, verify and swap (and
/// every `judgment-index` command) run as the connecting user, which must own the read-model
/// tables. `judgment-index` embeds with the server's AI configuration (`CASEBOOK_AI_PROVIDER`,
/// `CASEBOOK_MODELS_DIR`, `CASEBOOK_BEDROCK_*`, …).
///
/// Exit codes: 0 ok, 1 verification failed, 2 usage error, 3 runtime error.
#[derive(Debug, Parser)]
#[command(name = "casebook-replay", version, propagate_version = true)]
pub struct Cli {
    /// Machine-readable output: one JSON document (or JSON line) per result.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars (they are already off when stderr is not a terminal).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// A tenant's events in global (reading) order with full metadata, streamed.
    Stream(StreamArgs),
    /// An aggregate's state as it was, replayed through the domain (upcasters applied).
    State(StateArgs),
    /// The audit hash chain.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The access log: who read, changed or was refused what through the API.
    #[command(subcommand)]
    AccessLog(AccessLogCommand),
    /// Rebuild projections from history into shadow tables (resumable).
    Rebuild(RebuildArgs),
    /// Compare rebuilt shadow tables with the live ones by digest.
    Verify(TargetArgs),
    /// Swap rebuilt shadow tables in for the live ones (after `verify`).
    Swap(TargetArgs),
    /// Every subscription with its checkpoint, lag, state and last error.
    Status,
    /// The judgment index's blue/green rebuild: a new index built beside the live one (for
    /// another embedding model, or to repair it), verified, and swapped in.
    #[command(subcommand)]
    JudgmentIndex(JudgmentIndexCommand),
    /// A data subject's erasure.
    #[command(subcommand)]
    Erasure(ErasureCommand),
}

/// `erasure …`.
#[derive(Debug, Subcommand)]
pub enum ErasureCommand {
    /// Check an erasure's receipt offline: the audit row of the erasure, proven in a
    /// checkpoint signed with the operator's published key.
    Verify(ReceiptArgs),
}

/// `stream`.
#[derive(Debug, Args)]
pub struct StreamArgs {
    /// The tenant (UUID).
    #[arg(long)]
    pub tenant: Uuid,
    /// First event: a global position (inclusive) or a time (RFC 3339, or
    /// `YYYY-MM-DD[ HH:MM[:SS]]` in UTC; events recorded at or after it).
    #[arg(long, value_name = "POS|TIME")]
    pub from: Option<Bound>,
    /// Last event: a global position (inclusive, in reading order) or a time (events recorded
    /// at or before it).
    #[arg(long, value_name = "POS|TIME")]
    pub until: Option<Bound>,
    /// Only this aggregate type, or one aggregate (`Diagnosis/<uuid>`).
    #[arg(long, value_name = "TYPE[/ID]")]
    pub aggregate: Option<AggregateFilter>,
    /// Only events of this type (e.g. `DecisionMade`).
    #[arg(long, value_name = "X")]
    pub event_type: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// Where to write: a file, or `s3://bucket/key` (multipart upload); stdout by default.
    #[arg(long, value_name = "FILE|s3://bucket/key")]
    pub out: Option<Destination>,
    /// Put each event's audit row (with its chain hashes) on its line and end with the chain
    /// head, so `audit verify --file` can check the export offline (JSONL only).
    #[arg(long)]
    pub audit: bool,
}

/// Stream output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per event.
    Jsonl,
    /// Aligned columns for reading.
    Table,
}

/// `state`.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// The aggregate: `Tenant`, `TenantSession`, `Diagnosis`, `ConsultantDecision` or
    /// `Judgment`, a slash, and its id.
    #[arg(value_name = "TYPE/ID")]
    pub aggregate: AggregateRef,
    /// The tenant the aggregate belongs to (another tenant's aggregate is not found).
    #[arg(long)]
    pub tenant: Uuid,
    /// The state after the events up to this global position (inclusive, in reading order)
    /// or recorded at or before this time; the latest state by default.
    #[arg(long, value_name = "TIME|POS")]
    pub as_of: Option<Bound>,
}

/// `audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the tenant's hash chain, from the database or offline from exports; with
    /// `--proofs`, the verifiable log's checkpoint and proofs too.
    Verify(AuditVerifyArgs),
    /// The verifiable log's newest checkpoint with inclusion and consistency proofs (JSON),
    /// for `verify --proofs`.
    Prove(ProveArgs),
}

/// `audit verify`.
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// The tenant whose chain to verify.
    #[arg(long)]
    pub tenant: Uuid,
    /// Verify these files instead of the database, in the order given: nightly archives
    /// (one audit row per line, then the chain head) or `stream --audit` exports. Together
    /// they must hold the chain from its first row.
    #[arg(long, value_name = "EXPORT.jsonl")]
    pub file: Vec<PathBuf>,
    /// The verifiable log's proofs.
    #[command(flatten)]
    pub log: LogCheckArgs,
}

/// `access-log …`.
#[derive(Debug, Subcommand)]
pub enum AccessLogCommand {
    /// Write the tenant's access records in chain order, then the chain head (JSONL).
    Export(AccessExportArgs),
    /// Verify the tenant's access chain, from the database or offline from exports; with
    /// `--proofs`, the verifiable log's checkpoint and proofs too.
    Verify(AccessVerifyArgs),
    /// The verifiable log's newest checkpoint with inclusion and consistency proofs (JSON),
    /// for `verify --proofs`.
    Prove(ProveArgs),
}

/// `access-log export`.
#[derive(Debug, Args)]
pub struct AccessExportArgs {
    /// The tenant (UUID); the nil UUID is the platform's chain (requests refused before a
    /// tenant was known).
    #[arg(long)]
    pub tenant: Uuid,
    /// Where to write: a file, or `s3://bucket/key` (multipart upload); stdout by default.
    #[arg(long, value_name = "FILE|s3://bucket/key")]
    pub out: Option<Destination>,
}

/// `access-log verify`.
#[derive(Debug, Args)]
pub struct AccessVerifyArgs {
    /// The tenant whose chain to verify (the nil UUID: the platform's).
    #[arg(long)]
    pub tenant: Uuid,
    /// Verify these exports instead of the database, in the order given. Together they must
    /// hold the chain from its first record.
    #[arg(long, value_name = "EXPORT.jsonl")]
    pub file: Vec<PathBuf>,
    /// The verifiable log's proofs.
    #[command(flatten)]
    pub log: LogCheckArgs,
}

/// `rebuild`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    /// What to rebuild.
    pub target: TargetArgs,
    /// Continue an earlier rebuild from its checkpoints (default: discard it and start over).
    #[arg(long)]
    pub resume: bool,
    /// Events per transaction.
    #[arg(long, default_value_t = 25_000)]
    pub batch_size: usize,
}

/// A projection (or all) and an optional tenant.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// A projection (`tenants`, `sessions`, `diagnoses`, `decisions`, `tenant_usage`,
    /// `audit`) or `all`.
    #[arg(value_name = "PROJECTION|all")]
    pub projection: Target,
    /// Only this tenant's rows.
    #[arg(long)]
    pub tenant: Option<Uuid>,
}

impl Cli {
    /// Runs the command.
    pub async fn run(self) -> Result<Verdict, Error> {
        let output = Output {
            json: self.json,
            quiet: self.quiet,
        };
        match self.command {
            Command::Stream(args) => {
                let pool = db::auditor(Some(args.tenant)).await?;
                stream::run(&pool, args, output).await?;
                Ok(Verdict::Passed)
            }
            Command::State(args) => {
                let pool = db::auditor(Some(args.tenant)).await?;
                state::run(&pool, args).await?;
                Ok(Verdict::Passed)
            }
            Command::Audit(AuditCommand::Verify(args)) => audit::run(args, output).await,
            Command::Audit(AuditCommand::Prove(args)) => {
                verifiable::run_prove(args, LogName::Audit).await?;
                Ok(Verdict::Passed)
            }
            Command::AccessLog(AccessLogCommand::Prove(args)) => {
                verifiable::run_prove(args, LogName::Access).await?;
                Ok(Verdict::Passed)
            }
            Command::AccessLog(AccessLogCommand::Export(args)) => {
                access_log::run_export(args, output).await?;
                Ok(Verdict::Passed)
            }
            Command::AccessLog(AccessLogCommand::Verify(args)) => {
                access_log::run_verify(args, output).await
            }
            Command::Rebuild(args) => rebuild::run_rebuild(args, output).await,
            Command::Verify(args) => rebuild::run_verify(args, output).await,
            Command::Swap(args) => rebuild::run_swap(args, output).await,
            Command::Status => {
                let pool = db::auditor(None).await?;
                rebuild::run_status(&pool, output).await
            }
            Command::Erasure(ErasureCommand::Verify(args)) => erasure::run_verify(args, output),
            Command::JudgmentIndex(command) => match command {
                JudgmentIndexCommand::Rebuild(args) => {
                    judgment_index::run_rebuild(args, output).await
                }
                JudgmentIndexCommand::Verify(args) => {
                    judgment_index::run_verify(args, output).await
                }
                JudgmentIndexCommand::Swap(args) => judgment_index::run_swap(args, output).await,
                JudgmentIndexCommand::Status => judgment_index::run_status(output).await,
                JudgmentIndexCommand::Discard => judgment_index::run_discard(output).await,
            },
        }
    }
}

/// The global output flags.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// `--json`.
    pub json: bool,
    /// `--quiet`.
    pub quiet: bool,
}
