//! What every aggregate error has in common: access failures and a coarse classification.

use crate::actor::Role;

/// The actor may not run this command on this aggregate.
///
/// Every aggregate error wraps this as its `Access` variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The aggregate doesn't exist, or belongs to another tenant: the two are deliberately
    /// indistinguishable, so a caller can't probe for other tenants' ids.
    #[error("not found")]
    NotFound,
    /// The actor's role may not run this command. Decided from the actor alone, so it reveals
    /// nothing about the aggregate.
    #[error("forbidden for role {role:?}")]
    Forbidden {
        /// The actor's role.
        role: Role,
    },
}

/// How a rejected command should be reported to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No such aggregate for this tenant.
    NotFound,
    /// The actor's role may not do this.
    Forbidden,
    /// The input is invalid for this aggregate.
    Invalid,
    /// The aggregate's state (or a precondition read from another aggregate) doesn't allow it.
    Conflict,
}

/// An aggregate's error, classified for the application.
pub trait DomainError: std::error::Error {
    /// How to report this error.
    fn kind(&self) -> ErrorKind;

    /// A stable code of the refusal's own, for the refusals a client tells apart (e.g.
    /// `last_admin`); `None` reports the [`kind`](Self::kind)'s generic code.
    fn code(&self) -> Option<&'static str> {
        None
    }
}

impl DomainError for AccessError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound => ErrorKind::NotFound,
            Self::Forbidden { .. } => ErrorKind::Forbidden,
        }
    }
}

/// `Ok(())` when `condition` holds, else `Err(error)`: a rule stated in one line.
pub(crate) fn ensure<E>(condition: bool, error: E) -> Result<(), E> {
    if condition {
        Ok(())
    } else {
        Err(error)
    }
}
