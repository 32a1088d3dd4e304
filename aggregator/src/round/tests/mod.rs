//! The round machine in memory, with a fake clock and agents played by the protocol's own
//! SecAgg+ clients (`World`): local rounds (`local`: end to end, the stored model the clear
//! FedAvg of the inputs bit for bit; the gather window; a sum that gives no model) and the
//! event orders of rounds on chain (`chain`: candidate then vote; accepted, rejected, void; a
//! `prev` that is not the machine's model; too few proposers connected; a repeated question).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod chain;
mod local;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use edge_kernels::{QuantParams, RoundingStream};
use flock_chain::Outcome;
use flock_model::{ModelId, ModelSpec, Params};
use flock_protocol::session::{AgentMessage, AggregatorMessage};
use flock_protocol::wire::ClientMessage;
use flock_protocol::{Client, ClientId, ClientPhase, Identity, Participant, RoundConfig, TaskId};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

use super::{Event, Governance, Restored, RoundMachine, RoundSummary};
use crate::config::Config;
use crate::mailbox::{Candidate, ChainInput, Input};
use crate::metrics::Metrics;
use crate::optimizer::ServerOptimizer;
use crate::store::TaskState;

const CLIP: f32 = 2.0;
const CAP: u64 = 100;

fn config(min: u32, max: u32, gather_ms: u64, optimizer: &str) -> Config {
    let text = format!(
        r#"
[task]
name = "machine"
rounds = 3
seed = 5
[model]
kind = "mlp"
inputs = 3
hidden = [4]
classes = 2
[cohort]
min = {min}
max = {max}
gather_ms = {gather_ms}
sample_cap = {CAP}
[secagg]
dropout = 0.1
clip_norm = {CLIP}
phase_timeout_ms = 1000
[server]
listen = "127.0.0.1:0"
ca = "ca.pem"
cert = "a.pem"
key = "a.key"
store = "store"
{optimizer}
"#
    );
    toml::from_str(&text).unwrap()
}

fn spec() -> ModelSpec {
    ModelSpec::Mlp {
        inputs: 3,
        hidden: vec![4],
        classes: 2,
    }
}

/// The seed the test chain draws for `round`: the agents use it as the graph seed's beacon on
/// chain (as the agent reads it from the chain), so a machine that used any other would see
/// every device refuse the round.
fn chain_seed(round: u64) -> [u8; 32] {
    let mut seed = [0xC5; 32];
    seed[..8].copy_from_slice(&round.to_le_bytes());
    seed
}

/// What a hostile (or broken) device does to its next input, once.
#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// Its weight coordinate is this value (the device claims weight `value / C`).
    Weight(f32),
    /// Every coordinate of its update at the range's edge `C`, at weight 1.
    Unclipped,
    /// Its first masked word moved up by 2^31 − 1, past its client's checks (out of range for
    /// any honest sum of the few devices these tests use).
    WordAbove,
}

/// Which of its next share ciphertexts a hostile device garbles (and signs as its own), once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Garble {
    /// The first: one neighbour refuses it.
    One,
    /// Every one: no neighbour holds its shares.
    All,
}

/// One simulated agent: its identity, its update, and its SecAgg+ client of the attempt.
struct Agent {
    identity: Identity,
    delta: Vec<f32>,
    samples: u64,
    /// What it does to its next vector (a broken or hostile device).
    hostile: Option<Hostile>,
    /// Adds 2^31 − 1 to the first word of its next masked input, after masking (its own
    /// client would refuse an out-of-range input).
    raise_first_word: bool,
    /// Garbles its next share upload.
    garble: Option<Garble>,
    /// Goes silent once its client reaches this phase (after sending what got it there).
    vanish: Option<ClientPhase>,
    /// The attempt in which it went silent.
    gone: Option<u64>,
    client: Option<(u64, Client)>,
    /// The quantised, unmasked input it submitted, by round.
    inputs: BTreeMap<u64, Vec<u32>>,
    round_done: Vec<(u64, ModelId, Vec<ClientId>)>,
}

/// The machine, its agents, a fake clock and what the machine asked for.
struct World {
    machine: RoundMachine,
    agents: BTreeMap<ClientId, Agent>,
    now: Instant,
    persisted: Vec<(Vec<ModelId>, Option<TaskState>)>,
    candidates: Vec<(u64, Option<Candidate>)>,
    /// `Round` announcements seen: (round, attempt, participants).
    starts: Vec<(u64, u64, usize)>,
    /// For each `RoundDone` seen, whether a state of that round had been persisted before.
    done_after_persist: Vec<bool>,
    metrics: Arc<Metrics>,
    rng: ChaCha20Rng,
}

