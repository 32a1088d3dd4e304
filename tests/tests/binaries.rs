//! The shipped binaries as separate OS processes over loopback QUIC: `flock-aggregator serve`
//! and five `flock-agent run`. One agent gets SIGTERM mid-task: it leaves cleanly (exit 0, its
//! state saved, `flock-agent status` shows it) and the others finish the task. Then the
//! aggregator itself gets SIGTERM between runs of a second task and a restarted process
//! continues from its store.
//!
//! The binaries are built by a nested `cargo test --no-run` with the suite's own flags, so they
//! are never stale (a no-op when the suite was built that way, as `scripts/test` does).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

/// The directory holding the freshly built binaries.
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let status = Command::new(cargo)
            .args([
                "test",
                "--workspace",
                "--all-features",
                "--no-run",
                "--quiet",
            ])
            .current_dir(&root)
            .status()
            .unwrap();
        assert!(status.success(), "building the binaries failed");
        // This test runs from <target>/debug/deps; the binaries are in <target>/debug.
        let exe = std::env::current_exe().unwrap();
        exe.parent().unwrap().parent().unwrap().to_path_buf()
    })
}

/// Child processes, killed if the test fails before they exit.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn log(path: &Path) -> std::fs::File {
    std::fs::File::create(path).unwrap()
}

/// Starts `flock-aggregator serve`; returns it, its stdout lines and its QUIC address.
fn aggregator(fed: &Federation) -> (Child, mpsc::Receiver<String>, SocketAddr) {
    let mut child = Command::new(bin_dir().join("flock-aggregator"))
        .args(["serve", "--config"])
        .arg(fed.root.join("aggregator.toml"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(log(&fed.root.join("aggregator.log")))
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(timeout()).unwrap();
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .parse()
        .unwrap();
    (child, rx, addr)
}

fn agent(fed: &Federation, i: usize, addr: SocketAddr) -> Child {
    let dir = fed.root.join(format!("device-{i}"));
    Command::new(bin_dir().join("flock-agent"))
        .arg("run")
        .arg("--config")
        .arg(fed.agent_config(i, addr))
        .env("RUST_LOG", "warn")
        .stdout(log(&dir.join("stdout.log")))
        .stderr(log(&dir.join("stderr.log")))
        .spawn()
        .unwrap()
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM {}", child.id());
}

/// Waits (bounded) for `child` to exit.
fn wait(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + timeout();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "{what} did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) until the store records round `round` of `task`.
fn wait_for_round(fed: &Federation, task: &str, round: u64) {
    let store = fed.store();
    let deadline = Instant::now() + timeout();
    while store.state(task).unwrap().is_none_or(|s| s.round < round) {
        assert!(Instant::now() < deadline, "round {round} never stored");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status_of(fed: &Federation, i: usize, addr: SocketAddr) -> String {
    let out = Command::new(bin_dir().join("flock-agent"))
        .arg("status")
        .arg("--config")
        .arg(fed.agent_config(i, addr))
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn separate_processes_run_a_task_and_a_sigterm_leaves_cleanly() {
    const AGENTS: usize = 5;
    const ROUNDS: u64 = 4;
    let fed = Federation::new("procs", AGENTS, 4, ROUNDS, ([127, 0, 0, 1], 0).into());
    let (agg, lines, addr) = aggregator(&fed);
    let mut procs = Procs(vec![agg]);
    procs.0.extend((0..AGENTS).map(|i| agent(&fed, i, addr)));

    // SIGTERM once the agent has seen round 1 finish (its stdout says so).
    let out = fed.root.join(format!("device-{}/stdout.log", AGENTS - 1));
    let deadline = Instant::now() + timeout();
    while !std::fs::read_to_string(&out)
        .unwrap()
        .contains("round   1:")
    {
        assert!(Instant::now() < deadline, "agent never saw round 1");
        std::thread::sleep(Duration::from_millis(20));
    }
    sigterm(&procs.0[AGENTS]);
    let left = wait(&mut procs.0[AGENTS], "the agent given SIGTERM");
    assert!(left.success(), "{left}");
    let out = std::fs::read_to_string(&out).unwrap();
    assert!(out.contains("left the task"), "{out}");

    let done = wait(&mut procs.0[0], "the aggregator");
    assert!(done.success(), "{done}");
    let summary: Vec<String> = lines.iter().collect();
    assert!(
        summary.iter().any(|l| l.starts_with("task at round 4")),
        "{summary:?}"
    );
    for i in 0..AGENTS - 1 {
        let s = wait(&mut procs.0[i + 1], "an agent");
        assert!(s.success(), "agent {i}: {s}");
        let out = std::fs::read_to_string(fed.root.join(format!("device-{i}/stdout.log"))).unwrap();
        assert!(out.contains("task complete"), "agent {i}: {out}");
        assert!(status_of(&fed, i, addr).contains("last round:  4"));
    }
    // The agent that left saved the rounds it saw, and no more.
    let status = status_of(&fed, AGENTS - 1, addr);
    let last: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("last round:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((1..ROUNDS).contains(&last), "{status}");
}

#[test]
fn an_aggregator_given_sigterm_exits_cleanly_and_a_new_process_continues() {
    const AGENTS: usize = 4;
    const ROUNDS: u64 = 5;
    let fed = Federation::new(
        "procs-restart",
        AGENTS,
        AGENTS,
        ROUNDS,
        fixed_loopback_addr(),
    );
    let (agg, _, addr) = aggregator(&fed);
    let mut procs = Procs(vec![agg]);
    procs.0.extend((0..AGENTS).map(|i| agent(&fed, i, addr)));
    wait_for_round(&fed, "e2e-procs-restart", 2);
    sigterm(&procs.0[0]);
    let stopped = wait(&mut procs.0[0], "the aggregator given SIGTERM");
    assert!(stopped.success(), "{stopped}");
    let log = std::fs::read_to_string(fed.root.join("aggregator.log")).unwrap();
    assert!(!log.contains("ERROR"), "{log}");
    let at = fed
        .store()
        .state("e2e-procs-restart")
        .unwrap()
        .unwrap()
        .round;
    assert!((2..ROUNDS).contains(&at), "stopped at round {at}");

    // The agents keep retrying; a new process on the same port takes over from the store.
    let deadline = Instant::now() + timeout();
    while std::net::UdpSocket::bind(addr).is_err() {
        assert!(Instant::now() < deadline, "port never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (agg, lines, _) = aggregator(&fed);
    procs.0[0] = agg;
    let done = wait(&mut procs.0[0], "the restarted aggregator");
    assert!(done.success(), "{done}");
    let rounds: Vec<u64> = lines
        .try_iter()
        .filter_map(|l| {
            l.strip_prefix("round ")?
                .split(':')
                .next()?
                .trim()
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(rounds, (at + 1..=ROUNDS).collect::<Vec<_>>());
    for i in 0..AGENTS {
        assert!(wait(&mut procs.0[i + 1], "an agent").success());
    }
}
