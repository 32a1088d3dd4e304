//! Following the run while it goes: every ~300 ms the chain (current round, its phase, each
//! agent's role, which rounds are finalised), the child processes (an early failure stops the
//! demo with the end of the failed process's log) and the agents' logs, shown through
//! [`Progress`]. With `--drop-rate`, this is also where flaky devices are played: when a round
//! starts, each agent is picked with that probability and killed (SIGKILL) at a random moment
//! of the round, and restarted once the round is finalised.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use alloy::primitives::Address;
use anyhow::bail;
use flock_chain::task::TaskClient;
use flock_chain::{Outcome, Phase, Role};
use rand::RngExt;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::processes::{Proc, Processes};
use crate::progress::{LogTail, Progress, outcome_name, phase_name, role_name};

/// How often the chain, the processes and the logs are looked at.
const TICK: Duration = Duration::from_millis(300);
/// How long the agents may take to stake and join the task.
const STAKE_TIMEOUT: Duration = Duration::from_secs(180);
/// Consecutive failed looks at the chain before the demo gives up on it.
const MAX_CHAIN_FAILURES: u32 = 100;
/// A kill lands this long after the demo sees the round start, at the latest (about a round:
/// 8 s of beacon, training and SecAgg+, 10 s of votes).
const KILL_WINDOW: Duration = Duration::from_secs(25);
/// An asked-for (`--drop`) kill lands this long after the round starts, at the latest.
const ASKED_KILL_WINDOW: Duration = Duration::from_secs(8);
/// Lines of a failed process's log shown.
const TAIL_LINES: usize = 20;

/// Which agents the demo kills: drawn with probability `rate` per agent and round (from `seed`),
/// and the `asked` (agent, round) pairs of `--drop`.
pub(crate) struct Drops {
    pub(crate) rate: f64,
    pub(crate) asked: Vec<(usize, u64)>,
    pub(crate) seed: u64,
}

/// What the demo did to the run: the agents it killed, by round.
#[derive(Debug, Default)]
pub(crate) struct Watched {
    /// Round → the agents (indices) killed in it.
    pub(crate) dropped: BTreeMap<u64, BTreeSet<usize>>,
}

/// The state of the follow loop.
pub(crate) struct Watch<'a> {
    chain: &'a TaskClient,
    accounts: &'a [Address],
    procs: &'a mut Processes,
    progress: &'a Progress,
    tails: Vec<LogTail>,
    total: u64,
    drop_rate: f64,
    /// `--drop`: (agent, round) kills asked for.
    planned: Vec<(usize, u64)>,
    rng: ChaCha20Rng,
    round: u64,
    finalised: u64,
    phase: Option<Phase>,
    roles: Vec<Role>,
    kill_at: Vec<Option<Instant>>,
    down: Vec<bool>,
    watched: Watched,
}

impl<'a> Watch<'a> {
    /// Follows `procs` and the task `chain` (of `total` rounds) whose agents stake from
    /// `accounts`.
    pub(crate) fn new(
        chain: &'a TaskClient,
        accounts: &'a [Address],
        procs: &'a mut Processes,
        progress: &'a Progress,
        total: u64,
        drops: Drops,
    ) -> Self {
        let n = procs.agents.len();
        let tails = procs.agents.iter().map(|p| LogTail::new(&p.log)).collect();
        Self {
            chain,
            accounts,
            procs,
            progress,
            tails,
            total,
            drop_rate: drops.rate,
            planned: drops.asked,
            rng: ChaCha20Rng::seed_from_u64(drops.seed),
            round: 0,
            finalised: 0,
            phase: None,
            roles: vec![Role::None; n],
            kill_at: vec![None; n],
            down: vec![false; n],
            watched: Watched::default(),
        }
    }

