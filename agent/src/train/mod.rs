//! The trainer: burn models built from a [`flock_model::ModelSpec`], trained where the data
//! lives, on a GPU through wgpu when there is one and on the CPU otherwise.
//!
//! - [`device`]: choosing the backend at start-up (logged, forceable by config).
//! - [`net`]: the burn modules and their exchange with the flat [`flock_model::Params`].
//! - [`local`]: local training (SGD or Adam, optional FedProx term), returning `Δ = w_local −
//!   w_global` and the sample count.
//! - [`eval`]: loss, accuracy and per-class F1.
//! - [`federation`]: FedAvg over simulated clients in one process.
//!
//! The same model code runs on both backends: burn picks the backend from the
//! [`burn::tensor::Device`] at run time.

pub mod device;
pub mod eval;
pub mod federation;
pub mod local;
pub mod net;

use crate::data::DataError;
use flock_model::ModelError;

pub use device::{Backend, BackendChoice, TrainDevice};
pub use eval::evaluate;
pub use flock_model::task::{OptimizerKind, TrainConfig};
pub use local::{EpochReport, LocalUpdate, train_local};

/// Why training or evaluation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The model spec, parameters or file.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The training data.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The GPU was asked for and none can be used.
    #[error("no GPU for training: {0}")]
    NoGpu(String),
    /// The backend failed (a tensor could not be read back, the device was lost).
    #[error("training backend: {0}")]
    Backend(String),
    /// Training settings that cannot work.
    #[error("invalid training config: {0}")]
    Config(String),
}
