//! The content-addressed model store on disk, and the task's progress.
//!
//! ```text
//! <store>/models/<id>.safetensors   every global model, named by its SHA-256
//! <store>/state.json                task name, last completed round, its model id (and the
//!                                   ids of FedAdam's moments, stored like models)
//! ```
//!
//! Both are written atomically (temporary file, fsync, rename), so a killed aggregator
//! restarts from the last completed round: the round after it runs next, none is lost or
//! repeated.

use std::path::{Path, PathBuf};

use flock_model::{ModelId, Params, file};
use serde::{Deserialize, Serialize};

/// The task's progress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskState {
    /// Task name (a store serves one task).
    pub task: String,
    /// Last completed round (0: only the initial model exists).
    pub round: u64,
    /// The global model after that round.
    pub model: ModelId,
    /// FedAdam's first and second moments after that round (stored like models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moments: Option<[ModelId; 2]>,
}

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("model store {}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// A model file is missing or does not hash to its name.
    #[error(transparent)]
    Model(#[from] flock_model::ModelError),
    /// `state.json` is unreadable or of another task.
    #[error("model store {}: {reason}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A directory of models and the task state.
#[derive(Clone, Debug)]
pub struct ModelStore {
    dir: PathBuf,
}

impl ModelStore {
    /// Opens (creating) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let models = dir.join("models");
        std::fs::create_dir_all(&models).map_err(|cause| StoreError::Io {
            path: models.clone(),
            cause,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Where the model `id` lives.
    pub fn model_path(&self, id: &ModelId) -> PathBuf {
        self.dir.join("models").join(format!("{id}.safetensors"))
    }

    /// Stores `params`, returning their id (a no-op if already stored).
    pub fn put(&self, params: &Params) -> Result<ModelId, StoreError> {
        let (_, id) = file::encode(params)?;
        let path = self.model_path(&id);
        if !path.exists() {
            file::save(&path, params)?;
        }
        Ok(id)
    }

    /// The model `id`, checked against its hash.
    pub fn get(&self, id: &ModelId) -> Result<Params, StoreError> {
        Ok(file::load_verified(&self.model_path(id), id)?)
    }

    /// The bytes of model `id`, checked against its hash.
    pub fn bytes(&self, id: &ModelId) -> Result<Vec<u8>, StoreError> {
        let path = self.model_path(id);
        let bytes = std::fs::read(&path).map_err(|cause| StoreError::Io {
            path: path.clone(),
            cause,
        })?;
        if ModelId::of(&bytes) != *id {
            return Err(StoreError::State {
                path,
                reason: "content does not hash to its name".into(),
            });
        }
        Ok(bytes)
    }

    /// The task's progress, if any round state was saved.
    pub fn state(&self, task: &str) -> Result<Option<TaskState>, StoreError> {
        let path = self.dir.join("state.json");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(cause) => return Err(StoreError::Io { path, cause }),
        };
        let state: TaskState = serde_json::from_slice(&bytes).map_err(|e| StoreError::State {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if state.task != task {
            return Err(StoreError::State {
                path,
                reason: format!("it belongs to task {:?}, not {task:?}", state.task),
            });
        }
        Ok(Some(state))
    }

    /// Records the task's progress atomically.
    pub fn save_state(&self, state: &TaskState) -> Result<(), StoreError> {
        let path = self.dir.join("state.json");
        let tmp = self
            .dir
            .join(format!(".state.json.{}.tmp", std::process::id()));
        let io = |cause| StoreError::Io {
            path: path.clone(),
            cause,
        };
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| StoreError::State {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        (|| {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&self.dir)?.sync_all()
        })()
        .map_err(io)
    }
}
