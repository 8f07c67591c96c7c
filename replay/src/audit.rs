//! `audit verify`: a tenant's hash chain checked in the database, or offline from files.
//!
//! Files are read line by line (constant memory) and may mix, in order:
//! - audit rows, one [`AuditRecord`] per line (the nightly archive);
//! - [`EventLine`]s of a `stream --audit` export, each carrying its audit row; the line's
//!   event columns and metadata ids must agree with the row, and the event's digest —
//!   recomputed from the line's identity, type, version, payload and metadata — must be the
//!   row's (rows of encoding 2), so an edit to any of them shows;
//! - chain heads ([`HeadLine`], or a bare `{seq, hash}`), which the chain read so far must
//!   end at: rows deleted from the end show there.
//!
//! Together the files must hold the chain from its first row (a night's archive follows
//! the earlier nights'). The first broken link is reported with its file, line, `seq` and
//! global position. Archives hold no events: their rows' chain verifies, but their events'
//! content is not checked, and the report says how many rows had it checked.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use casebook_domain::ids::TenantId;
use casebook_projections::audit::{
    verify_chain, AuditRecord, BrokenLink, ChainHash, ChainVerifier, EventAtHand, LinkProblem,
    VerifyError,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use casebook_projections::tlog::{tree, LogName};

use crate::cli::{AuditVerifyArgs, Output};
use crate::stream::{ChainHead, EventLine, HeadLine};
use crate::verifiable::{self, Leaves, LogReport};
use crate::{db, progress, Error, Verdict};

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditReport {
    /// The tenant.
    pub tenant_id: Uuid,
    /// `database`, or the files verified.
    pub source: String,
    /// Rows verified before the first broken link (all of them when none is).
    pub verified: u64,
    /// How many of them had their event's content checked against the digest they carry:
    /// rows of encoding 2 whose event was at hand (the database, a `stream --audit` export).
    /// Rows of encoding 1 carry no digest, and archives hold no events. The database's
    /// verification counts them only for a chain that verifies (0 when it breaks).
    pub content_checked: u64,
    /// Whether the chain verified.
    pub ok: bool,
    /// The chain's last verified row (files only).
    pub head: Option<ChainHead>,
    /// Whether a file's chain head anchored the end of the chain (files only): without one,
    /// rows deleted from the end cannot be noticed.
    pub anchored: bool,
    /// The first broken link.
    pub broken: Option<Broken>,
    /// The verifiable log's proofs, when a bundle was given (`--proofs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<LogReport>,
}

/// Where and why the chain breaks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Broken {
    /// The file (files only).
    pub file: Option<String>,
    /// The 1-based line in that file (files only).
    pub line: Option<u64>,
    /// The offending row's `seq`, as written.
    pub seq: Option<i64>,
    /// The offending row's global position, as written.
    pub global_position: Option<i64>,
    /// What is wrong.
    pub problem: String,
}

impl Broken {
    /// Where the break is: its file and line, or the whole `source` (the database).
    pub(crate) fn place(&self, source: &str) -> String {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => format!("{file} line {line}"),
            _ => source.to_owned(),
        }
    }
}

/// `, head seq N hash H` for a chain read up to `head`, or nothing.
pub(crate) fn head_suffix(head: Option<&ChainHead>) -> String {
    head.map(|h| format!(", head seq {} hash {}", h.seq, h.hash))
        .unwrap_or_default()
}

/// The warning for files without a chain head: `what` (rows, records) deleted from the end
/// of the chain would not show.
pub(crate) fn unanchored(what: &str) -> String {
    format!("note: no chain head in the files, so {what} deleted from the end would not show")
}

