//! The agent's side of a session with the aggregator, as a sans-IO machine: the welcome and
//! the task's data, each round's announcement (its model checked against the chain and its
//! bytes against its id, fetched when not cached), the local update, the SecAgg+ client of the
//! attempt, the end of each round, and the voter's judging of a candidate.
//!
//! Input arrives through `handle_message`, `handle_timeout` and the `*_done` calls that report
//! what the driver did; output leaves through [`Session::poll_action`] (work for the driver:
//! load data, check a model on chain, read or keep a model file, train, evaluate, save the
//! state) and [`Session::poll_transmit`] (messages to the aggregator). Time and randomness are
//! arguments; it does no I/O and spawns nothing (`driver` does both). Drain actions before
//! transmits after each input.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use flock_model::task::{TaskInfo, TrainConfig};
use flock_model::{ModelId, Params};
use flock_protocol::config::OFF_CHAIN_BEACON;
use flock_protocol::session::{AgentMessage, AggregatorMessage};
use flock_protocol::wire::ServerMessage;
use flock_protocol::{Client, ClientId, ClientPhase, ClientPolicy, Identity, RoundConfig, TaskId};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use tracing::{error, info, warn};

mod fetch;
mod judging;

#[cfg(feature = "test-hooks")]
use super::builder::Tamper;
use super::chain_side::RoundRoles;
use super::input::{Masker, PendingInput};
use super::models::Download;
use super::state::{Pledge, PledgeStage};
use super::{AgentError, AgentState, RoundReport};
use crate::data::Dataset;
use crate::train::LocalUpdate;

/// SecAgg+ messages of an attempt kept while this agent is still training for it.
const EARLY_MESSAGES: usize = 64;

/// A task's data, split and scaled, once the welcome has come.
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    /// What the aggregator said about the task.
    pub info: TaskInfo,
    /// The training split.
    pub train: Arc<Dataset>,
    /// Held out: what this agent judges candidates on as a voter.
    pub val: Arc<Dataset>,
}

/// Work for the driver; each ends with the matching `*_done` call (or none).
#[derive(Debug)]
pub(crate) enum Action {
    /// Load and prepare this task's data; then [`Session::prepare_done`].
    Prepare(TaskInfo),
    /// Check that `id` is the chain's last accepted model and read the roles of `round` (a
    /// no-op off chain); then [`Session::check_done`].
    CheckRound {
        attempt: u64,
        round: u64,
        id: ModelId,
    },
    /// Look for model `id` in the cache; then [`Session::cache_done`].
    LoadModel { id: ModelId },
    /// Keep model `id`'s checked bytes in the cache.
    KeepModel { id: ModelId, bytes: Vec<u8> },
    /// Train from `global` on `data`; then [`Session::train_done`].
    Train {
        attempt: u64,
        global: Params,
        data: Arc<Dataset>,
        training: TrainConfig,
    },
    /// Evaluate both models on `data` and answer voter request `request`.
    Evaluate {
        request: u64,
        round: u64,
        models: [Params; 2],
        data: Arc<Dataset>,
    },
    /// Answer voter request `request` with an error.
    Unjudged { request: u64, reason: String },
    /// Save [`Session::state`].
    SaveState,
    /// A round ended: tell the embedder.
    RoundDone(RoundReport),
    /// Test hook: keep the round's quantised, unmasked input.
    #[cfg(feature = "test-hooks")]
    Reveal { round: u64, words: Vec<u32> },
}

/// A round announced, before this agent's SecAgg+ client exists.
struct Offer {
    attempt: u64,
    config: RoundConfig,
    model: ModelId,
    sample_cap: u64,
    /// The graph seed's beacon: the chain's drawn seed, or zero off chain.
    beacon: [u8; 32],
    /// SecAgg+ messages of this attempt that came while this agent trained.
    early: Vec<ServerMessage>,
}

/// The SecAgg+ attempt this agent takes part in.
struct Active {
    /// The aggregator's attempt tag ([`AggregatorMessage::Round`]).
    attempt: u64,
    /// The round.
    number: u64,
    /// The attempt within the round ([`RoundConfig::attempt`]).
    config_attempt: u64,
    /// The model it trained from.
    model: ModelId,
    client: Client,
    input: Option<PendingInput>,
    samples: u64,
    train_seconds: f64,
}

