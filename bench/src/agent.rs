//! The agent's memory and size. Peak resident memory (`VmHWM`) of `flock-agent train-local` on
//! breast_cancer with the CPU backend, against the same binary printing its version (the floor
//! of the process: code, libraries, runtime); the size of the `flock-agent` binary against
//! `flock-bench`'s own, both stripped (same profile, no burn, no wgpu, no alloy: what the
//! trainer, the GPU kernels and the chain client add).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

/// Peak resident memory of `cmd` in KiB, polled from `/proc/<pid>/status` until it exits.
fn peak_rss_kib(cmd: &mut Command) -> anyhow::Result<u64> {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the agent")?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_path)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("{cmd:?} failed: {status}");
            }
            return Ok(peak);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
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
    let floor = peak_rss_kib(Command::new(agent).arg("--version"))?;
    let trained = peak_rss_kib(
        Command::new(agent)
            .args([
                "train-local",
                "--backend",
                "cpu",
                "--epochs",
                "30",
                "--data",
            ])
            .arg(data)
            .arg("--out")
            .arg(out_dir.join("model.safetensors")),
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
