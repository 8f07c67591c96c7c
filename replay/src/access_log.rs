//! `access-log export` and `access-log verify`: a tenant's access chain (the platform's with
//! the nil tenant, `00000000-0000-0000-0000-000000000000`) written out as JSONL — one
//! [`AccessRecord`] per line in chain order, then a [`HeadLine`] naming its last `seq` and
//! hash — and checked in the database or offline from such files, as `audit verify` checks the
//! audit chain: an edited record fails its hash, a removed one breaks the sequence at the next,
//! records cut from the end disagree with the head.

use std::path::Path;

use casebook_domain::ids::TenantId;
use casebook_projections::access_log::{self, AccessRecord, AccessVerifier, VerifyError};
use casebook_projections::audit::ChainHash;
use casebook_projections::tlog::{tree, LogName};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::audit::{broken_at, check_head, check_lines, head_of, head_suffix, unanchored, Broken};
use crate::cli::{AccessExportArgs, AccessVerifyArgs, Output};
use crate::sink::Sink;
use crate::stream::{ChainHead, HeadLine};
use crate::verifiable::{self, Leaves, LogReport};
use crate::{db, progress, Error, Verdict};

/// Records read per query of an export.
const PAGE: i64 = 5_000;

/// Runs `access-log export`.
pub async fn run_export(args: AccessExportArgs, output: Output) -> Result<(), Error> {
    let pool = db::auditor(Some(args.tenant)).await?;
    let mut sink = Sink::open(args.out.as_ref()).await?;
    match export(&pool, TenantId::from_uuid(args.tenant), &mut sink, output).await {
        Ok(()) => sink.finish().await,
        // A reader that closed the pipe (`| head`) has all it wanted.
        Err(Error::Io(err)) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(err) => {
            sink.abort().await;
            Err(err)
        }
    }
}

/// Writes `tenant`'s records as they are now, then their chain head.
async fn export(
    pool: &PgPool,
    tenant: TenantId,
    sink: &mut Sink,
    output: Output,
) -> Result<(), Error> {
    let bar = progress::bar(output, None, "records");
    let mut conn = pool.acquire().await?;
    let mut head = ChainHead {
        tenant_id: Some(tenant),
        seq: 0,
        hash: ChainHash::ZERO,
    };
    let mut line = Vec::with_capacity(1024);
    loop {
        let records = access_log::records(&mut conn, tenant, head.seq, PAGE).await?;
        let Some(last) = records.last() else { break };
        (head.seq, head.hash) = (last.seq, last.hash);
        for record in &records {
            line.clear();
            serde_json::to_writer(&mut line, record)?;
            line.push(b'\n');
            sink.write(&line).await?;
        }
        bar.inc(records.len() as u64);
    }
    bar.finish_and_clear();
    line.clear();
    serde_json::to_writer(&mut line, &HeadLine { chain_head: head })?;
    line.push(b'\n');
    sink.write(&line).await
}

/// What `access-log verify` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessReport {
    /// The tenant (nil: the platform's chain).
    pub tenant_id: Uuid,
    /// `database`, or the files verified.
    pub source: String,
    /// Records verified before the first broken link (all of them when none is).
    pub verified: u64,
    /// Whether the chain verified.
    pub ok: bool,
    /// The chain's last verified record (files only).
    pub head: Option<ChainHead>,
    /// Whether a file's chain head anchored the end of the chain (files only).
    pub anchored: bool,
    /// The first broken link.
    pub broken: Option<Broken>,
    /// The verifiable log's proofs, when a bundle was given (`--proofs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<LogReport>,
}

/// Runs `access-log verify`: 0 when the chain (and the proofs, if given) verify, 1 at a
/// broken link or a proof that fails.
pub async fn run_verify(args: AccessVerifyArgs, output: Output) -> Result<Verdict, Error> {
    let (mut report, leaves) = if args.file.is_empty() {
        let pool = db::auditor(Some(args.tenant)).await?;
        (verify_database(&pool, args.tenant).await?, Leaves::new())
    } else {
        verify_files(args.tenant, &args.file, output, args.log.wanted())?
    };
    report.log = verifiable::check(
        &args.log,
        LogName::Access,
        args.tenant,
        leaves,
        output,
        record_of,
    )?;
    report.ok &= report.log.as_ref().is_none_or(|log| log.ok);
    print(&report, output)?;
    Ok(if report.ok {
        Verdict::Passed
    } else {
        Verdict::Failed
    })
}

