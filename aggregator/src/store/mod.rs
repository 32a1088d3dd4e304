//! The content-addressed model store and the task's progress, in a directory or in an object
//! store (S3 or any S3-compatible service, through the `object_store` crate).
//!
//! ```text
//! <store>/models/<id>.safetensors   every global model, named by its SHA-256
//! <store>/state.json                task name, last completed round, its model id (and the
//!                                   ids of FedAdam's moments, stored like models)
//! ```
//!
//! Both are written atomically (in a directory: flock-durable's temporary file, fsync, rename,
//! fsync of the directory; in an object store: one PUT, which replaces an object whole), so a killed aggregator restarts from the last
//! completed round: the round after it runs next, none is lost or repeated. Models are written
//! before the state that names them.
//!
//! The store's API is synchronous; the object backend (`object`) drives `object_store`'s
//! futures on a small runtime of its own, on a scoped thread, so it can be called from inside
//! the aggregator's async runtime.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use flock_model::{ModelId, Params, file};
use serde::{Deserialize, Serialize};

mod object;
use object::ObjectBackend;

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

/// Where a store lives: `[server] store`, a directory path or an object-store URL.
#[derive(Clone, Debug, PartialEq)]
pub enum StoreLocation {
    /// A local directory.
    Dir(PathBuf),
    /// `s3://bucket/prefix` (credentials, region and endpoint from the standard `AWS_*`
    /// environment variables, e.g. `AWS_ENDPOINT` and `AWS_ALLOW_HTTP=true` for a local
    /// S3-compatible server), `file:///absolute/path` or `memory://` (tests).
    Url(url::Url),
}

impl StoreLocation {
    /// A URL if `text` has a scheme (`scheme://…`), else a path relative to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, String> {
        if text.contains("://") {
            url::Url::parse(text)
                .map(Self::Url)
                .map_err(|e| format!("{text:?} is not a URL: {e}"))
        } else {
            Ok(Self::Dir(base.join(text)))
        }
    }
}

impl<'de> Deserialize<'de> for StoreLocation {
    /// A path stays relative here; [`crate::config::Config::load`] resolves it against the
    /// config file's directory.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text, Path::new("")).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dir(p) => write!(f, "{}", p.display()),
            Self::Url(u) => write!(f, "{u}"),
        }
    }
}

/// Store errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file operation failed.
    #[error("model store {}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// An object-store operation failed.
    #[error("model store {location}: {reason}")]
    Object {
        /// The object (or the store).
        location: String,
        /// What went wrong.
        reason: String,
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

/// The models and the task state, in a directory or an object store.
#[derive(Clone, Debug)]
pub struct ModelStore {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Dir(PathBuf),
    Object(Arc<ObjectBackend>),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dir(p) => write!(f, "Dir({})", p.display()),
            Self::Object(o) => write!(f, "Object({})", o.url),
        }
    }
}

const STATE: &str = "state.json";

