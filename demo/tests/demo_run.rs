//! The demo end to end, as a user runs it: the built `flock-demo` binary with 5 agents and 2
//! rounds on the CPU (a real anvil, the aggregator and the agents as processes), bounded by a
//! timeout; then its report files. Needs anvil (`scripts/setup` installs it with npm).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flock_demo::report::files::{METRICS_CSV, ROUNDS_JSON, read_rounds_json};
use flock_demo::report::plots::{ACCURACY_PNG, PHASES_PNG, STAKES_PNG};

/// The demo is killed after this long.
const TIMEOUT: Duration = Duration::from_secs(600);
const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Waits for `child` until `TIMEOUT`; on timeout stops it (SIGTERM, so it stops its own
/// children and anvil, then SIGKILL) and returns `None`.
fn wait_bounded(child: &mut Child) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let grace = Instant::now() + Duration::from_secs(15);
    while Instant::now() < grace && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// What the demo printed, and the end of every log, for a failure message.
fn diagnostics(dir: &Path, run: &Path) -> String {
    let mut text = String::new();
    for f in ["stdout.txt", "stderr.txt"] {
        let body = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        text.push_str(&format!("--- {f}\n{body}\n"));
    }
    if let Ok(entries) = std::fs::read_dir(run.join("logs")) {
        for e in entries.flatten() {
            let body = std::fs::read_to_string(e.path()).unwrap_or_default();
            let lines: Vec<&str> = body.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            text.push_str(&format!("--- {}\n{tail}\n", e.path().display()));
        }
    }
    text
}

#[test]
/// The CI variant of the demo: 6 agents (4 proposers, the smallest SecAgg+ cohort with safe
/// parameters at 10 % dropout, and 2 voters), 3 rounds, agent 1 killed early in round 2 (as
/// a proposer it drops out of SecAgg+, as a voter it leaves the other to vote) and restarted.
fn six_agents_run_three_rounds_with_a_dropped_agent_and_report_them() {
    if let Err(e) = flock_chain::anvil::Anvil::find_binary() {
        panic!("the demo needs anvil, which is missing: run scripts/setup ({e})");
    }
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flock-demo"))
        .args([
            "--agents", "6", "--rounds", "3", "--drop", "1@2", "--cpu", "--out",
        ])
        .arg(&run)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.path().join("stdout.txt")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("stderr.txt")).unwrap())
        .spawn()
        .unwrap();
    let status = wait_bounded(&mut child);
    let Some(status) = status else {
        panic!(
            "the demo did not finish within {} s\n{}",
            TIMEOUT.as_secs(),
            diagnostics(dir.path(), &run)
        );
    };
    assert!(
        status.success(),
        "the demo failed ({status})\n{}",
        diagnostics(dir.path(), &run)
    );

    let report = read_rounds_json(&run.join(ROUNDS_JSON)).unwrap();
    assert_eq!(report.rounds.len(), 3);
    for r in &report.rounds {
        // Every round anchored and finalised with a vote.
        assert!(
            r.outcome == "accepted" || r.outcome == "rejected",
            "round {}: {}",
            r.round,
            r.outcome
        );
        assert!(r.anchor_tx.is_some(), "round {}: not anchored", r.round);
        assert_eq!(r.proposers.len() + r.voters.len(), 6, "round {}", r.round);
        let expected: Vec<String> = if r.round == 2 {
            vec!["agent-1".into()]
        } else {
            Vec::new()
        };
        assert_eq!(r.dropped, expected, "round {}", r.round);
    }
    assert!(
        report.final_accuracy >= report.accuracy_threshold,
        "final accuracy {} below {}",
        report.final_accuracy,
        report.accuracy_threshold
    );
    assert!(!report.final_model_hash.is_empty());
    assert_eq!(report.final_model_hash, report.chain_final_model_hash);
    for png in [ACCURACY_PNG, PHASES_PNG, STAKES_PNG] {
        let bytes = std::fs::read(run.join(png)).unwrap();
        assert!(bytes.starts_with(&PNG_SIGNATURE), "{png} is not a PNG");
    }
    let csv = std::fs::read_to_string(run.join(METRICS_CSV)).unwrap();
    assert_eq!(
        csv.lines().count(),
        4,
        "a header and one row per round:\n{csv}"
    );
}
