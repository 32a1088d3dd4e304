//! What an agent remembers across restarts, written durably (flock-durable) into its state
//! directory: its progress in the task and its pledge, what it has already given away in the
//! newest round it took part in (so that no aggregator can run that round again without it and
//! subtract).

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
    /// How far this device went in the newest round it sent a masked input for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pledge: Option<Pledge>,
}

/// How far a device went in one attempt of a round, saved before the message that takes it
/// there leaves the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PledgeStage {
    /// Its masked input left.
    Input,
    /// It signed a survivor list: from here on an unmask request signed by a quorum may
    /// reveal what it holds, so it is bound to this attempt.
    Signed,
    /// It answered an unmask request.
    Revealed,
}

/// The newest round this device sent a masked input for: which attempt, from which model, and
/// how far it went.
///
/// The rule it enforces (ARCHITECTURE.md, "Threat model"): a device contributes to at most one
/// attempt of a round past the survivor list, and to no round older than one it contributed
/// to. Two attempts that both unmask a sum with this device's update in it differ by the
/// updates of the devices that signed only one of them; once every device signs at most one
/// attempt, each unmasked sum holds a signer set (a quorum of its cohort) that appears in no
/// other, so no difference of sums isolates one device. Before it signs, a device has given
/// nothing an honest majority would unmask, and an honest aggregator's retry after an abort
/// may still count on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pledge {
    /// The round.
    pub round: u64,
    /// The attempt within the round ([`flock_protocol::RoundConfig::attempt`]).
    pub attempt: u64,
    /// The model it trained from (hex id).
    pub model: String,
    /// How far it went.
    pub stage: PledgeStage,
}

impl Pledge {
    /// Why this device may not take part in an attempt of round `round` from `model` (hex id),
    /// or `None` if it may.
    pub fn forbids(&self, round: u64, model: &str) -> Option<String> {
        if round < self.round {
            return Some(format!(
                "it already sent its input for round {}, a later round",
                self.round
            ));
        }
        if round > self.round {
            return None;
        }
        if self.stage >= PledgeStage::Signed {
            let what = match self.stage {
                PledgeStage::Revealed => "revealed shares",
                _ => "signed the survivor list",
            };
            return Some(format!(
                "it {what} in attempt {} of round {round}; another attempt could be subtracted from it",
                self.attempt
            ));
        }
        if model != self.model {
            return Some(format!(
                "attempt {} of round {round} was from model {}, this one is from {model}",
                self.attempt, self.model
            ));
        }
        None
    }
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