impl World {
    fn new(config: Config, governance: Governance, agents: usize) -> Self {
        let global = Params::init(&spec(), 5).unwrap();
        let (_, id) = flock_model::file::encode(&global).unwrap();
        let state = TaskState {
            task: "machine".into(),
            round: 0,
            model: id,
            moments: None,
        };
        let metrics = Arc::new(Metrics::new("machine", 3));
        let restored = Restored {
            state,
            global: global.clone(),
            moments: None,
        };
        let machine = RoundMachine::new(config, restored, governance, metrics.clone()).unwrap();
        let n = global.len();
        let agents = (0..agents)
            .map(|i| {
                let identity = Identity::from_secret_bytes(&[i as u8 + 1; 32]);
                let id = ClientId::from_identity(&identity.public());
                let delta = (0..n)
                    .map(|j| ((i * 31 + j * 7) % 13) as f32 / 40.0 - 0.15)
                    .collect();
                let agent = Agent {
                    identity,
                    delta,
                    samples: 40 + 25 * i as u64,
                    hostile: None,
                    raise_first_word: false,
                    garble: None,
                    vanish: None,
                    gone: None,
                    client: None,
                    inputs: BTreeMap::new(),
                    round_done: Vec::new(),
                };
                (id, agent)
            })
            .collect();
        Self {
            machine,
            agents,
            now: Instant::now(),
            persisted: Vec::new(),
            candidates: Vec::new(),
            starts: Vec::new(),
            done_after_persist: Vec::new(),
            metrics,
            rng: ChaCha20Rng::seed_from_u64(1),
        }
    }

    fn ids(&self) -> Vec<ClientId> {
        self.agents.keys().copied().collect()
    }

    fn participants(&self) -> Vec<Participant> {
        self.agents
            .iter()
            .map(|(id, a)| Participant {
                id: *id,
                identity: a.identity.public(),
            })
            .collect()
    }

    /// Connects every agent and says hello for the task.
    fn join_all(&mut self) {
        for id in self.ids() {
            self.join(id);
        }
    }

    fn join(&mut self, client: ClientId) {
        let identity = self.agents[&client].identity.public();
        self.input(Input::Joined { client, identity });
        let hello = AgentMessage::Hello {
            task: TaskId::from_name("machine"),
            last_round: None,
        };
        self.input(Input::Message { client, msg: hello });
    }

    fn input(&mut self, input: Input) {
        self.machine.handle(input, self.now).unwrap();
        self.settle();
    }

    /// The chain drew every agent as a proposer of `round`, from `prev`.
    fn train(&mut self, round: u64, prev: ModelId) {
        let proposers = self.participants();
        self.chain(ChainInput::Train {
            round,
            proposers,
            prev,
            seed: chain_seed(round),
        });
    }

    fn chain(&mut self, input: ChainInput) {
        self.machine.handle_chain(input, self.now).unwrap();
        self.settle();
    }

    /// Moves the clock to the machine's next deadline and handles it.
    fn tick(&mut self) {
        let at = self.machine.poll_timeout().expect("a deadline");
        self.now = self.now.max(at);
        self.machine.handle_timeout(self.now).unwrap();
        self.settle();
    }

    /// Delivers everything queued, both ways, until nothing moves.
    fn settle(&mut self) {
        loop {
            while let Some(e) = self.machine.poll_event() {
                match e {
                    Event::Persist { models, state } => self
                        .persisted
                        .push((models.iter().map(|m| m.id).collect(), state)),
                    Event::Candidate { round, candidate } => {
                        self.candidates.push((round, candidate));
                    }
                }
            }
            let mut replies = Vec::new();
            while let Some((to, msg)) = self.machine.poll_transmit() {
                replies.extend(self.deliver(to, msg));
            }
            if replies.is_empty() {
                return;
            }
            for (client, msg) in replies {
                self.machine
                    .handle(Input::Message { client, msg }, self.now)
                    .unwrap();
            }
        }
    }

