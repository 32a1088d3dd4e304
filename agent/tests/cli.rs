//! The `flock-agent` binary as a user runs it.

use std::process::Command;

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flock-agent"))
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
    let out = agent()
        .args(["doctor", "--cpu-only", "--words", "4097"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CPU kernels: ok (4097 words"), "{text}");
    assert!(text.contains("GPU kernels: skipped"), "{text}");
}

#[cfg(feature = "gpu")]
#[test]
fn doctor_runs_the_gpu_kernels_when_an_adapter_exists() {
    let out = agent()
        .args(["doctor", "--words", "70001"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // Like the kernel parity tests, this needs a Vulkan driver (lavapipe in CI).
    assert!(text.contains("equal to the CPU word for word"), "{text}");
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

#[cfg(feature = "gpu")]
#[test]
fn without_an_adapter_doctor_falls_back_to_the_cpu() {
    // No Metal adapter exists on Linux: wgpu finds nothing and the agent says it will use the CPU.
    let out = agent()
        .args(["doctor", "--words", "1000"])
        .env("WGPU_BACKEND", "metal")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CPU kernels: ok"), "{text}");
    assert!(
        text.contains("GPU kernels: no adapter, the CPU kernels will be used"),
        "{text}"
    );
}
