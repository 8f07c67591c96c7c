//! The erasure's purge in S3, in memory: given a practice whose two customers each uploaded a
//! lease and had a decision exported, when one is erased and `SubjectErased` is delivered
//! (twice: delivery is at least once), then their upload, its grant and their example are gone
//! and the other customer's are all there; and the export never writes an erased example.

#[allow(dead_code)]
mod support;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use casebook_application::erasure::ErasurePurge;
use casebook_application::in_memory::InMemoryBucket;
use casebook_application::jobs::{ChatExample, ExportFiles, FinetuneExport, TenantObjects};
use casebook_application::ports::BoxError;
use casebook_application::reactions::{Reaction, ReactionError};
use casebook_application::service::{ConsultantVerdict, Service, ServiceError};
use casebook_domain::actor::Role;
use casebook_domain::ids::{TenantId, UserId};
use casebook_domain::policy::ModelTier;
use casebook_domain::tenant::TenantEvent;
use casebook_domain::values::{DiagnosisText, UploadKey};
use chrono::{DateTime, TimeZone, Utc};
use support::{ctx, deliver_twice, tenant_events, Scenario, Tenants};

/// The customer erased (the scenario's own) and the one kept.
const ANN: &str = "customer";
const BOB: &str = "bob";

/// A practice whose customers Ann and Bob each uploaded a lease and asked about it; a
/// consultant approved the answer to Ann and amended the one to Bob.
struct Practice {
    scenario: Scenario,
    uploads: Arc<InMemoryBucket>,
    artifacts: Arc<InMemoryBucket>,
    ann_upload: UploadKey,
    bob_upload: UploadKey,
}

impl Practice {
    async fn given() -> Self {
        let scenario = Scenario::given(vec![]).await;
        let uploads = Arc::new(InMemoryBucket::new("uploads"));
        let consultant = ctx(scenario.tenant, Role::Consultant, "consultant");
        let mut keys = Vec::new();
        for (customer, file, question, verdict) in [
            (
                scenario.customer.clone(),
                "Ann Smith lease.txt",
                "May Ann Smith's landlord keep the deposit?",
                ConsultantVerdict::Approve,
            ),
            (
                ctx(scenario.tenant, Role::Customer, BOB),
                "Bob Jones lease.txt",
                "May Bob Jones's landlord raise the rent?",
                ConsultantVerdict::Amend {
                    amended_text: DiagnosisText::parse("Once a year.").unwrap(),
                    reason: None,
                },
            ),
        ] {
            let key = scenario.upload(file);
            scenario
                .service
                .grant_upload(&customer.actor, &key)
                .await
                .unwrap();
            uploads
                .put(scenario.tenant, key.as_str(), file.into(), "text/plain")
                .await
                .unwrap();
            scenario
                .llm
                .then_answer((ModelTier::Triage, 0.9, None, "haiku"));
            let diagnosis = scenario.asked_by(&customer, question, vec![]).await;
            scenario.diagnose(diagnosis).await.unwrap();
            scenario
                .service
                .decide(&consultant, diagnosis, verdict)
                .await
                .unwrap();
            keys.push(key);
        }
        let bob_upload = keys.pop().unwrap();
        let ann_upload = keys.pop().unwrap();
        Self {
            scenario,
            uploads,
            artifacts: Arc::new(InMemoryBucket::new("artifacts")),
            ann_upload,
            bob_upload,
        }
    }

    fn tenant(&self) -> TenantId {
        self.scenario.tenant
    }

    fn files(&self, artifacts: Arc<dyn TenantObjects>) -> ExportFiles {
        ExportFiles::new(
            self.scenario.service.clone(),
            self.scenario.stores.decisions.clone(),
            artifacts,
        )
    }

    fn export_job(&self, artifacts: Arc<dyn TenantObjects>) -> FinetuneExport {
        FinetuneExport::new(
            Arc::new(Tenants(vec![self.tenant()])),
            self.files(artifacts),
        )
    }

    /// The weekly export, into the practice's artifacts; the file's key.
    async fn exported(&self) -> String {
        let exports = self
            .export_job(self.artifacts.clone())
            .run(monday(), "run-1")
            .await
            .unwrap();
        exports[0].key.clone()
    }

    fn purge(&self) -> ErasurePurge {
        ErasurePurge::new(
            self.scenario.stores.records.clone(),
            self.uploads.clone(),
            self.files(self.artifacts.clone()),
        )
    }

    /// The admin erases Ann.
    async fn ann_erased(&self) {
        erase(&self.scenario.service, self.tenant()).await;
    }

    fn export_lines(&self, key: &str) -> Vec<ChatExample> {
        String::from_utf8(self.artifacts.body(key).expect("the export"))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn grants(&self) -> Vec<String> {
        self.scenario.stores.records.granted_keys(self.tenant())
    }
}

async fn erase(service: &Service, tenant: TenantId) {
    let admin = ctx(tenant, Role::Admin, "admin");
    service
        .erase_subject(&admin, UserId::parse(ANN).unwrap())
        .await
        .expect("erased");
}

fn monday() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 2, 0, 0).unwrap()
}

fn bobs_example() -> ChatExample {
    ChatExample::new(
        "May Bob Jones's landlord raise the rent?".to_owned(),
        "Once a year.".to_owned(),
    )
}

