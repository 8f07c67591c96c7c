//! The practice's trainer: the reference consumer of the `local-jobs` queue, run as
//! `casebook trainer` on the practice's own machine (outside AWS, where its GPU is).
//!
//! For each job — a [`FinetuneJobMessage`](crate::relay::FinetuneJobMessage), whose contract is
//! `docs/schemas/local-jobs/v1.schema.json` — it downloads the export, runs the practice's
//! training command on it, uploads the GGUF model the command wrote to
//! `s3://<artifacts>/<tenant>/models/finetune-<sequence>/model.gguf` with its metadata (the
//! key the model registry's S3 notification picks up; see [`FinetuneJob::artifact_key`]),
//! then deletes the message. `docs/architecture/trainer.md` describes the command's contract
//! and the artifact's layout.
//!
//! Delivery is at least once, and the trainer leans on SQS for every retry:
//! - a message that is no job of this version is logged and left on the queue (made visible
//!   again after the retry delay): after `maxReceiveCount` receives SQS moves it to the
//!   dead-letter queue, where it can be read and redriven. It is never deleted unread.
//! - a failed attempt (the download, the command, the upload) leaves the message the same
//!   way, so the job is tried again, and dead-lettered after `maxReceiveCount` receives.
//! - while a job runs, a heartbeat extends the message's visibility, so no other trainer
//!   takes it however long it trains (up to SQS's 12 hours from the first receive).
//! - a job whose model is already uploaded (the delete of an earlier delivery was lost), or
//!   whose export an erasure has emptied or deleted since, is deleted without training.
//! - on shutdown the command's process group is killed and the message made visible at
//!   once, for the next trainer.
//!
//! One job at a time: a training run takes the machine.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitStatus;
use std::time::Duration;

use casebook_adapters::aws::aws_sdk_s3::operation::get_object::GetObjectError;
use casebook_adapters::aws::aws_sdk_s3::operation::head_object::HeadObjectError;
use casebook_adapters::aws::aws_sdk_s3::primitives::ByteStream;
use casebook_adapters::aws::s3;
use casebook_adapters::aws::sqs::{Queue, Received};
use casebook_adapters::aws::{BoxError, SdkConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tracing::Instrument;

use command::JobPaths;
pub use job::{FinetuneJob, MalformedJob};

mod command;
mod gguf;
mod job;

/// The object a job's model is uploaded as, in its job's folder.
pub const MODEL_FILE: &str = "model.gguf";
/// The optional metrics the command writes, uploaded beside the model (before it).
pub const METRICS_FILE: &str = "metrics.json";
/// The longest SQS keeps a message invisible, counted from its first receive.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);
/// The longest SQS lets a receive wait for a message.
const LONG_POLL: Duration = Duration::from_secs(20);

/// The trainer's settings (`casebook trainer`'s flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainerConfig {
    /// The `local-jobs` queue's URL.
    pub queue_url: String,
    /// The artifacts bucket: a job's export must be in it, and its model goes there.
    pub bucket: String,
    /// The training command and its arguments, run without a shell; what it is given and
    /// must leave is in `docs/architecture/trainer.md`.
    pub command: Vec<String>,
    /// Where each job's files are kept while it runs (created if missing).
    pub work_dir: PathBuf,
    /// The base model (a GGUF file) the command fine-tunes.
    pub base_model: PathBuf,
    /// The base model's name in the artifact's metadata; the file's name without `.gguf`
    /// when `None`.
    pub base_model_name: Option<String>,
    /// How often a running job's message has its visibility extended.
    pub heartbeat: Duration,
    /// How far each heartbeat extends it: how soon another trainer takes the job over after
    /// this one dies.
    pub visibility: Duration,
    /// How long a failed or malformed message stays invisible before its next receive.
    pub retry_delay: Duration,
}

impl TrainerConfig {
    /// The default [`Self::heartbeat`].
    pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(60);
    /// The default [`Self::visibility`].
    pub const DEFAULT_VISIBILITY: Duration = Duration::from_secs(300);
    /// The default [`Self::retry_delay`].
    pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(300);
}

