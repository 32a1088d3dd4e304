//! The device's own floors: what a client refuses whatever the server's configuration says.
//!
//! [`RoundConfig::validate`] checks that a configuration is consistent with the threat model it
//! carries; but that threat model, the cohort size and the graph seed all come from the server.
//! A [`ClientPolicy`] is the device's: a minimum cohort and contributor count, a threat model
//! the round's must be at least as strong as, a cap on attempts per round, and the graph seed
//! recomputed from a beacon the device knows ([`crate::config::graph_seed`]).

use serde::{Deserialize, Serialize};

use crate::config::{RoundConfig, graph_seed};
use crate::params::ThreatModel;

/// What a device requires of every round it takes part in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientPolicy {
    /// Fewest participants in a round's configuration.
    pub min_participants: u32,
    /// Fewest contributors the server may output a sum for (`min_clients` of the round).
    pub min_contributors: u32,
    /// The round's threat model must assume at least this dropout rate, at least this
    /// fraction of corrupt clients and at least this many bits of security.
    pub floor: ThreatModel,
    /// Attempts of one round a device takes part in (attempt numbers `0..max_attempts`): bounds
    /// how many graph seeds a server can try for one round.
    pub max_attempts: u64,
}

impl Default for ClientPolicy {
    /// Four participants, three contributors, the default threat model (10 % dropout, no
    /// corrupt clients assumed, 2^-40), eight attempts.
    fn default() -> Self {
        Self {
            min_participants: 4,
            min_contributors: 3,
            floor: ThreatModel::default(),
            max_attempts: 8,
        }
    }
}

/// Why a device refuses a round configuration under its own policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Fewer participants than the device accepts.
    #[error("the round has {got} participants, this device requires at least {min}")]
    TooFewParticipants {
        /// In the configuration.
        got: u32,
        /// The device's floor.
        min: u32,
    },
    /// The server may output a sum of fewer inputs than the device accepts.
    #[error("the round may finish with {got} contributors, this device requires at least {min}")]
    TooFewContributors {
        /// `min_clients` of the configuration.
        got: u32,
        /// The device's floor.
        min: u32,
    },
    /// The round's threat model is weaker than the device's.
    #[error("the round assumes {what} = {got}, this device requires at least {min}")]
    WeakThreatModel {
        /// Which bound.
        what: &'static str,
        /// In the configuration.
        got: u32,
        /// The device's floor.
        min: u32,
    },
    /// Too many attempts at one round.
    #[error("attempt {attempt} of round {round}: this device takes part in at most {max}")]
    TooManyAttempts {
        /// The round.
        round: u64,
        /// The attempt.
        attempt: u64,
        /// The device's cap.
        max: u64,
    },
    /// The graph seed is not the one the round's inputs give: the server chose it.
    #[error("the neighbour graph's seed is not derived from the round and its beacon")]
    GraphSeed,
}

impl ClientPolicy {
    /// Checks `config` against this policy, recomputing the graph seed from `beacon` (the
    /// round's seed on chain, zero off chain).
    ///
    /// # Errors
    /// The first [`PolicyError`] found.
    pub fn check(&self, config: &RoundConfig, beacon: &[u8; 32]) -> Result<(), PolicyError> {
        let n = config.participant_count();
        if n < self.min_participants {
            return Err(PolicyError::TooFewParticipants {
                got: n,
                min: self.min_participants,
            });
        }
        if config.min_clients < self.min_contributors {
            return Err(PolicyError::TooFewContributors {
                got: config.min_clients,
                min: self.min_contributors,
            });
        }
        let floors = [
            (
                "dropout_ppm",
                config.threat.dropout_ppm,
                self.floor.dropout_ppm,
            ),
            (
                "corrupt_ppm",
                config.threat.corrupt_ppm,
                self.floor.corrupt_ppm,
            ),
            (
                "failure_bits",
                config.threat.failure_bits,
                self.floor.failure_bits,
            ),
        ];
        if let Some(&(what, got, min)) = floors.iter().find(|(_, got, min)| got < min) {
            return Err(PolicyError::WeakThreatModel { what, got, min });
        }
        if config.attempt >= self.max_attempts {
            return Err(PolicyError::TooManyAttempts {
                round: config.round,
                attempt: config.attempt,
                max: self.max_attempts,
            });
        }
        let expected = graph_seed(
            &config.task,
            config.round,
            config.attempt,
            &config.participants,
            beacon,
        );
        if config.graph_seed != expected {
            return Err(PolicyError::GraphSeed);
        }
        Ok(())
    }
}
