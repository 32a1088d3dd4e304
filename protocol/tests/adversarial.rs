//! A malicious server and malicious clients: an honest client never reveals both shares of a
//! peer, refuses forged, replayed and tampered material and unsafe configurations; the server
//! excludes a misbehaving client and finishes the round exactly without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use flock_protocol::wire::{ClientMessage, ServerMessage};
use flock_protocol::{
    ClientError, ClientId, ConfigError, KeyError, ParamError, Phase, Server, ServerError,
};
use support::{Round, config};

#[test]
fn a_survivor_list_shown_to_one_client_only_gets_no_shares_and_the_round_is_exact() {
    let (config, ids) = config(10, 16, 21);
    let victim = config.participants[0].id;
    let dropped = config.participants[1].id;
    let mut round = Round::new(config, ids, 21);
    // The victim alone is told that another client's input never arrived. It signs what it
    // was shown; that signature covers no list anyone else signed, so it can never gather a
    // quorum for it and reveals nothing; the others' answers unmask the round.
    round.tamper_server = Some(Box::new(move |to, msg| {
        if let (true, ServerMessage::Survivors(list)) = (to == victim, msg) {
            list.retain(|&c| c != dropped);
        }
    }));
    let revealed = std::rc::Rc::new(std::cell::Cell::new(false));
    let flag = revealed.clone();
    round.tamper_client = Some(Box::new(move |from, msg| {
        if from == victim && matches!(msg, ClientMessage::Unmask(_)) {
            flag.set(true);
        }
    }));
    let out = round.run().unwrap();
    assert!(
        !revealed.get(),
        "the victim revealed shares for a list nobody else signed"
    );
    assert!(
        round.server_errors.iter().any(|e| matches!(
            e,
            ServerError::Invalid { phase: Phase::Consistency, from, .. } if *from == victim
        )),
        "{:?}",
        round.server_errors
    );
    assert!(out.contributors.contains(&victim));
    assert!(out.sum == round.plain_sum(&out.contributors));
}

#[test]
fn a_tampered_advert_is_rejected_by_the_client() {
    let (config, ids) = config(8, 16, 22);
    let victim = config.participants[1].id;
    let mut round = Round::new(config, ids, 22);
    round.tamper_server = Some(Box::new(move |to, msg| {
        if let (true, ServerMessage::Adverts(adverts)) = (to == victim, msg) {
            adverts[0].mask_pk[0] ^= 1;
        }
    }));
    let _ = round.run();
    assert!(
        matches!(
            round.client_errors[&victim][0],
            ClientError::Key(KeyError::BadSignature(_))
        ),
        "{:?}",
        round.client_errors
    );
}

#[test]
fn a_replayed_advert_is_rejected_by_server_and_clients() {
    // Record every advert of one attempt, then replay one into the next attempt of the round.
    let (config, ids) = config(6, 8, 23);
    let recorded = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let mut first = Round::new(config.clone(), support::identities(6, 23), 1);
    let sink = recorded.clone();
    first.tamper_client = Some(Box::new(move |_, msg| {
        if let ClientMessage::Advert(a) = msg {
            sink.borrow_mut().push(a.clone());
        }
    }));
    first.run().unwrap();
    let old = recorded.borrow()[0].clone();

    let mut next = config.clone();
    next.attempt += 1;
    support::reseed(&mut next);
    // To the server: the replay is refused and its sender excluded.
    let mut server = Server::new(next.clone(), std::time::Instant::now()).unwrap();
    let err = server.handle(
        old.client,
        ClientMessage::Advert(old.clone()),
        std::time::Instant::now(),
    );
    assert!(
        matches!(
            err,
            Err(ServerError::BadAdvert {
                source: KeyError::BadSignature(_),
                ..
            })
        ),
        "{err:?}"
    );
    // To a client, slipped in by the server in place of a fresh advert.
    let victim = next
        .participants
        .iter()
        .map(|p| p.id)
        .find(|&id| id != old.client)
        .unwrap();
    let mut round = Round::new(next, ids, 2);
    round.tamper_server = Some(Box::new(move |to, msg| {
        if let (true, ServerMessage::Adverts(adverts)) = (to == victim, msg)
            && let Some(a) = adverts.iter_mut().find(|a| a.client == old.client)
        {
            *a = old.clone();
        }
    }));
    let _ = round.run();
    assert!(matches!(
        round.client_errors.get(&victim).map(|e| &e[0]),
        Some(ClientError::Key(KeyError::BadSignature(_)))
    ));
}

