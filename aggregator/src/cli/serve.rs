//! `flock-aggregator serve`: load the config, log, run the task until its last round or
//! SIGTERM/Ctrl-C, print a summary.

use std::path::Path;

use anyhow::Context;
use flock_aggregator::config::Config;
use flock_aggregator::service::serve;
use flock_transport::shutdown_signal;

pub(crate) fn run(config_path: &Path, json_logs: bool) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if json_logs {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let config = Config::load(config_path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(serve(config, shutdown_signal(), |l| {
        println!("listening on {}", l.quic);
        if let Some(m) = l.metrics {
            println!("metrics on http://{m}/metrics, health on http://{m}/healthz");
        }
    }))?;
    for r in &report.rounds {
        println!(
            "round {:>3}: {} of {} contributed, model {} ({:.2} s)",
            r.round,
            r.contributors.len(),
            r.participants,
            r.model,
            r.elapsed.as_secs_f64()
        );
    }
    println!(
        "task at round {}, model {}",
        report.state.round, report.state.model
    );
    Ok(())
}
