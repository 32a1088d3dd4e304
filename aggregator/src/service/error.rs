//! Why `serve` stopped, and whose fault it was.

use crate::chain_driver::ChainDriveError;
use crate::round::RoundError;
use crate::store::StoreError;

/// Why serving stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// TLS, QUIC or credential set-up (the operator's files or the network).
    #[error(transparent)]
    Transport(#[from] flock_transport::TransportError),
    /// The model store (a file or object that cannot be read or written, after retries).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The model the config describes cannot be built.
    #[error(transparent)]
    Model(#[from] flock_model::ModelError),
    /// The metrics address could not be bound.
    #[error("metrics on {addr}: {cause}")]
    Metrics {
        /// `server.metrics`.
        addr: std::net::SocketAddr,
        /// Why.
        cause: std::io::Error,
    },
    /// The task on chain (`[chain]`): it does not fit this aggregator, or the chain driver
    /// failed in a way retrying does not cure.
    #[error("chain: {0}")]
    Chain(#[from] ChainDriveError),
    /// A round could not be configured (off chain, a bug: every cohort size was checked when
    /// the config was loaded).
    #[error(transparent)]
    Round(#[from] RoundError),
    /// The task description for the agents could not be encoded.
    #[error("the task description: {0}")]
    TaskInfo(#[source] serde_json::Error),
    /// A blocking task (the store's reads and writes run on them) panicked or was cancelled.
    #[error("a worker of the store stopped: {0}")]
    Worker(String),
}
