//! `casebook`: the all-in-one binary — `serve`, `operator`, `demo`. Unlike the Lambda
//! functions it runs with `CASEBOOK_ENV=local` when the variable is unset (see
//! [`casebook_handlers::settings`]).

use std::net::SocketAddr;

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
        Command::LogKey { .. } => unreachable!("answered before the settings are read"),
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
