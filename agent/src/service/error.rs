//! Why the agent stopped or skipped something, and whose fault it was: this device's (its
//! config, files, data, trainer), the aggregator's (a message that breaks the session), the
//! chain's, or the network's. [`AgentError::is_fatal`] says which errors a reconnect cannot
//! cure.

use std::path::PathBuf;

use flock_transport::TransportError;

use crate::data::DataError;
use crate::train::TrainError;

/// Why the agent stopped (or, for [`AgentError::ModelRefused`], skipped a round).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// This device's identity key could not be used.
    #[error("identity {}: {reason}", path.display())]
    Identity {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The network, or transport set-up (certificates, the CA).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The aggregator refused this agent.
    #[error("the aggregator refused this agent: {0}")]
    Refused(String),
    /// This device's data.
    #[error(transparent)]
    Data(#[from] DataError),
    /// This device's training or evaluation.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A model file on this device.
    #[error(transparent)]
    Model(#[from] flock_model::ModelError),
    /// The aggregator sent something that breaks the session (a task description that does not
    /// parse, another agent's id, a round for another model architecture, a configuration this
    /// device refuses).
    #[error("the aggregator sent {0}")]
    Aggregator(String),
    /// This device failed at something that is not the aggregator's doing (quantising or
    /// masking its update, no system randomness, a worker task that died).
    #[error("this device: {0}")]
    Local(String),
    /// The state directory.
    #[error("state directory: {0}")]
    State(#[from] flock_durable::DurableError),
    /// The state file exists but cannot be read.
    #[error("state file {}: {cause}", path.display())]
    StateFile {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The agent vanished where a test told it to ([`crate::service::AgentBuilder::vanish_at`]).
    #[cfg(feature = "test-hooks")]
    #[error("vanished in round {0} as the test asked")]
    Vanished(u64),
    /// The task on chain: a call the chain refused or could not answer (transient failures
    /// are retried before they come here).
    #[cfg(feature = "chain")]
    #[error("chain: {0}")]
    Chain(#[from] flock_chain::ChainError),
    /// The `[chain]` section cannot work: the key is not the account's, the account takes part
    /// with another identity, it is banned, or this build has no chain support.
    #[error("chain: {0}")]
    ChainSetup(String),
    /// A model this agent will not train on or judge: its bytes do not hash to the announced
    /// id, or the id is not the chain's last accepted model. The round is skipped, the agent
    /// goes on.
    #[error("model refused: {0}")]
    ModelRefused(String),
    /// A round this agent will not take part in because the chain does not back it: its roles
    /// are not drawn, its cohort is not the chain's proposers, this device is not one. The
    /// round is skipped, the agent goes on.
    #[error("round refused: {0}")]
    RoundRefused(String),
    /// No data source: neither `[data]` in the config nor one given to the builder.
    #[error("no data: add a [data] section or give the builder a data source")]
    NoData,
}

impl AgentError {
    /// Whether reconnecting cannot cure it: the agent stops. A lost connection, a refused
    /// model or a chain that did not answer are not fatal.
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::ModelRefused(_) | Self::RoundRefused(_) => false,
            Self::Transport(
                TransportError::Connection(_)
                | TransportError::Connect { .. }
                | TransportError::Io { .. },
            ) => false,
            #[cfg(feature = "chain")]
            Self::Chain(e) => !e.is_transient(),
            _ => true,
        }
    }
}
