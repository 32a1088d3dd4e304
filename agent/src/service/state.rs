//! What an agent remembers across restarts, written durably (flock-durable) into its state
//! directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The agent's progress in its task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    /// The task's name.
    pub task: String,
    /// This device's id in the task.
    pub client: Option<u64>,
    /// Last round seen to finish.
    pub last_round: Option<u64>,
    /// The global model after it (hex id).
    pub model: Option<String>,
    /// Rounds this agent's update went into.
    pub contributed: u64,
    /// Why the last refused round was refused (a model that is not the chain's, or whose
    /// bytes do not hash to its id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refusal: Option<String>,
}

impl AgentState {
    fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    /// Reads the state in `dir` (default when there is none).
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        match std::fs::read(Self::path(dir)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    /// Writes the state into `dir` durably (creating `dir`, mode 0700, if needed).
    pub fn save(&self, dir: &Path) -> Result<(), flock_durable::DurableError> {
        flock_durable::create_dir_all(dir, flock_durable::Access::Private)?;
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| flock_durable::DurableError {
            path: Self::path(dir),
            step: flock_durable::Step::Write,
            cause: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        flock_durable::write(&Self::path(dir), flock_durable::Access::Shared, &bytes)
    }
}