#[tokio::test]
async fn an_erased_customers_upload_grant_and_examples_are_purged_and_the_others_kept() {
    let practice = Practice::given().await;
    let key = practice.exported().await;
    assert_eq!(practice.export_lines(&key).len(), 2);
    practice.ann_erased().await;

    deliver_twice(&practice.purge(), &tenant_events(&practice.scenario)).await;

    assert_eq!(practice.uploads.keys(), [practice.bob_upload.as_str()]);
    assert_eq!(practice.grants(), [practice.bob_upload.as_str()]);
    assert_eq!(practice.export_lines(&key), [bobs_example()]);
    // The record keeps the count the file was written with (the log is never rewritten).
    let recorded = practice
        .scenario
        .stores
        .tenants
        .events(&practice.tenant().to_string())
        .into_iter()
        .find_map(|event| match event {
            TenantEvent::FinetuneExported { export } => Some(export.examples),
            _ => None,
        });
    assert_eq!(recorded, Some(2));
}

#[tokio::test]
async fn a_purge_that_fails_on_a_bucket_is_retried_until_it_is_done() {
    let practice = Practice::given().await;
    let key = practice.exported().await;
    practice.ann_erased().await;
    let purge = practice.purge();
    let erased = tenant_events(&practice.scenario)
        .into_iter()
        .find(|event| event.event_type == "SubjectErased")
        .unwrap();

    practice.uploads.set_down(true);
    let err = purge.react(&erased).await.unwrap_err();
    assert!(
        matches!(err, ReactionError::Outside(..)) && err.is_retryable(),
        "{err:?}"
    );
    // The grant outlives its object's failed delete, so the retry still finds it.
    assert!(practice.grants().contains(&practice.ann_upload.to_string()));
    practice.uploads.set_down(false);
    practice.artifacts.set_down(true);
    let err = purge.react(&erased).await.unwrap_err();
    assert!(
        matches!(err, ReactionError::Exports(_)) && err.is_retryable(),
        "{err:?}"
    );
    practice.artifacts.set_down(false);
    purge.react(&erased).await.expect("the retry");

    assert_eq!(practice.uploads.keys(), [practice.bob_upload.as_str()]);
    assert_eq!(practice.grants(), [practice.bob_upload.as_str()]);
    assert_eq!(practice.export_lines(&key), [bobs_example()]);
}

#[tokio::test]
async fn the_export_never_writes_an_erased_customers_example() {
    let practice = Practice::given().await;
    practice.ann_erased().await;

    let exports = practice
        .export_job(practice.artifacts.clone())
        .run(monday(), "run-1")
        .await
        .unwrap();

    assert_eq!(exports[0].examples, 1);
    assert_eq!(practice.export_lines(&exports[0].key), [bobs_example()]);
}

/// Artifacts where an admin erases Ann just before the first file lands: the export read her
/// texts in the clear, and her purge may run before the file is recorded.
struct ErasedDuringTheWrite {
    inner: Arc<InMemoryBucket>,
    erasure: Mutex<Option<(Service, TenantId)>>,
}

#[async_trait]
impl TenantObjects for ErasedDuringTheWrite {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }

    fn key(&self, tenant: TenantId, relative: &str) -> Result<String, BoxError> {
        self.inner.key(tenant, relative)
    }

    async fn put(
        &self,
        tenant: TenantId,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), BoxError> {
        let erasure = self.erasure.lock().unwrap().take();
        if let Some((service, tenant)) = erasure {
            erase(&service, tenant).await;
        }
        self.inner.put(tenant, key, body, content_type).await
    }

    async fn delete(&self, tenant: TenantId, key: &str) -> Result<(), BoxError> {
        self.inner.delete(tenant, key).await
    }
}

#[tokio::test]
async fn an_export_that_an_erasure_overtakes_rewrites_its_file_without_them() {
    let practice = Practice::given().await;
    let artifacts = Arc::new(ErasedDuringTheWrite {
        inner: practice.artifacts.clone(),
        erasure: Mutex::new(Some((practice.scenario.service.clone(), practice.tenant()))),
    });

    let exports = practice
        .export_job(artifacts)
        .run(monday(), "run-1")
        .await
        .unwrap();

    assert_eq!(practice.export_lines(&exports[0].key), [bobs_example()]);
}

#[tokio::test]
async fn an_erased_customer_is_granted_no_upload_any_more() {
    let practice = Practice::given().await;
    practice.ann_erased().await;
    let ann = &practice.scenario.customer;

    let refused = practice
        .scenario
        .service
        .grant_upload(&ann.actor, &practice.scenario.upload("Ann Smith again.txt"))
        .await;

    assert!(
        matches!(
            &refused,
            Err(ServiceError::Refused {
                code: "subject_erased",
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(!practice.grants().iter().any(|key| key.contains("again")));
}

#[tokio::test]
async fn an_erased_tenant_loses_every_upload_and_every_export_and_takes_no_command() {
    let practice = Practice::given().await;
    let key = practice.exported().await;
    let operator = ctx(practice.tenant(), Role::Operator, "operator:ops");

    practice
        .scenario
        .service
        .erase_tenant(&operator)
        .await
        .expect("erased");
    deliver_twice(&practice.purge(), &tenant_events(&practice.scenario)).await;

    assert!(practice.uploads.keys().is_empty());
    assert!(practice.grants().is_empty());
    assert!(
        practice.artifacts.body(&key).is_none(),
        "the export is deleted"
    );
    let again = practice.scenario.service.erase_tenant(&operator).await;
    assert!(
        matches!(
            &again,
            Err(ServiceError::Refused {
                code: "tenant_erased",
                ..
            })
        ),
        "{again:?}"
    );
    let bob = ctx(practice.tenant(), Role::Customer, BOB);
    let refused = practice
        .scenario
        .service
        .grant_upload(&bob.actor, &practice.scenario.upload("Bob Jones again.txt"))
        .await;
    assert!(
        matches!(refused, Err(ServiceError::Refused { .. })),
        "{refused:?}"
    );
}
