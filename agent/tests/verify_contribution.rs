//! `flock-agent verify-contribution` against a real local chain (anvil): a contributor of an
//! accepted round gets a verified Merkle proof; a voter is told it did not contribute; a config
//! without `[chain]` or with a bad address is refused naming the key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(feature = "chain")]

use std::path::{Path, PathBuf};
use std::process::Command;

use flock_chain::anvil::AnvilOptions;
use flock_chain::devnet::Devnet;
use flock_chain::drive::{RoundScript, play_round};

fn config(dir: &Path, name: &str, chain: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "task = \"t\"\n[aggregator]\naddress = \"127.0.0.1:7443\"\n[identity]\nca = \"ca.pem\"\n\
             cert = \"d.pem\"\nkey = \"d.key\"\n{chain}"
        ),
    )
    .unwrap();
    path
}

/// Runs `verify-contribution`; the exit status and what it printed on stdout or, failing, on
/// stderr.
fn verify(config: &Path, round: u64) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_flock-agent"))
        .arg("verify-contribution")
        .arg("--config")
        .arg(config)
        .args(["--round", &round.to_string()])
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contributor_proves_it_and_a_voter_cannot() {
    let devnet = Devnet::start(2 + 6, AnvilOptions::default()).await.unwrap();
    let s = devnet.staked_task(6, 20, 500).await.unwrap();
    let r = play_round(&devnet, &s.members, &s.aggregator, &RoundScript::default())
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("flock-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let section = |account: &alloy::primitives::Address| {
        format!(
            "[chain]\nrpc = \"{}\"\ntask = \"{}\"\naccount = \"{account}\"\n",
            devnet.url(),
            s.task
        )
    };

    let proposer = config(&dir, "proposer", &section(&r.proposers[0]));
    let out = verify(&proposer, r.round).unwrap();
    assert!(
        out.contains(&format!(
            "round 1: {} is one of {} contributors",
            r.proposers[0],
            r.proposers.len()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("model:          {}", r.model_hash)),
        "{out}"
    );
    assert!(out.contains("verified"), "{out}");

    let voter = config(&dir, "voter", &section(&r.voters[0]));
    let err = verify(&voter, r.round).unwrap_err();
    assert!(err.contains("is not among the"), "{err}");

    let err = verify(&proposer, 2).unwrap_err();
    assert!(err.contains("round 2 has no anchored candidate"), "{err}");

    let none = config(&dir, "none", "");
    let err = verify(&none, 1).unwrap_err();
    assert!(err.contains("no [chain] section"), "{err}");

    let bad = config(
        &dir,
        "bad",
        &format!("[chain]\ntask = \"{}\"\naccount = \"0x12\"\n", s.task),
    );
    let err = verify(&bad, 1).unwrap_err();
    assert!(err.contains("chain.account"), "{err}");
}
