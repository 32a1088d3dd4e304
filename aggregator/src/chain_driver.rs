//! The aggregator's side of an FL Alliance round on chain (`[chain]` in the config): it opens
//! each round once the staked participants are connected, draws the roles after the beacon
//! reveal window, hands the drawn proposers to the round loop as the SecAgg+ cohort, anchors
//! the candidate the loop built (through the durable [`Anchorer`]) and finalises the round after
//! the vote, telling the loop whether the candidate became the global model.
//!
//! The driver only talks to the chain and to the round loop (through
//! [`ChainRequest`]s); the loop owns every model. Each step reads the round's state from the
//! chain first, so after a transient failure (or a restart) the driver resumes the open round
//! where it stands. [`start`] owns the start-up: connect with the aggregator's key, check that
//! the task is this aggregator's, open the anchor queue, spawn the driver.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use alloy::primitives::{Address, B256};
use flock_chain::anchor::{Anchor, AnchorConfig, AnchorError, AnchorQueue, Anchorer};
use flock_chain::merkle::sorted_contributors;
use flock_chain::schedule::{sleep_until_unix, unix_now, when_open};
use flock_chain::task::TaskClient;
use flock_chain::tx::ConfirmOptions;
use flock_chain::{ChainError, Outcome};
use flock_model::{ModelId, Params};
use flock_protocol::{ClientId, Participant};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::config::{ChainSection, Config};
use crate::mailbox::{Candidate, ChainRequest};

/// How long a call refused as "not yet" (or failing transiently) is retried.
const PATIENCE: Duration = Duration::from_secs(120);
/// Pause between two looks at the chain or the connected agents.
const POLL: Duration = Duration::from_millis(500);

