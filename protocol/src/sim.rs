//! A whole SecAgg+ round in memory, for benchmarks (feature `sim`): `n` real clients and the
//! server in one thread, messages handed over directly, clients scripted to drop at a phase,
//! and the per-phase costs of one client and of the server beside their floors (the keystreams
//! and the modular sum they cannot avoid). `cargo bench -p flock-protocol --bench secagg` and
//! `flock-bench` print what it measures.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use edge_kernels::{Mask, Sign, add_assign_mod, apply_masks};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::wire::{ClientMessage, ServerMessage};
use crate::{
    AbortError, Client, ClientId, ClientPhase, ClientPolicy, Identity, Participant, RoundConfig,
    RoundOutput, Server, TaskId, ThreatModel,
};

/// The beacon of every simulated round (the graph seed is derived from it).
pub const BEACON: [u8; 32] = [2; 32];

/// Why a simulated round could not be run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The protocol refused a step of the script (configuration, client, server).
    #[error("{0}")]
    Protocol(String),
    /// The round made no progress within its step budget.
    #[error("the round did not end")]
    Stuck,
}

fn protocol(e: impl std::fmt::Display) -> SimError {
    SimError::Protocol(e.to_string())
}

/// `n` distinct, deterministic identities.
pub fn identities(n: usize) -> Vec<Identity> {
    (0..n)
        .map(|i| {
            let mut s = [0x42u8; 32];
            s[..8].copy_from_slice(&(i as u64).to_le_bytes());
            Identity::from_secret_bytes(&s)
        })
        .collect()
}

/// A round of `ids` (client `i` has id `i`) over `d` words under `threat`.
pub fn make_config(ids: &[Identity], d: u32, threat: ThreatModel) -> Result<RoundConfig, SimError> {
    let participants = ids
        .iter()
        .enumerate()
        .map(|(i, id)| Participant {
            id: ClientId(i as u64),
            identity: id.public(),
        })
        .collect();
    RoundConfig::derive(
        TaskId([1; 32]),
        1,
        0,
        participants,
        threat,
        BEACON,
        d,
        1.0,
        600_000,
    )
    .map_err(protocol)
}

/// Client `i`'s quantised update: cheap pseudo-random words (an integer hash), so that making
/// test data costs next to nothing beside the protocol.
pub fn input(i: usize, d: u32, bits: u32) -> Vec<u32> {
    let max = u32::MAX >> (32 - bits);
    let salt = (i as u32).wrapping_mul(0x9E37_79B9);
    (0..d)
        .map(|j| (j.wrapping_mul(0x85EB_CA6B) ^ salt).rotate_left(13) & max)
        .collect()
}

/// Drives a round with real clients. `drops` picks clients that vanish at a phase;
/// `real_masking` decides whether a client's input is really masked (or zeros are sent
/// unmasked, for server timing only).
pub struct Driver {
    /// The server.
    pub server: Server,
    /// The clients still in the round.
    pub clients: BTreeMap<ClientId, Client>,
    ids: Vec<Identity>,
    rng: ChaCha20Rng,
    /// The simulated clock.
    pub now: Instant,
    /// Clients that vanish when the server next speaks to them in the given phase.
    pub drops: BTreeMap<ClientId, ClientPhase>,
    real_masking: fn(ClientId) -> bool,
    /// Time spent in the server handling clients' messages inside the driver.
    pub server_time: Duration,
    /// The plain sum of the real inputs (`None` once a client sent zeros unmasked).
    pub plain: Option<Vec<u32>>,
}

impl Driver {
    /// A round of `config` between `ids` (client `i` has id `i`).
    pub fn new(
        config: RoundConfig,
        ids: Vec<Identity>,
        real_masking: fn(ClientId) -> bool,
    ) -> Result<Self, SimError> {
        let plain = Some(vec![0u32; config.vector_len as usize]);
        Ok(Self {
            server: Server::new(config, Instant::now()).map_err(protocol)?,
            clients: BTreeMap::new(),
            ids,
            rng: ChaCha20Rng::seed_from_u64(7),
            now: Instant::now(),
            drops: BTreeMap::new(),
            real_masking,
            server_time: Duration::ZERO,
            plain,
        })
    }

