//! `flock-aggregator serve`: accepts agents over QUIC with mutual TLS, runs the task's rounds
//! with the protocol's SecAgg+ server, turns each secure sum into the next global model and
//! stores it.
//!
//! One task per process. Connections are handled by their own tasks, which turn every stream
//! into an event; one loop owns the round (the sans-IO protocol server), so no state is shared.
//!
//! An agent's vector is `[w·clip(Δ), w·C]` with `w = min(samples, cap)/cap` and `C` the clip
//! bound (the quantiser's range): the secure sum then carries both `Σ w_k Δ_k` and `Σ w_k`, and
//! the FedAvg update is their quotient.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flock_model::task::TaskInfo;
use flock_model::{ModelId, Params};
use flock_protocol::session::{AgentMessage, AggregatorMessage, MODEL_CHUNK_BYTES};
use flock_protocol::wire::ServerMessage;
use flock_protocol::{ClientId, Participant, RoundConfig, RoundOutput, Server, TaskId};
use flock_transport::endpoint::{self, Settings};
use flock_transport::frames;
use flock_transport::tls::{Credentials, Trust, server_config};
use quinn::Connection;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::chain_driver::{Candidate, ChainDriveError, ChainDriver, ChainEvent};
use crate::config::Config;
use crate::metrics::{Metrics, serve_http};
use crate::optimizer::Moments;
use crate::store::{ModelStore, StoreError, TaskState};
use flock_chain::Outcome;

