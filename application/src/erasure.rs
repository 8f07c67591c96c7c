//! What an erasure purges outside the database's read models (decision 0027).
//!
//! Erasing a customer destroys their data key and records `SubjectErased`; from then on the
//! log reads their sealed fields as redactions and the projections purge their rows. Two
//! things derived from their data live in S3, and [`ErasurePurge`] purges them on that event:
//!
//! - **uploads**: every object whose upload was issued to them is deleted from the uploads
//!   bucket, then the grants, whose keys end in the names of their files;
//! - **fine-tune exports**: every export recorded on the tenant is written again from the
//!   log, which leaves out the examples that read as erased now
//!   ([`ExportFiles::rewrite_recorded`]).
//!
//! Erasing a whole tenant (`TenantErased`) purges every upload granted in it and deletes every
//! export recorded on it ([`ExportFiles::delete_recorded`]): nothing of its customers stays,
//! not even history written before sealing, which a rewrite would copy again.
//!
//! It runs as a reaction, so delivery is at least once and a failure is retried from the
//! reaction's checkpoint until it succeeds: each step is idempotent (a deleted object deletes
//! again, a revoked grant revokes again, a rewrite writes the same file), and the grants are
//! revoked only after their objects are gone, so a retry still finds what is left to delete.

use std::sync::Arc;

use async_trait::async_trait;
use casebook_domain::any_event::AnyEvent;
use casebook_domain::ids::{TenantId, UserId};
use casebook_domain::tenant::TenantEvent;

use crate::jobs::{ExportFiles, TenantObjects};
use crate::ports::UploadGrants;
use crate::reactions::{Delivered, Reaction, ReactionError};
use crate::service::ServiceError;

/// On `SubjectErased`, deletes the subject's uploads and rewrites the tenant's fine-tune
/// exports without them.
#[derive(Clone)]
pub struct ErasurePurge {
    grants: Arc<dyn UploadGrants>,
    uploads: Arc<dyn TenantObjects>,
    exports: ExportFiles,
}

impl ErasurePurge {
    /// Uploads found through `grants` and deleted from `uploads`; exports rewritten through
    /// `exports`.
    pub fn new(
        grants: Arc<dyn UploadGrants>,
        uploads: Arc<dyn TenantObjects>,
        exports: ExportFiles,
    ) -> Self {
        Self {
            grants,
            uploads,
            exports,
        }
    }

    /// Deletes every upload issued to `subject` (to anyone without one), then forgets the
    /// grants; how many.
    async fn purge_uploads(
        &self,
        tenant: TenantId,
        subject: Option<&UserId>,
    ) -> Result<usize, ReactionError> {
        let keys = self
            .grants
            .granted_to(tenant, subject)
            .await
            .map_err(ServiceError::from)?;
        for key in &keys {
            self.uploads
                .delete(tenant, key.as_str())
                .await
                .map_err(|err| ReactionError::Outside("the uploads bucket", err))?;
        }
        self.grants
            .revoke(tenant, &keys)
            .await
            .map_err(ServiceError::from)?;
        Ok(keys.len())
    }
}

#[async_trait]
impl Reaction for ErasurePurge {
    fn name(&self) -> &'static str {
        "erasure_purge"
    }

    fn wants(&self, aggregate_type: &str, event_type: &str) -> bool {
        aggregate_type == "Tenant" && matches!(event_type, "SubjectErased" | "TenantErased")
    }

    async fn react(&self, delivered: &Delivered) -> Result<(), ReactionError> {
        let tenant: TenantId = delivered.id()?;
        // Counts only: a key would name the customer's file.
        match &delivered.event {
            AnyEvent::Tenant(TenantEvent::SubjectErased { subject, .. }) => {
                let uploads = self.purge_uploads(tenant, Some(subject)).await?;
                let exports = self.exports.rewrite_recorded(tenant).await?;
                tracing::info!(%tenant, %subject, uploads, exports, "erased subject's uploads and exports purged");
            }
            AnyEvent::Tenant(TenantEvent::TenantErased { .. }) => {
                let uploads = self.purge_uploads(tenant, None).await?;
                let exports = self.exports.delete_recorded(tenant).await?;
                tracing::info!(%tenant, uploads, exports, "erased tenant's uploads and exports purged");
            }
            _ => {}
        }
        Ok(())
    }
}
