//! The task's enums on the Rust side (`Phase`, `Role`, `Outcome`) and the role draw of
//! `FlTask.drawRoles` re-implemented off chain (`proposer_count`, `proposer_indices`), so a
//! participant can check the roles it was given against the round's seed.

use alloy::primitives::{B256, U256, keccak256};
use alloy::sol_types::SolValue;

/// `FlTask.Phase`: where the current round stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// No round open; `startRound` may be called.
    Idle,
    /// Members commit their beacon shares.
    BeaconCommit,
    /// Members reveal their beacon shares.
    BeaconReveal,
    /// Anyone may call `drawRoles`.
    RoleDraw,
    /// Proposers train, the aggregator anchors.
    Training,
    /// Voters commit their votes.
    VoteCommit,
    /// Voters reveal their votes.
    VoteReveal,
    /// Anyone may call `finalise`.
    Finalisable,
    /// Every round is finalised.
    Completed,
}

impl Phase {
    /// The phase with this on-chain number.
    pub fn from_u8(v: u8) -> Option<Self> {
        use Phase::*;
        [
            Idle,
            BeaconCommit,
            BeaconReveal,
            RoleDraw,
            Training,
            VoteCommit,
            VoteReveal,
            Finalisable,
            Completed,
        ]
        .get(usize::from(v))
        .copied()
    }
}

/// `FlTask.Role` of a member in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Not a member, or roles not drawn yet.
    None,
    /// Trains and contributes to the candidate.
    Proposer,
    /// Evaluates the candidate and votes.
    Voter,
}

impl Role {
    /// The role with this on-chain number.
    pub fn from_u8(v: u8) -> Option<Self> {
        [Role::None, Role::Proposer, Role::Voter]
            .get(usize::from(v))
            .copied()
    }
}

/// `FlTask.Outcome` of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Not finalised.
    Pending,
    /// The candidate became the last accepted model.
    Accepted,
    /// The candidate was voted down.
    Rejected,
    /// No candidate, or no vote revealed.
    Void,
}

impl Outcome {
    /// The outcome with this on-chain number.
    pub fn from_u8(v: u8) -> Option<Self> {
        use Outcome::*;
        [Pending, Accepted, Rejected, Void]
            .get(usize::from(v))
            .copied()
    }
}

/// Number of proposers among `n` members: `ceil(n * share_bps / 10000)` clamped to
/// `[1, n - 1]` (0 for fewer than 2 members, which the contract never draws for).
pub fn proposer_count(n: usize, share_bps: u16) -> usize {
    if n < 2 {
        return 0;
    }
    let k = (n * usize::from(share_bps)).div_ceil(10_000);
    k.clamp(1, n - 1)
}

/// The member indices drawn as proposers from `seed`, in draw order: the contract's
/// `proposerIndices` (partial Fisher-Yates, position `i` swapped with
/// `i + uint256(keccak256(abi.encode(seed, i))) % (n - i)`). `k` is clamped to `n`.
pub fn proposer_indices(seed: B256, n: usize, k: usize) -> Vec<usize> {
    let k = k.min(n);
    let mut order: Vec<usize> = (0..n).collect();
    for i in 0..k {
        let word = U256::from_be_bytes(keccak256((seed, U256::from(i)).abi_encode_params()).0);
        let offset = word % U256::from(n - i);
        // offset < n - i <= n, so it fits in a usize.
        let j = i + offset.to::<usize>();
        order.swap(i, j);
    }
    order.truncate(k);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_clamped() {
        assert_eq!(proposer_count(2, 1), 1);
        assert_eq!(proposer_count(2, 9999), 1);
        assert_eq!(proposer_count(10, 3000), 3);
        assert_eq!(proposer_count(100, 3000), 30);
        assert_eq!(proposer_count(7, 3000), 3); // ceil(2.1)
        assert_eq!(proposer_count(1, 5000), 0);
    }

    #[test]
    fn indices_are_distinct_and_in_range() {
        for n in 2..40 {
            let k = proposer_count(n, 3000);
            let seed = keccak256((n as u64).to_be_bytes());
            let mut drawn = proposer_indices(seed, n, k);
            assert_eq!(drawn.len(), k);
            drawn.sort_unstable();
            drawn.dedup();
            assert_eq!(drawn.len(), k);
            assert!(drawn.iter().all(|&i| i < n));
        }
    }

    #[test]
    fn enums_round_trip() {
        assert_eq!(Phase::from_u8(4), Some(Phase::Training));
        assert_eq!(Phase::from_u8(9), None);
        assert_eq!(Role::from_u8(2), Some(Role::Voter));
        assert_eq!(Outcome::from_u8(3), Some(Outcome::Void));
    }
}