/// Why the driver stopped (or could not start).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainDriveError {
    /// The chain refused or could not answer.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The anchor could not be delivered.
    #[error(transparent)]
    Anchor(#[from] AnchorError),
    /// The task on chain does not fit this aggregator.
    #[error("task {task}: {reason}")]
    Mismatch {
        /// The task's address.
        task: Address,
        /// What does not fit.
        reason: String,
    },
    /// The config's initial model cannot be built (to compare with the task's).
    #[error("the config's initial model: {0}")]
    InitialModel(#[source] flock_model::ModelError),
    /// The round loop has stopped.
    #[error("the round loop has stopped")]
    LoopGone,
    /// The driver's task ended abnormally.
    #[error("the chain driver stopped: {0}")]
    Stopped(String),
}

/// The chain side of a running aggregator: the driver's task, and what it asks of the loop.
pub(crate) struct ChainLink {
    /// The driver; it ends when the task is complete on chain.
    pub driver: tokio::task::JoinHandle<Result<(), ChainDriveError>>,
    /// Its requests to the round loop.
    pub requests: mpsc::UnboundedReceiver<ChainRequest>,
}

/// Connects to the task of `section` with the aggregator's key, refuses a task that is not
/// this aggregator's (see [`check_task`]) and starts the driver.
pub(crate) async fn start(
    config: &Config,
    section: &ChainSection,
) -> Result<ChainLink, ChainDriveError> {
    let (client, anchorer) = connect(section).await?;
    let initial = Params::init(&config.model, config.task.seed)
        .and_then(|p| flock_model::file::encode(&p))
        .map_err(ChainDriveError::InitialModel)?
        .1;
    check_task(&client, config.task.rounds, initial).await?;
    info!(task = %client.task_address(), account = %client.address(), "rounds follow the task on chain");
    let (events, requests) = mpsc::unbounded_channel();
    let driver = ChainDriver {
        client,
        total: config.task.rounds,
        anchorer,
        events,
        start_wait: Duration::from_millis(section.start_wait_ms),
    };
    Ok(ChainLink {
        driver: tokio::spawn(driver.run()),
        requests,
    })
}

/// Connects to the task with the aggregator's key and opens the anchor queue.
async fn connect(section: &ChainSection) -> Result<(TaskClient, Anchorer), ChainDriveError> {
    let key = flock_chain::provider::load_key(&section.key)?;
    let from = key.address();
    let task: Address = section
        .task
        .parse()
        .map_err(|e| ChainError::Endpoint(format!("chain.task {:?}: {e}", section.task)))?;
    let provider = flock_chain::provider::connect(
        &section.rpc,
        [key],
        flock_chain::provider::DEFAULT_REQUEST_TIMEOUT,
    )?;
    let confirm = ConfirmOptions {
        confirmations: section.confirmations,
        ..ConfirmOptions::default()
    };
    let client = TaskClient::connect(provider.clone(), task, from, confirm).await?;
    let queue = AnchorQueue::open(&section.anchor_queue).map_err(AnchorError::from)?;
    let anchorer = Anchorer::new(
        queue,
        provider,
        from,
        AnchorConfig {
            confirm,
            ..AnchorConfig::default()
        },
    );
    Ok((client, anchorer))
}

/// Checks that the task on chain is this aggregator's: it is the task's aggregator, the task
/// has `rounds` rounds and starts from `initial`.
async fn check_task(
    client: &TaskClient,
    rounds: u64,
    initial: ModelId,
) -> Result<(), ChainDriveError> {
    let task = client.task_address();
    let mismatch = |reason: String| Err(ChainDriveError::Mismatch { task, reason });
    let p = client.params().await?;
    if p.aggregator != client.address() {
        return mismatch(format!(
            "its aggregator is {}, this key's account is {}",
            p.aggregator,
            client.address()
        ));
    }
    if u64::from(p.totalRounds) != rounds {
        return mismatch(format!(
            "it has {} rounds, task.rounds says {rounds}",
            p.totalRounds
        ));
    }
    if p.initialModelHash != B256::from(initial.0) {
        return mismatch(format!(
            "it starts from model {}, this config's model and seed give {initial}",
            p.initialModelHash
        ));
    }
    Ok(())
}

/// Drives the task's rounds until the last is finalised.
struct ChainDriver {
    client: TaskClient,
    /// The task's rounds (checked against the config by [`check_task`]).
    total: u64,
    anchorer: Anchorer,
    events: mpsc::UnboundedSender<ChainRequest>,
    start_wait: Duration,
}

enum Step {
    Continue,
    Complete,
}

impl ChainDriver {
    /// Runs until the task is complete on chain; transient failures are retried.
    async fn run(self) -> Result<(), ChainDriveError> {
        // Anchors left by an earlier process go out first.
        for r in self.anchorer.flush().await? {
            info!(round = r.anchor.round, "queued anchor delivered");
        }
        loop {
            match self.step().await {
                Ok(Step::Complete) => return Ok(()),
                Ok(Step::Continue) => {}
                Err(ChainDriveError::Chain(e)) if e.is_transient() => {
                    warn!("chain: {e}; trying again");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn tell(&self, event: ChainRequest) -> Result<(), ChainDriveError> {
        self.events
            .send(event)
            .map_err(|_| ChainDriveError::LoopGone)
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> ChainRequest,
    ) -> Result<T, ChainDriveError> {
        let (tx, rx) = oneshot::channel();
        self.tell(make(tx))?;
        rx.await.map_err(|_| ChainDriveError::LoopGone)
    }

    /// One look at the chain and the next thing to do for the current round.
    async fn step(&self) -> Result<Step, ChainDriveError> {
        let c = &self.client;
        let current = c.current_round().await?;
        let open = current > 0 && c.round_state(current).await?.1 == Outcome::Pending;
        if !open {
            if current >= self.total {
                return Ok(Step::Complete);
            }
            self.wait_for_participants().await?;
            let (round, _) = when_open(PATIENCE, || c.start_round()).await?;
            info!(round, "round opened on chain");
            return Ok(Step::Continue);
        }
        let round = current;
        let mut view = c.round_info(round).await?;
        if view.rolesDrawnAt == 0 {
            sleep_until_unix(view.beaconRevealEnd).await;
            if let Err(e) = when_open(PATIENCE, || c.draw_roles(round)).await
                && e.revert_name() != Some("RolesAlreadyDrawn")
            {
                return Err(e.into());
            }
            view = c.round_info(round).await?;
            info!(
                round,
                proposers = view.proposerCount,
                members = view.memberCount,
                "roles drawn"
            );
        }
        if view.anchoredAt == 0 && unix_now() < view.anchorDeadline {
            self.train_and_anchor(round).await?;
            view = c.round_info(round).await?;
        }
        let deadline = if view.anchoredAt != 0 {
            view.voteRevealEnd
        } else {
            view.anchorDeadline
        };
        sleep_until_unix(deadline).await;
        self.finalise(round).await?;
        Ok(Step::Continue)
    }

    /// Waits until every staked participant is connected, or `start_wait` has passed with at
    /// least the task's minimum connected.
    async fn wait_for_participants(&self) -> Result<(), ChainDriveError> {
        let c = &self.client;
        let min = c.min_participants().await?;
        let started = tokio::time::Instant::now();
        // A participant's registered key does not change while it stays: read each once.
        let mut keys: BTreeMap<Address, ClientId> = BTreeMap::new();
        loop {
            let staked = c.participants().await?;
            let mut ids = BTreeSet::new();
            for a in &staked {
                let id = match keys.get(a) {
                    Some(id) => *id,
                    None => {
                        let id = ClientId::from_identity(&c.identity_of(*a).await?.0);
                        keys.insert(*a, id);
                        id
                    }
                };
                ids.insert(id);
            }
            let ready = self.ask(ChainRequest::Ready).await?;
            let connected = ids.intersection(&ready).count();
            if staked.len() >= min
                && (connected == staked.len()
                    || (connected >= min && started.elapsed() >= self.start_wait))
            {
                info!(staked = staked.len(), connected, "opening the next round");
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Hands the drawn proposers to the round loop and anchors the candidate it builds.
    async fn train_and_anchor(&self, round: u64) -> Result<(), ChainDriveError> {
        let c = &self.client;
        let roster = c.roster(round).await?;
        let proposers: Vec<Participant> = roster
            .proposers()
            .map(|e| Participant {
                id: ClientId::from_identity(&e.identity.0),
                identity: e.identity.0,
            })
            .collect();
        let (prev, _) = c.last_accepted().await?;
        let view = c.round_info(round).await?;
        let reply = self.ask(|reply| ChainRequest::Train {
            round,
            proposers,
            prev: ModelId(prev.0),
            seed: view.seed.0,
            reply,
        });
        let budget = view.anchorDeadline.saturating_sub(unix_now());
        let candidate: Option<Candidate> =
            match tokio::time::timeout(Duration::from_secs(budget), reply).await {
                Ok(r) => r?,
                Err(_) => {
                    warn!(
                        round,
                        "no candidate before the anchor deadline: the round will be void"
                    );
                    return Ok(());
                }
            };
        let Some(candidate) = candidate else {
            warn!(round, "no candidate: the round will be void");
            return Ok(());
        };
        let mut addresses = Vec::with_capacity(candidate.contributors.len());
        for id in &candidate.contributors {
            match roster
                .proposers()
                .find(|e| ClientId::from_identity(&e.identity.0) == *id)
            {
                Some(e) => addresses.push(e.address),
                None => {
                    warn!(round, client = %id, "contributor is not a drawn proposer: left out of the anchor")
                }
            }
        }
        let anchor = Anchor {
            task: c.task_address(),
            round,
            model_hash: B256::from(candidate.model.0),
            prev_model_hash: prev,
            // The aggregator holds no data: the voters measure accuracy.
            accuracy_bps: 0,
            contributors: sorted_contributors(&addresses),
        };
        let receipt = self.anchorer.submit(anchor).await?;
        info!(
            round,
            model = %candidate.model,
            contributors = addresses.len(),
            tx = ?receipt.tx,
            "candidate anchored"
        );
        Ok(())
    }

    /// Finalises `round` (unless someone else did) and tells the round loop the outcome.
    async fn finalise(&self, round: u64) -> Result<(), ChainDriveError> {
        let c = &self.client;
        if let Err(e) = when_open(PATIENCE, || c.finalise(round)).await {
            let (outcome, _) = c.outcome_of(round).await?;
            if outcome == Outcome::Pending {
                return Err(e.into());
            }
        }
        let (outcome, score) = c.outcome_of(round).await?;
        let (accepted, _) = c.last_accepted().await?;
        info!(round, ?outcome, %score, model = %accepted, "round finalised");
        self.tell(ChainRequest::Finalised {
            round,
            outcome,
            accepted: ModelId(accepted.0),
        })
    }
}