/// Why serving stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// TLS, QUIC or credential set-up.
    #[error(transparent)]
    Transport(#[from] flock_transport::TransportError),
    /// The model store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The model.
    #[error(transparent)]
    Model(#[from] flock_model::ModelError),
    /// The metrics address could not be bound.
    #[error("metrics on {addr}: {cause}")]
    Metrics {
        /// `server.metrics`.
        addr: std::net::SocketAddr,
        /// Why.
        cause: std::io::Error,
    },
    /// The task on chain (`[chain]`).
    #[error("chain: {0}")]
    Chain(#[from] ChainDriveError),
    /// A round could not be configured or its sum not turned into a model.
    #[error("round {round}: {reason}")]
    Round {
        /// The round.
        round: u64,
        /// Why.
        reason: String,
    },
}

/// Where a started `serve` listens.
#[derive(Clone, Copy, Debug)]
pub struct Listening {
    /// The QUIC (UDP) address agents connect to.
    pub quic: std::net::SocketAddr,
    /// The HTTP address of `/metrics` and `/healthz`, if configured.
    pub metrics: Option<std::net::SocketAddr>,
}

/// What a finished `serve` did.
#[derive(Clone, Debug)]
pub struct ServeReport {
    /// Rounds completed in this run.
    pub rounds: Vec<RoundSummary>,
    /// The last completed round and its model.
    pub state: TaskState,
}

/// One completed round.
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
    /// Wall time from start to the new model.
    pub elapsed: Duration,
}

pub(crate) enum Event {
    Joined {
        client: ClientId,
        identity: [u8; 32],
        conn: Connection,
    },
    Message {
        client: ClientId,
        msg: AgentMessage,
    },
    Lost {
        client: ClientId,
        conn_id: usize,
    },
    /// From the chain driver (`[chain]` configured).
    Chain(ChainEvent),
}

struct Member {
    identity: [u8; 32],
    conn: Connection,
    ready: bool,
}

struct Running {
    attempt: u64,
    server: Server,
    number: u64,
    participants: Vec<ClientId>,
    started: Instant,
    /// On chain: where the candidate goes (the chain decides whether it becomes the model).
    reply: Option<oneshot::Sender<Option<Candidate>>>,
}

/// On chain: a round's candidate, waiting for the vote.
struct Pending {
    round: u64,
    model: ModelId,
    params: Params,
    moments: Option<(Moments, [ModelId; 2])>,
    contributors: Vec<ClientId>,
    participants: usize,
    bits: u32,
    started: Instant,
}

/// The state the round loop owns.
struct Service {
    config: Config,
    store: ModelStore,
    task: TaskId,
    task_json: Vec<u8>,
    members: BTreeMap<ClientId, Member>,
    global: Params,
    moments: Option<Moments>,
    state: TaskState,
    round: Option<Running>,
    attempts: u64,
    gather_until: Option<Instant>,
    summaries: Vec<RoundSummary>,
    metrics: Arc<Metrics>,
    /// Rounds come from the chain (`[chain]`), not from the agents gathered.
    on_chain: bool,
    pending: Option<Pending>,
}

fn send(conn: &Connection, msg: AggregatorMessage) {
    let conn = conn.clone();
    tokio::spawn(async move {
        if let Err(e) = frames::send(&conn, &msg).await {
            warn!("sending to {}: {e}", conn.remote_address());
        }
    });
}

impl Service {
    fn new(config: Config, metrics: Arc<Metrics>) -> Result<Self, ServeError> {
        let store = ModelStore::open_at(&config.server.store)?;
        let name = config.task.name.clone();
        let (global, state) = match store.state(&name)? {
            Some(state) => {
                info!(round = state.round, model = %state.model, "continuing the task from the store");
                (store.get(&state.model)?, state)
            }
            None => {
                let init = Params::init(&config.model, config.task.seed)?;
                let model = store.put(&init)?;
                let state = TaskState {
                    task: name.clone(),
                    round: 0,
                    model,
                    moments: None,
                };
                store.save_state(&state)?;
                info!(model = %model, "initial model stored");
                (init, state)
            }
        };
        let moments = match state.moments {
            Some([m, v]) => Some(Moments {
                first: store.get(&m)?,
                second: store.get(&v)?,
            }),
            None => None,
        };
        let info = TaskInfo {
            name: name.clone(),
            spec: config.model.clone(),
            classes: config.model.classes(),
            training: config.training.clone(),
            normalisation: config.normalisation.clone(),
        };
        let task_json = serde_json::to_vec(&info).map_err(|e| ServeError::Round {
            round: 0,
            reason: e.to_string(),
        })?;
        metrics.round.set(state.round as i64);
        Ok(Self {
            task: TaskId::from_name(&name),
            config,
            store,
            task_json,
            members: BTreeMap::new(),
            global,
            moments,
            state,
            round: None,
            attempts: 0,
            gather_until: None,
            summaries: Vec::new(),
            metrics,
            on_chain: false,
            pending: None,
        })
    }

    fn done(&self) -> bool {
        self.state.round >= self.config.task.rounds
    }

    fn on_event(&mut self, event: Event) -> Result<(), ServeError> {
        let now = Instant::now();
        match event {
            Event::Joined {
                client,
                identity,
                conn,
            } => {
                if let Some(old) = self.members.insert(
                    client,
                    Member {
                        identity,
                        conn,
                        ready: false,
                    },
                ) {
                    old.conn
                        .close(0u32.into(), b"replaced by a newer connection");
                }
                self.metrics.agents_connected.set(self.members.len() as i64);
                if let Some(r) = &mut self.round {
                    r.server.client_lost(client, now);
                }
            }
            Event::Lost { client, conn_id } => {
                if self
                    .members
                    .get(&client)
                    .is_some_and(|m| m.conn.stable_id() == conn_id)
                {
                    self.members.remove(&client);
                    self.metrics.agents_connected.set(self.members.len() as i64);
                    info!(%client, "agent disconnected");
                    if let Some(r) = &mut self.round {
                        r.server.client_lost(client, now);
                    }
                }
            }
            Event::Message { client, msg } => self.on_message(client, msg, now)?,
            Event::Chain(e) => self.on_chain(e, now)?,
        }
        self.pump()
    }

    fn on_message(
        &mut self,
        client: ClientId,
        msg: AgentMessage,
        now: Instant,
    ) -> Result<(), ServeError> {
        let done = self.done();
        let Some(member) = self.members.get_mut(&client) else {
            return Ok(());
        };
        match msg {
            AgentMessage::Hello { task, last_round } => {
                if task != self.task {
                    send(
                        &member.conn,
                        AggregatorMessage::Refused("this aggregator serves another task".into()),
                    );
                    return Ok(());
                }
                info!(%client, ?last_round, "agent joined");
                member.ready = true;
                send(
                    &member.conn,
                    AggregatorMessage::Welcome {
                        client,
                        task: self.task_json.clone(),
                    },
                );
                if done {
                    send(
                        &member.conn,
                        AggregatorMessage::TaskComplete {
                            round: self.state.round,
                            model: self.state.model.0,
                        },
                    );
                }
            }
            AgentMessage::FetchModel { id } => {
                let id = ModelId(id);
                match self.store.bytes(&id) {
                    Ok(bytes) => {
                        let total = bytes.len() as u64;
                        self.metrics.model_bytes_served.inc_by(total);
                        for (i, piece) in bytes.chunks(MODEL_CHUNK_BYTES).enumerate() {
                            send(
                                &member.conn,
                                AggregatorMessage::ModelChunk {
                                    id: id.0,
                                    offset: (i * MODEL_CHUNK_BYTES) as u64,
                                    total,
                                    bytes: piece.to_vec(),
                                },
                            );
                        }
                    }
                    Err(e) => {
                        warn!(%client, "model {id} asked for: {e}");
                        send(
                            &member.conn,
                            AggregatorMessage::Refused(format!("no model {id}")),
                        );
                    }
                }
            }
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
                member.ready = false;
                if let Some(r) = &mut self.round {
                    r.server.client_lost(client, now);
                }
            }
        }
        Ok(())
    }

    fn on_timeout(&mut self) -> Result<(), ServeError> {
        if let Some(r) = &mut self.round {
            r.server.handle_timeout(Instant::now());
        }
        self.pump()
    }

    fn next_deadline(&self) -> Option<Instant> {
        match &self.round {
            Some(r) => r.server.poll_timeout(),
            None => self.gather_until,
        }
    }

    /// Sends what the protocol server queued, finishes a round whose outcome is in, and starts
    /// the next one when enough agents are ready.
    fn pump(&mut self) -> Result<(), ServeError> {
        if let Some(r) = &mut self.round {
            while let Some((to, msg)) = r.server.poll_transmit() {
                // The configuration travels in `Round`, with the model to train from.
                if matches!(msg, ServerMessage::Start(_)) {
                    continue;
                }
                if let Some(m) = self.members.get(&to) {
                    send(
                        &m.conn,
                        AggregatorMessage::Secagg {
                            attempt: r.attempt,
                            msg,
                        },
                    );
                }
            }
            if let Some(outcome) = r.server.take_outcome() {
                let Some(r) = self.round.take() else {
                    return Ok(());
                };
                self.metrics.round_in_progress.set(0);
                match outcome {
                    Ok(output) => self.finish(r, output)?,
                    Err(e) => {
                        self.metrics.rounds_aborted.inc();
                        match r.reply {
                            Some(reply) => {
                                warn!(
                                    round = r.number,
                                    "SecAgg+ aborted, no candidate this round: {e}"
                                );
                                let _ = reply.send(None);
                            }
                            None => {
                                warn!(round = r.number, "round aborted, it will run again: {e}")
                            }
                        }
                    }
                }
            }
        }
        self.maybe_start()
    }

    /// Turns a secure sum into the candidate model; off chain it becomes the global model at
    /// once, on chain it waits for the vote.
    fn finish(&mut self, r: Running, output: RoundOutput) -> Result<(), ServeError> {
        let round_err = |reason: String| ServeError::Round {
            round: r.number,
            reason,
        };
        let config = r.server.config();
        let params = config
            .quant_params()
            .map_err(|e| round_err(e.to_string()))?;
        let mean =
            edge_kernels::dequantise_mean(&output.sum, output.contributors.len() as u64, &params)
                .map_err(|e| round_err(e.to_string()))?;
        let update = weighted_update(&mean, self.config.secagg.clip_norm).map_err(round_err)?;
        let (next, moments) =
            self.config
                .server_optimizer
                .step(&self.global, &update, self.moments.as_ref())?;
        #[cfg(feature = "test-hooks")]
        let next = if self.config.testing.break_candidate_round == Some(r.number) {
            warn!(round = r.number, "test hook: breaking the candidate");
            Params::new(next.spec().clone(), vec![0.0; next.len()])?
        } else {
            next
        };
        let model = self.store.put(&next)?;
        let moments = match moments {
            Some(m) => {
                let ids = [self.store.put(&m.first)?, self.store.put(&m.second)?];
                Some((m, ids))
            }
            None => None,
        };
        let pending = Pending {
            round: r.number,
            model,
            params: next,
            moments,
            contributors: output.contributors,
            participants: r.participants.len(),
            bits: r.server.config().bits,
            started: r.started,
        };
        match r.reply {
            Some(reply) => {
                info!(round = r.number, model = %model, contributors = pending.contributors.len(), "candidate built; anchoring it for the vote");
                let _ = reply.send(Some(Candidate {
                    model,
                    contributors: pending.contributors.clone(),
                }));
                self.pending = Some(pending);
                Ok(())
            }
            None => self.commit(r.number, Some(pending), true),
        }
    }

    /// Ends `round`: its candidate `p` (none if no candidate was built) becomes the global
    /// model if `accepted` (else the model stays), the state is saved and every agent told.
    fn commit(&mut self, round: u64, p: Option<Pending>, accepted: bool) -> Result<(), ServeError> {
        let (participants, bits, started) = p.as_ref().map_or((0, 0, Instant::now()), |p| {
            (p.participants, p.bits, p.started)
        });
        let mut contributors = Vec::new();
        if let Some(p) = p.filter(|_| accepted) {
            self.global = p.params;
            let (moments, ids) = p
                .moments
                .map_or((None, None), |(m, ids)| (Some(m), Some(ids)));
            self.moments = moments;
            self.state.model = p.model;
            self.state.moments = ids;
            contributors = p.contributors;
        }
        self.state.round = round;
        self.store.save_state(&self.state)?;
        let model = self.state.model;
        info!(round, model = %model, accepted, contributors = contributors.len(), "round complete");
        let last = self.done();
        for m in self.members.values() {
            send(
                &m.conn,
                AggregatorMessage::RoundDone {
                    round,
                    model: model.0,
                    contributors: contributors.clone(),
                    last,
                },
            );
        }
        let m = &self.metrics;
        m.rounds_completed.inc();
        if !accepted {
            m.rounds_rejected.inc();
        }
        m.round.set(round as i64);
        m.last_contributors.set(contributors.len() as i64);
        m.round_seconds.observe(started.elapsed().as_secs_f64());
        self.summaries.push(RoundSummary {
            round,
            model,
            accepted,
            contributors,
            participants,
            bits,
            elapsed: started.elapsed(),
        });
        Ok(())
    }

    /// The connected agents that said hello for this task.
    fn ready_members(&self) -> impl Iterator<Item = ClientId> + '_ {
        self.members
            .iter()
            .filter(|(_, m)| m.ready)
            .map(|(id, _)| *id)
    }

    /// What the chain driver asks or tells.
    fn on_chain(&mut self, event: ChainEvent, now: Instant) -> Result<(), ServeError> {
        match event {
            ChainEvent::Ready(reply) => {
                let _ = reply.send(self.ready_members().collect());
            }
            ChainEvent::Train {
                round,
                proposers,
                prev,
                reply,
            } => {
                if let Some(p) = self.pending.as_ref().filter(|p| p.round == round) {
                    // Asked again (the driver resumed): the candidate is built already.
                    let _ = reply.send(Some(Candidate {
                        model: p.model,
                        contributors: p.contributors.clone(),
                    }));
                    return Ok(());
                }
                if prev != self.state.model {
                    warn!(
                        round,
                        "the chain's last accepted model is {prev}, this aggregator's is {}: no candidate this round",
                        self.state.model
                    );
                    let _ = reply.send(None);
                    return Ok(());
                }
                if let Some(r) = self.round.take() {
                    warn!(
                        round = r.number,
                        "a new round on chain replaces the SecAgg+ round still running"
                    );
                }
                let chosen: Vec<Participant> = proposers
                    .into_iter()
                    .filter(|p| {
                        self.members
                            .get(&p.id)
                            .is_some_and(|m| m.ready && m.identity == p.identity)
                    })
                    .collect();
                if (chosen.len() as u32) < self.config.cohort.min {
                    warn!(
                        round,
                        connected = chosen.len(),
                        min = self.config.cohort.min,
                        "too few drawn proposers connected for SecAgg+: no candidate this round"
                    );
                    let _ = reply.send(None);
                    return Ok(());
                }
                self.start_round(round, chosen, Some(reply), now)?;
            }
            ChainEvent::Finalised {
                round,
                outcome,
                accepted,
            } => {
                let pending = self.pending.take().filter(|p| p.round == round);
                let taken = pending.as_ref().is_some_and(|p| p.model == accepted)
                    && outcome == Outcome::Accepted;
                if !taken && accepted != self.state.model {
                    warn!(
                        round,
                        "the chain's last accepted model {accepted} is neither this aggregator's \
                         model {} nor its candidate",
                        self.state.model
                    );
                }
                if !taken {
                    info!(
                        round,
                        ?outcome,
                        "the candidate was not accepted: the model stays {}",
                        self.state.model
                    );
                }
                self.commit(round, pending, taken)?;
            }
        }
        Ok(())
    }

    fn maybe_start(&mut self) -> Result<(), ServeError> {
        if self.on_chain || self.round.is_some() || self.done() {
            return Ok(());
        }
        let ready: Vec<ClientId> = self.ready_members().collect();
        let cohort = &self.config.cohort;
        if (ready.len() as u32) < cohort.min {
            self.gather_until = None;
            return Ok(());
        }
        let now = Instant::now();
        let until = *self
            .gather_until
            .get_or_insert(now + Duration::from_millis(cohort.gather_ms));
        if (ready.len() as u32) < cohort.max && now < until {
            return Ok(());
        }
        self.gather_until = None;
        let chosen = ready
            .into_iter()
            .take(cohort.max as usize)
            .filter_map(|id| {
                self.members.get(&id).map(|m| Participant {
                    id,
                    identity: m.identity,
                })
            })
            .collect();
        self.start_round(self.state.round + 1, chosen, None, now)
    }

    /// Starts SecAgg+ round `number` over `chosen`, sending each the round and the model.
    fn start_round(
        &mut self,
        number: u64,
        chosen: Vec<Participant>,
        reply: Option<oneshot::Sender<Option<Candidate>>>,
        now: Instant,
    ) -> Result<(), ServeError> {
        let ids: Vec<ClientId> = chosen.iter().map(|p| p.id).collect();
        let secagg = &self.config.secagg;
        let threat = secagg.threat();
        let mut graph_seed = [0u8; 32];
        graph_seed.copy_from_slice(&Sha256::digest(format!(
            "{}:{number}:{:?}",
            self.config.task.name, now
        )));
        let vector_len = u32::try_from(self.global.len() + 1).map_err(|_| ServeError::Round {
            round: number,
            reason: "model too large for one vector".into(),
        })?;
        let config = RoundConfig::derive(
            self.task,
            number,
            chosen,
            threat,
            graph_seed,
            vector_len,
            secagg.clip_norm,
            secagg.phase_timeout_ms,
        )
        .map_err(|e| ServeError::Round {
            round: number,
            reason: e.to_string(),
        })?;
        let server = Server::new(config.clone(), now).map_err(|e| ServeError::Round {
            round: number,
            reason: e.to_string(),
        })?;
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
            if let Some(m) = self.members.get(id) {
                send(
                    &m.conn,
                    AggregatorMessage::Round {
                        attempt,
                        config: config.clone(),
                        model: self.state.model.0,
                        sample_cap: self.config.cohort.sample_cap,
                    },
                );
            }
        }
        self.round = Some(Running {
            attempt,
            server,
            number,
            participants: ids,
            started: now,
            reply,
        });
        Ok(())
    }
}

