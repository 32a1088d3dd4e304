//! The open round's beacon secret and ballot, kept in the state directory (`chain/`, mode
//! 0600, written durably) from before their commitment is sent until they are revealed, so
//! that an agent restarted between a commit and its reveal still reveals (a member that does
//! not reveal is slashed).

use std::path::PathBuf;

use alloy::primitives::B256;
use flock_chain::ChainError;
use flock_chain::task::Ballot;
use tracing::warn;

/// The open round's beacon secret and ballot, kept on disk until revealed.
pub(super) struct Secrets(pub(super) PathBuf);

impl Secrets {
    fn path(&self, what: &str, round: u64) -> PathBuf {
        self.0.join(format!("{what}-{round}.json"))
    }

    /// What was kept for `round`, if anything readable.
    pub(super) fn load<T: serde::de::DeserializeOwned>(&self, what: &str, round: u64) -> Option<T> {
        let bytes = std::fs::read(self.path(what, round)).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                warn!(round, "unreadable {what} file, ignored: {e}");
                None
            }
        }
    }

    /// Keeps `value` for `round` durably (flock-durable, mode 0600) before it is committed to.
    pub(super) fn save<T: serde::Serialize>(
        &self,
        what: &str,
        round: u64,
        value: &T,
    ) -> Result<(), ChainError> {
        let failed = |e: &dyn std::fmt::Display| {
            ChainError::Unexpected(format!("keeping the {what} of round {round}: {e}"))
        };
        let bytes = serde_json::to_vec(value).map_err(|e| failed(&e))?;
        flock_durable::create_dir_all(&self.0, flock_durable::Access::Private)
            .and_then(|()| {
                flock_durable::write(
                    &self.path(what, round),
                    flock_durable::Access::Private,
                    &bytes,
                )
            })
            .map_err(|e| failed(&e))
    }

    /// Forgets everything kept for rounds before `round`.
    pub(super) fn forget_before(&self, round: u64) {
        let Ok(entries) = std::fs::read_dir(&self.0) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let kept_round = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.rsplit_once('-'))
                .and_then(|(_, r)| r.parse::<u64>().ok());
            if kept_round.is_some_and(|r| r < round) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// A ballot as kept on disk.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct KeptBallot {
    accept: bool,
    accuracy_bps: u32,
    salt: B256,
}

impl From<&Ballot> for KeptBallot {
    fn from(b: &Ballot) -> Self {
        Self {
            accept: b.accept,
            accuracy_bps: b.accuracy_bps,
            salt: b.salt,
        }
    }
}

impl From<KeptBallot> for Ballot {
    fn from(k: KeptBallot) -> Self {
        Self {
            accept: k.accept,
            accuracy_bps: k.accuracy_bps,
            salt: k.salt,
        }
    }
}
