//! The `flock-aggregator` binary as an operator runs it.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn aggregator(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flock-aggregator"))
        .args(args)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn help_names_the_commands() {
    let (ok, out, _) = aggregator(&["--help"]);
    assert!(ok);
    assert!(out.contains("capacity"), "{out}");
}

#[test]
fn capacity_reports_the_largest_cohort() {
    let (ok, out, _) = aggregator(&["capacity", "--bits", "16", "--clients", "1000"]);
    assert!(ok);
    assert!(out.contains("at most 65537 clients"), "{out}");
    assert!(out.contains("1000 clients fit"), "{out}");
}

#[test]
fn an_overflowing_cohort_is_refused_with_the_limit() {
    let (ok, _, err) = aggregator(&["capacity", "--bits", "16", "--clients", "70000"]);
    assert!(!ok);
    assert!(
        err.contains("70000 clients") && err.contains("at most 65537"),
        "{err}"
    );
    let (ok, _, err) = aggregator(&["capacity", "--bits", "40"]);
    assert!(!ok);
    assert!(err.contains("bits must be in 1..=32"), "{err}");
}
