//! The agent's message loop: it feeds the session machine (`session`) what arrives from the
//! aggregator, the voter's requests and what its jobs finish, and carries out the machine's
//! actions: the task's data prepared, announced models checked on chain (retried while the
//! chain does not answer), model files read from and kept in the cache, training and
//! evaluation on blocking threads, the state saved. The link to the aggregator is anything
//! that delivers its messages and sends ours ([`Link`]): QUIC (`builder`) or memory (tests).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use flock_protocol::session::{AgentMessage, AggregatorMessage};
use flock_transport::TransportError;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::chain_side::{BoxFuture, ModelGate, PATIENCE, RoundRoles, check};
use super::models::ModelCache;
use super::session::{Action, Prepared, Session};
use super::vote::{Evaluate, Verdict};
use super::{AgentError, RoundReport};
use crate::data::{DataSource, Standardizer, split};
use crate::train::{LocalUpdate, TrainDevice, TrainError, train_local};

/// What the embedder's round callback is.
pub(crate) type RoundCallback = Box<dyn FnMut(&RoundReport) + Send>;

/// Messages from the aggregator; an error when the link ends, saying why.
pub(crate) type Inbox = mpsc::UnboundedReceiver<Result<AggregatorMessage, TransportError>>;

/// Where this agent's messages go.
pub(crate) trait Outbox: Send + Sync {
    /// Sends `msg`; done once the aggregator has it.
    fn send<'a>(&'a self, msg: &'a AgentMessage) -> BoxFuture<'a, Result<(), TransportError>>;
}

/// One connection to the aggregator.
pub(crate) struct Link {
    /// Our messages.
    pub out: Arc<dyn Outbox>,
    /// Theirs.
    pub inbox: Inbox,
}

/// How a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The task is complete.
    Completed,
    /// The agent was told to stop.
    ShutDown,
}

/// What the driver's jobs bring back.
enum Job {
    Prepared(Result<Prepared, AgentError>),
    Checked {
        attempt: u64,
        verdict: Result<Option<RoundRoles>, AgentError>,
    },
    Trained {
        attempt: u64,
        result: Result<(LocalUpdate, f64), TrainError>,
    },
    Evaluated {
        request: u64,
        round: u64,
        result: Result<Verdict, String>,
    },
}

/// What the driver needs to do the session's work.
pub(crate) struct Work {
    /// Where model files are kept.
    pub cache: ModelCache,
    /// What trains and evaluates.
    pub device: TrainDevice,
    /// The samples.
    pub source: Arc<dyn DataSource + Send + Sync>,
    /// The share of samples held out to judge candidates.
    pub val_fraction: f64,
    /// Where `state.json` (and test hooks' files) go.
    pub state_dir: PathBuf,
    /// The chain's gate for announced models (none off chain).
    pub gate: Option<Arc<dyn ModelGate>>,
}

/// The session machine and the means to do what it asks.
pub(crate) struct Driver {
    pub(crate) session: Session,
    work: Work,
    evaluations: Option<mpsc::UnboundedReceiver<Evaluate>>,
    replies: BTreeMap<u64, oneshot::Sender<Result<Verdict, String>>>,
    next_request: u64,
    jobs: JoinSet<Job>,
    on_round: Option<RoundCallback>,
}

impl Driver {
    /// A driver for `session`; `evaluations` are the chain follower's voter requests.
    pub(crate) fn new(
        session: Session,
        work: Work,
        evaluations: Option<mpsc::UnboundedReceiver<Evaluate>>,
        on_round: Option<RoundCallback>,
    ) -> Self {
        Self {
            session,
            work,
            evaluations,
            replies: BTreeMap::new(),
            next_request: 0,
            jobs: JoinSet::new(),
            on_round,
        }
    }

    /// Saves the session's state.
    pub(crate) fn save(&self) -> Result<(), AgentError> {
        Ok(self.session.state().save(&self.work.state_dir)?)
    }

    /// Runs the session over `link` until the task is complete or the link fails.
    pub(crate) async fn serve(&mut self, link: &mut Link) -> Result<End, AgentError> {
        self.session.connected();
        self.flush(link.out.as_ref()).await?;
        loop {
            if self.session.is_complete() {
                return Ok(End::Completed);
            }
            let deadline = self.session.poll_timeout();
            tokio::select! {
                m = link.inbox.recv() => match m {
                    Some(Ok(msg)) => self.session.handle_message(msg, Instant::now())?,
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(TransportError::Connection("the link ended".into()).into()),
                },
                Some(done) = self.jobs.join_next(), if !self.jobs.is_empty() => match done {
                    Ok(job) => self.on_job(job)?,
                    Err(e) => return Err(AgentError::Local(format!("a worker task failed: {e}"))),
                },
                Some(request) = next_request(&mut self.evaluations) => {
                    let id = self.next_request;
                    self.next_request += 1;
                    self.replies.insert(id, request.reply);
                    self.session.evaluate(id, request.round, request.candidate, request.previous);
                }
                () = sleep_until(deadline) => self.session.handle_timeout(Instant::now())?,
            }
            self.flush(link.out.as_ref()).await?;
        }
    }