/// `Σ w_k Δ_k / Σ w_k` from the mean of the vectors `[w·Δ, w·C]`.
pub fn weighted_update(mean: &[f32], clip: f32) -> Result<Vec<f32>, String> {
    let (last, body) = mean.split_last().ok_or("empty sum")?;
    let mean_weight = f64::from(*last) / f64::from(clip);
    if mean_weight.is_nan() || mean_weight <= 0.0 {
        return Err(format!("total weight {mean_weight} is not positive"));
    }
    Ok(body
        .iter()
        .map(|&x| (f64::from(x) / mean_weight) as f32)
        .collect())
}

static CONN_IDS: AtomicUsize = AtomicUsize::new(0);

async fn connection(
    incoming: quinn::Incoming,
    events: mpsc::UnboundedSender<Event>,
    metrics: Arc<Metrics>,
) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            metrics.refused_handshakes.inc();
            warn!(%remote, "handshake refused: {e}");
            return;
        }
    };
    let _ = CONN_IDS.fetch_add(1, Ordering::Relaxed);
    let identity = match endpoint::peer_ed25519(&conn) {
        Ok(k) => k,
        Err(e) => {
            warn!(%remote, "{e}");
            conn.close(1u32.into(), b"certificate key must be ed25519");
            return;
        }
    };
    let client = ClientId::from_identity(&identity);
    let conn_id = conn.stable_id();
    if events
        .send(Event::Joined {
            client,
            identity,
            conn: conn.clone(),
        })
        .is_err()
    {
        return;
    }
    // Streams are read concurrently; when the connection ends, the ones already received are
    // delivered before the loss, so that an input that arrived before a device vanished counts.
    let mut reads = tokio::task::JoinSet::new();
    loop {
        let stream = match conn.accept_uni().await {
            Ok(s) => s,
            Err(e) => {
                info!(%client, "connection closed: {e}");
                while reads.join_next().await.is_some() {}
                let _ = events.send(Event::Lost { client, conn_id });
                return;
            }
        };
        let events = events.clone();
        let metrics = metrics.clone();
        reads.spawn(async move {
            match frames::read::<AgentMessage>(stream).await {
                Ok(msg) => {
                    let _ = events.send(Event::Message { client, msg });
                }
                Err(e) => {
                    metrics.bad_streams.inc();
                    warn!(%client, "stream closed: {e}");
                }
            }
        });
        // Reap finished reads so the set does not grow over a long connection.
        while reads.try_join_next().is_some() {}
    }
}

