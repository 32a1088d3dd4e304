//! `flock-agent verify-contribution`: proves from chain data that this agent's account is in a
//! round's contributors.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use flock_agent::service::AgentConfig;
use flock_chain::contribution::prove;
use flock_chain::task::TaskClient;
use flock_chain::tx::ConfirmOptions;

pub(crate) fn verify(config_path: &Path, round: u64) -> anyhow::Result<()> {
    let config = AgentConfig::load(config_path)?;
    let chain = config.chain.with_context(|| {
        format!(
            "{}: no [chain] section: this agent's task is not on a chain",
            config_path.display()
        )
    })?;
    // AgentConfig::load checked both are addresses.
    let task: alloy::primitives::Address = chain.task.parse()?;
    let account: alloy::primitives::Address = chain.account.parse()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let proof = runtime.block_on(async {
        let provider = flock_chain::provider::connect(&chain.rpc, [], Duration::from_secs(10))?;
        let client =
            TaskClient::connect(provider, task, account, ConfirmOptions::default()).await?;
        anyhow::Ok(prove(&client, round, account).await?)
    })?;
    anyhow::ensure!(
        proof.verify(),
        "the Merkle path of {account} does not lead to round {round}'s root {}",
        proof.root
    );
    println!(
        "round {round}: {account} is one of {} contributors",
        proof.contributors
    );
    println!("model:          {}", proof.model_hash);
    println!("root on chain:  {}", proof.root);
    println!("anchored in:    {}", proof.anchor_tx);
    println!("proof ({} hashes, verified):", proof.proof.len());
    for h in &proof.proof {
        println!("  {h}");
    }
    Ok(())
}
