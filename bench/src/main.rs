//! `flock-bench`: flock-edge's benchmarks in one run, every figure a ratio against a baseline
//! measured in the same run, printed and written as `BENCHMARKS.md`:
//!
//! ```text
//! cargo build --release -p flock-agent -p flock-bench && target/release/flock-bench [--quick]
//! ```
//!
//! - the CPU kernels against their floors ([`kernels`]);
//! - a SecAgg+ round against a plain round over loopback QUIC at n = 10, 50, 100 and
//!   d = 100 k, 1 M ([`round`]);
//! - the aggregator's SecAgg+ work at n = 1 000 in process, against its floor ([`inprocess`]);
//! - the agent's peak memory and binary size ([`agent`]).
//!
//! Per-phase client costs and dropout rounds stay in `cargo bench -p flock-protocol --bench
//! secagg` (`protocol/BENCHMARKS.md`); the GPU kernels in `cargo bench -p edge-kernels
//! --features gpu`.

mod agent;
mod inprocess;
mod kernels;
mod round;

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Runs flock-edge's benchmarks and writes BENCHMARKS.md.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// A smaller grid (n = 10, 50; d = 100 k) for a quick look.
    #[arg(long)]
    quick: bool,
    /// Where to write the report.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// The flock-agent binary to measure (default: next to this one).
    #[arg(long)]
    agent: Option<PathBuf>,
}

/// What this run ran on.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let profile = if cfg!(debug_assertions) {
        "a debug build: these figures mean nothing, build with --release"
    } else {
        "release profile"
    };
    format!("{cpu}, {cores} cores available; {rustc}; {profile}")
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(agent::RSS_OF) {
        return agent::measure(&argv[2..]);
    }
    let args = Args::parse();
    let agent = match args.agent {
        Some(a) => a,
        None => std::env::current_exe()?
            .parent()
            .context("no directory for this binary")?
            .join("flock-agent"),
    };
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/data/breast_cancer.csv");
    let (ns, ds): (&[usize], &[usize]) = if args.quick {
        (&[10, 50], &[100_000])
    } else {
        (&[10, 50, 100], &[100_000, 1_000_000])
    };
    let (big_n, big_ds): (usize, &[u32]) = if args.quick {
        (200, &[100_000])
    } else {
        (1000, &[100_000, 1_000_000])
    };
    eprintln!("kernels…");
    let kernels = kernels::table(1 << 20, 15)?;
    eprintln!("agent memory and size…");
    let agent = agent::table(&agent, &data)?;
    eprintln!("SecAgg+ vs plain rounds over loopback QUIC…");
    let rounds = round::table(ns, ds)?;
    eprintln!("the aggregator at n = {big_n} in process…");
    let inprocess = inprocess::table(big_n, big_ds)?;
    let report = format!(
        "# flock-edge benchmarks\n\n\
         Written by `flock-bench`{}: every figure is a ratio against a baseline measured in the \
         same run, on the same machine.\n\nMachine: {}.\n\n\
         ## CPU kernels vs their floors\n\n{kernels}\n\
         ## SecAgg+ round vs plain round (loopback QUIC, mutual TLS, clients and server in one \
         process)\n\n{rounds}\n\
         The deployment estimate is the plain round's wall time plus the slowest client's compute \
         plus the server's extra compute: each device masks on its own cores, which this \
         process cannot show.\n\n\
         ## The aggregator in process: SecAgg+ server work vs its floor\n\n{inprocess}\n\
         One thread; 10 % of the clients drop before their input; the floor is what no SecAgg+ \
         server can skip: a keystream per survivor, k per dropped client, and the sum.\n\n\
         ## The agent\n\n{agent}\n\
         Elsewhere: per-phase client costs and dropout rounds (`cargo bench -p flock-protocol \
         --bench secagg`, protocol/BENCHMARKS.md), the GPU kernels (`cargo bench -p edge-kernels \
         --features gpu`, edge-kernels/BENCHMARKS.md), training throughput (`cargo run --release \
         -p flock-agent --example train_throughput`, agent/BENCHMARKS.md).\n",
        if args.quick { " --quick" } else { "" },
        machine()
    );
    print!("{report}");
    std::fs::write(&args.out, &report)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("written to {}", args.out.display());
    Ok(())
}
