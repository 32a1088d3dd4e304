//! Whole rounds in memory: the unmasked sum equals the plain sum of the contributors'
//! quantised inputs, bit for bit, under every dropout pattern the threshold allows; beyond it
//! the round either still finishes exactly (the graph may absorb it) or aborts with a typed
//! error that names the phase and the counts. Never a wrong sum, never a panic.
//!
//! `PROPTEST_CASES` sets the number of random rounds (CI runs the default below).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;

use flock_protocol::{AbortError, ClientError, ClientId, Phase};
use proptest::prelude::*;
use support::{Drop, Round, config};

const EARLY: [Drop; 6] = [
    Drop::BeforeAdvert,
    Drop::BeforeShares,
    Drop::BeforeInput,
    Drop::AfterInput,
    Drop::BeforeSignature,
    Drop::BeforeUnmask,
];

fn expected_contributors(round: &Round) -> Vec<ClientId> {
    round
        .server
        .config()
        .participants
        .iter()
        .map(|p| p.id)
        .filter(|id| round.drops.get(id).is_none_or(|d| d.contributes()))
        .collect()
}

#[test]
fn a_full_round_without_dropouts_is_exact() {
    for n in [2, 3, 4, 5, 6, 10, 40] {
        let (config, ids) = config(n, 1000, n as u8);
        let mut round = Round::new(config, ids, n as u64);
        let out = round.run().unwrap();
        assert_eq!(out.contributors, expected_contributors(&round));
        assert!(out.sum == round.plain_sum(&out.contributors), "n {n}");
        for c in round.clients.values() {
            assert_eq!(c.outcome().unwrap().unwrap(), out.contributors.as_slice());
        }
    }
}

#[test]
fn dropouts_at_every_phase_within_the_threshold_are_exact() {
    let (config, _) = config(30, 300, 7);
    let (k, t) = (config.degree as usize, config.threshold as usize);
    assert!(
        k - t >= 2,
        "this test wants room for several dropouts: k {k} t {t}"
    );
    for (i, drop) in EARLY.iter().enumerate() {
        for notice in [true, false] {
            let mut round = Round::new(config.clone(), support::identities(30, 7), i as u64);
            round.notice_drops = notice;
            let victims: Vec<ClientId> = config
                .participants
                .iter()
                .skip(i * 3)
                .take(k - t)
                .map(|p| p.id)
                .collect();
            for v in &victims {
                round.drops.insert(*v, *drop);
            }
            let out = round
                .run()
                .unwrap_or_else(|e| panic!("{drop:?} notice {notice}: {e}"));
            assert_eq!(out.contributors, expected_contributors(&round), "{drop:?}");
            assert!(
                out.sum == round.plain_sum(&out.contributors),
                "{drop:?} notice {notice}"
            );
        }
    }
}

#[test]
fn chunks_arriving_last_first_are_summed_exactly() {
    // Three chunks per vector, delivered in reverse, as QUIC streams may overtake each other.
    let d = 2 * flock_protocol::wire::CHUNK_WORDS as u32 + 5;
    let (config, ids) = config(6, d, 12);
    let mut round = Round::new(config, ids, 12);
    round.reverse_chunks = true;
    let out = round.run().unwrap();
    assert!(round.server_errors.is_empty(), "{:?}", round.server_errors);
    assert_eq!(out.contributors.len(), 6);
    assert!(out.sum == round.plain_sum(&out.contributors));
}

#[test]
fn a_client_that_stops_mid_upload_contributes_nothing() {
    // Two chunks per vector: the victims send the first and vanish.
    let (config, ids) = config(12, 70_000, 9);
    let mut round = Round::new(config.clone(), ids, 9);
    let victims: Vec<ClientId> = config.participants.iter().take(2).map(|p| p.id).collect();
    for v in &victims {
        round.drops.insert(*v, Drop::MidInput);
    }
    let out = round.run().unwrap();
    assert!(victims.iter().all(|v| !out.contributors.contains(v)));
    assert_eq!(out.contributors.len(), 10);
    assert!(out.sum == round.plain_sum(&out.contributors));
}

#[test]
fn too_few_share_holders_abort_the_unmask_with_counts() {
    // Complete graph on 5 (k = 4, t = 3): two clients vanish after sending their input, so each
    // survivor's self-mask seed has only 2 holders left.
    let (config, ids) = config(5, 64, 11);
    assert_eq!((config.degree, config.threshold), (4, 3));
    let mut round = Round::new(config.clone(), ids, 11);
    for p in config.participants.iter().take(2) {
        round.drops.insert(p.id, Drop::BeforeUnmask);
    }
    match round.run() {
        Err(AbortError::NotEnoughShares {
            phase: Phase::Unmask,
            have: 2,
            need: 3,
            ..
        }) => {}
        other => panic!("expected an unmask abort, got {other:?}"),
    }
    for c in round.clients.values() {
        assert!(matches!(
            c.outcome(),
            Some(Err(ClientError::ServerAborted(_)))
        ));
    }
}

