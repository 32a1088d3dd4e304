//! Bad shares in phase 2 (hole 5 of issue 14). A device that seals shares its neighbours
//! cannot open no longer aborts them: each refuses that one neighbour, masks without it and
//! hands the server their pairwise seed, and the round ends exact with everyone in it. A
//! device whose shares almost all of its neighbours refuse ends the attempt, named. A server
//! that alters a share in flight gets no seed for it: the share no longer carries its sender's
//! signature, and the receiver aborts instead of refusing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use flock_protocol::wire::{ClientMessage, ServerMessage};
use flock_protocol::{AbortError, ClientError, ClientId, Phase, ServerError};
use support::{Round, config, identities};

/// A client that garbles the ciphertexts it seals for `victims` (all its neighbours when
/// `None`) and signs the upload as its own, as a lying device with its own key would.
fn seal_garbage_to(round: &mut Round, seed: u8, liar: ClientId, victims: Option<Vec<ClientId>>) {
    let n = round.server.config().participant_count() as usize;
    let index = round.server.config().index_of(liar).unwrap() as usize;
    let key = identities(n, seed).swap_remove(index);
    let digest = round.server.config().digest();
    round.tamper_client = Some(Box::new(move |from, msg| {
        if let (true, ClientMessage::Shares(upload)) = (from == liar, msg) {
            for s in &mut upload.shares {
                if victims.as_ref().is_none_or(|v| v.contains(&s.peer)) {
                    s.ciphertext[3] ^= 0x20;
                }
            }
            upload.signature = key.sign_shares(&digest, upload);
        }
    }));
}

/// Its neighbours, by id.
fn neighbours(round: &Round, id: ClientId) -> Vec<ClientId> {
    let config = round.server.config();
    let graph = config.graph().unwrap();
    let mut out: Vec<ClientId> = graph
        .neighbours(config.index_of(id).unwrap())
        .iter()
        .map(|&i| config.id_at(i).unwrap())
        .collect();
    out.sort_unstable();
    out
}

#[test]
fn signed_shares_that_do_not_open_cost_one_mask_each_and_the_round_is_exact_with_everyone() {
    let (config, ids) = config(20, 40, 31);
    let (k, t) = (config.degree as usize, config.threshold as usize);
    assert!(k - t >= 2, "k {k}, t {t}");
    let liar = config.participants[5].id;
    let mut round = Round::new(config, ids, 31);
    let victims: Vec<ClientId> = neighbours(&round, liar).into_iter().take(2).collect();
    seal_garbage_to(&mut round, 31, liar, Some(victims.clone()));
    let out = round.run().unwrap();
    // Nobody aborted: the two victims refused the liar and went on.
    assert!(round.client_errors.is_empty(), "{:?}", round.client_errors);
    assert_eq!(out.contributors.len(), 20);
    assert!(out.contributors.contains(&liar));
    assert!(out.sum == round.plain_sum(&out.contributors));
    let expected: Vec<(ClientId, ClientId)> = victims.iter().map(|&v| (v, liar)).collect();
    assert_eq!(out.refusals, expected);
}

#[test]
fn refused_shares_stay_exact_when_the_refused_or_the_refuser_drops() {
    use support::Drop;
    for (seed, who) in [(32u8, 0usize), (33, 1)] {
        let (config, ids) = config(20, 40, seed);
        let liar = config.participants[2].id;
        let mut round = Round::new(config, ids, u64::from(seed));
        let victim = neighbours(&round, liar)[0];
        seal_garbage_to(&mut round, seed, liar, Some(vec![victim]));
        // Before its input: its neighbours then reveal its mask key, and the masks they
        // share with it come out of the sum, except where it was not masked against.
        let gone = [liar, victim][who];
        round.drops.insert(gone, Drop::BeforeInput);
        let out = round.run().unwrap();
        assert!(!out.contributors.contains(&gone));
        assert_eq!(out.contributors.len(), 19);
        assert!(
            out.sum == round.plain_sum(&out.contributors),
            "{gone} dropped"
        );
    }
}

#[test]
fn shares_most_neighbours_refuse_end_the_attempt_naming_the_sender_and_its_accusers() {
    let (config, ids) = config(20, 40, 34);
    let liar = config.participants[7].id;
    let mut round = Round::new(config, ids, 34);
    let all = neighbours(&round, liar);
    seal_garbage_to(&mut round, 34, liar, None);
    match round.run() {
        Err(AbortError::RefusedShares {
            phase,
            client,
            refusers,
            holders,
            need,
        }) => {
            assert_eq!(phase, Phase::MaskedInput);
            assert_eq!(client, liar);
            assert_eq!(refusers, all);
            assert!(holders < need);
        }
        other => panic!("expected the liar named, got {other:?}"),
    }
    // The neighbours did not abort on their own: they refused, masked and waited.
    assert!(
        round
            .client_errors
            .values()
            .flatten()
            .all(|e| matches!(e, ClientError::ServerAborted(_))),
        "{:?}",
        round.client_errors
    );
}

