//! The demo's report: what one run did, as data, and the files made from it.
//!
//! This module owns the data model ([`RunReport`], [`RoundRecord`], [`PhaseSeconds`],
//! [`AgentRecord`]) and the one error type of the report ([`ReportError`]). The renderings live
//! in the submodules: [`files`] (`rounds.json`, `metrics.csv`), [`plots`] (`accuracy.png`,
//! `phases.png`, `stakes.png`), [`table`] (the plain-text report); [`font`] owns the embedded
//! font the plots are drawn with.
//!
//! Accuracies are fractions in `[0, 1]`; stakes and rewards are whole FLOCK tokens as `f64`;
//! hashes and transaction ids are `0x`-prefixed hex strings; durations are seconds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod files;
pub mod font;
pub mod plots;
pub mod table;

/// Everything one demo run did: the task, each round, each agent, and the final result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The data set the task trains on (for example `"mnist"`).
    pub dataset: String,
    /// How many agents took part.
    pub agents: usize,
    /// How many rounds the task was configured for.
    pub rounds_planned: u64,
    /// The Dirichlet concentration used to partition the data between agents.
    pub alpha: f64,
    /// The training backend the agents used (for example `"cpu"` or `"wgpu"`).
    pub backend: String,
    /// The FL Alliance task contract's address, `0x`-hex.
    pub task_address: String,
    /// One record per round, in round order.
    pub rounds: Vec<RoundRecord>,
    /// One record per agent.
    pub agents_summary: Vec<AgentRecord>,
    /// The centralised baseline's accuracy after each round-equivalent of training, on the same
    /// pooled held-out test set; entry `i` belongs to `rounds[i]`. Same length as `rounds` or
    /// shorter (a baseline that was cut short or not run).
    pub centralised_accuracy: Vec<f64>,
    /// The federated global model's accuracy at the end, on the pooled held-out test set.
    pub final_accuracy: f64,
    /// The centralised baseline's accuracy at the end.
    pub final_centralised_accuracy: f64,
    /// The accuracy the final model must reach for the run to count as having learned.
    pub accuracy_threshold: f64,
    /// SHA-256 of the final global model file as the aggregator has it, `0x`-hex.
    pub final_model_hash: String,
    /// The final global model hash recorded on chain, `0x`-hex.
    pub chain_final_model_hash: String,
    /// Wall-clock seconds of the whole run.
    pub seconds_total: f64,
}

/// One round: who did what, how the vote went, what was anchored, and how long each phase took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// The round number (as on chain).
    pub round: u64,
    /// Names of the agents drawn as proposers (trainers).
    pub proposers: Vec<String>,
    /// Names of the agents drawn as voters.
    pub voters: Vec<String>,
    /// Names of the agents that dropped out during the round.
    pub dropped: Vec<String>,
    /// How many proposers' updates made it into the secure sum.
    pub contributors: usize,
    /// Each voter's accuracy of the candidate model on that voter's own test data, in `[0, 1]`,
    /// by voter name.
    pub voter_accuracy: BTreeMap<String, f64>,
    /// How the round ended: `"accepted"`, `"rejected"` or `"void"`.
    pub outcome: String,
    /// Whether the candidate became the new global model.
    pub accepted: bool,
    /// The candidate model's hash, `0x`-hex.
    pub model_hash: String,
    /// The last accepted (global) model's hash after the round, `0x`-hex.
    pub global_model_hash: String,
    /// The transaction that anchored the candidate, if any.
    pub anchor_tx: Option<String>,
    /// The transaction that finalised the round, if any.
    pub finalise_tx: Option<String>,
    /// The global model's federated accuracy after the round, on the pooled held-out test set.
    pub accuracy: f64,
    /// Seconds spent in each phase of the round.
    pub phases: PhaseSeconds,
}

/// Seconds spent in each phase of a round.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct PhaseSeconds {
    /// Waiting for the randomness beacon that draws the roles.
    pub beacon: f64,
    /// From roles drawn to the candidate anchored on chain; includes SecAgg+.
    pub training: f64,
    /// Voters fetching, evaluating and voting on the candidate.
    pub voting: f64,
    /// Finalising the round on chain (rewards and slashing).
    pub finalise: f64,
}

