//! The data teams' commands: `rebuild`, `verify`, `swap` (driving
//! [`casebook_projections::rebuild::Rebuild`]) and `status`.

use std::str::FromStr;

use casebook_domain::ids::TenantId;
use casebook_projections::log::Checkpoint;
use casebook_projections::projection::{ProjectionId, UnknownProjection};
use casebook_projections::rebuild::{Rebuild, RebuildScope, TableVerdict};
use casebook_projections::status::{status, SubscriptionStatus};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::cli::{Output, RebuildArgs, TargetArgs};
use crate::{db, progress, Error, Verdict};

/// `PROJECTION|all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target(pub Vec<ProjectionId>);

impl FromStr for Target {
    type Err = UnknownProjection;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "all" {
            return Ok(Target(ProjectionId::ALL.to_vec()));
        }
        Ok(Target(vec![s.parse()?]))
    }
}

fn rebuild_of(pool: PgPool, target: &TargetArgs) -> Result<Rebuild, Error> {
    let scope = match target.tenant {
        Some(tenant) => RebuildScope::Tenant(TenantId::from_uuid(tenant)),
        None => RebuildScope::All,
    };
    Ok(Rebuild::new(pool, target.projection.0.iter().copied(), scope).with_vault(db::vault()?))
}

/// Connections a rebuild of `target` needs: one per projection, plus the session's and the
/// log reader's.
async fn maintainer_pool(target: &TargetArgs) -> Result<PgPool, Error> {
    let connections = u32::try_from(target.projection.0.len()).unwrap_or(u32::MAX) + 3;
    db::maintainer(connections).await
}

/// How `rebuild` ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RebuildReport {
    /// The projections.
    pub projections: Vec<&'static str>,
    /// The tenant, for a one-tenant rebuild.
    pub tenant_id: Option<Uuid>,
    /// Where this run started (0 for a fresh rebuild).
    pub resumed_from: i64,
    /// The last event applied.
    pub global_position: i64,
    /// Events applied by this run.
    pub applied: u64,
    /// Whether the shadow tables caught up with the log.
    pub caught_up: bool,
}

/// Runs `rebuild`: builds the shadow tables (discarding an earlier rebuild unless
/// `--resume`), with a progress bar; Ctrl-C stops after the batch in flight (exit 3, resume
/// later).
pub async fn run_rebuild(args: RebuildArgs, output: Output) -> Result<Verdict, Error> {
    let pool = maintainer_pool(&args.target).await?;
    let rebuild = rebuild_of(pool, &args.target)?.with_batch_size(args.batch_size);
    if !args.resume {
        rebuild.discard().await?;
    }
    let bar = progress::bar(output, None, "events");
    let outcome = rebuild
        .build(progress::interrupted(), |p| {
            bar.set_length(p.total);
            bar.set_position(p.applied);
        })
        .await;
    bar.finish_and_clear();
    let outcome = outcome?;
    let report = RebuildReport {
        projections: args
            .target
            .projection
            .0
            .iter()
            .map(|id| id.name())
            .collect(),
        tenant_id: args.target.tenant,
        resumed_from: outcome.resumed_from.global_position,
        global_position: outcome.checkpoint.global_position,
        applied: outcome.applied,
        caught_up: outcome.caught_up,
    };
    if output.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} {}: {} events applied (from position {} to {}){}",
            if report.caught_up { "built" } else { "stopped" },
            report.projections.join(", "),
            report.applied,
            report.resumed_from,
            report.global_position,
            if report.caught_up {
                "; next: `verify`, then `swap`"
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

/// One table's verdict as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableReport {
    /// The live table.
    pub table: &'static str,
    /// Whether the live and rebuilt rows are equal.
    pub matches: bool,
    /// Live rows (in scope).
    pub live_rows: u64,
    /// Rebuilt rows.
    pub rebuilt_rows: u64,
    /// The first key whose rows differ (JSON).
    pub first_difference: Option<String>,
}