/// Who waits for a model file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiter {
    Round(u64),
    Vote(u64),
}

/// A voter request waiting for its two models.
struct Judging {
    round: u64,
    ids: [ModelId; 2],
    found: [Option<Params>; 2],
}

/// The agent's session machine (one per agent; [`Session::connected`] starts each connection).
pub(crate) struct Session {
    client: ClientId,
    identity: Identity,
    task: TaskId,
    /// The device's floors for every round ([`flock_protocol::ClientPolicy`]).
    policy: ClientPolicy,
    masker: Masker,
    state: AgentState,
    prepared: Option<Prepared>,
    /// A round announced before the task's data was ready.
    early_round: Option<AggregatorMessage>,
    offer: Option<Offer>,
    active: Option<Active>,
    downloads: BTreeMap<ModelId, Download>,
    waiting: BTreeMap<ModelId, Vec<Waiter>>,
    judging: BTreeMap<u64, Judging>,
    complete: bool,
    transmits: VecDeque<AgentMessage>,
    actions: VecDeque<Action>,
    #[cfg(feature = "test-hooks")]
    vanish_at: Option<(u64, ClientPhase)>,
    #[cfg(feature = "test-hooks")]
    tamper: Option<Tamper>,
    #[cfg(feature = "test-hooks")]
    vanished: Option<u64>,
}

impl Session {
    /// A session for `identity` in task `task_name`, continuing from `state`, refusing rounds
    /// below `policy`.
    pub(crate) fn new(
        identity: Identity,
        task_name: &str,
        policy: ClientPolicy,
        state: AgentState,
        masker: Masker,
    ) -> Self {
        Self {
            client: ClientId::from_identity(&identity.public()),
            identity,
            task: TaskId::from_name(task_name),
            policy,
            masker,
            state,
            prepared: None,
            early_round: None,
            offer: None,
            active: None,
            downloads: BTreeMap::new(),
            waiting: BTreeMap::new(),
            judging: BTreeMap::new(),
            complete: false,
            transmits: VecDeque::new(),
            actions: VecDeque::new(),
            #[cfg(feature = "test-hooks")]
            vanish_at: None,
            #[cfg(feature = "test-hooks")]
            tamper: None,
            #[cfg(feature = "test-hooks")]
            vanished: None,
        }
    }

    /// Test hook: vanish once this agent's client of round `round` reaches `phase`.
    #[cfg(feature = "test-hooks")]
    pub(crate) fn vanish_at(&mut self, at: Option<(u64, ClientPhase)>) {
        self.vanish_at = at;
    }

    /// Test hook: rewrite each SecAgg+ message before it leaves (a hostile device).
    #[cfg(feature = "test-hooks")]
    pub(crate) fn tamper(&mut self, tamper: Option<Tamper>) {
        self.tamper = tamper;
    }

    /// This agent's id.
    pub(crate) fn client(&self) -> ClientId {
        self.client
    }

    /// What to persist.
    pub(crate) fn state(&self) -> &AgentState {
        &self.state
    }

    /// Whether the task is complete.
    pub(crate) fn is_complete(&self) -> bool {
        self.complete
    }

    /// The next piece of work for the driver.
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next message for the aggregator.
    pub(crate) fn poll_transmit(&mut self) -> Option<AgentMessage> {
        #[cfg_attr(not(feature = "test-hooks"), allow(unused_mut))]
        let mut msg = self.transmits.pop_front()?;
        #[cfg(feature = "test-hooks")]
        if let (Some(tamper), AgentMessage::Secagg { msg, .. }, Some(r)) =
            (&mut self.tamper, &mut msg, &self.active)
        {
            tamper(r.client.config(), msg);
        }
        Some(msg)
    }