impl PhaseSeconds {
    /// The four phases together.
    pub fn total(&self) -> f64 {
        self.beacon + self.training + self.voting + self.finalise
    }
}

/// One agent over the whole run: its stake, rewards, penalties and roles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// The agent's name (as used in [`RoundRecord`]).
    pub name: String,
    /// The agent's chain address, `0x`-hex.
    pub address: String,
    /// Stake at the start of the run, in FLOCK.
    pub stake_start: f64,
    /// Stake at the end of the run, in FLOCK.
    pub stake_end: f64,
    /// Rewards earned over the run, in FLOCK.
    pub earned: f64,
    /// Stake slashed over the run, in FLOCK.
    pub slashed: f64,
    /// Stake after each round, in FLOCK; entry `i` belongs to the run's `rounds[i]`.
    pub stake_per_round: Vec<f64>,
    /// In how many rounds the agent was a proposer.
    pub proposer_rounds: u64,
    /// In how many rounds the agent was a voter.
    pub voter_rounds: u64,
    /// Whether the agent dropped out during the run.
    pub dropped: bool,
}

impl RunReport {
    /// Whether the run learned: the final federated accuracy reached the threshold.
    pub fn learned(&self) -> bool {
        self.final_accuracy >= self.accuracy_threshold
    }

    /// Whether the final model hash is the one recorded on chain (ignoring case and a `0x`
    /// prefix). An empty hash on either side never matches.
    pub fn hash_matches_chain(&self) -> bool {
        let ours = normalise_hex(&self.final_model_hash);
        let chain = normalise_hex(&self.chain_final_model_hash);
        !ours.is_empty() && ours == chain
    }

    /// How many rounds were accepted.
    pub fn accepted_rounds(&self) -> usize {
        self.rounds.iter().filter(|r| r.accepted).count()
    }
}

impl RoundRecord {
    /// The mean of the voters' accuracies, or `None` when no voter reported one.
    pub fn mean_voter_accuracy(&self) -> Option<f64> {
        if self.voter_accuracy.is_empty() {
            return None;
        }
        let sum: f64 = self.voter_accuracy.values().sum();
        Some(sum / self.voter_accuracy.len() as f64)
    }
}

/// Writes every file of the report into `dir` (created if missing): `rounds.json`,
/// `metrics.csv`, `report.txt` and the three plots. Returns the paths written.
pub fn write_all(dir: &Path, report: &RunReport) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = vec![
        files::write_rounds_json(dir, report)?,
        files::write_metrics_csv(dir, report)?,
        files::write_text_report(dir, report)?,
    ];
    written.extend(plots::write_plots(dir, report)?);
    Ok(written)
}

/// Lower-case hex digits without a `0x` prefix or surrounding space.
fn normalise_hex(hash: &str) -> String {
    let hash = hash.trim();
    let hash = hash
        .strip_prefix("0x")
        .or_else(|| hash.strip_prefix("0X"))
        .unwrap_or(hash);
    hash.to_ascii_lowercase()
}

/// What went wrong writing or reading the report; each variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The output directory could not be created.
    #[error("cannot create the report directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A report file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A report file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `rounds.json` could not be encoded or decoded.
    #[error("{path} is not a valid run report: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// `metrics.csv` could not be written.
    #[error("cannot write the metrics table {path}: {source}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// Why.
        source: csv::Error,
    },
    /// The embedded font could not be loaded (the font file in the crate is broken).
    #[error("the embedded font {name} could not be loaded")]
    Font {
        /// The font's file name.
        name: &'static str,
    },
    /// Drawing a plot failed.
    #[error("cannot draw the plot {path}: {message}")]
    Plot {
        /// The PNG file being drawn.
        path: PathBuf,
        /// What plotters said.
        message: String,
    },
    /// Encoding a plot as PNG failed.
    #[error("cannot encode the plot {path} as PNG: {source}")]
    Png {
        /// The PNG file.
        path: PathBuf,
        /// Why.
        source: png::EncodingError,
    },
}
