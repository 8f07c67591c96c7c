//! Loading model files once per process, on first use.
//!
//! Providers are cheap to construct (configuration only); the weights are read the first
//! time a provider is asked for something, and every provider of the same type over the same
//! file shares them. A failed load is not remembered, so running `infra/local/models.sh`
//! while the process runs makes the next call succeed.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// The command that fetches the local models.
pub const FETCH_COMMAND: &str = "infra/local/models.sh";

/// Why a local model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelLoadError {
    /// A file the model needs is absent.
    #[error("model file {} is missing: run `{FETCH_COMMAND}` (or point CASEBOOK_MODELS_DIR at the models)", path.display())]
    Missing {
        /// The file that was looked for.
        path: PathBuf,
    },
    /// The file is there but could not be read as the model.
    #[error("cannot load model file {}", path.display())]
    Invalid {
        /// The offending file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ModelLoadError {
    /// Wraps `source` as a failure to load `path`.
    pub(crate) fn invalid(
        path: &Path,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Invalid {
            path: path.to_owned(),
            source: source.into(),
        }
    }
}

/// Checks that `path` is a file, naming the fetch command if it is not.
pub(crate) fn require_file(path: &Path) -> Result<(), ModelLoadError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(ModelLoadError::Missing {
            path: path.to_owned(),
        })
    }
}

type Loaded = Arc<dyn Any + Send + Sync>;

/// Every model loaded by this process, by type and file.
fn registry() -> &'static Mutex<HashMap<(TypeId, PathBuf), Loaded>> {
    static REGISTRY: OnceLock<Mutex<HashMap<(TypeId, PathBuf), Loaded>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The process-wide `T` loaded from `key`, loading it with `load` if this is the first use.
///
/// Blocking (it reads the files): call from a blocking context. The registry stays locked
/// while a model loads, so two first calls never load the same model twice.
pub(crate) fn shared<T, F>(key: &Path, load: F) -> Result<Arc<T>, ModelLoadError>
where
    T: Send + Sync + 'static,
    F: FnOnce() -> Result<T, ModelLoadError>,
{
    let mut models = registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let slot = (TypeId::of::<T>(), key.to_owned());
    if let Some(loaded) = models.get(&slot) {
        if let Ok(model) = Arc::clone(loaded).downcast::<T>() {
            return Ok(model);
        }
    }
    let model = Arc::new(load()?);
    models.insert(slot, Arc::clone(&model) as Loaded);
    Ok(model)
}
