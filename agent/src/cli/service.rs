//! `flock-agent run` and `flock-agent status`: the agent as a service, and what it has done.

use std::path::Path;

use anyhow::Context;
use flock_agent::service::{AgentBuilder, AgentConfig, AgentState};
use flock_transport::shutdown_signal;

pub(crate) fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = AgentConfig::load(config_path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(
        AgentBuilder::new(config)
            .on_round(|r| {
                println!(
                    "round {:>3}: model {} (contributed: {}, {} samples, trained in {:.2} s)",
                    r.round, r.model, r.contributed, r.samples, r.train_seconds
                );
            })
            .run(shutdown_signal()),
    )?;
    println!(
        "{} as client {}: last round {:?}, contributed to {} rounds",
        if report.completed {
            "task complete"
        } else {
            "left the task"
        },
        report.client,
        report.state.last_round,
        report.state.contributed
    );
    Ok(())
}

pub(crate) fn status(config_path: &Path) -> anyhow::Result<()> {
    let config = AgentConfig::load(config_path)?;
    let state = AgentState::load(&config.agent.state_dir)
        .with_context(|| format!("reading {}", config.agent.state_dir.display()))?;
    println!("task:        {}", config.task);
    println!(
        "aggregator:  {} ({})",
        config.aggregator.address, config.aggregator.server_name
    );
    println!(
        "client id:   {}",
        state
            .client
            .map_or("not yet connected".into(), |c| c.to_string())
    );
    println!(
        "last round:  {}",
        state.last_round.map_or("none".into(), |r| r.to_string())
    );
    println!("model:       {}", state.model.as_deref().unwrap_or("none"));
    println!("contributed: {} rounds", state.contributed);
    Ok(())
}
