//! Every reason a client aborts a round. A client that aborts reveals nothing more.

use crate::config::{ClientId, ConfigError};
use crate::keys::KeyError;
use crate::phase::Phase;
use crate::policy::PolicyError;

/// Why a client refused a message or aborted the round.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration is unsafe or malformed.
    #[error("refusing the round configuration: {0}")]
    Config(#[from] ConfigError),
    /// The configuration is below the device's own floors.
    #[error("refusing the round under this device's policy: {0}")]
    Policy(#[from] PolicyError),
    /// A message arrived that this phase does not accept.
    #[error("unexpected {got} message while {state}")]
    UnexpectedMessage {
        /// What arrived.
        got: &'static str,
        /// What the client was doing.
        state: &'static str,
    },
    /// An advert or share failed a cryptographic check.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A message names a client that is not one of this client's neighbours (or peers).
    #[error("client {0} is not a neighbour this client exchanged keys with")]
    UnknownPeer(ClientId),
    /// A message lists the same client twice.
    #[error("client {0} appears twice")]
    Duplicate(ClientId),
    /// Two adverts carry the same public key.
    #[error("the advert of client {0} reuses a key already advertised")]
    DuplicateKey(ClientId),
    /// A decrypted share bundle is malformed or not addressed to this client.
    #[error("share bundle from client {0} is malformed")]
    BadShare(ClientId),
    /// A delivered share does not carry its sender's signature; the server checked that
    /// signature when the share arrived, so the server changed or made up the share.
    #[error("the share delivered as client {0}'s is not the one it signed: the server altered it")]
    ForgedShare(ClientId),
    /// Too few neighbours remain to go on safely.
    #[error("{phase}: {have} neighbours remain, the threshold is {need}")]
    NotEnoughNeighbours {
        /// Phase.
        phase: Phase,
        /// Neighbours left.
        have: usize,
        /// Threshold.
        need: usize,
    },
    /// The survivor list, or a signature on it, is malformed.
    #[error("survivor list refused: {0}")]
    SurvivorList(&'static str),
    /// Fewer survivors (or valid signatures on the list) than the consistency quorum: the
    /// server could be showing other clients another list.
    #[error("{have} survivors signed the list, the consistency quorum is {need}")]
    NotEnoughSurvivors {
        /// Survivors or signatures.
        have: usize,
        /// [`crate::RoundConfig::consistency_quorum`].
        need: usize,
    },
    /// The input vector has the wrong length.
    #[error("input has {got} words, the round expects {expected}")]
    InputLength {
        /// Expected length.
        expected: usize,
        /// Given length.
        got: usize,
    },
    /// A quantised value is above the round's `2^bits − 1`, which could make the sum wrap.
    #[error("input word {index} is {value}, above the round's maximum {max}")]
    InputOutOfRange {
        /// Position.
        index: usize,
        /// Value.
        value: u32,
        /// `2^bits − 1`.
        max: u32,
    },
    /// The server was silent past the phase deadline.
    #[error("timed out in {0}")]
    Timeout(Phase),
    /// The server aborted the round.
    #[error("the server aborted the round: {0}")]
    ServerAborted(String),
}
