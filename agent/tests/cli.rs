//! The `flock-agent` binary as a user runs it.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flock-agent"))
}

/// Runs `flock-agent doctor` with `args` (and `WGPU_BACKEND` when given), asserts it succeeds
/// and returns what it printed.
fn doctor(args: &[&str], wgpu_backend: Option<&str>) -> String {
    let mut cmd = agent();
    cmd.arg("doctor").args(args);
    if let Some(b) = wgpu_backend {
        cmd.env("WGPU_BACKEND", b);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn help_names_the_commands() {
    let out = agent().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("doctor"), "{text}");
}

#[test]
fn doctor_checks_the_cpu_kernels() {
    let text = doctor(&["--cpu-only", "--words", "4097"], None);
    assert!(text.contains("CPU kernels: ok (4097 words"), "{text}");
    assert!(text.contains("GPU kernels: skipped"), "{text}");
}

#[cfg(feature = "gpu")]
#[test]
fn doctor_runs_the_gpu_kernels_when_an_adapter_exists() {
    // Like the kernel parity tests, this needs a Vulkan driver (lavapipe in CI).
    let text = doctor(&["--words", "70001"], None);
    assert!(text.contains("equal to the CPU word for word"), "{text}");
}

#[cfg(feature = "gpu")]
#[test]
fn without_an_adapter_doctor_falls_back_to_the_cpu() {
    // No Metal adapter exists on Linux: wgpu finds nothing and the agent says it will use the CPU.
    let text = doctor(&["--words", "1000"], Some("metal"));
    assert!(text.contains("CPU kernels: ok"), "{text}");
    assert!(
        text.contains("GPU kernels: no adapter, the CPU kernels will be used"),
        "{text}"
    );
}

#[test]
fn a_bad_argument_is_a_clear_error() {
    let out = agent()
        .args(["doctor", "--words", "many"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'many'"));
}
