//! The services on a task on chain (a real anvil): the aggregator opens each round, draws the
//! roles, runs SecAgg+ over exactly the drawn proposers, anchors the candidate and finalises;
//! the agents stake, commit and reveal beacon shares, train as proposers, judge the candidate and
//! vote as voters. And an agent refuses to train on a model that is not the chain's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use common::{ChainSetup, Federation, Seen, timeout};
use flock_agent::service::AgentState;
use flock_aggregator::store::TaskState;
use flock_chain::anvil::AnvilOptions;
use flock_chain::devnet::Devnet;
use flock_chain::params::{FLOCK, TaskParams};
use flock_chain::{Outcome, Role};
use flock_model::{ModelId, Params, file};

/// A devnet with a task for `fed` (its initial model, `rounds`, `agents` members of which
/// `proposer_share_bps` are drawn as proposers), 1 000 FLOCK minted to each agent's account
/// (2, 3, …) and the keys written into the federation's `keys/`.
async fn task_for(
    fed: &Federation,
    rounds: u32,
    proposer_share_bps: u16,
) -> (Devnet, Address, ChainSetup) {
    let devnet = Devnet::start(fed.agents + 2, AnvilOptions::default())
        .await
        .unwrap();
    let config = fed.config();
    let initial = Params::init(&config.model, config.task.seed).unwrap();
    let (_, initial) = file::encode(&initial).unwrap();
    let mut p = TaskParams::new(devnet.account(1).unwrap());
    p.initial_model_hash = B256::from(initial.0);
    p.total_rounds = rounds;
    p.min_participants = fed.agents as u16;
    p.proposer_share_bps = proposer_share_bps;
    // Long enough for every member to see the round and send its transaction on a loaded
    // machine (a member that misses a window takes a strike, which the tests check exactly).
    p.beacon_commit_duration = 6;
    p.beacon_reveal_duration = 6;
    p.training_duration = 120;
    p.vote_commit_duration = 6;
    p.vote_reveal_duration = 6;
    let (id, task) = devnet.create_task(&p).await.unwrap();
    devnet
        .fund_task(id, FLOCK * U256::from(1000u32))
        .await
        .unwrap();
    devnet
        .write_key(1, &fed.root.join("keys/aggregator.key"))
        .unwrap();
    let mut accounts = Vec::new();
    for i in 0..fed.agents {
        let a = devnet.account(i + 2).unwrap();
        devnet.mint(a, FLOCK * U256::from(1000u32)).await.unwrap();
        devnet
            .write_key(i + 2, &fed.root.join(format!("keys/device-{i}.key")))
            .unwrap();
        accounts.push(a.to_string());
    }
    let setup = ChainSetup {
        rpc: devnet.url(),
        task: task.to_string(),
        accounts,
        accept_tolerance: 0.05,
    };
    (devnet, task, setup)
}

