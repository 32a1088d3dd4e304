//! `TaskParams` on the Rust side: every parameter `TaskManager.createTask` takes, with defaults
//! that suit a local devnet, converted into the binding's struct.

use alloy::primitives::{Address, B256, U256, keccak256};

use crate::contracts::TaskManager;

/// One FLOCK in wei (18 decimals).
pub const FLOCK: U256 = U256::from_limbs([1_000_000_000_000_000_000, 0, 0, 0]);

/// The parameters of a task, fixed when it is created (see `chain/README.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskParams {
    /// Hash of the model specification.
    pub model_spec_hash: B256,
    /// Hash of the initial global model (the last accepted model before round 1).
    pub initial_model_hash: B256,
    /// Number of rounds.
    pub total_rounds: u32,
    /// Participants needed to start a round (>= 2).
    pub min_participants: u16,
    /// Cap on participants (<= 256).
    pub max_participants: u16,
    /// Minimum stake (wei).
    pub min_stake: U256,
    /// Share of members drawn as proposers, basis points (1..9999).
    pub proposer_share_bps: u16,
    /// Beacon commit window, seconds.
    pub beacon_commit_duration: u32,
    /// Beacon reveal window, seconds.
    pub beacon_reveal_duration: u32,
    /// Training and anchoring window from the role draw, seconds.
    pub training_duration: u32,
    /// Vote commit window from the anchor, seconds.
    pub vote_commit_duration: u32,
    /// Vote reveal window, seconds.
    pub vote_reveal_duration: u32,
    /// Reward per scored round (wei).
    pub reward_per_round: U256,
    /// Share of a loser's stake slashed, basis points (0..10000).
    pub slash_bps: u16,
    /// Strikes after which a participant is removed (>= 1).
    pub strikes_before_removal: u16,
    /// The only address that may anchor.
    pub aggregator: Address,
    /// External randomness source (zero: `block.prevrandao`).
    pub randomness_source: Address,
}

impl TaskParams {
    /// Devnet defaults: 10 rounds, 2..=256 participants, 10 FLOCK minimum stake, 30 %
    /// proposers, 60 s windows, 100 FLOCK reward per round, 10 % slash, 3 strikes.
    pub fn new(aggregator: Address) -> Self {
        Self {
            model_spec_hash: keccak256(b"flock-edge devnet model spec"),
            initial_model_hash: keccak256(b"flock-edge devnet initial model"),
            total_rounds: 10,
            min_participants: 2,
            max_participants: 256,
            min_stake: FLOCK * U256::from(10u8),
            proposer_share_bps: 3000,
            beacon_commit_duration: 60,
            beacon_reveal_duration: 60,
            training_duration: 60,
            vote_commit_duration: 60,
            vote_reveal_duration: 60,
            reward_per_round: FLOCK * U256::from(100u8),
            slash_bps: 1000,
            strikes_before_removal: 3,
            aggregator,
            randomness_source: Address::ZERO,
        }
    }
}

impl From<&TaskParams> for TaskManager::TaskParams {
    fn from(p: &TaskParams) -> Self {
        Self {
            modelSpecHash: p.model_spec_hash,
            initialModelHash: p.initial_model_hash,
            totalRounds: p.total_rounds,
            minParticipants: p.min_participants,
            maxParticipants: p.max_participants,
            minStake: p.min_stake,
            proposerShareBps: p.proposer_share_bps,
            beaconCommitDuration: p.beacon_commit_duration,
            beaconRevealDuration: p.beacon_reveal_duration,
            trainingDuration: p.training_duration,
            voteCommitDuration: p.vote_commit_duration,
            voteRevealDuration: p.vote_reveal_duration,
            rewardPerRound: p.reward_per_round,
            slashBps: p.slash_bps,
            strikesBeforeRemoval: p.strikes_before_removal,
            aggregator: p.aggregator,
            randomnessSource: p.randomness_source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_flock_is_ten_to_the_eighteen() {
        assert_eq!(FLOCK, U256::from(10u8).pow(U256::from(18u8)));
    }
}
