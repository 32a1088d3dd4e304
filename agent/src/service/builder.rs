//! [`AgentBuilder`], the embedding API: a config, optionally an identity, a data source, a
//! training device, a masker and a round callback; [`AgentBuilder::run`] joins the task on
//! chain when configured, then connects to the aggregator over QUIC with mutual TLS and runs
//! the session, reconnecting with exponential backoff and jitter after anything a reconnect can
//! cure, and leaving cleanly on shutdown. No global state.

use std::sync::Arc;
use std::time::Duration;

use flock_protocol::session::AgentMessage;
use flock_protocol::{ClientId, Identity};
use flock_transport::endpoint::{self, Settings};
use flock_transport::tls::{Credentials, Trust, client_config};
use flock_transport::{TransportError, frames};
use quinn::Connection;
use tokio::sync::mpsc;
use tracing::{info, warn};

#[cfg(feature = "test-hooks")]
use flock_protocol::{ClientPhase, RoundConfig, wire::ClientMessage};

/// Test hook: rewrites each SecAgg+ message of an attempt (whose configuration it is given)
/// before it leaves, as a hostile device would.
#[cfg(feature = "test-hooks")]
pub type Tamper = Box<dyn FnMut(&RoundConfig, &mut ClientMessage) + Send>;

use super::chain_side::{BoxFuture, ChainParts};
use super::driver::{Driver, End, Link, Outbox, RoundCallback, Work};
use super::input::Masker;
use super::models::ModelCache;
use super::session::Session;
use super::{AgentConfig, AgentError, AgentState, chain_impl, load_identity};
use crate::data::{CsvSource, DataSource};
use crate::train::TrainDevice;

/// What one round did, for the embedder's callback.
#[derive(Clone, Debug)]
pub struct RoundReport {
    /// The round.
    pub round: u64,
    /// The new global model.
    pub model: flock_model::ModelId,
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

/// The first pause before a reconnect; it doubles up to `agent.max_backoff_ms`.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// Builds an agent from a config, an optional identity and an optional data source.
pub struct AgentBuilder {
    config: AgentConfig,
    identity: Option<Identity>,
    source: Option<Arc<dyn DataSource + Send + Sync>>,
    device: Option<TrainDevice>,
    masker: Option<Masker>,
    on_round: Option<RoundCallback>,
    #[cfg(feature = "test-hooks")]
    vanish_at: Option<(u64, ClientPhase)>,
    #[cfg(feature = "test-hooks")]
    tamper: Option<Tamper>,
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
            #[cfg(feature = "test-hooks")]
            tamper: None,
        }
    }

    /// Test hook: rewrite every SecAgg+ message before it leaves ([`Tamper`]), to play a
    /// hostile device with a valid certificate.
    #[cfg(feature = "test-hooks")]
    pub fn tamper(
        mut self,
        tamper: impl FnMut(&RoundConfig, &mut ClientMessage) + Send + 'static,
    ) -> Self {
        self.tamper = Some(Box::new(tamper));
        self
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
        self.source = Some(Arc::new(source));
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
        let source: Arc<dyn DataSource + Send + Sync> = match (self.source, &cfg.data) {
            (Some(s), _) => s,
            (None, Some(d)) => Arc::new(CsvSource::new(&d.path, &d.label)),
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
        let chain = match cfg.chain.as_ref().filter(|c| c.key.is_some()) {
            Some(section) => Some(chain_impl::start(section, identity.public(), &state_dir).await?),
            None => None,
        };
        let mut state = AgentState::load(&state_dir).map_err(|cause| AgentError::StateFile {
            path: state_dir.join("state.json"),
            cause,
        })?;
        if state.task != cfg.task {
            state = AgentState {
                task: cfg.task.clone(),
                ..AgentState::default()
            };
        }
        state.client = Some(client.0);
        #[allow(unused_mut)]
        let mut session = Session::new(identity, &cfg.task, cfg.secagg, state, masker);
        #[cfg(feature = "test-hooks")]
        session.vanish_at(self.vanish_at);
        #[cfg(feature = "test-hooks")]
        session.tamper(self.tamper);
        let (gate, evaluations, follower) = match chain {
            Some(ChainParts {
                gate,
                evaluations,
                follower,
            }) => (Some(gate), Some(evaluations), Some(AbortOnDrop(follower))),
            None => (None, None, None),
        };
        let _follower = follower;
        let work = Work {
            cache: ModelCache::new(&state_dir),
            device,
            source,
            val_fraction: cfg.data.as_ref().map_or(0.0, |d| d.val_fraction),
            state_dir,
            gate,
        };
        let mut driver = Driver::new(session, work, evaluations, self.on_round);
        let max_backoff = Duration::from_millis(cfg.agent.max_backoff_ms);
        let mut backoff = FIRST_BACKOFF;
        let mut current: Option<Connection> = None;
        tokio::pin!(shutdown);
        loop {
            let outcome = tokio::select! {
                r = connect_and_serve(&ep, &cfg, &mut driver, &mut current) => r,
                () = &mut shutdown => Ok(End::ShutDown),
            };
            match outcome {
                Ok(end) => {
                    if let Some(conn) = current.take() {
                        if end == End::ShutDown {
                            driver.leave(&QuicOutbox(conn.clone())).await;
                        }
                        conn.close(0u32.into(), b"agent leaving");
                    }
                    driver.save()?;
                    return Ok(AgentReport {
                        client,
                        state: driver.session.state().clone(),
                        completed: end == End::Completed,
                    });
                }
                Err(e) if e.is_fatal() => return Err(e),
                Err(e) => {
                    let wait = jitter(backoff);
                    warn!("{e}; reconnecting in {:.1} s", wait.as_secs_f64());
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {},
                        () = &mut shutdown => {
                            return Ok(AgentReport {
                                client,
                                state: driver.session.state().clone(),
                                completed: false,
                            });
                        }
                    }
                    backoff = (backoff * 2).min(max_backoff);
                }
            }
        }
    }
}

/// Connects to the aggregator and runs the session on the connection, which stays in
/// `current` until it ends (so that a shutdown can say goodbye on it).
async fn connect_and_serve(
    ep: &quinn::Endpoint,
    cfg: &AgentConfig,
    driver: &mut Driver,
    current: &mut Option<Connection>,
) -> Result<End, AgentError> {
    let addr = cfg.aggregator.address;
    let conn = endpoint::connect(ep, addr, &cfg.aggregator.server_name).await?;
    info!(%addr, client = %driver.session.client(), "connected");
    *current = Some(conn.clone());
    let mut link = Link {
        out: Arc::new(QuicOutbox(conn.clone())),
        inbox: read_messages(conn.clone()),
    };
    let result = driver.serve(&mut link).await;
    *current = None;
    conn.close(0u32.into(), b"bye");
    result
}

/// Every message the aggregator sends on `conn`, then why the connection ended.
fn read_messages(conn: Connection) -> super::driver::Inbox {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let deliver = {
            let tx = tx.clone();
            move |msg| {
                let _ = tx.send(Ok(msg));
            }
        };
        let refused = |e: TransportError| warn!("stream from the aggregator closed: {e}");
        let ended = frames::read_frames(&conn, deliver, refused).await;
        let _ = tx.send(Err(ended));
    });
    rx
}

/// Messages to the aggregator on a QUIC connection, one stream each.
struct QuicOutbox(Connection);

impl Outbox for QuicOutbox {
    fn send<'a>(&'a self, msg: &'a AgentMessage) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(frames::send(&self.0, msg))
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

/// Stops the chain follower when the agent's run ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
