//! The plain-text report: a per-round table, a summary of the result against the centralised
//! baseline, a per-agent table, and whether the final model is the one on chain. Columns are
//! aligned with `format!` widths (counted in characters); no dependencies.

use std::fmt::Write as _;

use super::{AgentRecord, RoundRecord, RunReport};

/// How many hex digits of a hash or transaction id the tables show.
pub const SHORT_HEX_DIGITS: usize = 10;

/// Renders the whole report as text (ends with a newline).
pub fn render(report: &RunReport) -> String {
    let mut out = String::new();
    header(&mut out, report);
    out.push('\n');
    rounds_table(report).render(&mut out);
    out.push_str("phases in seconds: b beacon, t training (roles drawn to anchored, incl. SecAgg+), v voting, f finalise\n\n");
    summary(&mut out, report);
    out.push('\n');
    agents_table(&report.agents_summary).render(&mut out);
    out.push('\n');
    chain_check(&mut out, report);
    out
}

fn header(out: &mut String, r: &RunReport) {
    let _ = writeln!(
        out,
        "flock-demo: {} with {} agents, {} of {} rounds run, Dirichlet alpha {}, backend {}",
        r.dataset,
        r.agents,
        r.rounds.len(),
        r.rounds_planned,
        r.alpha,
        r.backend
    );
    let _ = writeln!(out, "task contract {}", or_dash(&r.task_address));
}

fn rounds_table(r: &RunReport) -> Table {
    let mut table = Table::new(&[
        ("round", Align::Right),
        ("proposers", Align::Right),
        ("voters", Align::Right),
        ("dropped", Align::Left),
        ("voter acc", Align::Right),
        ("accuracy", Align::Right),
        ("outcome", Align::Left),
        ("model", Align::Left),
        ("anchor tx", Align::Left),
        ("b", Align::Right),
        ("t", Align::Right),
        ("v", Align::Right),
        ("f", Align::Right),
    ]);
    for round in &r.rounds {
        table.row(round_row(round));
    }
    table
}

fn round_row(round: &RoundRecord) -> Vec<String> {
    let dropped = if round.dropped.is_empty() {
        "-".to_owned()
    } else {
        round.dropped.join(",")
    };
    vec![
        round.round.to_string(),
        round.proposers.len().to_string(),
        round.voters.len().to_string(),
        dropped,
        round
            .mean_voter_accuracy()
            .map_or_else(|| "-".to_owned(), percent),
        percent(round.accuracy),
        round.outcome.clone(),
        short_hex(&round.model_hash),
        round
            .anchor_tx
            .as_deref()
            .map_or_else(|| "-".to_owned(), short_hex),
        seconds(round.phases.beacon),
        seconds(round.phases.training),
        seconds(round.phases.voting),
        seconds(round.phases.finalise),
    ]
}

fn summary(out: &mut String, r: &RunReport) {
    let verdict = if r.learned() {
        "learned"
    } else {
        "did NOT learn"
    };
    let _ = writeln!(
        out,
        "federated accuracy    {:>8}   threshold {}: {verdict}",
        percent(r.final_accuracy),
        percent(r.accuracy_threshold)
    );
    let _ = writeln!(
        out,
        "centralised baseline  {:>8}   federated {:+.2} points",
        percent(r.final_centralised_accuracy),
        (r.final_accuracy - r.final_centralised_accuracy) * 100.0
    );
    let _ = writeln!(
        out,
        "rounds accepted       {:>8}   of {} run",
        r.accepted_rounds(),
        r.rounds.len()
    );
    let _ = writeln!(
        out,
        "total time            {:>8}",
        format!("{:.1} s", r.seconds_total)
    );
}

fn agents_table(agents: &[AgentRecord]) -> Table {
    let mut table = Table::new(&[
        ("agent", Align::Left),
        ("address", Align::Left),
        ("stake FLOCK start → end", Align::Right),
        ("earned", Align::Right),
        ("slashed", Align::Right),
        ("proposer", Align::Right),
        ("voter", Align::Right),
        ("dropped", Align::Left),
    ]);
    for a in agents {
        table.row(vec![
            a.name.clone(),
            short_address(&a.address),
            format!("{:.2} → {:.2}", a.stake_start, a.stake_end),
            format!("{:.2}", a.earned),
            format!("{:.2}", a.slashed),
            a.proposer_rounds.to_string(),
            a.voter_rounds.to_string(),
            if a.dropped { "yes" } else { "no" }.to_owned(),
        ]);
    }
    table
}

fn chain_check(out: &mut String, r: &RunReport) {
    let _ = writeln!(out, "final model hash  {}", or_dash(&r.final_model_hash));
    let _ = writeln!(
        out,
        "on chain          {}",
        or_dash(&r.chain_final_model_hash)
    );
    let verdict = if r.hash_matches_chain() {
        "final model matches the chain"
    } else {
        "final model does NOT match the chain"
    };
    let _ = writeln!(out, "{verdict}");
}

/// A fraction as a percentage with two decimals, e.g. `91.25 %`.
fn percent(fraction: f64) -> String {
    format!("{:.2} %", fraction * 100.0)
}

fn seconds(s: f64) -> String {
    format!("{s:.1}")
}

fn or_dash(s: &str) -> &str {
    if s.trim().is_empty() { "-" } else { s }
}

/// `0x` and the first [`SHORT_HEX_DIGITS`] hex digits of a hash or transaction id (`-` when
/// empty).
pub fn short_hex(hex: &str) -> String {
    let digits = hex.trim();
    let digits = digits.strip_prefix("0x").unwrap_or(digits);
    if digits.is_empty() {
        return "-".to_owned();
    }
    let head: String = digits.chars().take(SHORT_HEX_DIGITS).collect();
    format!("0x{head}")
}

/// An address as `0x1234…abcd` (`-` when empty).
fn short_address(address: &str) -> String {
    let digits = address.trim();
    let digits = digits.strip_prefix("0x").unwrap_or(digits);
    let chars: Vec<char> = digits.chars().collect();
    if chars.is_empty() {
        return "-".to_owned();
    }
    if chars.len() <= 10 {
        return format!("0x{digits}");
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("0x{head}…{tail}")
}

#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// A table of text cells whose columns are padded to their widest cell.
struct Table {
    headers: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(headers: &[(&'static str, Align)]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self, out: &mut String) {
        let mut widths: Vec<usize> = self
            .headers
            .iter()
            .map(|(h, _)| h.chars().count())
            .collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let headers: Vec<&str> = self.headers.iter().map(|(h, _)| *h).collect();
        self.line(out, &headers, &widths);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        let rule: Vec<&str> = rule.iter().map(String::as_str).collect();
        self.line(out, &rule, &widths);
        for row in &self.rows {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            self.line(out, &cells, &widths);
        }
    }

    fn line(&self, out: &mut String, cells: &[&str], widths: &[usize]) {
        let mut line = String::new();
        for (i, ((cell, width), (_, align))) in
            cells.iter().zip(widths).zip(&self.headers).enumerate()
        {
            if i > 0 {
                line.push_str("  ");
            }
            let _ = match align {
                Align::Left => write!(line, "{cell:<width$}"),
                Align::Right => write!(line, "{cell:>width$}"),
            };
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}