/// Runs `audit verify`: 0 when the chain (and the proofs, if given) verify, 1 at a broken
/// link or a proof that fails.
pub async fn run(args: AuditVerifyArgs, output: Output) -> Result<Verdict, Error> {
    let (mut report, leaves) = if args.file.is_empty() {
        let pool = db::auditor(Some(args.tenant)).await?;
        (verify_database(&pool, args.tenant).await?, Leaves::new())
    } else {
        verify_files(args.tenant, &args.file, output, args.log.wanted())?
    };
    report.log = verifiable::check(
        &args.log,
        LogName::Audit,
        args.tenant,
        leaves,
        output,
        row_of,
    )?;
    report.ok &= report.log.as_ref().is_none_or(|log| log.ok);
    print(&report, output)?;
    Ok(if report.ok {
        Verdict::Passed
    } else {
        Verdict::Failed
    })
}

fn print(report: &AuditReport, output: Output) -> Result<(), Error> {
    if output.json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    match &report.broken {
        None => {
            let head = head_suffix(report.head.as_ref());
            println!(
                "OK: audit chain of tenant {} ({}): {} rows verified, {} with their event's content{head}",
                report.tenant_id, report.source, report.verified, report.content_checked
            );
            if report.content_checked < report.verified {
                println!(
                    "note: the content of {} rows' events was not checked (rows written before event digests carry none; archives hold no events)",
                    report.verified - report.content_checked
                );
            }
            if !report.anchored && report.source != "database" {
                println!("{}", unanchored("rows"));
            }
        }
        Some(broken) => {
            let place = broken.place(&report.source);
            let row = match (broken.seq, broken.global_position) {
                (Some(seq), Some(position)) => format!(" (seq {seq}, global position {position})"),
                _ => String::new(),
            };
            println!(
                "BROKEN: audit chain of tenant {} at {place}{row}: {}",
                report.tenant_id, broken.problem
            );
            println!("{} rows verified before it", report.verified);
        }
    }
    if let Some(log) = &report.log {
        println!("{}", verifiable::describe(log, "audit"));
    }
    Ok(())
}

/// Verifies `tenant`'s chain as stored, through `pool`, an auditor pool of that tenant
/// ([`db::auditor`]).
pub async fn verify_database(pool: &sqlx::PgPool, tenant: Uuid) -> Result<AuditReport, Error> {
    let mut conn = pool.acquire().await?;
    let mut report = AuditReport {
        tenant_id: tenant,
        source: "database".into(),
        verified: 0,
        content_checked: 0,
        ok: true,
        head: None,
        anchored: true,
        broken: None,
        log: None,
    };
    match verify_chain(&mut conn, TenantId::from_uuid(tenant)).await {
        Ok(verified) => {
            report.verified = verified.rows;
            report.content_checked = verified.content_checked;
        }
        Err(VerifyError::Broken(link)) => {
            report.verified = u64::try_from(link.seq - 1).unwrap_or(0);
            report.ok = false;
            report.broken = Some(Broken {
                file: None,
                line: None,
                seq: Some(link.seq),
                global_position: Some(link.global_position),
                problem: describe(&link),
            });
        }
        Err(VerifyError::Database(err)) => return Err(err.into()),
    }
    Ok(report)
}

/// Hands each non-blank line of `files`, in order, to `check` until one is broken; that one,
/// with its file and 1-based line.
pub(crate) fn check_lines(
    files: &[impl AsRef<Path>],
    output: Output,
    mut check: impl FnMut(&str) -> Result<(), Broken>,
) -> Result<Option<Broken>, Error> {
    let mut total = 0;
    for file in files {
        total += std::fs::metadata(file.as_ref())?.len();
    }
    let bar = progress::bar(output, Some(total), "bytes");
    let mut broken = None;
    'files: for file in files {
        let name = file.as_ref().display().to_string();
        let mut reader = BufReader::new(File::open(file.as_ref())?);
        let mut text = String::new();
        let mut line = 0;
        loop {
            text.clear();
            let read = reader.read_line(&mut text)?;
            if read == 0 {
                break;
            }
            line += 1;
            bar.inc(read as u64);
            if text.trim().is_empty() {
                continue;
            }
            if let Err(mut found) = check(text.trim_end()) {
                found.file = Some(name.clone());
                found.line = Some(line);
                broken = Some(found);
                break 'files;
            }
        }
    }
    bar.finish_and_clear();
    Ok(broken)
}