fn model_name(id: &ModelId) -> String {
    format!("models/{id}.safetensors")
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
            backend: Backend::Dir(dir.to_path_buf()),
        })
    }

    /// Opens the store at `location` (a directory is created if needed).
    pub fn open_at(location: &StoreLocation) -> Result<Self, StoreError> {
        match location {
            StoreLocation::Dir(dir) => Self::open(dir),
            StoreLocation::Url(url) => Ok(Self {
                backend: Backend::Object(Arc::new(ObjectBackend::open(url)?)),
            }),
        }
    }

    /// Stores `params`, returning their id (a no-op if already stored).
    pub fn put(&self, params: &Params) -> Result<ModelId, StoreError> {
        let (bytes, id) = file::encode(params)?;
        self.put_bytes(&id, &bytes)?;
        Ok(id)
    }

    /// Stores a model file's `bytes` under `id` (a no-op if already stored); refuses bytes
    /// that do not hash to `id`.
    pub fn put_bytes(&self, id: &ModelId, bytes: &[u8]) -> Result<(), StoreError> {
        let name = model_name(id);
        if ModelId::of(bytes) != *id {
            return Err(StoreError::State {
                path: name.into(),
                reason: "content does not hash to its name".into(),
            });
        }
        match &self.backend {
            Backend::Dir(dir) => {
                let path = dir.join(name);
                if !path.exists() {
                    file::save_bytes(&path, bytes)?;
                }
                Ok(())
            }
            Backend::Object(o) => o.put(&name, bytes.to_vec()),
        }
    }

    /// The model `id`, checked against its hash.
    pub fn get(&self, id: &ModelId) -> Result<Params, StoreError> {
        match &self.backend {
            Backend::Dir(dir) => Ok(file::load_verified(&dir.join(model_name(id)), id)?),
            Backend::Object(o) => {
                let origin = PathBuf::from(o.path(&model_name(id)).to_string());
                Ok(file::decode(&self.bytes(id)?, &origin)?)
            }
        }
    }

    /// The bytes of model `id`, checked against its hash.
    pub fn bytes(&self, id: &ModelId) -> Result<Vec<u8>, StoreError> {
        let (bytes, location) = match &self.backend {
            Backend::Dir(dir) => {
                let path = dir.join(model_name(id));
                let bytes = std::fs::read(&path).map_err(|cause| StoreError::Io {
                    path: path.clone(),
                    cause,
                })?;
                (bytes, path.display().to_string())
            }
            Backend::Object(o) => {
                let name = model_name(id);
                let location = o.path(&name).to_string();
                let bytes = o.get(&name)?.ok_or_else(|| StoreError::Object {
                    location: location.clone(),
                    reason: "no such model".into(),
                })?;
                (bytes, location)
            }
        };
        if ModelId::of(&bytes) != *id {
            return Err(StoreError::State {
                path: location.into(),
                reason: "content does not hash to its name".into(),
            });
        }
        Ok(bytes)
    }

    /// The task's progress, if any round state was saved.
    pub fn state(&self, task: &str) -> Result<Option<TaskState>, StoreError> {
        let (bytes, path) = match &self.backend {
            Backend::Dir(dir) => {
                let path = dir.join(STATE);
                match std::fs::read(&path) {
                    Ok(b) => (b, path),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(cause) => return Err(StoreError::Io { path, cause }),
                }
            }
            Backend::Object(o) => match o.get(STATE)? {
                Some(b) => (b, PathBuf::from(o.path(STATE).to_string())),
                None => return Ok(None),
            },
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
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| StoreError::State {
            path: STATE.into(),
            reason: e.to_string(),
        })?;
        match &self.backend {
            Backend::Dir(dir) => {
                flock_durable::write(&dir.join(STATE), flock_durable::Access::Shared, &bytes)
                    .map_err(|e| StoreError::Io {
                        path: e.path,
                        cause: e.cause,
                    })
            }
            Backend::Object(o) => o.put(STATE, bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use flock_model::ModelSpec;

    use super::*;

    /// The same behaviour from both backends: a missing state, models by id, a refused
    /// tampered model, the state of another task.
    fn exercise(store: &ModelStore) {
        assert_eq!(store.state("t").unwrap(), None);
        let p = Params::init(&ModelSpec::default_mlp(3, 2), 7).unwrap();
        let id = store.put(&p).unwrap();
        assert_eq!(store.put(&p).unwrap(), id, "idempotent");
        assert_eq!(store.get(&id).unwrap(), p);
        assert_eq!(ModelId::of(&store.bytes(&id).unwrap()), id);
        let missing = ModelId([9; 32]);
        assert!(store.get(&missing).is_err());
        let state = TaskState {
            task: "t".into(),
            round: 3,
            model: id,
            moments: Some([id, id]),
        };
        store.save_state(&state).unwrap();
        assert_eq!(store.state("t").unwrap(), Some(state));
        let other = store.state("u").unwrap_err().to_string();
        assert!(other.contains("belongs to task \"t\""), "{other}");
    }

    #[test]
    fn a_directory_store_keeps_models_and_state() {
        let dir = std::env::temp_dir().join(format!("flock-store-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        exercise(&ModelStore::open(&dir).unwrap());
    }

    #[test]
    fn an_object_store_keeps_models_and_state() {
        let url = url::Url::parse("memory:///flock").unwrap();
        exercise(&ModelStore::open_at(&StoreLocation::Url(url)).unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_object_backend_works_from_inside_a_runtime() {
        let dir = std::env::temp_dir().join(format!("flock-store-obj-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let url = url::Url::from_directory_path(&dir).unwrap();
        let store = ModelStore::open_at(&StoreLocation::Url(url)).unwrap();
        exercise(&store);
        // The objects are plain files under the directory, laid out like the directory store.
        assert!(dir.join("state.json").exists());
        let state = ModelStore::open(&dir).unwrap().state("t").unwrap().unwrap();
        assert_eq!(state.round, 3);
    }

    #[test]
    fn locations_parse_as_paths_or_urls() {
        let base = Path::new("/etc/flock");
        assert_eq!(
            StoreLocation::parse("store", base).unwrap(),
            StoreLocation::Dir(base.join("store"))
        );
        assert!(matches!(
            StoreLocation::parse("s3://bucket/models", base).unwrap(),
            StoreLocation::Url(u) if u.scheme() == "s3"
        ));
        assert!(StoreLocation::parse("s3://bad host/x", base).is_err());
    }
}
