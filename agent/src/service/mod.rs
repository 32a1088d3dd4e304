//! The agent as a service: connect to the aggregator over QUIC with mutual TLS, join the task,
//! and for every round fetch the global model (checking its hash, and on chain that it is the
//! chain's last accepted one), train, clip, quantise, mask and send; reconnect with exponential
//! backoff and jitter; persist progress durably; leave cleanly on shutdown.
//!
//! [`AgentBuilder`] is the embedding API: config, identity and a [`crate::data::DataSource`],
//! no global state, callable from a plain `main` without the CLI.
//!
//! Inside: `session` is the sans-IO machine of a session with the aggregator; `driver` runs it
//! (the message loop: jobs, cache, state); `builder` makes the connection and reconnects;
//! `models` is the model cache and the download of model files; `vote` the voter's question
//! and answer; `chain_side` what the chain side hands the session, which `chain` (feature
//! `chain`) or its stand-in `no_chain` provides; `input` the vector a round is given;
//! `error`, `config`, `identity` and `state` what their names say.

mod builder;
#[cfg(feature = "chain")]
mod chain;
mod chain_side;
mod config;
mod driver;
mod error;
mod identity;
mod input;
mod models;
#[cfg(not(feature = "chain"))]
mod no_chain;
mod session;
mod state;
#[cfg(test)]
mod tests;
mod vote;

#[cfg(feature = "chain")]
use chain as chain_impl;
#[cfg(not(feature = "chain"))]
use no_chain as chain_impl;

#[cfg(feature = "test-hooks")]
pub use builder::Tamper;
pub use builder::{AgentBuilder, AgentReport, RoundReport};
pub use config::{AgentConfig, ConfigError};
pub use error::AgentError;
pub use identity::load_identity;
pub use input::Masker;
pub use state::{AgentState, Pledge, PledgeStage};
