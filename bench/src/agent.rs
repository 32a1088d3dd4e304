//! The agent's memory and size. Peak resident memory (`ru_maxrss`) of `flock-agent train-local` on
//! breast_cancer with the CPU backend, against the same binary printing its version (the floor
//! of the process: code, libraries, runtime); the size of the `flock-agent` binary against
//! `flock-bench`'s own, both stripped (same profile, no burn, no wgpu, no alloy: what the
//! trainer, the GPU kernels and the chain client add).

use anyhow::{Context, bail};
use nix::sys::resource::{UsageWho, getrusage};
use std::path::Path;
use std::process::{Command, Stdio};

/// The hidden argument that makes `flock-bench` a small measuring parent (see [`measure`]).
pub(crate) const RSS_OF: &str = "--rss-of";

/// In the measuring parent: runs `cmd` to its end and prints its peak resident memory in KiB
/// (`getrusage(RUSAGE_CHILDREN)`: exact, and this small process's own pages, which a forked
/// child starts with, are few).
pub(crate) fn measure(cmd: &[String]) -> anyhow::Result<()> {
    let (program, args) = cmd.split_first().context("--rss-of needs a command")?;
    let status = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("starting {program}"))?;
    if !status.success() {
        bail!("{program} failed: {status}");
    }
    println!("{}", getrusage(UsageWho::RUSAGE_CHILDREN)?.max_rss());
    Ok(())
}

/// Peak resident memory (KiB) of `agent` run with `args`, measured by a fresh `flock-bench
/// --rss-of` (so that this process's own buffers do not count).
fn peak_rss_kib(agent: &Path, args: &[&std::ffi::OsStr]) -> anyhow::Result<u64> {
    let out = Command::new(std::env::current_exe()?)
        .arg(RSS_OF)
        .arg(agent)
        .args(args)
        .output()
        .context("starting the measuring process")?;
    if !out.status.success() {
        bail!(
            "measuring {}: {}",
            agent.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("reading the measured peak RSS")
}

/// The size of `binary` without its symbols and debug information (`strip` on a copy; the
/// release profile keeps debug information).
fn stripped_size(binary: &Path) -> anyhow::Result<f64> {
    let copy = std::env::temp_dir().join(format!("flock-bench-strip-{}", std::process::id()));
    let status = Command::new("strip")
        .arg("-o")
        .arg(&copy)
        .arg(binary)
        .status()
        .context("running strip (binutils)")?;
    if !status.success() {
        bail!("strip {} failed: {status}", binary.display());
    }
    let size = std::fs::metadata(&copy)?.len() as f64;
    let _ = std::fs::remove_file(&copy);
    Ok(size)
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

/// The table for the agent binary at `agent`, training on `data`.
pub(crate) fn table(agent: &Path, data: &Path) -> anyhow::Result<String> {
    if !agent.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p flock-agent) or pass --agent",
            agent.display()
        );
    }
    let out_dir = std::env::temp_dir().join(format!("flock-bench-agent-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir)?;
    let floor = peak_rss_kib(agent, &["--version".as_ref()])?;
    let model = out_dir.join("model.safetensors");
    let trained = peak_rss_kib(
        agent,
        &[
            "train-local".as_ref(),
            "--backend".as_ref(),
            "cpu".as_ref(),
            "--epochs".as_ref(),
            "30".as_ref(),
            "--data".as_ref(),
            data.as_os_str(),
            "--out".as_ref(),
            model.as_os_str(),
        ],
    )?;
    let _ = std::fs::remove_dir_all(&out_dir);
    let agent_size = stripped_size(agent)?;
    let own_size = stripped_size(&std::env::current_exe()?)?;
    Ok(format!(
        "| figure | value | baseline | baseline value | ratio |\n\
         | --- | ---: | --- | ---: | ---: |\n\
         | peak RSS, `train-local` breast_cancer, 30 epochs, CPU | {} | the same binary, `--version` | {} | **{:.2}** |\n\
         | binary size, `flock-agent`, stripped | {} | `flock-bench`, stripped (no burn, wgpu, alloy) | {} | **{:.2}** |\n",
        mib(trained as f64 * 1024.0),
        mib(floor as f64 * 1024.0),
        trained as f64 / floor.max(1) as f64,
        mib(agent_size),
        mib(own_size),
        agent_size / own_size,
    ))
}
