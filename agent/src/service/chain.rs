//! The agent's side of an FL Alliance task on chain (`[chain]` with a `key`): it stakes and
//! joins with its device identity, and for every round it is a member of it commits and
//! reveals a beacon share, reads its role, and as a voter has the session evaluate the anchored
//! candidate against the previous accepted model on its held-out data, then commits and
//! reveals its vote. As a proposer it needs nothing from the chain here: the aggregator sends
//! the round over QUIC, and the session refuses to train unless the announced model is the
//! chain's last accepted one ([`ChainSide::check_model`]).
//!
//! Rewards are paid by `finalise` straight to the account (the contract pushes them; there is
//! nothing to claim); the follower logs the stake after each round.
//!
//! The beacon secret and the ballot of the open round are written to the state directory
//! (`chain/`, atomically) before their commitment is sent, so that an agent restarted between a
//! commit and its reveal still reveals (a member that does not reveal is slashed).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::primitives::utils::{format_units, parse_units};
use alloy::primitives::{Address, B256, U256};
use flock_chain::schedule::{sleep_until_unix, unix_now, when_open};
use flock_chain::task::{Ballot, TaskClient, random_b256};
use flock_chain::tx::ConfirmOptions;
use flock_chain::{ChainError, Outcome, Role};
use flock_model::ModelId;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::config::ChainSection;
use super::session::{AgentError, Evaluate, Verdict};

/// How long a call refused as "not yet" (or failing transiently) is retried.
const PATIENCE: Duration = Duration::from_secs(60);

/// What the session keeps of the chain: the task, to check announced models.
pub(crate) struct ChainSide {
    client: TaskClient,
}

impl ChainSide {
    /// Refuses `announced` unless it is the chain's last accepted model.
    pub(crate) async fn check_model(&self, announced: ModelId) -> Result<(), AgentError> {
        let (accepted, round) = self
            .client
            .last_accepted()
            .await
            .map_err(|e| AgentError::Chain(e.to_string()))?;
        if accepted.0 != announced.0 {
            return Err(AgentError::ModelRefused(format!(
                "the aggregator announced model {announced}, but the chain's last accepted model \
                 (round {round}) is {}",
                ModelId(accepted.0)
            )));
        }
        Ok(())
    }
}

/// Connects with the account's key, stakes and joins if this account is not a participant yet,
/// and starts following the rounds. The session answers the follower's evaluation requests on
/// the returned receiver.
pub(crate) async fn start(
    section: &ChainSection,
    identity: [u8; 32],
    state_dir: &Path,
) -> Result<
    (
        ChainSide,
        mpsc::UnboundedReceiver<Evaluate>,
        tokio::task::JoinHandle<()>,
    ),
    AgentError,
> {
    let chain_err = |e: ChainError| AgentError::Chain(e.to_string());
    let Some(key_path) = &section.key else {
        return Err(AgentError::Chain(
            "chain.key is needed to take part in the task on chain".into(),
        ));
    };
    let key = flock_chain::provider::load_key(key_path).map_err(chain_err)?;
    let account: Address = section
        .account
        .parse()
        .map_err(|e| AgentError::Chain(format!("chain.account: {e}")))?;
    if key.address() != account {
        return Err(AgentError::Chain(format!(
            "chain.key {} belongs to {}, not to chain.account {account}",
            key_path.display(),
            key.address()
        )));
    }
    let task: Address = section
        .task
        .parse()
        .map_err(|e| AgentError::Chain(format!("chain.task: {e}")))?;
    let provider = flock_chain::provider::connect(
        &section.rpc,
        [key],
        flock_chain::provider::DEFAULT_REQUEST_TIMEOUT,
    )
    .map_err(chain_err)?;
    let client = TaskClient::connect(provider, task, account, ConfirmOptions::default())
        .await
        .map_err(chain_err)?;
    ensure_joined(&client, section, B256::from(identity)).await?;
    let total = u64::from(
        client
            .contract()
            .totalRounds()
            .call()
            .await
            .map_err(|e| chain_err(e.into()))?,
    );
    let (tx, rx) = mpsc::unbounded_channel();
    let follower = Follower {
        total,
        client: client.clone(),
        evaluate: tx,
        tolerance: section.accept_tolerance,
        poll: Duration::from_millis(section.poll_ms),
        secrets: Secrets(state_dir.join("chain")),
    };
    let handle = tokio::spawn(follower.run());
    Ok((ChainSide { client }, rx, handle))
}

