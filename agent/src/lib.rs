//! flock-agent: the part of flock-edge that runs next to a device's data.
//!
//! - [`data`]: data sources (CSV, or the embedder's own), splits, standardisation, the non-IID
//!   partitioner for simulations.
//! - [`train`] (feature `train`): the burn trainer, on wgpu when an adapter exists and on the
//!   CPU otherwise; local training, evaluation and in-process FedAvg.
//! - [`service`] (feature `train`): the agent as a service: QUIC with mutual TLS to the
//!   aggregator, rounds of train → clip → quantise → mask → send, reconnects, persisted
//!   state; [`service::AgentBuilder`] is the embedding API.
//! - [`kernel_check`]: the self-check that tells an operator whether this machine masks updates
//!   correctly on its CPU and, when one is present, its GPU.

pub mod data;
pub mod kernel_check;
#[cfg(feature = "train")]
pub mod service;
#[cfg(feature = "train")]
pub mod train;
