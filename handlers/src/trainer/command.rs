//! The practice's training command: run in its job's folder with the job's files named in
//! its environment and arguments (the contract in `docs/architecture/trainer.md`), its whole
//! process group killed if the trainer drops it before it exits.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::{FinetuneJob, TrainerError, METRICS_FILE, MODEL_FILE};

/// The downloaded export, in the job's folder.
const EXPORT_FILE: &str = "export.jsonl";
/// The command's standard output and error, in the job's folder.
const LOG_FILE: &str = "train.log";

/// The files of one job, in its own folder.
pub(super) struct JobPaths {
    pub(super) dir: PathBuf,
    pub(super) export: PathBuf,
    pub(super) model: PathBuf,
    pub(super) metrics: PathBuf,
    pub(super) log: PathBuf,
}

impl JobPaths {
    pub(super) fn in_dir(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            export: dir.join(EXPORT_FILE),
            model: dir.join(MODEL_FILE),
            metrics: dir.join(METRICS_FILE),
            log: dir.join(LOG_FILE),
        }
    }
}

/// A started command: until it is known to have exited, dropping this (a shutdown, an
/// error) kills its whole process group, so nothing it started outlives the job.
struct RunningCommand {
    child: tokio::process::Child,
    group: Option<u32>,
}

impl RunningCommand {
    fn new(child: tokio::process::Child) -> Self {
        let group = child.id();
        Self { child, group }
    }

    /// The command exited on its own: its group is left alone.
    fn exited(&mut self) {
        self.group = None;
    }
}

impl Drop for RunningCommand {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(group) = self.group.and_then(|id| i32::try_from(id).ok()) {
            // The child leads its own group (`process_group(0)`); it may be gone already.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(group),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Runs `command` for `job` in its folder, its output to the job's log, with the files
/// of `paths`, the base model and the job's ids in its environment and placeholders.
pub(super) async fn run(
    command: &[String],
    base_model: &Path,
    job: &FinetuneJob,
    paths: &JobPaths,
    examples: usize,
) -> Result<(), TrainerError> {
    let log = tokio::fs::File::create(&paths.log)
        .await
        .map_err(TrainerError::io("create", &paths.log))?
        .into_std()
        .await;
    let log_too = log
        .try_clone()
        .map_err(TrainerError::io("open", &paths.log))?;
    let placeholders: [(&str, &Path); 5] = [
        ("{export}", &paths.export),
        ("{base_model}", base_model),
        ("{output}", &paths.model),
        ("{metrics}", &paths.metrics),
        ("{job_dir}", &paths.dir),
    ];
    let substitute = |argument: &str| {
        placeholders
            .iter()
            .fold(argument.to_owned(), |argument, (placeholder, path)| {
                argument.replace(placeholder, &path.to_string_lossy())
            })
    };
    let mut process = tokio::process::Command::new(substitute(&command[0]));
    process
        .args(command[1..].iter().map(|a| substitute(a)))
        .current_dir(&paths.dir)
        .env("CASEBOOK_EXPORT", &paths.export)
        .env("CASEBOOK_BASE_MODEL", base_model)
        .env("CASEBOOK_OUTPUT", &paths.model)
        .env("CASEBOOK_METRICS", &paths.metrics)
        .env("CASEBOOK_JOB_DIR", &paths.dir)
        .env("CASEBOOK_JOB_ID", job.id())
        .env("CASEBOOK_EVENT_ID", &job.message().event_id)
        .env("CASEBOOK_TENANT_ID", job.tenant().to_string())
        .env("CASEBOOK_EXAMPLES", examples.to_string())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_too)
        .kill_on_drop(true);
    #[cfg(unix)]
    process.process_group(0);
    tracing::info!(command = ?command, dir = %paths.dir.display(), examples, "training");
    let child = process.spawn().map_err(TrainerError::io(
        "start the training command in",
        &paths.dir,
    ))?;
    let mut running = RunningCommand::new(child);
    let status = running.child.wait().await.map_err(TrainerError::io(
        "wait for the training command in",
        &paths.dir,
    ))?;
    running.exited();
    if !status.success() {
        return Err(TrainerError::CommandFailed {
            status,
            tail: log_tail(&paths.log).await,
            log: paths.log.clone(),
        });
    }
    Ok(())
}

/// The last lines of the command's log, for the failure's message.
async fn log_tail(path: &Path) -> String {
    const TAIL: usize = 2_000;
    match tokio::fs::read(path).await {
        Ok(log) => {
            let start = log.len().saturating_sub(TAIL);
            String::from_utf8_lossy(&log[start..]).into_owned()
        }
        Err(err) => format!("(unreadable: {err})"),
    }
}
