//! Random rounds with up to `c` malicious clients (the round's own corruption bound) and
//! dropouts within the dropout bound: each ends with the exact sum of the inputs of the clients
//! it names as contributors, or aborts with a typed error. Never a wrong sum, never a panic.
//! Where the malicious clients only lie in the unmask phase (wrong shares, forged signatures)
//! and no one drops, the round must finish as long as every secret keeps `t` honest holders
//! and the honest clients alone make the signature quorum.
//!
//! `PROPTEST_CASES` sets the number of random rounds (CI runs the default below).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};

use flock_protocol::wire::ClientMessage;
use flock_protocol::{ClientId, Identity, RoundConfig, ThreatModel};
use proptest::prelude::*;
use support::{Drop, Round, config_for};

/// What a malicious client does to what it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lie {
    /// Flips a bit of every share it reveals.
    WrongShares,
    /// Sends a signature on the survivor list that does not verify.
    ForgedSignature,
    /// Reveals shares under another client's name.
    Impersonates,
    /// Corrupts every share ciphertext it sends without signing the result (the server
    /// refuses the upload).
    GarbledCiphertexts,
    /// Corrupts the first share ciphertext it sends and signs the upload: its receiver
    /// refuses it and the round goes on.
    SignedGarbage,
    /// Names a client that is not its neighbour as the receiver of a share.
    MisaddressedShares,
}

impl Lie {
    /// Whether honest clients and the server can absorb it without anyone dropping.
    fn absorbed(self) -> bool {
        matches!(
            self,
            Lie::WrongShares | Lie::ForgedSignature | Lie::Impersonates | Lie::SignedGarbage
        )
    }

    fn apply(
        self,
        from: ClientId,
        someone_else: ClientId,
        key: (&Identity, &[u8; 32]),
        msg: &mut ClientMessage,
    ) {
        match (self, msg) {
            (Lie::WrongShares, ClientMessage::Unmask(r)) => {
                for (_, share) in r.self_mask_shares.iter_mut().chain(&mut r.mask_key_shares) {
                    share.y[0] ^= 1;
                }
            }
            (Lie::ForgedSignature, ClientMessage::Survivors(s)) => s.signature[7] ^= 0x40,
            (Lie::Impersonates, ClientMessage::Unmask(r)) => r.client = someone_else,
            (Lie::GarbledCiphertexts, ClientMessage::Shares(u)) => {
                for s in &mut u.shares {
                    if let Some(b) = s.ciphertext.first_mut() {
                        *b ^= 1;
                    }
                }
            }
            (Lie::SignedGarbage, ClientMessage::Shares(u)) => {
                if let Some(b) = u.shares.first_mut().and_then(|s| s.ciphertext.first_mut()) {
                    *b ^= 1;
                }
                u.signature = key.0.sign_shares(key.1, u);
            }
            (Lie::MisaddressedShares, ClientMessage::Shares(u)) => {
                for s in &mut u.shares {
                    s.peer = from;
                }
            }
            _ => {}
        }
    }
}

fn lie() -> impl Strategy<Value = Lie> {
    prop_oneof![
        Just(Lie::WrongShares),
        Just(Lie::ForgedSignature),
        Just(Lie::Impersonates),
        Just(Lie::GarbledCiphertexts),
        Just(Lie::SignedGarbage),
        Just(Lie::MisaddressedShares),
    ]
}

fn drop_point() -> impl Strategy<Value = Drop> {
    proptest::sample::select(Drop::ALL.to_vec())
}

/// A round of `n` with 10 % dropout and 15 % corrupt clients (at least one), or `None` where
/// the parameter rules give no safe round.
fn hostile_config(n: usize, seed: u8) -> Option<(RoundConfig, Vec<flock_protocol::Identity>)> {
    let threat = ThreatModel {
        corrupt_ppm: 150_000,
        ..ThreatModel::default()
    };
    config_for(n, 64, seed, threat).ok()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    })]

    #[test]
    fn rounds_with_malicious_clients_are_exact_or_abort(
        n in 6usize..=16,
        seed in 1u8..=250,
        lies in proptest::collection::vec(lie(), 1..=3),
        drops in proptest::collection::vec((0usize..16, drop_point()), 0..=2),
        pick in 0usize..16,
    ) {
        let Some((config, ids)) = hostile_config(n, seed) else {
            return Ok(());
        };
        let corrupt = config.threat.corrupt_count(config.participant_count()) as usize;
        let dropouts = config.threat.dropout_count(config.participant_count()) as usize;
        prop_assert!(corrupt >= 1);
        let all: Vec<ClientId> = config.participants.iter().map(|p| p.id).collect();
        // Up to `c` liars from `pick` on; up to the dropout bound of the others drop.
        let liars: BTreeMap<ClientId, Lie> = lies
            .iter()
            .take(corrupt)
            .enumerate()
            .map(|(i, l)| (all[(pick + i) % n], *l))
            .collect();
        let mut round = Round::new(config, ids, u64::from(seed));
        let mut dropped = BTreeSet::new();
        for (i, at) in drops.iter().take(dropouts) {
            let id = all[i % n];
            if !liars.contains_key(&id) {
                round.drops.insert(id, *at);
                dropped.insert(id);
            }
        }
        let victim_of_impersonation = all[(pick + n - 1) % n];
        let plan = liars.clone();
        // The liars sign with their own keys (a second copy of the round's identities).
        let keys: BTreeMap<ClientId, Identity> =
            all.iter().copied().zip(support::identities(n, seed)).collect();
        let digest = round.server.config().digest();
        round.tamper_client = Some(Box::new(move |from, msg| {
            if let Some(lie) = plan.get(&from) {
                lie.apply(from, victim_of_impersonation, (&keys[&from], &digest), msg);
            }
        }));
        match round.run() {
            Ok(out) => {
                prop_assert!(out.contributors.iter().all(|c| all.contains(c)));
                prop_assert!(
                    out.sum == round.plain_sum(&out.contributors),
                    "a wrong sum: liars {liars:?}, drops {:?}", round.drops
                );
                prop_assert!(
                    out.contributors.len() >= round.server.config().min_clients as usize
                );
                // Every honest client that saw the end agrees with the server.
                for (id, c) in &round.clients {
                    if liars.contains_key(id) {
                        continue;
                    }
                    if let Some(Ok(seen)) = c.outcome() {
                        prop_assert_eq!(seen, out.contributors.as_slice());
                    }
                }
            }
            Err(e) => {
                // Lies in the unmask phase are absorbed when no one drops and every secret
                // keeps `t` honest holders that answer (`k − t` spare), and the honest clients
                // alone make the signature quorum.
                let config = round.server.config();
                let (n, k, t) = (n as u32, config.degree, config.threshold);
                let count = |f: fn(&Lie) -> bool| liars.values().filter(|l| f(l)).count() as u32;
                // A forger's signature is refused, so it is asked for no shares either; a
                // refused share costs its sender one holder.
                let unmask = count(|l| {
                    matches!(
                        l,
                        Lie::WrongShares | Lie::Impersonates | Lie::ForgedSignature | Lie::SignedGarbage
                    )
                });
                let forged = count(|l| matches!(l, Lie::ForgedSignature));
                let absorbed = dropped.is_empty()
                    && liars.values().all(|l| l.absorbed())
                    && unmask <= k - t
                    && n - forged >= config.consistency_quorum();
                prop_assert!(!absorbed, "aborted although absorbable: {e}; liars {liars:?}, k {k}, t {t}");
            }
        }
    }
}
