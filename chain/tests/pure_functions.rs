//! The off-chain encodings against the contract's pure functions: beacon and vote commitments,
//! the contributors Merkle root (and proofs), and the role draw, whose fairness is checked over
//! 1 000 draws against the binomial 99.9 % band.

mod common;

use std::time::Instant;

use alloy::primitives::{Address, B256, keccak256};
use flock_chain::merkle::{leaf, merkle_proof, merkle_root, sorted_contributors, verify_proof};
use flock_chain::roles::{proposer_count, proposer_indices};
use flock_chain::task::{Ballot, CommitDomain};

fn addresses(n: usize, salt: u8) -> Vec<Address> {
    (0..n)
        .map(|i| Address::from_word(keccak256([salt, (i >> 8) as u8, i as u8])))
        .collect()
}

#[tokio::test]
async fn commitments_and_merkle_roots_match_the_contract() -> anyhow::Result<()> {
    let t0 = Instant::now();
    let s = common::setup(2, 0, |_| 10, |_| {}).await?;
    let c = &s.aggregator;
    for i in 0..8u8 {
        let secret = keccak256([i]);
        let who = addresses(1, i)[0];
        let round = u64::from(i) * 1_000_003;
        // The contract binds its chain, its own address and the round: the same values
        // off chain give its hash, and changing any of them gives another.
        let domain = c.domain(round);
        assert_eq!(domain.task, s.task);
        let on_chain = c.beacon_commitment_on_chain(secret, who, round).await?;
        assert_eq!(domain.beacon(who, secret), on_chain);
        for other in [
            CommitDomain {
                chain_id: domain.chain_id + 1,
                ..domain
            },
            CommitDomain {
                task: who,
                ..domain
            },
            CommitDomain {
                round: round + 1,
                ..domain
            },
        ] {
            assert_ne!(other.beacon(who, secret), on_chain);
        }
        let ballot = Ballot {
            accept: i % 2 == 0,
            accuracy_bps: u32::from(i) * 1234,
            salt: keccak256([i, i]),
        };
        let on_chain = c.vote_commitment_on_chain(round, &ballot, who).await?;
        assert_eq!(domain.vote(who, &ballot), on_chain);
        assert_ne!(c.domain(round + 1).vote(who, &ballot), on_chain);
    }
    assert_eq!(c.merkle_root_on_chain(&[]).await?, B256::ZERO);
    for n in (1..=9).chain([16, 17, 31, 64, 100, 255, 256]) {
        let list = sorted_contributors(&addresses(n, n as u8));
        let root = merkle_root(&list);
        assert_eq!(root, c.merkle_root_on_chain(&list).await?, "n = {n}");
        for (i, a) in list.iter().enumerate() {
            let proof = merkle_proof(&list, i).unwrap_or_default();
            assert!(verify_proof(&proof, root, leaf(*a)), "n = {n}, i = {i}");
        }
    }
    eprintln!(
        "commitments_and_merkle_roots_match_the_contract: {:?}",
        t0.elapsed()
    );
    Ok(())
}

/// `[lo, hi]` such that a Binomial(trials, p) count falls below lo, or above hi, with
/// probability at most 0.0005 each (the central 99.9 %).
fn binomial_band(trials: usize, p: f64) -> (usize, usize) {
    let mut pmf = vec![0.0f64; trials + 1];
    pmf[0] = (1.0 - p).powi(trials as i32);
    for k in 0..trials {
        pmf[k + 1] = pmf[k] * (trials - k) as f64 / (k + 1) as f64 * p / (1.0 - p);
    }
    let mut lo = 0;
    let mut acc = 0.0;
    while acc + pmf[lo] <= 0.0005 {
        acc += pmf[lo];
        lo += 1;
    }
    let mut hi = trials;
    let mut acc = 0.0;
    while acc + pmf[hi] <= 0.0005 {
        acc += pmf[hi];
        hi -= 1;
    }
    (lo, hi)
}

#[tokio::test]
async fn role_draw_is_fair_over_1000_draws() -> anyhow::Result<()> {
    let t0 = Instant::now();
    let s = common::setup(2, 0, |_| 10, |_| {}).await?;
    const DRAWS: usize = 1000;
    for (n, bps) in [(10usize, 3000u16), (7, 3000)] {
        let k = proposer_count(n, bps);
        let (lo, hi) = binomial_band(DRAWS, k as f64 / n as f64);
        let mut counts = vec![0usize; n];
        for d in 0..DRAWS {
            let seed = keccak256(format!("fairness {n} {d}"));
            let drawn = s.aggregator.proposer_indices_on_chain(seed, n, k).await?;
            assert_eq!(drawn, proposer_indices(seed, n, k), "seed {seed}");
            for i in drawn {
                counts[i] += 1;
            }
        }
        for (i, c) in counts.iter().enumerate() {
            assert!(
                (lo..=hi).contains(c),
                "n={n} k={k}: member {i} proposed {c} times, band [{lo}, {hi}]"
            );
        }
        eprintln!("n={n} k={k}: counts {counts:?}, band [{lo}, {hi}]");
    }
    eprintln!("role_draw_is_fair_over_1000_draws: {:?}", t0.elapsed());
    Ok(())
}

#[test]
fn the_band_is_the_textbook_one() {
    // Binomial(1000, 0.3): mean 300, sd 14.49; z(0.9995) = 3.29 gives about [252.3, 347.7].
    let (lo, hi) = binomial_band(1000, 0.3);
    assert!(
        (252..=254).contains(&lo) && (346..=348).contains(&hi),
        "[{lo}, {hi}]"
    );
}
