//! `flock-aggregator serve`, the I/O shell around the round machine (`round`): the
//! QUIC endpoint with mutual TLS and its accept loop (each connection in a task of its own,
//! `connection`), the revocation list's reloading, the metrics endpoint, the chain driver when
//! the task is on chain, and one loop that feeds the machine what happens and carries out
//! what it asks: model files and the task state made durable in the store (retried), then the
//! messages sent. One task per process.

mod connection;
mod error;
mod restore;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flock_protocol::ClientId;
use flock_transport::endpoint::{self, Settings};
use flock_transport::revocation::RevocationWatch;
use flock_transport::tls::{Credentials, Trust, server_config};
use quinn::Connection;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

pub use crate::chain_driver::ChainDriveError;
pub use crate::round::{BuildError, RoundError, RoundSummary};
pub use error::ServeError;

use crate::chain_driver::{self, ChainLink};
use crate::config::Config;
use crate::mailbox::{Candidate, ChainInput, ChainRequest, Input};
use crate::metrics::{Metrics, serve_http};
use crate::round::{Event, Governance, ModelFile, RoundMachine};
use crate::store::{ModelStore, TaskState};
use connection::NetEvent;

/// How often the revocation list's file is looked at.
const CRL_CHECK: Duration = Duration::from_secs(2);
/// Tries of one write to the store before serving stops; the pause doubles from 500 ms.
const STORE_TRIES: u32 = 5;

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
    let http = match config.server.metrics {
        Some(at) => Some(start_http(at, metrics.clone()).await?),
        None => None,
    };
    on_listen(Listening {
        quic: addr,
        metrics: http.as_ref().map(|(a, _)| *a),
    });

    let store = ModelStore::open_at(&config.server.store)?;
    let restored = {
        let (store, config) = (store.clone(), config.clone());
        blocking(move || restore::restore(&store, &config)).await?
    };
    let (governance, chain) = match &config.chain {
        Some(section) => (
            Governance::chain(),
            Some(chain_driver::start(&config, section).await?),
        ),
        None => (Governance::local(), None),
    };
    let crl = config.server.crl.clone().map(|crl| {
        RevocationWatch::new(
            ep.clone(),
            identity,
            config.server.ca.clone(),
            crl,
            settings,
        )
    });
    let machine = RoundMachine::new(config, restored, governance, metrics.clone())
        .map_err(ServeError::TaskInfo)?;

    let (net_tx, net_rx) = mpsc::unbounded_channel();
    let accept_ep = ep.clone();
    let accept = {
        let (store, metrics) = (store.clone(), metrics.clone());
        tokio::spawn(async move {
            while let Some(incoming) = accept_ep.accept().await {
                let (net_tx, store, metrics) = (net_tx.clone(), store.clone(), metrics.clone());
                tokio::spawn(connection::run(incoming, net_tx, store, metrics));
            }
        })
    };
    let watch = crl.map(|w| tokio::spawn(w.run(CRL_CHECK)));
    let mut shell = Shell {
        machine,
        store,
        conns: BTreeMap::new(),
        awaiting: BTreeMap::new(),
    };
    let ended = shell.run(net_rx, chain, shutdown).await;

    accept.abort();
    if let Some(w) = watch {
        w.abort();
    }
    // Let the last messages leave before the endpoint closes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    ep.close(0u32.into(), b"task complete");
    // Wait (briefly) for the connections to drain, so that the port is free on return.
    let _ = tokio::time::timeout(Duration::from_secs(2), ep.wait_idle()).await;
    if let Some((_, task)) = http {
        task.abort();
    }
    ended?;
    Ok(ServeReport {
        rounds: shell.machine.summaries().to_vec(),
        state: shell.machine.state().clone(),
    })
}

/// Binds `/metrics` and `/healthz`.
async fn start_http(
    at: std::net::SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>), ServeError> {
    let bind_err = |cause| ServeError::Metrics { addr: at, cause };
    let listener = tokio::net::TcpListener::bind(at).await.map_err(bind_err)?;
    let bound = listener.local_addr().map_err(bind_err)?;
    info!(addr = %bound, "metrics on /metrics, health on /healthz");
    let task = tokio::spawn(async move {
        if let Err(e) = serve_http(listener, metrics).await {
            warn!("metrics endpoint stopped: {e}");
        }
    });
    Ok((bound, task))
}

/// The round loop's state outside the machine: connections and the chain driver's waiting
/// questions.
struct Shell {
    machine: RoundMachine,
    store: ModelStore,
    /// The open connection of each agent.
    conns: BTreeMap<ClientId, Connection>,
    /// Candidates the chain driver waits for, by round.
    awaiting: BTreeMap<u64, oneshot::Sender<Option<Candidate>>>,
}

