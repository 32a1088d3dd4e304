//! The content-addressed model store and the task's progress, in a directory or in an object
//! store (S3 or any S3-compatible service, through the `object_store` crate).
//!
//! ```text
//! <store>/models/<id>.safetensors   every global model, named by its SHA-256
//! <store>/state.json                task name, last completed round, its model id (and the
//!                                   ids of FedAdam's moments, stored like models)
//! ```
//!
//! Both are written atomically (in a directory: temporary file, fsync, rename; in an object
//! store: one PUT, which replaces an object whole), so a killed aggregator restarts from the last
//! completed round: the round after it runs next, none is lost or repeated. Models are written
//! before the state that names them.
//!
//! The store's API is synchronous (the round loop calls it between rounds); the object backend
//! drives `object_store`'s futures on a small runtime of its own, on a scoped thread, so it can
//! be called from inside the aggregator's async runtime.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flock_model::{ModelId, Params, file};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
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

struct ObjectBackend {
    url: url::Url,
    store: Box<dyn ObjectStore>,
    prefix: ObjectPath,
    /// Always `Some` until dropped (then shut down without blocking: the store may be dropped
    /// inside the aggregator's own runtime).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for ObjectBackend {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl ObjectBackend {
    fn open(url: &url::Url) -> Result<Self, StoreError> {
        let err = |reason: String| StoreError::Object {
            location: url.to_string(),
            reason,
        };
        // reqwest (object_store's HTTP client) needs a process-wide rustls provider: ring, the
        // workspace's one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // The standard AWS_* variables configure S3 (what `AmazonS3Builder::from_env` reads).
        let options = std::env::vars()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v));
        let (store, prefix) =
            object_store::parse_url_opts(url, options).map_err(|e| err(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("model-store")
            .enable_all()
            .build()
            .map_err(|e| err(format!("starting its runtime: {e}")))?;
        Ok(Self {
            url: url.clone(),
            store,
            prefix,
            runtime: Some(runtime),
        })
    }

    /// `name`'s `/`-separated parts under the prefix (a part of its own would percent-encode
    /// the `/`).
    fn path(&self, name: &str) -> ObjectPath {
        name.split('/')
            .fold(self.prefix.clone(), |path, part| path.join(part))
    }

    /// Runs `f` on the backend's runtime from any thread, async context or not.
    fn run<T: Send>(&self, f: impl Future<Output = T> + Send) -> Result<T, StoreError> {
        let failed = |reason: &str| StoreError::Object {
            location: self.url.to_string(),
            reason: reason.into(),
        };
        let rt = self
            .runtime
            .as_ref()
            .ok_or_else(|| failed("the store is shut down"))?;
        std::thread::scope(|s| s.spawn(|| rt.block_on(f)).join())
            .map_err(|_| failed("the store's worker thread panicked"))
    }

    /// The object `name`, `None` if absent.
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(name);
        let got = self.run(async {
            match self.store.get(&path).await {
                Ok(r) => r.bytes().await.map(|b| Some(b.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        got.map_err(|e| StoreError::Object {
            location: path.to_string(),
            reason: e.to_string(),
        })
    }

    fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let path = self.path(name);
        self.run(self.store.put(&path, PutPayload::from(bytes)))?
            .map(|_| ())
            .map_err(|e| StoreError::Object {
                location: path.to_string(),
                reason: e.to_string(),
            })
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
        match &self.backend {
            Backend::Dir(dir) => {
                let (_, id) = file::encode(params)?;
                let path = dir.join(model_name(&id));
                if !path.exists() {
                    file::save(&path, params)?;
                }
                Ok(id)
            }
            Backend::Object(o) => {
                let (bytes, id) = file::encode(params)?;
                o.put(&model_name(&id), bytes)?;
                Ok(id)
            }
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
                let path = dir.join(STATE);
                let tmp = dir.join(format!(".state.json.{}.tmp", std::process::id()));
                (|| {
                    use std::io::Write;
                    let mut f = std::fs::File::create(&tmp)?;
                    f.write_all(&bytes)?;
                    f.sync_all()?;
                    std::fs::rename(&tmp, &path)?;
                    std::fs::File::open(dir)?.sync_all()
                })()
                .map_err(|cause| StoreError::Io { path, cause })
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
