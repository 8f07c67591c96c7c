//! `casebook`: the all-in-one binary — `serve`, `operator`, `demo`, `trainer`. Unlike the Lambda
//! functions it runs with `CASEBOOK_ENV=local` when the variable is unset (see
//! [`casebook_handlers::settings`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use casebook_adapters::postgres::{self, DbRole};
use casebook_domain::ids::TenantId;
use casebook_domain::values::Reason;
use casebook_handlers::compose::{self, Composition};
use casebook_handlers::http::erasure;
use casebook_handlers::operator::{Operator, OperatorAction};
use casebook_handlers::server::Application;
use casebook_handlers::settings::{Process, Settings};
use casebook_handlers::signal::shutdown_signal;
use casebook_handlers::trainer::{Trainer, TrainerConfig};
use casebook_handlers::{demo, metrics, telemetry};
use casebook_projections::tlog::checkpoint::is_valid_key_name;
use casebook_projections::tlog::LogKey;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "casebook",
    version,
    about = "Casebook: event-sourced judgment capture"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database, serve the API and run every subscription until SIGINT/SIGTERM.
    Serve {
        /// Serve the API only, as the `api` Lambda does: no subscriptions, relay, worker or
        /// jobs (another `casebook serve` runs them).
        #[arg(long)]
        api_only: bool,
    },
    /// The operator's commands on a tenant: its plan tier, its suspension and its erasure (no
    /// tenant user, admins included, can do any of them). Recorded as `operator:<name>`.
    Operator {
        /// Who is acting, for the audit record.
        #[arg(long = "as", env = "CASEBOOK_OPERATOR")]
        name: String,
        /// The tenant.
        #[arg(long)]
        tenant: uuid::Uuid,
        #[command(subcommand)]
        action: OperatorCommand,
    },
    /// Make a signing key for the verifiable logs' checkpoints: prints the private key (for
    /// the deployment's secret, or `CASEBOOK_LOG_KEY_FILE`) on the first line and the
    /// verifier key (to publish to auditors) on the second. Touches nothing else.
    LogKey {
        /// The key's name, which starts every checkpoint's origin: the deployment's host name,
        /// without spaces or `+`.
        #[arg(long)]
        name: String,
    },
    /// Create the local demo tenant and users (AWS emulator) and print how to call the API.
    Demo {
        /// Print only `export …` lines for the server's token settings.
        #[arg(long)]
        exports: bool,
    },
    /// The practice's trainer: take fine-tune jobs from the local-jobs queue, run the training
    /// command on each export and upload the GGUF model it writes for the model registry
    /// (docs/architecture/trainer.md), until SIGINT/SIGTERM. Needs AWS credentials with the
    /// template's LocalJobsConsumerPolicy, no database.
    Trainer(TrainerArgs),
}

