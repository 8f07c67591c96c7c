//! Running the binary, and a seeded history with the read model's state recorded part way.

use std::process::Stdio;

use casebook_domain::ids::TenantId;
use casebook_projections::status::status_of;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use uuid::Uuid;

use crate::support::{Driver, Stack};

/// What a run of the binary left.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The stdout's lines as JSON.
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).expect("a JSON document")
    }

    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }
}

pub const BIN: &str = env!("CARGO_BIN_EXE_casebook-replay");

/// A command for the binary against `stack`'s database.
pub fn command(stack: &Stack, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(args)
        .env("DATABASE_URL", stack.db.url())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs the binary to its end.
pub async fn replay(stack: &Stack, args: &[&str]) -> Run {
    let output = command(stack, args)
        .output()
        .await
        .expect("run casebook-replay");
    Run {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// A diagnosis as the read model showed it at the snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct DiagnosisRow {
    pub id: Uuid,
    pub status: String,
    pub attempt: i32,
    pub confidence: Option<f64>,
}

/// What the read models showed part way through the seeding.
pub struct Snapshot {
    /// The diagnoses projection's checkpoint (a global position).
    pub position: i64,
    /// A moment after every event so far and before every later one.
    pub time: DateTime<Utc>,
    /// The first tenant's diagnoses.
    pub diagnoses: Vec<DiagnosisRow>,
}

pub struct Seeded {
    pub stack: Stack,
    pub tenants: Vec<TenantId>,
    pub snapshot: Snapshot,
}

impl Seeded {
    pub fn tenant(&self, i: usize) -> String {
        self.tenants[i].to_string()
    }
}

/// Three tenants, `before` random commands, drained projections and a snapshot of the first
/// tenant's diagnoses, then `after` more commands, drained again.
pub async fn seed(seed: u64, before: usize, after: usize) -> Seeded {
    let stack = Stack::new().await;
    let mut driver = Driver::new(stack.app.clone(), seed);
    driver.onboard(3).await;
    driver.run(before).await;
    stack.drain_all(500).await;
    let tenants = driver.tenants.clone();
    let snapshot = snapshot(&stack, tenants[0]).await;
    driver.run(after).await;
    stack.drain_all(500).await;
    Seeded {
        stack,
        tenants,
        snapshot,
    }
}

async fn snapshot(stack: &Stack, tenant: TenantId) -> Snapshot {
    let mut conn = stack.owner.acquire().await.unwrap();
    let position = status_of(&mut conn, "diagnoses")
        .await
        .unwrap()
        .expect("the diagnoses projection has run")
        .checkpoint
        .global_position;
    let time: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let diagnoses = sqlx::query(
        "SELECT diagnosis_id, status, attempt, confidence FROM diagnoses
          WHERE tenant_id = $1 ORDER BY position",
    )
    .bind(tenant.as_uuid())
    .fetch_all(&mut *conn)
    .await
    .unwrap()
    .iter()
    .map(|row| DiagnosisRow {
        id: row.get("diagnosis_id"),
        status: row.get("status"),
        attempt: row.get("attempt"),
        confidence: row.get("confidence"),
    })
    .collect();
    // Later events' transactions start after this moment, so their `recorded_at` is later.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    Snapshot {
        position,
        time,
        diagnoses,
    }
}

/// `tenant`'s events in reading order: (global position, payload).
pub async fn events_of(stack: &Stack, tenant: &str) -> Vec<(i64, Value, DateTime<Utc>)> {
    sqlx::query(
        "SELECT global_position, payload, recorded_at FROM events
          WHERE tenant_id = $1::uuid ORDER BY transaction_id, global_position",
    )
    .bind(tenant)
    .fetch_all(&stack.owner)
    .await
    .unwrap()
    .iter()
    .map(|row| {
        (
            row.get("global_position"),
            row.get("payload"),
            row.get("recorded_at"),
        )
    })
    .collect()
}
