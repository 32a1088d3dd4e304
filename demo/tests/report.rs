//! The demo's report files: JSON round trip, CSV values, PNG plots that decode, the text table.
// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use flock_demo::report::{
    AgentRecord, PhaseSeconds, ReportError, RoundRecord, RunReport, files, plots, table, write_all,
};

const FINAL_HASH: &str = "0xc0ffee0123456789abcdef0123456789abcdef0123456789abcdef0123456789";

fn hash(seed: u8) -> String {
    format!("0x{}", format!("{seed:02x}").repeat(32))
}

fn round(
    n: u64,
    outcome: &str,
    accuracy: f64,
    voters: &[(&str, f64)],
    dropped: &[&str],
) -> RoundRecord {
    let accepted = outcome == "accepted";
    RoundRecord {
        round: n,
        proposers: vec!["alice".into(), "bob".into()],
        voters: voters.iter().map(|(name, _)| (*name).to_owned()).collect(),
        dropped: dropped.iter().map(|d| (*d).to_owned()).collect(),
        contributors: 2,
        voter_accuracy: voters
            .iter()
            .map(|(name, a)| ((*name).to_owned(), *a))
            .collect::<BTreeMap<_, _>>(),
        outcome: outcome.to_owned(),
        accepted,
        model_hash: hash(n as u8 * 0x11),
        global_model_hash: hash(0x11),
        anchor_tx: Some(hash(0xa0 + n as u8)),
        finalise_tx: Some(hash(0xf0 + n as u8)),
        accuracy,
        phases: PhaseSeconds {
            beacon: 1.5,
            training: 10.0 + n as f64,
            voting: 3.25,
            finalise: 0.5,
        },
    }
}

fn agent(name: &str, n: u8, stakes: [f64; 3], dropped: bool) -> AgentRecord {
    AgentRecord {
        name: name.to_owned(),
        address: format!("0x{}", format!("{n:02x}").repeat(20)),
        stake_start: 100.0,
        stake_end: stakes[2],
        earned: (stakes[2] - 100.0).max(0.0),
        slashed: (100.0 - stakes[2]).max(0.0),
        stake_per_round: stakes.to_vec(),
        proposer_rounds: 3,
        voter_rounds: 1,
        dropped,
    }
}

/// 3 rounds, 4 agents; round 2 is rejected and dave drops out in it.
fn report() -> RunReport {
    RunReport {
        dataset: "mnist".into(),
        agents: 4,
        rounds_planned: 3,
        alpha: 0.5,
        backend: "cpu".into(),
        task_address: format!("0x{}", "42".repeat(20)),
        rounds: vec![
            round(1, "accepted", 0.61, &[("carol", 0.6), ("dave", 0.7)], &[]),
            round(2, "rejected", 0.61, &[("carol", 0.25)], &["dave"]),
            round(3, "accepted", 0.875, &[("carol", 0.9), ("dave", 0.8)], &[]),
        ],
        agents_summary: vec![
            agent("alice", 1, [101.0, 101.0, 102.5], false),
            agent("bob", 2, [101.0, 99.0, 100.5], false),
            agent("carol", 3, [100.5, 100.5, 101.0], false),
            agent("dave", 4, [100.5, 95.0, 95.0], true),
        ],
        centralised_accuracy: vec![0.7, 0.8, 0.9],
        final_accuracy: 0.875,
        final_centralised_accuracy: 0.9,
        accuracy_threshold: 0.85,
        final_model_hash: FINAL_HASH.into(),
        chain_final_model_hash: FINAL_HASH.to_uppercase().replacen("0X", "0x", 1),
        seconds_total: 62.5,
    }
}

#[test]
fn rounds_json_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let report = report();
    let path = files::write_rounds_json(dir.path(), &report).unwrap();
    assert_eq!(path, dir.path().join("rounds.json"));
    assert_eq!(files::read_rounds_json(&path).unwrap(), report);
}