    /// When [`Self::handle_timeout`] is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.active.as_ref().and_then(|r| r.client.poll_timeout())
    }

    /// A new connection: whatever the last one was doing is gone; say hello.
    pub(crate) fn connected(&mut self) {
        self.early_round = None;
        self.offer = None;
        self.active = None;
        self.downloads.clear();
        self.waiting.clear();
        for (request, _) in std::mem::take(&mut self.judging) {
            let reason = "the connection to the aggregator was lost".into();
            self.actions.push_back(Action::Unjudged { request, reason });
        }
        self.transmits.push_back(AgentMessage::Hello {
            task: self.task,
            last_round: self.state.last_round,
        });
    }

    /// Leaving the task (shutdown): the round is abandoned and the aggregator told.
    pub(crate) fn leave(&mut self) {
        self.offer = None;
        self.active = None;
        self.transmits.push_back(AgentMessage::Leave);
    }

    /// Time passed.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Result<(), AgentError> {
        if let Some(r) = &mut self.active {
            r.client.handle_timeout(now);
        }
        self.pump()
    }

    /// A message from the aggregator. An error ends the session (see
    /// [`AgentError::is_fatal`] for whether the agent reconnects).
    pub(crate) fn handle_message(
        &mut self,
        msg: AggregatorMessage,
        now: Instant,
    ) -> Result<(), AgentError> {
        match msg {
            AggregatorMessage::Welcome { client, task } => {
                if client != self.client {
                    return Err(AgentError::Aggregator(format!(
                        "the id {client}, but this agent is {}",
                        self.client
                    )));
                }
                let info: TaskInfo = serde_json::from_slice(&task).map_err(|e| {
                    AgentError::Aggregator(format!("a task description that does not parse: {e}"))
                })?;
                self.prepared = None;
                self.actions.push_back(Action::Prepare(info));
            }
            round @ AggregatorMessage::Round { .. } if self.prepared.is_none() => {
                // Streams may overtake each other: it is started once the data is ready.
                self.early_round = Some(round);
            }
            AggregatorMessage::Round {
                attempt,
                config,
                model,
                sample_cap,
            } => self.offered(attempt, config, ModelId(model), sample_cap),
            AggregatorMessage::ModelChunk {
                id,
                offset,
                total,
                bytes,
            } => self.chunk(ModelId(id), offset, total, &bytes)?,
            AggregatorMessage::Secagg { attempt, msg } => self.secagg(attempt, msg, now),
            AggregatorMessage::RoundDone {
                round,
                model,
                contributors,
                last,
            } => {
                self.round_done(round, ModelId(model), &contributors);
                if last {
                    info!(round, model = %ModelId(model), "task complete");
                    self.complete = true;
                }
            }
            AggregatorMessage::TaskComplete { round, model } => {
                info!(round, model = %ModelId(model), "task complete");
                self.state.last_round = Some(round);
                self.state.model = Some(ModelId(model).to_string());
                self.actions.push_back(Action::SaveState);
                self.complete = true;
            }
            AggregatorMessage::Refused(reason) => return Err(AgentError::Refused(reason)),
        }
        self.pump()
    }

    /// The task's data is ready (or could not be prepared: this device's fault, fatal).
    pub(crate) fn prepare_done(
        &mut self,
        prepared: Prepared,
        now: Instant,
    ) -> Result<(), AgentError> {
        let info = &prepared.info;
        info!(task = %info.name, model = %info.spec.describe(), samples = prepared.train.len(), held_out = prepared.val.len(), "task joined");
        self.prepared = Some(prepared);
        match self.early_round.take() {
            Some(round) => self.handle_message(round, now),
            None => Ok(()),
        }
    }

    fn offered(&mut self, attempt: u64, config: RoundConfig, model: ModelId, sample_cap: u64) {
        // A newer attempt replaces whatever this agent was doing for an older one.
        self.active = None;
        self.offer = None;
        // Refused before anything else: what the device has pledged.
        let pledged = self
            .state
            .pledge
            .as_ref()
            .and_then(|p| p.forbids(config.round, &model.to_string()));
        if let Some(reason) = pledged {
            self.refuse_round(config.round, &reason);
            return;
        }
        let round = config.round;
        self.offer = Some(Offer {
            attempt,
            config,
            model,
            sample_cap,
            beacon: OFF_CHAIN_BEACON,
            early: Vec::new(),
        });
        self.actions.push_back(Action::CheckRound {
            attempt,
            round,
            id: model,
        });
    }

    /// The chain's verdict on the model of `attempt`'s round and the roles it drew for it
    /// (`None` off chain); then the device's own floors, with the graph seed recomputed from
    /// the chain's seed.
    pub(crate) fn check_done(
        &mut self,
        attempt: u64,
        verdict: Result<Option<RoundRoles>, AgentError>,
    ) -> Result<(), AgentError> {
        let Some(offer) = self.offer.as_mut().filter(|o| o.attempt == attempt) else {
            return Ok(());
        };
        let (round, model) = (offer.config.round, offer.model);
        let roles = match verdict {
            Ok(roles) => roles,
            Err(AgentError::ModelRefused(reason) | AgentError::RoundRefused(reason)) => {
                self.refuse_round(round, &reason);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let me = self.identity.public();
        let refusal = match &roles {
            Some(roles) => not_the_chains_cohort(&offer.config, &me, roles),
            None => None,
        };
        offer.beacon = roles.map_or(OFF_CHAIN_BEACON, |r| r.seed);
        let refusal = refusal.or_else(|| {
            self.policy
                .check(&offer.config, &offer.beacon)
                .err()
                .map(|e| e.to_string())
        });
        match refusal {
            Some(reason) => self.refuse_round(round, &reason),
            None => self.need_model(model, Waiter::Round(attempt)),
        }
        Ok(())
    }

    fn refuse_round(&mut self, round: u64, reason: &str) {
        error!(round, "not training this round: {reason}");
        self.offer = None;
        self.state.last_refusal = Some(format!("round {round}: {reason}"));
        self.actions.push_back(Action::SaveState);
    }

    fn train(&mut self, attempt: u64, id: ModelId, global: Params) -> Result<(), AgentError> {
        let (Some(offer), Some(prepared)) = (
            self.offer.as_ref().filter(|o| o.attempt == attempt),
            &self.prepared,
        ) else {
            return Ok(());
        };
        if *global.spec() != prepared.info.spec {
            return Err(AgentError::Aggregator(format!(
                "model {id}, which is not a {}",
                prepared.info.spec.describe()
            )));
        }
        let training = TrainConfig {
            seed: prepared.info.training.seed.wrapping_add(offer.config.round),
            ..prepared.info.training.clone()
        };
        self.actions.push_back(Action::Train {
            attempt,
            global,
            data: prepared.train.clone(),
            training,
        });
        Ok(())
    }

    /// This agent's update for `attempt`, trained in `train_seconds`; `seed` is fresh
    /// randomness (the round's keys and the update's stochastic rounding come from it).
    pub(crate) fn train_done(
        &mut self,
        attempt: u64,
        update: LocalUpdate,
        train_seconds: f64,
        seed: [u8; 64],
        now: Instant,
    ) -> Result<(), AgentError> {
        let Some(offer) = self.offer.take_if(|o| o.attempt == attempt) else {
            return Ok(());
        };
        let (number, config_attempt) = (offer.config.round, offer.config.attempt);
        let (keys, rounding) = seed.split_at(32);
        let rounding: [u8; 32] = rounding.try_into().unwrap_or_default();
        let input = PendingInput::new(
            &offer.config,
            update.delta,
            update.samples,
            offer.sample_cap,
            rounding,
        )?;
        #[cfg(feature = "test-hooks")]
        self.actions.push_back(Action::Reveal {
            round: number,
            words: input.quantised()?,
        });
        let mut rng = ChaCha20Rng::from_seed(keys.try_into().unwrap_or_default());
        let client = Client::new(
            offer.config,
            self.client,
            &self.identity,
            &self.policy,
            &offer.beacon,
            &mut rng,
            now,
        )
        .map_err(|e| {
            AgentError::Aggregator(format!(
                "a configuration for round {number} this agent refuses: {e}"
            ))
        })?;
        info!(
            round = number,
            samples = update.samples,
            train_seconds,
            "trained; joining SecAgg+"
        );
        self.active = Some(Active {
            attempt,
            number,
            config_attempt,
            model: offer.model,
            client,
            input: Some(input),
            samples: update.samples,
            train_seconds,
        });
        for msg in offer.early {
            self.secagg(attempt, msg, now);
        }
        self.pump()
    }

    fn secagg(&mut self, attempt: u64, msg: ServerMessage, now: Instant) {
        if let Some(r) = self.active.as_mut().filter(|r| r.attempt == attempt) {
            if let Err(e) = r.client.handle(msg, now) {
                warn!(round = r.number, "leaving the round: {e}");
                self.active = None;
            }
        } else if let Some(o) = self.offer.as_mut().filter(|o| o.attempt == attempt)
            && o.early.len() < EARLY_MESSAGES
        {
            o.early.push(msg);
        }
    }

    /// Submits the input when the protocol is ready for it and queues what it sends.
    fn pump(&mut self) -> Result<(), AgentError> {
        let Some(r) = &mut self.active else {
            return Ok(());
        };
        if r.client.phase() == ClientPhase::AwaitingInput
            && let Some(input) = r.input.take()
            && let Err(e) = input.submit(&mut r.client, &self.masker)
        {
            warn!(round = r.number, "input refused: {e}");
            self.active = None;
            return Ok(());
        }
        // What is about to leave binds the device: saved first (actions drain before transmits).
        if let Some(stage) = stage_reached(r.client.phase())
            && self.state.pledge.as_ref().is_none_or(|p| {
                (p.round, p.attempt) != (r.number, r.config_attempt) || p.stage < stage
            })
        {
            self.state.pledge = Some(Pledge {
                round: r.number,
                attempt: r.config_attempt,
                model: r.model.to_string(),
                stage,
            });
            self.actions.push_back(Action::SaveState);
        }
        let attempt = r.attempt;
        while let Some(msg) = r.client.poll_transmit() {
            self.transmits
                .push_back(AgentMessage::Secagg { attempt, msg });
        }
        #[cfg(feature = "test-hooks")]
        if self.vanish_at == Some((r.number, r.client.phase())) {
            self.vanished = Some(r.number);
        }
        Ok(())
    }

    /// Test hook: the round in which this agent is to vanish now, once what it queued has left.
    #[cfg(feature = "test-hooks")]
    pub(crate) fn vanished(&self) -> Option<u64> {
        self.vanished
    }

    fn round_done(&mut self, round: u64, model: ModelId, contributors: &[ClientId]) {
        let contributed = contributors.contains(&self.client);
        let (samples, train_seconds) = match self.active.take_if(|r| r.number == round) {
            Some(r) => (r.samples, r.train_seconds),
            None => (0, 0.0),
        };
        if self.offer.as_ref().is_some_and(|o| o.config.round == round) {
            self.offer = None;
        }
        self.state.last_round = Some(round);
        self.state.model = Some(model.to_string());
        self.state.contributed += u64::from(contributed);
        self.actions.push_back(Action::SaveState);
        info!(round, %model, contributed, "round done");
        self.actions.push_back(Action::RoundDone(RoundReport {
            round,
            model,
            contributed,
            samples,
            train_seconds,
        }));
    }
}

/// The pledge a client in `phase` has reached with what it is about to send.
fn stage_reached(phase: ClientPhase) -> Option<PledgeStage> {
    match phase {
        ClientPhase::AwaitingSurvivors => Some(PledgeStage::Input),
        ClientPhase::AwaitingUnmaskRequest => Some(PledgeStage::Signed),
        ClientPhase::AwaitingResult | ClientPhase::Finished => Some(PledgeStage::Revealed),
        ClientPhase::AwaitingAdverts
        | ClientPhase::AwaitingShares
        | ClientPhase::AwaitingInput
        | ClientPhase::Aborted => None,
    }
}

/// Why a round's cohort is not the one the chain drew (`me`'s identity key among them), if it
/// is not: every participant must be a drawn proposer, and so must this device.
fn not_the_chains_cohort(
    config: &RoundConfig,
    me: &[u8; 32],
    roles: &RoundRoles,
) -> Option<String> {
    let round = config.round;
    if !roles.proposers.contains(me) {
        return Some(format!(
            "this device is not a drawn proposer of round {round} on chain"
        ));
    }
    config
        .participants
        .iter()
        .find(|p| !roles.proposers.contains(&p.identity))
        .map(|p| {
            format!(
                "participant {} of round {round} is not one of its proposers on chain",
                p.id
            )
        })
}