impl From<&TableVerdict> for TableReport {
    fn from(verdict: &TableVerdict) -> Self {
        Self {
            table: verdict.table.name,
            matches: verdict.matches(),
            live_rows: verdict.live.rows,
            rebuilt_rows: verdict.rebuilt.rows,
            first_difference: verdict.first_difference.clone(),
        }
    }
}

/// Runs `verify`: 0 when every table matches, 1 otherwise.
pub async fn run_verify(target: TargetArgs, output: Output) -> Result<Verdict, Error> {
    let pool = maintainer_pool(&target).await?;
    let verdicts = rebuild_of(pool, &target)?.verify().await?;
    let tables: Vec<TableReport> = verdicts.iter().map(TableReport::from).collect();
    let all_match = tables.iter().all(|t| t.matches);
    if output.json {
        println!(
            "{}",
            serde_json::json!({ "matches": all_match, "tables": tables })
        );
    } else {
        for t in &tables {
            match &t.first_difference {
                None if t.matches => println!("equal    {:<24} {} rows", t.table, t.live_rows),
                difference => println!(
                    "DIFFERS  {:<24} live {} rows, rebuilt {} rows, first differing key {}",
                    t.table,
                    t.live_rows,
                    t.rebuilt_rows,
                    difference.as_deref().unwrap_or("(none: same keys)")
                ),
            }
        }
    }
    Ok(if all_match {
        Verdict::Passed
    } else {
        Verdict::Failed
    })
}

/// Runs `swap`.
pub async fn run_swap(target: TargetArgs, output: Output) -> Result<Verdict, Error> {
    let pool = maintainer_pool(&target).await?;
    rebuild_of(pool, &target)?.swap().await?;
    let names: Vec<&str> = target.projection.0.iter().map(|id| id.name()).collect();
    if output.json {
        println!("{}", serde_json::json!({ "swapped": names }));
    } else {
        println!("swapped in: {}", names.join(", "));
    }
    Ok(Verdict::Passed)
}

/// A subscription as `status` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusRow {
    /// The subscription.
    pub name: String,
    /// running, stopped, failed or rebuilding.
    pub state: String,
    /// The checkpoint's global position.
    pub global_position: i64,
    /// The checkpoint's transaction.
    pub transaction_id: i64,
    /// Committed events after the checkpoint.
    pub lag_events: i64,
    /// Age of the oldest of them, in seconds.
    pub lag_seconds: f64,
    /// The failure, or the last transient error.
    pub last_error: Option<String>,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<SubscriptionStatus> for StatusRow {
    fn from(s: SubscriptionStatus) -> Self {
        let Checkpoint {
            transaction_id,
            global_position,
        } = s.checkpoint;
        Self {
            name: s.name,
            state: s.state.to_string(),
            global_position,
            transaction_id,
            lag_events: s.lag_events,
            lag_seconds: s.lag_seconds,
            last_error: s.last_error,
            updated_at: s.updated_at,
        }
    }
}

/// Runs `status`: one line (or JSON line) per subscription.
pub async fn run_status(pool: &PgPool, output: Output) -> Result<Verdict, Error> {
    let mut conn = pool.acquire().await?;
    let rows: Vec<StatusRow> = status(&mut conn)
        .await?
        .into_iter()
        .map(StatusRow::from)
        .collect();
    if output.json {
        for row in &rows {
            println!("{}", serde_json::to_string(row)?);
        }
        return Ok(Verdict::Passed);
    }
    println!(
        "{:<32} {:<10} {:>12} {:>10} {:>9}  last error",
        "subscription", "state", "position", "lag", "lag (s)"
    );
    for row in &rows {
        println!(
            "{:<32} {:<10} {:>12} {:>10} {:>9.1}  {}",
            row.name,
            row.state,
            row.global_position,
            row.lag_events,
            row.lag_seconds,
            row.last_error.as_deref().unwrap_or("-")
        );
    }
    Ok(Verdict::Passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_names_every_projection_and_a_name_names_one() {
        assert_eq!("all".parse(), Ok(Target(ProjectionId::ALL.to_vec())));
        assert_eq!(
            "diagnoses".parse(),
            Ok(Target(vec![ProjectionId::Diagnoses]))
        );
        assert!("invoices".parse::<Target>().is_err());
    }
}
