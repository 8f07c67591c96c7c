//! `stream`: a tenant's events in reading order, streamed through the gap-safe
//! [`LogReader`] (a few pages in memory, whatever the log's size) into a [`Sink`].
//!
//! # Export format (JSONL)
//! One [`EventLine`] per event: the stored columns (`payload` and `metadata` exactly as
//! stored), and with `--audit` the event's row of the audit chain (`audit`, an
//! [`AuditRecord`] with its `encoding`, `event_digest`, `prev_hash` and `hash`). A row of
//! encoding 2 carries the digest of its line's event (identity, type, version, payload,
//! metadata), so `audit verify` notices an edited event as well as an edited row. An
//! `--audit` export ends with a [`HeadLine`] naming the chain's last `seq` and hash, so a
//! deleted last line is noticed too.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::str::FromStr;

use casebook_domain::ids::TenantId;
use casebook_projections::audit::{self, AuditRecord, ChainHash, EventContent};
use casebook_projections::log::{Checkpoint, LogReader, RecordedEvent, Scope};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

use crate::bound::{checkpoint_of, Bound};
use crate::cli::{Format, Output, StreamArgs};
use crate::progress;
use crate::sink::Sink;
use crate::Error;

/// One exported event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventLine<'a> {
    /// The event's identity value.
    pub global_position: i64,
    /// The appending transaction (`xid8`): with the position, the reading order.
    pub transaction_id: i64,
    /// The tenant.
    pub tenant_id: Uuid,
    /// e.g. `Diagnosis`.
    #[serde(borrow)]
    pub aggregate_type: Cow<'a, str>,
    /// The aggregate's id.
    #[serde(borrow)]
    pub aggregate_id: Cow<'a, str>,
    /// 1-based position in the aggregate's stream.
    pub sequence: i64,
    /// The event's variant.
    #[serde(borrow)]
    pub event_type: Cow<'a, str>,
    /// The payload's schema version, as stored.
    #[serde(borrow)]
    pub event_version: Cow<'a, str>,
    /// When the store accepted it.
    pub recorded_at: DateTime<Utc>,
    /// Actor, request, correlation and causation ids, source, tenant, as stored.
    #[serde(borrow)]
    pub metadata: &'a RawValue,
    /// The event body, as stored.
    #[serde(borrow)]
    pub payload: &'a RawValue,
    /// The event's audit row with its chain hashes (`stream --audit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<Cow<'a, AuditRecord>>,
}

impl<'a> EventLine<'a> {
    /// The line of `event`, borrowing from it.
    pub fn of(event: &'a RecordedEvent, audit: Option<&'a AuditRecord>) -> Self {
        Self {
            global_position: event.checkpoint.global_position,
            transaction_id: event.checkpoint.transaction_id,
            tenant_id: event.tenant_id,
            aggregate_type: Cow::Borrowed(&event.aggregate_type),
            aggregate_id: Cow::Borrowed(&event.aggregate_id),
            sequence: event.sequence,
            event_type: Cow::Borrowed(&event.event_type),
            event_version: Cow::Borrowed(&event.event_version),
            recorded_at: event.recorded_at,
            metadata: &event.metadata,
            payload: &event.payload,
            audit: audit.map(Cow::Borrowed),
        }
    }

    /// The line's event, as its audit row's event digest covers it.
    pub fn content(&self) -> EventContent<'_> {
        EventContent {
            global_position: self.global_position,
            aggregate_type: &self.aggregate_type,
            aggregate_id: &self.aggregate_id,
            sequence: self.sequence,
            event_type: &self.event_type,
            event_version: &self.event_version,
            payload: self.payload,
            metadata: self.metadata,
        }
    }
}

/// The last line of an `--audit` export, and of a nightly archive: where the tenant's chain
/// ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadLine {
    /// The head.
    #[serde(alias = "head")]
    pub chain_head: ChainHead,
}

/// A chain's last row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainHead {
    /// The tenant (absent in files that hold one tenant's chain only).
    #[serde(default)]
    pub tenant_id: Option<TenantId>,
    /// The last row's `seq` (0 for an empty chain).
    pub seq: i64,
    /// The last row's hash.
    pub hash: ChainHash,
}

/// `--aggregate TYPE[/ID]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateFilter {
    /// The aggregate type.
    pub aggregate_type: String,
    /// One instance, or all of the type.
    pub aggregate_id: Option<String>,
}

/// An empty aggregate type or id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected TYPE or TYPE/ID, got {0:?}")]
pub struct InvalidAggregate(String);

