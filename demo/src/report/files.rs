//! The report's data files: `rounds.json` (the whole [`RunReport`], pretty-printed, readable
//! back with [`read_rounds_json`]), `metrics.csv` (one row per round, for spreadsheets and
//! plotting tools) and `report.txt` (the text of [`super::table::render`]).

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{ReportError, RunReport, table};

/// The file name of the JSON report.
pub const ROUNDS_JSON: &str = "rounds.json";
/// The file name of the per-round metrics table.
pub const METRICS_CSV: &str = "metrics.csv";
/// The file name of the text report.
pub const REPORT_TXT: &str = "report.txt";

/// Creates `dir` (and its parents) if it does not exist.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), ReportError> {
    fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes `report` as pretty-printed JSON to `dir/rounds.json` and returns the path.
pub fn write_rounds_json(dir: &Path, report: &RunReport) -> Result<PathBuf, ReportError> {
    ensure_dir(dir)?;
    let path = dir.join(ROUNDS_JSON);
    let mut text = serde_json::to_string_pretty(report).map_err(|source| ReportError::Json {
        path: path.clone(),
        source,
    })?;
    text.push('\n');
    fs::write(&path, text).map_err(|source| ReportError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Reads a report written by [`write_rounds_json`].
pub fn read_rounds_json(path: &Path) -> Result<RunReport, ReportError> {
    let text = fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ReportError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// One row of `metrics.csv`; the field names are the header.
#[derive(Serialize)]
struct MetricsRow<'a> {
    round: u64,
    outcome: &'a str,
    /// Counts; the names are in `rounds.json`.
    proposers: usize,
    voters: usize,
    dropped: usize,
    contributors: usize,
    federated_accuracy: f64,
    /// Empty when the baseline has no value for this round.
    centralised_accuracy: Option<f64>,
    /// Empty when no voter reported an accuracy.
    mean_voter_accuracy: Option<f64>,
    beacon_s: f64,
    training_s: f64,
    voting_s: f64,
    finalise_s: f64,
    model_hash: &'a str,
    /// Empty when nothing was anchored.
    anchor_tx: &'a str,
}

/// Writes one row per round to `dir/metrics.csv` and returns the path.
///
/// Columns: `round, outcome, proposers, voters, dropped, contributors, federated_accuracy,
/// centralised_accuracy, mean_voter_accuracy, beacon_s, training_s, voting_s, finalise_s,
/// model_hash, anchor_tx`. `proposers`, `voters` and `dropped` are counts; accuracies are
/// fractions; an absent value is an empty cell.
pub fn write_metrics_csv(dir: &Path, report: &RunReport) -> Result<PathBuf, ReportError> {
    ensure_dir(dir)?;
    let path = dir.join(METRICS_CSV);
    let csv_err = |source| ReportError::Csv {
        path: path.clone(),
        source,
    };
    let mut writer = csv::Writer::from_path(&path).map_err(csv_err)?;
    for (i, round) in report.rounds.iter().enumerate() {
        writer
            .serialize(MetricsRow {
                round: round.round,
                outcome: &round.outcome,
                proposers: round.proposers.len(),
                voters: round.voters.len(),
                dropped: round.dropped.len(),
                contributors: round.contributors,
                federated_accuracy: round.accuracy,
                centralised_accuracy: report.centralised_accuracy.get(i).copied(),
                mean_voter_accuracy: round.mean_voter_accuracy(),
                beacon_s: round.phases.beacon,
                training_s: round.phases.training,
                voting_s: round.phases.voting,
                finalise_s: round.phases.finalise,
                model_hash: &round.model_hash,
                anchor_tx: round.anchor_tx.as_deref().unwrap_or(""),
            })
            .map_err(csv_err)?;
    }
    if report.rounds.is_empty() {
        // serde writes the header with the first row; with no rows, write it by hand.
        writer.write_record(METRICS_HEADER).map_err(csv_err)?;
    }
    writer.flush().map_err(|source| ReportError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// The header of `metrics.csv`, in column order.
pub const METRICS_HEADER: [&str; 15] = [
    "round",
    "outcome",
    "proposers",
    "voters",
    "dropped",
    "contributors",
    "federated_accuracy",
    "centralised_accuracy",
    "mean_voter_accuracy",
    "beacon_s",
    "training_s",
    "voting_s",
    "finalise_s",
    "model_hash",
    "anchor_tx",
];

/// Writes the text report ([`table::render`]) to `dir/report.txt` and returns the path.
pub fn write_text_report(dir: &Path, report: &RunReport) -> Result<PathBuf, ReportError> {
    ensure_dir(dir)?;
    let path = dir.join(REPORT_TXT);
    fs::write(&path, table::render(report)).map_err(|source| ReportError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}
