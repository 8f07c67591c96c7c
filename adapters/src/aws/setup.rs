//! Creates Casebook's AWS resources idempotently: the custom event bus, the `diagnosis`
//! queue and the `local-jobs` queue, each with a dead-letter queue (redrive after
//! [`MAX_RECEIVE_COUNT`] receives), and the uploads, artifacts and audit-archive buckets.
//! For the local emulator and tests; AWS gets them from the template (whose names reach the
//! functions as `UPLOADS_BUCKET`, `ARTIFACTS_BUCKET` and `AUDIT_ARCHIVE_BUCKET`).

use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;

use super::AwsError;

/// Receives before a message moves to its queue's DLQ.
pub const MAX_RECEIVE_COUNT: u32 = 3;

/// The names to create, derived from a prefix (e.g. `casebook-local`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceNames {
    /// The custom bus.
    pub bus: String,
    /// The diagnosis queue (its DLQ is `<name>-dlq`).
    pub diagnosis_queue: String,
    /// The local-jobs queue (its DLQ is `<name>-dlq`).
    pub local_jobs_queue: String,
    /// Visibility timeout of the work queues, seconds.
    pub visibility_timeout: u32,
    /// Customers' uploads, under `<tenant>/` prefixes.
    pub uploads_bucket: String,
    /// Generated artifacts (fine-tune exports), under `<tenant>/` prefixes.
    pub artifacts_bucket: String,
    /// The nightly audit archive, under `<tenant>/` prefixes.
    pub audit_archive_bucket: String,
}

impl ResourceNames {
    /// `<prefix>-events`, `<prefix>-diagnosis`, `<prefix>-local-jobs`, buckets
    /// `<prefix>-uploads`, `<prefix>-artifacts`, `<prefix>-audit-archive`; visibility 720 s
    /// (6 × the worker's 120 s). Bucket names are lowercase, so the prefix should be too.
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            bus: format!("{prefix}-events"),
            diagnosis_queue: format!("{prefix}-diagnosis"),
            local_jobs_queue: format!("{prefix}-local-jobs"),
            visibility_timeout: 720,
            uploads_bucket: format!("{prefix}-uploads"),
            artifacts_bucket: format!("{prefix}-artifacts"),
            audit_archive_bucket: format!("{prefix}-audit-archive"),
        }
    }
}

/// What [`ensure_resources`] created or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    /// The bus' name (`EVENT_BUS_NAME`).
    pub bus_name: String,
    /// The bus' ARN.
    pub bus_arn: String,
    /// `DIAGNOSIS_QUEUE_URL`.
    pub diagnosis_queue_url: String,
    /// The diagnosis DLQ's URL.
    pub diagnosis_dlq_url: String,
    /// `LOCAL_JOBS_QUEUE_URL`.
    pub local_jobs_queue_url: String,
    /// The local-jobs DLQ's URL.
    pub local_jobs_dlq_url: String,
    /// `UPLOADS_BUCKET`.
    pub uploads_bucket: String,
    /// `ARTIFACTS_BUCKET`.
    pub artifacts_bucket: String,
    /// `AUDIT_ARCHIVE_BUCKET`.
    pub audit_archive_bucket: String,
}

/// Creates the bus, the queues and the buckets unless they exist.
pub async fn ensure_resources(
    shared: &SdkConfig,
    names: &ResourceNames,
) -> Result<Resources, AwsError> {
    let bus_arn = ensure_bus(shared, &names.bus).await?;
    let (diagnosis_queue_url, diagnosis_dlq_url) =
        ensure_queue_with_dlq(shared, &names.diagnosis_queue, names.visibility_timeout).await?;
    let (local_jobs_queue_url, local_jobs_dlq_url) =
        ensure_queue_with_dlq(shared, &names.local_jobs_queue, names.visibility_timeout).await?;
    for bucket in [
        &names.uploads_bucket,
        &names.artifacts_bucket,
        &names.audit_archive_bucket,
    ] {
        ensure_bucket(shared, bucket).await?;
    }
    Ok(Resources {
        bus_name: names.bus.clone(),
        bus_arn,
        diagnosis_queue_url,
        diagnosis_dlq_url,
        local_jobs_queue_url,
        local_jobs_dlq_url,
        uploads_bucket: names.uploads_bucket.clone(),
        artifacts_bucket: names.artifacts_bucket.clone(),
        audit_archive_bucket: names.audit_archive_bucket.clone(),
    })
}

