//! `flock-demo`: flock-edge's main job in one command.
//!
//! `flock-demo` starts a local chain (anvil) with the FL Alliance contracts and a task, then
//! one aggregator process and N agent processes: real separate OS processes (this executable
//! re-executed with the hidden subcommands `aggregator` and `agent`, which call the same
//! libraries as `flock-aggregator serve` and `flock-agent run`), talking QUIC with mutual TLS on
//! loopback, summing the proposers' updates under SecAgg+, anchoring every round on the chain,
//! where the agents stake, draw their roles and vote. With `--drop-rate` the demo kills agents
//! mid-round (flaky devices) and restarts them after the round. Meanwhile a centralised
//! baseline trains on the pooled data. At the end it builds a report from the chain and the
//! aggregator's model store (`rounds.json`, `metrics.csv`, `report.txt`, three plots) and
//! prints its table; the exit status says whether the federation learned.
//!
//! Modules: [`cli`] (options), [`dataset`] (which data), [`setup`] (the run directory: CA,
//! certificates, data shares, scaling, configs), [`chain`] (devnet and task), [`processes`]
//! (starting, killing and stopping the children), [`child`] (the children's side), [`watch`]
//! (following the run, playing drops), [`progress`] (the terminal), [`baseline`] (centralised
//! training), [`collect`] (the report from the chain and the store), [`run`] (all of it in
//! order). The report's types and files are the library's (`flock_demo::report`).

mod baseline;
mod chain;
mod child;
mod cli;
mod collect;
mod dataset;
mod processes;
mod progress;
mod run;
mod setup;
mod watch;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{ChildCommand, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(ChildCommand::Aggregator { config }) => {
            child::aggregator(config).map(|()| ExitCode::SUCCESS)
        }
        Some(ChildCommand::Agent { config }) => child::agent(config).map(|()| ExitCode::SUCCESS),
        None => run::main(&cli.run),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flock-demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}