#[test]
fn a_client_with_a_bad_chunk_is_excluded_and_the_round_is_exact_without_it() {
    let (config, ids) = config(10, 32, 24);
    let cheat = config.participants[2].id;
    let mut round = Round::new(config, ids, 24);
    round.tamper_client = Some(Box::new(move |from, msg| {
        if let (true, ClientMessage::MaskedChunk(c)) = (from == cheat, msg) {
            c.offset = 5;
        }
    }));
    let out = round.run().unwrap();
    assert!(!out.contributors.contains(&cheat));
    assert_eq!(out.contributors.len(), 9);
    assert!(out.sum == round.plain_sum(&out.contributors));
    let e = &round.server_errors[0];
    assert!(
        matches!(e, ServerError::Invalid { phase: Phase::MaskedInput, from, .. } if *from == cheat),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("chunk at word 5 of 32 words: chunks start at multiples of 65536"),
        "{e}"
    );
}

#[test]
fn wrong_phase_and_unknown_senders_are_refused_without_harm() {
    let (config, ids) = config(6, 8, 25);
    let liar = config.participants[0].id;
    let mut round = Round::new(config, ids, 25);
    let mut once = true;
    round.tamper_client = Some(Box::new(move |from, msg| {
        if from == liar && once {
            once = false;
            *msg = ClientMessage::Unmask(flock_protocol::wire::UnmaskResponse {
                client: from,
                self_mask_shares: vec![],
                mask_key_shares: vec![],
            });
        }
    }));
    let out = round.run().unwrap();
    assert!(matches!(
        round.server_errors[0],
        ServerError::UnexpectedMessage {
            phase: Phase::AdvertiseKeys,
            got: "unmask",
            ..
        }
    ));
    assert_eq!(out.contributors.len(), 5);
    assert!(out.sum == round.plain_sum(&out.contributors));

    let mut server = Server::new(round.server.config().clone(), std::time::Instant::now()).unwrap();
    let stranger = ClientId(999_999);
    let msg = ClientMessage::Unmask(flock_protocol::wire::UnmaskResponse {
        client: stranger,
        self_mask_shares: vec![],
        mask_key_shares: vec![],
    });
    assert_eq!(
        server.handle(stranger, msg, std::time::Instant::now()),
        Err(ServerError::UnknownClient(stranger))
    );
    assert_eq!(server.phase(), Some(Phase::AdvertiseKeys));
}

#[test]
fn unsafe_configurations_are_refused_by_the_client() {
    let (mut config, ids) = config(20, 8, 26);
    let identity = &ids[0];
    let me = config.participants[0].id;
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(1);
    let now = std::time::Instant::now();
    let policy = flock_protocol::ClientPolicy::default();
    let beacon = support::beacon(26);

    let mut low = config.clone();
    low.threshold = low.degree / 2;
    let err = flock_protocol::Client::new(low, me, identity, &policy, &beacon, &mut rng, now)
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            ClientError::Config(ConfigError::Params(ParamError::ThresholdTooLow { .. }))
        ),
        "{err}"
    );

    let mut wide = config.clone();
    wide.bits = 31;
    let err = flock_protocol::Client::new(wide, me, identity, &policy, &beacon, &mut rng, now)
        .err()
        .unwrap();
    assert!(err.to_string().contains("does not fit in 32 bits"), "{err}");

    let mut sparse = config.clone();
    sparse.degree = 2;
    sparse.threshold = 2;
    sparse.min_clients = 2;
    let err = flock_protocol::Client::new(sparse, me, identity, &policy, &beacon, &mut rng, now)
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            ClientError::Config(ConfigError::Params(ParamError::DegreeTooSmall { .. }))
        ),
        "{err}"
    );

    config.participants.swap(0, 1);
    let err = flock_protocol::Client::new(config, me, identity, &policy, &beacon, &mut rng, now)
        .err()
        .unwrap();
    assert!(
        matches!(err, ClientError::Config(ConfigError::Participants(_))),
        "{err}"
    );
}

#[test]
fn a_corrupted_unmask_share_is_outvoted_and_its_holder_named() {
    // k = 6, t = 4: each survivor's seed has six holders, so one wrong share is both corrected
    // (the rebuilt seed must match its signed commitment) and pinned on its holder.
    let (config, ids) = config(20, 16, 27);
    assert_eq!((config.degree, config.threshold), (6, 4));
    let liar = config.participants[3].id;
    let mut round = Round::new(config, ids, 27);
    round.tamper_client = Some(Box::new(move |from, msg| {
        if let (true, ClientMessage::Unmask(r)) = (from == liar, msg) {
            for (_, share) in &mut r.self_mask_shares {
                share.y[0] ^= 1;
            }
        }
    }));
    let out = round.run().unwrap();
    assert_eq!(out.contributors.len(), 20);
    assert!(out.sum == round.plain_sum(&out.contributors));
    assert_eq!(out.suspects, vec![liar]);
}