/// Whether the chain read so far, ending at `last` (`(0, ZERO)` when empty), ends where `head`
/// says; a head of another tenant's chain says nothing of this one (`Ok(false)`).
pub(crate) fn check_head(
    tenant: TenantId,
    head: &ChainHead,
    last: (i64, ChainHash),
) -> Result<bool, Broken> {
    if head.tenant_id.is_some_and(|t| t != tenant) {
        return Ok(false);
    }
    let (seq, hash) = last;
    if (seq, hash) != (head.seq, head.hash) {
        return Err(broken_at(
            None,
            Some(head.seq),
            format!(
                "the chain head names seq {} ({}), but the rows before it end at seq {seq} ({hash}): rows are missing at the end, or the head was altered",
                head.seq, head.hash
            ),
        ));
    }
    Ok(true)
}

/// A chain head line: a [`HeadLine`], or a bare `{seq, hash}`.
pub(crate) fn head_of(text: &str) -> Option<ChainHead> {
    serde_json::from_str::<HeadLine>(text)
        .map(|line| line.chain_head)
        .or_else(|_| serde_json::from_str::<ChainHead>(text))
        .ok()
}

/// Verifies `tenant`'s chain from `files`, in order; with `leaves`, also returns each row's
/// leaf hash for the verifiable log's proofs.
pub fn verify_files(
    tenant: Uuid,
    files: &[impl AsRef<Path>],
    output: Output,
    leaves: bool,
) -> Result<(AuditReport, Leaves), Error> {
    let mut check = FileCheck {
        tenant: TenantId::from_uuid(tenant),
        verifier: ChainVerifier::new(),
        anchored: false,
        leaves: leaves.then(Leaves::new),
    };
    let broken = check_lines(files, output, |line| check.line(line))?;
    let head = check
        .verifier
        .heads()
        .get(&check.tenant)
        .map(|&(seq, hash)| ChainHead {
            tenant_id: Some(check.tenant),
            seq,
            hash,
        });
    let report = AuditReport {
        tenant_id: tenant,
        source: files
            .iter()
            .map(|f| f.as_ref().display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        verified: check.verifier.verified(),
        content_checked: check.verifier.content_checked(),
        ok: broken.is_none(),
        head,
        anchored: check.anchored,
        broken,
        log: None,
    };
    Ok((report, check.leaves.unwrap_or_default()))
}

/// An audit row's tenant, `seq` and canonical bytes from a row line or a `stream --audit`
/// line (for `--rows`); `None` for a chain head.
fn row_of(text: &str) -> Result<Option<(TenantId, i64, Vec<u8>)>, String> {
    let row = match serde_json::from_str::<EventLine<'_>>(text) {
        Ok(event) => event.audit.map(Cow::into_owned),
        Err(_) => serde_json::from_str::<AuditRecord>(text).ok(),
    };
    match row {
        Some(row) => Ok(Some((row.tenant_id, row.seq, row.canonical_bytes()))),
        None if head_of(text).is_some() => Ok(None),
        None => Err("the line is not an audit row".into()),
    }
}

/// The ids an event's metadata shares with its audit row.
#[derive(Deserialize)]
struct MetadataIds<'a> {
    #[serde(borrow)]
    actor_id: Cow<'a, str>,
    #[serde(borrow)]
    request_id: Cow<'a, str>,
    #[serde(borrow)]
    correlation_id: Cow<'a, str>,
    #[serde(borrow)]
    causation_id: Cow<'a, str>,
}

struct FileCheck {
    tenant: TenantId,
    verifier: ChainVerifier,
    anchored: bool,
    leaves: Option<Leaves>,
}