    /// Runs the round to its outcome.
    pub fn run(&mut self) -> Result<Result<RoundOutput, AbortError>, SimError> {
        for _ in 0..1000 {
            if let Some(o) = self.server.take_outcome() {
                return Ok(o);
            }
            let mut moved = false;
            while let Some((to, msg)) = self.server.poll_transmit() {
                moved = true;
                self.deliver(to, msg)?;
            }
            let ids: Vec<ClientId> = self.clients.keys().copied().collect();
            for id in ids {
                while let Some(msg) = self.clients.get_mut(&id).and_then(Client::poll_transmit) {
                    moved = true;
                    let t0 = Instant::now();
                    let _ = self.server.handle(id, msg, self.now);
                    self.server_time += t0.elapsed();
                }
            }
            if !moved {
                self.now =
                    self.server.poll_timeout().ok_or(SimError::Stuck)? + Duration::from_millis(1);
                self.server.handle_timeout(self.now);
            }
        }
        Err(SimError::Stuck)
    }

    /// Hands `msg` to client `to` (creating it on `Start`), dropping it if scripted to.
    pub fn deliver(&mut self, to: ClientId, msg: ServerMessage) -> Result<(), SimError> {
        if let ServerMessage::Start(config) = msg {
            let identity = self
                .ids
                .get(to.0 as usize)
                .ok_or_else(|| SimError::Protocol(format!("no identity for {to}")))?;
            // The benchmark picks the round's shape (Flower's k = 3, t = 2 included): the
            // simulated devices take the round's own parameters as their floors.
            let policy = ClientPolicy {
                min_participants: 2,
                min_contributors: 1,
                floor: config.threat,
                ..ClientPolicy::default()
            };
            let c = Client::new(
                config,
                to,
                identity,
                &policy,
                &BEACON,
                &mut self.rng,
                self.now,
            )
            .map_err(protocol)?;
            self.clients.insert(to, c);
            return Ok(());
        }
        let Some(c) = self.clients.get_mut(&to) else {
            return Ok(());
        };
        // A client scripted to drop in its current phase vanishes when the server next
        // speaks to it: after its advert, after its shares, or after its input.
        if self.drops.get(&to) == Some(&c.phase()) {
            self.clients.remove(&to);
            let t0 = Instant::now();
            self.server.client_lost(to, self.now);
            self.server_time += t0.elapsed();
            return Ok(());
        }
        let _ = c.handle(msg, self.now);
        if c.phase() == ClientPhase::AwaitingInput {
            let d = c.config().vector_len;
            if (self.real_masking)(to) {
                let bits = c.config().bits;
                let q = input(to.0 as usize, d, bits);
                if let Some(p) = self.plain.as_mut() {
                    add_assign_mod(p, &q).map_err(protocol)?;
                }
                c.submit_input(q).map_err(protocol)?;
            } else {
                self.plain = None;
                c.submit_masked_input(vec![0; d as usize])
                    .map_err(protocol)?;
            }
            // Each device sends as soon as it has masked: the process never holds more than
            // one client's vector in flight.
            while let Some(m) = c.poll_transmit() {
                let t0 = Instant::now();
                let _ = self.server.handle(to, m, self.now);
                self.server_time += t0.elapsed();
            }
        }
        Ok(())
    }
}

/// What one client and the server spend per phase in a round of `n` over `d` words, 10 % of
/// the clients dropping before their input, beside the floors measured in the same run.
#[derive(Clone, Debug)]
pub struct PhaseCosts {
    /// Clients.
    pub n: usize,
    /// Words per vector.
    pub d: u32,
    /// Neighbours per client.
    pub k: u32,
    /// Shamir threshold.
    pub t: u32,
    /// Signatures on the survivor list a client needs before it reveals anything.
    pub quorum: u32,
    /// Client 0's time per phase: "advertise", "share keys", "open shares", "mask input",
    /// "sign survivors", "unmask reply" (which verifies the quorum's signatures).
    pub client: BTreeMap<&'static str, Duration>,
    /// One client's floor: k + 1 keystreams of d words.
    pub client_floor: Duration,
    /// The server's time for the masked inputs, the survivors' signatures, the unmask replies
    /// and the unmasking.
    pub server: Duration,
    /// The part of `server` spent on the consistency check: checking the survivors' signatures
    /// and sending them on.
    pub server_consistency: Duration,
    /// The server's floor: a keystream per survivor and k per dropped client, plus the modular
    /// sum of the survivors' vectors.
    pub server_floor: Duration,
}