    /// What agent `to` does with `msg`; returns what it sends back.
    fn deliver(&mut self, to: ClientId, msg: AggregatorMessage) -> Vec<(ClientId, AgentMessage)> {
        let now = self.now;
        let on_chain = matches!(self.machine.governance, Governance::Chain { .. });
        let persisted_rounds: Vec<u64> = self
            .persisted
            .iter()
            .filter_map(|(_, s)| s.as_ref().map(|s| s.round))
            .collect();
        let Some(agent) = self.agents.get_mut(&to) else {
            return Vec::new();
        };
        match msg {
            AggregatorMessage::Round {
                attempt,
                config,
                sample_cap,
                ..
            } => {
                let start = (config.round, attempt, config.participants.len());
                if !self.starts.contains(&start) {
                    self.starts.push(start);
                }
                let round = config.round;
                let input = agent.quantise(&config, sample_cap, &mut self.rng);
                agent.inputs.insert(round, input);
                let beacon = if on_chain {
                    chain_seed(round)
                } else {
                    flock_protocol::config::OFF_CHAIN_BEACON
                };
                let client = Client::new(
                    config,
                    to,
                    &agent.identity,
                    &flock_protocol::ClientPolicy::default(),
                    &beacon,
                    &mut self.rng,
                    now,
                )
                .unwrap();
                agent.client = Some((attempt, client));
            }
            AggregatorMessage::Secagg { attempt, .. } if agent.gone == Some(attempt) => {
                return Vec::new();
            }
            AggregatorMessage::Secagg { attempt, msg } => {
                if let Some((a, client)) = &mut agent.client
                    && *a == attempt
                {
                    // A client may abort (its neighbours vanished): it then sends nothing.
                    let _ = client.handle(msg, now);
                }
            }
            AggregatorMessage::RoundDone {
                round,
                model,
                contributors,
                ..
            } => {
                self.done_after_persist
                    .push(persisted_rounds.contains(&round));
                agent.round_done.push((round, ModelId(model), contributors));
            }
            _ => {}
        }
        let mut out = Vec::new();
        if let Some((attempt, client)) = &mut agent.client {
            if client.phase() == ClientPhase::AwaitingInput {
                let round = client.config().round;
                client.submit_input(agent.inputs[&round].clone()).unwrap();
            }
            while let Some(mut msg) = client.poll_transmit() {
                if let ClientMessage::Shares(upload) = &mut msg
                    && let Some(garble) = agent.garble.take()
                {
                    let count = if garble == Garble::All {
                        upload.shares.len()
                    } else {
                        1
                    };
                    for s in upload.shares.iter_mut().take(count) {
                        s.ciphertext[0] ^= 1;
                    }
                    upload.signature = agent
                        .identity
                        .sign_shares(&client.config().digest(), upload);
                }
                if let ClientMessage::MaskedChunk(c) = &mut msg
                    && c.offset == 0
                    && agent.raise_first_word
                    && let Some(first) = c.words.first_chunk_mut::<4>()
                {
                    agent.raise_first_word = false;
                    let w = u32::from_le_bytes(*first).wrapping_add(i32::MAX as u32);
                    *first = w.to_le_bytes();
                }
                out.push((
                    to,
                    AgentMessage::Secagg {
                        attempt: *attempt,
                        msg,
                    },
                ));
            }
            if agent.vanish.is_some_and(|p| p == client.phase()) {
                agent.vanish = None;
                agent.gone = Some(*attempt);
            }
        }
        out
    }
}

impl Agent {
    /// Its contributed vector for `config`'s round, quantised.
    fn quantise(&mut self, config: &RoundConfig, cap: u64, rng: &mut ChaCha20Rng) -> Vec<u32> {
        use rand_chacha::rand_core::Rng;
        let mut values =
            flock_model::contribution::encode(self.delta.clone(), self.samples, cap, CLIP);
        let hostile = self.hostile.take();
        match (hostile, values.split_last_mut()) {
            (Some(Hostile::Weight(w)), Some((last, _))) => *last = w,
            (Some(Hostile::Unclipped), Some((last, body))) => {
                body.fill(CLIP);
                *last = CLIP;
            }
            _ => {}
        }
        let params = config.quant_params().unwrap();
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let mut out = vec![0u32; values.len()];
        edge_kernels::quantise(
            &values,
            &params,
            &RoundingStream { seed, stream: 0 },
            &mut out,
        )
        .unwrap();
        if let Some(Hostile::WordAbove) = hostile {
            self.raise_first_word = true;
        }
        out
    }
}

/// The model after `global` from the clear sum of the inputs `summary` names, of its round.
fn clear_fedavg(
    world: &World,
    summary: &RoundSummary,
    global: &Params,
    optimizer: &ServerOptimizer,
) -> Params {
    let mut sum = vec![0u32; global.len() + 1];
    for id in &summary.contributors {
        for (s, w) in sum.iter_mut().zip(&world.agents[id].inputs[&summary.round]) {
            *s = s.wrapping_add(*w);
        }
    }
    let quant = QuantParams::new(summary.bits, CLIP).unwrap();
    let mean =
        edge_kernels::dequantise_mean(&sum, summary.contributors.len() as u64, &quant).unwrap();
    let bounds = flock_model::contribution::Bounds {
        clip: CLIP,
        sample_cap: CAP,
        resolution: quant.resolution(),
    };
    let update = flock_model::contribution::decode(&mean, &bounds).unwrap();
    optimizer.step(global, &update, None).unwrap().0
}

fn bits_of(p: &Params) -> Vec<u32> {
    p.values().iter().map(|x| x.to_bits()).collect()
}