impl FileCheck {
    fn line(&mut self, text: &str) -> Result<(), Broken> {
        if let Ok(event) = serde_json::from_str::<EventLine<'_>>(text) {
            let Some(row) = event.audit.as_deref() else {
                return Err(broken_at(
                    Some(event.global_position),
                    None,
                    "the event carries no audit row: export with `stream --audit`".into(),
                ));
            };
            if let Some(field) = disagreement(&event, row) {
                return Err(broken_at(
                    Some(event.global_position),
                    Some(row.seq),
                    format!("the event's {field} differs from its audit row: the line was altered"),
                ));
            }
            return self.row(row, EventAtHand::Content(event.content()));
        }
        if let Ok(row) = serde_json::from_str::<AuditRecord>(text) {
            return self.row(&row, EventAtHand::NotGiven);
        }
        match head_of(text) {
            Some(head) => self.head(&head),
            None => Err(broken_at(
                None,
                None,
                "the line is neither an event, an audit row nor a chain head".into(),
            )),
        }
    }

    fn row(&mut self, row: &AuditRecord, event: EventAtHand<'_>) -> Result<(), Broken> {
        if row.tenant_id != self.tenant {
            return Err(broken_at(
                Some(row.global_position),
                Some(row.seq),
                format!("a row of tenant {}", row.tenant_id),
            ));
        }
        self.verifier.push(row, event).map_err(|link| {
            broken_at(Some(link.global_position), Some(link.seq), describe(&link))
        })?;
        if let Some(leaves) = &mut self.leaves {
            leaves.insert(row.seq, tree::leaf_hash(&row.canonical_bytes()));
        }
        Ok(())
    }

    fn head(&mut self, head: &ChainHead) -> Result<(), Broken> {
        let last = self
            .verifier
            .heads()
            .get(&self.tenant)
            .copied()
            .unwrap_or((0, ChainHash::ZERO));
        self.anchored |= check_head(self.tenant, head, last)?;
        Ok(())
    }
}

/// The first event column or metadata id that differs from what the audit row recorded.
fn disagreement(event: &EventLine<'_>, row: &AuditRecord) -> Option<&'static str> {
    let metadata = serde_json::from_str::<MetadataIds<'_>>(event.metadata.get()).ok();
    let checks = [
        ("tenant_id", *row.tenant_id.as_uuid() == event.tenant_id),
        (
            "global_position",
            row.global_position == event.global_position,
        ),
        ("recorded_at", row.recorded_at == event.recorded_at),
        ("aggregate_type", row.aggregate_type == event.aggregate_type),
        ("aggregate_id", row.aggregate_id == event.aggregate_id),
        ("sequence", row.event_sequence == event.sequence),
        ("event_type", row.action == event.event_type),
        (
            "metadata",
            metadata.as_ref().is_some_and(|m| {
                m.actor_id == row.actor_id
                    && m.request_id == row.request_id
                    && m.correlation_id == row.correlation_id
                    && m.causation_id == row.causation_id
            }),
        ),
    ];
    checks
        .iter()
        .find(|(_, same)| !same)
        .map(|(field, _)| *field)
}

pub(crate) fn broken_at(global_position: Option<i64>, seq: Option<i64>, problem: String) -> Broken {
    Broken {
        file: None,
        line: None,
        seq,
        global_position,
        problem,
    }
}

/// A broken link in words.
fn describe(link: &BrokenLink) -> String {
    match &link.problem {
        LinkProblem::Chain(problem) => problem.describe(link.seq),
        LinkProblem::Downgrade { previous } => format!(
            "the row is of an older encoding than the row before it (encoding {}): the row was rewritten",
            i16::from(*previous)
        ),
        LinkProblem::EventDigest { computed } => format!(
            "the event's content (which digests to {computed}) is not what the row's event digest covers: the event's payload, metadata or identity was altered"
        ),
        LinkProblem::EventMissing => {
            "the row's event is missing from the log: the event was removed".to_owned()
        }
        LinkProblem::EventUnreadable { reason } => {
            format!("the row's event cannot be read ({reason}): the event was altered")
        }
    }
}