#[test]
fn an_upload_whose_signature_does_not_verify_is_refused_by_the_server_and_the_round_is_exact_without_it()
 {
    let (config, ids) = config(12, 24, 35);
    let cheat = config.participants[4].id;
    let mut round = Round::new(config, ids, 35);
    round.tamper_client = Some(Box::new(move |from, msg| {
        if let (true, ClientMessage::Shares(upload)) = (from == cheat, msg) {
            upload.shares[0].ciphertext[0] ^= 1;
        }
    }));
    let out = round.run().unwrap();
    assert!(!out.contributors.contains(&cheat));
    assert_eq!(out.contributors.len(), 11);
    assert!(out.sum == round.plain_sum(&out.contributors));
    assert!(round.server_errors.iter().any(|e| matches!(
        e,
        ServerError::Invalid { phase: Phase::ShareKeys, from, reason } if *from == cheat && reason.contains("signature on its shares")
    )));
    assert!(round.client_errors.is_empty(), "{:?}", round.client_errors);
}

#[test]
fn a_share_the_server_alters_gets_it_no_seed_the_receiver_aborts() {
    let (config, ids) = config(12, 24, 36);
    let victim = config.participants[1].id;
    let mut round = Round::new(config, ids, 36);
    let altered: Rc<RefCell<Option<ClientId>>> = Rc::default();
    let seen = Rc::clone(&altered);
    round.tamper_server = Some(Box::new(move |to, msg| {
        if let (true, ServerMessage::Shares(shares)) = (to == victim, msg) {
            shares[0].ciphertext[5] ^= 1;
            *seen.borrow_mut() = Some(shares[0].sender);
        }
    }));
    // What the malicious server would collect: any refusal from the victim.
    let refusals: Rc<RefCell<usize>> = Rc::default();
    let count = Rc::clone(&refusals);
    round.tamper_client = Some(Box::new(move |from, msg| {
        if let (true, ClientMessage::MaskedChunk(c)) = (from == victim, msg) {
            *count.borrow_mut() += c.refusals.len();
        }
    }));
    let out = round.run().unwrap();
    let sender = altered.borrow().expect("a share was altered");
    assert_eq!(
        round.client_errors.get(&victim).map(|e| &e[0]),
        Some(&ClientError::ForgedShare(sender))
    );
    assert_eq!(
        *refusals.borrow(),
        0,
        "the altered share's pair seed leaked"
    );
    // The victim is a dropout; the others finish exact.
    assert!(!out.contributors.contains(&victim));
    assert!(out.refusals.is_empty());
    assert!(out.sum == round.plain_sum(&out.contributors));
}

#[test]
fn refusals_the_server_was_not_owed_are_refused() {
    // A client that names a stranger, or refuses so many that it holds fewer than t shares,
    // is excluded; the round is exact without it.
    for (seed, strangers) in [(37u8, true), (38, false)] {
        let (config, ids) = config(20, 24, seed);
        let cheat = config.participants[3].id;
        let mut round = Round::new(config, ids, u64::from(seed));
        let others: Vec<ClientId> = if strangers {
            round
                .server
                .config()
                .participants
                .iter()
                .map(|p| p.id)
                .filter(|&p| p != cheat && !neighbours(&round, cheat).contains(&p))
                .take(1)
                .collect()
        } else {
            neighbours(&round, cheat)
        };
        assert!(!others.is_empty());
        round.tamper_client = Some(Box::new(move |from, msg| {
            if let (true, ClientMessage::MaskedChunk(c)) = (from == cheat, msg)
                && c.offset == 0
            {
                c.refusals = others
                    .iter()
                    .map(|&peer| flock_protocol::wire::Refusal {
                        peer,
                        pair_seed: [1; 32],
                    })
                    .collect();
            }
        }));
        let out = round.run().unwrap();
        assert!(!out.contributors.contains(&cheat));
        assert!(out.sum == round.plain_sum(&out.contributors));
        assert!(round.server_errors.iter().any(|e| matches!(
            e,
            ServerError::Invalid { phase: Phase::MaskedInput, from, .. } if *from == cheat
        )));
    }
}
