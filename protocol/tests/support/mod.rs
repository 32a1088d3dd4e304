//! An in-memory round: one server and `n` clients wired through message queues, a fake clock,
//! and a script of who vanishes when. Every message crosses the wire format (encode, decode)
//! on its way, so the driver also exercises the framing.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flock_protocol::wire::{self, ClientMessage, ServerMessage};
use flock_protocol::{
    AbortError, Client, ClientId, ClientPhase, ClientPolicy, Identity, Participant, RoundConfig,
    RoundOutput, Server, TaskId, ThreatModel,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

/// When a client vanishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Drop {
    /// Never sends its advert.
    BeforeAdvert,
    /// Advertises, then never sends shares.
    BeforeShares,
    /// Shares, then never sends input.
    BeforeInput,
    /// Sends the first chunk of its input, then vanishes.
    MidInput,
    /// Sends its whole input and vanishes at once, while others may still be uploading
    /// (the transport notices within the masked-input phase).
    AfterInput,
    /// Sends its whole input, then never signs the survivor list.
    BeforeSignature,
    /// Signs the survivor list, then never answers the unmask request.
    BeforeUnmask,
}

impl Drop {
    pub const ALL: [Drop; 7] = [
        Drop::BeforeAdvert,
        Drop::BeforeShares,
        Drop::BeforeInput,
        Drop::MidInput,
        Drop::AfterInput,
        Drop::BeforeSignature,
        Drop::BeforeUnmask,
    ];

    /// Whether a client dropping here still has its input in the sum.
    pub fn contributes(self) -> bool {
        matches!(
            self,
            Drop::AfterInput | Drop::BeforeSignature | Drop::BeforeUnmask
        )
    }
}

/// The beacon of a test round made by [`config`] with this seed.
pub fn beacon(seed: u8) -> [u8; 32] {
    [seed ^ 0x55; 32]
}

/// Recomputes the graph seed of a configuration whose round or attempt a test changed, as an
/// honest server would (with the beacon [`Round::new`] gives its clients).
pub fn reseed(config: &mut RoundConfig) {
    config.graph_seed = flock_protocol::config::graph_seed(
        &config.task,
        config.round,
        config.attempt,
        &config.participants,
        &beacon(config.round as u8),
    );
}

/// A hook that rewrites a message in flight, given the client at the other end.
pub type Tamper<M> = Box<dyn FnMut(ClientId, &mut M)>;

pub struct Round {
    pub server: Server,
    pub clients: BTreeMap<ClientId, Client>,
    pub identities: Vec<Identity>,
    pub inputs: BTreeMap<ClientId, Vec<u32>>,
    pub drops: BTreeMap<ClientId, Drop>,
    /// Whether the transport notices a drop at once (`client_lost`) or the server must wait
    /// for the phase deadline.
    pub notice_drops: bool,
    /// Deliver each client's masked chunks last-first (streams overtaking each other).
    pub reverse_chunks: bool,
    pub now: Instant,
    /// Rewrites what the server sends (a malicious server).
    pub tamper_server: Option<Tamper<ServerMessage>>,
    /// Rewrites what a client sends (a malicious client).
    pub tamper_client: Option<Tamper<ClientMessage>>,
    /// What each client's `handle` returned, in order.
    pub client_errors: BTreeMap<ClientId, Vec<flock_protocol::ClientError>>,
    /// What the server's `handle` refused, in order.
    pub server_errors: Vec<flock_protocol::ServerError>,
    /// The clients' policy: by default the round's own threat model and size as floors, so
    /// that any derived configuration passes; tests of the policy set their own.
    pub policy: ClientPolicy,
    /// The beacon the clients recompute the graph seed from.
    pub beacon: [u8; 32],
    rng: ChaCha20Rng,
    chunks_sent: BTreeMap<ClientId, usize>,
}

pub fn participants(identities: &[Identity]) -> Vec<Participant> {
    identities
        .iter()
        .enumerate()
        .map(|(i, id)| Participant {
            id: ClientId(i as u64 * 7 + 3),
            identity: id.public(),
        })
        .collect()
}

pub fn identities(n: usize, seed: u8) -> Vec<Identity> {
    (0..n)
        .map(|i| {
            let mut s = [seed; 32];
            s[..8].copy_from_slice(&(i as u64).to_le_bytes());
            Identity::from_secret_bytes(&s)
        })
        .collect()
}

/// A round of `n` clients with parameters derived for the default threat model (10 %
/// dropout); two or three clients cannot survive a dropout, so they get a model without one.
pub fn config(n: usize, d: u32, seed: u8) -> (RoundConfig, Vec<Identity>) {
    let threat = if n >= 4 {
        ThreatModel::default()
    } else {
        ThreatModel {
            dropout_ppm: 0,
            ..ThreatModel::default()
        }
    };
    config_for(n, d, seed, threat).unwrap()
}

/// A round of `n` clients over `d` words with parameters derived for `threat` (round, task and
/// beacon from `seed`), or why the parameter rules give none.
pub fn config_for(
    n: usize,
    d: u32,
    seed: u8,
    threat: ThreatModel,
) -> Result<(RoundConfig, Vec<Identity>), flock_protocol::ConfigError> {
    let ids = identities(n, seed);
    let config = RoundConfig::derive(
        TaskId([seed; 32]),
        u64::from(seed),
        0,
        participants(&ids),
        threat,
        beacon(seed),
        d,
        1.0,
        10_000,
    )?;
    Ok((config, ids))
}