impl FromStr for AggregateFilter {
    type Err = InvalidAggregate;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (aggregate_type, aggregate_id) = match s.split_once('/') {
            Some((kind, id)) => (kind, Some(id)),
            None => (s, None),
        };
        if aggregate_type.is_empty() || aggregate_id.is_some_and(str::is_empty) {
            return Err(InvalidAggregate(s.to_owned()));
        }
        Ok(Self {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.map(str::to_owned),
        })
    }
}

/// Which events of the tenant's log are printed.
struct Filter {
    until: Option<Checkpoint>,
    from_time: Option<DateTime<Utc>>,
    until_time: Option<DateTime<Utc>>,
    aggregate: Option<AggregateFilter>,
    event_type: Option<String>,
}

impl Filter {
    fn keeps(&self, event: &RecordedEvent) -> bool {
        self.from_time.is_none_or(|t| event.recorded_at >= t)
            && self.until_time.is_none_or(|t| event.recorded_at <= t)
            && self
                .event_type
                .as_ref()
                .is_none_or(|x| *x == event.event_type)
            && self.aggregate.as_ref().is_none_or(|a| {
                a.aggregate_type == event.aggregate_type
                    && a.aggregate_id
                        .as_ref()
                        .is_none_or(|id| *id == event.aggregate_id)
            })
    }
}

