//! The `flock-aggregator` binary as an operator runs it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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

#[test]
fn ca_init_issue_revoke_list() {
    let dir = std::env::temp_dir().join(format!("flock-agg-ca-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ca = dir.join("ca");
    let ca = ca.to_str().unwrap();
    let out = dir.join("certs");
    let out = out.to_str().unwrap();
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_flock-aggregator"))
            .args(args)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = run(&["ca", "init", "--dir", ca]);
    assert!(ok && stdout.contains("created"), "{stdout}{stderr}");
    let (ok, _, stderr) = run(&["ca", "init", "--dir", ca]);
    assert!(
        !ok && stderr.contains("refusing to replace a CA"),
        "{stderr}"
    );

    let (ok, stdout, stderr) = run(&[
        "ca",
        "issue",
        "--dir",
        ca,
        "--name",
        "hospital-1",
        "--out",
        out,
    ]);
    assert!(
        ok && stdout.contains("issued hospital-1"),
        "{stdout}{stderr}"
    );
    let (ok, _, stderr) = run(&[
        "ca",
        "issue",
        "--dir",
        ca,
        "--name",
        "agg",
        "--server-name",
        "localhost,127.0.0.1",
        "--out",
        out,
    ]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = run(&[
        "ca",
        "issue",
        "--dir",
        ca,
        "--name",
        "hospital-1",
        "--out",
        out,
    ]);
    assert!(!ok && stderr.contains("already issued"), "{stderr}");
    let (ok, _, stderr) = run(&[
        "ca", "issue", "--dir", ca, "--name", "../evil", "--out", out,
    ]);
    assert!(!ok && stderr.contains("use letters"), "{stderr}");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("certs/hospital-1.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "device keys are private");
        let mode = std::fs::metadata(dir.join("ca/ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the CA key is private");
    }

    let (ok, stdout, _) = run(&["ca", "revoke", "--dir", ca, "--name", "hospital-1"]);
    assert!(ok && stdout.contains("revoked hospital-1"), "{stdout}");
    let (ok, _, stderr) = run(&["ca", "revoke", "--dir", ca, "--name", "nobody"]);
    assert!(
        !ok && stderr.contains("no certificate named \"nobody\""),
        "{stderr}"
    );
    let (ok, stdout, _) = run(&["ca", "list", "--dir", ca]);
    assert!(ok, "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("revoked") && l.ends_with("hospital-1")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("server") && l.contains("valid") && l.ends_with("agg")),
        "{stdout}"
    );
}

#[test]
fn serve_config_errors_name_the_key() {
    let dir = std::env::temp_dir().join(format!("flock-agg-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = r#"
[task]
name = "t"
rounds = 3
[model]
kind = "mlp"
inputs = 4
hidden = [8]
classes = 2
[cohort]
min = 4
max = 6
[secagg]
dropout = 0.1
clip_norm = 1.0
[server]
listen = "127.0.0.1:0"
ca = "ca.pem"
cert = "a.pem"
key = "a.key"
store = "store"
"#;
    let cases = [
        (good.replace("rounds = 3", "rounds = 0"), "task.rounds"),
        (good.replace("max = 6", "max = 2"), "cohort.max"),
        (
            good.replace("min = 4", "min = 3"),
            "cohort.min: no safe SecAgg+ parameters for a cohort of 3 with secagg.dropout 0.1 \
             and secagg.corrupt 0; the smallest cohort that has them is 4",
        ),
        (
            format!("{good}[server_optimizer]\nkind = \"fedadam\"\ntau = 0\n"),
            "server_optimizer.tau",
        ),
        (
            format!("{good}[server_optimizer]\nkind = \"fedprox\"\n"),
            "unknown variant `fedprox`",
        ),
        (good.replace("min = 4", "min = 1"), "cohort.min"),
        (
            good.replace("dropout = 0.1", "dropout = 0.7"),
            "secagg.dropout",
        ),
        (
            good.replace("clip_norm = 1.0", "clip_norm = -1.0"),
            "secagg.clip_norm",
        ),
        (
            good.replace("hidden = [8]", "hidden = [0]"),
            "hidden[0] is 0",
        ),
        (
            good.replace("rounds = 3", "rounds = 3\nround = 4"),
            "unknown field `round`",
        ),
        (
            good.replace("listen = \"127.0.0.1:0\"", "listen = \"nowhere\""),
            "listen",
        ),
        (
            good.replace("[cohort]", "[training]\nlearning_rate = 0.0\n[cohort]"),
            "learning_rate",
        ),
        (
            format!("{good}[chain]\ntask = \"0x12\"\nkey = \"k\"\n"),
            "chain.task: \"0x12\" is not an address",
        ),
        (
            format!(
                "{good}[chain]\ntask = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\nkey = \"k\"\nconfirmations = 0\n"
            ),
            "chain.confirmations",
        ),
        (
            format!("{good}[chain]\ntask = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n"),
            "missing field `key`",
        ),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let path = dir.join(format!("bad-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_flock-aggregator"))
            .args(["serve", "--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{needle}");
        assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
        assert!(stderr.contains(&format!("bad-{i}.toml")), "{stderr}");
    }
    // A valid config whose credentials are missing says which file.
    let path = dir.join("good.toml");
    std::fs::write(&path, good).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flock-aggregator"))
        .args(["serve", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("a.pem"), "{stderr}");
}
