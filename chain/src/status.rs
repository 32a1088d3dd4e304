//! What `flock-aggregator chain status` shows: a task's parameters, where it stands, the last
//! accepted model, and the current round's members, roles, candidate and outcome, read from
//! the chain with a read-only client.

use std::fmt;

use alloy::primitives::{Address, B256, I256, U256};

use crate::contracts::FlTask;
use crate::roles::{Outcome, Phase};
use crate::task::{Candidate, Roster, TaskClient};
use crate::{ChainError, params::FLOCK};

/// A task as the chain sees it now.
#[derive(Debug, Clone)]
pub struct TaskStatus {
    /// The task contract.
    pub task: Address,
    /// Its token.
    pub token: Address,
    /// Its parameters.
    pub params: FlTask::TaskParams,
    /// The current (or last) round, 0 before the first.
    pub round: u64,
    /// The current phase.
    pub phase: Phase,
    /// Current participants.
    pub participants: usize,
    /// Tokens staked.
    pub total_staked: U256,
    /// The reward pool.
    pub reward_pool: U256,
    /// The last accepted model and the round that produced it (0: the initial model).
    pub last_accepted: (B256, u64),
    /// The current round's details, if a round was ever started.
    pub current: Option<RoundStatus>,
}

/// One round's details.
#[derive(Debug, Clone)]
pub struct RoundStatus {
    /// Members and roles (`None` once the round is finalised: the participant list may have
    /// changed since).
    pub roster: Option<Roster>,
    /// The anchored candidate.
    pub candidate: Candidate,
    /// Its outcome and score.
    pub outcome: (Outcome, I256),
}

impl TaskStatus {
    /// Reads everything through `client` (any sender address; nothing is sent).
    pub async fn read(client: &TaskClient) -> Result<Self, ChainError> {
        let params = client.params().await?;
        let round = client.current_round().await?;
        let current = if round == 0 {
            None
        } else {
            let roster = match client.roster(round).await {
                Ok(r) => Some(r),
                Err(ChainError::Unavailable(_)) => None,
                Err(e) => return Err(e),
            };
            Some(RoundStatus {
                roster,
                candidate: client.candidate_of(round).await?,
                outcome: client.outcome_of(round).await?,
            })
        };
        Ok(Self {
            task: client.task_address(),
            token: client.token_address(),
            params,
            round,
            phase: client.current_phase().await?,
            participants: client.participants().await?.len(),
            total_staked: client.total_staked().await?,
            reward_pool: client.reward_pool().await?,
            last_accepted: client.last_accepted().await?,
            current,
        })
    }
}

/// `amount` wei as FLOCK with up to 4 decimals.
fn flock(amount: U256) -> String {
    let whole = amount / FLOCK;
    let frac = (amount % FLOCK) / U256::from(100_000_000_000_000u64);
    if frac.is_zero() {
        format!("{whole} FLOCK")
    } else {
        format!("{whole}.{frac:0>4} FLOCK")
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.params;
        writeln!(f, "task:            {}", self.task)?;
        writeln!(f, "token:           {}", self.token)?;
        writeln!(f, "aggregator:      {}", p.aggregator)?;
        writeln!(
            f,
            "round:           {} of {} ({:?})",
            self.round, p.totalRounds, self.phase
        )?;
        writeln!(
            f,
            "participants:    {} (min {}, max {}), staked {}, min stake {}",
            self.participants,
            p.minParticipants,
            p.maxParticipants,
            flock(self.total_staked),
            flock(p.minStake)
        )?;
        writeln!(
            f,
            "rewards:         pool {}, {} per round; slash {}.{:02} %, removal after {} strikes",
            flock(self.reward_pool),
            flock(p.rewardPerRound),
            p.slashBps / 100,
            p.slashBps % 100,
            p.strikesBeforeRemoval
        )?;
        writeln!(
            f,
            "last accepted:   {} (round {})",
            self.last_accepted.0, self.last_accepted.1
        )?;
        let Some(c) = &self.current else {
            return Ok(());
        };
        writeln!(f, "round {}:", self.round)?;
        if c.candidate.anchored {
            writeln!(
                f,
                "  candidate:     {} on {}, {} contributors (root {}), accuracy {}.{:02} %",
                c.candidate.model_hash,
                c.candidate.prev_model_hash,
                c.candidate.contributor_count,
                c.candidate.contributors_root,
                c.candidate.accuracy_bps / 100,
                c.candidate.accuracy_bps % 100
            )?;
        } else {
            writeln!(f, "  candidate:     none anchored")?;
        }
        writeln!(
            f,
            "  outcome:       {:?} (score {})",
            c.outcome.0, c.outcome.1
        )?;
        if let Some(r) = &c.roster {
            writeln!(f, "  members (at block {}):", r.block)?;
            for m in &r.members {
                writeln!(
                    f,
                    "    {:>3} {} client {:<20} {:<8} stake {}",
                    m.index,
                    m.address,
                    m.client_id,
                    format!("{:?}", m.role),
                    flock(m.stake)
                )?;
            }
        }
        Ok(())
    }
}
