//! The aggregator's round machine: which agents are connected and ready, when a round starts
//! and with whom, the protocol's SecAgg+ server of the attempt that runs, and what each secure
//! sum becomes: the next global model at once (local rounds), or a candidate that the chain's
//! vote accepts or not (rounds driven by the chain, [`Governance::Chain`], in `chain`).
//!
//! Sans-IO, with quinn-proto's face: input arrives through [`RoundMachine::handle`],
//! [`RoundMachine::handle_chain`] and [`RoundMachine::handle_timeout`], output leaves through
//! [`RoundMachine::poll_event`] and [`RoundMachine::poll_transmit`], and time is an argument.
//! It does no I/O and spawns nothing: unit tests (`tests`) run whole rounds in memory with a
//! fake clock.
//!
//! Call order: after each `handle*`, drain `poll_event` (model files and the task state to
//! make durable, candidates for the chain driver) before `poll_transmit`. A `RoundDone` is
//! queued after the state it announces, so a shell that drains in this order never announces
//! a model it has not stored. Then wait for the next input or [`RoundMachine::poll_timeout`].

mod build;
mod chain;
mod members;
mod outcome;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flock_model::task::TaskInfo;
use flock_model::{ModelId, Params};
use flock_protocol::config::OFF_CHAIN_BEACON;
use flock_protocol::session::{AgentMessage, AggregatorMessage};
use flock_protocol::wire::ServerMessage;
use flock_protocol::{
    ClientId, ClientPolicy, ConfigError, Participant, RoundConfig, Server, TaskId,
};
use tracing::{debug, info, warn};

pub use build::BuildError;
pub(crate) use build::ModelFile;

use crate::config::Config;
use crate::mailbox::{Candidate, Input};
use crate::metrics::Metrics;
use crate::optimizer::Moments;
use crate::store::TaskState;
use build::Built;
use members::Members;

/// One finished round.
#[derive(Clone, Debug)]
pub struct RoundSummary {
    /// Its number.
    pub round: u64,
    /// The global model after it.
    pub model: ModelId,
    /// Whether the round's candidate became the global model (always, off chain; on chain, by
    /// the vote).
    pub accepted: bool,
    /// Whose updates are in it.
    pub contributors: Vec<ClientId>,
    /// Participants at the start.
    pub participants: usize,
    /// The quantisation width of the round (to dequantise its sum).
    pub bits: u32,
    /// Time from start to the new model.
    pub elapsed: Duration,
}

/// A round that cannot be run: the configuration derived for it is refused. Off chain this
/// stops the service (every cohort size was checked when the config was loaded, so it is a
/// bug); on chain the round goes without a candidate.
#[derive(Debug, thiserror::Error)]
#[error("round {round}: {source}")]
pub struct RoundError {
    /// The round.
    pub round: u64,
    /// Why its configuration was refused.
    #[source]
    pub source: ConfigError,
}

/// What the machine needs done, in order, before the transmits queued after it.
#[derive(Debug)]
pub(crate) enum Event {
    /// Store these model files, then (if any) this task state.
    Persist {
        /// Model files (candidates, models, FedAdam's moments).
        models: Vec<ModelFile>,
        /// The task's progress.
        state: Option<TaskState>,
    },
    /// The candidate of `round` for the chain driver (`None`: no candidate this round).
    Candidate {
        /// The round.
        round: u64,
        /// Its candidate.
        candidate: Option<Candidate>,
    },
}

/// Who decides when rounds start and whether their candidates become the model.
#[derive(Debug)]
pub(crate) enum Governance {
    /// The aggregator: a round starts when `cohort.min` agents are ready (after waiting
    /// `gather_ms` for up to `cohort.max`), and its sum is the next model.
    Local {
        /// Until when to wait for more agents.
        gather_until: Option<Instant>,
    },
    /// The task on chain: it opens the rounds, draws the proposers and votes on candidates.
    Chain {
        /// The candidate built for the open round, waiting for the vote.
        pending: Option<Box<Pending>>,
    },
}