/// Round 1 trains; in round 2 the aggregator builds a broken candidate (a test hook zeroes every
/// parameter: it answers one class), the voters measure it on their own data and reject it: the round's proposers are
/// slashed and round 3 starts again from round 1's model. The partitions are close to IID here
/// (α = 10): a voter holding one class only cannot tell a model that always answers that class
/// from a good one, and with two voters a tie accepts (FL Alliance's score ≥ 0 rule).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn six_agents_run_three_rounds_of_a_task_on_chain() {
    let fed = Federation::with_alpha("on-chain", 6, 4, 3, "127.0.0.1:0".parse().unwrap(), 10.0);
    // 60 % of 6 members: 4 proposers (the smallest safe SecAgg+ cohort at 10 % dropout), 2 voters.
    let (devnet, task, setup) = task_for(&fed, 3, 6000).await;
    let fed = fed
        .with_chain(setup, true)
        .with_section("[testing]\nbreak_candidate_round = 2");
    let (server, addr) = fed.serve(std::future::pending()).await;
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let agents = fed.agents(addr, &seen, |_, b| (b, None));
    let report = common::finish_exact(&fed, server, agents).await;

    let chain = devnet.task_client(task, 0).await.unwrap();
    let ids: Vec<_> = (0..fed.agents).map(|i| fed.client_id(i)).collect();
    let account_of = |client| devnet.account(ids.iter().position(|c| *c == client).unwrap() + 2);
    assert_eq!(report.rounds.len(), 3);
    let (mut paid, mut slashed) = (U256::ZERO, U256::ZERO);
    for summary in &report.rounds {
        let r = summary.round;
        let view = chain.round_info(r).await.unwrap();
        let (outcome, _) = chain.outcome_of(r).await.unwrap();
        assert_eq!(summary.accepted, outcome == Outcome::Accepted, "round {r}");
        assert_ne!(
            outcome,
            Outcome::Void,
            "round {r}: every round has a candidate and votes"
        );
        assert_eq!((view.memberCount, view.proposerCount), (6, 4), "round {r}");
        assert_eq!(view.voteReveals, 2, "round {r}: both voters revealed");
        // SecAgg+ ran over exactly the drawn proposers, and all of them contributed.
        let candidate = chain.candidate_of(r).await.unwrap();
        assert!(candidate.anchored, "round {r}");
        assert_eq!(candidate.contributor_count, 4, "round {r}");
        let mut proposers = BTreeSet::new();
        for i in 0..fed.agents {
            let a = devnet.account(i + 2).unwrap();
            if chain.role_of(r, a).await.unwrap() == Role::Proposer {
                proposers.insert(a);
            }
        }
        if summary.accepted {
            let contributors: BTreeSet<_> = summary
                .contributors
                .iter()
                .map(|c| account_of(*c).unwrap())
                .collect();
            assert_eq!(contributors, proposers, "round {r}");
            assert_eq!(ModelId(candidate.model_hash.0), summary.model, "round {r}");
        }
        paid += view.rewardPaid;
        slashed += view.slashed;
    }
    let [one, two, three] = &report.rounds[..] else {
        panic!("three rounds")
    };
    assert!(one.accepted, "a trained model beats the random initial one");
    assert!(!two.accepted, "the voters rejected the broken candidate");
    assert!(three.accepted);
    // Round 2's candidate was anchored but did not become the model: round 3 started again
    // from round 1's.
    assert_ne!(
        ModelId(chain.candidate_of(2).await.unwrap().model_hash.0),
        one.model
    );
    assert_eq!(two.model, one.model);
    assert_eq!(
        ModelId(chain.candidate_of(3).await.unwrap().prev_model_hash.0),
        one.model
    );
    // Round 2's proposers lost the slash (10 % of 100 FLOCK) and took a strike.
    for i in 0..fed.agents {
        let a = devnet.account(i + 2).unwrap();
        let info = chain.participant_info(a).await.unwrap();
        let proposed = chain.role_of(2, a).await.unwrap() == Role::Proposer;
        assert_eq!(info.strikes > U256::ZERO, proposed, "agent {i}");
        if proposed {
            assert_eq!(info.stake, FLOCK * U256::from(90u32), "agent {i}");
        }
    }

    // The chain's last accepted model is the store's current model, byte for byte.
    let (on_chain, _) = chain.last_accepted().await.unwrap();
    let store = fed.store();
    let bytes = store.bytes(&report.state.model).unwrap();
    assert_eq!(ModelId::of(&bytes), ModelId(on_chain.0));
    assert_eq!(report.state.model, ModelId(on_chain.0));

    // Payouts: what the agents hold (wallets and stakes) moved by exactly the rewards paid
    // minus the stakes slashed.
    let mut held = U256::ZERO;
    for i in 0..fed.agents {
        let a = devnet.account(i + 2).unwrap();
        held += devnet.balance(a).await.unwrap() + chain.stake_of(a).await.unwrap();
    }
    assert!(paid > U256::ZERO, "rewards were paid");
    assert_eq!(held + slashed, FLOCK * U256::from(6000u32) + paid);
    let final_accuracy = fed.accuracy(&store.get(&report.state.model).unwrap());
    assert!(final_accuracy > 0.85, "final accuracy {final_accuracy}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_refuses_a_model_that_is_not_the_chains_last_accepted() {
    let fed = Federation::new("tampered", 4, 4, 2, "127.0.0.1:0".parse().unwrap());
    let (_devnet, _task, setup) = task_for(&fed, 2, 6000).await;
    // The agents are on chain; this aggregator is not, and its store was tampered with: one
    // weight of the initial model changed, the state rewritten to point at the new file.
    let fed = fed.with_chain(setup, false);
    let config = fed.config();
    let honest = Params::init(&config.model, config.task.seed).unwrap();
    let (_, honest_id) = file::encode(&honest).unwrap();
    let mut values = honest.values().to_vec();
    values[0] += 0.5;
    let tampered = Params::new(honest.spec().clone(), values).unwrap();
    let store = fed.store();
    let tampered_id = store.put(&tampered).unwrap();
    store
        .save_state(&TaskState {
            task: config.task.name.clone(),
            round: 0,
            model: tampered_id,
            moments: None,
        })
        .unwrap();

    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let (server, addr) = fed
        .serve(async move {
            let _ = server_stopped.await;
        })
        .await;
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let stops = std::cell::RefCell::new(Vec::new());
    let agents = fed.agents(addr, &seen, |_, b| {
        let (tx, rx) = tokio::sync::oneshot::channel();
        stops.borrow_mut().push(tx);
        (b, Some(rx))
    });
    // Every agent refuses round 1, naming both models, and goes on serving.
    let deadline = tokio::time::Instant::now() + timeout();
    for i in 0..fed.agents {
        let dir = fed.root.join(format!("device-{i}/state"));
        let refusal = loop {
            if let Some(r) = AgentState::load(&dir).unwrap().last_refusal {
                break r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "agent {i} never refused"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(refusal.contains(&tampered_id.to_string()), "{refusal}");
        assert!(refusal.contains(&honest_id.to_string()), "{refusal}");
        assert!(
            !dir.join("revealed/round-1.u32").exists(),
            "agent {i} trained on the tampered model"
        );
    }
    for a in &agents {
        assert!(!a.is_finished(), "the agents keep serving after a refusal");
    }
    for s in stops.into_inner() {
        let _ = s.send(());
    }
    for a in agents {
        let report = a.await.unwrap().unwrap();
        assert!(!report.completed);
        assert_eq!(report.state.contributed, 0);
    }
    let _ = stop_server.send(());
    let report = server.await.unwrap();
    assert!(
        report.rounds.is_empty(),
        "no round completed on a refused model"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aggregator_refuses_a_task_on_chain_that_is_not_its_own() {
    // The task on chain has 3 rounds; this aggregator's config says 2.
    let fed = Federation::new("not-mine", 4, 4, 2, "127.0.0.1:0".parse().unwrap());
    let (_devnet, task, setup) = task_for(&fed, 3, 6000).await;
    let fed = fed.with_chain(setup, true);
    let err = flock_aggregator::service::serve(fed.config(), std::future::pending(), |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("task {task}: it has 3 rounds, task.rounds says 2")),
        "{err}"
    );
}

/// `who`'s seat in round 1.
async fn seat_in_round_1(
    chain: &flock_chain::task::TaskClient,
    who: Address,
) -> flock_chain::task::Seat {
    chain.seat_of(1, who).await.unwrap()
}

/// An agent stopped right after committing its beacon share, and started again, reveals the
/// share it kept on disk: nobody takes a strike in the round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_restarted_between_commit_and_reveal_still_reveals() {
    let fed = Federation::with_alpha(
        "restart-beacon",
        5,
        4,
        1,
        "127.0.0.1:0".parse().unwrap(),
        10.0,
    );
    // 80 % of 5 members: 4 proposers, 1 voter.
    let (devnet, task, setup) = task_for(&fed, 1, 8000).await;
    let fed = fed.with_chain(setup, true);
    let (server, addr) = fed.serve(std::future::pending()).await;
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let (stop_first, first_stopped) = tokio::sync::oneshot::channel::<()>();
    let first_stop = std::cell::RefCell::new(Some(first_stopped));
    let mut agents = fed.agents(addr, &seen, |i, b| {
        let stop = if i == 0 {
            first_stop.borrow_mut().take()
        } else {
            None
        };
        (b, stop)
    });
    // Agent 0 commits its share of round 1 (kept on disk first), then stops and starts again.
    let kept = fed.root.join("device-0/state/chain/beacon-1.json");
    let chain = devnet.task_client(task, 0).await.unwrap();
    let me = devnet.account(2).unwrap();
    let deadline = tokio::time::Instant::now() + timeout();
    loop {
        let seat = seat_in_round_1(&chain, me).await;
        if seat.beacon_committed {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "agent 0 never committed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(kept.exists(), "the secret is on disk once committed");
    let _ = stop_first.send(());
    let first = agents.remove(0).await.unwrap().unwrap();
    assert!(!first.completed);
    let view = chain.round_info(1).await.unwrap();
    assert!(
        flock_chain::schedule::unix_now() < view.beaconCommitEnd,
        "restarted within the commit window (the test needs it to check the reveal)"
    );
    agents.insert(0, fed.agent(0, addr, &seen, |_, b| (b, None)));
    let report = common::finish_exact(&fed, server, agents).await;
    assert_eq!(report.rounds.len(), 1);
    let seat = seat_in_round_1(&chain, me).await;
    assert!(
        seat.beacon_revealed,
        "the restarted agent revealed its kept share"
    );
    for i in 0..fed.agents {
        let info = chain
            .participant_info(devnet.account(i + 2).unwrap())
            .await
            .unwrap();
        assert_eq!(info.strikes, U256::ZERO, "agent {i}");
    }
}
