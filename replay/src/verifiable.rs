//! The verifiable log's side of `audit verify` and `access-log verify` (a proof bundle checked
//! offline with the published key, against the rows in the files and the auditor's last
//! checkpoint), and `audit prove` / `access-log prove` (a bundle read from the database).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use casebook_domain::ids::TenantId;
use casebook_projections::tlog::checkpoint::origin;
use casebook_projections::tlog::proof::{self, AuditorCopy};
use casebook_projections::tlog::tree::{self, NodeHash};
use casebook_projections::tlog::{self, LogName, ProofBundle, ProofRequest, TlogError};
use clap::Args;
use serde::Serialize;
use uuid::Uuid;

use crate::audit::{broken_at, check_lines};
use crate::cli::Output;
use crate::{db, Error};

/// The rows read from the files, by `seq`: their leaf hashes.
pub type Leaves = BTreeMap<i64, NodeHash>;

/// `--proofs` and what goes with it.
#[derive(Debug, Args)]
pub struct LogCheckArgs {
    /// A proof bundle (from `GET /v1/audit/proofs` or `prove`): its checkpoint's signature,
    /// the inclusion of the rows the files hold (each by its proof, or all of them against
    /// the root when the files start at the first row) and, with `--last-checkpoint`, that
    /// the log still extends the checkpoint you saved last time.
    #[arg(long, value_name = "BUNDLE.json", requires = "key")]
    pub proofs: Option<PathBuf>,
    /// Files holding some of the log's rows, not its whole chain (rows of an archive or
    /// export, any subset): each must be proven by an inclusion proof of the bundle.
    #[arg(long, value_name = "ROWS.jsonl", requires = "proofs")]
    pub rows: Vec<PathBuf>,
    /// The log's published verifier key (`<name>+<id>+<key>`), or a file holding it.
    #[arg(long, value_name = "KEY|FILE")]
    pub key: Option<String>,
    /// The checkpoint you saved last time (a signed note).
    #[arg(long, value_name = "CHECKPOINT", requires = "proofs")]
    pub last_checkpoint: Option<PathBuf>,
    /// Where to save the bundle's checkpoint once everything verifies, for next time.
    #[arg(long, value_name = "CHECKPOINT", requires = "proofs")]
    pub save_checkpoint: Option<PathBuf>,
}

impl LogCheckArgs {
    /// Whether a proof bundle is to be checked (and the files' leaves are needed).
    pub fn wanted(&self) -> bool {
        self.proofs.is_some()
    }
}

/// What the proof bundle's check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogReport {
    /// Whether everything verified.
    pub ok: bool,
    /// The checkpoint's size (when its signature verified).
    pub size: Option<u64>,
    /// Rows of the files inside the checkpoint's tree, checked.
    pub rows_checked: usize,
    /// Whether they were the whole tree, recomputed to its root.
    pub whole_tree: bool,
    /// The size of the saved checkpoint the log was proven to extend.
    pub extends: Option<u64>,
    /// Why it failed: a bad signature, a split view or rewritten history, a row not in the
    /// log as signed.
    pub problem: Option<String>,
}

/// Checks `args`' bundle for `tenant`'s `log` against `leaves` (the `--file`s' rows) and the
/// `--rows` files' (each line read by `row_of`); `None` without `--proofs`.
pub fn check(
    args: &LogCheckArgs,
    log: LogName,
    tenant: Uuid,
    mut leaves: Leaves,
    output: Output,
    row_of: impl Fn(&str) -> Result<Option<(TenantId, i64, Vec<u8>)>, String>,
) -> Result<Option<LogReport>, Error> {
    let (Some(bundle_file), Some(key)) = (&args.proofs, &args.key) else {
        return Ok(None);
    };
    leaves.extend(leaves_of(tenant, &args.rows, output, row_of)?);
    let key = key_text(key)?;
    let key_name = key.split('+').next().unwrap_or_default();
    let origin = origin(key_name, log, TenantId::from_uuid(tenant));
    let bundle: ProofBundle =
        serde_json::from_slice(&std::fs::read(bundle_file)?).map_err(|err| {
            Error::Usage(format!(
                "{}: not a proof bundle: {err}",
                bundle_file.display()
            ))
        })?;
    let last = args
        .last_checkpoint
        .as_ref()
        .map(std::fs::read_to_string)
        .transpose()?;
    let copy = AuditorCopy {
        leaves,
        last_checkpoint: last.as_deref(),
    };
    Ok(Some(match proof::verify(&key, &origin, &bundle, &copy) {
        Ok(verified) => {
            if let Some(save) = &args.save_checkpoint {
                std::fs::write(save, &bundle.checkpoint)?;
            }
            LogReport {
                ok: true,
                size: Some(verified.size),
                rows_checked: verified.rows_checked,
                whole_tree: verified.whole_tree,
                extends: verified.extends,
                problem: None,
            }
        }
        Err(problem) => LogReport {
            ok: false,
            size: None,
            rows_checked: 0,
            whole_tree: false,
            extends: None,
            problem: Some(problem.to_string()),
        },
    }))
}

