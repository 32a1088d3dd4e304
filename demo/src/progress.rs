//! What the terminal shows while the task runs: an indicatif round bar (rounds finalised,
//! with the current round's phase on chain) and one line per agent (its role this round and
//! the last notable line of its log, read by [`LogTail`]). Plain lines (round results, drops)
//! go above the bars. Nothing is drawn when standard error is not a terminal; the plain lines
//! still are printed.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flock_chain::{Outcome, Phase, Role};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// The log messages worth showing on an agent's line.
const NOTABLE: [&str; 11] = [
    "staked and joined",
    "beacon share committed",
    "role drawn",
    "trained; joining SecAgg+",
    "vote committed",
    "vote revealed",
    "round finalised",
    "round done",
    "not training",
    "model refused",
    "task complete",
];

/// Longest note shown on an agent's line.
const NOTE_CHARS: usize = 70;

/// The round bar and the agents' lines.
pub(crate) struct Progress {
    multi: MultiProgress,
    rounds: ProgressBar,
    agents: Vec<ProgressBar>,
}

impl Progress {
    /// A round bar of `rounds` and one line per name.
    pub(crate) fn new(rounds: u64, names: &[String]) -> Self {
        let multi = MultiProgress::new();
        let bar = ProgressStyle::with_template("round {pos}/{len} [{bar:30}] {elapsed} {msg}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let rounds = multi.add(ProgressBar::new(rounds).with_style(bar));
        let line = ProgressStyle::with_template("{prefix:<9} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let agents = names
            .iter()
            .map(|n| {
                multi.add(
                    ProgressBar::new_spinner()
                        .with_style(line.clone())
                        .with_prefix(n.clone()),
                )
            })
            .collect();
        Self {
            multi,
            rounds,
            agents,
        }
    }

    /// Rounds finalised so far and what the chain says now.
    pub(crate) fn set_rounds(&self, finalised: u64, message: String) {
        self.rounds.set_position(finalised);
        self.rounds.set_message(message);
    }

    /// Agent `i`'s line.
    pub(crate) fn set_agent(&self, i: usize, role: &str, note: &str) {
        if let Some(bar) = self.agents.get(i) {
            bar.set_message(format!("{role:<9} {note}"));
        }
    }

    /// A line above the bars (printed plainly when nothing is drawn).
    pub(crate) fn println(&self, line: &str) {
        self.multi.suspend(|| println!("{line}"));
    }

    /// Removes the bars.
    pub(crate) fn finish(&self) {
        for bar in &self.agents {
            bar.finish_and_clear();
        }
        self.rounds.finish_and_clear();
    }
}

/// What a phase is called on the round bar.
pub(crate) fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Idle => "between rounds",
        Phase::BeaconCommit => "beacon commit",
        Phase::BeaconReveal => "beacon reveal",
        Phase::RoleDraw => "role draw",
        Phase::Training => "training + SecAgg+",
        Phase::VoteCommit => "vote commit",
        Phase::VoteReveal => "vote reveal",
        Phase::Finalisable => "finalising",
        Phase::Completed => "task complete",
    }
}

/// What a role is called on an agent's line and in the report.
pub(crate) fn role_name(role: Role) -> &'static str {
    match role {
        Role::None => "-",
        Role::Proposer => "proposer",
        Role::Voter => "voter",
    }
}

/// What an outcome is called in lines and in the report.
pub(crate) fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Pending => "pending",
        Outcome::Accepted => "accepted",
        Outcome::Rejected => "rejected",
        Outcome::Void => "void",
    }
}

/// Follows a log file, keeping its last notable line.
pub(crate) struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: String,
    last: String,
}

impl LogTail {
    /// Follows `path` from its beginning (a restarted agent appends to the same file).
    pub(crate) fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            offset: 0,
            partial: String::new(),
            last: "starting".into(),
        }
    }

    /// Reads what was appended since the last call; returns the last notable message.
    pub(crate) fn poll(&mut self) -> &str {
        let mut fresh = String::new();
        if let Ok(mut f) = File::open(&self.path)
            && f.seek(SeekFrom::Start(self.offset)).is_ok()
        {
            let mut bytes = Vec::new();
            if let Ok(n) = f.read_to_end(&mut bytes) {
                self.offset += n as u64;
                fresh = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        self.partial.push_str(&fresh);
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            if let Some(note) = notable(&line) {
                self.last = note;
            }
        }
        &self.last
    }

    /// Replaces the note (the demo's own doings: killed, restarted).
    pub(crate) fn set(&mut self, note: String) {
        self.last = note;
    }
}

/// The message of a notable log line with its fields, without timestamp, level and target.
fn notable(line: &str) -> Option<String> {
    let start = NOTABLE.iter().filter_map(|n| line.find(n)).min()?;
    let text: String = line[start..].trim_end().chars().take(NOTE_CHARS).collect();
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notable_lines_lose_their_prefix() {
        let line = "2026-01-01T00:00:00.000000Z  INFO flock_agent::service::chain::follower: role drawn \
                    round=2 role=Proposer phase=\"roles\"\n";
        assert_eq!(
            notable(line).as_deref(),
            Some("role drawn round=2 role=Proposer phase=\"roles\"")
        );
        assert_eq!(notable("  INFO connected to the aggregator"), None);
    }

    #[test]
    fn the_tail_follows_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "x INFO beacon share committed round=1\nhalf a li").unwrap();
        let mut tail = LogTail::new(&path);
        assert_eq!(tail.poll(), "beacon share committed round=1");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("ne: vote revealed round=1\n");
        std::fs::write(&path, text).unwrap();
        assert_eq!(tail.poll(), "vote revealed round=1");
    }
}