impl Governance {
    /// Rounds started by the aggregator.
    pub(crate) fn local() -> Self {
        Self::Local { gather_until: None }
    }

    /// Rounds driven by the chain.
    pub(crate) fn chain() -> Self {
        Self::Chain { pending: None }
    }
}

/// The SecAgg+ attempt in progress.
struct Running {
    attempt: u64,
    number: u64,
    server: Server,
    participants: usize,
    started: Instant,
    /// Who was sent the survivor list.
    listed: BTreeSet<ClientId>,
}

/// A round's candidate, waiting for the chain's vote.
#[derive(Debug)]
pub(crate) struct Pending {
    round: u64,
    built: Built,
    contributors: Vec<ClientId>,
    participants: usize,
    bits: u32,
    started: Instant,
}

impl Pending {
    fn candidate(&self) -> Candidate {
        Candidate {
            model: self.built.file.id,
            contributors: self.contributors.clone(),
        }
    }
}

/// The global model and the task's progress, as the store holds them when the machine starts.
#[derive(Clone, Debug)]
pub(crate) struct Restored {
    /// The task state (`state.model` is `global`'s id).
    pub state: TaskState,
    /// The global model.
    pub global: Params,
    /// FedAdam's moments, if the state names them.
    pub moments: Option<Moments>,
}

/// The round machine of one task.
pub(crate) struct RoundMachine {
    config: Config,
    task: TaskId,
    task_json: Vec<u8>,
    governance: Governance,
    members: Members,
    global: Params,
    moments: Option<Moments>,
    state: TaskState,
    round: Option<Running>,
    attempts: u64,
    /// The round last started and how many attempts of it have started.
    round_attempts: (u64, u64),
    /// The devices shown the survivor list of an aborted attempt of this round: they may have
    /// signed it, and a device that signed takes part in no other attempt of the round (its
    /// pledge), so retries go on without them; and a device whose signed shares its
    /// neighbours refused in numbers (`AbortError::RefusedShares`).
    bound: (u64, BTreeSet<ClientId>),
    transmits: VecDeque<(ClientId, AggregatorMessage)>,
    events: VecDeque<Event>,
    summaries: Vec<RoundSummary>,
    metrics: Arc<Metrics>,
}

impl RoundMachine {
    /// A machine for `config`'s task, continuing from `restored`, governed by `governance`.
    pub(crate) fn new(
        config: Config,
        restored: Restored,
        governance: Governance,
        metrics: Arc<Metrics>,
    ) -> Result<Self, serde_json::Error> {
        let info = TaskInfo {
            name: config.task.name.clone(),
            spec: config.model.clone(),
            classes: config.model.classes(),
            training: config.training.clone(),
            normalisation: config.normalisation.clone(),
        };
        let task_json = serde_json::to_vec(&info)?;
        metrics.round.set(restored.state.round as i64);
        Ok(Self {
            task: TaskId::from_name(&config.task.name),
            config,
            task_json,
            governance,
            members: Members::default(),
            global: restored.global,
            moments: restored.moments,
            state: restored.state,
            round: None,
            attempts: 0,
            round_attempts: (0, 0),
            bound: (0, BTreeSet::new()),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            summaries: Vec::new(),
            metrics,
        })
    }

    /// The task's progress.
    pub(crate) fn state(&self) -> &TaskState {
        &self.state
    }

    /// Whether the task's last round is done.
    pub(crate) fn is_done(&self) -> bool {
        self.state.round >= self.config.task.rounds
    }

    /// The rounds finished so far.
    pub(crate) fn summaries(&self) -> &[RoundSummary] {
        &self.summaries
    }

