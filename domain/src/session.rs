//! The [`TenantSession`] aggregate: a customer's conversation, holding their queries.

use std::collections::BTreeSet;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::actor::{Actor, Owned, Role};
use crate::error::{ensure, AccessError, DomainError, ErrorKind};
use crate::ids::{QueryId, SessionId, TenantId, UserId};
use crate::personal::DataSubject;
use crate::values::{QueryText, Subject, UploadKey};

/// Sessions are the customers' own.
const CUSTOMERS: &[Role] = &[Role::Customer];

/// The most files one session may carry: each one is read and given to the model with every
/// query, so the count bounds the work a single request can cause.
pub const MAX_ATTACHMENTS: usize = 20;

/// A command to the [`TenantSession`] aggregate, whose id is the [`SessionId`].
#[derive(Debug, Clone, PartialEq)]
pub enum SessionCommand {
    /// Start a session.
    Open {
        /// A customer; the session belongs to their tenant.
        actor: Actor,
        /// The new session's id, chosen by the caller.
        session_id: SessionId,
        /// What it is about.
        subject: Subject,
        /// Uploaded files: at most [`MAX_ATTACHMENTS`], no repeats, each an upload issued to
        /// the actor, in the form the API issues ([`UploadKey::is_upload_of`]).
        attachments: Vec<UploadKey>,
        /// Which of `attachments` were issued to the actor, as read by the application.
        uploads_issued_to_actor: BTreeSet<UploadKey>,
        /// Whether the tenant is active, as read by the application.
        tenant_active: bool,
    },
    /// Ask something in an open session.
    SubmitQuery {
        /// A customer of the session's tenant.
        actor: Actor,
        /// The query's id, chosen by the caller; unique within the session.
        query_id: QueryId,
        /// The question.
        text: QueryText,
        /// Whether the tenant is active, as read by the application.
        tenant_active: bool,
    },
    /// End the session; it accepts nothing afterwards.
    Close {
        /// A customer of the session's tenant.
        actor: Actor,
    },
}

impl SessionCommand {
    /// Who issues the command (for the events' metadata).
    pub fn actor(&self) -> &Actor {
        match self {
            Self::Open { actor, .. } | Self::SubmitQuery { actor, .. } | Self::Close { actor } => {
                actor
            }
        }
    }
}

/// Something that happened to a [`TenantSession`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SessionEvent {
    /// The session started.
    SessionOpened {
        /// The session.
        session_id: SessionId,
        /// Its tenant.
        tenant_id: TenantId,
        /// What it is about.
        subject: Subject,
        /// Uploaded files.
        attachments: Vec<UploadKey>,
        /// The customer who opened it.
        opened_by: UserId,
    },
    /// A query was asked.
    QuerySubmitted {
        /// The query.
        query_id: QueryId,
        /// The question.
        text: QueryText,
        /// The customer who asked.
        submitted_by: UserId,
    },
    /// The session ended.
    SessionClosed {
        /// The customer who closed it.
        closed_by: UserId,
    },
}

impl DomainEvent for SessionEvent {
    fn event_type(&self) -> String {
        match self {
            Self::SessionOpened { .. } => "SessionOpened",
            Self::QuerySubmitted { .. } => "QuerySubmitted",
            Self::SessionClosed { .. } => "SessionClosed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// Why a [`SessionCommand`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Not found, or the actor's role may not run the command.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The tenant is suspended.
    #[error("the tenant is suspended")]
    TenantSuspended,
    /// `Open` on a session that exists.
    #[error("the session is already open")]
    AlreadyOpened,
    /// An attachment that is not an upload issued to this customer (another tenant's, another
    /// customer's, or a key not in the form the API issues).
    #[error("attachment {key} is not one of your uploads")]
    ForeignAttachment {
        /// The offending key.
        key: UploadKey,
    },
    /// The same upload attached twice.
    #[error("attachment {key} is listed twice")]
    DuplicateAttachment {
        /// The repeated key.
        key: UploadKey,
    },
    /// More than [`MAX_ATTACHMENTS`].
    #[error("a session carries at most {max} attachments")]
    TooManyAttachments {
        /// The limit.
        max: usize,
    },
    /// The session is closed.
    #[error("the session is closed")]
    Closed,
    /// A query id already used in this session.
    #[error("query {query_id} was already submitted")]
    DuplicateQuery {
        /// The repeated id.
        query_id: QueryId,
    },
}

impl DomainError for SessionError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Access(e) => e.kind(),
            Self::ForeignAttachment { .. }
            | Self::DuplicateAttachment { .. }
            | Self::TooManyAttachments { .. } => ErrorKind::Invalid,
            Self::TenantSuspended
            | Self::AlreadyOpened
            | Self::Closed
            | Self::DuplicateQuery { .. } => ErrorKind::Conflict,
        }
    }
}

