//! Rounds the aggregator starts itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use super::*;

#[test]
fn local_rounds_run_end_to_end_and_each_model_is_the_clear_fedavg() {
    let config = config(4, 4, 0, "");
    let optimizer = config.server_optimizer.clone();
    let mut w = World::new(config, Governance::local(), 4);
    let mut previous = w.machine.global.clone();
    // The first round starts when the 4th agent is ready; each next one as soon as the last
    // ends, until the task's 3 rounds are done.
    w.join_all();
    assert!(w.machine.is_done());
    assert_eq!(
        w.starts.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let summaries = w.machine.summaries().to_vec();
    assert_eq!(summaries.len(), 3);
    for (summary, (models, state)) in summaries.iter().zip(&w.persisted) {
        assert!(summary.accepted);
        assert_eq!(summary.contributors.len(), 4);
        // The model file, then the state naming it, were asked to be stored.
        let state = state
            .clone()
            .expect("the state is persisted with the model");
        assert_eq!((state.round, state.model), (summary.round, summary.model));
        assert_eq!(models, &vec![summary.model]);
        // Each model is the clear FedAvg of the four inputs after the previous one, bit for
        // bit (the id is the hash of the file's bytes).
        let expected = clear_fedavg(&w, summary, &previous, &optimizer);
        assert_eq!(
            flock_model::file::encode(&expected).unwrap().1,
            summary.model
        );
        previous = expected;
    }
    assert_eq!(bits_of(&w.machine.global), bits_of(&previous));
    // No agent was told of a round before its state was to be stored; every agent was told.
    assert!(!w.done_after_persist.is_empty());
    assert!(
        w.done_after_persist.iter().all(|&b| b),
        "RoundDone before its state"
    );
    for a in w.agents.values() {
        let told: Vec<_> = a.round_done.iter().map(|(r, m, _)| (*r, *m)).collect();
        let stored: Vec<_> = summaries.iter().map(|s| (s.round, s.model)).collect();
        assert_eq!(told, stored);
    }
    assert_eq!(w.metrics.rounds_completed.get(), 3);
    assert_eq!(w.metrics.round.get(), 3);
}

#[test]
fn fedadam_rounds_persist_their_moments_with_the_model() {
    let config = config(4, 4, 0, "[server_optimizer]\nkind = \"fedadam\"");
    let mut w = World::new(config, Governance::local(), 4);
    w.join_all();
    let (models, state) = w.persisted.first().cloned().unwrap();
    let state = state.unwrap();
    let moments = state
        .moments
        .expect("FedAdam's moments are named in the state");
    assert_eq!(models, vec![state.model, moments[0], moments[1]]);
}

#[test]
fn the_gather_window_waits_for_more_agents_then_starts_with_those_ready() {
    let mut w = World::new(config(4, 6, 2000, ""), Governance::local(), 5);
    let ids = w.ids();
    for id in &ids[..4] {
        w.join(*id);
    }
    assert!(w.starts.is_empty(), "4 ready of at most 6: it waits");
    let t0 = w.now;
    assert_eq!(
        w.machine.poll_timeout(),
        Some(t0 + Duration::from_millis(2000))
    );
    w.tick();
    assert_eq!(w.starts, vec![(1, 1, 4)]);
    assert_eq!(w.machine.summaries().len(), 1);
    // The fifth agent, late for round 1, opens the window of round 2 with the others.
    w.join(ids[4]);
    assert_eq!(w.starts.len(), 1);
    assert_eq!(
        w.machine.poll_timeout(),
        Some(w.now + Duration::from_millis(2000))
    );
    w.tick();
    assert_eq!(w.starts[1], (2, 2, 5));
}

/// Runs a task whose first attempt gets `hostile` inputs from the devices `which` picks (each
/// does it once): the attempt aborts after every device revealed its shares, so none may join
/// a retry of round 1 (their pledge); round 1 ends without a model, the machine goes on, and
/// every stored model is the clear FedAvg of the inputs of the round that made it.
fn one_bad_attempt(hostile: Hostile, which: impl Fn(usize) -> bool) {
    let config = config(4, 4, 0, "");
    let optimizer = config.server_optimizer.clone();
    let mut w = World::new(config, Governance::local(), 4);
    let mut previous = w.machine.global.clone();
    for (i, a) in w.agents.values_mut().enumerate() {
        if which(i) {
            a.hostile = Some(hostile);
        }
    }
    w.join_all();
    assert_eq!(w.metrics.rounds_aborted.get(), 1, "{hostile:?}");
    assert_eq!(
        w.starts.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
        vec![(1, 1), (2, 2), (3, 3)],
        "no retry of round 1 with devices bound to its aborted attempt"
    );
    // Nothing of the failed attempt was stored; the task then completes, exact.
    assert!(w.machine.is_done());
    let summaries = w.machine.summaries().to_vec();
    assert_eq!(summaries.len(), 3);
    assert!(!summaries[0].accepted && summaries[0].contributors.is_empty());
    for (summary, (_, state)) in summaries.iter().zip(&w.persisted).skip(1) {
        assert_eq!(state.as_ref().unwrap().model, summary.model);
        let expected = clear_fedavg(&w, summary, &previous, &optimizer);
        assert_eq!(
            flock_model::file::encode(&expected).unwrap().1,
            summary.model,
            "{hostile:?}"
        );
        previous = expected;
    }
}

#[test]
fn a_sum_that_gives_no_model_aborts_the_attempt_and_the_machine_keeps_serving() {
    // Every device claims weight −1 (as −C): the mean weight is not positive.
    one_bad_attempt(Hostile::Weight(-CLIP), |_| true);
    // Every device claims a weight below 1/cap: the quotient would blow the update up.
    one_bad_attempt(Hostile::Weight(CLIP / 1000.0), |_| true);
}

#[test]
fn one_device_with_an_out_of_range_word_or_an_unclipped_update_aborts_only_its_attempt() {
    one_bad_attempt(Hostile::WordAbove, |i| i == 2);
    one_bad_attempt(Hostile::Unclipped, |i| i == 0);
}

#[test]
fn a_round_whose_signers_all_are_bound_to_an_aborted_attempt_ends_without_a_model() {
    let mut w = World::new(config(4, 4, 0, ""), Governance::local(), 4);
    // Three of four sign the survivor list of round 1 and vanish: too few shares, the attempt
    // aborts after all four signed. None of them may join a retry of round 1 (their pledge),
    // so the machine retries nothing and ends round 1 without a model.
    for a in w.agents.values_mut().take(3) {
        a.vanish = Some(ClientPhase::AwaitingUnmaskRequest);
    }
    w.join_all();
    // The unmask phase waits out its deadline for the silent three.
    for _ in 0..10 {
        if w.machine.is_done() {
            break;
        }
        w.tick();
    }
    assert_eq!(w.metrics.rounds_aborted.get(), 1);
    assert_eq!(
        w.starts.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
        vec![(1, 1), (2, 2), (3, 3)],
        "no second attempt of round 1"
    );
    let summaries = w.machine.summaries();
    assert_eq!(summaries.len(), 3);
    assert!(!summaries[0].accepted && summaries[0].contributors.is_empty());
    assert!(
        summaries[1..]
            .iter()
            .all(|s| s.accepted && s.contributors.len() == 4)
    );
    // Every agent was told round 1 ended on the model it started from.
    for a in w.agents.values() {
        assert_eq!(a.round_done[0].0, 1);
        assert!(a.round_done[0].2.is_empty());
    }
    assert!(w.machine.is_done());
}

#[test]
fn a_device_whose_sealed_share_does_not_open_costs_one_mask_and_the_round_is_exact_with_it() {
    let config = config(5, 5, 0, "");
    let optimizer = config.server_optimizer.clone();
    let mut w = World::new(config, Governance::local(), 5);
    let previous = w.machine.global.clone();
    let liar = w.ids()[1];
    w.agents.get_mut(&liar).unwrap().garble = Some(Garble::One);
    w.join_all();
    assert_eq!(w.metrics.rounds_aborted.get(), 0);
    let summary = w.machine.summaries()[0].clone();
    assert!(summary.accepted);
    assert_eq!(summary.contributors.len(), 5);
    assert!(summary.contributors.contains(&liar));
    let expected = clear_fedavg(&w, &summary, &previous, &optimizer);
    assert_eq!(
        flock_model::file::encode(&expected).unwrap().1,
        summary.model
    );
}

#[test]
fn a_device_whose_shares_no_neighbour_can_open_sits_out_the_retry_which_is_exact() {
    // At least 4, at most 5, a gather window: all five are in the first attempt.
    let config = config(4, 5, 1000, "");
    let optimizer = config.server_optimizer.clone();
    let mut w = World::new(config, Governance::local(), 5);
    let previous = w.machine.global.clone();
    let liar = w.ids()[3];
    w.agents.get_mut(&liar).unwrap().garble = Some(Garble::All);
    w.join_all();
    for _ in 0..8 {
        if w.machine.is_done() {
            break;
        }
        w.tick();
    }
    assert!(w.machine.is_done());
    // Attempt 1 ends at the masked input (before any survivor list: nobody is bound by a
    // signature), attempt 2 of round 1 runs with the four others.
    assert_eq!(w.metrics.rounds_aborted.get(), 1);
    assert_eq!(w.starts[..2], [(1, 1, 5), (1, 2, 4)]);
    let summary = w.machine.summaries()[0].clone();
    assert!(summary.accepted);
    assert_eq!(summary.round, 1);
    assert_eq!(summary.contributors.len(), 4);
    assert!(!summary.contributors.contains(&liar));
    let expected = clear_fedavg(&w, &summary, &previous, &optimizer);
    assert_eq!(
        flock_model::file::encode(&expected).unwrap().1,
        summary.model
    );
    // Round 2 takes it back.
    assert_eq!(w.starts[2], (2, 3, 5));
}