/// Runs `stream`.
pub async fn run(pool: &PgPool, args: StreamArgs, output: Output) -> Result<(), Error> {
    if args.audit && args.format != Format::Jsonl {
        return Err(Error::Usage("--audit needs --format jsonl".into()));
    }
    // A chain verifies from its first row and without holes: an `--audit` export may end
    // early, but must start at the beginning and skip nothing.
    if args.audit && (args.from.is_some() || args.aggregate.is_some() || args.event_type.is_some())
    {
        return Err(Error::Usage(
            "--audit exports the chain from its start: it takes --until, but not --from, --aggregate or --event-type".into(),
        ));
    }
    let start = match args.from {
        // Just before the event at `p`: reading resumes with it.
        Some(Bound::Position(p)) => Checkpoint {
            global_position: p - 1,
            ..checkpoint_of(pool, p).await?
        },
        _ => Checkpoint::START,
    };
    let filter = Filter {
        until: match args.until {
            Some(Bound::Position(p)) => Some(checkpoint_of(pool, p).await?),
            _ => None,
        },
        from_time: match args.from {
            Some(Bound::Time(t)) => Some(t),
            _ => None,
        },
        until_time: match args.until {
            Some(Bound::Time(t)) => Some(t),
            _ => None,
        },
        aggregate: args.aggregate,
        event_type: args.event_type,
    };
    let total = if progress::visible(output) {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE tenant_id = $1")
            .bind(args.tenant)
            .fetch_one(pool)
            .await?;
        u64::try_from(count).ok()
    } else {
        None
    };
    let bar = progress::bar(output, total, "events");
    let chain = match args.audit {
        true => Some(ChainReader::new(pool, args.tenant).await?),
        false => None,
    };
    let mut sink = Sink::open(args.out.as_ref()).await?;
    let written = write_events(
        pool,
        start,
        args.tenant,
        &filter,
        args.format,
        chain,
        &mut sink,
        &bar,
    )
    .await;
    bar.finish_and_clear();
    match written {
        Ok(()) => sink.finish().await,
        // A reader that closed the pipe (`| head`) has all it wanted.
        Err(Error::Io(err)) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(err) => {
            sink.abort().await;
            Err(err)
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn write_events(
    pool: &PgPool,
    start: Checkpoint,
    tenant: Uuid,
    filter: &Filter,
    format: Format,
    mut chain: Option<ChainReader>,
    sink: &mut Sink,
    bar: &indicatif::ProgressBar,
) -> Result<(), Error> {
    let mut events = LogReader::new(pool.clone()).catch_up(start, Scope::Tenant(tenant));
    let mut line = Vec::with_capacity(4096);
    while let Some(event) = events.next().await {
        let event = event?;
        if filter.until.is_some_and(|until| event.checkpoint > until) {
            break;
        }
        bar.inc(1);
        let audit = match chain.as_mut() {
            Some(chain) => match chain.row_of(&event).await? {
                Some(row) => Some(row),
                // The audit projection is behind: what follows has no chain yet.
                None => {
                    tracing::warn!(
                        position = event.global_position(),
                        "the audit projection has not chained this event yet; the export ends before it"
                    );
                    break;
                }
            },
            None => None,
        };
        if !filter.keeps(&event) {
            continue;
        }
        line.clear();
        match format {
            Format::Jsonl => {
                serde_json::to_writer(&mut line, &EventLine::of(&event, audit.as_ref()))?;
            }
            Format::Table => table_row(&mut line, &event)?,
        }
        line.push(b'\n');
        sink.write(&line).await?;
    }
    if let Some(chain) = chain {
        line.clear();
        serde_json::to_writer(
            &mut line,
            &HeadLine {
                chain_head: chain.head(),
            },
        )?;
        line.push(b'\n');
        sink.write(&line).await?;
    }
    Ok(())
}

/// The metadata fields a table row shows.
#[derive(Deserialize)]
struct Who<'a> {
    #[serde(borrow)]
    actor_id: Cow<'a, str>,
    #[serde(borrow)]
    request_id: Cow<'a, str>,
}

fn table_row(line: &mut Vec<u8>, event: &RecordedEvent) -> Result<(), Error> {
    use std::io::Write as _;
    let who: Who<'_> = serde_json::from_str(event.metadata.get())?;
    write!(
        line,
        "{:>10}  {}  {}/{} #{}  {} v{}  by {} (request {})",
        event.global_position(),
        event.recorded_at.format("%Y-%m-%d %H:%M:%S%.3fZ"),
        event.aggregate_type,
        event.aggregate_id,
        event.sequence,
        event.event_type,
        event.event_version,
        who.actor_id,
        who.request_id,
    )?;
    Ok(())
}

/// The tenant's audit rows in chain order, read a page at a time alongside the events (the
/// audit projection chains a tenant's events in exactly their reading order).
struct ChainReader {
    conn: PoolConnection<Postgres>,
    tenant: TenantId,
    rows: VecDeque<AuditRecord>,
    last_seq: i64,
    head: (i64, ChainHash),
    exhausted: bool,
}

impl ChainReader {
    const PAGE: i64 = 2_000;

    async fn new(pool: &PgPool, tenant: Uuid) -> Result<Self, Error> {
        Ok(Self {
            conn: pool.acquire().await?,
            tenant: TenantId::from_uuid(tenant),
            rows: VecDeque::new(),
            last_seq: 0,
            head: (0, ChainHash::ZERO),
            exhausted: false,
        })
    }

    /// `event`'s audit row; `None` when the chain has no more rows.
    async fn row_of(&mut self, event: &RecordedEvent) -> Result<Option<AuditRecord>, Error> {
        if self.rows.is_empty() && !self.exhausted {
            let page =
                audit::records(&mut self.conn, self.tenant, self.last_seq, Self::PAGE).await?;
            self.exhausted = (page.len() as i64) < Self::PAGE;
            if let Some(last) = page.last() {
                self.last_seq = last.seq;
            }
            self.rows.extend(page);
        }
        let Some(row) = self.rows.pop_front() else {
            return Ok(None);
        };
        if row.global_position != event.global_position() {
            return Err(Error::Inconsistent(format!(
                "the audit chain (seq {} at position {}) and the log (position {}) disagree; verify the chain with `audit verify`",
                row.seq,
                row.global_position,
                event.global_position()
            )));
        }
        self.head = (row.seq, row.hash);
        Ok(Some(row))
    }

    fn head(&self) -> ChainHead {
        ChainHead {
            tenant_id: Some(self.tenant),
            seq: self.head.0,
            hash: self.head.1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aggregate_filter_is_a_type_or_a_type_and_an_id() {
        assert_eq!(
            "Diagnosis".parse(),
            Ok(AggregateFilter {
                aggregate_type: "Diagnosis".into(),
                aggregate_id: None
            })
        );
        assert_eq!(
            "Diagnosis/42".parse(),
            Ok(AggregateFilter {
                aggregate_type: "Diagnosis".into(),
                aggregate_id: Some("42".into())
            })
        );
        assert!("/42".parse::<AggregateFilter>().is_err());
        assert!("Diagnosis/".parse::<AggregateFilter>().is_err());
    }

    #[test]
    fn a_head_line_reads_under_either_name() {
        let hash = ChainHash([7; 32]);
        let line = format!(r#"{{"head":{{"seq":3,"hash":"{hash}"}}}}"#);
        let head: HeadLine = serde_json::from_str(&line).unwrap();
        assert_eq!(
            head.chain_head,
            ChainHead {
                tenant_id: None,
                seq: 3,
                hash
            }
        );
    }
}