#[test]
fn reading_a_missing_or_broken_report_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let err = files::read_rounds_json(&missing).unwrap_err();
    assert!(matches!(err, ReportError::Read { .. }), "{err}");
    assert!(err.to_string().contains("nope.json"), "{err}");

    let broken = dir.path().join("rounds.json");
    std::fs::write(&broken, "{\"dataset\": 3}").unwrap();
    let err = files::read_rounds_json(&broken).unwrap_err();
    assert!(matches!(err, ReportError::Json { .. }), "{err}");
    assert!(err.to_string().contains("rounds.json"), "{err}");
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<csv::StringRecord>) {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader.records().map(Result::unwrap).collect();
    (header, rows)
}

fn column(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
}

#[test]
fn metrics_csv_has_one_row_per_round_with_the_values() {
    let dir = tempfile::tempdir().unwrap();
    let report = report();
    let path = files::write_metrics_csv(dir.path(), &report).unwrap();
    let (header, rows) = read_csv(&path);
    assert_eq!(header, files::METRICS_HEADER);
    assert_eq!(rows.len(), 3);

    let f = |row: &csv::StringRecord, name: &str| -> f64 {
        row[column(&header, name)].parse().unwrap()
    };
    for (i, (row, round)) in rows.iter().zip(&report.rounds).enumerate() {
        assert_eq!(f(row, "round"), round.round as f64);
        assert_eq!(&row[column(&header, "outcome")], round.outcome);
        assert_eq!(f(row, "federated_accuracy"), round.accuracy);
        assert_eq!(
            f(row, "centralised_accuracy"),
            report.centralised_accuracy[i]
        );
        assert_eq!(f(row, "training_s"), round.phases.training);
        assert_eq!(&row[column(&header, "model_hash")], round.model_hash);
    }
    // The mean over the voters' own test data: (0.6 + 0.7) / 2, then 0.25 alone.
    assert!((f(&rows[0], "mean_voter_accuracy") - 0.65).abs() < 1e-12);
    assert_eq!(f(&rows[1], "mean_voter_accuracy"), 0.25);
    assert_eq!(f(&rows[1], "dropped"), 1.0);
    assert_eq!(f(&rows[1], "voters"), 1.0);
}

#[test]
fn metrics_csv_leaves_missing_values_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut report = report();
    report.centralised_accuracy.truncate(1);
    report.rounds[2].voter_accuracy.clear();
    report.rounds[2].anchor_tx = None;
    let (header, rows) = read_csv(&files::write_metrics_csv(dir.path(), &report).unwrap());
    assert_eq!(&rows[0][column(&header, "centralised_accuracy")], "0.7");
    assert_eq!(&rows[1][column(&header, "centralised_accuracy")], "");
    assert_eq!(&rows[2][column(&header, "mean_voter_accuracy")], "");
    assert_eq!(&rows[2][column(&header, "anchor_tx")], "");

    report.rounds.clear();
    let (header, rows) = read_csv(&files::write_metrics_csv(dir.path(), &report).unwrap());
    assert_eq!(header, files::METRICS_HEADER);
    assert!(rows.is_empty());
}