/// Joins the task with `identity` unless this account already takes part (with that identity).
async fn ensure_joined(
    client: &TaskClient,
    section: &ChainSection,
    identity: B256,
) -> Result<(), AgentError> {
    let chain_err = |e: ChainError| AgentError::Chain(e.to_string());
    let me = client.address();
    let info = client.participant_info(me).await.map_err(chain_err)?;
    if info.active {
        let registered = client.identity_of(me).await.map_err(chain_err)?;
        if registered != identity {
            return Err(AgentError::Chain(format!(
                "{me} takes part with identity key {registered}, but this device's key is {identity}"
            )));
        }
        info!(account = %me, stake = %flock(info.stake), "already staked in the task");
        return Ok(());
    }
    if client.is_banned(me).await.map_err(chain_err)? {
        return Err(AgentError::Chain(format!(
            "{me} is banned from the task (too many strikes)"
        )));
    }
    let min = client
        .contract()
        .minStake()
        .call()
        .await
        .map_err(|e| chain_err(e.into()))?;
    let stake = match &section.stake {
        Some(s) => parse_units(s, 18)
            .map(Into::into)
            .map_err(|e| AgentError::Chain(format!("chain.stake {s:?}: {e}")))?,
        None => min,
    };
    client.join(stake, identity).await.map_err(chain_err)?;
    info!(account = %me, stake = %flock(stake), "staked and joined the task");
    Ok(())
}

/// FLOCK as a decimal string.
fn flock(amount: impl Into<U256>) -> String {
    format_units(amount.into(), 18).unwrap_or_else(|_| "?".into())
}

struct Follower {
    client: TaskClient,
    /// The task's rounds (immutable on chain).
    total: u64,
    evaluate: mpsc::UnboundedSender<Evaluate>,
    tolerance: f64,
    poll: Duration,
    secrets: Secrets,
}

/// The open round's beacon secret and ballot, kept on disk until revealed.
struct Secrets(PathBuf);

impl Secrets {
    fn path(&self, what: &str, round: u64) -> PathBuf {
        self.0.join(format!("{what}-{round}.json"))
    }

    /// What was kept for `round`, if anything readable.
    fn load<T: serde::de::DeserializeOwned>(&self, what: &str, round: u64) -> Option<T> {
        let bytes = std::fs::read(self.path(what, round)).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                warn!(round, "unreadable {what} file, ignored: {e}");
                None
            }
        }
    }

    /// Keeps `value` for `round` (temporary file, fsync, rename) before it is committed to.
    fn save<T: serde::Serialize>(
        &self,
        what: &str,
        round: u64,
        value: &T,
    ) -> Result<(), ChainError> {
        let io = |e: std::io::Error| {
            ChainError::Unexpected(format!(
                "keeping the {what} of round {round} in {}: {e}",
                self.0.display()
            ))
        };
        std::fs::create_dir_all(&self.0).map_err(io)?;
        let tmp = self.0.join(format!(".{what}-{round}.tmp"));
        let bytes = serde_json::to_vec(value).map_err(|e| ChainError::Unexpected(e.to_string()))?;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, self.path(what, round)).map_err(io)
    }

    /// Forgets everything kept for rounds before `round`.
    fn forget_before(&self, round: u64) {
        let Ok(entries) = std::fs::read_dir(&self.0) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let kept_round = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.rsplit_once('-'))
                .and_then(|(_, r)| r.parse::<u64>().ok());
            if kept_round.is_some_and(|r| r < round) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// A ballot as kept on disk.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeptBallot {
    accept: bool,
    accuracy_bps: u32,
    salt: B256,
}

