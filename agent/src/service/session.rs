//! The agent's connection loop and round work.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flock_model::task::TaskInfo;
use flock_model::{ModelId, Params, file};
use flock_protocol::session::{AgentMessage, AggregatorMessage};
use flock_protocol::wire::ClientMessage;
use flock_protocol::{Client, ClientId, ClientPhase, Identity, RoundConfig, TaskId};
use flock_transport::endpoint::{self, Settings};
use flock_transport::tls::{Credentials, Trust, client_config};
use flock_transport::{TransportError, frames};
use quinn::Connection;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::input::{Masker, PendingInput};
use super::{AgentConfig, AgentState, load_identity};
use crate::data::{CsvSource, DataSource, Dataset, Standardizer, split};
use crate::train::{TrainDevice, TrainError, train_local};

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The identity key could not be used.
    #[error("identity {}: {reason}", path.display())]
    Identity {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Transport set-up or a refusal that retrying cannot fix.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The aggregator refused this agent.
    #[error("the aggregator refused this agent: {0}")]
    Refused(String),
    /// The local data.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// Training.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A model file.
    #[error(transparent)]
    Model(#[from] flock_model::ModelError),
    /// The aggregator sent something that breaks the session (a model whose bytes do not
    /// hash to its id, a task description that does not parse).
    #[error("aggregator sent {0}")]
    Protocol(String),
    /// The state directory.
    #[error("state directory {}: {cause}", path.display())]
    State {
        /// The directory.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The agent vanished where a test told it to ([`AgentBuilder::vanish_at`]).
    #[cfg(feature = "test-hooks")]
    #[error("vanished in round {0} as the test asked")]
    Vanished(u64),
    /// The task on chain (`[chain]`): the key, the account, joining.
    #[error("chain: {0}")]
    Chain(String),
    /// A model this agent will not train on or judge: its bytes do not hash to the announced
    /// id, or the id is not the chain's last accepted model. The round is skipped, the agent
    /// goes on.
    #[error("model refused: {0}")]
    ModelRefused(String),
    /// No data source: neither `[data]` in the config nor one given to the builder.
    #[error("no data: add a [data] section or give the builder a data source")]
    NoData,
}

impl AgentError {
    /// Errors that reconnecting cannot cure.
    fn is_fatal(&self) -> bool {
        !matches!(
            self,
            AgentError::ModelRefused(_)
                | AgentError::Transport(
                    TransportError::Connection(_)
                        | TransportError::Connect { .. }
                        | TransportError::Io { .. }
                )
        )
    }
}

/// What one round did, for the embedder's callback.
#[derive(Clone, Debug)]
pub struct RoundReport {
    /// The round.
    pub round: u64,
    /// The new global model.
    pub model: ModelId,
    /// Whether this agent's update is in it.
    pub contributed: bool,
    /// Samples trained on.
    pub samples: u64,
    /// Seconds spent training.
    pub train_seconds: f64,
}

/// What a finished run did.
#[derive(Clone, Debug)]
pub struct AgentReport {
    /// The agent's id in the task.
    pub client: ClientId,
    /// The persisted state at the end.
    pub state: AgentState,
    /// Whether the task completed (else: shut down).
    pub completed: bool,
}

type RoundCallback = Box<dyn FnMut(&RoundReport) + Send>;

/// A voter's request (from the chain follower): judge `candidate` against `previous` on the
/// held-out data.
pub(crate) struct Evaluate {
    pub round: u64,
    pub candidate: ModelId,
    pub previous: ModelId,
    pub reply: oneshot::Sender<Result<Verdict, String>>,
}

/// Accuracy of both models on this agent's held-out data.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Verdict {
    pub candidate: f64,
    pub previous: f64,
}

/// Builds an agent from a config, an optional identity and an optional data source.
pub struct AgentBuilder {
    config: AgentConfig,
    identity: Option<Identity>,
    source: Option<Box<dyn DataSource + Send + Sync>>,
    device: Option<TrainDevice>,
    masker: Option<Masker>,
    on_round: Option<RoundCallback>,
    #[cfg(feature = "test-hooks")]
    vanish_at: Option<(u64, ClientPhase)>,
}

impl AgentBuilder {
    /// Starts from a config (see [`AgentConfig`]).
    pub fn new(config: AgentConfig) -> Self {
        Self {
            config,
            identity: None,
            source: None,
            device: None,
            masker: None,
            on_round: None,
            #[cfg(feature = "test-hooks")]
            vanish_at: None,
        }
    }

    /// Test hook: in round `round`, once this agent's SecAgg+ client reaches `phase`, close
    /// the connection and stop (as a device losing power would).
    #[cfg(feature = "test-hooks")]
    pub fn vanish_at(mut self, round: u64, phase: ClientPhase) -> Self {
        self.vanish_at = Some((round, phase));
        self
    }

    /// Uses this identity instead of reading `identity.key` (it must be the certificate's key).
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Uses this data source instead of `[data]`.
    pub fn data_source(mut self, source: impl DataSource + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Trains on this device instead of selecting one from `agent.backend`.
    pub fn device(mut self, device: TrainDevice) -> Self {
        self.device = Some(device);
        self
    }

    /// Masks on this [`Masker`] instead of the default: the GPU kernels on the trainer's own
    /// wgpu device when it trains on a GPU, else the CPU.
    pub fn masker(mut self, masker: Masker) -> Self {
        self.masker = Some(masker);
        self
    }

    /// Called after every round.
    pub fn on_round(mut self, callback: impl FnMut(&RoundReport) + Send + 'static) -> Self {
        self.on_round = Some(Box::new(callback));
        self
    }

    /// Runs until the task completes or `shutdown` resolves (then it leaves the round
    /// cleanly). Needs a tokio runtime.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<AgentReport, AgentError> {
        let cfg = self.config;
        let identity = match self.identity {
            Some(i) => i,
            None => load_identity(&cfg.identity.key)?,
        };
        let client = ClientId::from_identity(&identity.public());
        let source: Box<dyn DataSource + Send + Sync> = match (self.source, &cfg.data) {
            (Some(s), _) => s,
            (None, Some(d)) => Box::new(CsvSource::new(&d.path, &d.label)),
            (None, None) => return Err(AgentError::NoData),
        };
        let device = match self.device {
            Some(d) => d,
            None => TrainDevice::select(cfg.agent.backend)?,
        };
        let masker = self.masker.unwrap_or_else(|| default_masker(&device));
        let creds = Credentials::load(&cfg.identity.cert, &cfg.identity.key)?;
        let trust = Trust::load(&cfg.identity.ca, None)?;
        let tls = client_config(&creds, &trust)?;
        let ep = endpoint::client(cfg.aggregator.address, tls, &Settings::default())?;
        let state_dir = cfg.agent.state_dir.clone();
        let state_err = |cause| AgentError::State {
            path: state_dir.clone(),
            cause,
        };
        #[cfg(feature = "chain")]
        let (chain, evaluations, follower) = match cfg.chain.as_ref().filter(|c| c.key.is_some()) {
            Some(section) => {
                let (side, rx, handle) =
                    super::chain::start(section, identity.public(), &cfg.agent.state_dir).await?;
                (Some(side), Some(rx), Some(handle))
            }
            None => (None, None, None),
        };
        #[cfg(not(feature = "chain"))]
        let evaluations = match cfg.chain.as_ref().filter(|c| c.key.is_some()) {
            Some(_) => {
                return Err(AgentError::Chain(
                    "this agent was built without the `chain` feature".into(),
                ));
            }
            None => None,
        };
        let mut state = AgentState::load(&state_dir).map_err(state_err)?;
        if state.task != cfg.task {
            state = AgentState {
                task: cfg.task.clone(),
                ..AgentState::default()
            };
        }
        state.client = Some(client.0);
        let mut session = Session {
            cfg,
            identity,
            client,
            source,
            device,
            masker,
            ep,
            state,
            on_round: self.on_round,
            prepared: None,
            round: None,
            backlog: VecDeque::new(),
            conn: None,
            evaluations,
            #[cfg(feature = "chain")]
            chain,
            #[cfg(feature = "test-hooks")]
            vanish_at: self.vanish_at,
        };
        #[cfg(feature = "chain")]
        let _follower = follower.map(AbortOnDrop);
        let mut backoff = Duration::from_millis(250);
        tokio::pin!(shutdown);
        loop {
            let outcome = tokio::select! {
                r = session.connect_and_serve() => r,
                () = &mut shutdown => Ok(End::ShutDown),
            };
            match outcome {
                Ok(end) => {
                    if matches!(end, End::ShutDown) {
                        session.leave().await;
                    }
                    session.save()?;
                    return Ok(AgentReport {
                        client,
                        state: session.state,
                        completed: matches!(end, End::Completed),
                    });
                }
                Err(e) if e.is_fatal() => return Err(e),
                Err(e) => {
                    let max = Duration::from_millis(session.cfg.agent.max_backoff_ms);
                    let wait = jitter(backoff);
                    warn!("{e}; reconnecting in {:.1} s", wait.as_secs_f64());
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {},
                        () = &mut shutdown => return Ok(AgentReport { client, state: session.state, completed: false }),
                    }
                    backoff = (backoff * 2).min(max);
                }
            }
        }
    }
}