#[test]
fn too_few_clients_abort_with_the_phase_and_counts() {
    let (config, ids) = config(5, 64, 12);
    let mut round = Round::new(config.clone(), ids, 12);
    for p in config.participants.iter().take(4) {
        round.drops.insert(p.id, Drop::BeforeInput);
    }
    let err = round.run().unwrap_err();
    assert_eq!(
        err,
        AbortError::TooFewClients {
            phase: Phase::MaskedInput,
            have: 1,
            need: 3
        }
    );
    assert_eq!(
        err.to_string(),
        "masked-input: 1 clients left, the round needs 3"
    );
}

#[test]
fn the_next_round_goes_on_after_an_abort() {
    let (config, ids) = config(5, 64, 13);
    let mut failed = Round::new(config.clone(), support::identities(5, 13), 1);
    for p in config.participants.iter().take(3) {
        failed.drops.insert(p.id, Drop::BeforeAdvert);
    }
    assert!(failed.run().is_err());
    let mut next = config.clone();
    next.round += 1;
    support::reseed(&mut next);
    let mut round = Round::new(next, ids, 2);
    let out = round.run().unwrap();
    assert_eq!(out.contributors.len(), 5);
    assert!(out.sum == round.plain_sum(&out.contributors));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_rounds_within_the_threshold_are_exact(
        n in 2usize..=200,
        d in 1u32..48,
        seed in any::<u8>(),
        drop_seed in any::<u64>(),
        notice in any::<bool>(),
    ) {
        let (config, ids) = config(n, d, seed);
        let budget = (config.degree - config.threshold) as usize;
        let mut round = Round::new(config.clone(), ids, drop_seed);
        round.notice_drops = notice;
        let mut picker = drop_seed;
        let mut victims = BTreeSet::new();
        for _ in 0..budget {
            picker = picker.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            victims.insert(config.participants[(picker >> 33) as usize % n].id);
        }
        for (i, v) in victims.iter().enumerate() {
            round.drops.insert(*v, EARLY[(i + (drop_seed as usize)) % EARLY.len()]);
        }
        let out = round.run().map_err(|e| TestCaseError::fail(format!("n {n}: {e}")))?;
        prop_assert_eq!(&out.contributors, &expected_contributors(&round));
        prop_assert!(out.sum == round.plain_sum(&out.contributors));
    }

    #[test]
    fn random_rounds_beyond_the_threshold_end_exact_or_abort_cleanly(
        n in 2usize..=60,
        d in 1u32..16,
        seed in any::<u8>(),
        drops in proptest::collection::vec((any::<prop::sample::Index>(), 0usize..EARLY.len()), 1..40),
    ) {
        let (config, ids) = config(n, d, seed);
        let mut round = Round::new(config.clone(), ids, u64::from(seed));
        for (who, when) in drops {
            round.drops.insert(config.participants[who.index(n)].id, EARLY[when]);
        }
        match round.run() {
            Ok(out) => {
                let dropped: BTreeSet<ClientId> = round
                    .drops
                    .iter()
                    .filter(|(_, d)| !d.contributes())
                    .map(|(id, _)| *id)
                    .collect();
                prop_assert!(out.contributors.iter().all(|c| !dropped.contains(c)));
                prop_assert!(out.contributors.len() >= config.min_clients as usize);
                prop_assert!(out.sum == round.plain_sum(&out.contributors));
            }
            Err(e) => {
                let text = e.to_string();
                prop_assert!(
                    matches!(e, AbortError::TooFewClients { .. } | AbortError::NotEnoughShares { .. }),
                    "unexpected abort: {text}"
                );
            }
        }
    }
}

#[test]
fn a_silent_server_times_the_client_out() {
    let (config, ids) = config(5, 8, 14);
    let now = std::time::Instant::now();
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(3);
    let me = config.participants[0].id;
    let mut client = flock_protocol::Client::new(
        config.clone(),
        me,
        &ids[0],
        &flock_protocol::ClientPolicy::default(),
        &support::beacon(14),
        &mut rng,
        now,
    )
    .unwrap();
    let deadline = client.poll_timeout().unwrap();
    assert_eq!(deadline, now + config.phase_timeout());
    client.handle_timeout(deadline - std::time::Duration::from_millis(1));
    assert!(client.outcome().is_none(), "timed out early");
    client.handle_timeout(deadline);
    assert_eq!(
        client.outcome(),
        Some(Err(&ClientError::Timeout(Phase::AdvertiseKeys)))
    );
    assert_eq!(client.poll_timeout(), None);
}
