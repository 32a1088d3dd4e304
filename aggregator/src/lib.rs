//! flock-aggregator as a library: the task config ([`config`]), the content-addressed model
//! store ([`store`]), the round machine (`round`: sans-IO, who takes part in a round, SecAgg+,
//! the next model), the service that runs it over QUIC ([`service`]) with its Prometheus
//! metrics and health endpoint ([`metrics`]), and the server optimiser (FedAvg or FedAdam,
//! [`optimizer`]); with a task on chain, the driver of its FL Alliance rounds (`chain_driver`).
//! `mailbox` holds the messages between the shell, the round machine and the chain driver.

mod chain_driver;
pub mod config;
mod mailbox;
pub mod metrics;
pub mod optimizer;
mod round;
pub mod service;
pub mod store;
