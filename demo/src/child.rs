//! The demo's child processes from the inside: `flock-demo aggregator --config FILE` and
//! `flock-demo agent --config FILE` call the same libraries as `flock-aggregator serve` and
//! `flock-agent run` (`flock_aggregator::service::serve`, `flock_agent::service::AgentBuilder`),
//! log with tracing to standard error without colours (the demo writes it into
//! `logs/<name>.log`), and stop on SIGTERM or Ctrl-C, or when the demo process that started
//! them is gone.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use flock_agent::service::{AgentBuilder, AgentConfig};
use flock_aggregator::config::Config;
use flock_aggregator::service::serve;
use flock_transport::shutdown_signal;
use tracing::{info, warn};

/// Runs the aggregator until the task is complete (or it is stopped).
pub(crate) fn aggregator(config: &Path) -> anyhow::Result<()> {
    init_logging();
    let config = Config::load(config)?;
    let report = runtime()?.block_on(serve(config, shutdown(), |l| {
        info!(quic = %l.quic, metrics = ?l.metrics, "aggregator listening");
    }))?;
    for r in &report.rounds {
        info!(
            round = r.round,
            accepted = r.accepted,
            contributors = r.contributors.len(),
            model = %r.model,
            seconds = r.elapsed.as_secs_f64(),
            "round summary"
        );
    }
    info!(round = report.state.round, model = %report.state.model, "aggregator stopped");
    Ok(())
}

/// Runs one agent until the task is complete (or it is stopped).
pub(crate) fn agent(config: &Path) -> anyhow::Result<()> {
    init_logging();
    let config = AgentConfig::load(config)?;
    let report = runtime()?.block_on(AgentBuilder::new(config).run(shutdown()))?;
    if report.completed {
        info!(client = %report.client, contributed = report.state.contributed, "task complete");
    } else {
        info!(client = %report.client, contributed = report.state.contributed, "left the task");
    }
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Logs to standard error, without ANSI colours (the demo reads the logs back). `RUST_LOG`
/// overrides the level; wgpu's GL backend is silenced as in `flock-agent`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,wgpu_hal::gles=off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
}

/// Resolves on SIGTERM or Ctrl-C, or once this process's parent (the demo) is gone: a demo
/// killed outright leaves no services behind.
async fn shutdown() {
    let parent = std::os::unix::process::parent_id();
    let orphaned = async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if std::os::unix::process::parent_id() != parent {
                warn!("the demo that started this process is gone: stopping");
                return;
            }
        }
    };
    tokio::select! {
        () = shutdown_signal() => {},
        () = orphaned => {},
    }
}
