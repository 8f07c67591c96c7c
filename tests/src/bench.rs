//! Figures of the benchmarks: latency percentiles, and the spread of a figure over repeated
//! runs (machines of this kind vary between runs as much as the effects measured, so each
//! cell runs several times and reports its median and range).

use std::fmt;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};
use uuid::Uuid;

/// How long and how often each cell of a benchmark runs: `BENCH_SECONDS` (default 5) a run,
/// `BENCH_ROUNDS` (default 3) interleaved rounds.
pub struct Cells {
    pub seconds: u64,
    pub rounds: usize,
}

impl Cells {
    pub fn from_env() -> Self {
        let setting = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|value| value.parse().ok())
                .unwrap_or(default)
        };
        Self {
            seconds: setting("BENCH_SECONDS", 5),
            rounds: setting("BENCH_ROUNDS", 3) as usize,
        }
    }
}

/// One run of one cell: its rate and each operation's latency.
pub struct Run {
    pub per_second: f64,
    pub latencies: Latencies,
}

impl Run {
    /// The run whose operations took `took`, over `elapsed` in all.
    pub fn new(took: Vec<Duration>, elapsed: Duration) -> Self {
        Self {
            per_second: took.len() as f64 / elapsed.as_secs_f64(),
            latencies: Latencies::new(took),
        }
    }
}

/// A pool for raw baselines: `casebook_app` with `tenant`'s rows, assumed once per connection,
/// so row-level security checks the same rows as on the request path while each statement
/// commits alone, without the per-transaction scoping the request path pays for.
pub async fn session_scoped(login: PgConnectOptions, tenant: Uuid, connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(connections)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                conn.execute(
                    format!("SET ROLE casebook_app; SET app.tenant_id = '{tenant}'").as_str(),
                )
                .await
                .map(drop)
            })
        })
        .connect_with(login)
        .await
        .expect("connect the session-scoped pool")
}

/// A latency in milliseconds, for printing.
pub fn millis(latency: Duration) -> f64 {
    latency.as_secs_f64() * 1e3
}

/// Latencies of one run, sorted.
pub struct Latencies(Vec<Duration>);

impl Latencies {
    /// # Panics
    /// With no samples: a run that did nothing has no latency to report.
    pub fn new(mut samples: Vec<Duration>) -> Self {
        assert!(!samples.is_empty(), "a latency needs at least one sample");
        samples.sort_unstable();
        Self(samples)
    }

    /// The `p` quantile (0.5 for the median), nearest rank.
    pub fn percentile(&self, p: f64) -> Duration {
        self.0[((self.0.len() - 1) as f64 * p).round() as usize]
    }

    pub fn p50(&self) -> Duration {
        self.percentile(0.5)
    }

    pub fn p99(&self) -> Duration {
        self.percentile(0.99)
    }
}

/// The median and range of one figure over repeated runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub low: f64,
    pub high: f64,
}

impl Spread {
    /// # Panics
    /// With no runs, or a NaN among them.
    pub fn of(runs: impl IntoIterator<Item = f64>) -> Self {
        let mut runs: Vec<f64> = runs.into_iter().collect();
        assert!(!runs.is_empty(), "a spread needs at least one run");
        runs.sort_by(|a, b| a.partial_cmp(b).expect("a figure is a number"));
        let middle = runs.len() / 2;
        let median = if runs.len() % 2 == 1 {
            runs[middle]
        } else {
            (runs[middle - 1] + runs[middle]) / 2.0
        };
        Self {
            median,
            low: runs[0],
            high: runs[runs.len() - 1],
        }
    }

    /// Each figure scaled by `factor` (units for printing: 1e3 for seconds as ms).
    pub fn scaled(self, factor: f64) -> Self {
        Self {
            median: self.median * factor,
            low: self.low * factor,
            high: self.high * factor,
        }
    }
}

/// `median (low–high)`, with the precision the format asks for (`{:.2}`); none: whole numbers.
impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let precision = f.precision().unwrap_or(0);
        write!(
            f,
            "{:.p$} ({:.p$}–{:.p$})",
            self.median,
            self.low,
            self.high,
            p = precision
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_odd_count_is_its_middle_and_of_an_even_count_the_mean_of_two() {
        let odd = Spread::of([3.0, 1.0, 2.0]);
        assert_eq!((odd.median, odd.low, odd.high), (2.0, 1.0, 3.0));
        assert_eq!(Spread::of([4.0, 1.0, 2.0, 3.0]).median, 2.5);
        assert_eq!(
            format!("{:.1}", Spread::of([0.3, 1.0, 2.0])),
            "1.0 (0.3–2.0)"
        );
    }

    #[test]
    fn percentiles_are_nearest_rank_over_the_sorted_samples() {
        let latencies = Latencies::new((1..=100).rev().map(Duration::from_micros).collect());
        assert_eq!(latencies.p50(), Duration::from_micros(51));
        assert_eq!(latencies.p99(), Duration::from_micros(99));
        assert_eq!(latencies.percentile(1.0), Duration::from_micros(100));
    }
}
