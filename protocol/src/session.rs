//! The session around SecAgg+ rounds, as wire messages: an agent joins a task, is told each
//! round's configuration and global model, fetches model files it lacks, exchanges the
//! round's SecAgg+ messages, and learns the result. Sans-IO like the rest of this crate: the
//! services move these frames over QUIC, one per stream.
//!
//! Model files and the task description are opaque bytes here (safetensors and JSON defined by
//! `flock-model`): the protocol knows no ML.

use serde::{Deserialize, Serialize};

use crate::wire::{ClientMessage, ServerMessage, WireMessage};
use crate::{ClientId, RoundConfig, TaskId};

/// Largest model-file piece in one [`AggregatorMessage::ModelChunk`] (half a frame).
pub const MODEL_CHUNK_BYTES: usize = 512 * 1024;

/// What an agent sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AgentMessage {
    /// The first message on a connection: which task it wants to work on and the last round
    /// it completed (after a restart).
    Hello {
        /// The task.
        task: TaskId,
        /// Last round this agent saw finish, if any.
        last_round: Option<u64>,
    },
    /// Send me the model file with this id (SHA-256 of its bytes).
    FetchModel {
        /// The model id.
        id: [u8; 32],
    },
    /// A SecAgg+ message of the round attempt `attempt`.
    Secagg {
        /// The attempt it belongs to (from [`AggregatorMessage::Round`]).
        attempt: u64,
        /// The message.
        msg: ClientMessage,
    },
    /// Leaving the task: do not count on me in later rounds.
    Leave,
}

/// What the aggregator sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AggregatorMessage {
    /// Joined: the agent's id in this task and the task's description (JSON).
    Welcome {
        /// The agent's id (derived from its certificate's key).
        client: ClientId,
        /// `flock_model::task::TaskInfo`, JSON.
        #[serde(with = "serde_bytes")]
        task: Vec<u8>,
    },
    /// A round begins: train from `model`, then run SecAgg+ with `config`.
    Round {
        /// Which attempt this is: the aggregator numbers every round start, retries of an
        /// aborted round included, and tags each SecAgg+ message with it, because messages on
        /// separate streams can overtake each other across rounds.
        attempt: u64,
        /// The round's SecAgg+ configuration (participants, parameters).
        config: RoundConfig,
        /// Id of the global model to train from.
        model: [u8; 32],
        /// Sample count at which an agent's FedAvg weight saturates (weights are
        /// `min(samples, cap) / cap`).
        sample_cap: u64,
    },
    /// A piece of a model file.
    ModelChunk {
        /// The model id.
        id: [u8; 32],
        /// Byte offset of `bytes`.
        offset: u64,
        /// Size of the whole file.
        total: u64,
        /// The piece.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// A SecAgg+ message of the round attempt `attempt`.
    Secagg {
        /// The attempt it belongs to.
        attempt: u64,
        /// The message.
        msg: ServerMessage,
    },
    /// The round finished: the new global model and who contributed.
    RoundDone {
        /// The round.
        round: u64,
        /// Id of the new global model.
        model: [u8; 32],
        /// Whose updates are in it.
        contributors: Vec<ClientId>,
        /// Whether it was the task's last round.
        last: bool,
    },
    /// The task is already complete (sent to an agent that joins after its last round).
    TaskComplete {
        /// The last round.
        round: u64,
        /// The final model's id.
        model: [u8; 32],
    },
    /// The aggregator will not work with this agent, and why.
    Refused(String),
}

impl WireMessage for AgentMessage {
    const KIND: &'static str = "agent";
}

impl WireMessage for AggregatorMessage {
    const KIND: &'static str = "aggregator";
}