/// `casebook trainer`'s settings.
#[derive(clap::Args)]
struct TrainerArgs {
    /// The local-jobs queue's URL.
    #[arg(long, env = "LOCAL_JOBS_QUEUE_URL")]
    queue_url: String,
    /// The artifacts bucket: the exports are read from it and the models written to it.
    #[arg(long, env = "ARTIFACTS_BUCKET")]
    bucket: String,
    /// The base model the command fine-tunes (a GGUF file).
    #[arg(long, env = "CASEBOOK_TRAINER_BASE_MODEL")]
    base_model: PathBuf,
    /// The base model's name in the artifact's metadata [default: the file's name without
    /// `.gguf`].
    #[arg(long)]
    base_model_name: Option<String>,
    /// Where each job's files are kept while it runs (a failed job's stay, with its
    /// `train.log`, until it is tried again).
    #[arg(long, env = "CASEBOOK_TRAINER_WORK_DIR")]
    work_dir: PathBuf,
    /// How often a running job's message has its visibility extended.
    #[arg(long, default_value_t = TrainerConfig::DEFAULT_HEARTBEAT.as_secs())]
    heartbeat_seconds: u64,
    /// How far each extension reaches: how soon another trainer takes over after this one dies.
    #[arg(long, default_value_t = TrainerConfig::DEFAULT_VISIBILITY.as_secs())]
    visibility_seconds: u64,
    /// How long a failed job waits before it is tried again.
    #[arg(long, default_value_t = TrainerConfig::DEFAULT_RETRY_DELAY.as_secs())]
    retry_delay_seconds: u64,
    /// Stop taking jobs after this many seconds (a job in flight is finished first).
    #[arg(long)]
    budget_seconds: Option<u64>,
    /// The training command and its arguments, after `--`. It runs in the job's folder with
    /// CASEBOOK_EXPORT, CASEBOOK_BASE_MODEL, CASEBOOK_OUTPUT, CASEBOOK_METRICS and friends
    /// set, and `{export}`, `{base_model}`, `{output}`, `{metrics}`, `{job_dir}` in its
    /// arguments replaced; it must write a GGUF file to CASEBOOK_OUTPUT and exit 0.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Move the tenant to another plan tier.
    Plan {
        /// `starter`, `professional`, `enterprise` or `cost_sensitive`.
        plan: String,
    },
    /// Suspend the tenant: its users' commands are refused until it is reactivated.
    Suspend {
        /// Why (recorded, shown to the tenant's admins).
        #[arg(long)]
        reason: String,
    },
    /// Lift the tenant's suspension.
    Reactivate,
    /// Erase the tenant for good: every data key of its customers destroyed, what was derived
    /// from their data purged, no command taken from then on. Asks for the tenant's id again.
    Erase {
        /// The tenant's id, again: an erasure cannot be undone.
        #[arg(long)]
        confirm: uuid::Uuid,
    },
    /// Print the receipt of the tenant's erasure (JSON) once a signed checkpoint covers it:
    /// `casebook-replay erasure verify --receipt` checks it. Changes nothing.
    ErasureReceipt,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let process = match &cli.command {
        // Needs no settings: nothing but the key is made.
        Command::LogKey { name } => return print_log_key(name),
        Command::Serve { api_only: false } => Process::Serve,
        Command::Serve { api_only: true } => Process::ServeApiOnly,
        Command::Operator { .. } => Process::Operator,
        Command::Demo { .. } => Process::Demo,
        // Runs on the practice's machine, with no database: it reads no settings.
        Command::Trainer(args) => return run_trainer(args).await,
    };
    let settings = Settings::from_env(process).context("reading the settings")?;
    telemetry::init();
    match cli.command {
        Command::Serve { .. } => {
            let metrics = metrics::install_for(&settings)?;
            let app = Application::build(settings)
                .await
                .context("starting casebook")?;
            app.run_until(shutdown_signal()).await.context("serving")?;
            // What was counted since the last timed flush.
            metrics
                .flush(std::io::stdout())
                .context("writing the last metrics")?;
        }
        Command::Operator {
            name,
            tenant,
            action,
        } => {
            // One command over the database: no AWS, so no composition of a whole process.
            let pool = postgres::connect_database(&settings.database, DbRole::App, 1)
                .await
                .context("connecting to the database")?;
            let tenant = TenantId::from_uuid(tenant);
            let action = match action {
                OperatorCommand::ErasureReceipt => {
                    let receipt = erasure::receipt(&pool, tenant, None)
                        .await
                        .context("the tenant's erasure receipt")?;
                    println!("{}", serde_json::to_string_pretty(&receipt)?);
                    return Ok(());
                }
                OperatorCommand::Erase { confirm } if confirm != *tenant.as_uuid() => {
                    anyhow::bail!("--confirm must repeat the tenant's id: nothing was erased")
                }
                OperatorCommand::Erase { .. } => OperatorAction::Erase,
                OperatorCommand::Plan { plan } => OperatorAction::ChangePlan(
                    serde_json::from_value(serde_json::Value::String(plan.clone()))
                        .with_context(|| format!("unknown plan {plan:?}"))?,
                ),
                OperatorCommand::Suspend { reason } => {
                    OperatorAction::Suspend(Reason::parse(reason)?)
                }
                OperatorCommand::Reactivate => OperatorAction::Reactivate,
            };
            let run_id = uuid::Uuid::new_v4().to_string();
            let operator = Operator::new(&name, tenant, &run_id)?;
            let accepted = operator
                .apply(&compose::service(pool), action)
                .await
                .context("the tenant refused the command")?;
            for event in accepted.events {
                println!(
                    "{} {} at global position {} (run {run_id})",
                    event.event_type, event.aggregate_id, event.global_position
                );
            }
        }
        Command::LogKey { .. } | Command::Trainer(_) => {
            unreachable!("answered before the settings are read")
        }
        Command::Demo { exports } => {
            let listen = settings.listen;
            let compose = Composition::new(settings).await.context("starting")?;
            let cognito = compose.cognito().context("the emulator's Cognito")?;
            let demo = demo::set_up(&compose.settings().database, cognito)
                .await
                .context("setting up the demo")?;
            let auth = demo.auth_config();
            println!("export CASEBOOK_JWT_ISSUER={}", auth.issuer);
            println!("export CASEBOOK_JWT_AUDIENCE={}", auth.audience);
            println!("export CASEBOOK_JWKS_URL={}", auth.jwks_url);
            if !exports {
                print_walkthrough(&demo, listen);
            }
        }
    }
    Ok(())
}

