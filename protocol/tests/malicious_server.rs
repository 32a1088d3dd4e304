//! A malicious server against honest clients, hole by hole (`ARCHITECTURE.md`, threat model).
//!
//! * **Inconsistent survivor lists.** Before the consistency check a server could tell each
//!   client a different story about who survived and collect, for one device, both its
//!   self-mask seed (from neighbours told it survived) and the mask keys of all its neighbours
//!   (from their holders, told they dropped), which unmasks that device's input alone. The test
//!   searches every way of showing each of 12 clients (k = 6, t = 4) one of two lists for a
//!   schedule that isolates a device under the old rule (answer whatever you are asked, as long
//!   as no peer is both survived and dropped), finds them, and shows that under the rule the
//!   clients now follow no schedule isolates anyone; then it plays the schedule against the
//!   real clients and checks what the server actually obtained.
//! * **A configuration the device's policy refuses**: a two-client round, a ground graph seed,
//!   a configuration that differs between clients.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use flock_protocol::graph::NeighbourGraph;
use flock_protocol::wire::{ClientMessage, ServerMessage, SurvivorSignature, UnmaskRequest};
use flock_protocol::{ClientError, ClientId, ClientPhase, ClientPolicy, KeyError, PolicyError};
use support::{Round, config};

/// Who is shown which list: `views[u]` is the list client `u` (by graph index) is shown.
struct Schedule {
    lists: Vec<BTreeSet<u32>>,
    views: Vec<usize>,
}

/// What a server holds after the unmask phase: shares of each client's two secrets.
#[derive(Default)]
struct Haul {
    self_mask: BTreeMap<u32, usize>,
    mask_key: BTreeMap<u32, usize>,
}

impl Haul {
    /// The clients whose input the server can unmask alone: it holds their self-mask seed
    /// and, for each neighbour, that neighbour's mask key or theirs.
    fn isolated(&self, graph: &NeighbourGraph, n: u32, t: usize) -> Vec<u32> {
        let has = |m: &BTreeMap<u32, usize>, u: u32| m.get(&u).copied().unwrap_or(0) >= t;
        (0..n)
            .filter(|&v| {
                has(&self.self_mask, v)
                    && (has(&self.mask_key, v)
                        || graph.neighbours(v).iter().all(|&w| has(&self.mask_key, w)))
            })
            .collect()
    }
}

/// The shares honest clients reveal under `schedule`. `consistent` is the rule clients follow
/// now (a client answers only for a list with itself on it, that a quorum of clients shown
/// the same list and on it signed, with at least t of its neighbours on it); otherwise the old
/// rule (everyone answers what it is shown).
fn haul(
    graph: &NeighbourGraph,
    schedule: &Schedule,
    t: usize,
    quorum: usize,
    consistent: bool,
) -> Haul {
    let mut haul = Haul::default();
    let n = schedule.views.len() as u32;
    for u in 0..n {
        let list = &schedule.lists[schedule.views[u as usize]];
        if consistent {
            let signers = (0..n)
                .filter(|&s| schedule.views[s as usize] == schedule.views[u as usize])
                .filter(|s| list.contains(s))
                .count();
            let on_list = graph
                .neighbours(u)
                .iter()
                .filter(|w| list.contains(w))
                .count();
            if !list.contains(&u) || list.len() < quorum || signers < quorum || on_list < t {
                continue;
            }
        }
        for &w in graph.neighbours(u) {
            let bucket = if list.contains(&w) {
                &mut haul.self_mask
            } else {
                &mut haul.mask_key
            };
            *bucket.entry(w).or_default() += 1;
        }
    }
    haul
}

/// Every schedule that shows each client either the full list or the full list without the
/// neighbours of `v`.
fn schedules(graph: &NeighbourGraph, n: u32, v: u32) -> impl Iterator<Item = Schedule> + '_ {
    let all: BTreeSet<u32> = (0..n).collect();
    let without: BTreeSet<u32> = all
        .iter()
        .copied()
        .filter(|u| !graph.neighbours(v).contains(u))
        .collect();
    (0u32..1 << n).map(move |mask| Schedule {
        lists: vec![all.clone(), without.clone()],
        views: (0..n).map(|u| ((mask >> u) & 1) as usize).collect(),
    })
}