/// Why the trainer cannot start, or why an attempt at a job failed (the job is retried).
#[derive(Debug, thiserror::Error)]
pub enum TrainerError {
    /// A setting is unusable.
    #[error("trainer setting {name}: {reason}")]
    Config {
        /// The setting.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A file of the job could not be read or written.
    #[error("cannot {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Downloading the export, or looking for or uploading the model, failed.
    #[error("S3 {operation} of {key} failed")]
    S3 {
        /// The API operation.
        operation: &'static str,
        /// The object.
        key: String,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
    /// The training command did not succeed.
    #[error("the training command exited with {status}; the end of {log}:\n{tail}")]
    CommandFailed {
        /// How it ended.
        status: ExitStatus,
        /// Its output, kept in the job's folder.
        log: PathBuf,
        /// The output's last lines.
        tail: String,
    },
    /// The command succeeded without leaving a GGUF model where it was told to.
    #[error("the training command left no GGUF model at {path}: {reason}")]
    NoModel {
        /// Where the model should be.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// The command's metrics file is not a JSON object of numbers.
    #[error("{path} is not a JSON object of numbers")]
    Metrics {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}

impl TrainerError {
    fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Self + 'a {
        move |source| Self::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }

    fn s3(
        operation: &'static str,
        key: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::S3 {
            operation,
            key: key.to_owned(),
            source: Box::new(source),
        }
    }
}

/// What a trainer's run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrainerReport {
    /// Jobs trained and uploaded.
    pub trained: u32,
    /// Jobs deleted without training: their model was uploaded already, or their export is
    /// gone or holds no example any more (an erasure since).
    pub skipped: u32,
    /// Failed attempts (each job is retried until SQS dead-letters it).
    pub failed: u32,
    /// Receives of messages that are no job (left for the dead-letter queue).
    pub malformed: u32,
    /// Jobs handed back by a shutdown.
    pub interrupted: u32,
}

/// How one attempt at a job ended.
enum Attempt {
    Trained { bytes: u64, examples: usize },
    AlreadyUploaded,
    NothingToTrain,
    Failed(TrainerError),
    Interrupted,
}

/// The consumer; see the module documentation.
#[derive(Debug, Clone)]
pub struct Trainer {
    config: TrainerConfig,
    base_model_name: String,
    queue: Queue,
    s3: casebook_adapters::aws::aws_sdk_s3::Client,
}

impl Trainer {
    /// A trainer per `config` with clients from `shared`. Checks the settings first: a
    /// command, a heartbeat shorter than the visibility it extends (both within SQS's 12
    /// hours), a base model that is a GGUF file, a work folder it can create; the paths are
    /// made absolute, since the command runs in the job's folder.
    pub fn new(shared: &SdkConfig, mut config: TrainerConfig) -> Result<Self, TrainerError> {
        let invalid = |name, reason: &str| TrainerError::Config {
            name,
            reason: reason.to_owned(),
        };
        if config.command.first().is_none_or(String::is_empty) {
            return Err(invalid("command", "a program to run is required"));
        }
        if config.heartbeat.is_zero() || config.heartbeat >= config.visibility {
            return Err(invalid(
                "heartbeat",
                "must be more than zero and shorter than the visibility it extends",
            ));
        }
        if config.visibility > MAX_VISIBILITY || config.retry_delay > MAX_VISIBILITY {
            return Err(invalid(
                "visibility",
                "the visibility and the retry delay are at most 12 hours (SQS)",
            ));
        }
        std::fs::create_dir_all(&config.work_dir)
            .map_err(TrainerError::io("create", &config.work_dir))?;
        config.work_dir = std::fs::canonicalize(&config.work_dir)
            .map_err(TrainerError::io("resolve", &config.work_dir))?;
        config.base_model = std::fs::canonicalize(&config.base_model)
            .map_err(TrainerError::io("resolve", &config.base_model))?;
        if config.work_dir.to_str().is_none() || config.base_model.to_str().is_none() {
            return Err(invalid(
                "work_dir",
                "the paths given to the command must be UTF-8",
            ));
        }
        let mut magic = [0; 8];
        std::io::Read::read_exact(
            &mut std::fs::File::open(&config.base_model)
                .map_err(TrainerError::io("open", &config.base_model))?,
            &mut magic,
        )
        .map_err(TrainerError::io("read", &config.base_model))?;
        if !gguf::is_gguf(&magic) {
            return Err(invalid("base_model", "not a GGUF file"));
        }
        let base_model_name = match &config.base_model_name {
            Some(name) => name.clone(),
            None => config
                .base_model
                .file_stem()
                .and_then(|stem| stem.to_str())
                .unwrap_or_default()
                .to_owned(),
        };
        // It travels as an S3 metadata header.
        if base_model_name.is_empty()
            || base_model_name.len() > 256
            || !base_model_name
                .bytes()
                .all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(invalid(
                "base_model_name",
                "1 to 256 printable ASCII characters",
            ));
        }
        Ok(Self {
            queue: Queue::new(shared, &config.queue_url),
            s3: s3::client(shared),
            base_model_name,
            config,
        })
    }

    /// Takes jobs one at a time until `shutdown` resolves, or, with a `budget`, until it is
    /// spent (a job in flight then is finished; one in flight at the shutdown is handed back).
    /// A failed receive is retried with a backoff.
    pub async fn run_until(
        &self,
        budget: Option<Duration>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> TrainerReport {
        let deadline = budget.map(|budget| Instant::now() + budget);
        let mut report = TrainerReport::default();
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_millis(200);
        loop {
            // The long poll ends with the budget, so no receive is cut off with a message
            // in it (which would stay invisible for the queue's whole timeout).
            let wait = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.as_secs() == 0 {
                        return report;
                    }
                    left.min(LONG_POLL)
                }
                None => LONG_POLL,
            };
            let wait = i32::try_from(wait.as_secs()).unwrap_or(20);
            let received = tokio::select! {
                () = &mut shutdown => return report,
                received = self.queue.receive(1, wait) => received,
            };
            let messages = match received {
                Ok(messages) => {
                    backoff = Duration::from_millis(200);
                    messages
                }
                Err(err) => {
                    tracing::warn!(error = ?err, queue = %self.queue.url(), "receive failed; retrying");
                    tokio::select! {
                        () = &mut shutdown => return report,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            for message in messages {
                if self
                    .handle(&message, shutdown.as_mut(), &mut report)
                    .await
                    .is_break()
                {
                    return report;
                }
            }
        }
    }

    /// Handles one received message; `Break` when the shutdown interrupted it (the shutdown
    /// future is spent then).
    async fn handle<S: Future<Output = ()>>(
        &self,
        message: &Received,
        shutdown: Pin<&mut S>,
        report: &mut TrainerReport,
    ) -> std::ops::ControlFlow<()> {
        let attribute = |name: &str| message.attributes.get(name).map_or("", String::as_str);
        let span = tracing::info_span!(
            "job",
            message_id = %message.message_id,
            receive_count = message.receive_count,
            event_id = attribute("event_id"),
            tenant_id = attribute("tenant_id"),
            request_id = attribute("request_id"),
            correlation_id = attribute("correlation_id"),
        );
        async move {
            let job = match FinetuneJob::parse(
                &message.body,
                &message.attributes,
                &self.config.bucket,
            ) {
                Ok(job) => job,
                Err(err) => {
                    report.malformed += 1;
                    tracing::error!(error = %err, "not a job this trainer can take: left on the queue for its dead-letter queue");
                    self.retry_later(message).await;
                    return std::ops::ControlFlow::Continue(());
                }
            };
            match self.attempt(message, &job, shutdown).await {
                Attempt::Trained { bytes, examples } => {
                    report.trained += 1;
                    tracing::info!(key = %job.artifact_key(), bytes, examples, "model uploaded");
                    self.delete(message).await;
                }
                Attempt::AlreadyUploaded => {
                    report.skipped += 1;
                    tracing::info!(key = %job.artifact_key(), "model uploaded by an earlier delivery; not trained again");
                    self.delete(message).await;
                }
                Attempt::NothingToTrain => {
                    report.skipped += 1;
                    tracing::warn!(key = %job.message().key, "the export is gone or holds no example any more (its customers or tenant erased since): nothing to train");
                    self.delete(message).await;
                }
                Attempt::Failed(err) => {
                    report.failed += 1;
                    tracing::warn!(error = ?err, "attempt failed; the job is retried, and dead-lettered after the queue's receive limit");
                    self.retry_later(message).await;
                }
                Attempt::Interrupted => {
                    report.interrupted += 1;
                    tracing::info!("shutting down: the job is handed back to the queue");
                    self.change_visibility(message, Duration::ZERO).await;
                    return std::ops::ControlFlow::Break(());
                }
            }
            std::ops::ControlFlow::Continue(())
        }
        .instrument(span)
        .await
    }

    /// Runs the job while a heartbeat extends its message's visibility; stops it on
    /// `shutdown` (dropping the work kills the command).
    async fn attempt<S: Future<Output = ()>>(
        &self,
        message: &Received,
        job: &FinetuneJob,
        mut shutdown: Pin<&mut S>,
    ) -> Attempt {
        let work = self.work(job);
        tokio::pin!(work);
        // The first tick is at once: the message's visibility is the heartbeat's from the
        // start, whatever the queue's default.
        let mut heartbeat = tokio::time::interval(self.config.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                done = &mut work => return done.unwrap_or_else(Attempt::Failed),
                _ = heartbeat.tick() => self.change_visibility(message, self.config.visibility).await,
                () = &mut shutdown => return Attempt::Interrupted,
            }
        }
    }

    /// Downloads the export, trains, uploads the metrics and then the model.
    async fn work(&self, job: &FinetuneJob) -> Result<Attempt, TrainerError> {
        if self.uploaded(job).await? {
            return Ok(Attempt::AlreadyUploaded);
        }
        let dir = self
            .config
            .work_dir
            .join(job.tenant().to_string())
            .join(job.id());
        // What an earlier attempt left (kept for its log until now).
        if tokio::fs::try_exists(&dir)
            .await
            .map_err(TrainerError::io("look for", &dir))?
        {
            tokio::fs::remove_dir_all(&dir)
                .await
                .map_err(TrainerError::io("clear", &dir))?;
        }
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(TrainerError::io("create", &dir))?;
        let paths = JobPaths::in_dir(&dir);
        let examples = match self.download(job, &paths.export).await? {
            true => count_examples(&paths.export).await?,
            false => 0,
        };
        if examples == 0 {
            remove_job_dir(&dir).await;
            return Ok(Attempt::NothingToTrain);
        }
        command::run(
            &self.config.command,
            &self.config.base_model,
            job,
            &paths,
            examples,
        )
        .await?;
        let bytes = self.upload(job, &paths, examples).await?;
        remove_job_dir(&dir).await;
        Ok(Attempt::Trained { bytes, examples })
    }

    /// Downloads the export to `path`; `false` when it is gone (a whole tenant's erasure
    /// deletes its exports).
    async fn download(&self, job: &FinetuneJob, path: &Path) -> Result<bool, TrainerError> {
        let key = &job.message().key;
        let object = match self
            .s3
            .get_object()
            .bucket(&self.config.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => object,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(GetObjectError::is_no_such_key) =>
            {
                return Ok(false)
            }
            Err(err) => return Err(TrainerError::s3("GetObject", key, err)),
        };
        let mut file = tokio::fs::File::create(path)
            .await
            .map_err(TrainerError::io("create", path))?;
        tokio::io::copy(&mut object.body.into_async_read(), &mut file)
            .await
            .map_err(TrainerError::io("download the export to", path))?;
        file.flush()
            .await
            .map_err(TrainerError::io("write", path))?;
        Ok(true)
    }

    /// Whether the job's model is in the bucket already, uploaded for this job's event.
    async fn uploaded(&self, job: &FinetuneJob) -> Result<bool, TrainerError> {
        let key = job.artifact_key();
        match self
            .s3
            .head_object()
            .bucket(&self.config.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(head) => Ok(head
                .metadata()
                .and_then(|metadata| metadata.get("event-id"))
                .is_some_and(|event| *event == job.message().event_id)),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(HeadObjectError::is_not_found) =>
            {
                Ok(false)
            }
            Err(err) => Err(TrainerError::s3("HeadObject", &key, err)),
        }
    }

    /// Uploads the metrics (if the command wrote any) and then the model, whose creation is
    /// what the registry reacts to; returns the model's size.
    async fn upload(
        &self,
        job: &FinetuneJob,
        paths: &JobPaths,
        examples: usize,
    ) -> Result<u64, TrainerError> {
        let (bytes, sha256) = gguf::checked_model(&paths.model).await?;
        let metrics = match tokio::fs::read(&paths.metrics).await {
            Ok(metrics) => {
                serde_json::from_slice::<BTreeMap<String, f64>>(&metrics).map_err(|source| {
                    TrainerError::Metrics {
                        path: paths.metrics.clone(),
                        source,
                    }
                })?;
                self.put(
                    &job.metrics_key(),
                    ByteStream::from(metrics),
                    "application/json",
                    HashMap::new(),
                )
                .await?;
                true
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
            Err(err) => return Err(TrainerError::io("read", &paths.metrics)(err)),
        };
        let mut metadata = HashMap::from([
            ("format".to_owned(), "gguf".to_owned()),
            ("base-model".to_owned(), self.base_model_name.clone()),
            ("event-id".to_owned(), job.message().event_id.clone()),
            ("tenant-id".to_owned(), job.tenant().to_string()),
            ("examples".to_owned(), examples.to_string()),
            ("sha256".to_owned(), sha256),
        ]);
        if metrics {
            metadata.insert("metrics".to_owned(), METRICS_FILE.to_owned());
        }
        let body = ByteStream::from_path(&paths.model)
            .await
            .map_err(|err| TrainerError::s3("PutObject (body)", &job.artifact_key(), err))?;
        self.put(
            &job.artifact_key(),
            body,
            "application/octet-stream",
            metadata,
        )
        .await?;
        Ok(bytes)
    }

    async fn put(
        &self,
        key: &str,
        body: ByteStream,
        content_type: &str,
        metadata: HashMap<String, String>,
    ) -> Result<(), TrainerError> {
        self.s3
            .put_object()
            .bucket(&self.config.bucket)
            .key(key)
            .content_type(content_type)
            .set_metadata(Some(metadata))
            .body(body)
            .send()
            .await
            .map_err(|err| TrainerError::s3("PutObject", key, err))?;
        Ok(())
    }

    /// Leaves the message for its next receive after the retry delay (or the dead-letter
    /// queue, past the receive limit).
    async fn retry_later(&self, message: &Received) {
        self.change_visibility(message, self.config.retry_delay)
            .await;
    }

    /// Makes the message visible again after `after`: a heartbeat's extension, a retry's
    /// delay, or at once. A failure is logged: the queue's own timeout still applies.
    async fn change_visibility(&self, message: &Received, after: Duration) {
        let seconds = i32::try_from(after.as_secs()).unwrap_or(i32::MAX);
        if let Err(err) = self.queue.release(&message.receipt_handle, seconds).await {
            tracing::warn!(error = ?err, "cannot change the message's visibility");
        }
    }

    async fn delete(&self, message: &Received) {
        if let Err(err) = self.queue.delete(&message.receipt_handle).await {
            // The redelivery finds the model uploaded and deletes it then.
            tracing::warn!(error = ?err, "cannot delete the message; it will be redelivered");
        }
    }
}

/// The export's examples: its lines that are not blank.
async fn count_examples(path: &Path) -> Result<usize, TrainerError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(TrainerError::io("open", path))?;
    let mut lines = tokio::io::BufReader::new(file).lines();
    let mut examples = 0;
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(TrainerError::io("read", path))?
    {
        if !line.trim().is_empty() {
            examples += 1;
        }
    }
    Ok(examples)
}

/// Removes a finished job's folder; a failure only costs disk space, so it is logged.
async fn remove_job_dir(dir: &Path) {
    if let Err(err) = tokio::fs::remove_dir_all(dir).await {
        tracing::warn!(error = %err, dir = %dir.display(), "cannot remove the job's folder");
    }
}
