//! flock-edge's chain client: alloy bindings of the FL Alliance contracts (`chain/contracts`,
//! compiled into `fixtures/contracts`), a local anvil devnet for tests and demos (feature
//! `devnet`: `anvil`, `devnet`, `drive`), a typed client
//! of one task for one signer (with a round's roster: every member's address, ed25519 identity
//! key, `ClientId`, role and stake), the contributors Merkle tree, and the aggregator's durable
//! anchor queue, a task's status for operators, and the helpers services use to follow a
//! round's windows.
pub mod anchor;
#[cfg(feature = "devnet")]
pub mod anvil;
pub mod contracts;
pub mod contribution;
#[cfg(feature = "devnet")]
pub mod devnet;
#[cfg(feature = "devnet")]
pub mod drive;
pub mod error;
pub mod identity;
pub mod merkle;
pub mod params;
pub mod provider;
pub mod queue;
pub mod roles;
pub mod schedule;
pub mod status;
pub mod task;
pub mod tx;

pub use error::{ChainError, Revert};
pub use roles::{Outcome, Phase, Role};
