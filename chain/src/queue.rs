//! The anchor queue on disk: one JSON file per pending anchor in a directory, written durably
//! (flock-durable: temporary file, fsync, rename, fsync of the directory) so that a crash leaves
//! either the old state or the new one; anchors refused for good are moved to `rejected/` with
//! the reason next to them.

use std::fs;
use std::path::{Path, PathBuf};

use flock_durable::{Access, DurableError};

use crate::contracts::FlTask;

use alloy::primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};

/// A candidate to anchor: `FlTask.anchorCandidate(round, model_hash, prev_model_hash,
/// accuracy_bps, contributors)` on `task`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// The task contract.
    pub task: Address,
    /// The round.
    pub round: u64,
    /// The candidate model's hash.
    pub model_hash: B256,
    /// The last accepted model it builds on.
    pub prev_model_hash: B256,
    /// The aggregator's accuracy figure, basis points.
    pub accuracy_bps: u32,
    /// The contributing proposers, strictly ascending.
    pub contributors: Vec<Address>,
}

impl Anchor {
    /// The `anchorCandidate` call that puts this anchor on chain: the one place its arguments
    /// are laid out (the [`crate::anchor::Anchorer`] and
    /// [`crate::task::TaskClient::anchor_candidate`] both send it).
    pub fn call(&self) -> FlTask::anchorCandidateCall {
        FlTask::anchorCandidateCall {
            round: U256::from(self.round),
            modelHash: self.model_hash,
            prevModelHash: self.prev_model_hash,
            accuracyBps: self.accuracy_bps,
            contributors: self.contributors.clone(),
        }
    }
}

/// Why the queue could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// A file operation failed.
    #[error("anchor queue {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A queued file is not a valid anchor.
    #[error("anchor queue {path}: not a valid anchor: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A different anchor for the same task and round is already queued.
    #[error("a different anchor for round {round} of {task} is already queued")]
    Conflict {
        /// The task.
        task: Address,
        /// The round.
        round: u64,
    },
}

/// The directory of pending anchors.
#[derive(Debug, Clone)]
pub struct AnchorQueue {
    dir: PathBuf,
}

impl AnchorQueue {
    /// Opens (creating it if needed) the queue in `dir`; removes the temporary files a crash
    /// left.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, QueueError> {
        let dir = dir.into();
        flock_durable::create_dir_all(&dir, Access::Shared).map_err(durable)?;
        flock_durable::sweep(&dir).map_err(durable)?;
        Ok(Self { dir })
    }

    /// The queue's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Queues `anchor` (durably). Queuing the same anchor twice is fine; a different anchor
    /// for a queued (task, round) is a [`QueueError::Conflict`].
    pub fn push(&self, anchor: &Anchor) -> Result<PathBuf, QueueError> {
        let path = self.path_of(anchor);
        if path.exists() {
            if self.read(&path)? == *anchor {
                return Ok(path);
            }
            return Err(QueueError::Conflict {
                task: anchor.task,
                round: anchor.round,
            });
        }
        let json = serde_json::to_vec_pretty(anchor).map_err(|e| QueueError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        flock_durable::write(&path, Access::Shared, &json).map_err(durable)?;
        Ok(path)
    }

    /// Pending anchors, oldest round first.
    pub fn pending(&self) -> Result<Vec<Anchor>, QueueError> {
        let mut out = Vec::new();
        for path in self.entries()? {
            if path.extension().is_some_and(|e| e == "json") {
                out.push(self.read(&path)?);
            }
        }
        out.sort_by_key(|a| (a.round, a.task));
        Ok(out)
    }

    /// Removes `anchor` once it is confirmed on chain.
    pub fn remove(&self, anchor: &Anchor) -> Result<(), QueueError> {
        flock_durable::remove(&self.path_of(anchor)).map_err(durable)
    }

    /// Moves `anchor` to `rejected/`, with `reason` in a `.reason` file beside it.
    pub fn reject(&self, anchor: &Anchor, reason: &str) -> Result<(), QueueError> {
        let from = self.path_of(anchor);
        let dir = self.dir.join("rejected");
        flock_durable::create_dir_all(&dir, Access::Shared).map_err(durable)?;
        let name = from.file_name().map(PathBuf::from).unwrap_or_default();
        let to = dir.join(&name);
        flock_durable::write(
            &to.with_extension("reason"),
            Access::Shared,
            reason.as_bytes(),
        )
        .map_err(durable)?;
        flock_durable::rename(&from, &to).map_err(durable)
    }

    fn path_of(&self, a: &Anchor) -> PathBuf {
        self.dir
            .join(format!("{}-round-{:020}.json", a.task, a.round))
    }

    fn read(&self, path: &Path) -> Result<Anchor, QueueError> {
        let bytes = fs::read(path).map_err(|source| io(path, source))?;
        serde_json::from_slice(&bytes).map_err(|e| QueueError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    fn entries(&self) -> Result<Vec<PathBuf>, QueueError> {
        let rd = fs::read_dir(&self.dir).map_err(|source| io(&self.dir, source))?;
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(|source| io(&self.dir, source))?;
            if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                out.push(e.path());
            }
        }
        out.sort();
        Ok(out)
    }
}

fn durable(e: DurableError) -> QueueError {
    QueueError::Io {
        path: e.path,
        source: e.cause,
    }
}

fn io(path: &Path, source: std::io::Error) -> QueueError {
    QueueError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("flock-chain-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn anchor(round: u64, byte: u8) -> Anchor {
        Anchor {
            task: Address::repeat_byte(7),
            round,
            model_hash: B256::repeat_byte(byte),
            prev_model_hash: B256::repeat_byte(1),
            accuracy_bps: 9000,
            contributors: vec![Address::repeat_byte(2), Address::repeat_byte(3)],
        }
    }

    #[test]
    fn anchors_survive_reopening_and_conflicts_are_refused() -> Result<(), QueueError> {
        let dir = scratch("queue");
        let q = AnchorQueue::open(&dir)?;
        q.push(&anchor(2, 9))?;
        q.push(&anchor(1, 9))?;
        q.push(&anchor(1, 9))?; // same again: fine
        assert!(matches!(
            q.push(&anchor(1, 8)),
            Err(QueueError::Conflict { round: 1, .. })
        ));
        // What a crash in the middle of a write leaves: swept when the queue is opened.
        let leftover = dir.join(".0x0707070707070707070707070707070707070707-round-3.json.Ab12Cd");
        fs::write(&leftover, b"half")?;
        let q = AnchorQueue::open(&dir)?;
        assert!(!leftover.exists());
        assert_eq!(q.pending()?, vec![anchor(1, 9), anchor(2, 9)]);
        q.remove(&anchor(1, 9))?;
        q.reject(&anchor(2, 9), "NotAggregator")?;
        assert!(q.pending()?.is_empty());
        assert!(dir.join("rejected").read_dir()?.count() == 2);
        fs::write(dir.join("bad.json"), b"{")?;
        assert!(matches!(q.pending(), Err(QueueError::Corrupt { .. })));
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }

    impl From<std::io::Error> for QueueError {
        fn from(source: std::io::Error) -> Self {
            io(Path::new("test"), source)
        }
    }
}
