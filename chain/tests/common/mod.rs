//! Shared set-up of the chain tests: a devnet with a funded task, its members staked, and the
//! aggregator's client.
#![allow(dead_code, unreachable_pub)]

use alloy::primitives::{Address, U256};
use flock_chain::anvil::AnvilOptions;
use flock_chain::devnet::{Devnet, dev_identity};
use flock_chain::drive::{RoundReport, RoundScript, play_round};
use flock_chain::params::{FLOCK, TaskParams};
use flock_chain::task::TaskClient;

/// Account 0 deploys and funds, account 1 aggregates, accounts 2.. are participants.
pub const AGGREGATOR: usize = 1;
pub const FIRST_MEMBER: usize = 2;

pub struct Setup {
    pub devnet: Devnet,
    pub task: Address,
    pub task_id: u64,
    pub members: Vec<TaskClient>,
    pub aggregator: TaskClient,
    pub params: TaskParams,
}

/// A devnet with one task created from `tweak(defaults)`, its pool funded with `pool` FLOCK,
/// and `n` members each minted 1 000 FLOCK and staked `stake(i)` FLOCK.
pub async fn setup(
    n: usize,
    pool: u64,
    stake: impl Fn(usize) -> u64,
    tweak: impl FnOnce(&mut TaskParams),
) -> anyhow::Result<Setup> {
    let devnet = Devnet::start(FIRST_MEMBER + n, AnvilOptions::default()).await?;
    let aggregator_addr = devnet
        .account(AGGREGATOR)
        .ok_or_else(|| anyhow::anyhow!("no account"))?;
    let mut params = TaskParams::new(aggregator_addr);
    tweak(&mut params);
    let (task_id, task) = devnet.create_task(&params).await?;
    if pool > 0 {
        devnet.fund_task(task_id, FLOCK * U256::from(pool)).await?;
    }
    let mut members = Vec::new();
    for i in 0..n {
        let who = FIRST_MEMBER + i;
        let client = devnet.task_client(task, who).await?;
        devnet
            .mint(client.address(), FLOCK * U256::from(1000u32))
            .await?;
        client
            .join(FLOCK * U256::from(stake(i)), dev_identity(who))
            .await?;
        members.push(client);
    }
    let aggregator = devnet.task_client(task, AGGREGATOR).await?;
    Ok(Setup {
        devnet,
        task,
        task_id,
        members,
        aggregator,
        params,
    })
}

/// Plays one scripted round of the set-up's task with all its members.
pub async fn play(s: &Setup, script: &RoundScript) -> anyhow::Result<RoundReport> {
    Ok(play_round(&s.devnet, &s.members, &s.aggregator, script).await?)
}

/// Σ FLOCK of every devnet wallet and the task.
pub async fn total_held(s: &Setup) -> anyhow::Result<U256> {
    let mut sum = s.devnet.balance(s.task).await?;
    for a in s.devnet.accounts() {
        sum += s.devnet.balance(a).await?;
    }
    Ok(sum)
}

/// Starts a round and plays it up to the role draw (every member commits and reveals a beacon
/// share); returns the round and its proposers.
pub async fn to_training(
    devnet: &Devnet,
    members: &[TaskClient],
    aggregator: &TaskClient,
) -> anyhow::Result<(u64, Vec<Address>)> {
    use std::time::Duration;
    let params = aggregator.params().await?;
    let (round, _) = members[0].start_round().await?;
    let mut secrets = Vec::new();
    for m in members {
        let s = devnet.random()?;
        m.commit_beacon(round, s).await?;
        secrets.push(s);
    }
    devnet
        .advance_time(Duration::from_secs(params.beaconCommitDuration.into()))
        .await?;
    for (m, s) in members.iter().zip(&secrets) {
        m.reveal_beacon(round, *s).await?;
    }
    devnet
        .advance_time(Duration::from_secs(params.beaconRevealDuration.into()))
        .await?;
    aggregator.draw_roles(round).await?;
    let mut proposers = Vec::new();
    for m in members {
        if aggregator.role_of(round, m.address()).await? == flock_chain::Role::Proposer {
            proposers.push(m.address());
        }
    }
    proposers.sort();
    Ok((round, proposers))
}

/// A scratch directory unique to this test process and `name`.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("flock-chain-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}
