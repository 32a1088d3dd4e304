//! The protocol crate stays sans-IO: no async runtime, no network stack, no ML framework, no
//! GPU API anywhere in its dependency tree (`cargo tree -p flock-protocol`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[test]
fn no_io_async_or_ml_crate_in_the_dependency_tree() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "flock-protocol",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        tree.lines().count() > 10,
        "suspiciously small tree:\n{tree}"
    );
    let forbidden = [
        "tokio",
        "quinn",
        "rustls",
        "mio",
        "async-std",
        "burn",
        "wgpu",
        "cubecl",
        "hyper",
    ];
    for line in tree.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        assert!(
            !forbidden
                .iter()
                .any(|f| name == *f || name.starts_with(&format!("{f}-"))),
            "flock-protocol depends on {line}"
        );
    }
}
