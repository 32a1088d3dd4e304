//! Gas of a whole round at 10 and at 100 participants on a local anvil:
//! `cargo run --release -p flock-chain --example gas`.
//!
//! Every member joins, commits and reveals a beacon share; the roles are drawn (30 %
//! proposers); the aggregator anchors all proposers as contributors; every voter commits and
//! reveals an accepting vote; the round is finalised. Prints min / mean / max gas per call.

use alloy::primitives::U256;
use flock_chain::anvil::AnvilOptions;
use flock_chain::devnet::{Devnet, dev_identity};
use flock_chain::drive::{RoundScript, play_round};
use flock_chain::params::{FLOCK, TaskParams};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    println!("| members | call | calls | min gas | mean gas | max gas |");
    println!("| ---: | --- | ---: | ---: | ---: | ---: |");
    for n in [10usize, 100] {
        let devnet = Devnet::start(n + 2, AnvilOptions::default()).await?;
        let aggregator = devnet
            .account(1)
            .ok_or_else(|| anyhow::anyhow!("no account 1"))?;
        let (id, task) = devnet.create_task(&TaskParams::new(aggregator)).await?;
        devnet.fund_task(id, FLOCK * U256::from(1000u32)).await?;
        let mut members = Vec::new();
        let mut joins = Vec::new();
        for i in 0..n {
            let m = devnet.task_client(task, i + 2).await?;
            devnet.mint(m.address(), FLOCK * U256::from(200u32)).await?;
            joins.push(
                m.join(FLOCK * U256::from(10u32 + i as u32), dev_identity(i + 2))
                    .await?
                    .join
                    .gas_used,
            );
            members.push(m);
        }
        let agg = devnet.task_client(task, 1).await?;
        let report = play_round(
            &devnet,
            &members,
            &agg,
            &RoundScript {
                accuracy_bps: 9000,
                ..Default::default()
            },
        )
        .await?;
        let mut rows = report.gas.clone();
        rows.insert("join", joins);
        for call in [
            "join",
            "startRound",
            "commitBeacon",
            "revealBeacon",
            "drawRoles",
            "anchorCandidate",
            "commitVote",
            "revealVote",
            "finalise",
        ] {
            let g = rows.get(call).cloned().unwrap_or_default();
            if g.is_empty() {
                continue;
            }
            let mean = g.iter().sum::<u64>() / g.len() as u64;
            let (min, max) = (
                g.iter().min().copied().unwrap_or(0),
                g.iter().max().copied().unwrap_or(0),
            );
            println!("| {n} | `{call}` | {} | {min} | {mean} | {max} |", g.len());
        }
        eprintln!(
            "n = {n}: {} proposers, {} voters, outcome {:?}",
            report.proposers.len(),
            report.voters.len(),
            report.outcome
        );
    }
    Ok(())
}
