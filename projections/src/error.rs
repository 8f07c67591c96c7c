//! How applying events can fail, classified for the runner: a transient failure is retried
//! with backoff, a permanent one stops the subscription at the offending event.

use std::error::Error as StdError;

/// Any error, boxed, with its cause chain.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a batch of events could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Retrying cannot help: the event (or the code applying it) is at fault. The runner
    /// isolates the event and stops the subscription there with status `failed`.
    #[error("{message}")]
    Permanent {
        /// What went wrong, in one line.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// Retrying may succeed (the database is unreachable, a serialization failure, …).
    #[error("transient failure")]
    Transient(#[source] BoxError),
}

impl ApplyError {
    /// A permanent failure described by `message`.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent {
            message: message.into(),
            source: None,
        }
    }

    /// A permanent failure caused by `source`, described by `message`.
    pub fn permanent_from(
        message: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Self::Permanent {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// Whether retrying may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

impl From<sqlx::Error> for ApplyError {
    /// Connection loss, pool exhaustion and the SQLSTATE classes of transient conditions
    /// (connection exceptions, serialization failures and deadlocks, resources, operator
    /// intervention, system errors) are transient; anything else — a constraint or data
    /// error, a missing table — comes back the same on a retry.
    fn from(err: sqlx::Error) -> Self {
        let transient = match &err {
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                ["08", "40", "53", "57", "58"]
                    .iter()
                    .any(|class| code.starts_with(class))
            }),
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => true,
            _ => false,
        };
        if transient {
            Self::Transient(Box::new(err))
        } else {
            Self::permanent_from("database error", err)
        }
    }
}

/// `err` and its causes, joined by `": "`: what goes into `subscriptions.last_error` and logs.
pub fn report(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_names_every_cause() {
        let err = ApplyError::permanent_from(
            "cannot decode",
            std::io::Error::other("unexpected end of input"),
        );
        assert_eq!(report(&err), "cannot decode: unexpected end of input");
    }

    #[test]
    fn a_lost_connection_is_transient_and_a_bad_row_is_not() {
        assert!(ApplyError::from(sqlx::Error::PoolTimedOut).is_transient());
        assert!(!ApplyError::from(sqlx::Error::RowNotFound).is_transient());
    }
}
