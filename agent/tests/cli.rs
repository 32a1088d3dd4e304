//! The `flock-agent` binary as a user runs it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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

fn fixture(file: &str) -> String {
    format!("{}/../fixtures/data/{file}", env!("CARGO_MANIFEST_DIR"))
}

fn out_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flock-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs the agent and returns (success, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = agent()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn partition_writes_one_csv_per_client() {
    let dir = out_dir("partition");
    let (ok, stdout, stderr) = run(
        &[
            "partition",
            "--data",
            &fixture("digits.csv"),
            "--classes",
            "10",
            "--clients",
            "4",
            "--alpha",
            "0.3",
            "--out",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("4 clients, Dirichlet alpha 0.3"),
        "{stdout}"
    );
    for i in 0..4 {
        assert!(dir.join(format!("client-{i}.csv")).exists());
    }
}

#[cfg(feature = "train")]
#[test]
fn train_local_then_evaluate_on_the_cpu() {
    let dir = out_dir("train");
    let model = dir.join("nested/bc.safetensors");
    let (ok, stdout, stderr) = run(
        &[
            "train-local",
            "--data",
            &fixture("breast_cancer.csv"),
            "--label",
            "label",
            "--backend",
            "cpu",
            "--epochs",
            "20",
            "--out",
            model.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("on cpu (burn flex)"), "{stdout}");
    let accuracy: f64 = stdout
        .split("accuracy ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(accuracy >= 0.95, "{stdout}");
    assert!(stdout.contains("class  support      F1"), "{stdout}");
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.with_extension("json")).unwrap()).unwrap();
    let id = card["model_id"].as_str().unwrap().to_string();
    assert!(stdout.contains(&format!("model {id} written")), "{stdout}");

    // evaluate finds the run card beside the model and scales the data with its statistics.
    let (ok, stdout, stderr) = run(
        &[
            "evaluate",
            "--model",
            model.to_str().unwrap(),
            "--data",
            &fixture("breast_cancer.csv"),
            "--backend",
            "cpu",
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("no run card"), "{stderr}");
    assert!(
        stdout.contains(&format!("model {id} (mlp 30-32-2)")),
        "{stdout}"
    );
    assert!(stdout.contains("(569 samples): accuracy 0.9"), "{stdout}");

    // A model evaluated on data of another shape is a clear error.
    let (ok, _, stderr) = run(
        &[
            "evaluate",
            "--model",
            model.to_str().unwrap(),
            "--data",
            &fixture("digits.csv"),
            "--backend",
            "cpu",
        ],
        &[],
    );
    assert!(!ok);
    assert!(
        stderr.contains("samples have 64 features, 30 expected"),
        "{stderr}"
    );
}

#[cfg(feature = "train")]
#[test]
fn bad_data_fails_with_file_and_line() {
    let dir = out_dir("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("bad.csv");
    std::fs::write(&csv, "a,b,label\n1,2,0\n3,x,1\n").unwrap();
    let (ok, _, stderr) = run(
        &[
            "train-local",
            "--data",
            csv.to_str().unwrap(),
            "--backend",
            "cpu",
        ],
        &[],
    );
    assert!(!ok);
    assert!(
        stderr.contains("bad.csv:3: column 2 (b) is \"x\", not a number"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[cfg(feature = "train-gpu")]
#[test]
fn without_an_adapter_training_falls_back_to_the_cpu_unless_the_gpu_is_forced() {
    let dir = out_dir("fallback");
    let model = dir.join("m.safetensors");
    let base = [
        "train-local",
        "--data",
        &fixture("breast_cancer.csv"),
        "--epochs",
        "1",
        "--out",
        model.to_str().unwrap(),
    ];
    let no_gpu = [("WGPU_BACKEND", "metal"), ("RUST_LOG", "info")];
    let (ok, stdout, stderr) = run(&base, &no_gpu);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("on cpu (burn flex)"), "{stdout}");
    assert!(stderr.contains("training on the CPU"), "{stderr}");
    let forced = [&base[..], &["--backend", "gpu"]].concat();
    let (ok, _, stderr) = run(&forced, &no_gpu);
    assert!(!ok);
    assert!(stderr.contains("no GPU for training"), "{stderr}");
}

#[cfg(feature = "train")]
#[test]
fn status_reads_the_persisted_state_and_config_errors_name_the_key() {
    let dir = out_dir("status");
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let config = dir.join("agent.toml");
    let text = r#"
task = "demo"
[aggregator]
address = "127.0.0.1:7443"
[identity]
ca = "ca.pem"
cert = "d.pem"
key = "d.key"
"#;
    std::fs::write(&config, text).unwrap();
    let (ok, stdout, stderr) = run(&["status", "--config", config.to_str().unwrap()], &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("last round:  none"), "{stdout}");
    std::fs::write(
        dir.join("state/state.json"),
        r#"{"task":"demo","client":42,"last_round":7,"model":"ab","contributed":6}"#,
    )
    .unwrap();
    let (ok, stdout, _) = run(&["status", "--config", config.to_str().unwrap()], &[]);
    assert!(ok);
    assert!(
        stdout.contains("client id:   42") && stdout.contains("last round:  7"),
        "{stdout}"
    );
    assert!(stdout.contains("contributed: 6 rounds"), "{stdout}");

    std::fs::write(
        &config,
        text.replace("[identity]", "[identity]\nkye = \"x\""),
    )
    .unwrap();
    let (ok, _, stderr) = run(&["status", "--config", config.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(
        stderr.contains("unknown field `kye`") && stderr.contains("agent.toml"),
        "{stderr}"
    );
}