    /// The connected agents that said hello for this task.
    pub(crate) fn ready_members(&self) -> impl Iterator<Item = ClientId> + '_ {
        self.members.ready().map(|p| p.id)
    }

    /// Something happened on the network.
    pub(crate) fn handle(&mut self, input: Input, now: Instant) -> Result<(), RoundError> {
        match input {
            Input::Joined { client, identity } => {
                self.members.join(client, identity);
                self.metrics.agents_connected.set(self.members.len() as i64);
                // A new connection: whatever the old one was doing in the round is lost.
                if let Some(r) = &mut self.round {
                    r.server.client_lost(client, now);
                }
            }
            Input::Lost { client } => {
                if self.members.remove(client) {
                    self.metrics.agents_connected.set(self.members.len() as i64);
                    info!(%client, "agent disconnected");
                    if let Some(r) = &mut self.round {
                        r.server.client_lost(client, now);
                    }
                }
            }
            Input::Message { client, msg } => self.on_message(client, msg, now),
        }
        self.pump(now)
    }

    /// Time passed: phases whose deadline is over end.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Result<(), RoundError> {
        if let Some(r) = &mut self.round {
            r.server.handle_timeout(now);
        }
        self.pump(now)
    }

    /// When [`Self::handle_timeout`] is due next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match (&self.round, &self.governance) {
            (Some(r), _) => r.server.poll_timeout(),
            (None, Governance::Local { gather_until }) => *gather_until,
            (None, Governance::Chain { .. }) => None,
        }
    }

    /// The next thing to make durable or to tell the chain driver (drain before transmits).
    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next message to send, and to whom.
    pub(crate) fn poll_transmit(&mut self) -> Option<(ClientId, AggregatorMessage)> {
        self.transmits.pop_front()
    }

    fn send(&mut self, to: ClientId, msg: AggregatorMessage) {
        self.transmits.push_back((to, msg));
    }

    fn on_message(&mut self, client: ClientId, msg: AgentMessage, now: Instant) {
        if !self.members.contains(client) {
            return;
        }
        match msg {
            AgentMessage::Hello { task, last_round } => {
                if task != self.task {
                    self.send(
                        client,
                        AggregatorMessage::Refused("this aggregator serves another task".into()),
                    );
                    return;
                }
                info!(%client, ?last_round, "agent joined");
                self.members.set_ready(client, true);
                let task = self.task_json.clone();
                self.send(client, AggregatorMessage::Welcome { client, task });
                if self.is_done() {
                    let (round, model) = (self.state.round, self.state.model.0);
                    self.send(client, AggregatorMessage::TaskComplete { round, model });
                }
            }
            // The shell serves model files itself, off this loop.
            AgentMessage::FetchModel { .. } => {}
            AgentMessage::Secagg { attempt, msg } => match &mut self.round {
                Some(r) if r.attempt == attempt => {
                    if let Err(e) = r.server.handle(client, msg, now) {
                        self.metrics.refused_messages.inc();
                        warn!(%client, round = r.number, "SecAgg+ message refused: {e}");
                    }
                }
                // Late for an attempt that has ended (or early for none): nothing to do.
                _ => {
                    self.metrics.refused_messages.inc();
                    debug!(%client, attempt, "SecAgg+ message for an attempt not running");
                }
            },
            AgentMessage::Leave => {
                info!(%client, "agent left the task");
                self.members.set_ready(client, false);
                if let Some(r) = &mut self.round {
                    r.server.client_lost(client, now);
                }
            }
        }
    }

    /// Queues what the protocol server queued, finishes an attempt whose outcome is in, and
    /// starts the next round when enough agents are ready.
    fn pump(&mut self, now: Instant) -> Result<(), RoundError> {
        if let Some(r) = &mut self.round {
            let attempt = r.attempt;
            while let Some((to, msg)) = r.server.poll_transmit() {
                // The configuration travels in `Round`, with the model to train from.
                if matches!(msg, ServerMessage::Start(_)) || !self.members.contains(to) {
                    continue;
                }
                if matches!(msg, ServerMessage::Survivors(_)) {
                    r.listed.insert(to);
                }
                self.transmits
                    .push_back((to, AggregatorMessage::Secagg { attempt, msg }));
            }
            if let Some(outcome) = r.server.take_outcome()
                && let Some(r) = self.round.take()
            {
                self.metrics.round_in_progress.set(0);
                match outcome {
                    Ok(output) => self.finish(r, output, now),
                    Err(e) => {
                        self.leave_out_refused(&r, &e);
                        self.aborted(&r, &e);
                    }
                }
            }
        }
        self.maybe_start(now)
    }

    fn maybe_start(&mut self, now: Instant) -> Result<(), RoundError> {
        let Governance::Local { gather_until } = &mut self.governance else {
            return Ok(());
        };
        if self.round.is_some() || self.state.round >= self.config.task.rounds {
            return Ok(());
        }
        let cohort = &self.config.cohort;
        let number = self.state.round + 1;
        let all_ready = self.members.ready().count();
        let ready: Vec<Participant> = self
            .members
            .ready()
            .filter(|p| self.bound.0 != number || !self.bound.1.contains(&p.id))
            .collect();
        let attempts = match self.round_attempts {
            (round, count) if round == number => count,
            _ => 0,
        };
        let spent = attempts >= ClientPolicy::default().max_attempts;
        if (all_ready as u32) >= cohort.min && ((ready.len() as u32) < cohort.min || spent) {
            // Retrying cannot finish this round: go on to the next one with everyone.
            *gather_until = None;
            warn!(
                round = number,
                attempts,
                bound = all_ready - ready.len(),
                "the round ends without a model: its retries lack the devices that signed an aborted attempt's survivor list or whose shares were refused, or devices' attempt limit is reached"
            );
            self.commit(number, None, false, Vec::new(), now);
            return self.maybe_start(now);
        }
        if (ready.len() as u32) < cohort.min {
            *gather_until = None;
            return Ok(());
        }
        let until = *gather_until.get_or_insert(now + Duration::from_millis(cohort.gather_ms));
        if (ready.len() as u32) < cohort.max && now < until {
            return Ok(());
        }
        *gather_until = None;
        let chosen = ready.into_iter().take(cohort.max as usize).collect();
        self.start_round(number, chosen, &OFF_CHAIN_BEACON, now)
    }

    /// Starts SecAgg+ round `number` over `chosen` with graph-seed beacon `beacon`, sending each
    /// the round and the model.
    fn start_round(
        &mut self,
        number: u64,
        chosen: Vec<Participant>,
        beacon: &[u8; 32],
        now: Instant,
    ) -> Result<(), RoundError> {
        let refused = |source| RoundError {
            round: number,
            source,
        };
        let ids: Vec<ClientId> = chosen.iter().map(|p| p.id).collect();
        let secagg = &self.config.secagg;
        // Attempts are numbered within the round, from 0: devices cap how many they join.
        let attempt_in_round = match self.round_attempts {
            (round, count) if round == number => count,
            _ => 0,
        };
        self.round_attempts = (number, attempt_in_round + 1);
        let words = flock_model::contribution::vector_len(self.global.len());
        let vector_len =
            u32::try_from(words).map_err(|_| refused(ConfigError::VectorLen(u32::MAX)))?;
        // The graph seed is derived from the round, the attempt, the participants and the
        // beacon (devices recompute it and refuse any other).
        let config = RoundConfig::derive(
            self.task,
            number,
            attempt_in_round,
            chosen,
            secagg.threat(),
            *beacon,
            vector_len,
            secagg.clip_norm,
            secagg.phase_timeout_ms,
        )
        .map_err(refused)?;
        let server = Server::new(config.clone(), now).map_err(refused)?;
        self.attempts += 1;
        let attempt = self.attempts;
        self.metrics.round_attempts.inc();
        self.metrics.round_in_progress.set(number as i64);
        info!(
            round = number,
            attempt,
            participants = ids.len(),
            k = config.degree,
            t = config.threshold,
            bits = config.bits,
            "round started"
        );
        for id in &ids {
            self.send(
                *id,
                AggregatorMessage::Round {
                    attempt,
                    config: config.clone(),
                    model: self.state.model.0,
                    sample_cap: self.config.cohort.sample_cap,
                },
            );
        }
        self.round = Some(Running {
            attempt,
            number,
            server,
            participants: ids.len(),
            started: now,
            listed: BTreeSet::new(),
        });
        Ok(())
    }
}
