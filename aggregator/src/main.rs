//! `flock-aggregator`: command-line entry point. Parses arguments and calls the libraries.

mod cli;

use clap::{Parser, Subcommand};

/// flock-edge aggregator: sums masked updates, removes the masks, builds the next model.
#[derive(Parser)]
#[command(name = "flock-aggregator", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// How many clients a round can sum at a quantisation width without the sum wrapping
    /// modulo 2^32; with --clients, whether that cohort fits.
    Capacity {
        /// Bits per quantised value (1 to 32).
        #[arg(long)]
        bits: u32,
        /// Cohort size to check.
        #[arg(long)]
        clients: Option<u64>,
    },
    /// Run a task: accept agents over QUIC with mutual TLS and run its rounds.
    Serve {
        /// The task and server config (TOML).
        #[arg(long, default_value = "aggregator.toml")]
        config: std::path::PathBuf,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        json_logs: bool,
    },
    /// The federation's certificate authority: init, issue, revoke, list.
    #[command(subcommand)]
    Ca(cli::ca::CaCommand),
    /// The task on chain (FL Alliance contracts).
    #[command(subcommand)]
    Chain(cli::chain::ChainCommand),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Ca(command) => cli::ca::run(&command)?,
        Command::Chain(command) => cli::chain::run(&command)?,
        Command::Serve { config, json_logs } => cli::serve::run(&config, json_logs)?,
        Command::Capacity { bits, clients } => {
            // A cohort of one always fits at a valid width, so this also validates `bits`.
            edge_kernels::check_sum_capacity(1, bits)?;
            let max = max_clients(bits);
            println!("{bits}-bit values: at most {max} clients per modular sum");
            if let Some(n) = clients {
                edge_kernels::check_sum_capacity(n, bits)?;
                println!("{n} clients fit");
            }
        }
    }
    Ok(())
}

/// The largest cohort whose sum fits, found from the kernel's own guard.
fn max_clients(bits: u32) -> u64 {
    match edge_kernels::check_sum_capacity(u64::MAX, bits) {
        Err(edge_kernels::KernelError::SumOverflow { max_clients, .. }) => max_clients,
        _ => u64::MAX,
    }
}
