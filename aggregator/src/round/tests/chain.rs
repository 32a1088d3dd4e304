//! Rounds driven by the chain: the machine's answers to each order of chain events.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

/// A machine on chain with `n` connected agents; returns it and the initial model.
fn on_chain(n: usize) -> (World, ModelId) {
    let mut w = World::new(config(4, 8, 0, ""), Governance::chain(), n);
    w.join_all();
    assert!(w.starts.is_empty(), "on chain, rounds wait for the chain");
    let initial = w.machine.state().model;
    (w, initial)
}

#[test]
fn on_chain_a_candidate_becomes_the_model_only_once_the_vote_accepts_it() {
    let (mut w, initial) = on_chain(4);
    w.train(1, initial);
    let (round, candidate) = w.candidates.last().cloned().unwrap();
    let candidate = candidate.expect("a candidate");
    assert_eq!(round, 1);
    assert_eq!(candidate.contributors.len(), 4);
    // The candidate is stored before the driver hears of it; it is not the model yet.
    assert_eq!(w.persisted, vec![(vec![candidate.model], None)]);
    assert_eq!(w.machine.state().model, initial);
    assert!(w.agents.values().all(|a| a.round_done.is_empty()));
    w.chain(ChainInput::Finalised {
        round: 1,
        outcome: Outcome::Accepted,
        accepted: candidate.model,
    });
    let state = w.machine.state().clone();
    assert_eq!((state.round, state.model), (1, candidate.model));
    assert_eq!(w.persisted.last().cloned(), Some((vec![], Some(state))));
    for a in w.agents.values() {
        assert_eq!(
            a.round_done,
            vec![(1, candidate.model, candidate.contributors.clone())]
        );
    }
    assert!(w.machine.summaries()[0].accepted);
}

#[test]
fn on_chain_a_rejected_candidate_leaves_the_model() {
    let (mut w, initial) = on_chain(4);
    w.train(1, initial);
    let candidate = w.candidates[0].1.clone().unwrap();
    w.chain(ChainInput::Finalised {
        round: 1,
        outcome: Outcome::Rejected,
        accepted: initial,
    });
    assert_eq!(w.machine.state().model, initial);
    assert_eq!(w.machine.state().round, 1);
    let summary = &w.machine.summaries()[0];
    assert!(!summary.accepted);
    assert!(summary.contributors.is_empty());
    assert_eq!(w.metrics.rounds_rejected.get(), 1);
    for a in w.agents.values() {
        assert_eq!(a.round_done, vec![(1, initial, vec![])]);
    }
    // The next round starts from the model that stayed.
    w.train(2, initial);
    let next = w.candidates.last().cloned().unwrap().1.unwrap();
    assert_ne!(next.model, candidate.model);
}

#[test]
fn on_chain_accepted_with_another_model_than_the_candidate_keeps_the_model() {
    let (mut w, initial) = on_chain(4);
    w.train(1, initial);
    w.chain(ChainInput::Finalised {
        round: 1,
        outcome: Outcome::Accepted,
        accepted: ModelId([3; 32]),
    });
    assert_eq!(w.machine.state().model, initial);
    assert!(!w.machine.summaries()[0].accepted);
}

#[test]
fn on_chain_a_void_round_is_finalised_with_the_model_unchanged() {
    let (mut w, initial) = on_chain(4);
    w.chain(ChainInput::Finalised {
        round: 1,
        outcome: Outcome::Void,
        accepted: initial,
    });
    assert_eq!(w.machine.state().round, 1);
    assert_eq!(w.machine.state().model, initial);
    assert!(w.candidates.is_empty());
    assert_eq!(w.persisted.len(), 1, "the state of round 1 is saved");
}

#[test]
fn on_chain_a_prev_that_is_not_the_machines_model_gives_no_candidate() {
    let (mut w, _) = on_chain(4);
    w.train(1, ModelId([7; 32]));
    assert_eq!(w.candidates, vec![(1, None)]);
    assert!(w.starts.is_empty(), "no agent is asked to train");
}

#[test]
fn on_chain_too_few_drawn_proposers_connected_gives_no_candidate() {
    let (mut w, initial) = on_chain(4);
    let mut proposers = w.participants();
    // Two of the drawn proposers are not connected here (and one claims another's id with a
    // different key): 2 of the cohort minimum 4.
    proposers.truncate(2);
    proposers.push(Participant {
        id: ClientId(77),
        identity: [1; 32],
    });
    let impostor = w.participants()[3].id;
    proposers.push(Participant {
        id: impostor,
        identity: [2; 32],
    });
    w.chain(ChainInput::Train {
        round: 1,
        proposers,
        prev: initial,
        seed: chain_seed(1),
    });
    assert_eq!(w.candidates, vec![(1, None)]);
    assert!(w.starts.is_empty());
}

#[test]
fn on_chain_asked_again_the_candidate_is_not_rebuilt() {
    let (mut w, initial) = on_chain(4);
    w.train(1, initial);
    let first = w.candidates[0].1.clone();
    w.train(1, initial);
    assert_eq!(w.candidates, vec![(1, first.clone()), (1, first)]);
    assert_eq!(w.starts.len(), 1, "one SecAgg+ attempt");
}

#[test]
fn on_chain_an_attempt_that_aborts_gives_no_candidate() {
    let (mut w, initial) = on_chain(4);
    let proposers = w.participants();
    let ids = w.ids();
    // Two of four vanish right after the round is announced: below the threshold.
    w.machine
        .handle_chain(
            ChainInput::Train {
                round: 1,
                proposers,
                prev: initial,
                seed: chain_seed(1),
            },
            w.now,
        )
        .unwrap();
    for id in &ids[..2] {
        w.machine
            .handle(Input::Lost { client: *id }, w.now)
            .unwrap();
    }
    w.settle();
    while w.candidates.is_empty() {
        w.tick();
    }
    assert_eq!(w.candidates, vec![(1, None)]);
    assert_eq!(w.metrics.rounds_aborted.get(), 1);
}
