//! The command line: the demo's options ([`RunArgs`]), their checks, and the hidden
//! subcommands the demo re-executes itself with to become the aggregator or an agent
//! ([`ChildCommand`]).

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};
use flock_agent::train::BackendChoice;

/// Proposers a round needs at the least: the smallest SecAgg+ cohort that has safe parameters
/// when 10 % of it may drop out (`secagg.dropout = 0.1`).
pub(crate) const MIN_PROPOSERS: usize = 4;
/// Agents the demo needs at the least: [`MIN_PROPOSERS`] and one voter.
pub(crate) const MIN_AGENTS: usize = MIN_PROPOSERS + 1;
/// Agents the demo runs at the most (each one is a process; the task takes up to 256).
pub(crate) const MAX_AGENTS: usize = 64;

/// flock-edge's main job in one command: a local chain with an FL Alliance task, one
/// aggregator and N agents as separate processes over QUIC with SecAgg+, a centralised baseline
/// for comparison, and a report (rounds.json, metrics.csv, report.txt, three plots).
#[derive(Parser, Debug)]
#[command(
    name = "flock-demo",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub(crate) struct Cli {
    /// Internal: what the demo's child processes run.
    #[command(subcommand)]
    pub(crate) command: Option<ChildCommand>,
    /// The demo's options.
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// The roles the demo re-executes itself in (hidden: the demo starts them).
#[derive(Subcommand, Debug)]
pub(crate) enum ChildCommand {
    /// Serve the task, as `flock-aggregator serve` does.
    #[command(hide = true)]
    Aggregator {
        /// `aggregator.toml`.
        #[arg(long)]
        config: PathBuf,
    },
    /// Work the task's rounds, as `flock-agent run` does.
    #[command(hide = true)]
    Agent {
        /// `agent.toml`.
        #[arg(long)]
        config: PathBuf,
    },
}

/// What to run.
#[derive(Args, Debug, Clone)]
pub(crate) struct RunArgs {
    /// Agents (devices), each its own process holding one non-IID share of the data.
    #[arg(long, default_value_t = 5)]
    pub(crate) agents: usize,
    /// Rounds of the task.
    #[arg(long, default_value_t = 10)]
    pub(crate) rounds: u32,
    /// `breast_cancer`, `digits` (fixtures/data) or the path of a CSV file (see --label).
    #[arg(long, default_value = "breast_cancer")]
    pub(crate) dataset: String,
    /// The label column of a CSV given to --dataset (integer classes 0, 1, …).
    #[arg(long)]
    pub(crate) label: Option<String>,
    /// Probability, per agent and round, that the demo kills the agent's process at a random
    /// moment of the round (a flaky device); it is restarted once the round is finalised.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) drop_rate: f64,
    /// Kill agent AGENT (0-based) at a random moment of round ROUND and restart it once the
    /// round is finalised; repeatable (e.g. `--drop 1@2 --drop 3@4`).
    #[arg(long = "drop", value_name = "AGENT@ROUND", value_parser = parse_drop)]
    pub(crate) drops: Vec<(usize, u64)>,
    /// Dirichlet concentration of the non-IID split (small: each agent sees few classes).
    #[arg(long, default_value_t = 0.5)]
    pub(crate) alpha: f64,
    /// Train on the CPU.
    #[arg(long, conflicts_with = "gpu")]
    pub(crate) cpu: bool,
    /// Train on the GPU (an error where wgpu finds no adapter). Default: the GPU if there is
    /// one, else the CPU.
    #[arg(long)]
    pub(crate) gpu: bool,
    /// Use this development node (anvil: it must answer `anvil_setBalance`) instead of
    /// starting one; the contracts are deployed on it afresh.
    #[arg(long, value_name = "URL")]
    pub(crate) chain: Option<String>,
    /// The run directory (default: runs/<UTC timestamp> under the current directory).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Final accuracy below which the demo exits non-zero (default: 0.85 for breast_cancer,
    /// 0.80 otherwise).
    #[arg(long)]
    pub(crate) threshold: Option<f64>,
    /// Seed of the initial model, the data split and the demo's drops.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
}

/// `AGENT@ROUND` of `--drop`.
fn parse_drop(text: &str) -> Result<(usize, u64), String> {
    let (a, r) = text
        .split_once('@')
        .ok_or_else(|| format!("{text:?} is not AGENT@ROUND (e.g. 1@2)"))?;
    let a = a
        .parse()
        .map_err(|e| format!("agent {a:?} in {text:?}: {e}"))?;
    let r = r
        .parse()
        .map_err(|e| format!("round {r:?} in {text:?}: {e}"))?;
    Ok((a, r))
}

impl RunArgs {
    /// Refuses options that cannot make a run, saying why.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if self.agents < MIN_AGENTS {
            bail!(
                "--agents {}: the demo needs at least {MIN_AGENTS} agents. Every round draws at \
                 least {MIN_PROPOSERS} proposers, the smallest SecAgg+ cohort with safe \
                 parameters when 10 % of it may drop out (secagg.dropout = 0.1), and needs at \
                 least one voter to judge the candidate{}",
                self.agents,
                if self.drop_rate > 0.0 {
                    "; with --drop-rate, agents are killed on top of that"
                } else {
                    ""
                }
            );
        }
        if self.agents > MAX_AGENTS {
            bail!(
                "--agents {}: at most {MAX_AGENTS} (each agent is a process on this machine)",
                self.agents
            );
        }
        if self.rounds == 0 {
            bail!("--rounds 0: nothing to do");
        }
        if !(0.0..=1.0).contains(&self.drop_rate) {
            bail!(
                "--drop-rate {} is not a probability in [0, 1]",
                self.drop_rate
            );
        }
        if let Some((a, r)) = self
            .drops
            .iter()
            .find(|(a, r)| *a >= self.agents || *r == 0 || *r > u64::from(self.rounds))
        {
            bail!(
                "--drop {a}@{r}: agents are 0..{} and rounds 1..={}",
                self.agents,
                self.rounds
            );
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            bail!("--alpha {} is not a positive number", self.alpha);
        }
        if let Some(t) = self.threshold
            && !(0.0..=1.0).contains(&t)
        {
            bail!("--threshold {t} is not an accuracy in [0, 1]");
        }
        Ok(())
    }

    /// The agents' (and the baseline's) training backend.
    pub(crate) fn backend(&self) -> BackendChoice {
        if self.cpu {
            BackendChoice::Cpu
        } else if self.gpu {
            BackendChoice::Gpu
        } else {
            BackendChoice::Auto
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> RunArgs {
        let mut argv = vec!["flock-demo"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv) {
            Ok(cli) => cli.run,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        let a = args(&[]);
        assert_eq!((a.agents, a.rounds, a.alpha), (5, 10, 0.5));
        assert!(a.validate().is_ok());
        assert_eq!(a.backend(), BackendChoice::Auto);
    }

    #[test]
    fn fewer_than_five_agents_are_refused_naming_secagg() {
        let e = args(&["--agents", "4", "--drop-rate", "0.2"])
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("SecAgg+") && e.contains("--drop-rate"), "{e}");
    }

    #[test]
    fn child_subcommands_parse() {
        let cli = Cli::try_parse_from(["flock-demo", "agent", "--config", "a.toml"]);
        assert!(matches!(
            cli.map(|c| c.command),
            Ok(Some(ChildCommand::Agent { .. }))
        ));
    }
}
