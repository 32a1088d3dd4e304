//! The run's chain: a local anvil (installed with `npm ci --prefix chain` first if it is
//! missing) with the FL Alliance contracts deployed by `flock_chain::devnet::Devnet`, and the
//! run's task on it: its initial model is the run's, its rounds the run's, enough proposers
//! drawn for a safe SecAgg+ cohort, short windows, a funded reward pool, FLOCK minted to every
//! agent and the keys written into `keys/`. Accounts: 0 deploys and owns the token, 1 is the
//! aggregator, 2, 3, … are the agents.
//!
//! Modelled on `task_for` in the end-to-end test `federation_on_chain.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

use alloy::primitives::{Address, B256, U256, keccak256};
use anyhow::{Context, bail};
use flock_chain::anvil::{Anvil, AnvilOptions};
use flock_chain::devnet::Devnet;
use flock_chain::params::{FLOCK, TaskParams};
use flock_chain::roles::proposer_count;
use flock_chain::task::TaskClient;
use flock_model::{ModelId, ModelSpec};

use crate::cli::MIN_PROPOSERS;

/// FLOCK in the task's reward pool.
const POOL_FLOCK: u32 = 1000;
/// FLOCK minted to each agent's account.
const MINTED_FLOCK: u32 = 1000;

/// The chain of a run; anvil stops when this is dropped.
pub(crate) struct ChainRun {
    /// The devnet (owns the anvil process).
    pub(crate) devnet: Devnet,
    /// The task contract.
    pub(crate) task: Address,
    /// Agent i's account.
    pub(crate) agents: Vec<Address>,
    /// A read-only view of the task (as account 0).
    pub(crate) reader: TaskClient,
}

/// `chain/` of this checkout (its `node_modules` holds anvil).
fn chain_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../chain")
}

/// Finds anvil, or installs it with `npm ci --prefix chain` (what `scripts/setup` does), saying
/// so through `say`.
pub(crate) fn ensure_anvil(say: impl Fn(&str)) -> anyhow::Result<()> {
    if Anvil::find_binary().is_ok() {
        return Ok(());
    }
    let dir = chain_dir();
    say(&format!(
        "anvil is not installed: running `npm ci --prefix {}` (once; scripts/setup does the same)",
        dir.display()
    ));
    let status = Command::new("npm")
        .arg("ci")
        .arg("--prefix")
        .arg(&dir)
        .args(["--no-audit", "--no-fund", "--loglevel=error"])
        .status()
        .context("running npm (is Node.js installed? scripts/setup installs it)")?;
    if !status.success() {
        bail!(
            "`npm ci --prefix {}` failed ({status}); run scripts/setup",
            dir.display()
        );
    }
    Anvil::find_binary()
        .map(|_| ())
        .context("anvil is still missing after npm ci; run scripts/setup")
}

/// The share of members drawn as proposers (basis points) such that `n` members give
/// `max(4, ⌈0.6 n⌉)` proposers, at most `n − 1` (one voter at the least).
pub(crate) fn proposer_share_bps(n: usize) -> u16 {
    let wanted = MIN_PROPOSERS
        .max((n * 6).div_ceil(10))
        .min(n.saturating_sub(1));
    let guess = u16::try_from((wanted * 10_000) / n.max(1)).unwrap_or(9999);
    if proposer_count(n, guess) == wanted {
        return guess;
    }
    (1..10_000u16)
        .find(|&bps| proposer_count(n, bps) == wanted)
        .unwrap_or(guess)
}

/// Starts anvil (or attaches to the development node at `url`), deploys the contracts and
/// creates the run's task: `rounds` rounds from `initial`, every agent minted FLOCK, the keys in
/// `root/keys/`.
pub(crate) async fn start(
    url: Option<&str>,
    root: &Path,
    agents: usize,
    rounds: u32,
    spec: &ModelSpec,
    initial: ModelId,
) -> anyhow::Result<ChainRun> {
    let devnet = match url {
        Some(url) => Devnet::attach(url, agents + 2)
            .await
            .with_context(|| format!("--chain {url}: setting up the contracts on that node"))?,
        None => Devnet::start(agents + 2, AnvilOptions::default())
            .await
            .context("starting the local chain")?,
    };
    let aggregator = devnet.account(1).context("no devnet account 1")?;
    let mut p = TaskParams::new(aggregator);
    p.model_spec_hash = keccak256(serde_json::to_vec(spec)?);
    p.initial_model_hash = B256::from(initial.0);
    p.total_rounds = rounds;
    // The demo starts the aggregator only once every agent has staked, so round 1 has them all;
    // 4 (not `agents`) lets the task go on, with void rounds, if agents are removed for strikes.
    p.min_participants = u16::try_from(MIN_PROPOSERS)?;
    p.proposer_share_bps = proposer_share_bps(agents);
    p.beacon_commit_duration = 4;
    p.beacon_reveal_duration = 4;
    p.training_duration = 120;
    p.vote_commit_duration = 5;
    p.vote_reveal_duration = 5;
    let (id, task) = devnet.create_task(&p).await.context("creating the task")?;
    devnet
        .fund_task(id, FLOCK * U256::from(POOL_FLOCK))
        .await
        .context("funding the task's reward pool")?;
    let keys = root.join("keys");
    devnet.write_key(1, &keys.join("aggregator.key"))?;
    let mut accounts = Vec::with_capacity(agents);
    for i in 0..agents {
        let a = devnet
            .account(i + 2)
            .with_context(|| format!("no devnet account {}", i + 2))?;
        devnet
            .mint(a, FLOCK * U256::from(MINTED_FLOCK))
            .await
            .with_context(|| format!("minting FLOCK for agent {i}"))?;
        devnet.write_key(i + 2, &keys.join(format!("device-{i}.key")))?;
        accounts.push(a);
    }
    let reader = devnet.task_client(task, 0).await?;
    Ok(ChainRun {
        devnet,
        task,
        agents: accounts,
        reader,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_proposers_and_one_voter() {
        assert_eq!(proposer_share_bps(5), 8000);
        for n in 5..=64 {
            let k = proposer_count(n, proposer_share_bps(n));
            assert!(k >= MIN_PROPOSERS && k < n, "{n} members: {k} proposers");
            assert_eq!(k, MIN_PROPOSERS.max((n * 6).div_ceil(10)), "{n} members");
        }
    }
}
