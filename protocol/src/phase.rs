//! The five phases of a SecAgg+ round, named the same on both sides.

use serde::{Deserialize, Serialize};

/// A phase of the round (Bonawitz et al.'s rounds 0–4, the consistency check included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Clients advertise signed round keys.
    AdvertiseKeys,
    /// Clients share their secrets with their neighbours.
    ShareKeys,
    /// Clients send masked inputs.
    MaskedInput,
    /// Survivors sign the list of survivors.
    Consistency,
    /// Survivors reveal the shares that remove the masks.
    Unmask,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::AdvertiseKeys => "advertise-keys",
            Phase::ShareKeys => "share-keys",
            Phase::MaskedInput => "masked-input",
            Phase::Consistency => "consistency",
            Phase::Unmask => "unmask",
        })
    }
}