/// Creates bucket `name` in the configuration's region unless it exists.
pub async fn ensure_bucket(shared: &SdkConfig, name: &str) -> Result<(), AwsError> {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};

    let client = super::s3::client(shared);
    if client.head_bucket().bucket(name).send().await.is_ok() {
        return Ok(());
    }
    let mut request = client.create_bucket().bucket(name);
    // us-east-1 is S3's default location and refuses to be named as a constraint.
    if let Some(region) = shared.region().map(|r| r.as_ref()) {
        if region != "us-east-1" {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
    }
    match request.send().await {
        Ok(_) => Ok(()),
        // Another process created it between the check and the call.
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_bucket_already_owned_by_you()) =>
        {
            Ok(())
        }
        Err(err) => Err(AwsError::call("CreateBucket", err)),
    }
}

/// Creates the custom bus `name` unless it exists; returns its ARN.
pub async fn ensure_bus(shared: &SdkConfig, name: &str) -> Result<String, AwsError> {
    let client = aws_sdk_eventbridge::Client::new(shared);
    if let Ok(found) = client.describe_event_bus().name(name).send().await {
        if let Some(arn) = found.arn() {
            return Ok(arn.to_owned());
        }
    }
    let created = client
        .create_event_bus()
        .name(name)
        .send()
        .await
        .map_err(|err| AwsError::call("CreateEventBus", err))?;
    created
        .event_bus_arn()
        .map(str::to_owned)
        .ok_or(AwsError::Missing {
            operation: "CreateEventBus",
            what: "EventBusArn",
        })
}

/// Creates queue `name` (standard) with `attributes`, or returns the existing one's URL.
pub async fn ensure_queue(
    shared: &SdkConfig,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> Result<String, AwsError> {
    let client = aws_sdk_sqs::Client::new(shared);
    let mut request = client.create_queue().queue_name(name);
    for (key, value) in attributes {
        request = request.attributes(key.clone(), value);
    }
    match request.send().await {
        Ok(created) => created
            .queue_url()
            .map(str::to_owned)
            .ok_or(AwsError::Missing {
                operation: "CreateQueue",
                what: "QueueUrl",
            }),
        // Exists with other attributes: keep it.
        Err(_) => client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|err| AwsError::call("GetQueueUrl", err))?
            .queue_url()
            .map(str::to_owned)
            .ok_or(AwsError::Missing {
                operation: "GetQueueUrl",
                what: "QueueUrl",
            }),
    }
}

/// The ARN of the queue at `url`.
pub async fn queue_arn(shared: &SdkConfig, url: &str) -> Result<String, AwsError> {
    let client = aws_sdk_sqs::Client::new(shared);
    let attrs = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|err| AwsError::call("GetQueueAttributes", err))?;
    attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or(AwsError::Missing {
            operation: "GetQueueAttributes",
            what: "QueueArn",
        })
}

/// Creates `<name>-dlq` and `name` redriving to it after [`MAX_RECEIVE_COUNT`] receives;
/// returns both URLs (queue, DLQ).
pub async fn ensure_queue_with_dlq(
    shared: &SdkConfig,
    name: &str,
    visibility_timeout: u32,
) -> Result<(String, String), AwsError> {
    let dlq_url = ensure_queue(
        shared,
        &format!("{name}-dlq"),
        &[(
            QueueAttributeName::MessageRetentionPeriod,
            "1209600".to_owned(),
        )],
    )
    .await?;
    let dlq_arn = queue_arn(shared, &dlq_url).await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": MAX_RECEIVE_COUNT.to_string(),
    })
    .to_string();
    let url = ensure_queue(
        shared,
        name,
        &[
            (QueueAttributeName::RedrivePolicy, redrive),
            (
                QueueAttributeName::VisibilityTimeout,
                visibility_timeout.to_string(),
            ),
        ],
    )
    .await?;
    Ok((url, dlq_url))
}
