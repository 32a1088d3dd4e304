//! The messages between the aggregator's parts: what the I/O shell hands the round machine
//! ([`Input`]: an agent joined, vanished or sent something), what the chain driver asks of the
//! round loop ([`ChainRequest`]) and what the round machine is told about the chain
//! ([`ChainInput`]). A neutral module, as quinn-proto's `shared.rs` is: the shell, the round
//! machine and the chain driver all import it, and none imports another for these types.

use std::collections::BTreeSet;

use flock_chain::Outcome;
use flock_model::ModelId;
use flock_protocol::session::AgentMessage;
use flock_protocol::{ClientId, Participant};
use tokio::sync::oneshot;

/// What happened on the network, for the round machine.
#[derive(Debug)]
pub(crate) enum Input {
    /// An agent connected (a newer connection of the same agent replaces the older one).
    Joined {
        /// Its id (from its certificate's key).
        client: ClientId,
        /// Its certificate's ed25519 key.
        identity: [u8; 32],
    },
    /// An agent's connection ended.
    Lost {
        /// The agent.
        client: ClientId,
    },
    /// An agent sent a message.
    Message {
        /// The sender.
        client: ClientId,
        /// What it sent.
        msg: AgentMessage,
    },
}

/// What the chain driver asks of (or tells) the round loop; the shell answers `Ready` itself
/// and hands the rest to the round machine as [`ChainInput`]s.
#[derive(Debug)]
pub(crate) enum ChainRequest {
    /// Which agents are connected and ready.
    Ready(oneshot::Sender<BTreeSet<ClientId>>),
    /// The roles of `round` are drawn: run SecAgg+ over `proposers` from `prev` and reply with
    /// the candidate (or `None` if none could be built).
    Train {
        /// The round.
        round: u64,
        /// The drawn proposers, with their registered identity keys.
        proposers: Vec<Participant>,
        /// The chain's last accepted model.
        prev: ModelId,
        /// The round's seed, drawn from the stakers' beacon: the graph seed's beacon.
        seed: [u8; 32],
        /// Where the candidate goes.
        reply: oneshot::Sender<Option<Candidate>>,
    },
    /// `round` is finalised.
    Finalised {
        /// The round.
        round: u64,
        /// How it ended.
        outcome: Outcome,
        /// The chain's last accepted model after it.
        accepted: ModelId,
    },
}

/// What the round machine is told about the chain.
#[derive(Debug)]
pub(crate) enum ChainInput {
    /// See [`ChainRequest::Train`]; the machine answers with
    /// [`crate::round::Event::Candidate`].
    Train {
        /// The round.
        round: u64,
        /// The drawn proposers.
        proposers: Vec<Participant>,
        /// The chain's last accepted model.
        prev: ModelId,
        /// The round's drawn seed.
        seed: [u8; 32],
    },
    /// See [`ChainRequest::Finalised`].
    Finalised {
        /// The round.
        round: u64,
        /// How it ended.
        outcome: Outcome,
        /// The chain's last accepted model after it.
        accepted: ModelId,
    },
}

/// A round's candidate model and whose updates are in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// The candidate's id.
    pub model: ModelId,
    /// Its contributors.
    pub contributors: Vec<ClientId>,
}