#[test]
fn no_schedule_of_survivor_lists_isolates_a_device_any_more() {
    let (config, ids) = config(12, 8, 40);
    assert_eq!((config.degree, config.threshold), (6, 4));
    let (n, t) = (12u32, config.threshold as usize);
    let quorum = config.consistency_quorum() as usize;
    let graph = config.graph().unwrap();
    let mut found = None;
    for v in 0..n {
        for schedule in schedules(&graph, n, v) {
            let old = haul(&graph, &schedule, t, quorum, false).isolated(&graph, n, t);
            let new = haul(&graph, &schedule, t, quorum, true).isolated(&graph, n, t);
            assert!(
                new.is_empty(),
                "target {v}: the consistency rule still isolates {new:?}"
            );
            if old.contains(&v) && found.is_none() {
                found = Some((v, schedule));
            }
        }
    }
    let (v, schedule) = found.expect("the old rule had a schedule isolating a device");

    // Play that schedule against the real clients: each is shown its list, signatures are
    // collected per list and every client is handed the signatures of its own list.
    let mut round = Round::new(config.clone(), ids, 40);
    let id_at = |i: u32| config.id_at(i).unwrap();
    let view_of: BTreeMap<ClientId, Vec<ClientId>> = (0..n)
        .map(|u| {
            let list = &schedule.lists[schedule.views[u as usize]];
            (id_at(u), list.iter().map(|&i| id_at(i)).collect())
        })
        .collect();
    let shown = view_of.clone();
    round.tamper_server = Some(Box::new(move |to, msg| {
        if let ServerMessage::Survivors(list) = msg {
            *list = shown[&to].clone();
        }
    }));
    let signatures: Rc<RefCell<Vec<SurvivorSignature>>> = Rc::default();
    let revealed: Rc<RefCell<Vec<(ClientId, ClientMessage)>>> = Rc::default();
    let (sigs, seen) = (signatures.clone(), revealed.clone());
    round.tamper_client = Some(Box::new(move |from, msg| match msg {
        ClientMessage::Survivors(s) => sigs.borrow_mut().push(s.clone()),
        ClientMessage::Unmask(_) => seen.borrow_mut().push((from, msg.clone())),
        _ => {}
    }));
    let _ = round.run();
    // The server's own machinery refused signatures on lists other than the one it built;
    // a malicious server would not: hand every client still waiting the signatures made on
    // its list.
    for (id, client) in &mut round.clients {
        if client.phase() != ClientPhase::AwaitingUnmaskRequest {
            continue;
        }
        let same: Vec<SurvivorSignature> = signatures
            .borrow()
            .iter()
            .filter(|s| view_of[&s.client] == view_of[id])
            .cloned()
            .collect();
        let _ = client.handle(
            ServerMessage::UnmaskRequest(UnmaskRequest { signatures: same }),
            round.now,
        );
        while let Some(msg) = client.poll_transmit() {
            revealed.borrow_mut().push((*id, msg));
        }
    }
    let mut got = Haul::default();
    for (_, msg) in revealed.borrow().iter() {
        if let ClientMessage::Unmask(r) = msg {
            for (peer, _) in &r.self_mask_shares {
                *got.self_mask
                    .entry(config.index_of(*peer).unwrap())
                    .or_default() += 1;
            }
            for (peer, _) in &r.mask_key_shares {
                *got.mask_key
                    .entry(config.index_of(*peer).unwrap())
                    .or_default() += 1;
            }
        }
    }
    assert!(
        got.isolated(&graph, n, t).is_empty(),
        "target {v}: the real clients let the server isolate {:?}",
        got.isolated(&graph, n, t)
    );
}

#[test]
fn a_two_client_round_is_refused_under_the_default_policy() {
    let (config, ids) = config(2, 4, 41);
    let mut round = Round::new(config, ids, 41);
    round.policy = ClientPolicy::default();
    assert!(round.run().is_err());
    for errors in round.client_errors.values() {
        assert!(
            matches!(
                errors[0],
                ClientError::Policy(PolicyError::TooFewParticipants { got: 2, min: 4 })
            ),
            "{errors:?}"
        );
    }
    assert_eq!(round.client_errors.len(), 2);
}