impl Round {
    /// A round over `config`, each client with a random input of `config.bits` bits.
    pub fn new(config: RoundConfig, identities: Vec<Identity>, seed: u64) -> Self {
        let now = Instant::now();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let max = config.quant_params().unwrap().max_level();
        let inputs = config
            .participants
            .iter()
            .map(|p| {
                let v = (0..config.vector_len)
                    .map(|_| rng.next_u32() & max)
                    .collect();
                (p.id, v)
            })
            .collect();
        Self {
            server: Server::new(config.clone(), now).unwrap(),
            clients: BTreeMap::new(),
            identities,
            inputs,
            drops: BTreeMap::new(),
            notice_drops: true,
            now,
            tamper_server: None,
            tamper_client: None,
            client_errors: BTreeMap::new(),
            server_errors: Vec::new(),
            policy: ClientPolicy {
                min_participants: 2,
                min_contributors: 1,
                floor: config.threat,
                ..ClientPolicy::default()
            },
            beacon: beacon(config.round as u8),
            rng,
            chunks_sent: BTreeMap::new(),
            reverse_chunks: false,
        }
    }

    /// Runs the round to its end (bounded) and returns the server's outcome.
    pub fn run(&mut self) -> Result<RoundOutput, AbortError> {
        for _ in 0..10_000 {
            if let Some(outcome) = self.server.outcome().cloned() {
                // Let the clients see the final message.
                self.pump_server();
                return outcome;
            }
            let moved = self.pump_server() | self.pump_clients();
            if !moved {
                self.now = self
                    .server
                    .poll_timeout()
                    .expect("a running server has a deadline")
                    + Duration::from_millis(1);
                self.server.handle_timeout(self.now);
            }
        }
        panic!("the round did not end");
    }

    fn pump_server(&mut self) -> bool {
        let mut moved = false;
        while let Some((to, msg)) = self.server.poll_transmit() {
            moved = true;
            let mut msg: ServerMessage = wire::decode(&wire::encode(&msg).unwrap()).unwrap();
            if let Some(tamper) = self.tamper_server.as_mut() {
                tamper(to, &mut msg);
            }
            match msg {
                ServerMessage::Start(config) => {
                    let i = config.index_of(to).unwrap() as usize;
                    match Client::new(
                        config,
                        to,
                        &self.identities[i],
                        &self.policy,
                        &self.beacon,
                        &mut self.rng,
                        self.now,
                    ) {
                        Ok(client) => {
                            self.clients.insert(to, client);
                        }
                        Err(e) => self.client_errors.entry(to).or_default().push(e),
                    }
                }
                msg => {
                    if let Some(c) = self.clients.get_mut(&to) {
                        if let Err(e) = c.handle(msg, self.now) {
                            self.client_errors.entry(to).or_default().push(e);
                        }
                        if c.phase() == ClientPhase::AwaitingInput
                            && self.drops.get(&to) != Some(&Drop::BeforeInput)
                        {
                            c.submit_input(self.inputs[&to].clone()).unwrap();
                        }
                    }
                }
            }
        }
        moved
    }

    fn pump_clients(&mut self) -> bool {
        let mut moved = false;
        let ids: Vec<ClientId> = self.clients.keys().copied().collect();
        for id in ids {
            if self.reverse_chunks
                && let Some(c) = self.clients.get_mut(&id)
            {
                let mut out: Vec<ClientMessage> =
                    std::iter::from_fn(|| c.poll_transmit()).collect();
                if out
                    .iter()
                    .all(|m| matches!(m, ClientMessage::MaskedChunk(_)))
                {
                    out.reverse();
                }
                for msg in out {
                    if let Err(e) = self.server.handle(id, msg, self.now) {
                        self.server_errors.push(e);
                    }
                    moved = true;
                }
                continue;
            }
            while let Some(msg) = self.clients.get_mut(&id).and_then(Client::poll_transmit) {
                if self.vanishes(id, &msg) {
                    self.clients.remove(&id);
                    if self.notice_drops {
                        self.server.client_lost(id, self.now);
                    }
                    moved = true;
                    break;
                }
                let mut msg: ClientMessage = wire::decode(&wire::encode(&msg).unwrap()).unwrap();
                if let Some(tamper) = self.tamper_client.as_mut() {
                    tamper(id, &mut msg);
                }
                let last_chunk = matches!(&msg, ClientMessage::MaskedChunk(c)
                    if c.offset as usize + c.words.len() / 4 == c.total as usize);
                if let Err(e) = self.server.handle(id, msg, self.now) {
                    self.server_errors.push(e);
                }
                moved = true;
                if last_chunk && self.drops.get(&id) == Some(&Drop::AfterInput) {
                    self.clients.remove(&id);
                    if self.notice_drops {
                        self.server.client_lost(id, self.now);
                    }
                    break;
                }
            }
        }
        moved
    }

    fn vanishes(&mut self, id: ClientId, msg: &ClientMessage) -> bool {
        let Some(&drop) = self.drops.get(&id) else {
            return false;
        };
        match (drop, msg) {
            (Drop::BeforeAdvert, ClientMessage::Advert(_)) => true,
            (Drop::BeforeShares, ClientMessage::Shares(_)) => true,
            (Drop::MidInput, ClientMessage::MaskedChunk(_)) => {
                let sent = self.chunks_sent.entry(id).or_default();
                *sent += 1;
                *sent > 1
            }
            (Drop::BeforeSignature, ClientMessage::Survivors(_)) => true,
            (Drop::BeforeUnmask, ClientMessage::Unmask(_)) => true,
            _ => false,
        }
    }

    /// The plain sum of the inputs of `contributors`.
    pub fn plain_sum(&self, contributors: &[ClientId]) -> Vec<u32> {
        let d = self.server.config().vector_len as usize;
        let mut sum = vec![0u32; d];
        for id in contributors {
            edge_kernels::add_assign_mod(&mut sum, &self.inputs[id]).unwrap();
        }
        sum
    }
}
