//! What agent and aggregator must agree on about a model, without an ML framework.
//!
//! - [`ModelSpec`]: the architecture, serialisable, carried in the task config. Both sides build
//!   the same [`Layout`] from it: every parameter tensor's name and shape, in one documented
//!   order.
//! - [`Params`]: all parameters as one flat `Vec<f32>` in that order, the form that is trained
//!   from, clipped, quantised, masked, summed and averaged. [`Params::init`] makes the initial
//!   model from a seed, the same on every machine.
//! - [`mod@file`]: safetensors on disk; the SHA-256 of the file's bytes is the model's
//!   [`ModelId`], which the chain anchors and agents check.
//! - [`fedavg`]: the sample-weighted mean of updates in the clear and one FedAvg step.
//! - [`contribution`]: the weighted vector `[w·Δ, w·C]` an agent contributes to a secure round
//!   and the FedAvg update the aggregator decodes from the mean of those vectors.
//! - [`metrics`]: loss, accuracy, per-class F1 from predictions.
//! - [`task`]: what a task tells its agents: local training settings, feature scaling.
//!
//! The trainer that turns a [`Params`] into a burn module lives in the agent; this crate is what
//! the aggregator needs as well, so it stays free of burn.

pub mod contribution;
mod error;
pub mod fedavg;
pub mod file;
mod init;
pub mod metrics;
mod params;
mod spec;
pub mod task;

pub use error::ModelError;
pub use file::ModelId;
pub use params::Params;
pub use spec::{CNN_KERNEL, Layout, MAX_PARAMS, ModelSpec, ParamInfo};