/// The GPU kernels on the trainer's wgpu device when it has one (the update is masked where it
/// was trained), else the CPU.
fn default_masker(device: &TrainDevice) -> Masker {
    #[cfg(feature = "train-gpu")]
    if let Some((device, queue, info)) = device.wgpu_handles() {
        let name = info.name.clone();
        match edge_kernels::gpu::GpuKernels::from_device(device, queue, info) {
            Ok(k) => {
                info!(adapter = %name, "masking on the GPU, on the trainer's device");
                return Masker::Gpu(Arc::new(k));
            }
            Err(e) => warn!(adapter = %name, "GPU kernels unavailable, masking on the CPU: {e}"),
        }
    }
    let _ = device;
    Masker::Cpu
}

/// Between half and all of `d`, drawn fresh each time, so that agents cut off together do not
/// reconnect together.
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let r = getrandom::fill(&mut b).map_or(0, |()| u16::from_le_bytes(b));
    d.mul_f64(0.5 + 0.5 * f64::from(r) / f64::from(u16::MAX))
}

enum End {
    Completed,
    ShutDown,
}

struct Prepared {
    info: TaskInfo,
    train: Arc<Dataset>,
    /// Held out: what this agent judges candidates on as a voter.
    val: Arc<Dataset>,
}

/// Stops a spawned task when the agent's run ends.
#[cfg(feature = "chain")]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

