//! Monthly token budgets: how many model tokens (in and out) each plan may spend in a
//! calendar month (UTC), the thresholds reported once a month when crossed, and when a
//! month's budget renews.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::policy::PlanTier;

impl PlanTier {
    /// Model tokens (input and output together) the plan's tenants may spend per calendar
    /// month (UTC). A typical diagnosis spends a few thousand.
    pub fn monthly_token_budget(self) -> u64 {
        match self {
            PlanTier::Starter => 1_000_000,
            PlanTier::CostSensitive => 2_000_000,
            PlanTier::Professional => 10_000_000,
            PlanTier::Enterprise => 100_000_000,
        }
    }
}

/// A calendar month in UTC, the period a budget is spent in. Written `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BudgetMonth(NaiveDate);

impl BudgetMonth {
    /// The month `at` falls in (UTC).
    pub fn of(at: DateTime<Utc>) -> Self {
        Self::containing(at.date_naive())
    }

    /// The month of `day`.
    pub fn containing(day: NaiveDate) -> Self {
        // Day 1 exists in every month.
        Self(day.with_day(1).unwrap_or(day))
    }

    /// Its first day.
    pub fn first_day(self) -> NaiveDate {
        self.0
    }

    /// Its last day.
    pub fn last_day(self) -> NaiveDate {
        self.renews_on().pred_opt().unwrap_or(self.0)
    }

    /// The day the budget renews: the first day of the next month.
    pub fn renews_on(self) -> NaiveDate {
        // Only past year 262143 is there no next month.
        self.0.checked_add_months(Months::new(1)).unwrap_or(self.0)
    }
}

impl fmt::Display for BudgetMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m"))
    }
}

/// A month that is not `YYYY-MM`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a month (YYYY-MM)")]
pub struct InvalidMonth(String);

impl FromStr for BudgetMonth {
    type Err = InvalidMonth;

    fn from_str(s: &str) -> Result<Self, InvalidMonth> {
        NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d")
            .map(Self)
            .map_err(|_| InvalidMonth(s.to_owned()))
    }
}

impl TryFrom<String> for BudgetMonth {
    type Error = InvalidMonth;

    fn try_from(s: String) -> Result<Self, InvalidMonth> {
        s.parse()
    }
}

impl From<BudgetMonth> for String {
    fn from(month: BudgetMonth) -> Self {
        month.to_string()
    }
}

/// A share of the budget whose crossing is reported, once per tenant and month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum BudgetThreshold {
    /// 80 %: the budget is running out.
    Approaching,
    /// 100 %: spent; new diagnoses wait for the next month or a larger plan.
    Spent,
}

impl BudgetThreshold {
    /// Every threshold, lowest first.
    pub const ALL: [BudgetThreshold; 2] = [BudgetThreshold::Approaching, BudgetThreshold::Spent];

    /// Its share of the budget, in percent.
    pub fn percent(self) -> u8 {
        match self {
            Self::Approaching => 80,
            Self::Spent => 100,
        }
    }

    /// Whether `used` tokens reach this share of `budget`.
    pub fn reached(self, used: u64, budget: u64) -> bool {
        u128::from(used) * 100 >= u128::from(budget) * u128::from(self.percent())
    }
}

impl TryFrom<u8> for BudgetThreshold {
    type Error = String;

    fn try_from(percent: u8) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.percent() == percent)
            .ok_or_else(|| format!("{percent} % is not a budget threshold"))
    }
}

impl From<BudgetThreshold> for u8 {
    fn from(threshold: BudgetThreshold) -> Self {
        threshold.percent()
    }
}

/// A tenant's budget for one month, and what it has spent of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetUse {
    /// The month.
    pub month: BudgetMonth,
    /// Tokens spent in it.
    pub tokens_used: u64,
    /// Tokens its plan allows.
    pub tokens_budget: u64,
}

impl BudgetUse {
    /// Tokens left (0 once spent).
    pub fn remaining(self) -> u64 {
        self.tokens_budget.saturating_sub(self.tokens_used)
    }

    /// Whether nothing is left: new diagnoses are deferred.
    pub fn is_spent(self) -> bool {
        BudgetThreshold::Spent.reached(self.tokens_used, self.tokens_budget)
    }

    /// The thresholds this use reaches, lowest first.
    pub fn thresholds_reached(self) -> impl Iterator<Item = BudgetThreshold> {
        BudgetThreshold::ALL
            .into_iter()
            .filter(move |t| t.reached(self.tokens_used, self.tokens_budget))
    }
}