    /// Tells the aggregator this agent leaves the task (bounded: it may be gone).
    pub(crate) async fn leave(&mut self, out: &dyn Outbox) {
        self.session.leave();
        while self.session.poll_action().is_some() {}
        while let Some(msg) = self.session.poll_transmit() {
            let sent = out.send(&msg);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), sent).await;
        }
    }

    /// Carries out the session's actions and sends its messages until it asks for nothing.
    async fn flush(&mut self, out: &dyn Outbox) -> Result<(), AgentError> {
        loop {
            let mut idle = true;
            while let Some(action) = self.session.poll_action() {
                idle = false;
                self.act(action)?;
            }
            while let Some(msg) = self.session.poll_transmit() {
                idle = false;
                out.send(&msg).await?;
            }
            #[cfg(feature = "test-hooks")]
            if let Some(round) = self.session.vanished() {
                return Err(AgentError::Vanished(round));
            }
            if idle {
                return Ok(());
            }
        }
    }

    fn act(&mut self, action: Action) -> Result<(), AgentError> {
        let work = &self.work;
        match action {
            Action::Prepare(info) => {
                let (source, val_fraction) = (work.source.clone(), work.val_fraction);
                self.jobs.spawn_blocking(move || {
                    Job::Prepared(prepare(source.as_ref(), info, val_fraction))
                });
            }
            Action::CheckRound { attempt, round, id } => match work.gate.clone() {
                None => self.session.check_done(attempt, Ok(None))?,
                Some(gate) => {
                    self.jobs.spawn(async move {
                        let verdict = check(gate.as_ref(), id, round, PATIENCE).await.map(Some);
                        Job::Checked { attempt, verdict }
                    });
                }
            },
            Action::LoadModel { id } => {
                let cached = work.cache.get(&id);
                self.session.cache_done(id, cached)?;
            }
            Action::KeepModel { id, bytes } => {
                if let Err(e) = work.cache.keep(&id, &bytes) {
                    warn!("model {id} not kept in the cache (it will be fetched again): {e}");
                }
            }
            Action::Train {
                attempt,
                global,
                data,
                training,
            } => {
                let device = work.device.clone();
                self.jobs.spawn_blocking(move || {
                    let started = Instant::now();
                    let result = train_local(&device, &global, &data, &training, &mut |_| {})
                        .map(|u| (u, started.elapsed().as_secs_f64()));
                    Job::Trained { attempt, result }
                });
            }
            Action::Evaluate {
                request,
                round,
                models,
                data,
            } => {
                let device = work.device.clone();
                self.jobs.spawn_blocking(move || {
                    let accuracy = |m: &flock_model::Params| {
                        crate::train::evaluate(&device, m, &data)
                            .map(|e| e.accuracy)
                            .map_err(|e| e.to_string())
                    };
                    let [candidate, previous] = &models;
                    let result = accuracy(candidate).and_then(|candidate| {
                        let previous = accuracy(previous)?;
                        Ok(Verdict {
                            candidate,
                            previous,
                        })
                    });
                    Job::Evaluated {
                        request,
                        round,
                        result,
                    }
                });
            }
            Action::Unjudged { request, reason } => self.reply(request, Err(reason)),
            Action::SaveState => self.save()?,
            Action::RoundDone(report) => {
                if let Some(cb) = &mut self.on_round {
                    cb(&report);
                }
            }
            #[cfg(feature = "test-hooks")]
            Action::Reveal { round, words } => {
                let dir = work.state_dir.join("revealed");
                let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
                let _ = std::fs::create_dir_all(&dir)
                    .and_then(|()| std::fs::write(dir.join(format!("round-{round}.u32")), bytes));
            }
        }
        Ok(())
    }

    fn on_job(&mut self, job: Job) -> Result<(), AgentError> {
        let now = Instant::now();
        match job {
            Job::Prepared(prepared) => self.session.prepare_done(prepared?, now),
            Job::Checked { attempt, verdict } => self.session.check_done(attempt, verdict),
            Job::Trained { attempt, result } => {
                let (update, seconds) = result?;
                let mut seed = [0u8; 64];
                getrandom::fill(&mut seed)
                    .map_err(|e| AgentError::Local(format!("no system randomness: {e}")))?;
                self.session.train_done(attempt, update, seconds, seed, now)
            }
            Job::Evaluated {
                request,
                round,
                result,
            } => {
                if let Ok(v) = &result {
                    info!(
                        round,
                        candidate = v.candidate,
                        previous = v.previous,
                        "candidate judged"
                    );
                }
                self.reply(request, result);
                Ok(())
            }
        }
    }

    fn reply(&mut self, request: u64, answer: Result<Verdict, String>) {
        if let Some(reply) = self.replies.remove(&request) {
            let _ = reply.send(answer);
        }
    }
}

/// The task's data: loaded from `source`, split (held out: `val_fraction`) and scaled with the
/// task's agreed standardisation (or this agent's own, when the task has none).
fn prepare(
    source: &dyn DataSource,
    info: flock_model::task::TaskInfo,
    val_fraction: f64,
) -> Result<Prepared, AgentError> {
    let data = source.load(info.classes)?;
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
    Ok(Prepared {
        info,
        train: Arc::new(train),
        val: Arc::new(val),
    })
}

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