/// Every attachment an upload issued to `actor`, in the form the API issues, none twice, at
/// most [`MAX_ATTACHMENTS`].
fn check_attachments(
    actor: &Actor,
    attachments: &[UploadKey],
    issued_to_actor: &BTreeSet<UploadKey>,
) -> Result<(), SessionError> {
    ensure(
        attachments.len() <= MAX_ATTACHMENTS,
        SessionError::TooManyAttachments {
            max: MAX_ATTACHMENTS,
        },
    )?;
    let mut seen = BTreeSet::new();
    for key in attachments {
        ensure(
            key.is_upload_of(actor.tenant_id) && issued_to_actor.contains(key),
            SessionError::ForeignAttachment { key: key.clone() },
        )?;
        ensure(
            seen.insert(key),
            SessionError::DuplicateAttachment { key: key.clone() },
        )?;
    }
    Ok(())
}

/// A customer's session: open, accepting queries, until closed.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantSession {
    state: Option<SessionState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SessionState {
    tenant_id: TenantId,
    // Snapshots from before this field fail to deserialize, and the store then replays
    // the stream, which restores it from `SessionOpened`.
    opened_by: UserId,
    queries: BTreeSet<QueryId>,
    closed: bool,
}

impl SessionState {
    /// A session is its customer's own: to the tenant's other customers it does not exist,
    /// as their reads don't show it either.
    fn owned_by<'a>(&'a self, actor: &Actor) -> Result<&'a Self, SessionError> {
        ensure(
            self.opened_by == actor.user_id,
            SessionError::Access(AccessError::NotFound),
        )?;
        Ok(self)
    }
}

impl Owned for SessionState {
    fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
}

impl TenantSession {
    /// Whether `query_id` was submitted in this session.
    pub fn has_query(&self, query_id: QueryId) -> bool {
        self.state
            .as_ref()
            .is_some_and(|state| state.queries.contains(&query_id))
    }

    fn decide(&self, command: SessionCommand) -> Result<SessionEvent, SessionError> {
        let state = self.state.as_ref();
        let event = match command {
            SessionCommand::Open {
                actor,
                session_id,
                subject,
                attachments,
                uploads_issued_to_actor,
                tenant_active,
            } => {
                // Another customer's session does not exist for this one, even by its id.
                actor.require(CUSTOMERS)?;
                if let Some(existing) = state.filter(|s| s.tenant_id == actor.tenant_id) {
                    existing.owned_by(&actor)?;
                }
                actor.authorize_creation(CUSTOMERS, state, SessionError::AlreadyOpened)?;
                ensure(tenant_active, SessionError::TenantSuspended)?;
                check_attachments(&actor, &attachments, &uploads_issued_to_actor)?;
                SessionEvent::SessionOpened {
                    session_id,
                    tenant_id: actor.tenant_id,
                    subject,
                    attachments,
                    opened_by: actor.user_id,
                }
            }
            SessionCommand::SubmitQuery {
                actor,
                query_id,
                text,
                tenant_active,
            } => {
                let state = actor.authorize(CUSTOMERS, state)?.owned_by(&actor)?;
                ensure(!state.closed, SessionError::Closed)?;
                ensure(tenant_active, SessionError::TenantSuspended)?;
                ensure(
                    !state.queries.contains(&query_id),
                    SessionError::DuplicateQuery { query_id },
                )?;
                SessionEvent::QuerySubmitted {
                    query_id,
                    text,
                    submitted_by: actor.user_id,
                }
            }
            SessionCommand::Close { actor } => {
                ensure(
                    !actor.authorize(CUSTOMERS, state)?.owned_by(&actor)?.closed,
                    SessionError::Closed,
                )?;
                SessionEvent::SessionClosed {
                    closed_by: actor.user_id,
                }
            }
        };
        Ok(event)
    }
}

impl DataSubject for TenantSession {
    fn data_subject(&self) -> Option<UserId> {
        self.state.as_ref().map(|s| s.opened_by.clone())
    }
}

impl Aggregate for TenantSession {
    const TYPE: &'static str = "TenantSession";
    type Command = SessionCommand;
    type Event = SessionEvent;
    type Error = SessionError;
    type Services = ();

    async fn handle(
        &mut self,
        command: SessionCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), SessionError> {
        let event = self.decide(command)?;
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: SessionEvent) {
        match (event, self.state.as_mut()) {
            (
                SessionEvent::SessionOpened {
                    tenant_id,
                    opened_by,
                    ..
                },
                _,
            ) => {
                self.state = Some(SessionState {
                    tenant_id,
                    opened_by,
                    queries: BTreeSet::new(),
                    closed: false,
                });
            }
            (SessionEvent::QuerySubmitted { query_id, .. }, Some(state)) => {
                state.queries.insert(query_id);
            }
            (SessionEvent::SessionClosed { .. }, Some(state)) => state.closed = true,
            // `decide` emits nothing else before opening, so a sound stream never gets here.
            (_, None) => {}
        }
    }
}
