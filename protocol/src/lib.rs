//! SecAgg+ secure aggregation for flock-edge, as state machines with no I/O.
//!
//! A server learns the sum of its clients' quantised model updates and nothing about any
//! single one, even when clients drop out mid-round: Bonawitz et al., "Practical Secure
//! Aggregation for Privacy-Preserving Machine Learning" (CCS 2017), with the sparse neighbour
//! graph of Bell et al., "Secure Single-Server Aggregation with (Poly)Logarithmic Overhead"
//! (CCS 2020). This crate contains no networking code, no async runtime, no clock and no ML
//! framework: messages go in through `handle`, come out through `poll_transmit`, time is an
//! argument (`handle_timeout(now)`, `poll_timeout()`), and randomness is injected.
//!
//! The two types that matter are [`Client`] and [`Server`]; [`RoundConfig`] is what they
//! agree on, [`ClientPolicy`] what a device insists on whatever the server says, and [`wire`]
//! how their messages travel. Against a malicious server the client checks every value it is
//! sent: the configuration against its policy (the graph seed recomputed, not taken), adverts
//! against the signed configuration digest, and the survivor list against a quorum of
//! survivors' signatures before it reveals a single share (`ARCHITECTURE.md`, threat model).
//!
//! ```
//! use std::time::Instant;
//! use flock_protocol::*;
//! use rand_chacha::ChaCha20Rng;
//! use rand_core::SeedableRng;
//!
//! let now = Instant::now();
//! let identities: Vec<Identity> = (0..5u8).map(|i| Identity::from_secret_bytes(&[i + 1; 32])).collect();
//! let participants = identities.iter().enumerate()
//!     .map(|(i, id)| Participant { id: ClientId(i as u64), identity: id.public() })
//!     .collect();
//! let beacon = [9; 32]; // on chain, the round's drawn seed
//! let config = RoundConfig::derive(
//!     TaskId([0; 32]), 1, 0, participants, ThreatModel::default(), beacon, 4, 1.0, 60_000)?;
//! let policy = ClientPolicy::default(); // the device's own floors
//! let mut server = Server::new(config, now)?;
//! let mut rng = ChaCha20Rng::from_seed([1; 32]);
//! let mut clients: Vec<Option<Client>> = (0..5).map(|_| None).collect();
//! for _ in 0..10 {
//!     while let Some((to, msg)) = server.poll_transmit() {
//!         let i = to.0 as usize;
//!         match msg {
//!             ServerMessage::Start(config) => {
//!                 clients[i] = Some(Client::new(config, to, &identities[i], &policy, &beacon, &mut rng, now)?);
//!             }
//!             msg => {
//!                 let Some(c) = clients[i].as_mut() else { continue };
//!                 c.handle(msg, now)?;
//!                 if c.phase() == ClientPhase::AwaitingInput {
//!                     c.submit_input(vec![i as u32 + 1; 4])?; // the quantised update
//!                 }
//!             }
//!         }
//!     }
//!     for c in clients.iter_mut().flatten() {
//!         while let Some(msg) = c.poll_transmit() {
//!             server.handle(c.id(), msg, now)?;
//!         }
//!     }
//! }
//! let output = server.take_outcome().expect("finished")?;
//! assert_eq!(output.sum, vec![15, 15, 15, 15]);
//! assert_eq!(output.contributors.len(), 5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod client;
pub mod config;
pub mod graph;
pub mod keys;
pub mod merkle;
pub mod params;
pub mod phase;
pub mod policy;
pub mod server;
pub mod session;
pub mod shamir;
#[cfg(feature = "sim")]
pub mod sim;
pub mod wire;

pub use client::{Client, ClientError, ClientPhase};
pub use config::{ClientId, ConfigError, Participant, RoundConfig, TaskId};
pub use keys::{Identity, KeyError};
pub use params::{GraphParams, ParamError, ThreatModel};
pub use phase::Phase;
pub use policy::{ClientPolicy, PolicyError};
pub use server::{AbortError, RoundOutput, Server, ServerError};
pub use wire::{ClientMessage, FrameError, ServerMessage};
