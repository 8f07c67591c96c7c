//! The jobs' settings, part of the process's [`Settings`](crate::settings::Settings).

use std::time::Duration;

/// Settings of the jobs, read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsConfig {
    /// `ARTIFACTS_BUCKET`.
    pub artifacts_bucket: Option<String>,
    /// `AUDIT_ARCHIVE_BUCKET`.
    pub audit_archive_bucket: Option<String>,
    /// `LAG_ALERT_SECONDS`: a subscription lagging more is logged as an error.
    pub lag_alert: Duration,
}

/// A setting that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{name} is invalid: {reason}")]
pub struct InvalidSetting {
    /// The variable.
    pub name: &'static str,
    /// Why.
    pub reason: String,
}

impl JobsConfig {
    /// Reads `ARTIFACTS_BUCKET`, `AUDIT_ARCHIVE_BUCKET` and `LAG_ALERT_SECONDS` through
    /// `lookup` (the process's [`Settings`](crate::settings::Settings) pass theirs).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, InvalidSetting> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let lag_alert = match get("LAG_ALERT_SECONDS") {
            None => Duration::from_secs(60),
            Some(text) => Duration::from_secs(text.parse().map_err(|_| InvalidSetting {
                name: "LAG_ALERT_SECONDS",
                reason: format!("{text:?} is not a whole number of seconds"),
            })?),
        };
        Ok(Self {
            artifacts_bucket: get("ARTIFACTS_BUCKET"),
            audit_archive_bucket: get("AUDIT_ARCHIVE_BUCKET"),
            lag_alert,
        })
    }
}
