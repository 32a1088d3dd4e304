//! The follower: for every round on chain this account is a member of, it commits and reveals
//! a beacon share, reads its role and, as a voter, has the session judge the anchored candidate
//! against the previous accepted model on its held-out data, then commits and reveals its vote.
//! Rewards are paid by `finalise` straight to the account (the contract pushes them); the
//! follower logs the stake after each round.

use std::time::Duration;

use alloy::primitives::B256;
use flock_chain::schedule::{sleep_until_unix, unix_now, when_open};
use flock_chain::task::{Ballot, TaskClient, random_b256};
use flock_chain::{ChainError, Outcome, Role};
use flock_model::ModelId;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::secrets::{KeptBallot, Secrets};
use super::{PATIENCE, flock};
use crate::service::vote::Evaluate;

pub(super) struct Follower {
    pub(super) client: TaskClient,
    /// The task's rounds (immutable on chain).
    pub(super) total: u64,
    pub(super) evaluate: mpsc::UnboundedSender<Evaluate>,
    pub(super) tolerance: f64,
    pub(super) poll: Duration,
    pub(super) secrets: Secrets,
}

impl Follower {
    pub(super) async fn run(self) {
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
        let member = c.is_member(current, c.address()).await?;
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
        let seat = c.seat_of(round, c.address()).await?;
        let kept: Option<B256> = self.secrets.load("beacon", round);
        let secret = match kept {
            // Committed before a restart: reveal what was kept.
            Some(secret) if seat.beacon_committed => Some(secret),
            _ if seat.beacon_committed => {
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
        if let Some(secret) = secret.filter(|_| !seat.beacon_revealed) {
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
        let seat = c.seat_of(round, c.address()).await?;
        if seat.vote_committed {
            // Committed before a restart: reveal the ballot kept.
            let Some(kept) = self.secrets.load::<KeptBallot>("vote", round) else {
                warn!(
                    round,
                    "the ballot committed to is lost: it cannot be revealed"
                );
                return Ok(());
            };
            if !seat.vote_revealed {
                let ballot = Ballot::from(kept);
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
            Ok(v) => (v.accepts(self.tolerance), v.candidate),
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
        self.secrets
            .save("vote", round, &KeptBallot::from(&ballot))?;
        c.commit_vote(round, &ballot).await?;
        info!(round, accept, accuracy, phase = "vote", "vote committed");
        sleep_until_unix(view.voteCommitEnd).await;
        when_open(PATIENCE, || c.reveal_vote(round, &ballot)).await?;
        info!(round, accept, phase = "vote", "vote revealed");
        Ok(())
    }
}
