//! `flock-agent`: command-line entry point. Parses arguments and calls the library.

mod cli;

use anyhow::Context;
use clap::{Parser, Subcommand};
use flock_agent::kernel_check::{self, GpuOutcome};

/// flock-edge device agent: trains next to the data, sends only masked updates.
#[derive(Parser)]
#[command(name = "flock-agent", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check that this machine's masking kernels are correct: CPU, and GPU when present.
    Doctor {
        /// Words in the test vector.
        #[arg(long, default_value_t = 1 << 20)]
        words: usize,
        /// Do not look for a GPU.
        #[arg(long)]
        cpu_only: bool,
    },
    /// Split a CSV into non-IID per-client CSVs (Dirichlet over labels) for a simulation.
    Partition(cli::partition::PartitionArgs),
    /// Train on one CSV without a federation; writes the model and a run card.
    #[cfg(feature = "train")]
    TrainLocal(Box<cli::train::TrainLocalArgs>),
    /// Join a task and work its rounds until it completes (SIGTERM leaves cleanly).
    #[cfg(feature = "train")]
    Run {
        /// The agent's config (TOML).
        #[arg(long, default_value = "agent.toml")]
        config: std::path::PathBuf,
    },
    /// Print what the agent has done (from its state directory).
    #[cfg(feature = "train")]
    Status {
        /// The agent's config (TOML).
        #[arg(long, default_value = "agent.toml")]
        config: std::path::PathBuf,
    },
    /// Prove from chain data that this agent's account contributed to a round: the round's
    /// contributors (from its anchoring transaction), checked against the root stored on
    /// chain, and the Merkle path of the account to that root.
    #[cfg(feature = "chain")]
    VerifyContribution {
        /// The agent's config (TOML) with a `[chain]` section.
        #[arg(long, default_value = "agent.toml")]
        config: std::path::PathBuf,
        /// The round.
        #[arg(long)]
        round: u64,
    },
    /// Evaluate a model file on a CSV: loss, accuracy, per-class F1.
    #[cfg(feature = "train")]
    Evaluate(cli::train::EvaluateArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The service logs its rounds (to the journal under systemd); the one-shot commands print
    // their results and log only warnings. wgpu's GL backend reports a missing EGL driver as an
    // error while the adapter search goes on to Vulkan: noise to a user.
    #[cfg(feature = "train")]
    let service = matches!(cli.command, Command::Run { .. });
    #[cfg(not(feature = "train"))]
    let service = false;
    let default = if service { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(format!("{default},wgpu_hal::gles=off"))
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Partition(args) => cli::partition::run(&args)?,
        #[cfg(feature = "train")]
        Command::TrainLocal(args) => cli::train::train(&args)?,
        #[cfg(feature = "train")]
        Command::Evaluate(args) => cli::train::evaluate_cmd(&args)?,
        #[cfg(feature = "train")]
        Command::Run { config } => cli::service::run(&config)?,
        #[cfg(feature = "train")]
        Command::Status { config } => cli::service::status(&config)?,
        #[cfg(feature = "chain")]
        Command::VerifyContribution { config, round } => cli::chain::verify(&config, round)?,
        Command::Doctor { words, cpu_only } => {
            let report = kernel_check::run(words, !cpu_only).context("kernel self-check failed")?;
            println!(
                "CPU kernels: ok ({} words, {:.1} ms)",
                report.words,
                ms(report.cpu_time)
            );
            match report.gpu {
                GpuOutcome::Skipped(why) => println!("GPU kernels: skipped ({why})"),
                GpuOutcome::Unavailable(why) => {
                    println!("GPU kernels: no adapter, the CPU kernels will be used ({why})");
                }
                GpuOutcome::Matched { adapter, time } => println!(
                    "GPU kernels: ok on {adapter}, equal to the CPU word for word ({:.1} ms)",
                    ms(time)
                ),
            }
        }
    }
    Ok(())
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