/// Measures [`PhaseCosts`] for `n` clients and `d` words.
pub fn phase_costs(n: usize, d: u32) -> Result<PhaseCosts, SimError> {
    let ids = identities(n);
    let config = make_config(&ids, d, ThreatModel::default())?;
    let (k, t, quorum) = (config.degree, config.threshold, config.consistency_quorum());
    let me = ClientId(0);
    let now = Instant::now();
    let mut rng = ChaCha20Rng::seed_from_u64(1);

    // Client 0's phases, timed one by one against a real round of the others.
    let mut timings = BTreeMap::new();
    let t0 = Instant::now();
    let policy = ClientPolicy::default();
    let mut probe = Client::new(config.clone(), me, &ids[0], &policy, &BEACON, &mut rng, now)
        .map_err(protocol)?;
    timings.insert("advertise", t0.elapsed());
    let mut driver = Driver::new(config.clone(), identities(n), |id| id == ClientId(0))?;
    for i in (1..n).step_by(10) {
        driver
            .drops
            .insert(ClientId(i as u64), ClientPhase::AwaitingShares);
    }
    // Replace the driver's client 0 with the probe as soon as the round starts.
    while let Some((to, msg)) = driver.server.poll_transmit() {
        driver.deliver(to, msg)?;
    }
    driver.clients.insert(me, probe);
    let mut server_time = Duration::ZERO;
    let mut server_consistency = Duration::ZERO;
    for _ in 0..1000 {
        if driver.server.outcome().is_some() {
            break;
        }
        let mut moved = false;
        while let Some((to, msg)) = driver.server.poll_transmit() {
            moved = true;
            if to != me {
                driver.deliver(to, msg)?;
                continue;
            }
            probe = driver.clients.remove(&me).ok_or(SimError::Stuck)?;
            let label = match &msg {
                ServerMessage::Adverts(_) => "share keys",
                ServerMessage::Shares(_) => "open shares",
                ServerMessage::Survivors(_) => "sign survivors",
                ServerMessage::UnmaskRequest(_) => "unmask reply",
                _ => "other",
            };
            let t0 = Instant::now();
            let _ = probe.handle(msg, driver.now);
            *timings.entry(label).or_insert(Duration::ZERO) += t0.elapsed();
            if probe.phase() == ClientPhase::AwaitingInput {
                let q = input(0, d, config.bits);
                let t0 = Instant::now();
                probe.submit_input(q).map_err(protocol)?;
                timings.insert("mask input", t0.elapsed());
            }
            driver.clients.insert(me, probe);
        }
        let ids_now: Vec<ClientId> = driver.clients.keys().copied().collect();
        for id in ids_now {
            while let Some(msg) = driver.clients.get_mut(&id).and_then(Client::poll_transmit) {
                moved = true;
                let is_data = matches!(
                    msg,
                    ClientMessage::MaskedChunk(_)
                        | ClientMessage::Survivors(_)
                        | ClientMessage::Unmask(_)
                );
                let signature = matches!(msg, ClientMessage::Survivors(_));
                let t0 = Instant::now();
                let _ = driver.server.handle(id, msg, driver.now);
                if is_data {
                    server_time += t0.elapsed();
                }
                if signature {
                    server_consistency += t0.elapsed();
                }
            }
        }
        if !moved {
            driver.now =
                driver.server.poll_timeout().ok_or(SimError::Stuck)? + Duration::from_millis(1);
            let t0 = Instant::now();
            driver.server.handle_timeout(driver.now);
            server_time += t0.elapsed();
        }
    }
    let out = driver
        .server
        .take_outcome()
        .ok_or(SimError::Stuck)?
        .map_err(protocol)?;
    // Chunks of the other clients went to the server inside the driver.
    let server = server_time + driver.server_time;
    let survivors = out.contributors.len();
    let dropped = n - survivors;

    // Floors, measured now on this machine.
    let masks: Vec<Mask> = (0..=k)
        .map(|i| Mask::new([i as u8; 32], 0, Sign::Add))
        .collect();
    let mut v = vec![0u32; d as usize];
    let t0 = Instant::now();
    apply_masks(&mut v, &masks);
    let client_floor = t0.elapsed();
    let one = Mask::new([9; 32], 0, Sign::Sub);
    let t0 = Instant::now();
    apply_masks(&mut v, std::slice::from_ref(&one));
    let keystream = t0.elapsed();
    let w = vec![1u32; d as usize];
    let t0 = Instant::now();
    for _ in 0..survivors {
        add_assign_mod(&mut v, &w).map_err(protocol)?;
    }
    let sum = t0.elapsed();
    let server_floor = keystream * (survivors + dropped * k as usize) as u32 + sum;
    Ok(PhaseCosts {
        n,
        d,
        k,
        t,
        quorum,
        client: timings,
        client_floor,
        server,
        server_consistency,
        server_floor,
    })
}