/// The leaf hashes of the rows in `files` (`--rows`), each line read by `row_of` into its
/// tenant, `seq` and canonical bytes (`None`: a line that is no row, such as a chain head).
fn leaves_of(
    tenant: Uuid,
    files: &[PathBuf],
    output: Output,
    row_of: impl Fn(&str) -> Result<Option<(TenantId, i64, Vec<u8>)>, String>,
) -> Result<Leaves, Error> {
    let tenant = TenantId::from_uuid(tenant);
    let mut leaves = Leaves::new();
    let unreadable = check_lines(files, output, |text| match row_of(text) {
        Ok(Some((of, seq, bytes))) if of == tenant => {
            leaves.insert(seq, tree::leaf_hash(&bytes));
            Ok(())
        }
        Ok(Some((of, seq, _))) => Err(broken_at(None, Some(seq), format!("a row of tenant {of}"))),
        Ok(None) => Ok(()),
        Err(problem) => Err(broken_at(None, None, problem)),
    })?;
    match unreadable {
        Some(broken) => Err(Error::Usage(format!(
            "{}: {}",
            broken.place("--rows"),
            broken.problem
        ))),
        None => Ok(leaves),
    }
}

/// The key itself, or the contents of the file it names.
pub(crate) fn key_text(key: &str) -> Result<String, Error> {
    if Path::new(key).is_file() {
        Ok(std::fs::read_to_string(key)?.trim().to_owned())
    } else {
        Ok(key.trim().to_owned())
    }
}

/// The lines `audit verify` and `access-log verify` print for `report`.
pub fn describe(report: &LogReport, what: &str) -> String {
    match &report.problem {
        Some(problem) => format!("BROKEN: the {what} log's proofs: {problem}"),
        None => {
            let size = report.size.unwrap_or_default();
            let rows = if report.whole_tree {
                format!("rows 1 to {size} make its root")
            } else {
                format!("{} rows proven in it", report.rows_checked)
            };
            let extends = report
                .extends
                .map(|last| format!("; it extends your last checkpoint (size {last})"))
                .unwrap_or_default();
            format!("OK: the {what} log's checkpoint of size {size} is signed by the key; {rows}{extends}")
        }
    }
}

/// `prove`: the newest checkpoint (or the one of `--size`) with the proofs asked for.
#[derive(Debug, Args)]
pub struct ProveArgs {
    /// The tenant.
    #[arg(long)]
    pub tenant: Uuid,
    /// Rows (`seq`) to prove in the tree.
    #[arg(long, value_delimiter = ',', value_name = "SEQ,…")]
    pub seq: Vec<i64>,
    /// An earlier size to prove the tree extends (your last checkpoint's).
    #[arg(long, value_name = "SIZE")]
    pub from: Option<u64>,
    /// The checkpoint to prove against, by size (the newest by default).
    #[arg(long, value_name = "SIZE")]
    pub size: Option<u64>,
}

/// Runs `prove` for `log`, as the tenant's auditor: the bundle on stdout.
pub async fn run_prove(args: ProveArgs, log: LogName) -> Result<(), Error> {
    let pool = db::auditor(Some(args.tenant)).await?;
    let mut conn = pool.acquire().await?;
    let request = ProofRequest {
        seqs: args.seq,
        from: args.from,
        size: args.size,
    };
    let bundle = tlog::prove(&mut conn, log, TenantId::from_uuid(args.tenant), &request)
        .await
        .map_err(|err| match err {
            TlogError::Database(err) => Error::Database(err),
            other => Error::Usage(other.to_string()),
        })?
        .ok_or_else(|| Error::Usage("no such checkpoint".into()))?;
    println!("{}", serde_json::to_string_pretty(&bundle)?);
    Ok(())
}
