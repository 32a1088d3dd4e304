//! flock-aggregator as a library: the task config ([`config`]), the content-addressed model
//! store ([`store`]), the service that runs a task's rounds over QUIC ([`service`]) and its
//! Prometheus metrics and health endpoint ([`metrics`]), and the server optimiser
//! (FedAvg or FedAdam, [`optimizer`]); with a task on chain, the driver of its FL Alliance
//! rounds (`chain_driver`).

mod chain_driver;
pub mod config;
pub mod metrics;
pub mod optimizer;
pub mod service;
pub mod store;