/// Token exports on stdout (so the output can be sourced); the explanation and the curl
/// examples on stderr.
fn print_walkthrough(demo: &demo::Demo, listen: SocketAddr) {
    let base = format!("http://{listen}");
    eprintln!(
        "\n# Open {base}/ and sign in to the demo practice {} as any of its users (password {}):",
        demo.tenant,
        demo::PASSWORD
    );
    for (role, username, token) in &demo.users {
        let variable = format!("{role:?}_TOKEN").to_uppercase();
        eprintln!("#   {username}: ${variable}");
        println!("export {variable}={token}");
    }
    eprintln!(
        "\n# Open a session as the customer (after `source` of this output):\ncurl -s -X POST {base}/v1/sessions \\\n  -H \"Authorization: Bearer $CUSTOMER_TOKEN\" -H 'Content-Type: application/json' \\\n  -d \"{{\\\"session_id\\\": \\\"$(cat /proc/sys/kernel/random/uuid)\\\", \\\"subject\\\": \\\"Supplier contract\\\"}}\"\n"
    );
    eprintln!(
        "# The tenant's sessions as the customer, the review queue as the consultant:\ncurl -s {base}/v1/sessions -H \"Authorization: Bearer $CUSTOMER_TOKEN\"\ncurl -s {base}/v1/review-queue -H \"Authorization: Bearer $CONSULTANT_TOKEN\"\n"
    );
    eprintln!(
        "# The tenant's events and audit rows as the auditor:\ncurl -s {base}/v1/events -H \"Authorization: Bearer $AUDITOR_TOKEN\"\ncurl -s '{base}/v1/audit?action=SessionOpened' -H \"Authorization: Bearer $AUDITOR_TOKEN\"\n"
    );
}

/// `casebook trainer`: takes jobs until SIGINT/SIGTERM or the budget's end.
async fn run_trainer(args: &TrainerArgs) -> anyhow::Result<()> {
    telemetry::init();
    let config = TrainerConfig {
        queue_url: args.queue_url.clone(),
        bucket: args.bucket.clone(),
        command: args.command.clone(),
        work_dir: args.work_dir.clone(),
        base_model: args.base_model.clone(),
        base_model_name: args.base_model_name.clone(),
        heartbeat: Duration::from_secs(args.heartbeat_seconds),
        visibility: Duration::from_secs(args.visibility_seconds),
        retry_delay: Duration::from_secs(args.retry_delay_seconds),
    };
    let aws = casebook_adapters::aws::shared_config().await;
    let trainer = Trainer::new(&aws, config).context("starting the trainer")?;
    let report = trainer
        .run_until(
            args.budget_seconds.map(Duration::from_secs),
            shutdown_signal(),
        )
        .await;
    tracing::info!(?report, "trainer stopped");
    Ok(())
}

/// `casebook log-key`: a new signing key named `name`, private then verifier.
fn print_log_key(name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        is_valid_key_name(name),
        "{name:?} is not a key name: not empty, no spaces, no '+'"
    );
    let (private, verifier) = LogKey::generate(name);
    println!("{private}\n{verifier}");
    Ok(())
}