/// Decodes a PNG into (width, height, RGB bytes).
fn decode_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} lacks the PNG signature",
        path.display()
    );
    let decoder = png::Decoder::new(BufReader::new(File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

fn count_colour(rgb: &[u8], colour: [u8; 3]) -> usize {
    rgb.chunks_exact(3).filter(|p| *p == colour).count()
}

#[test]
fn plots_are_pngs_of_the_stated_size_with_their_series_drawn() {
    let dir = tempfile::tempdir().unwrap();
    let report = report();
    let paths = plots::write_plots(dir.path(), &report).unwrap();
    let names: Vec<_> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["accuracy.png", "phases.png", "stakes.png"]);

    let mut images = Vec::new();
    for path in &paths {
        let (w, h, rgb) = decode_png(path);
        assert_eq!((w, h), (plots::WIDTH, plots::HEIGHT), "{}", path.display());
        // Not a blank canvas: text (anti-aliased, so many grey levels) and series were drawn.
        let dark = rgb
            .chunks_exact(3)
            .filter(|p| p.iter().all(|c| *c < 80))
            .count();
        assert!(dark > 500, "{}: only {dark} dark pixels", path.display());
        images.push(rgb);
    }
    // Both accuracy lines are there, in their colours.
    let c = |c: plotters::style::RGBColor| [c.0, c.1, c.2];
    assert!(count_colour(&images[0], c(plots::FEDERATED)) > 200);
    assert!(count_colour(&images[0], c(plots::CENTRALISED)) > 200);
    // Every phase has a visible bar segment.
    for colour in plots::PHASE_COLOURS {
        assert!(count_colour(&images[1], c(colour)) > 200, "{colour:?}");
    }
}

#[test]
fn plots_survive_an_empty_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut report = report();
    report.rounds.clear();
    report.agents_summary.clear();
    report.centralised_accuracy.clear();
    for path in plots::write_plots(dir.path(), &report).unwrap() {
        assert_eq!(decode_png(&path).0, plots::WIDTH);
    }
    assert!(table::render(&report).contains("0 of 3 rounds"));
}

#[test]
fn text_report_shows_each_round_and_the_hashes() {
    let report = report();
    let text = table::render(&report);
    let lines: Vec<&str> = text.lines().collect();
    for round in &report.rounds {
        let short = table::short_hex(&round.model_hash);
        assert_eq!(short.len(), 2 + table::SHORT_HEX_DIGITS);
        let line = lines
            .iter()
            .find(|l| l.contains(&short))
            .unwrap_or_else(|| panic!("no row with {short} in\n{text}"));
        assert!(line.contains(&round.outcome), "{line}");
        let anchor = round.anchor_tx.as_deref().unwrap();
        assert!(line.contains(&table::short_hex(anchor)), "{line}");
    }
    assert!(text.contains(FINAL_HASH), "{text}");
    assert!(text.contains("matches the chain"), "{text}");
    // Mean voter accuracy of round 1 and the baseline gap (87.5 - 90 = -2.5 points).
    assert!(text.contains("65.00 %"), "{text}");
    assert!(text.contains("-2.50 points"), "{text}");
    assert!(text.contains("dave"), "{text}");

    // The per-round table's columns line up: every row is as wide as the header.
    let header = lines.iter().position(|l| l.starts_with("round")).unwrap();
    let widths: Vec<usize> = lines[header..header + 5]
        .iter()
        .map(|l| l.chars().count())
        .collect();
    assert!(widths.iter().all(|w| *w == widths[1]), "{widths:?}\n{text}");
}

#[test]
fn learned_and_chain_match_follow_the_numbers() {
    let mut report = report();
    assert!(report.learned());
    assert!(
        report.hash_matches_chain(),
        "case and 0x are not differences"
    );

    report.final_accuracy = 0.84;
    assert!(!report.learned());
    assert!(table::render(&report).contains("did NOT learn"));

    report.chain_final_model_hash = hash(0x99);
    assert!(!report.hash_matches_chain());
    assert!(table::render(&report).contains("does NOT match"));

    report.final_model_hash.clear();
    report.chain_final_model_hash.clear();
    assert!(
        !report.hash_matches_chain(),
        "two empty hashes are no match"
    );
}

#[test]
fn write_all_writes_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/report");
    let written = write_all(&out, &report()).unwrap();
    let mut names: Vec<_> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "accuracy.png",
            "metrics.csv",
            "phases.png",
            "report.txt",
            "rounds.json",
            "stakes.png"
        ]
    );
    for path in written {
        assert!(
            std::fs::metadata(&path).unwrap().len() > 0,
            "{}",
            path.display()
        );
    }
}