/// Verifies `tenant`'s access chain as stored, through an auditor pool of that tenant.
pub async fn verify_database(pool: &PgPool, tenant: Uuid) -> Result<AccessReport, Error> {
    let mut conn = pool.acquire().await?;
    let (verified, broken) =
        match access_log::verify_chain(&mut conn, TenantId::from_uuid(tenant)).await {
            Ok(verified) => (verified, None),
            Err(VerifyError::Broken { link, verified }) => (
                verified,
                Some(broken_at(
                    None,
                    Some(link.seq),
                    link.problem.describe(link.seq),
                )),
            ),
            Err(VerifyError::Database(err)) => return Err(err.into()),
        };
    Ok(AccessReport {
        tenant_id: tenant,
        source: "database".into(),
        verified,
        ok: broken.is_none(),
        head: None,
        anchored: true,
        broken,
        log: None,
    })
}

/// Verifies `tenant`'s access chain from `files` (exports), in order; with `leaves`, also
/// returns each record's leaf hash for the verifiable log's proofs.
pub fn verify_files(
    tenant: Uuid,
    files: &[impl AsRef<Path>],
    output: Output,
    leaves: bool,
) -> Result<(AccessReport, Leaves), Error> {
    let tenant_id = TenantId::from_uuid(tenant);
    let mut verifier = AccessVerifier::new();
    let mut anchored = false;
    let mut leaves = leaves.then(Leaves::new);
    let broken = check_lines(files, output, |text| {
        if let Ok(record) = serde_json::from_str::<AccessRecord>(text) {
            if record.tenant_id != tenant_id {
                return Err(broken_at(
                    None,
                    Some(record.seq),
                    format!("a record of tenant {}", record.tenant_id),
                ));
            }
            verifier
                .push(&record)
                .map_err(|link| broken_at(None, Some(link.seq), link.problem.describe(link.seq)))?;
            if let Some(leaves) = &mut leaves {
                leaves.insert(record.seq, tree::leaf_hash(&record.canonical_bytes()));
            }
            return Ok(());
        }
        match head_of(text) {
            Some(head) => {
                let last = verifier
                    .heads()
                    .get(&tenant_id)
                    .copied()
                    .unwrap_or((0, ChainHash::ZERO));
                anchored |= check_head(tenant_id, &head, last)?;
                Ok(())
            }
            None => Err(broken_at(
                None,
                None,
                "the line is neither an access record nor a chain head".into(),
            )),
        }
    })?;
    let head = verifier
        .heads()
        .get(&tenant_id)
        .map(|&(seq, hash)| ChainHead {
            tenant_id: Some(tenant_id),
            seq,
            hash,
        });
    let report = AccessReport {
        tenant_id: tenant,
        source: files
            .iter()
            .map(|f| f.as_ref().display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        verified: verifier.verified(),
        ok: broken.is_none(),
        head,
        anchored,
        broken,
        log: None,
    };
    Ok((report, leaves.unwrap_or_default()))
}

/// An access record's tenant, `seq` and canonical bytes (for `--rows`); `None` for a chain
/// head.
fn record_of(text: &str) -> Result<Option<(TenantId, i64, Vec<u8>)>, String> {
    match serde_json::from_str::<AccessRecord>(text) {
        Ok(record) => Ok(Some((
            record.tenant_id,
            record.seq,
            record.canonical_bytes(),
        ))),
        Err(_) if head_of(text).is_some() => Ok(None),
        Err(_) => Err("the line is not an access record".into()),
    }
}

fn print(report: &AccessReport, output: Output) -> Result<(), Error> {
    if output.json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    match &report.broken {
        None => {
            let head = head_suffix(report.head.as_ref());
            println!(
                "OK: access chain of tenant {} ({}): {} records verified{head}",
                report.tenant_id, report.source, report.verified
            );
            if !report.anchored {
                println!("{}", unanchored("records"));
            }
        }
        Some(broken) => {
            let place = broken.place(&report.source);
            let seq = broken
                .seq
                .map(|seq| format!(" (seq {seq})"))
                .unwrap_or_default();
            println!(
                "BROKEN: access chain of tenant {} at {place}{seq}: {}",
                report.tenant_id, broken.problem
            );
            println!("{} records verified before it", report.verified);
        }
    }
    if let Some(log) = &report.log {
        println!("{}", verifiable::describe(log, "access"));
    }
    Ok(())
}
