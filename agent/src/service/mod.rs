//! The agent as a service: connect to the aggregator over QUIC with mutual TLS, join the task,
//! and for every round fetch the global model (checking its hash), train, clip, quantise, mask
//! and send; reconnect with exponential backoff and jitter; persist progress atomically; leave
//! cleanly on shutdown.
//!
//! [`AgentBuilder`] is the embedding API: config, identity and a [`crate::data::DataSource`],
//! no global state, callable from a plain `main` without the CLI.

#[cfg(feature = "chain")]
mod chain;
mod config;
mod identity;
mod input;
mod session;
mod state;

pub use config::{AgentConfig, ConfigError};
pub use identity::load_identity;
pub use input::Masker;
pub use session::{AgentBuilder, AgentError, AgentReport, RoundReport};
pub use state::AgentState;