impl Shell {
    /// Feeds the machine until the task is done, `shutdown` resolves, or something fails that
    /// retrying does not cure.
    async fn run(
        &mut self,
        mut net: mpsc::UnboundedReceiver<NetEvent>,
        chain: Option<ChainLink>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let (mut driver, mut requests) = match chain {
            Some(link) => (Some(link.driver), Some(link.requests)),
            None => (None, None),
        };
        tokio::pin!(shutdown);
        while !self.machine.is_done() {
            let deadline = self.machine.poll_timeout();
            tokio::select! {
                event = net.recv() => match event {
                    Some(e) => self.on_net(e)?,
                    None => break,
                },
                Some(request) = next_request(&mut requests) => self.on_chain(request)?,
                () = sleep_until(deadline) => self.machine.handle_timeout(Instant::now())?,
                () = &mut shutdown => {
                    info!("shutting down");
                    break;
                }
                ended = join_driver(&mut driver) => match ended {
                    Ok(()) => info!("the task is complete on chain"),
                    Err(e) => return Err(e.into()),
                },
            }
            self.drain().await?;
        }
        if let Some(d) = driver {
            d.abort();
        }
        Ok(())
    }

    fn on_net(&mut self, event: NetEvent) -> Result<(), ServeError> {
        let now = Instant::now();
        let input = match event {
            NetEvent::Joined {
                client,
                identity,
                conn,
            } => {
                if let Some(old) = self.conns.insert(client, conn) {
                    old.close(0u32.into(), b"replaced by a newer connection");
                }
                Input::Joined { client, identity }
            }
            NetEvent::Lost { client, conn_id } => {
                // A newer connection of the same agent may have replaced this one.
                if self
                    .conns
                    .get(&client)
                    .is_none_or(|c| c.stable_id() != conn_id)
                {
                    return Ok(());
                }
                self.conns.remove(&client);
                Input::Lost { client }
            }
            NetEvent::Message { client, msg } => Input::Message { client, msg },
        };
        Ok(self.machine.handle(input, now)?)
    }

    fn on_chain(&mut self, request: ChainRequest) -> Result<(), ServeError> {
        let input = match request {
            ChainRequest::Ready(reply) => {
                let _ = reply.send(self.machine.ready_members().collect());
                return Ok(());
            }
            ChainRequest::Train {
                round,
                proposers,
                prev,
                seed,
                reply,
            } => {
                self.awaiting.insert(round, reply);
                ChainInput::Train {
                    round,
                    proposers,
                    prev,
                    seed,
                }
            }
            ChainRequest::Finalised {
                round,
                outcome,
                accepted,
            } => ChainInput::Finalised {
                round,
                outcome,
                accepted,
            },
        };
        Ok(self.machine.handle_chain(input, Instant::now())?)
    }

    /// Carries out what the machine asked, in its order: durable writes first, then the
    /// answers to the chain driver, then the messages.
    async fn drain(&mut self) -> Result<(), ServeError> {
        while let Some(event) = self.machine.poll_event() {
            match event {
                Event::Persist { models, state } => self.persist(models, state).await?,
                Event::Candidate { round, candidate } => {
                    if let Some(reply) = self.awaiting.remove(&round) {
                        let _ = reply.send(candidate);
                    }
                }
            }
        }
        while let Some((to, msg)) = self.machine.poll_transmit() {
            if let Some(conn) = self.conns.get(&to) {
                connection::send(conn, msg);
            }
        }
        Ok(())
    }

    /// Stores `models`, then `state`, retrying failures with backoff.
    async fn persist(
        &self,
        models: Vec<ModelFile>,
        state: Option<TaskState>,
    ) -> Result<(), ServeError> {
        let (models, state) = (Arc::new(models), Arc::new(state));
        let mut pause = Duration::from_millis(500);
        for attempt in 1..=STORE_TRIES {
            let (store, models, state) = (self.store.clone(), models.clone(), state.clone());
            let written = blocking(move || {
                for m in models.iter() {
                    store.put_bytes(&m.id, &m.bytes)?;
                }
                match state.as_ref() {
                    Some(s) => store.save_state(s),
                    None => Ok(()),
                }
            })
            .await;
            match written {
                Ok(()) => return Ok(()),
                Err(e) if attempt < STORE_TRIES => {
                    warn!("model store: {e}; trying again in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Runs the store's synchronous `f` off the async workers.
async fn blocking<T: Send + 'static, E: Into<ServeError> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ServeError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Into::into),
        Err(e) => Err(ServeError::Worker(e.to_string())),
    }
}

/// The chain driver's next request, or never without one.
async fn next_request(
    requests: &mut Option<mpsc::UnboundedReceiver<ChainRequest>>,
) -> Option<ChainRequest> {
    match requests {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
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