#[cfg(feature = "chain")]
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct ActiveRound {
    attempt: u64,
    number: u64,
    client: Client,
    input: Option<PendingInput>,
    samples: u64,
    train_seconds: f64,
}

struct Session {
    cfg: AgentConfig,
    identity: Identity,
    client: ClientId,
    source: Box<dyn DataSource + Send + Sync>,
    device: TrainDevice,
    masker: Masker,
    ep: quinn::Endpoint,
    state: AgentState,
    on_round: Option<RoundCallback>,
    prepared: Option<Prepared>,
    round: Option<ActiveRound>,
    backlog: VecDeque<AggregatorMessage>,
    /// The open connection, kept here so that a shutdown can say goodbye on it.
    conn: Option<Connection>,
    /// Voter requests from the chain follower.
    evaluations: Option<mpsc::UnboundedReceiver<Evaluate>>,
    /// The task on chain, to check announced models.
    #[cfg(feature = "chain")]
    chain: Option<super::chain::ChainSide>,
    #[cfg(feature = "test-hooks")]
    vanish_at: Option<(u64, ClientPhase)>,
}

struct Link {
    conn: Connection,
    rx: mpsc::UnboundedReceiver<AggregatorMessage>,
}

impl Session {
    fn save(&self) -> Result<(), AgentError> {
        self.state
            .save(&self.cfg.agent.state_dir)
            .map_err(|cause| AgentError::State {
                path: self.cfg.agent.state_dir.clone(),
                cause,
            })
    }

    /// Tells the aggregator this agent leaves the task and closes the connection, so that it
    /// stops counting on this agent at once rather than at the idle timeout.
    async fn leave(&mut self) {
        self.round = None;
        if let Some(conn) = self.conn.take() {
            let bye = frames::send(&conn, &AgentMessage::Leave);
            let _ = tokio::time::timeout(Duration::from_secs(1), bye).await;
            conn.close(0u32.into(), b"agent leaving");
        }
    }