    /// Starts the agents and waits until every one has staked and joined the task.
    pub(crate) async fn start_agents(&mut self) -> anyhow::Result<()> {
        for a in &mut self.procs.agents {
            a.spawn()?;
        }
        let n = self.accounts.len();
        let deadline = Instant::now() + STAKE_TIMEOUT;
        loop {
            self.check_agents()?;
            let joined = self.chain.participants().await.map_or(0, |p| p.len());
            self.progress
                .set_rounds(0, format!("agents staking: {joined} of {n} joined"));
            self.show_agents();
            if joined >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "only {joined} of {n} agents staked within {} s; see {}",
                    STAKE_TIMEOUT.as_secs(),
                    self.procs.agents[0].log.display()
                );
            }
            self.tick().await?;
        }
    }

    /// Starts the aggregator and follows the task until the aggregator exits; returns what the
    /// demo did.
    pub(crate) async fn follow(mut self) -> anyhow::Result<Watched> {
        self.procs.aggregator.spawn()?;
        let mut failures = 0u32;
        loop {
            if let Some(status) = self.procs.aggregator.poll() {
                if status.success() {
                    // One last look, so that the final round is reported.
                    let _ = self.look_at_chain().await;
                    return Ok(self.watched);
                }
                bail!(failed(&self.procs.aggregator, &status.to_string()));
            }
            self.check_agents()?;
            match self.look_at_chain().await {
                Ok(()) => failures = 0,
                Err(e) if failures >= MAX_CHAIN_FAILURES => {
                    bail!("the chain stopped answering: {e:#}")
                }
                Err(_) => failures += 1,
            }
            self.play_drops();
            self.show_agents();
            self.tick().await?;
        }
    }

    /// Waits one tick; an error if the demo is interrupted (SIGTERM or Ctrl-C).
    async fn tick(&self) -> anyhow::Result<()> {
        tokio::select! {
            () = tokio::time::sleep(TICK) => Ok(()),
            () = flock_transport::shutdown_signal() => bail!("interrupted"),
        }
    }

    /// An error naming the first agent that failed (exited non-zero without being killed).
    fn check_agents(&mut self) -> anyhow::Result<()> {
        for p in &mut self.procs.agents {
            if let Some(status) = p.poll()
                && !status.success()
            {
                bail!(failed(p, &status.to_string()));
            }
        }
        Ok(())
    }

    /// Reads the round, its phase, the roles and the finalised rounds.
    async fn look_at_chain(&mut self) -> anyhow::Result<()> {
        let c = self.chain;
        let current = c.current_round().await?;
        let phase = c.current_phase().await?;
        self.phase = Some(phase);
        // Finalisations first: a round that ended stops its kills, and must not stop those
        // planned for the round that opened right after it (seen in the same look).
        while self.finalised < current {
            let r = self.finalised + 1;
            let (outcome, _) = c.outcome_of(r).await?;
            if outcome == Outcome::Pending {
                break;
            }
            self.finalised = r;
            self.round_finalised(r, outcome)?;
        }
        if current != self.round {
            self.round = current;
            self.roles.fill(Role::None);
            self.plan_drops();
        }
        let drawn = !matches!(
            phase,
            Phase::BeaconCommit | Phase::BeaconReveal | Phase::RoleDraw
        );
        if current > 0 && drawn {
            for (i, a) in self.accounts.iter().enumerate() {
                if self.roles[i] == Role::None {
                    self.roles[i] = c.role_of(current, *a).await?;
                }
            }
        }
        let message = match phase {
            Phase::Completed => "task complete".to_owned(),
            Phase::Idle if current > 0 => {
                format!("round {current} finalised; round {} opens", current + 1)
            }
            p => format!("round {current}: {}", phase_name(p)),
        };
        self.progress.set_rounds(self.finalised, message);
        Ok(())
    }

    /// Says how round `r` ended and restarts the agents killed in it.
    fn round_finalised(&mut self, r: u64, outcome: Outcome) -> anyhow::Result<()> {
        let killed = self.watched.dropped.get(&r).cloned().unwrap_or_default();
        let names: Vec<&str> = killed
            .iter()
            .map(|&i| self.procs.agents[i].name.as_str())
            .collect();
        self.progress.println(&format!(
            "round {r}/{}: {}{}",
            self.total,
            outcome_name(outcome),
            if names.is_empty() {
                String::new()
            } else {
                format!(" ({} killed by the demo)", names.join(", "))
            }
        ));
        self.kill_at.fill(None);
        for i in 0..self.down.len() {
            if !self.down[i] {
                continue;
            }
            if r >= self.total {
                self.tails[i].set(format!("killed in round {r}; the task is over"));
                continue;
            }
            self.procs.agents[i].spawn()?;
            self.down[i] = false;
            self.tails[i].set(format!("restarted after round {r}"));
        }
        Ok(())
    }

    /// Picks the agents to kill in the round just started, and when.
    fn plan_drops(&mut self) {
        self.kill_at.fill(None);
        if self.round == 0 {
            return;
        }
        let now = Instant::now();
        for i in 0..self.kill_at.len() {
            let asked = self.planned.contains(&(i, self.round));
            let drawn =
                self.drop_rate > 0.0 && self.rng.random_bool(self.drop_rate.clamp(0.0, 1.0));
            if self.down[i] || !(asked || drawn) {
                continue;
            }
            // An asked-for drop lands early (beacon or training), so that it cannot miss its
            // round; a drawn one anywhere in it.
            let window = if asked {
                ASKED_KILL_WINDOW
            } else {
                KILL_WINDOW
            };
            let after = self.rng.random_range(0.5..window.as_secs_f64());
            self.kill_at[i] = Some(now + Duration::from_secs_f64(after));
        }
    }

    /// Kills the agents whose moment has come while their round is still open.
    fn play_drops(&mut self) {
        let open = self.round > self.finalised;
        let now = Instant::now();
        for i in 0..self.kill_at.len() {
            let due = self.kill_at[i].is_some_and(|t| t <= now);
            if !due {
                continue;
            }
            self.kill_at[i] = None;
            let agent = &mut self.procs.agents[i];
            if !open || !agent.is_running() {
                continue;
            }
            agent.kill();
            self.down[i] = true;
            self.watched
                .dropped
                .entry(self.round)
                .or_default()
                .insert(i);
            let phase = self.phase.map_or("?", phase_name);
            // What it wrote before dying must not overwrite the note.
            self.tails[i].poll();
            self.tails[i].set(format!(
                "killed by the demo in round {} ({phase}): back after the round",
                self.round
            ));
            self.progress.println(&format!(
                "round {}: killed {} during {phase} (a flaky device)",
                self.round, agent.name
            ));
        }
    }

    /// Updates every agent's line.
    fn show_agents(&mut self) {
        for i in 0..self.tails.len() {
            let note = self.tails[i].poll().to_owned();
            let running = self.procs.agents[i].is_running();
            let role = if self.down[i] {
                "down"
            } else if !running {
                "exited"
            } else {
                role_name(self.roles[i])
            };
            self.progress.set_agent(i, role, &note);
        }
    }
}

/// The message for a process that failed: its status and the end of its log.
fn failed(p: &Proc, status: &str) -> String {
    format!(
        "{} failed ({status}); the last {TAIL_LINES} lines of {}:\n{}",
        p.name,
        p.log.display(),
        p.tail(TAIL_LINES)
    )
}
