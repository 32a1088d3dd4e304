//! `flock-aggregator chain status`: a task on chain as an operator wants to see it.

use std::time::Duration;

use anyhow::Context;
use flock_chain::status::TaskStatus;
use flock_chain::task::TaskClient;
use flock_chain::tx::ConfirmOptions;

#[derive(clap::Subcommand)]
pub(crate) enum ChainCommand {
    /// The task's parameters, round and phase, stakes, last accepted model, and the current
    /// round's members, roles, candidate and outcome (read only; no key needed).
    Status {
        /// JSON-RPC endpoint of the chain.
        #[arg(long, default_value = "http://127.0.0.1:8545")]
        rpc: String,
        /// The task contract's address (0x…).
        #[arg(long)]
        task: String,
    },
}

pub(crate) fn run(command: &ChainCommand) -> anyhow::Result<()> {
    let ChainCommand::Status { rpc, task } = command;
    let task: alloy::primitives::Address = task
        .parse()
        .with_context(|| format!("--task {task:?} is not an address"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let status = runtime.block_on(async {
        let provider = flock_chain::provider::connect(rpc, [], Duration::from_secs(10))?;
        let client = TaskClient::connect(
            provider,
            task,
            alloy::primitives::Address::ZERO,
            ConfirmOptions::default(),
        )
        .await?;
        TaskStatus::read(&client).await
    });
    let status = status.with_context(|| format!("reading task {task} from {rpc}"))?;
    print!("{status}");
    Ok(())
}
