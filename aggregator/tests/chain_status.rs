//! `flock-aggregator chain status` against a real local chain (anvil): after one accepted
//! round and with the next one open, it shows the round, phase, stakes, the last accepted model
//! and every member with its client id; a wrong address is refused readably.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use flock_chain::anvil::AnvilOptions;
use flock_chain::devnet::{Devnet, dev_identity};
use flock_chain::drive::{RoundScript, play_round};

fn status(rpc: &str, task: &str) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flock-aggregator"))
        .args(["chain", "status", "--rpc", rpc, "--task", task])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_status_shows_the_task_and_the_open_round() {
    const MEMBERS: usize = 4;
    let devnet = Devnet::start(2 + MEMBERS, AnvilOptions::default())
        .await
        .unwrap();
    let staked = devnet.staked_task(MEMBERS, 20, 500).await.unwrap();
    let (task, members, aggregator) = (staked.task, staked.members, staked.aggregator);
    let r1 = play_round(&devnet, &members, &aggregator, &RoundScript::default())
        .await
        .unwrap();
    members[0].start_round().await.unwrap();

    let (ok, out, err) = status(&devnet.url(), &task.to_string());
    assert!(ok, "{err}");
    for needle in [
        format!("task:            {task}"),
        "round:           2 of 10 (BeaconCommit)".to_string(),
        format!("last accepted:   {} (round 1)", r1.model_hash),
        "participants:    4 (min 2, max 256)".to_string(),
        "candidate:     none anchored".to_string(),
    ] {
        assert!(out.contains(&needle), "{needle:?} not in:\n{out}");
    }
    for (i, m) in members.iter().enumerate() {
        let id = flock_chain::identity::client_id(&dev_identity(i + 2));
        let line = out
            .lines()
            .find(|l| l.contains(&m.address().to_string()))
            .unwrap_or_else(|| panic!("member {i} missing:\n{out}"));
        assert!(line.contains(&format!("client {id} ")), "{line}");
    }

    let (ok, _, err) = status(&devnet.url(), "0x1234");
    assert!(!ok);
    assert!(err.contains("--task \"0x1234\" is not an address"), "{err}");
}
