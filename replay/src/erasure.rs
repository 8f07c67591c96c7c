//! `erasure verify`: an erasure's receipt (`GET /v1/subjects/{id}/erasure/receipt` for a
//! customer, `casebook operator … erasure-receipt` for a whole tenant) checked offline
//! (decision 0027). The receipt is the `SubjectErased` (or `TenantErased`) audit row and a
//! bundle proving it in a checkpoint of the tenant's audit log; it verifies when the row is
//! the erasure it names and the bundle, signed with the operator's published key, includes
//! that row as it is. Nothing personal is in it, nor needed to check it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use casebook_projections::audit::AuditRecord;
use casebook_projections::tlog::checkpoint::origin;
use casebook_projections::tlog::proof::{self, AuditorCopy};
use casebook_projections::tlog::{tree, LogName, ProofBundle};
use clap::Args;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cli::Output;
use crate::verifiable::key_text;
use crate::{Error, Verdict};

/// `erasure verify`.
#[derive(Debug, Args)]
pub struct ReceiptArgs {
    /// The receipt, as `GET /v1/subjects/{subject}/erasure/receipt` answered it.
    #[arg(long, value_name = "RECEIPT.json")]
    pub receipt: PathBuf,
    /// The audit log's published verifier key (`<name>+<id>+<key>`), or a file holding it.
    #[arg(long, value_name = "KEY|FILE")]
    pub key: String,
}

/// An erasure's receipt: of a subject, or without one of the whole tenant.
#[derive(Debug, Deserialize)]
struct Receipt {
    #[serde(default)]
    subject: Option<String>,
    row: AuditRecord,
    proofs: ProofBundle,
}

/// What the check found.
#[derive(Debug, Serialize)]
pub struct ReceiptReport {
    /// Whether the receipt verified.
    pub ok: bool,
    /// The erased subject; none when the whole tenant was erased.
    pub subject: Option<String>,
    /// Their tenant.
    pub tenant_id: Uuid,
    /// The erasure's row in the tenant's audit log.
    pub seq: i64,
    /// When it was recorded.
    pub recorded_at: String,
    /// The size of the signed checkpoint it was proven in.
    pub checkpoint_size: Option<u64>,
    /// Why it did not verify.
    pub problem: Option<String>,
}

/// Runs `erasure verify`.
pub fn run_verify(args: ReceiptArgs, output: Output) -> Result<Verdict, Error> {
    let receipt: Receipt = serde_json::from_slice(&std::fs::read(&args.receipt)?)
        .map_err(|err| Error::Usage(format!("{}: not a receipt: {err}", args.receipt.display())))?;
    let report = check(&receipt, &key_text(&args.key)?);
    if output.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let erased = match &report.subject {
            Some(subject) => format!("subject {subject} of tenant {}", report.tenant_id),
            None => format!("tenant {}", report.tenant_id),
        };
        if report.ok {
            println!(
                "OK: {erased} erased at {} (audit row {}), in the checkpoint of size {}",
                report.recorded_at,
                report.seq,
                report.checkpoint_size.unwrap_or_default()
            );
        } else {
            println!(
                "FAILED: the receipt of the erasure of {erased}: {}",
                report.problem.as_deref().unwrap_or("unknown")
            );
        }
    }
    Ok(if report.ok {
        Verdict::Passed
    } else {
        Verdict::Failed
    })
}

fn check(receipt: &Receipt, key: &str) -> ReceiptReport {
    let row = &receipt.row;
    let mut report = ReceiptReport {
        ok: false,
        subject: receipt.subject.clone(),
        tenant_id: *row.tenant_id.as_uuid(),
        seq: row.seq,
        recorded_at: row.recorded_at.to_rfc3339(),
        checkpoint_size: None,
        problem: None,
    };
    let names_the_erasure = match &receipt.subject {
        Some(subject) => {
            row.action == "SubjectErased" && row.reason.as_deref() == Some(subject.as_str())
        }
        None => row.action == "TenantErased",
    };
    if !names_the_erasure {
        report.problem = Some(format!(
            "audit row {} is {} of {:?}, not the erasure of {}",
            row.seq,
            row.action,
            row.reason,
            receipt.subject.as_deref().unwrap_or("the tenant")
        ));
        return report;
    }
    let key_name = key.split('+').next().unwrap_or_default();
    let copy = AuditorCopy {
        leaves: BTreeMap::from([(row.seq, tree::leaf_hash(&row.canonical_bytes()))]),
        last_checkpoint: None,
    };
    match proof::verify(
        key,
        &origin(key_name, LogName::Audit, row.tenant_id),
        &receipt.proofs,
        &copy,
    ) {
        Ok(verified) if verified.rows_checked == 1 => {
            report.ok = true;
            report.checkpoint_size = Some(verified.size);
        }
        Ok(_) => report.problem = Some("the bundle does not prove the erasure's row".into()),
        Err(problem) => report.problem = Some(problem.to_string()),
    }
    report
}
