//! Tasks end to end over real QUIC with mutual TLS on loopback: one aggregator and several
//! agents (in-process tasks), each on its own non-IID partition of breast_cancer.
//!
//! - 8 agents × 10 rounds: after every round the stored global model equals, bit for bit, the
//!   previous one plus the FedAvg of the same quantised inputs summed in the clear (the agents
//!   reveal their inputs through the `test-hooks` feature); the final model reaches 0.95.
//! - Agents masking on the GPU and on the CPU in one round: still bit for bit.
//! - The model store behind the object-store API.
//! - The aggregator killed between rounds and started again continues from its store with the
//!   next round: no round lost or repeated, and the agents reconnect by themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use flock_agent::service::AgentState;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_agents_ten_rounds_bit_exact_and_accurate() {
    const AGENTS: usize = 8;
    const ROUNDS: u64 = 10;
    let fed = Federation::new(
        "bitexact",
        AGENTS,
        AGENTS,
        ROUNDS,
        ([127, 0, 0, 1], 0).into(),
    );
    let (server, addr) = fed.serve(std::future::pending()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let agents = fed.agents(addr, &seen, |_, b| (b, None));
    let report = tokio::time::timeout(timeout(), server)
        .await
        .expect("task finished")
        .unwrap();
    let mut ids = Vec::new();
    for a in agents {
        let r = a.await.unwrap().unwrap();
        assert!(r.completed);
        assert_eq!(r.state.last_round, Some(ROUNDS));
        ids.push(r.client);
    }
    assert_eq!(report.rounds.len() as u64, ROUNDS);
    assert_eq!(report.state.round, ROUNDS);
    assert_eq!(
        seen.lock().unwrap().len(),
        AGENTS * ROUNDS as usize,
        "every agent saw every round"
    );

    let previous = check_bit_exact(&fed, &report.rounds, &ids);
    let accuracy = fed.accuracy(&previous);
    eprintln!("final accuracy over the devices' test splits: {accuracy:.4}");
    assert!(accuracy >= 0.95, "{accuracy}");
    let state = AgentState::load(&fed.root.join("device-0/state")).unwrap();
    assert_eq!(state.model, Some(report.state.model.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_aggregator_continues_with_the_next_round() {
    const AGENTS: usize = 4;
    const ROUNDS: u64 = 6;
    // A fixed port, so that the agents find the restarted aggregator where they left it.
    let fed = Federation::new("restart", AGENTS, AGENTS, ROUNDS, fixed_loopback_addr())
        // FedAdam: its moments must survive the restart too.
        .with_server_optimizer("kind = \"fedadam\"\nlearning_rate = 0.02");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (first, addr) = fed
        .serve(async move {
            let _ = stop_rx.await;
        })
        .await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let agents = fed.agents(addr, &seen, |_, b| (b, None));

    // Kill it once round 2 is in the store.
    let store = fed.store();
    tokio::time::timeout(timeout(), async {
        while store
            .state("e2e-restart")
            .unwrap()
            .is_none_or(|s| s.round < 2)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    let _ = stop_tx.send(());
    let first = first.await.unwrap();
    let stopped_at = first.state.round;
    assert!(
        (2..ROUNDS).contains(&stopped_at),
        "stopped after round {stopped_at}"
    );

    // The killed aggregator's socket closes once its last connection task has let go.
    tokio::time::timeout(timeout(), async {
        while std::net::UdpSocket::bind(addr).is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let (second, _) = fed.serve(std::future::pending()).await;
    let second = tokio::time::timeout(timeout(), second)
        .await
        .expect("finished")
        .unwrap();
    for a in agents {
        let r = a.await.unwrap().unwrap();
        assert!(r.completed);
        assert_eq!(r.state.last_round, Some(ROUNDS));
    }
    let rounds: Vec<u64> = first
        .rounds
        .iter()
        .chain(&second.rounds)
        .map(|r| r.round)
        .collect();
    assert_eq!(
        rounds,
        (1..=ROUNDS).collect::<Vec<_>>(),
        "no round lost or repeated"
    );
    assert_eq!(second.rounds[0].round, stopped_at + 1);
    assert_eq!(second.state.round, ROUNDS);
    // Every round's model chains from the one before, bit for bit, through the restart: the
    // second process went on with the first one's FedAdam moments from the store.
    let all: Vec<_> = first.rounds.into_iter().chain(second.rounds).collect();
    let ids: Vec<_> = (0..AGENTS).map(|i| fed.client_id(i)).collect();
    let last = check_bit_exact(&fed, &all, &ids);
    assert!(second.state.moments.is_some());
    assert!(fed.accuracy(&last) > 0.8, "FedAdam learns");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_vanishing_at_each_phase_leave_exact_rounds() {
    use flock_protocol::ClientPhase::{
        AwaitingAdverts, AwaitingResult, AwaitingShares, AwaitingSurvivors,
    };
    const AGENTS: usize = 8;
    const ROUNDS: u64 = 5;
    let fed = Federation::new("dropouts", AGENTS, 4, ROUNDS, ([127, 0, 0, 1], 0).into());
    let (server, addr) = fed.serve(std::future::pending()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    // Agent i vanishes in round i + 1, each at another phase; agents 4..8 stay.
    let plan = [
        (1, AwaitingAdverts),
        (2, AwaitingShares),
        (3, AwaitingSurvivors),
        (4, AwaitingResult),
    ];
    let agents = fed.agents(addr, &seen, |i, b| match plan.get(i) {
        Some(&(round, phase)) => (b.vanish_at(round, phase), None),
        None => (b, None),
    });
    let report = tokio::time::timeout(timeout(), server)
        .await
        .expect("task finished")
        .unwrap();
    let mut ids = Vec::new();
    for (i, a) in agents.into_iter().enumerate() {
        match a.await.unwrap() {
            Ok(r) => {
                assert!(i >= plan.len(), "agent {i} should have vanished");
                assert!(r.completed);
                ids.push(r.client);
            }
            Err(e) => {
                assert!(i < plan.len(), "agent {i}: {e}");
                assert!(
                    e.to_string()
                        .contains(&format!("vanished in round {}", plan[i].0)),
                    "{e}"
                );
                let key = fed.root.join(format!("certs/device-{i}.key"));
                let identity = flock_agent::service::load_identity(&key).unwrap();
                ids.push(flock_protocol::ClientId::from_identity(&identity.public()));
            }
        }
    }
    // Who is in each round's sum: gone before its masked input, out; gone after, in (its self
    // mask is rebuilt from its neighbours' shares).
    let contributors: Vec<usize> = report.rounds.iter().map(|r| r.contributors.len()).collect();
    assert_eq!(contributors, [7, 6, 6, 5, 4], "per round");
    let dropped_after_input = ids[2];
    assert!(report.rounds[2].contributors.contains(&dropped_after_input));
    assert!(!report.rounds[0].contributors.contains(&ids[0]));
    check_bit_exact(&fed, &report.rounds, &ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_shut_down_leaves_and_is_not_counted_on() {
    const AGENTS: usize = 5;
    const ROUNDS: u64 = 3;
    let fed = Federation::new("leave", AGENTS, 4, ROUNDS, ([127, 0, 0, 1], 0).into());
    let (server, addr) = fed.serve(std::future::pending()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stop_tx = Mutex::new(Some(stop_tx));
    let stop_rx = Mutex::new(Some(stop_rx));
    // Agent 0 is shut down (as by SIGTERM) once it has seen round 1 finish.
    let agents = fed.agents(addr, &seen, |i, b| {
        if i != 0 {
            return (b, None);
        }
        let stop_tx = Mutex::new(stop_tx.lock().unwrap().take());
        let rx = stop_rx.lock().unwrap().take();
        let b = b.on_round(move |_| {
            if let Some(tx) = stop_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
        });
        (b, rx)
    });
    let report = tokio::time::timeout(timeout(), server)
        .await
        .expect("task finished")
        .unwrap();
    let mut results = Vec::new();
    for a in agents {
        results.push(a.await.unwrap().unwrap());
    }
    assert!(!results[0].completed, "agent 0 left");
    assert!(results[1..].iter().all(|r| r.completed));
    let participants: Vec<usize> = report.rounds.iter().map(|r| r.participants).collect();
    // Round 2 may already have started with it when it leaves (the round goes on without it);
    // after its goodbye the last round starts without it, instead of counting on a silent peer
    // until the idle timeout.
    assert_eq!(participants[0], 5);
    assert_eq!(participants[2], 4, "{participants:?}");
    let gone = results[0].client;
    assert!(
        report.rounds[1..]
            .iter()
            .all(|r| !r.contributors.contains(&gone))
    );
}

/// Half the agents mask on the GPU (edge-kernels on the first wgpu adapter: lavapipe in CI),
/// half on the CPU: only masked words leave the GPU agents, and every round's sum is still the
/// clear sum of everyone's quantised inputs, bit for bit.
#[cfg(feature = "gpu")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_masking_on_the_gpu_and_on_the_cpu_sum_exactly() {
    use flock_agent::service::Masker;
    const AGENTS: usize = 4;
    const ROUNDS: u64 = 2;
    let gpu = Arc::new(
        edge_kernels::gpu::GpuKernels::new()
            .expect("this test needs a wgpu adapter (lavapipe in CI)"),
    );
    let fed = Federation::new(
        "gpu-mask",
        AGENTS,
        AGENTS,
        ROUNDS,
        ([127, 0, 0, 1], 0).into(),
    );
    let (server, addr) = fed.serve(std::future::pending()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let agents = fed.agents(addr, &seen, |i, b| {
        if i % 2 == 0 {
            (b.masker(Masker::Gpu(gpu.clone())), None)
        } else {
            (b, None)
        }
    });
    let report = finish_exact(&fed, server, agents).await;
    assert!(report.rounds.iter().all(|r| r.contributors.len() == AGENTS));
}

/// The model store behind the object-store API (`file://` here; `s3://` takes the same path
/// through `object_store`): rounds stay exact and the objects are laid out like the directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_keeps_its_models_in_an_object_store() {
    const AGENTS: usize = 4;
    const ROUNDS: u64 = 2;
    let fed = Federation::new(
        "objects",
        AGENTS,
        AGENTS,
        ROUNDS,
        ([127, 0, 0, 1], 0).into(),
    );
    let objects = fed.root.join("objects");
    std::fs::create_dir_all(&objects).unwrap();
    let fed = fed.with_store(&format!("file://{}/", objects.display()));
    let (server, addr) = fed.serve(std::future::pending()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let agents = fed.agents(addr, &seen, |_, b| (b, None));
    let report = finish_exact(&fed, server, agents).await;
    assert!(objects.join("state.json").exists());
    let model = objects.join(format!("models/{}.safetensors", report.state.model));
    assert!(model.exists(), "{}", model.display());
    assert!(
        !fed.root.join("store").exists(),
        "nothing went to the default directory"
    );
}