impl Follower {
    async fn run(self) {
        let mut handled = 0u64;
        loop {
            match self.next(&mut handled).await {
                Ok(true) => {
                    info!("every round of the task is finalised");
                    return;
                }
                Ok(false) => {}
                Err(e) => warn!("chain: {e}"),
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Plays the open round if it is new and this account is one of its members; true once
    /// the task is complete.
    async fn next(&self, handled: &mut u64) -> Result<bool, ChainError> {
        let c = &self.client;
        let current = c.current_round().await?;
        let total = self.total;
        if current == 0 || current <= *handled {
            return Ok(current >= total && *handled >= total);
        }
        let (_, outcome) = c.round_state(current).await?;
        let member = c
            .contract()
            .isMember(U256::from(current), c.address())
            .call()
            .await?;
        if outcome == Outcome::Pending && member {
            self.play(current).await?;
        }
        *handled = current;
        Ok(false)
    }

    async fn play(&self, round: u64) -> Result<(), ChainError> {
        let c = &self.client;
        self.secrets.forget_before(round);
        let view = c.round_info(round).await?;
        let seat = c
            .contract()
            .seatOf(U256::from(round), c.address())
            .call()
            .await?;
        let kept: Option<B256> = self.secrets.load("beacon", round);
        let secret = match kept {
            // Committed before a restart: reveal what was kept.
            Some(secret) if seat.beaconCommitted => Some(secret),
            _ if seat.beaconCommitted => {
                warn!(
                    round,
                    "the beacon secret committed to is lost: it cannot be revealed"
                );
                None
            }
            _ if unix_now() < view.beaconCommitEnd => {
                let secret = kept.map_or_else(random_b256, Ok)?;
                self.secrets.save("beacon", round, &secret)?;
                c.commit_beacon(round, secret).await?;
                info!(round, phase = "beacon", "beacon share committed");
                Some(secret)
            }
            _ => {
                warn!(
                    round,
                    "the beacon window had closed when this agent saw the round"
                );
                None
            }
        };
        if let Some(secret) = secret.filter(|_| !seat.beaconRevealed) {
            sleep_until_unix(view.beaconCommitEnd).await;
            when_open(PATIENCE, || c.reveal_beacon(round, secret)).await?;
            info!(round, phase = "beacon", "beacon share revealed");
        }
        let view = self.wait(round, |v, _| v.rolesDrawnAt != 0).await?;
        if view.rolesDrawnAt == 0 {
            return Ok(());
        }
        let role = c.role_of(round, c.address()).await?;
        info!(round, role = ?role, phase = "roles", "role drawn");
        if role == Role::Voter {
            self.vote(round).await?;
        }
        self.wait(round, |_, o| o != Outcome::Pending).await?;
        let (outcome, _) = c.outcome_of(round).await?;
        let stake = c.stake_of(c.address()).await?;
        info!(round, outcome = ?outcome, stake = %flock(stake), phase = "finalised", "round finalised");
        Ok(())
    }

    /// Polls the round until `done` holds or it is finalised; returns its last view.
    async fn wait(
        &self,
        round: u64,
        done: impl Fn(&flock_chain::contracts::FlTask::RoundView, Outcome) -> bool,
    ) -> Result<flock_chain::contracts::FlTask::RoundView, ChainError> {
        loop {
            let (view, outcome) = self.client.round_state(round).await?;
            if done(&view, outcome) || outcome != Outcome::Pending {
                return Ok(view);
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Waits for the candidate, has the session judge it, commits and reveals the vote.
    async fn vote(&self, round: u64) -> Result<(), ChainError> {
        let c = &self.client;
        let view = self
            .wait(round, |v, _| {
                v.anchoredAt != 0 || unix_now() >= v.anchorDeadline
            })
            .await?;
        if view.anchoredAt == 0 {
            info!(round, "no candidate anchored: nothing to vote on");
            return Ok(());
        }
        let seat = c
            .contract()
            .seatOf(U256::from(round), c.address())
            .call()
            .await?;
        if seat.voteCommitted {
            // Committed before a restart: reveal the ballot kept.
            let Some(kept) = self.secrets.load::<KeptBallot>("vote", round) else {
                warn!(
                    round,
                    "the ballot committed to is lost: it cannot be revealed"
                );
                return Ok(());
            };
            if !seat.voteRevealed {
                let ballot = Ballot {
                    accept: kept.accept,
                    accuracy_bps: kept.accuracy_bps,
                    salt: kept.salt,
                };
                sleep_until_unix(view.voteCommitEnd).await;
                when_open(PATIENCE, || c.reveal_vote(round, &ballot)).await?;
                info!(
                    round,
                    accept = ballot.accept,
                    phase = "vote",
                    "vote revealed"
                );
            }
            return Ok(());
        }
        let candidate = c.candidate_of(round).await?;
        let (reply, verdict) = oneshot::channel();
        let asked = self.evaluate.send(Evaluate {
            round,
            candidate: ModelId(candidate.model_hash.0),
            previous: ModelId(candidate.prev_model_hash.0),
            reply,
        });
        let verdict = match asked {
            Ok(()) => verdict
                .await
                .unwrap_or_else(|_| Err("the session has stopped".into())),
            Err(_) => Err("the session has stopped".into()),
        };
        let (accept, accuracy) = match &verdict {
            Ok(Verdict {
                candidate,
                previous,
            }) => (*candidate + self.tolerance >= *previous, *candidate),
            Err(reason) => {
                warn!(
                    round,
                    "cannot judge the candidate, voting to reject: {reason}"
                );
                (false, 0.0)
            }
        };
        let ballot = Ballot {
            accept,
            accuracy_bps: (accuracy.clamp(0.0, 1.0) * 10_000.0).round() as u32,
            salt: random_b256()?,
        };
        self.secrets.save(
            "vote",
            round,
            &KeptBallot {
                accept: ballot.accept,
                accuracy_bps: ballot.accuracy_bps,
                salt: ballot.salt,
            },
        )?;
        c.commit_vote(round, &ballot).await?;
        info!(round, accept, accuracy, phase = "vote", "vote committed");
        sleep_until_unix(view.voteCommitEnd).await;
        when_open(PATIENCE, || c.reveal_vote(round, &ballot)).await?;
        info!(round, accept, phase = "vote", "vote revealed");
        Ok(())
    }
}