/// Runs the task until its last round is complete (or `shutdown` resolves).
pub async fn serve(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
    on_listen: impl FnOnce(Listening),
) -> Result<ServeReport, ServeError> {
    let identity = Credentials::load(&config.server.cert, &config.server.key)?;
    let trust = Trust::load(&config.server.ca, config.server.crl.as_deref())?;
    let settings = Settings::default();
    let ep = endpoint::server(
        config.server.listen,
        server_config(&identity, &trust)?,
        &settings,
    )?;
    let addr = ep
        .local_addr()
        .map_err(|cause| flock_transport::TransportError::Io {
            context: "local address".into(),
            cause,
        })?;
    info!(%addr, task = %config.task.name, "listening");
    let metrics = Arc::new(Metrics::new(&config.task.name, config.task.rounds));
    let mut http = None;
    if let Some(metrics_addr) = config.server.metrics {
        let bind_err = |cause| ServeError::Metrics {
            addr: metrics_addr,
            cause,
        };
        let listener = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .map_err(bind_err)?;
        let bound = listener.local_addr().map_err(bind_err)?;
        info!(addr = %bound, "metrics on /metrics, health on /healthz");
        let metrics = metrics.clone();
        http = Some((
            bound,
            tokio::spawn(async move {
                if let Err(e) = serve_http(listener, metrics).await {
                    warn!("metrics endpoint stopped: {e}");
                }
            }),
        ));
    }
    on_listen(Listening {
        quic: addr,
        metrics: http.as_ref().map(|(a, _)| *a),
    });
    let crl = config.server.crl.clone();
    let ca = config.server.ca.clone();
    let chain = config.chain.clone();
    let start_wait = chain
        .as_ref()
        .map(|c| Duration::from_millis(c.start_wait_ms));
    let mut service = Service::new(config, metrics.clone())?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut driver = match chain {
        Some(section) => {
            let (client, anchorer) = crate::chain_driver::connect(&section).await?;
            let initial = Params::init(&service.config.model, service.config.task.seed)?;
            let (_, initial) = flock_model::file::encode(&initial)?;
            crate::chain_driver::check_task(&client, service.config.task.rounds, initial).await?;
            service.on_chain = true;
            info!(task = %client.task_address(), account = %client.address(), "rounds follow the task on chain");
            let driver = ChainDriver {
                client,
                total: service.config.task.rounds,
                anchorer,
                events: tx.clone(),
                start_wait: start_wait.unwrap_or_default(),
            };
            Some(tokio::spawn(driver.run()))
        }
        None => None,
    };
    let accept_ep = ep.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accept_ep.accept().await {
            tokio::spawn(connection(incoming, tx.clone(), metrics.clone()));
        }
    });
    // Reload the revocation list when its file changes: new connections see it, no restart.
    let mut crl_mtime = crl
        .as_ref()
        .and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    let mut crl_check = tokio::time::interval(Duration::from_secs(2));
    tokio::pin!(shutdown);
    while !service.done() {
        let deadline = service.next_deadline();
        tokio::select! {
            event = rx.recv() => match event {
                Some(e) => service.on_event(e)?,
                None => break,
            },
            () = sleep_until(deadline) => service.on_timeout()?,
            _ = crl_check.tick() => {
                let mtime = crl.as_ref().and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
                if mtime != crl_mtime {
                    crl_mtime = mtime;
                    match Trust::load(&ca, crl.as_deref()).and_then(|t| server_config(&identity, &t))
                        .and_then(|tls| endpoint::server_config(tls, &settings)) {
                        Ok(c) => { ep.set_server_config(Some(c)); info!("revocation list reloaded"); }
                        Err(e) => warn!("revocation list not reloaded, the previous one stays: {e}"),
                    }
                }
            }
            () = &mut shutdown => {
                info!("shutting down");
                break;
            }
            ended = join_driver(&mut driver) => match ended {
                Ok(()) => info!("the task is complete on chain"),
                Err(e) => return Err(e.into()),
            },
        }
    }
    if let Some(d) = driver {
        d.abort();
    }
    // Let the last messages leave before the endpoint closes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    ep.close(0u32.into(), b"task complete");
    // Wait (briefly) for the connections to drain, so that the port is free on return.
    let _ = tokio::time::timeout(Duration::from_secs(2), ep.wait_idle()).await;
    if let Some((_, task)) = http {
        task.abort();
    }
    Ok(ServeReport {
        rounds: service.summaries,
        state: service.state,
    })
}

/// Waits for the chain driver to end (never, without one); after it has, never again.
async fn join_driver(
    driver: &mut Option<tokio::task::JoinHandle<Result<(), ChainDriveError>>>,
) -> Result<(), ChainDriveError> {
    let Some(handle) = driver.as_mut() else {
        return std::future::pending().await;
    };
    let ended = handle.await;
    *driver = None;
    match ended {
        Ok(r) => r,
        Err(e) => Err(ChainDriveError::Stopped(e.to_string())),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