#[test]
fn a_graph_seed_the_server_picked_is_refused() {
    let (mut config, ids) = config(8, 4, 42);
    config.graph_seed = [0xAA; 32];
    let mut round = Round::new(config, ids, 42);
    assert!(round.run().is_err());
    assert_eq!(round.client_errors.len(), 8);
    assert!(
        round
            .client_errors
            .values()
            .all(|e| matches!(e[0], ClientError::Policy(PolicyError::GraphSeed)))
    );
}

#[test]
fn a_weaker_threat_model_than_the_device_requires_is_refused() {
    let (config, ids) = config(8, 4, 43);
    let mut round = Round::new(config, ids, 43);
    round.policy = ClientPolicy {
        floor: flock_protocol::ThreatModel {
            failure_bits: 64,
            ..flock_protocol::ThreatModel::default()
        },
        ..ClientPolicy::default()
    };
    assert!(round.run().is_err());
    let e = &round.client_errors.values().next().unwrap()[0];
    assert!(
        e.to_string()
            .contains("the round assumes failure_bits = 40, this device requires at least 64"),
        "{e}"
    );
}

#[test]
fn clients_given_different_configurations_cannot_complete_a_round_together() {
    // One of the victim's neighbours is told a larger clip norm (a different quantiser). Every advert is
    // signed over its signer's configuration digest: the server refuses that one, and a client
    // handed one anyway (as a malicious server would) refuses it too.
    let (config, ids) = config(8, 4, 44);
    let graph = config.graph().unwrap();
    let victim = config.participants[7].id;
    let half: BTreeSet<ClientId> = graph
        .neighbours(7)
        .iter()
        .take(1)
        .map(|&i| config.id_at(i).unwrap())
        .collect();
    let mut round = Round::new(config, ids, 44);
    let captured: Rc<RefCell<Vec<flock_protocol::wire::KeyAdvert>>> = Rc::default();
    let (sink, source) = (captured.clone(), captured.clone());
    let told = half.clone();
    round.tamper_client = Some(Box::new(move |from, msg| {
        if let (true, ClientMessage::Advert(a)) = (told.contains(&from), msg) {
            sink.borrow_mut().push(a.clone());
        }
    }));
    round.tamper_server = Some(Box::new(move |to, msg| match msg {
        ServerMessage::Start(c) if half.contains(&to) => c.clip_norm *= 4.0,
        ServerMessage::Adverts(adverts) if to == victim => {
            adverts.retain(|a| !half.contains(&a.client));
            adverts.extend(source.borrow().iter().cloned());
        }
        _ => {}
    }));
    let _ = round.run();
    let refused_by_server = round
        .server_errors
        .iter()
        .filter(|e| matches!(e, flock_protocol::ServerError::BadAdvert { .. }))
        .count();
    assert_eq!(refused_by_server, 1, "{:?}", round.server_errors);
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
fn a_list_without_the_client_or_below_the_quorum_is_not_signed() {
    let (config, _) = config(10, 4, 45);
    let victim = config.participants[0].id;
    let quorum = config.consistency_quorum() as usize;
    let short: Vec<ClientId> = config.participants[..quorum - 1]
        .iter()
        .map(|p| p.id)
        .collect();
    let outside: Vec<ClientId> = config.participants[1..].iter().map(|p| p.id).collect();
    for (list, expect) in [
        (
            short,
            "survivors signed the list, the consistency quorum is",
        ),
        (outside, "this client's own input is not on it"),
    ] {
        let mut round = Round::new(config.clone(), support::identities(10, 45), 45);
        let shown = list.clone();
        round.tamper_server = Some(Box::new(move |to, msg| {
            if let (true, ServerMessage::Survivors(l)) = (to == victim, msg) {
                *l = shown.clone();
            }
        }));
        let signed: Rc<RefCell<bool>> = Rc::default();
        let flag = signed.clone();
        round.tamper_client = Some(Box::new(move |from, msg| {
            if from == victim && matches!(msg, ClientMessage::Survivors(_)) {
                *flag.borrow_mut() = true;
            }
        }));
        let out = round.run().unwrap();
        assert!(!*signed.borrow(), "the victim signed {list:?}");
        let e = &round.client_errors[&victim][0];
        assert!(e.to_string().contains(expect), "{e}");
        // Its input is in the sum; the others unmasked it.
        assert!(out.contributors.contains(&victim));
        assert!(out.sum == round.plain_sum(&out.contributors));
    }
}