    async fn connect_and_serve(&mut self) -> Result<End, AgentError> {
        let addr = self.cfg.aggregator.address;
        let conn = endpoint::connect(&self.ep, addr, &self.cfg.aggregator.server_name).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let reader = conn.clone();
        tokio::spawn(async move {
            loop {
                let stream = match reader.accept_uni().await {
                    Ok(s) => s,
                    Err(_) => return,
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    match frames::read::<AggregatorMessage>(stream).await {
                        Ok(msg) => {
                            let _ = tx.send(msg);
                        }
                        Err(e) => warn!("stream from the aggregator closed: {e}"),
                    }
                });
            }
        });
        let mut link = Link { conn, rx };
        self.round = None;
        self.backlog.clear();
        let task = TaskId::from_name(&self.cfg.task);
        frames::send(
            &link.conn,
            &AgentMessage::Hello {
                task,
                last_round: self.state.last_round,
            },
        )
        .await?;
        info!(%addr, client = %self.client, "connected");
        self.conn = Some(link.conn.clone());
        let result = self.serve(&mut link).await;
        self.conn = None;
        link.conn.close(0u32.into(), b"bye");
        result
    }

    async fn next_message(&mut self, link: &mut Link) -> Result<AggregatorMessage, AgentError> {
        if let Some(m) = self.backlog.pop_front() {
            return Ok(m);
        }
        loop {
            let deadline = self.round.as_ref().and_then(|r| r.client.poll_timeout());
            tokio::select! {
                m = link.rx.recv() => {
                    return m.ok_or_else(|| AgentError::Transport(TransportError::Connection(
                        link.conn.close_reason().map_or("closed".into(), |r| r.to_string()))));
                }
                Some(request) = next_request(&mut self.evaluations) => {
                    self.evaluate(link, request).await?;
                }
                () = sleep_until(deadline) => {
                    if let Some(r) = &mut self.round {
                        r.client.handle_timeout(Instant::now());
                    }
                    self.pump(link).await?;
                }
            }
        }
    }

    async fn serve(&mut self, link: &mut Link) -> Result<End, AgentError> {
        let mut early_round = None;
        loop {
            match self.next_message(link).await? {
                AggregatorMessage::Welcome { client, task } => {
                    if client != self.client {
                        return Err(AgentError::Protocol(format!(
                            "id {client}, this agent is {}",
                            self.client
                        )));
                    }
                    let info: TaskInfo = serde_json::from_slice(&task).map_err(|e| {
                        AgentError::Protocol(format!("a task description that does not parse: {e}"))
                    })?;
                    self.prepare(info)?;
                    // A round announced before the welcome (streams may overtake each other).
                    if let Some(round) = early_round.take() {
                        self.backlog.push_back(round);
                    }
                }
                round @ AggregatorMessage::Round { .. } if self.prepared.is_none() => {
                    early_round = Some(round);
                }
                AggregatorMessage::Round {
                    attempt,
                    config,
                    model,
                    sample_cap,
                } => {
                    self.start_round(link, attempt, config, ModelId(model), sample_cap)
                        .await?;
                    self.pump(link).await?;
                }
                AggregatorMessage::Secagg { attempt, msg } => {
                    if let Some(r) = &mut self.round
                        && r.attempt == attempt
                        && let Err(e) = r.client.handle(msg, Instant::now())
                    {
                        warn!(round = r.number, "leaving the round: {e}");
                        self.round = None;
                    }
                    self.pump(link).await?;
                }
                AggregatorMessage::RoundDone {
                    round,
                    model,
                    contributors,
                    last,
                } => {
                    self.finish_round(round, ModelId(model), &contributors)?;
                    if last {
                        info!(round, model = %ModelId(model), "task complete");
                        return Ok(End::Completed);
                    }
                }
                AggregatorMessage::TaskComplete { round, model } => {
                    info!(round, model = %ModelId(model), "task complete");
                    self.state.last_round = Some(round);
                    self.state.model = Some(ModelId(model).to_string());
                    return Ok(End::Completed);
                }
                AggregatorMessage::ModelChunk { .. } => {}
                AggregatorMessage::Refused(reason) => return Err(AgentError::Refused(reason)),
            }
        }
    }

    fn prepare(&mut self, info: TaskInfo) -> Result<(), AgentError> {
        let data = self.source.load(info.classes)?;
        let val_fraction = self.cfg.data.as_ref().map_or(0.0, |d| d.val_fraction);
        let (mut train, mut val) = split(&data, info.classes, val_fraction, 0)?;
        let scaler = match &info.normalisation {
            Some(n) => Standardizer {
                mean: n.mean.clone(),
                std: n.std.clone(),
            },
            None => Standardizer::fit(&train),
        };
        scaler.apply(&mut train)?;
        if !val.is_empty() {
            scaler.apply(&mut val)?;
        }
        info!(task = %info.name, model = %info.spec.describe(), samples = train.len(), held_out = val.len(), "task joined");
        self.prepared = Some(Prepared {
            info,
            train: Arc::new(train),
            val: Arc::new(val),
        });
        Ok(())
    }

    /// The model `id`, from the cache or fetched from the aggregator and checked.
    async fn model(&mut self, link: &mut Link, id: ModelId) -> Result<Params, AgentError> {
        let dir = self.cfg.agent.state_dir.join("models");
        let path = dir.join(format!("{id}.safetensors"));
        if path.exists()
            && let Ok(p) = file::load_verified(&path, &id)
        {
            return Ok(p);
        }
        frames::send(&link.conn, &AgentMessage::FetchModel { id: id.0 }).await?;
        let mut bytes: Vec<u8> = Vec::new();
        let mut received = 0u64;
        let mut total = None;
        let mut held = VecDeque::new();
        while total.is_none_or(|t| received < t) {
            let msg = match link.rx.recv().await {
                Some(m) => m,
                None => {
                    return Err(AgentError::Transport(TransportError::Connection(
                        "closed during a model download".into(),
                    )));
                }
            };
            match msg {
                AggregatorMessage::ModelChunk {
                    id: cid,
                    offset,
                    total: t,
                    bytes: piece,
                } if cid == id.0 => {
                    if t > 1 << 32 || offset + piece.len() as u64 > t {
                        return Err(AgentError::Protocol(format!(
                            "a model chunk beyond its file ({offset}+{} of {t})",
                            piece.len()
                        )));
                    }
                    if bytes.len() as u64 != t {
                        bytes.resize(t as usize, 0);
                    }
                    bytes[offset as usize..offset as usize + piece.len()].copy_from_slice(&piece);
                    received += piece.len() as u64;
                    total = Some(t);
                }
                AggregatorMessage::Refused(r) => return Err(AgentError::Refused(r)),
                other => held.push_back(other),
            }
        }
        self.backlog.extend(held);
        let actual = ModelId::of(&bytes);
        if actual != id {
            return Err(AgentError::ModelRefused(format!(
                "the aggregator sent a model file whose bytes hash to {actual}, not to the announced {id}"
            )));
        }
        let params = file::decode(&bytes, &path)?;
        std::fs::create_dir_all(&dir).map_err(|cause| AgentError::State {
            path: dir.clone(),
            cause,
        })?;
        file::save(&path, &params)?;
        Ok(params)
    }

    /// The model `id` once the chain (if any) confirms it is the last accepted one.
    async fn checked_model(&mut self, link: &mut Link, id: ModelId) -> Result<Params, AgentError> {
        #[cfg(feature = "chain")]
        if let Some(chain) = &self.chain {
            chain.check_model(id).await?;
        }
        self.model(link, id).await
    }

    /// Judges a candidate for the chain follower: both models fetched and checked against
    /// their ids, evaluated on the held-out data (the training data when none is held out).
    async fn evaluate(&mut self, link: &mut Link, request: Evaluate) -> Result<(), AgentError> {
        let Some(prepared) = &self.prepared else {
            let _ = request
                .reply
                .send(Err("the task description has not arrived".into()));
            return Ok(());
        };
        let data = if prepared.val.is_empty() {
            prepared.train.clone()
        } else {
            prepared.val.clone()
        };
        let mut models = Vec::with_capacity(2);
        for id in [request.candidate, request.previous] {
            match self.model(link, id).await {
                Ok(p) => models.push(p),
                Err(AgentError::ModelRefused(reason)) => {
                    tracing::error!(
                        round = request.round,
                        "cannot judge the candidate: {reason}"
                    );
                    self.state.last_refusal = Some(format!("round {}: {reason}", request.round));
                    self.save()?;
                    let _ = request.reply.send(Err(reason));
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        let device = self.device.clone();
        let judged = tokio::task::spawn_blocking(move || {
            let mut acc = Vec::with_capacity(2);
            for m in &models {
                acc.push(crate::train::evaluate(&device, m, &data)?.accuracy);
            }
            Ok::<_, TrainError>(acc)
        })
        .await
        .map_err(|e| AgentError::Protocol(format!("evaluation task failed: {e}")))?;
        let verdict = match judged {
            Ok(acc) => Ok(Verdict {
                candidate: acc.first().copied().unwrap_or(0.0),
                previous: acc.get(1).copied().unwrap_or(0.0),
            }),
            Err(e) => Err(e.to_string()),
        };
        if let Ok(v) = &verdict {
            info!(
                round = request.round,
                candidate = v.candidate,
                previous = v.previous,
                "candidate judged"
            );
        }
        let _ = request.reply.send(verdict);
        Ok(())
    }

    async fn start_round(
        &mut self,
        link: &mut Link,
        attempt: u64,
        config: RoundConfig,
        model: ModelId,
        sample_cap: u64,
    ) -> Result<(), AgentError> {
        let number = config.round;
        let Some(prepared) = &self.prepared else {
            return Err(AgentError::Protocol(
                "a round before the task description".into(),
            ));
        };
        let (info, train) = (prepared.info.clone(), prepared.train.clone());
        let global = match self.checked_model(link, model).await {
            Ok(g) => g,
            Err(AgentError::ModelRefused(reason)) => {
                tracing::error!(round = number, "not training this round: {reason}");
                self.state.last_refusal = Some(format!("round {number}: {reason}"));
                self.save()?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if *global.spec() != info.spec {
            return Err(AgentError::Protocol(format!(
                "model {model} is not a {}",
                info.spec.describe()
            )));
        }
        let device = self.device.clone();
        let training = TrainConfig {
            seed: info.training.seed.wrapping_add(number),
            ..info.training.clone()
        };
        let started = Instant::now();
        let update = tokio::task::spawn_blocking(move || {
            train_local(&device, &global, &train, &training, &mut |_| {})
        })
        .await
        .map_err(|e| AgentError::Protocol(format!("training task failed: {e}")))??;
        let train_seconds = started.elapsed().as_secs_f64();
        let input = PendingInput::new(&config, update.delta, update.samples, sample_cap)?;
        #[cfg(feature = "test-hooks")]
        self.reveal(number, &input.quantised()?);
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| AgentError::Protocol(format!("no system randomness: {e}")))?;
        let mut rng = ChaCha20Rng::from_seed(seed);
        let client = Client::new(
            config,
            self.client,
            &self.identity,
            &mut rng,
            Instant::now(),
        )
        .map_err(|e| AgentError::Protocol(format!("round {number} configuration refused: {e}")))?;
        info!(
            round = number,
            samples = update.samples,
            train_seconds,
            "trained; joining SecAgg+"
        );
        self.round = Some(ActiveRound {
            attempt,
            number,
            client,
            input: Some(input),
            samples: update.samples,
            train_seconds,
        });
        Ok(())
    }

    #[cfg(feature = "test-hooks")]
    fn reveal(&self, round: u64, input: &[u32]) {
        let dir = self.cfg.agent.state_dir.join("revealed");
        let bytes: Vec<u8> = input.iter().flat_map(|w| w.to_le_bytes()).collect();
        let _ = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join(format!("round-{round}.u32")), bytes));
    }

    /// Submits the input when the protocol is ready for it and sends what it queued.
    async fn pump(&mut self, link: &Link) -> Result<(), AgentError> {
        let Some(r) = &mut self.round else {
            return Ok(());
        };
        if r.client.phase() == ClientPhase::AwaitingInput
            && let Some(input) = r.input.take()
            && let Err(e) = input.submit(&mut r.client, &self.masker)
        {
            warn!(round = r.number, "input refused: {e}");
            self.round = None;
            return Ok(());
        }
        let mut out: Vec<ClientMessage> = Vec::new();
        while let Some(m) = r.client.poll_transmit() {
            out.push(m);
        }
        let attempt = r.attempt;
        for msg in out {
            frames::send(&link.conn, &AgentMessage::Secagg { attempt, msg }).await?;
        }
        #[cfg(feature = "test-hooks")]
        if self.vanish_at == Some((r.number, r.client.phase())) {
            return Err(AgentError::Vanished(r.number));
        }
        Ok(())
    }

    fn finish_round(
        &mut self,
        round: u64,
        model: ModelId,
        contributors: &[ClientId],
    ) -> Result<(), AgentError> {
        let contributed = contributors.contains(&self.client);
        let (samples, train_seconds) = match self.round.take() {
            Some(r) if r.number == round => (r.samples, r.train_seconds),
            other => {
                self.round = other;
                (0, 0.0)
            }
        };
        self.state.last_round = Some(round);
        self.state.model = Some(model.to_string());
        self.state.contributed += u64::from(contributed);
        self.save()?;
        info!(round, %model, contributed, "round done");
        if let Some(cb) = &mut self.on_round {
            cb(&RoundReport {
                round,
                model,
                contributed,
                samples,
                train_seconds,
            });
        }
        Ok(())
    }
}

use flock_model::task::TrainConfig;

/// The next voter request, or never when there is no chain follower.
async fn next_request(rx: &mut Option<mpsc::UnboundedReceiver<Evaluate>>) -> Option<Evaluate> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
